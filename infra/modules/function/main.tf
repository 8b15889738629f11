# One Lambda function (a `functions/<name>` binary) with its own role, log group and JSON logs.

variable "name" {
  description = "Function name."
  type        = string
}

variable "description" {
  description = "What the function does."
  type        = string
}

variable "zip_path" {
  description = "The function's bootstrap.zip (cargo lambda build --release --arm64 --output-format zip)."
  type        = string
}

variable "environment" {
  description = "Environment variables of the function."
  type        = map(string)
}

variable "policy_json" {
  description = "IAM policy document of what the function itself uses (its own logging is added here)."
  type        = string
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 60
}

variable "memory_size" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
  default     = 512
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 for none."
  type        = number
  default     = -1
}

variable "vpc_subnet_ids" {
  description = "Subnets to run in (to reach sources inside a VPC); empty for no VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function's network interfaces when vpc_subnet_ids is set."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = var.name
  description        = "Runs the ${var.name} Lambda"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "vpc" {
  count      = length(var.vpc_subnet_ids) > 0 ? 1 : 0
  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Log lines carry no secrets (DESIGN.md section 5: passwords never reach a log line); the default CloudWatch encryption is kept to avoid a KMS key per environment.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); operational logs of a migration are not kept for a year by default.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "logs" {
  source_policy_documents = [var.policy_json]

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "${var.name}-access"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.logs.json
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:The VPC is optional (vpc_subnet_ids, a dynamic block checkov does not evaluate): sources reachable over TLS need none, and compare and poll-status only call AWS APIs.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by Step Functions and the scheduler, which retry and record failures themselves; an async dead-letter queue would never receive anything.
  #checkov:skip=CKV_AWS_173:The environment holds resource names; the one secret, the api function's page-token key, is encrypted at rest with the Lambda service key and readable only by who may read the function configuration (moving it to Secrets Manager is a noted follow-up).
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile per account; zips come from the deploy workflow's own build.
  #checkov:skip=CKV_AWS_50:X-Ray is not used; Step Functions execution history and the JSON logs trace a run.
  function_name    = var.name
  description      = var.description
  role             = aws_iam_role.function.arn
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  timeout          = var.timeout
  memory_size      = var.memory_size

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = var.environment
  }

  dynamic "vpc_config" {
    for_each = length(var.vpc_subnet_ids) > 0 ? [1] : []

    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function.name
    application_log_level = "INFO"
    system_log_level      = "WARN"
  }

  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy_attachment.vpc]
}

output "arn" {
  description = "Function ARN."
  value       = aws_lambda_function.function.arn
}

output "name" {
  description = "Function name."
  value       = aws_lambda_function.function.function_name
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.function.arn
}

output "invoke_arn" {
  description = "ARN API Gateway invokes the function with."
  value       = aws_lambda_function.function.invoke_arn
}
