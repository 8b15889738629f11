# What each state machine's tasks call.

locals {
  # Tables that runs import into and export from.
  target_table_arn = local.target_table_arns[0]
}

data "aws_iam_policy_document" "sfn_migration" {
  statement {
    sid     = "InvokeFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = flatten([
      for f in ["check-clone", "compare", "poll-status"] :
      [module.function[f].arn, "${module.function[f].arn}:*"]
    ])
  }

  statement {
    sid     = "StartChildren"
    actions = ["states:StartExecution"]
    resources = [
      for name in ["clone", "bootstrap", "dynamodb-import", "dynamodb-export", "verify", "cleanup"] :
      local.machine_arn[name]
    ]
  }

  statement {
    sid     = "WatchChildren"
    actions = ["states:DescribeExecution", "states:StopExecution"]
    resources = [
      for name in ["clone", "bootstrap", "dynamodb-import", "dynamodb-export", "verify", "cleanup"] :
      local.execution_arns[name]
    ]
  }

  # startExecution.sync learns of a child's end through this managed EventBridge rule.
  statement {
    sid       = "SyncRule"
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]
  }
}

data "aws_iam_policy_document" "sfn_clone" {
  statement {
    sid       = "InvokeCheckClone"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.function["check-clone"].arn, "${module.function["check-clone"].arn}:*"]
  }
}

data "aws_iam_policy_document" "sfn_bootstrap" {
  statement {
    sid     = "InvokeFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = flatten([
      for f in ["plan", "bootstrap"] : [module.function[f].arn, "${module.function[f].arn}:*"]
    ])
  }

  # The Distributed Map reads the chunk list (ItemReader) and writes its results (ResultWriter).
  statement {
    sid       = "MapObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = [local.runs_objects_arn]
  }

  # ... and runs its items as child executions of this machine.
  statement {
    sid       = "MapRuns"
    actions   = ["states:StartExecution"]
    resources = [local.machine_arn["bootstrap"]]
  }

  statement {
    sid       = "MapRunExecutions"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.map_run_execution_arns["bootstrap"]]
  }

  # The EMR Serverless engine (only when emr_jar_prefixes is set): find the application by
  # name, run the job (.sync: the job run's events come through a rule Step Functions manages),
  # and pass the job's execution role to EMR Serverless only.
  dynamic "statement" {
    for_each = length(var.emr_jar_prefixes) > 0 ? [1] : []
    content {
      sid       = "EmrListApplications"
      actions   = ["emr-serverless:ListApplications"]
      resources = ["arn:${local.partition}:emr-serverless:${local.region}:${local.account}:/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.emr_jar_prefixes) > 0 ? [1] : []
    content {
      sid = "EmrJobRuns"
      actions = [
        "emr-serverless:GetApplication",
        "emr-serverless:StartJobRun",
        "emr-serverless:GetJobRun",
        "emr-serverless:CancelJobRun",
      ]
      resources = ["arn:${local.partition}:emr-serverless:${local.region}:${local.account}:/applications/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.emr_jar_prefixes) > 0 ? [1] : []
    content {
      sid       = "EmrSyncEvents"
      actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
      resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForEMRServerlessJobRule"]
    }
  }

  dynamic "statement" {
    for_each = length(var.emr_jar_prefixes) > 0 && length(var.emr_execution_role_arns) > 0 ? [1] : []
    content {
      sid       = "EmrPassExecutionRole"
      actions   = ["iam:PassRole"]
      resources = var.emr_execution_role_arns
      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["emr-serverless.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "sfn_verify" {
  statement {
    sid       = "InvokeCompare"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.function["compare"].arn, "${module.function["compare"].arn}:*"]
  }

  statement {
    sid       = "MapObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = [local.runs_objects_arn]
  }

  statement {
    sid       = "MapRuns"
    actions   = ["states:StartExecution"]
    resources = [local.machine_arn["verify"]]
  }

  statement {
    sid       = "MapRunExecutions"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.map_run_execution_arns["verify"]]
  }
}

data "aws_iam_policy_document" "sfn_import" {
  statement {
    sid = "ImportTables"
    actions = [
      "dynamodb:ImportTable", "dynamodb:DescribeImport", "dynamodb:DescribeTable",
      "dynamodb:TagResource", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive",
      "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeContinuousBackups",
      "dynamodb:EnableKinesisStreamingDestination", "dynamodb:DescribeKinesisStreamingDestination",
      # ImportTable creates the table with the caller's permissions and writes the items.
      "dynamodb:CreateTable", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateTable",
    ]
    resources = [local.target_table_arn, "${local.target_table_arn}/import/*"]
  }

  # ImportTable reads the chunks with the caller's permissions.
  statement {
    sid       = "ReadChunks"
    actions   = ["s3:GetObject"]
    resources = [local.runs_objects_arn]
  }

  statement {
    sid       = "ListChunks"
    actions   = ["s3:ListBucket"]
    resources = [module.data_bucket.arn]
  }

  # ImportTable logs its bad items to CloudWatch Logs as the caller.
  statement {
    sid = "ImportLogs"
    actions = [
      "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
      "logs:PutLogEvents", "logs:PutRetentionPolicy",
    ]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws-dynamodb/*"]
  }

  statement {
    sid       = "StreamingDestination"
    actions   = ["kinesis:DescribeStream", "kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
    resources = ["arn:${local.partition}:kinesis:${local.region}:${local.account}:stream/*"]
  }
}

data "aws_iam_policy_document" "sfn_export" {
  statement {
    sid = "ExportTables"
    actions = [
      "dynamodb:ExportTableToPointInTime", "dynamodb:DescribeExport", "dynamodb:DescribeTable",
      "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeContinuousBackups",
    ]
    resources = [local.target_table_arn, "${local.target_table_arn}/export/*"]
  }

  # The export writes its files with the caller's permissions.
  statement {
    sid       = "WriteExports"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl"]
    resources = [local.runs_objects_arn]
  }
}
