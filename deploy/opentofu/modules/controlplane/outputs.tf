output "namespace" {
  description = "Namespace of the control plane."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "api_service" {
  description = "In-cluster address of the API service (target of the ingress)."
  value       = "${kubernetes_service_v1.api.metadata[0].name}.${kubernetes_namespace_v1.this.metadata[0].name}.svc:8000"
}

output "runtime_secret_name" {
  description = "Secret the operator must create in the namespace before the pods can start."
  value       = var.runtime_secret_name
}

output "beat_deployment" {
  description = "Name of the single Celery beat Deployment."
  value       = kubernetes_deployment_v1.beat.metadata[0].name
}
