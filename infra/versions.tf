terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Remote state: `terraform init -backend-config=...` names the bucket, key and region
  # (see docs/operations.md). Locking uses the S3 lock file (Terraform >= 1.10).
  backend "s3" {}
}
