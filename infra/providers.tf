provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "ferry:environment" = var.environment
      "ferry:managed-by"  = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}
