# OpenBao in HA: three Raft voters from the official chart, auto-unsealed by an AWS KMS key created here.
# The pods reach KMS through IRSA, with a role that may only Encrypt, Decrypt and DescribeKey on that key.
# Initialisation (`bao operator init`, recovery keys) stays a manual, audited step: see README.md.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  service_account = "openbao"
  tls_dir         = "/openbao/userconfig/${var.tls_secret_name}"
  server_config = templatefile("${path.module}/server.hcl.tftpl", {
    tls_dir    = local.tls_dir
    replicas   = var.replicas
    region     = data.aws_region.current.name
    kms_key_id = aws_kms_key.unseal.key_id
  })
}

# --- Auto-unseal key and the narrow role that uses it ---

resource "aws_kms_key" "unseal" {
  description         = "${var.name} OpenBao auto-unseal"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = var.tags
}

resource "aws_kms_alias" "unseal" {
  name          = "alias/${var.name}-openbao-unseal"
  target_key_id = aws_kms_key.unseal.key_id
}

data "aws_iam_policy_document" "irsa_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${local.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "unseal" {
  statement {
    sid       = "UnsealWithThisKeyOnly"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.unseal.arn]
  }
}

resource "aws_iam_role" "openbao" {
  name               = "${var.name}-openbao-unseal"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "unseal" {
  name   = "kms-auto-unseal"
  role   = aws_iam_role.openbao.id
  policy = data.aws_iam_policy_document.unseal.json
}

# --- Kubernetes ---

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of"          = "controlplane"
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "helm_release" "openbao" {
  name       = "openbao"
  namespace  = kubernetes_namespace_v1.this.metadata[0].name
  repository = "https://openbao.github.io/openbao-helm"
  chart      = "openbao"
  version    = var.chart_version
  # Pods are ready only once OpenBao is initialised (`bao operator init`, a manual step): do not wait for them.
  wait = false

  values = [yamlencode({
    global = { tlsDisable = false }
    # The control plane authenticates with AppRole; no sidecar injection is needed.
    injector = { enabled = false }
    server = {
      resources = var.resources
      serviceAccount = {
        name        = local.service_account
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.openbao.arn }
      }
      extraEnvironmentVars = {
        BAO_CACERT = "${local.tls_dir}/ca.crt"
      }
      volumes      = [{ name = "tls", secret = { secretName = var.tls_secret_name } }]
      volumeMounts = [{ name = "tls", mountPath = local.tls_dir, readOnly = true }]
      statefulSet = {
        # Explicit so the namespace can enforce the "restricted" Pod Security Standard (mlock is disabled).
        securityContext = {
          pod = {
            runAsNonRoot   = true
            runAsUser      = 100
            runAsGroup     = 1000
            fsGroup        = 1000
            seccompProfile = { type = "RuntimeDefault" }
          }
          container = {
            allowPrivilegeEscalation = false
            capabilities             = { drop = ["ALL"] }
          }
        }
      }
      dataStorage = {
        enabled      = true
        size         = var.storage_size
        storageClass = var.storage_class
      }
      ha = {
        enabled  = true
        replicas = var.replicas
        raft = {
          enabled   = true
          setNodeId = true
          config    = local.server_config
        }
        disruptionBudget = { enabled = true }
      }
    }
  })]
}

# Only the control plane's namespaces reach the API; Raft (8201) and the API stay open between OpenBao pods.
resource "kubernetes_network_policy_v1" "openbao" {
  metadata {
    name      = "openbao-ingress"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "openbao" }
    }
    policy_types = ["Ingress"]

    ingress {
      from {
        namespace_selector {
          match_expressions {
            key      = "kubernetes.io/metadata.name"
            operator = "In"
            values   = var.client_namespaces
          }
        }
      }
      ports {
        port     = "8200"
        protocol = "TCP"
      }
    }

    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "openbao" }
        }
      }
      ports {
        port     = "8200"
        protocol = "TCP"
      }
      ports {
        port     = "8201"
        protocol = "TCP"
      }
    }
  }
}
