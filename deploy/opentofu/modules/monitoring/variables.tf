variable "namespace" {
  description = "Namespace Prometheus runs in (must exist; usually the kube-prometheus or Prometheus chart's)."
  type        = string
  default     = "monitoring"
}

variable "config_map_name" {
  description = "Name of the ConfigMap holding prometheus.yml and the control plane's rules."
  type        = string
  default     = "controlplane-prometheus"
}

variable "grafana_dashboard" {
  description = "Also ship deploy/grafana/controlplane.json as a ConfigMap labelled for the Grafana sidecar."
  type        = bool
  default     = true
}
