variable "region" {
  description = "AWS region of this environment."
  type        = string
  default     = "eu-west-1"
}

variable "tags" {
  description = "Extra tags for every AWS resource (Project, Environment and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
  default     = "10.20.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones of the subnets (and so of Multi-AZ PostgreSQL and Redis); they must belong to var.region."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway instead of one per AZ."
  type        = bool
  default     = true
}

variable "eks_cluster_name" {
  description = "Name of the existing EKS cluster (in module.network's VPC) the workloads run on."
  type        = string
}

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider, for OpenBao's IRSA role."
  type        = string
}

variable "eks_oidc_provider_url" {
  description = "Issuer of the EKS cluster's OIDC provider, without https://."
  type        = string
}

variable "image_repository" {
  description = "Control plane image repository (no tag)."
  type        = string
}

variable "image_digest" {
  description = "Digest of the control plane image to run (sha256:...)."
  type        = string
}

variable "db_instance_class" {
  description = "RDS instance class of PostgreSQL."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Initial PostgreSQL storage in GiB."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage_gb" {
  description = "PostgreSQL storage autoscaling ceiling in GiB."
  type        = number
  default     = 100
}

variable "db_backup_retention_days" {
  description = "Days of PostgreSQL backups (and point-in-time recovery window)."
  type        = number
  default     = 7
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes (one primary, the rest replicas in other AZs)."
  type        = number
  default     = 2
}

variable "redis_snapshot_retention_days" {
  description = "Days of Redis snapshots kept."
  type        = number
  default     = 3
}

variable "redis_auth_token" {
  description = "Redis AUTH token. Never in a file: export TF_VAR_redis_auth_token from the secret store before plan/apply."
  type        = string
  sensitive   = true
}

variable "openbao_storage_size" {
  description = "Raft volume size of each OpenBao pod."
  type        = string
  default     = "5Gi"
}

variable "api_replicas" {
  description = "Autoscaling bounds of the API."
  type        = object({ min = number, max = number })
  default     = { min = 2, max = 4 }
}

variable "worker_replicas" {
  description = "Autoscaling bounds of the Celery workers."
  type        = object({ min = number, max = number })
  default     = { min = 1, max = 3 }
}

variable "worker_concurrency" {
  description = "Celery processes per worker pod."
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
    requests = { cpu = "100m", memory = "256Mi" }
    limits   = { cpu = "500m", memory = "512Mi" }
  }
}

variable "worker_resources" {
  description = "Requests and limits of a Celery worker container."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "100m", memory = "256Mi" }
    limits   = { cpu = "500m", memory = "512Mi" }
  }
}

variable "ingress_namespaces" {
  description = "Namespaces of the ingress controller allowed to reach the API."
  type        = list(string)
  default     = ["ingress-nginx"]
}

variable "monitoring_namespace" {
  description = "Namespace of Prometheus (receives the scrape config, may scrape the pods)."
  type        = string
  default     = "monitoring"
}
