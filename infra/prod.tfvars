# Production: protected table, longer retention, errors-only state machine logs.
environment                    = "prod"
region                         = "us-east-1"
name_prefix                    = "ferry"
log_retention_days             = 90
runs_expiration_days           = 30
bucket_force_destroy           = false
deletion_protection            = true
bootstrap_reserved_concurrency = 20
state_machine_log_level        = "ERROR"
github_environment             = "prod"
# github_repository, terraform_state_bucket, api_jwt_issuer and api_jwt_audience differ per
# fork and account: the deploy workflow passes them (docs/operations.md), never this file.
