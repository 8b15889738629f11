# The roles GitHub Actions assumes (OIDC, no stored keys): the deploy role (deploy.yml), which
# acts only on resources named with the stack's prefix, and the run role (migrate.yml), which
# may only start and follow migration runs. Only jobs of one repository running in one GitHub
# environment can assume either.

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

variable "run_policy_json" {
  description = "IAM policy document of what starting and following a run calls (the run role's)."
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
    actions = ["dynamodb:*", "lambda:*", "states:*", "scheduler:*", "logs:*", "cloudwatch:*"]
    resources = [
      "arn:${local.partition}:cloudwatch:${local.arn_tail}:alarm:${local.prefix}-*",
      "arn:${local.partition}:dynamodb:${local.arn_tail}:table/${local.prefix}-*",
      "arn:${local.partition}:lambda:${local.arn_tail}:function:${local.prefix}-*",
      "arn:${local.partition}:states:${local.arn_tail}:stateMachine:${local.prefix}-*",
      "arn:${local.partition}:scheduler:${local.arn_tail}:schedule/default/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws/lambda/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws/vendedlogs/states/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws/vendedlogs/apigateway/${local.prefix}-*",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws-dynamodb/imports",
      "arn:${local.partition}:logs:${local.arn_tail}:log-group:/aws-dynamodb/imports:*",
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

  # Only the one managed policy the function module attaches to functions in a VPC.
  statement {
    sid       = "StackRoleVpcPolicy"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/${local.prefix}-*"]

    condition {
      test     = "ArnEquals"
      variable = "iam:PolicyARN"
      values   = ["arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]
    }
  }

  statement {
    sid = "OidcProvider"
    actions = [
      "iam:GetOpenIDConnectProvider", "iam:ListOpenIDConnectProviderTags",
      "iam:TagOpenIDConnectProvider", "iam:UntagOpenIDConnectProvider",
    ]
    resources = [local.oidc_provider_arn]
  }

  # HTTP API ids are random, so the API and its parts cannot be named by prefix: the role may
  # manage HTTP APIs of this region (the stack's one, in practice).
  statement {
    sid     = "HttpApi"
    actions = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"]
    resources = [
      "arn:${local.partition}:apigateway:${local.region}::/apis",
      "arn:${local.partition}:apigateway:${local.region}::/apis/*",
      "arn:${local.partition}:apigateway:${local.region}::/tags/*",
    ]
  }

  # Access logging of the API's stage and logging of the state machines go through CloudWatch
  # Logs' log delivery API as the caller; its actions take no resource ARN.
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
    ]
    resources = ["*"]
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
      # Lambda checks the subnets and security groups of a function in a VPC as the caller.
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "${local.prefix}-github-deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

resource "aws_iam_role" "run" {
  name                 = "${local.prefix}-github-run"
  description          = "GitHub Actions starts and follows ${local.prefix} runs from ${var.github_repository} (${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 43200
}

resource "aws_iam_role_policy" "run" {
  name   = "${local.prefix}-github-run"
  role   = aws_iam_role.run.id
  policy = var.run_policy_json
}

output "role_arn" {
  description = "ARN of the deploy role (the AWS_DEPLOY_ROLE_ARN secret of the GitHub environment)."
  value       = aws_iam_role.deploy.arn
}

output "run_role_arn" {
  description = "ARN of the run role (the FERRY_RUN_ROLE_ARN secret of the GitHub environment)."
  value       = aws_iam_role.run.arn
}
