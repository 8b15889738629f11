# The run bucket: chunk lists, DynamoDB JSON chunks, exports and verification reports, all
# under runs/<run>/. Private, encrypted, TLS only; runs/ expires.

variable "name" {
  description = "Bucket name (globally unique)."
  type        = string
}

variable "runs_expiration_days" {
  description = "Days after which objects under runs/ expire."
  type        = number
}

variable "force_destroy" {
  description = "Let destroy delete the bucket with its objects."
  type        = bool
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_18:Access logs would need a second bucket per environment; every access is by ferry's own roles and CloudTrail data events can be turned on account-wide instead.
  #checkov:skip=CKV_AWS_144:Cross-region replication does not fit: run objects are intermediate, reproducible from the source and expire after runs_expiration_days.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to object events; the state machines read the objects they are told about.
  #checkov:skip=CKV_AWS_145:Encrypted with SSE-S3 (AES256, see the encryption configuration): DynamoDB ImportTable and ExportTableToPointInTime read and write the bucket with the caller's role, and SSE-S3 needs no extra key policy; the data is a copy of the source, which is what a key policy would protect.
  #checkov:skip=CKV_AWS_21:Versioning off: every chunk key is deterministic and a retried chunk must overwrite, not pile up versions that the runs/ expiry would have to chase.
  bucket        = var.name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "expire-runs"
    status = "Enabled"

    filter {
      prefix = "runs/"
    }

    expiration {
      days = var.runs_expiration_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyPlainHttp"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.tls_only.json

  # A policy put before the public access block may be judged public and refused.
  depends_on = [aws_s3_bucket_public_access_block.data]
}

output "name" {
  description = "Bucket name."
  value       = aws_s3_bucket.data.bucket
}

output "arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.data.arn
}
