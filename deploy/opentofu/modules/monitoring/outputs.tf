output "prometheus_config_map" {
  description = "namespace/name of the ConfigMap with prometheus.yml and controlplane.rules.yml."
  value       = "${var.namespace}/${kubernetes_config_map_v1.prometheus.metadata[0].name}"
}

output "rules_sha256" {
  description = "Hash of the rules file, to roll the Prometheus pod when the rules change (pod annotation)."
  value       = sha256(kubernetes_config_map_v1.prometheus.data["controlplane.rules.yml"])
}
