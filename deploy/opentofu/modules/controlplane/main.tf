# The control plane on Kubernetes: the API, the Celery workers and exactly one Celery beat.
#
# No secret value lives here. Credentials come from one Kubernetes secret (var.runtime_secret_name) that
# the operator creates before the first apply (see README.md); the pods only reference its keys.

locals {
  image = "${var.image_repository}@${var.image_digest}"

  labels = {
    "app.kubernetes.io/name"       = "controlplane"
    "app.kubernetes.io/part-of"    = "controlplane"
    "app.kubernetes.io/managed-by" = "opentofu"
  }

  metrics_dir = "/var/run/prometheus"

  # Plain configuration, identical for the API, the workers and beat.
  env = {
    CONTROLPLANE_ENV         = "production"
    BAO_ADDR                 = var.bao_addr
    PROMETHEUS_MULTIPROC_DIR = local.metrics_dir
    # uvicorn --proxy-headers believes X-Forwarded-For from these only; production refuses to start without.
    FORWARDED_ALLOW_IPS = join(",", var.trusted_proxy_cidrs)
  }

  # Environment variable -> key of the operator-created secret. Settings.from_env reads these.
  secret_env = {
    DATABASE_URL   = "database-url"
    REDIS_URL      = "redis-url"
    BAO_ROLE_ID    = "bao-role-id"
    BAO_SECRET_ID  = "bao-secret-id"
    STRIPE_API_KEY = "stripe-api-key"
  }

  celery = ["python", "-m", "celery", "-A", "workers.celery_app"]
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = merge(local.labels, {
      "pod-security.kubernetes.io/enforce" = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    })
  }
}

# The pods never call the Kubernetes API, so they get an identity but no token.
resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = "controlplane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  automount_service_account_token = false
}

# ----------------------------------------------------------------------------------------------------
# API
# ----------------------------------------------------------------------------------------------------

resource "kubernetes_deployment_v1" "api" {
  metadata {
    name      = "controlplane-api"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "api" })
  }

  spec {
    replicas = var.api_replicas.min

    selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
    }

    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "25%"
        max_unavailable = "0"
      }
    }

    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/component" = "api" })
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = 30

        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.run_as_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
          }
        }

        container {
          name              = "api"
          image             = local.image
          image_pull_policy = "Always"
          command = [
            "python", "-m", "uvicorn", "--factory", "controlplane.app:create_app_from_env",
            "--host", "0.0.0.0", "--port", "8000", "--workers", tostring(var.api_processes),
            "--proxy-headers", "--no-server-header",
          ]

          port {
            name           = "http"
            container_port = 8000
            protocol       = "TCP"
          }

          dynamic "env" {
            for_each = local.env
            content {
              name  = env.key
              value = env.value
            }
          }

          dynamic "env" {
            for_each = local.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = var.runtime_secret_name
                  key  = env.value
                }
              }
            }
          }

          readiness_probe {
            http_get {
              path = "/health/ready"
              port = "http"
            }
            period_seconds    = 10
            timeout_seconds   = 5
            failure_threshold = 3
          }

          liveness_probe {
            http_get {
              path = "/health/live"
              port = "http"
            }
            initial_delay_seconds = 10
            period_seconds        = 20
            timeout_seconds       = 5
            failure_threshold     = 3
          }

          resources {
            requests = var.api_resources.requests
            limits   = var.api_resources.limits
          }

          security_context {
            allow_privilege_escalation = false
            privileged                 = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = var.run_as_user
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "metrics"
            mount_path = local.metrics_dir
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "64Mi"
          }
        }
        volume {
          name = "metrics"
          empty_dir {
            size_limit = "64Mi"
          }
        }
      }
    }
  }

  lifecycle {
    # The autoscaler owns the replica count once the Deployment exists.
    ignore_changes = [spec[0].replicas]
  }
}

resource "kubernetes_service_v1" "api" {
  metadata {
    name      = "controlplane-api"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "api" })
  }

  spec {
    type     = "ClusterIP"
    selector = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
    port {
      name        = "http"
      port        = 8000
      target_port = "http"
    }
  }
}

# Prometheus finds every API pod through this headless service's DNS (deploy/prometheus/prometheus.yml).
resource "kubernetes_service_v1" "api_headless" {
  metadata {
    name      = "controlplane-api-headless"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "api" })
  }

  spec {
    cluster_ip = "None"
    selector   = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
    port {
      name        = "http"
      port        = 8000
      target_port = "http"
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "api" {
  metadata {
    name      = "controlplane-api"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "api" })
  }

  spec {
    max_unavailable = "1"
    selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "api" {
  metadata {
    name      = "controlplane-api"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "api" })
  }

  spec {
    min_replicas = var.api_replicas.min
    max_replicas = var.api_replicas.max

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.api.metadata[0].name
    }

    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = 70
        }
      }
    }
  }
}

# ----------------------------------------------------------------------------------------------------
# Celery workers
# ----------------------------------------------------------------------------------------------------

resource "kubernetes_deployment_v1" "worker" {
  metadata {
    name      = "controlplane-worker"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "worker" })
  }

  spec {
    replicas = var.worker_replicas.min

    selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "worker" }
    }

    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/component" = "worker" })
      }

      spec {
        service_account_name            = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token = false
        # Celery finishes the task in hand on SIGTERM (tasks are acks_late and idempotent if cut short).
        termination_grace_period_seconds = 300

        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.run_as_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "worker" }
          }
        }

        container {
          name              = "worker"
          image             = local.image
          image_pull_policy = "Always"
          command = concat(local.celery, [
            "worker", "--loglevel", "INFO", "--concurrency", tostring(var.worker_concurrency),
          ])

          port {
            name           = "metrics"
            container_port = 9808
            protocol       = "TCP"
          }

          env {
            name  = "CONTROLPLANE_WORKER_METRICS_PORT"
            value = "9808"
          }

          dynamic "env" {
            for_each = local.env
            content {
              name  = env.key
              value = env.value
            }
          }

          dynamic "env" {
            for_each = local.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = var.runtime_secret_name
                  key  = env.value
                }
              }
            }
          }

          # A worker is alive and ready when it answers a ping addressed to it through the broker.
          readiness_probe {
            exec {
              command = ["sh", "-c", "exec python -m celery -A workers.celery_app inspect ping --timeout 10 --destination celery@$HOSTNAME"]
            }
            initial_delay_seconds = 15
            period_seconds        = 60
            timeout_seconds       = 20
            failure_threshold     = 3
          }

          liveness_probe {
            exec {
              command = ["sh", "-c", "exec python -m celery -A workers.celery_app inspect ping --timeout 10 --destination celery@$HOSTNAME"]
            }
            initial_delay_seconds = 60
            period_seconds        = 60
            timeout_seconds       = 20
            failure_threshold     = 5
          }

          resources {
            requests = var.worker_resources.requests
            limits   = var.worker_resources.limits
          }

          security_context {
            allow_privilege_escalation = false
            privileged                 = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = var.run_as_user
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "metrics"
            mount_path = local.metrics_dir
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "256Mi"
          }
        }
        volume {
          name = "metrics"
          empty_dir {
            size_limit = "64Mi"
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [spec[0].replicas]
  }
}

resource "kubernetes_service_v1" "worker_headless" {
  metadata {
    name      = "controlplane-worker-headless"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "worker" })
  }

  spec {
    cluster_ip = "None"
    selector   = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "worker" }
    port {
      name        = "metrics"
      port        = 9808
      target_port = "metrics"
    }
  }
}

# CPU is a proxy for queue depth; scaling on the Redis queue length would need KEDA or an external metric.
resource "kubernetes_horizontal_pod_autoscaler_v2" "worker" {
  metadata {
    name      = "controlplane-worker"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "worker" })
  }

  spec {
    min_replicas = var.worker_replicas.min
    max_replicas = var.worker_replicas.max

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.worker.metadata[0].name
    }

    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = 70
        }
      }
    }
  }
}

# ----------------------------------------------------------------------------------------------------
# Celery beat: exactly one
# ----------------------------------------------------------------------------------------------------

# Beat must run exactly once: two schedulers would enqueue every periodic task twice (tasks are idempotent,
# but that is the last line of defence, not the design). So: one replica, no autoscaler, no PDB, and the
# Recreate strategy, which stops the old pod before starting the new one, so a rollout never overlaps two
# beats (RollingUpdate would start the new pod first). The schedule lives on an emptyDir: after a restart
# beat starts a fresh schedule, which at worst runs a due task once more (idempotent) rather than twice.
resource "kubernetes_deployment_v1" "beat" {
  # checkov:skip=CKV_K8S_8: celery beat serves no endpoint and answers no ping; a crash exits the process and Kubernetes restarts it.
  # checkov:skip=CKV_K8S_9: beat receives no traffic (no Service), so readiness would gate nothing.
  metadata {
    name      = "controlplane-beat"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = merge(local.labels, { "app.kubernetes.io/component" = "beat" })
  }

  spec {
    replicas = 1

    strategy {
      type = "Recreate"
    }

    selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "beat" }
    }

    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/component" = "beat" })
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = 30

        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.run_as_user
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name              = "beat"
          image             = local.image
          image_pull_policy = "Always"
          command = concat(local.celery, [
            "beat", "--loglevel", "INFO", "--schedule", "/var/run/celery/celerybeat-schedule",
          ])

          dynamic "env" {
            for_each = local.env
            content {
              name  = env.key
              value = env.value
            }
          }

          dynamic "env" {
            for_each = local.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = var.runtime_secret_name
                  key  = env.value
                }
              }
            }
          }

          resources {
            requests = var.beat_resources.requests
            limits   = var.beat_resources.limits
          }

          security_context {
            allow_privilege_escalation = false
            privileged                 = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = var.run_as_user
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "schedule"
            mount_path = "/var/run/celery"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "metrics"
            mount_path = local.metrics_dir
          }
        }

        volume {
          name = "schedule"
          empty_dir {
            size_limit = "16Mi"
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "64Mi"
          }
        }
        volume {
          name = "metrics"
          empty_dir {
            size_limit = "16Mi"
          }
        }
      }
    }
  }
}

# ----------------------------------------------------------------------------------------------------
# Network policy: nothing reaches these pods except the ingress controller (API) and Prometheus.
# Egress stays open: PostgreSQL, Redis, OpenBao and Stripe are reached over TLS with credentials.
# ----------------------------------------------------------------------------------------------------

resource "kubernetes_network_policy_v1" "default_deny" {
  metadata {
    name      = "default-deny-ingress"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }

  spec {
    pod_selector {}
    policy_types = ["Ingress"]
  }
}

resource "kubernetes_network_policy_v1" "api" {
  metadata {
    name      = "controlplane-api-ingress"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }

  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "api" }
    }
    policy_types = ["Ingress"]

    ingress {
      from {
        namespace_selector {
          match_expressions {
            key      = "kubernetes.io/metadata.name"
            operator = "In"
            values   = concat(var.ingress_namespaces, [var.monitoring_namespace])
          }
        }
      }
      ports {
        port     = "8000"
        protocol = "TCP"
      }
    }
  }
}

resource "kubernetes_network_policy_v1" "worker_metrics" {
  metadata {
    name      = "controlplane-worker-metrics"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }

  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "controlplane", "app.kubernetes.io/component" = "worker" }
    }
    policy_types = ["Ingress"]

    ingress {
      from {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = var.monitoring_namespace }
        }
      }
      ports {
        port     = "9808"
        protocol = "TCP"
      }
    }
  }
}
