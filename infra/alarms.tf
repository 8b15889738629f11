# Alarms an operator acts on (docs/operations.md, "Alarms", says what each means and what to do).
# Each goes to alarm_topic_arn when it is set; without it they only show in CloudWatch.

locals {
  alarm_actions = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}

# A migration run ended FAILED, TIMED_OUT or ABORTED (the machine's own catch records why).
resource "aws_cloudwatch_metric_alarm" "migration_failed" {
  for_each = toset(["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"])

  alarm_name          = "${local.prefix}-migration-${each.key}"
  alarm_description   = "A ${local.prefix}-migration execution ended with ${each.key}: see docs/operations.md, Alarms."
  namespace           = "AWS/States"
  metric_name         = each.key
  dimensions          = { StateMachineArn = module.state_machine["migration"].arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

# A function raised errors its callers may not retry away (the scheduled poll-status, the api).
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${local.prefix}-${each.key}-errors"
  alarm_description   = "The ${local.prefix}-${each.key} function reported errors: see docs/operations.md, Alarms."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = module.function[each.key].name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}
