# The backstop: EventBridge Scheduler invokes poll-status every minute with {"action":"sweep"},
# which converges every PROCESSING run whose execution has ended.

variable "name" {
  description = "Schedule (and role) name."
  type        = string
}

variable "function_arn" {
  description = "ARN of the poll-status function."
  type        = string
}

variable "enabled" {
  description = "Whether the schedule runs."
  type        = bool
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "Lets EventBridge Scheduler invoke poll-status"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "invoke" {
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [var.function_arn, "${var.function_arn}:*"]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-invoke"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.invoke.json
}

resource "aws_scheduler_schedule" "sweep" {
  #checkov:skip=CKV_AWS_297:The schedule's only payload is {"action":"sweep"}; the AWS owned key is enough.
  name                = var.name
  description         = "poll-status sweep: converge PROCESSING runs with their executions"
  schedule_expression = "rate(1 minute)"
  state               = var.enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.function_arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ action = "sweep" })

    retry_policy {
      # A missed sweep is made up by the next one a minute later.
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}

output "name" {
  description = "Schedule name."
  value       = aws_scheduler_schedule.sweep.name
}
