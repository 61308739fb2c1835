output "vpc_id" {
  description = "VPC to create the EKS cluster in."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets for the EKS node groups."
  value       = module.network.private_subnet_ids
}

output "postgres_endpoint" {
  description = "PostgreSQL writer endpoint (host:port) for DATABASE_URL."
  value       = module.postgres.endpoint
}

output "postgres_master_user_secret_arn" {
  description = "Secrets Manager ARN of the RDS-managed master password."
  value       = module.postgres.master_user_secret_arn
}

output "redis_primary_endpoint" {
  description = "Redis primary endpoint for REDIS_URL (rediss://)."
  value       = module.redis.primary_endpoint
}

output "bao_addr" {
  description = "OpenBao address the control plane uses."
  value       = module.openbao.address
}

output "controlplane_runtime_secret" {
  description = "Kubernetes secret (namespace controlplane) the operator must create before the pods start."
  value       = module.controlplane.runtime_secret_name
}
