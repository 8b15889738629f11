# What each function may do: only the calls its handler makes (crates/handlers).

locals {
  state_table_arns = [module.state_table.arn, "${module.state_table.arn}/index/*"]
  runs_objects_arn = "${module.data_bucket.arn}/runs/*"
  secret_arn_base  = "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret"
  # Connection secrets (made through the API) get a random suffix from Secrets Manager.
  connection_secret_arns = ["${local.secret_arn_base}:${local.connection_secret_prefix}*"]
  source_secret_arns = concat(
    length(var.source_secret_arns) > 0 ? var.source_secret_arns : ["${local.secret_arn_base}:${local.prefix}/*"],
    local.connection_secret_arns,
  )
  rds_arn_base = "arn:${local.partition}:rds:${local.region}:${local.account}"
  # emr_jar_prefixes as {bucket, prefix}.
  emr_jar_locations = [
    for url in var.emr_jar_prefixes : regex("^s3://(?P<bucket>[^/]+)/?(?P<prefix>.*)$", url)
  ]
  # The tables migrations create (a connection test checks they do not exist yet).
  target_table_arns = ["arn:${local.partition}:dynamodb:${local.region}:${local.account}:table/${var.target_table_prefix}*"]
}

data "aws_iam_policy_document" "check_clone" {
  statement {
    sid = "StateLeases"
    actions = [
      "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
      "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
    ]
    resources = local.state_table_arns
  }

  statement {
    sid       = "SourceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.source_secret_arns
  }

  statement {
    sid = "AuroraClones"
    actions = [
      "rds:RestoreDBClusterToPointInTime", "rds:CreateDBInstance", "rds:DescribeDBClusters",
      "rds:DescribeDBInstances", "rds:AddTagsToResource", "rds:ListTagsForResource",
    ]
    resources = [
      "${local.rds_arn_base}:cluster:*",
      "${local.rds_arn_base}:db:*",
      "${local.rds_arn_base}:subgrp:*",
      "${local.rds_arn_base}:cluster-pg:*",
      "${local.rds_arn_base}:pg:*",
      "${local.rds_arn_base}:og:*",
    ]
  }

  # Deleting is allowed only on what carries ferry's clone tag; the handler checks the tag
  # value, the engine and the clone group on top.
  statement {
    sid       = "DeleteOnlyClones"
    actions   = ["rds:DeleteDBInstance", "rds:DeleteDBCluster"]
    resources = ["${local.rds_arn_base}:cluster:*", "${local.rds_arn_base}:db:*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/ferry:clone-of"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "plan_bootstrap" {
  statement {
    sid       = "StateRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = local.state_table_arns
  }

  statement {
    sid       = "RunObjectsWrite"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.runs_objects_arn]
  }

  statement {
    sid       = "SourceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.source_secret_arns
  }

  # The EMR Serverless engine: plan lists the JAR prefixes for the newest JAR.
  dynamic "statement" {
    for_each = local.emr_jar_locations
    content {
      sid       = "EmrJars${statement.key}"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${statement.value.bucket}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${statement.value.prefix}*"]
      }
    }
  }
}

data "aws_iam_policy_document" "compare" {
  statement {
    sid       = "StateRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = local.state_table_arns
  }

  statement {
    sid       = "RunObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.runs_objects_arn]
  }

  statement {
    sid       = "ListRuns"
    actions   = ["s3:ListBucket"]
    resources = [module.data_bucket.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["runs/*"]
    }
  }
}

data "aws_iam_policy_document" "poll_status" {
  statement {
    sid = "StateRuns"
    actions = [
      "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.state_table_arns
  }

  statement {
    sid       = "RunExecutions"
    actions   = ["states:DescribeExecution"]
    resources = [local.execution_arns["migration"]]
  }
}

data "aws_iam_policy_document" "test_connection" {
  statement {
    sid       = "StateRead"
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = local.state_table_arns
  }

  statement {
    sid       = "SourceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.source_secret_arns
  }

  statement {
    sid       = "TargetTablesAbsent"
    actions   = ["dynamodb:DescribeTable"]
    resources = local.target_table_arns
  }
}

data "aws_iam_policy_document" "start_migration" {
  statement {
    sid = "StateRuns"
    actions = [
      "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.state_table_arns
  }

  statement {
    sid       = "StartRun"
    actions   = ["states:StartExecution"]
    resources = [local.machine_arn["migration"]]
  }
}

# The migrate workflow's role: what `ferry start --spec ... --watch` calls (store the spec,
# record and start the run, follow the execution).
data "aws_iam_policy_document" "github_run" {
  source_policy_documents = [data.aws_iam_policy_document.start_migration.json]

  statement {
    sid       = "FindMachine"
    actions   = ["states:ListStateMachines"]
    resources = ["*"]
  }

  statement {
    sid       = "FollowRun"
    actions   = ["states:DescribeExecution", "states:GetExecutionHistory"]
    resources = [local.execution_arns["migration"]]
  }
}

data "aws_iam_policy_document" "api" {
  # Scan: deleting a stored connection first looks for a migration whose spec uses it.
  statement {
    sid = "StateRecords"
    actions = [
      "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
      "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:Scan",
    ]
    resources = local.state_table_arns
  }

  statement {
    sid       = "StartRun"
    actions   = ["states:StartExecution"]
    resources = [local.machine_arn["migration"]]
  }

  statement {
    sid       = "WatchAndCancelRuns"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.execution_arns["migration"]]
  }

  # POST /imports and POST /exports run the import and export machines on their own.
  statement {
    sid       = "StartTransfers"
    actions   = ["states:StartExecution"]
    resources = [local.machine_arn["dynamodb-import"], local.machine_arn["dynamodb-export"]]
  }

  statement {
    sid       = "WatchAndCancelTransfers"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.execution_arns["dynamodb-import"], local.execution_arns["dynamodb-export"]]
  }

  # POST/GET/DELETE /connections keep each connection's credentials in a secret of its own,
  # and only under the connection prefix.
  statement {
    sid = "ConnectionSecrets"
    actions = [
      "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret",
      "secretsmanager:GetSecretValue", "secretsmanager:TagResource",
    ]
    resources = local.connection_secret_arns
  }

  # POST /connections/test runs the same checks as test-connection.
  statement {
    sid       = "SourceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.source_secret_arns
  }

  statement {
    sid       = "TargetTablesAbsent"
    actions   = ["dynamodb:DescribeTable"]
    resources = local.target_table_arns
  }
}
