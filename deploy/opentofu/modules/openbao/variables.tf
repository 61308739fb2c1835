variable "name" {
  description = "Prefix of the AWS resources (KMS key, IAM role) of this OpenBao cluster."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace OpenBao runs in (created here)."
  type        = string
  default     = "openbao"
}

variable "chart_version" {
  description = "Version of the openbao/openbao Helm chart (https://openbao.github.io/openbao-helm), pinned."
  type        = string
  default     = "0.28.0"
}

variable "replicas" {
  description = "Raft voters; an odd number so a quorum survives the loss of a minority."
  type        = number
  default     = 3

  validation {
    condition     = var.replicas >= 3 && var.replicas % 2 == 1
    error_message = "replicas must be an odd number of at least 3 for a highly available Raft cluster."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider_url" {
  description = "Issuer of the EKS cluster's OIDC provider without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC)."
  type        = string

  validation {
    condition     = !startswith(var.oidc_provider_url, "https://")
    error_message = "oidc_provider_url must not include the https:// scheme."
  }
}

variable "tls_secret_name" {
  description = "Kubernetes TLS secret (tls.crt, tls.key, ca.crt) in the namespace, created by the operator or cert-manager."
  type        = string
  default     = "openbao-tls"
}

variable "storage_size" {
  description = "Size of each Raft data volume."
  type        = string
  default     = "10Gi"
}

variable "storage_class" {
  description = "Storage class of the Raft volumes (an encrypted class, e.g. gp3 with encrypted=true)."
  type        = string
  default     = "gp3-encrypted"
}

variable "resources" {
  description = "CPU and memory requests and limits of each OpenBao server pod."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "250m", memory = "256Mi" }
    limits   = { cpu = "1", memory = "512Mi" }
  }
}

variable "client_namespaces" {
  description = "Namespaces whose pods may call the OpenBao API on 8200 (the control plane's)."
  type        = list(string)
  default     = ["controlplane"]
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
