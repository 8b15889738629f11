# The state table: migrations, runs, connections and clone leases (DESIGN.md section 5).
# Its key schema and index are the ones `DynamoDbStateStore::create_table_if_missing` creates
# locally, so the same code runs against both.

variable "name" {
  description = "Table name."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse DeleteTable while on."
  type        = bool
}

resource "aws_dynamodb_table" "state" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS owned key; the table holds run records and leases, never credentials (those stay in Secrets Manager), so a customer managed key adds cost without protecting a secret.
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "gsi1pk"
    type = "S"
  }

  # Sparse: only runs in PROCESSING carry gsi1pk = ACTIVE, which is what poll-status sweeps.
  global_secondary_index {
    name            = "gsi1"
    hash_key        = "gsi1pk"
    range_key       = "sk"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

output "name" {
  description = "Table name."
  value       = aws_dynamodb_table.state.name
}

output "arn" {
  description = "Table ARN."
  value       = aws_dynamodb_table.state.arn
}
