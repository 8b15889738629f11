variable "environment" {
  description = "Name of the environment (test, prod, ...): tags every resource and names the connection secrets' prefix, ferry/<environment>/connections/."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "environment: 1 to 32 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every named resource (functions, machines, roles, table, log groups). Two stacks in one account need two prefixes."
  type        = string
  default     = "ferry"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix: 2 to 21 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags put on every resource (merged with ferry:environment and ferry:managed-by)."
  type        = map(string)
  default     = {}
}

variable "lambda_zip_dir" {
  description = "Directory holding one <function>/bootstrap.zip per Lambda, as `cargo lambda build --release --arm64 --output-format zip` writes them (target/lambda). Relative paths are relative to infra/."
  type        = string
  default     = "../target/lambda"
}

variable "log_retention_days" {
  description = "Retention of the functions' and state machines' CloudWatch log groups, in days."
  type        = number
  default     = 30
}

variable "state_machine_log_level" {
  description = "Step Functions logging level: ALL, ERROR, FATAL or OFF. Execution data (inputs/outputs) is never logged."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.state_machine_log_level)
    error_message = "state_machine_log_level: one of ALL, ERROR, FATAL, OFF."
  }
}

variable "runs_expiration_days" {
  description = "Objects under runs/ in the data bucket (chunks, exports, reports) expire after this many days."
  type        = number
  default     = 30
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete a data bucket that still holds objects. Keep false in production."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Deletion protection of the state table (on in production)."
  type        = bool
  default     = true
}

variable "bootstrap_reserved_concurrency" {
  description = "Reserved concurrency of the bootstrap Lambda: the most chunks read from the source clones at once, whatever a run's parallelism says. -1 leaves it unreserved."
  type        = number
  default     = 20
}

variable "poll_schedule_enabled" {
  description = "Whether the every-minute poll-status sweep schedule is enabled."
  type        = bool
  default     = true
}

variable "source_secret_arns" {
  description = "Secrets Manager ARNs (wildcards allowed) holding source credentials that check-clone, plan and bootstrap may read. Empty: secrets named <name_prefix>/* in this account and region."
  type        = list(string)
  default     = []
}

variable "alarm_topic_arn" {
  description = "SNS topic the stack's CloudWatch alarms notify (infra/alarms.tf). Empty: the alarms only show in CloudWatch."
  type        = string
  default     = ""
}

variable "emr_jar_prefixes" {
  description = "s3:// prefixes (bootstrap.emr_serverless.jar_prefix of the specs) the plan function may list to find the newest JAR of the EMR Serverless bootstrap engine. Empty: no spec may use that engine, and neither the plan function nor the bootstrap machine gets any EMR permission."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.emr_jar_prefixes : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", p))])
    error_message = "Each of emr_jar_prefixes must be an s3://bucket/prefix URL."
  }
}

variable "emr_execution_role_arns" {
  description = "IAM roles the bootstrap machine may pass to EMR Serverless job runs (the specs' execution_role_arn, or the applications' FerryExecutionRoleArn tag). Only used with emr_jar_prefixes."
  type        = list(string)
  default     = []
}

variable "source_vpc_subnet_ids" {
  description = "Subnets in which check-clone, plan and bootstrap run, to reach sources (Aurora clones) inside a VPC; they need routes or VPC endpoints to S3, DynamoDB, Secrets Manager and RDS. Empty: no VPC."
  type        = list(string)
  default     = []
}

variable "source_vpc_security_group_ids" {
  description = "Security groups of those functions when source_vpc_subnet_ids is set (must be allowed into the sources' port)."
  type        = list(string)
  default     = []
}

variable "target_table_prefix" {
  description = "Name prefix of the DynamoDB tables migrations create; the import and export machines may act on tables with this prefix only. Empty: any table in the account and region."
  type        = string
  default     = ""
}

variable "manage_import_log_group" {
  description = "Whether this stack owns /aws-dynamodb/imports, the account-wide log group where DynamoDB ImportTable logs rejected items, to give it log_retention_days. One stack per account and region can (set false in the others, or when the group exists already and is not to be imported)."
  type        = bool
  default     = true
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose deploy workflow may assume the deploy role. No default and in no tfvars file: the deploy workflow passes the repository it runs in (github.repository)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository: the repository as owner/name (the deploy workflow passes github.repository)."
  }
}

variable "github_environment" {
  description = "GitHub environment (e.g. test, prod) whose jobs may assume the deploy role; no other job of the repository can."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com OIDC provider in the account. Empty: this stack creates it (one per account)."
  type        = string
  default     = ""
}

variable "terraform_state_bucket" {
  description = "S3 bucket holding the Terraform state, which the deploy role reads and writes. No default and in no tfvars file: the deploy workflow passes the environment's TF_STATE_BUCKET secret, the same bucket `terraform init` uses."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.terraform_state_bucket))
    error_message = "terraform_state_bucket: an S3 bucket name (3 to 63 lowercase letters, digits, '.' and '-')."
  }
}

variable "api_token_key" {
  description = "Key (16+ characters) the api function signs page tokens with (FERRY_API_TOKEN_KEY). Empty: not set, and the api function refuses to serve; pass it from a secret (TF_VAR_api_token_key), never from a tfvars file."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.api_token_key == "" || length(var.api_token_key) >= 16
    error_message = "api_token_key: at least 16 characters (or empty)."
  }
}

variable "api_groups_claim" {
  description = "JWT claim holding the caller's groups (FERRY_API_GROUPS_CLAIM)."
  type        = string
  default     = "cognito:groups"
}

variable "api_admin_group" {
  description = "Group that sees every migration through the API (FERRY_API_ADMIN_GROUP)."
  type        = string
  default     = "ferry-admins"
}

variable "api_jwt_issuer" {
  description = "Issuer of the tokens the HTTP API accepts (the JWT authorizer's issuer), e.g. https://cognito-idp.<region>.amazonaws.com/<user pool id> or any OIDC issuer. No default: the deploy workflow passes the environment's FERRY_API_JWT_ISSUER variable."
  type        = string

  validation {
    condition     = can(regex("^https://[^/?#]+", var.api_jwt_issuer))
    error_message = "api_jwt_issuer: an https:// issuer URL."
  }
}

variable "api_jwt_audience" {
  description = "Audiences the HTTP API accepts (the JWT authorizer's audience: the Cognito app client id, or the OIDC client id). No default: the deploy workflow passes the environment's FERRY_API_JWT_AUDIENCE variable (a JSON list)."
  type        = list(string)

  validation {
    condition     = length(var.api_jwt_audience) > 0 && alltrue([for a in var.api_jwt_audience : length(trimspace(a)) > 0])
    error_message = "api_jwt_audience: at least one non-empty audience."
  }
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the HTTP API accepts over all routes (stage default route throttling)."
  type        = number
  default     = 20

  validation {
    condition     = var.api_throttling_rate_limit > 0
    error_message = "api_throttling_rate_limit: greater than 0."
  }
}

variable "api_throttling_burst_limit" {
  description = "Burst of requests the HTTP API accepts over all routes (stage default route throttling)."
  type        = number
  default     = 40

  validation {
    condition     = var.api_throttling_burst_limit > 0
    error_message = "api_throttling_burst_limit: greater than 0."
  }
}
