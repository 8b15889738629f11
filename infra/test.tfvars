# The test environment: easy to tear down, short retention.
environment                    = "test"
region                         = "us-east-1"
name_prefix                    = "ferry-test"
log_retention_days             = 14
runs_expiration_days           = 7
bucket_force_destroy           = true
deletion_protection            = false
bootstrap_reserved_concurrency = 10
state_machine_log_level        = "ALL"
github_environment             = "test"
# github_repository, terraform_state_bucket, api_jwt_issuer and api_jwt_audience differ per
# fork and account: the deploy workflow passes them (docs/operations.md), never this file.
