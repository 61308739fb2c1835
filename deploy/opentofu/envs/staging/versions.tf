terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70, < 6.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.15, < 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 3.0"
    }
  }

  # State lives in an S3 bucket and a DynamoDB lock table that the operator creates once by hand
  # (README.md). No credentials here: the AWS SDK chain (SSO profile, CI role) provides them.
  # Override the names per account with: tofu init -backend-config="bucket=..." -backend-config="region=...".
  backend "s3" {
    bucket         = "controlplane-tofu-state"
    key            = "staging/controlplane.tfstate"
    region         = "eu-west-1"
    encrypt        = true
    dynamodb_table = "controlplane-tofu-locks"
  }
}
