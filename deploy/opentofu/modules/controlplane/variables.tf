variable "namespace" {
  description = "Namespace of the control plane (created here). deploy/prometheus/prometheus.yml expects \"controlplane\"."
  type        = string
  default     = "controlplane"
}

variable "image_repository" {
  description = "Container image repository of the control plane (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/controlplane)."
  type        = string

  validation {
    condition     = !strcontains(var.image_repository, "@") && !can(regex(":[^/]+$", var.image_repository))
    error_message = "image_repository must not carry a tag or digest: the digest goes in image_digest."
  }
}

variable "image_digest" {
  description = "Digest the image is pinned to (sha256:...), so every pod runs exactly the build that was tested."
  type        = string

  validation {
    condition     = can(regex("^sha256:[a-f0-9]{64}$", var.image_digest))
    error_message = "image_digest must look like sha256:<64 hex digits>."
  }
}

variable "run_as_user" {
  description = "Non-root UID (and GID) the containers run as; must own nothing in the read-only image."
  type        = number
  default     = 10001

  validation {
    condition     = var.run_as_user >= 10000
    error_message = "run_as_user must be a high, non-root UID (>= 10000)."
  }
}

variable "bao_addr" {
  description = "Address of OpenBao (BAO_ADDR), e.g. the openbao module's address output."
  type        = string

  validation {
    condition     = startswith(var.bao_addr, "https://")
    error_message = "bao_addr must use https://."
  }
}

variable "runtime_secret_name" {
  description = "Kubernetes secret the operator creates in the namespace, with keys database-url, redis-url, bao-role-id, bao-secret-id and stripe-api-key."
  type        = string
  default     = "controlplane-runtime"
}

variable "api_processes" {
  description = "uvicorn worker processes per API pod (metrics are merged across them)."
  type        = number
  default     = 2
}

variable "api_replicas" {
  description = "Minimum and maximum API pods for the autoscaler."
  type        = object({ min = number, max = number })
  default     = { min = 2, max = 6 }

  validation {
    condition     = var.api_replicas.min >= 2 && var.api_replicas.max >= var.api_replicas.min
    error_message = "api_replicas.min must be at least 2 (the PodDisruptionBudget keeps one up) and max >= min."
  }
}

variable "worker_replicas" {
  description = "Minimum and maximum Celery worker pods for the autoscaler."
  type        = object({ min = number, max = number })
  default     = { min = 2, max = 6 }

  validation {
    condition     = var.worker_replicas.min >= 1 && var.worker_replicas.max >= var.worker_replicas.min
    error_message = "worker_replicas.min must be at least 1 and max >= min."
  }
}

variable "worker_concurrency" {
  description = "Celery worker processes per pod."
  type        = number
  default     = 2
}

variable "api_resources" {
  description = "Requests and limits of an API container."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "250m", memory = "384Mi" }
    limits   = { cpu = "1", memory = "768Mi" }
  }
}

variable "worker_resources" {
  description = "Requests and limits of a Celery worker container."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "250m", memory = "384Mi" }
    limits   = { cpu = "1", memory = "768Mi" }
  }
}

variable "beat_resources" {
  description = "Requests and limits of the Celery beat container."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "50m", memory = "128Mi" }
    limits   = { cpu = "250m", memory = "256Mi" }
  }
}

variable "ingress_namespaces" {
  description = "Namespaces (the ingress controller's) allowed to reach the API on 8000."
  type        = list(string)
  default     = ["ingress-nginx"]
}

variable "trusted_proxy_cidrs" {
  description = "Networks of the proxies in front of the API (the ingress controller's pods): uvicorn takes a client's address from X-Forwarded-For only when sent by these (FORWARDED_ALLOW_IPS), and rate limits and failed-authentication blocking count that address."
  type        = list(string)

  validation {
    condition = length(var.trusted_proxy_cidrs) > 0 && alltrue([
      for cidr in var.trusted_proxy_cidrs : can(cidrhost(cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], cidr)
    ])
    error_message = "trusted_proxy_cidrs must list the proxies' networks (CIDRs), never 0.0.0.0/0 or ::/0: trusting every address lets any client name its own in X-Forwarded-For."
  }
}

variable "monitoring_namespace" {
  description = "Namespace of Prometheus, allowed to scrape the API (8000) and the workers (9808)."
  type        = string
  default     = "monitoring"
}
