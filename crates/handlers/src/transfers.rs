//! Standalone transfers, for operators: `POST /exports` runs `dynamodb-export.asl.json` on one
//! table, `POST /imports` runs `dynamodb-import.asl.json` from one S3 prefix into a new table.
//! Each builds exactly the input its machine reads (the shape `plan` gives a migration's
//! tables), records the transfer PROCESSING, then starts the execution named by the transfer
//! id; when Step Functions refuses, the transfer is recorded FAILED with the reason.
//!
//! A transfer's status follows its execution on read: listing or deleting a PROCESSING
//! transfer describes its execution and, when that has ended, moves the record on with a
//! conditional write from PROCESSING (ABORTED becomes CANCELLED, as for runs).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ferry_core::state::RunError;
use ferry_core::{Error, ErrorCode, Result, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ulid::Ulid;

use crate::api::records::{Collection, Deleted};
use crate::api::{ApiSettings, Caller};
use crate::connections::{check_text, invalid, owner_group};
use crate::Context;

pub const DEFAULT_POLL_SECONDS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferKind {
    Export,
    Import,
}

/// `POST /exports`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[serde(default)]
    pub group: Option<String>,
    /// The DynamoDB table to export.
    pub table: String,
    /// Default: the run bucket (`FERRY_BUCKET`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Default: `transfers/<id>/export/<table>/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Leave point-in-time recovery on after the export (the export needs it on).
    #[serde(default = "yes")]
    pub pitr: bool,
    #[serde(default)]
    pub poll_seconds: Option<u32>,
}

/// `POST /imports`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(default)]
    pub group: Option<String>,
    /// The table to create; ImportTable refuses a table that exists.
    pub table: String,
    /// Default: the run bucket (`FERRY_BUCKET`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// The prefix holding the DynamoDB JSON objects.
    pub prefix: String,
    /// `GZIP` (default), `ZSTD` or `NONE`.
    #[serde(default)]
    pub compression: Option<String>,
    pub partition_key: KeyAttribute,
    #[serde(default)]
    pub sort_key: Option<KeyAttribute>,
    #[serde(default = "yes")]
    pub pitr: bool,
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub poll_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAttribute {
    pub name: String,
    /// `S`, `N` or `B`.
    #[serde(rename = "type")]
    pub kind: String,
}

fn yes() -> bool {
    true
}

/// A transfer as the state table keeps it and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub id: String,
    pub kind: TransferKind,
    pub group: String,
    pub status: RunStatus,
    /// The table exported, or created by the import.
    pub table: String,
    pub bucket: String,
    pub prefix: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: Option<RunError>,
}

/// DynamoDB's rule for table names: 3 to 255 of `a-z A-Z 0-9 _ - .`.
fn check_table(name: &str) -> Result<()> {
    let ok = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "table: {name:?} is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _, -, .)"
        )))
    }
}

/// S3's rule for bucket names (the common part): 3 to 63 of `a-z 0-9 . -`, starting and
/// ending with a letter or digit.
fn check_bucket(name: &str) -> Result<()> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
        && edge(name.chars().next())
        && edge(name.chars().last());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bucket: {name:?} is not an S3 bucket name"
        )))
    }
}

fn check_poll(poll: Option<u32>) -> Result<u32> {
    match poll.unwrap_or(DEFAULT_POLL_SECONDS) {
        n @ 1..=3600 => Ok(n),
        n => Err(invalid(format!(
            "poll_seconds: {n} is not between 1 and 3600"
        ))),
    }
}

fn client_token(id: &str, table: &str) -> String {
    format!(
        "{:032x}",
        xxhash_rust::xxh3::xxh3_128(format!("{id}/{table}").as_bytes())
    )
}

/// The input of `dynamodb-export.asl.json` for one table.
pub fn export_input(
    id: &str,
    request: &ExportRequest,
    bucket: &str,
    prefix: &str,
) -> Result<Value> {
    Ok(json!({
        "bucket": bucket,
        "tables": [{
            "table": request.table,
            "dynamodb_table": request.table,
            "export_prefix": prefix,
            "client_token": client_token(id, &request.table),
            "pitr": request.pitr,
        }],
        "poll_seconds": check_poll(request.poll_seconds)?,
    }))
}

fn key_definition(field: &str, key: &KeyAttribute) -> Result<(String, &'static str)> {
    check_text(&format!("{field}.name"), &key.name, 1, 255)?;
    let kind = match key.kind.as_str() {
        "S" => "S",
        "N" => "N",
        "B" => "B",
        other => {
            return Err(invalid(format!(
                "{field}.type: {other:?} is not one of S, N, B"
            )))
        }
    };
    Ok((key.name.clone(), kind))
}

/// The input of `dynamodb-import.asl.json` for one new table.
pub fn import_input(id: &str, request: &ImportRequest, bucket: &str) -> Result<Value> {
    let compression = request.compression.as_deref().unwrap_or("GZIP");
    if !matches!(compression, "GZIP" | "ZSTD" | "NONE") {
        return Err(invalid(format!(
            "compression: {compression:?} is not one of GZIP, ZSTD, NONE"
        )));
    }
    let mut keys = vec![key_definition("partition_key", &request.partition_key)?];
    if let Some(sort) = &request.sort_key {
        let sort = key_definition("sort_key", sort)?;
        if sort.0 == keys[0].0 {
            return Err(invalid(
                "sort_key.name: must differ from partition_key.name",
            ));
        }
        keys.push(sort);
    }
    let mut table = json!({
        "table": request.table,
        "dynamodb_table": request.table,
        "data_prefix": request.prefix,
        "input_compression": compression,
        "creation": {
            "TableName": request.table,
            "AttributeDefinitions": keys.iter().map(|(name, kind)| json!({"AttributeName": name, "AttributeType": kind})).collect::<Vec<_>>(),
            "KeySchema": keys.iter().zip(["HASH", "RANGE"]).map(|((name, _), role)| json!({"AttributeName": name, "KeyType": role})).collect::<Vec<_>>(),
            "BillingMode": "PAY_PER_REQUEST",
        },
        "client_token": client_token(id, &request.table),
        "pitr": request.pitr,
    });
    if let Some(ttl) = &request.ttl_attribute {
        check_text("ttl_attribute", ttl, 1, 255)?;
        table["ttl"] = json!({"Enabled": true, "AttributeName": ttl});
    }
    if request.tags.len() > 50 {
        return Err(invalid("tags: at most 50"));
    }
    if !request.tags.is_empty() {
        for (key, value) in &request.tags {
            check_text("tags", key, 1, 128)?;
            check_text(&format!("tags.{key}"), value, 0, 256)?;
        }
        table["tags"] = request
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
    }
    Ok(json!({
        "bucket": bucket,
        "tables": [table],
        // Standalone imports never enable a streaming destination.
        "dry_run": false,
        "poll_seconds": check_poll(request.poll_seconds)?,
    }))
}

fn state_machine(configured: &Option<String>, variable: &str) -> Result<String> {
    configured.clone().ok_or_else(|| {
        Error::new(
            ErrorCode::Configuration,
            format!("{variable} is not set: this transfer cannot be started"),
        )
    })
}

pub async fn start_export(
    cx: &Context,
    settings: &ApiSettings,
    caller: &Caller,
    request: ExportRequest,
) -> Result<TransferRecord> {
    let group = owner_group(caller, request.group.as_deref())?;
    check_table(&request.table)?;
    let bucket = request.bucket.clone().unwrap_or_else(|| cx.bucket.clone());
    check_bucket(&bucket)?;
    let id = Ulid::new().to_string();
    let prefix = request
        .prefix
        .clone()
        .unwrap_or_else(|| format!("transfers/{id}/export/{}/", request.table));
    check_text("prefix", &prefix, 1, 1024)?;
    let input = export_input(&id, &request, &bucket, &prefix)?;
    let machine = state_machine(
        &settings.export_state_machine,
        "FERRY_EXPORT_STATE_MACHINE_ARN",
    )?;
    let record = TransferRecord {
        id,
        kind: TransferKind::Export,
        group,
        status: RunStatus::Processing,
        table: request.table,
        bucket,
        prefix,
        execution_arn: None,
        created_at: Utc::now(),
        ended_at: None,
        error: None,
    };
    start(cx, record, &machine, &input).await
}

pub async fn start_import(
    cx: &Context,
    settings: &ApiSettings,
    caller: &Caller,
    request: ImportRequest,
) -> Result<TransferRecord> {
    let group = owner_group(caller, request.group.as_deref())?;
    check_table(&request.table)?;
    let bucket = request.bucket.clone().unwrap_or_else(|| cx.bucket.clone());
    check_bucket(&bucket)?;
    check_text("prefix", &request.prefix, 1, 1024)?;
    let id = Ulid::new().to_string();
    let input = import_input(&id, &request, &bucket)?;
    let machine = state_machine(
        &settings.import_state_machine,
        "FERRY_IMPORT_STATE_MACHINE_ARN",
    )?;
    let record = TransferRecord {
        id,
        kind: TransferKind::Import,
        group,
        status: RunStatus::Processing,
        table: request.table,
        bucket,
        prefix: request.prefix,
        execution_arn: None,
        created_at: Utc::now(),
        ended_at: None,
        error: None,
    };
    start(cx, record, &machine, &input).await
}

fn encode(value: &impl Serialize) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|err| Error::new(ErrorCode::Internal, "cannot encode a record").with_source(err))
}

/// Records the transfer PROCESSING, then starts its execution named by the transfer id.
async fn start(
    cx: &Context,
    mut record: TransferRecord,
    machine: &str,
    input: &Value,
) -> Result<TransferRecord> {
    let processing = RunStatus::Processing.as_str();
    cx.records
        .insert(Collection::Transfers, &record.id, &encode(&record)?)
        .await?;
    match cx.executions.start(machine, &record.id, input).await {
        Ok(arn) => {
            cx.records
                .update_if_status(
                    Collection::Transfers,
                    &record.id,
                    processing,
                    &json!({"execution_arn": arn}),
                )
                .await?;
            record.execution_arn = Some(arn);
            tracing::info!(transfer = %record.id, kind = ?record.kind, "transfer started");
            Ok(record)
        }
        Err(err) => {
            tracing::error!(error = %err.detail(), transfer = %record.id, "StartExecution refused");
            let error = RunError {
                state: "StartExecution".into(),
                error: err.code().error_type().into(),
                cause: err.message().to_string(),
            };
            cx.records
                .update_if_status(
                    Collection::Transfers,
                    &record.id,
                    processing,
                    &json!({"status": RunStatus::Failed, "ended_at": Utc::now(), "error": error}),
                )
                .await?;
            Err(Error::new(
                err.code(),
                format!(
                    "transfer {} could not start and is recorded FAILED: {}",
                    record.id,
                    err.message()
                ),
            ))
        }
    }
}

fn decode(value: Value) -> Result<TransferRecord> {
    serde_json::from_value(value).map_err(|err| {
        Error::new(ErrorCode::Internal, "a transfer record could not be read").with_source(err)
    })
}

/// Moves a PROCESSING transfer on when its execution has ended. A failure to describe leaves
/// the record as it is (the next read tries again).
pub async fn follow_execution(cx: &Context, record: TransferRecord) -> Result<TransferRecord> {
    let (RunStatus::Processing, Some(arn)) = (record.status, &record.execution_arn) else {
        return Ok(record);
    };
    let state = match cx.executions.describe(arn).await {
        Ok(state) => state,
        Err(err) => {
            tracing::warn!(error = %err.detail(), transfer = %record.id, "cannot describe the execution");
            return Ok(record);
        }
    };
    let (status, error) = match state.status.as_str() {
        "RUNNING" | "PENDING_REDRIVE" => return Ok(record),
        "SUCCEEDED" => (RunStatus::Succeeded, None),
        other => {
            let (error, cause) = crate::poll_status::innermost(
                state.error.as_deref().unwrap_or(&format!("States.{other}")),
                state.cause.as_deref().unwrap_or(""),
            );
            let error = RunError {
                state: format!("execution {other}"),
                error,
                cause,
            };
            let status = if other == "ABORTED" {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            };
            (status, Some(error))
        }
    };
    let mut fields = json!({"status": status, "ended_at": Utc::now()});
    if let Some(error) = &error {
        fields["error"] = encode(error)?;
    }
    cx.records
        .update_if_status(
            Collection::Transfers,
            &record.id,
            RunStatus::Processing.as_str(),
            &fields,
        )
        .await?;
    // Whoever won the conditional write, the stored record is now the truth.
    match cx.records.get(Collection::Transfers, &record.id).await? {
        Some(value) => decode(value),
        None => Ok(record),
    }
}

/// The transfer, if it exists and the caller may see it (following its execution); 404
/// otherwise.
pub async fn visible(cx: &Context, caller: &Caller, id: &str) -> Result<TransferRecord> {
    let not_found = || Error::new(ErrorCode::NotFound, format!("no transfer {id}"));
    if Ulid::from_string(id).is_err() {
        return Err(not_found());
    }
    let record = match cx.records.get(Collection::Transfers, id).await? {
        Some(value) => decode(value)?,
        None => return Err(not_found()),
    };
    if !caller.may_see(&record.group) {
        return Err(not_found());
    }
    follow_execution(cx, record).await
}

/// Parses the `status` filter of `GET /transfers`.
pub fn status_filter(text: Option<&String>) -> Result<Option<RunStatus>> {
    let Some(text) = text else { return Ok(None) };
    match RunStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text && *s != RunStatus::NotStarted)
    {
        Some(status) => Ok(Some(status)),
        None => Err(invalid(format!(
            "status: {text:?} is not one of PROCESSING, SUCCEEDED, FAILED, CANCELLED"
        ))),
    }
}

/// Decodes a page of records and brings the PROCESSING ones up to date; a record whose new
/// status no longer matches `status` leaves the page.
pub async fn followed(
    cx: &Context,
    items: Vec<Value>,
    status: Option<RunStatus>,
) -> Result<Vec<TransferRecord>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let record = follow_execution(cx, decode(item)?).await?;
        if status.is_none_or(|s| s == record.status) {
            out.push(record);
        }
    }
    Ok(out)
}

pub async fn delete(cx: &Context, caller: &Caller, id: &str) -> Result<TransferRecord> {
    let record = visible(cx, caller, id).await?;
    match cx
        .records
        .delete(
            Collection::Transfers,
            id,
            Some(RunStatus::Processing.as_str()),
        )
        .await?
    {
        Deleted::Deleted => Ok(record),
        Deleted::Missing => Err(Error::new(ErrorCode::NotFound, format!("no transfer {id}"))),
        Deleted::Refused => Err(Error::new(
            ErrorCode::TransferStillProcessing,
            format!("transfer {id} is still PROCESSING; its execution has not ended"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_input_is_what_the_import_machine_reads() {
        let request: ImportRequest = serde_json::from_value(json!({
            "table": "Rates", "prefix": "in/", "partition_key": {"name": "pk", "type": "S"},
            "sort_key": {"name": "sk", "type": "N"}, "ttl_attribute": "exp", "tags": {"team": "x"}
        }))
        .unwrap();
        let input = import_input("ID", &request, "bucket").unwrap();
        let table = &input["tables"][0];
        assert_eq!(table["dynamodb_table"], "Rates");
        assert_eq!(table["data_prefix"], "in/");
        assert_eq!(table["input_compression"], "GZIP");
        assert_eq!(
            table["creation"]["KeySchema"],
            json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        );
        assert_eq!(
            table["creation"]["AttributeDefinitions"][1]["AttributeType"],
            "N"
        );
        assert_eq!(
            table["ttl"],
            json!({"Enabled": true, "AttributeName": "exp"})
        );
        assert_eq!(table["tags"], json!([{"Key": "team", "Value": "x"}]));
        assert_eq!(table["client_token"].as_str().unwrap().len(), 32);
        assert_eq!(
            (input["dry_run"].clone(), input["poll_seconds"].clone()),
            (json!(false), json!(60))
        );
        // Without tags or TTL the fields are absent: the machine's Choice states test presence.
        let bare: ImportRequest = serde_json::from_value(json!({
            "table": "Rates", "prefix": "in/", "partition_key": {"name": "pk", "type": "S"}
        }))
        .unwrap();
        let input = import_input("ID", &bare, "bucket").unwrap();
        assert!(
            input["tables"][0].get("tags").is_none() && input["tables"][0].get("ttl").is_none()
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut request: ImportRequest = serde_json::from_value(json!({
            "table": "Rates", "prefix": "in/", "partition_key": {"name": "pk", "type": "X"}
        }))
        .unwrap();
        let err = import_input("ID", &request, "b").unwrap_err();
        assert!(err.message().starts_with("partition_key.type:"), "{err}");
        request.partition_key.kind = "S".into();
        request.compression = Some("LZ4".into());
        assert!(import_input("ID", &request, "b")
            .unwrap_err()
            .message()
            .starts_with("compression:"));
        assert!(check_table("a b")
            .unwrap_err()
            .message()
            .starts_with("table:"));
        assert!(
            check_bucket("Upper").is_err()
                && check_bucket("-ab").is_err()
                && check_bucket("ok-bucket").is_ok()
        );
        assert!(check_poll(Some(0))
            .unwrap_err()
            .message()
            .starts_with("poll_seconds:"));
        assert!(status_filter(Some(&"NOT_STARTED".to_string())).is_err());
        assert_eq!(
            status_filter(Some(&"FAILED".to_string())).unwrap(),
            Some(RunStatus::Failed)
        );
    }
}
