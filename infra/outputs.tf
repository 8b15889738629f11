output "state_machine_arns" {
  description = "ARN of every state machine, by name (migration is the one to start)."
  value       = { for name, machine in module.state_machine : name => machine.arn }
}

output "migration_state_machine_arn" {
  description = "ARN of the orchestrator (statemachines/migration.asl.json)."
  value       = module.state_machine["migration"].arn
}

output "api_url" {
  description = "Base URL of the HTTP API (every route needs a bearer JWT from api_jwt_issuer)."
  value       = module.http_api.url
}

output "api_route_keys" {
  description = "The HTTP API's routes, as \"METHOD /path\"."
  value       = module.http_api.route_keys
}

output "connection_secret_prefix" {
  description = "Name prefix of the connection secrets the API keeps (FERRY_CONNECTION_SECRET_PREFIX)."
  value       = local.connection_secret_prefix
}

output "state_table_name" {
  description = "The state table (FERRY_STATE_TABLE of every function)."
  value       = module.state_table.name
}

output "bucket_name" {
  description = "The run bucket (FERRY_BUCKET of every function)."
  value       = module.data_bucket.name
}

output "function_names" {
  description = "Lambda function name of every functions/<name> directory, by directory."
  value       = { for name, f in module.function : name => f.name }

  precondition {
    condition = toset(keys(local.functions)) == toset([
      for manifest in fileset("${path.module}/../functions", "*/Cargo.toml") : dirname(manifest)
    ])
    error_message = "infra/main.tf local.functions must have exactly one entry per directory in functions/."
  }
}

output "poll_schedule_name" {
  description = "The EventBridge Scheduler schedule that runs the poll-status sweep."
  value       = module.poll_schedule.name
}

output "github_deploy_role_arn" {
  description = "Role the deploy workflow assumes (store it as the GitHub environment's AWS_DEPLOY_ROLE_ARN secret)."
  value       = module.github_deploy_role.role_arn
}

output "github_run_role_arn" {
  description = "Role the migrate workflow assumes (store it as the GitHub environment's FERRY_RUN_ROLE_ARN secret)."
  value       = module.github_deploy_role.run_role_arn
}

output "state_machine_placeholders" {
  description = "The definition file of every state machine and the placeholders templatefile fills in it (read by tests/integration/infra.rs)."
  value = {
    for name, file in local.state_machine_files :
    name => { file = file, placeholders = sort(keys(local.state_machine_placeholders[name])) }
  }
}
