output "address" {
  description = "In-cluster address of the active OpenBao node (BAO_ADDR of the control plane)."
  value       = "https://openbao-active.${var.namespace}.svc:8200"
}

output "namespace" {
  description = "Namespace OpenBao runs in."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "unseal_kms_key_arn" {
  description = "KMS key that auto-unseals OpenBao."
  value       = aws_kms_key.unseal.arn
}

output "irsa_role_arn" {
  description = "IAM role the OpenBao service account assumes (kms:Encrypt/Decrypt/DescribeKey on the unseal key only)."
  value       = aws_iam_role.openbao.arn
}
