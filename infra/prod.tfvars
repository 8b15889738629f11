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
github_repository              = "example-org/ferry"
github_environment             = "prod"
terraform_state_bucket         = "example-org-ferry-terraform-state"
