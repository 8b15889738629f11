# The role GitHub Actions assumes (OIDC, no stored keys) to deploy this stack: only jobs of one
# repository running in one GitHub environment can assume it, and it acts only on resources
# named with the stack's prefix.

variable "name_prefix" {
  description = "The stack's name prefix; the role manages resources so named only."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository allowed to assume the role."
  type        = string
}

variable "github_environment" {
  description = "GitHub environment whose jobs may assume the role."
  type        = string
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN; empty to create one."
  type        = string
}

variable "data_bucket_name" {
  description = "The stack's data bucket."
  type        = string
}

variable "terraform_state_bucket" {
  description = "The bucket holding the Terraform state."
  type        = string
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  prefix    = var.name_prefix
  arn_tail  = "${local.region}:${local.account}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count           = var.oidc_provider_arn == "" ? 1 : 0
  url             = "https://token.actions.githubusercontent.com"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
}

locals {
  oidc_provider_arn = var.oidc_provider_arn != "" ? var.oidc_provider_arn : aws_iam_openid_connect_provider.github[0].arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${local.prefix}-github-deploy"
  description          = "GitHub Actions deploys ${local.prefix} from ${var.github_repository} (${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid     = "TerraformState"
    actions = ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [
      "arn:${local.partition}:s3:::${var.terraform_state_bucket}",
      "arn:${local.partition}:s3:::${var.terraform_state_bucket}/*",
    ]
  }

  statement {
    sid     = "DataBucket"
    actions = ["s3:*"]
    resources = [
      "arn:${local.partition}:s3:::${var.data_bucket_name}",
      "arn:${local.partition}:s3:::${var.data_bucket_name}/*",
    ]
  }

  statement {
    sid     = "StackResources"
    actions = ["dynamodb:*", "lambda:*", "states:*", "scheduler:*", "logs:*"]
    resources = [
      "arn:${local.partition}:dynamodb:${local.arn_tail}:table/${local.prefix}-*",
      "arn:${local.partition}:lambda:${local.arn_tail}:function:${local.prefix}-*",
      "arn:${local.partition}:states:${local.arn_tail}:stateMachine:${local.prefix}-*",
      "arn:${local.partition}:scheduler:${local.arn_tail}:schedule/default/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws/lambda/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws/vendedlogs/states/${local.prefix}-*",
    ]
  }

  statement {
    sid = "StackRoles"
    actions = [
      "iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole",
      "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
      "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:PassRole",
    ]
    resources = ["arn:${local.partition}:iam::${local.account}:role/${local.prefix}-*"]
  }

  statement {
    sid       = "OidcProvider"
    actions   = ["iam:GetOpenIDConnectProvider", "iam:ListOpenIDConnectProviderTags"]
    resources = [local.oidc_provider_arn]
  }

  # Describe/List calls of these services take no resource ARN.
  statement {
    sid = "ReadOnlyListing"
    actions = [
      "logs:DescribeLogGroups",
      "lambda:ListFunctions",
      "states:ListStateMachines",
      "states:ValidateStateMachineDefinition",
      "scheduler:ListSchedules",
      "sts:GetCallerIdentity",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "${local.prefix}-github-deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

output "role_arn" {
  description = "ARN of the deploy role (the AWS_DEPLOY_ROLE_ARN variable of the GitHub environment)."
  value       = aws_iam_role.deploy.arn
}
