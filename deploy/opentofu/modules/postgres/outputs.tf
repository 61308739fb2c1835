output "endpoint" {
  description = "host:port of the writer endpoint (the operator builds DATABASE_URL from it)."
  value       = aws_db_instance.this.endpoint
}

output "address" {
  description = "Hostname of the writer endpoint."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port PostgreSQL listens on."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Name of the initial database."
  value       = aws_db_instance.this.db_name
}

output "master_user_secret_arn" {
  description = "Secrets Manager ARN of the RDS-managed master password (never in state)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}

output "kms_key_arn" {
  description = "KMS key encrypting storage, snapshots, Performance Insights and logs."
  value       = aws_kms_key.this.arn
}
