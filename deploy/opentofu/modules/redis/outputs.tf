output "primary_endpoint" {
  description = "Hostname of the primary (the operator builds REDIS_URL as rediss://:<token>@<host>:6379/0 from it)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Port Redis listens on (TLS)."
  value       = aws_elasticache_replication_group.this.port
}

output "security_group_id" {
  description = "Security group of the replication group."
  value       = aws_security_group.this.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the cache at rest and its logs."
  value       = aws_kms_key.this.arn
}
