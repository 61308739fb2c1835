variable "name" {
  description = "Identifier of the DB instance and prefix of its companion resources."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,50}$", var.name))
    error_message = "name must be 3-51 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC the database lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (at least two AZs) for the DB subnet group."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "A Multi-AZ instance needs subnets in at least two availability zones."
  }
}

variable "allowed_cidr_blocks" {
  description = "CIDRs allowed to connect on 5432 (the private subnets of the EKS nodes)."
  type        = list(string)

  validation {
    condition     = alltrue([for cidr in var.allowed_cidr_blocks : can(cidrnetmask(cidr)) && cidr != "0.0.0.0/0"])
    error_message = "allowed_cidr_blocks must be valid, private CIDRs (never 0.0.0.0/0)."
  }
}

variable "engine_version" {
  description = "PostgreSQL major version (RDS picks the minor and upgrades it in the maintenance window, so no minor here: it would fight the upgrades)."
  type        = string
  default     = "16"
}

variable "parameter_group_family" {
  description = "Parameter group family matching engine_version."
  type        = string
  default     = "postgres16"
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "allocated_storage_gb" {
  description = "Initial storage in GiB."
  type        = number
  default     = 50
}

variable "max_allocated_storage_gb" {
  description = "Upper bound for storage autoscaling in GiB."
  type        = number
  default     = 500

  validation {
    condition     = var.max_allocated_storage_gb >= 20
    error_message = "max_allocated_storage_gb must be at least 20."
  }
}

variable "database_name" {
  description = "Name of the initial database."
  type        = string
  default     = "controlplane"
}

variable "master_username" {
  description = "Master user name. Its password is generated and rotated by RDS in Secrets Manager; the application uses its own, non-owner role (RLS)."
  type        = string
  default     = "controlplane_admin"
}

variable "backup_retention_days" {
  description = "Days of automated backups kept; point-in-time recovery covers the same window."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "backup_window" {
  description = "Daily backup window (UTC)."
  type        = string
  default     = "02:00-03:00"
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC); must not overlap the backup window."
  type        = string
  default     = "sun:03:30-sun:04:30"
}

variable "log_min_duration_ms" {
  description = "Statements slower than this are logged (log_min_duration_statement)."
  type        = number
  default     = 500
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL logs, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least one year."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
