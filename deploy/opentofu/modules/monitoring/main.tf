# Prometheus configuration of the control plane, taken verbatim from the repository's checked files
# (deploy/prometheus, validated and unit-tested by promtool in `make test`), so what is tested is what runs.
#
# Mount it in the Prometheus pod at /etc/prometheus with the rules under rules/, as prometheus.yml expects:
#   volume { config_map { name = "controlplane-prometheus"
#     items { key = "prometheus.yml"          path = "prometheus.yml" }
#     items { key = "controlplane.rules.yml"  path = "rules/controlplane.rules.yml" } } }

locals {
  repo_deploy = "${path.module}/../../.."
  labels = {
    "app.kubernetes.io/part-of"    = "controlplane"
    "app.kubernetes.io/managed-by" = "opentofu"
  }
}

resource "kubernetes_config_map_v1" "prometheus" {
  metadata {
    name      = var.config_map_name
    namespace = var.namespace
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "prometheus-config" })
  }

  data = {
    "prometheus.yml"         = file("${local.repo_deploy}/prometheus/prometheus.yml")
    "controlplane.rules.yml" = file("${local.repo_deploy}/prometheus/rules/controlplane.rules.yml")
  }
}

resource "kubernetes_config_map_v1" "grafana_dashboard" {
  count = var.grafana_dashboard ? 1 : 0

  metadata {
    name      = "controlplane-grafana-dashboard"
    namespace = var.namespace
    labels    = merge(local.labels, { grafana_dashboard = "1" })
  }

  data = {
    "controlplane.json" = file("${local.repo_deploy}/grafana/controlplane.json")
  }
}
