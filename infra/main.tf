# ferry on AWS: the state table, the run bucket, one Lambda per functions/<name>, every state
# machine of statemachines/, the poll-status schedule and the GitHub deploy role.

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  prefix    = var.name_prefix

  # Connection secrets the API creates: ferry/<environment>/connections/<id>.
  connection_secret_prefix = "ferry/${var.environment}/connections/"

  zip_dir = startswith(var.lambda_zip_dir, "/") ? var.lambda_zip_dir : "${path.module}/${var.lambda_zip_dir}"

  function_env = {
    FERRY_STATE_TABLE = module.state_table.name
    FERRY_BUCKET      = module.data_bucket.name
  }
  # What starting a run executes: only start-migration and api start runs.
  starter_env = merge(local.function_env, {
    FERRY_MIGRATION_STATE_MACHINE_ARN = local.machine_arn["migration"]
  })
  # The api function also starts imports and exports on their own and keeps connection
  # secrets under its prefix (the control-plane routes).
  api_env = merge(local.starter_env, {
    FERRY_IMPORT_STATE_MACHINE_ARN = local.machine_arn["dynamodb-import"]
    FERRY_EXPORT_STATE_MACHINE_ARN = local.machine_arn["dynamodb-export"]
    FERRY_CONNECTION_SECRET_PREFIX = local.connection_secret_prefix
    }, var.api_token_key == "" ? {} : {
    FERRY_API_TOKEN_KEY    = var.api_token_key
    FERRY_API_GROUPS_CLAIM = var.api_groups_claim
    FERRY_API_ADMIN_GROUP  = var.api_admin_group
  })
  function_envs = {
    "start-migration" = local.starter_env
    "api"             = local.api_env
  }

  # One entry per functions/<name> directory (the output `function_names` checks that).
  functions = {
    "check-clone" = {
      description          = "Ensures, releases and destroys the source clones of a run"
      in_vpc               = true
      timeout              = 120
      memory_size          = 256
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.check_clone.json
    }
    "plan" = {
      description          = "Splits a domain's tables into chunks and writes the chunk list"
      in_vpc               = true
      timeout              = 300
      memory_size          = 512
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.plan_bootstrap.json
    }
    "bootstrap" = {
      description          = "Extracts one chunk from a clone to DynamoDB JSON in S3"
      in_vpc               = true
      timeout              = 900
      memory_size          = 2048
      reserved_concurrency = var.bootstrap_reserved_concurrency
      policy_json          = data.aws_iam_policy_document.plan_bootstrap.json
    }
    "compare" = {
      description          = "Digests exports, diffs them against the bootstrap manifests, writes the report"
      in_vpc               = false
      timeout              = 900
      memory_size          = 1024
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.compare.json
    }
    "poll-status" = {
      description          = "Ends runs: finish step of a migration and the scheduled sweep"
      in_vpc               = false
      timeout              = 60
      memory_size          = 256
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.poll_status.json
    }
    "test-connection" = {
      description          = "Tests a source connection and the target tables before a run"
      in_vpc               = true
      timeout              = 60
      memory_size          = 256
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.test_connection.json
    }
    "start-migration" = {
      description          = "Records a run (one at a time per migration) and starts its execution"
      in_vpc               = false
      timeout              = 30
      memory_size          = 256
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.start_migration.json
    }
    "api" = {
      description          = "The HTTP API: migrations, runs, cancel, connections, imports, exports"
      in_vpc               = true
      timeout              = 30
      memory_size          = 512
      reserved_concurrency = -1
      policy_json          = data.aws_iam_policy_document.api.json
    }
  }

  # Child machine ARNs are computed from their names rather than taken from the resources, so
  # a parent's role and definition do not depend on the child resources (no cycles, and each
  # machine can be replaced alone).
  machine_arn = {
    for name in keys(local.state_machine_files) :
    name => "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${local.prefix}-${name}"
  }
  execution_arns = {
    for name in keys(local.state_machine_files) :
    name => "arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.prefix}-${name}:*"
  }
  # Child executions of a Distributed Map run: execution:<machine>/<map run>:<name>.
  map_run_execution_arns = {
    for name in keys(local.state_machine_files) :
    name => "arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.prefix}-${name}/*"
  }

  state_machine_files = {
    "migration"       = "migration.asl.json"
    "clone"           = "clone.asl.json"
    "bootstrap"       = "bootstrap.asl.json"
    "dynamodb-import" = "dynamodb-import.asl.json"
    "dynamodb-export" = "dynamodb-export.asl.json"
    "verify"          = "verify.asl.json"
    "cleanup"         = "cleanup.asl.json"
  }

  # What templatefile fills in each definition: exactly the $${Name} placeholders it uses
  # (tests/integration/infra.rs compares the two sets).
  state_machine_placeholders = {
    "migration" = {
      CheckCloneFunctionArn         = module.function["check-clone"].arn
      CompareFunctionArn            = module.function["compare"].arn
      PollStatusFunctionArn         = module.function["poll-status"].arn
      CloneStateMachineArn          = local.machine_arn["clone"]
      BootstrapStateMachineArn      = local.machine_arn["bootstrap"]
      DynamoDbImportStateMachineArn = local.machine_arn["dynamodb-import"]
      DynamoDbExportStateMachineArn = local.machine_arn["dynamodb-export"]
      VerifyStateMachineArn         = local.machine_arn["verify"]
      CleanupStateMachineArn        = local.machine_arn["cleanup"]
    }
    "clone" = {
      CheckCloneFunctionArn = module.function["check-clone"].arn
    }
    "bootstrap" = {
      PlanFunctionArn      = module.function["plan"].arn
      BootstrapFunctionArn = module.function["bootstrap"].arn
    }
    "dynamodb-import" = {}
    "dynamodb-export" = {}
    "verify" = {
      CompareFunctionArn = module.function["compare"].arn
    }
    "cleanup" = {
      CheckCloneFunctionArn = module.function["check-clone"].arn
    }
  }

  state_machine_policies = {
    "migration"       = data.aws_iam_policy_document.sfn_migration.json
    "clone"           = data.aws_iam_policy_document.sfn_clone.json
    "bootstrap"       = data.aws_iam_policy_document.sfn_bootstrap.json
    "dynamodb-import" = data.aws_iam_policy_document.sfn_import.json
    "dynamodb-export" = data.aws_iam_policy_document.sfn_export.json
    "verify"          = data.aws_iam_policy_document.sfn_verify.json
    "cleanup"         = data.aws_iam_policy_document.sfn_clone.json
  }
}

module "state_table" {
  source              = "./modules/state-table"
  name                = "${local.prefix}-state"
  deletion_protection = var.deletion_protection
}

module "data_bucket" {
  source               = "./modules/data-bucket"
  name                 = "${local.prefix}-data-${local.account}-${local.region}"
  runs_expiration_days = var.runs_expiration_days
  force_destroy        = var.bucket_force_destroy
}

module "function" {
  source   = "./modules/function"
  for_each = local.functions

  name                 = "${local.prefix}-${each.key}"
  description          = each.value.description
  zip_path             = "${local.zip_dir}/${each.key}/bootstrap.zip"
  environment          = lookup(local.function_envs, each.key, local.function_env)
  policy_json          = each.value.policy_json
  timeout              = each.value.timeout
  memory_size          = each.value.memory_size
  reserved_concurrency = each.value.reserved_concurrency
  log_retention_days   = var.log_retention_days

  vpc_subnet_ids         = each.value.in_vpc ? var.source_vpc_subnet_ids : []
  vpc_security_group_ids = each.value.in_vpc ? var.source_vpc_security_group_ids : []
}

module "state_machine" {
  source   = "./modules/state-machine"
  for_each = local.state_machine_files

  name               = "${local.prefix}-${each.key}"
  definition_file    = "${path.module}/../statemachines/${each.value}"
  placeholders       = local.state_machine_placeholders[each.key]
  policy_json        = local.state_machine_policies[each.key]
  log_level          = var.state_machine_log_level
  log_retention_days = var.log_retention_days
}

# ImportTable writes its rejected items (which may hold source data) to this fixed,
# account-wide group; left to the service it would keep them forever.
resource "aws_cloudwatch_log_group" "imports" {
  #checkov:skip=CKV_AWS_158:ImportTable writes this group itself; the default CloudWatch encryption is kept to avoid a KMS key per account.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days); rejected import items are not kept for a year by default.
  count             = var.manage_import_log_group ? 1 : 0
  name              = "/aws-dynamodb/imports"
  retention_in_days = var.log_retention_days
}

module "poll_schedule" {
  source       = "./modules/poll-schedule"
  name         = "${local.prefix}-poll-status-sweep"
  function_arn = module.function["poll-status"].arn
  enabled      = var.poll_schedule_enabled
}

module "github_deploy_role" {
  source                 = "./modules/github-deploy-role"
  name_prefix            = local.prefix
  github_repository      = var.github_repository
  github_environment     = var.github_environment
  oidc_provider_arn      = var.github_oidc_provider_arn
  data_bucket_name       = module.data_bucket.name
  terraform_state_bucket = var.terraform_state_bucket
  run_policy_json        = data.aws_iam_policy_document.github_run.json
}
