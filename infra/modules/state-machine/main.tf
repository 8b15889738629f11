# One Step Functions state machine from statemachines/<file> with its own role and log group.

variable "name" {
  description = "State machine name."
  type        = string
}

variable "definition_file" {
  description = "Path of the *.asl.json definition."
  type        = string
}

variable "placeholders" {
  description = "Values of the definition's $${Name} placeholders (templatefile variables)."
  type        = map(string)
}

variable "policy_json" {
  description = "IAM policy document of what the machine's tasks call."
  type        = string
}

variable "log_level" {
  description = "Logging level: ALL, ERROR, FATAL or OFF."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the machine's log group, in days."
  type        = number
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "machine" {
  name               = "${var.name}-sfn"
  description        = "Runs the ${var.name} state machine"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_cloudwatch_log_group" "machine" {
  #checkov:skip=CKV_AWS_158:Execution data is not logged (include_execution_data = false), so the log holds state names and errors only; default CloudWatch encryption is kept.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); operational logs of a migration are not kept for a year by default.
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "machine" {
  source_policy_documents = [var.policy_json]

  # Step Functions delivers logs through CloudWatch Logs' log delivery API, whose actions
  # take no resource ARN: AWS documents Resource "*" for them.
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "machine" {
  name   = "${var.name}-access"
  role   = aws_iam_role.machine.id
  policy = data.aws_iam_policy_document.machine.json
}

resource "aws_sfn_state_machine" "machine" {
  #checkov:skip=CKV_AWS_284:X-Ray is not used; the execution history and the log group trace a run.
  #checkov:skip=CKV_AWS_285:Execution data (step inputs and outputs, which include verification samples of row keys) stays in the execution history; the log group gets state transitions and errors only.
  name       = var.name
  role_arn   = aws_iam_role.machine.arn
  type       = "STANDARD"
  definition = templatefile(var.definition_file, var.placeholders)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.machine.arn}:*"
    include_execution_data = false
    level                  = var.log_level
  }

  depends_on = [aws_iam_role_policy.machine]
}

output "arn" {
  description = "State machine ARN."
  value       = aws_sfn_state_machine.machine.arn
}

output "name" {
  description = "State machine name."
  value       = aws_sfn_state_machine.machine.name
}
