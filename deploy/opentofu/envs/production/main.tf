# The production control plane: network, PostgreSQL, Redis, OpenBao, the application and its monitoring.

locals {
  name = "controlplane-production"
}

module "network" {
  source = "../../modules/network"

  name               = local.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
}

module "postgres" {
  source = "../../modules/postgres"

  name                     = local.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  allowed_cidr_blocks      = module.network.private_subnet_cidrs
  instance_class           = var.db_instance_class
  allocated_storage_gb     = var.db_allocated_storage_gb
  max_allocated_storage_gb = var.db_max_allocated_storage_gb
  backup_retention_days    = var.db_backup_retention_days
}

module "redis" {
  source = "../../modules/redis"

  name                    = local.name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.private_subnet_ids
  allowed_cidr_blocks     = module.network.private_subnet_cidrs
  node_type               = var.redis_node_type
  num_cache_clusters      = var.redis_num_cache_clusters
  auth_token              = var.redis_auth_token
  snapshot_retention_days = var.redis_snapshot_retention_days
}

module "openbao" {
  source = "../../modules/openbao"

  name              = local.name
  oidc_provider_arn = var.eks_oidc_provider_arn
  oidc_provider_url = var.eks_oidc_provider_url
  storage_size      = var.openbao_storage_size
  client_namespaces = ["controlplane"]
}

module "controlplane" {
  source = "../../modules/controlplane"

  image_repository   = var.image_repository
  image_digest       = var.image_digest
  bao_addr           = module.openbao.address
  api_replicas       = var.api_replicas
  worker_replicas    = var.worker_replicas
  worker_concurrency = var.worker_concurrency
  api_resources      = var.api_resources
  worker_resources   = var.worker_resources
  ingress_namespaces = var.ingress_namespaces
  # The ingress controller's pods take addresses of the private subnets (EKS VPC CNI); only they (and
  # Prometheus) may reach the API (its network policy).
  trusted_proxy_cidrs  = module.network.private_subnet_cidrs
  monitoring_namespace = var.monitoring_namespace
}

module "monitoring" {
  source = "../../modules/monitoring"

  namespace = var.monitoring_namespace
}
