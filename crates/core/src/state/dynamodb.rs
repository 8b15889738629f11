//! The DynamoDB adapter of [`StateStore`]: one table, `pk`/`sk` string keys, and the sparse
//! `gsi1` index on `gsi1pk`, which only PROCESSING runs carry (`ACTIVE`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    ActiveRun, CloneLease, MigrationState, NewRun, Page, PageKey, RunOutcome, RunRecord, StateStore,
};
use crate::error::{Error, ErrorCode, Result};
use crate::run::{RunId, RunStatus};
use crate::spec::Spec;

type Item = HashMap<String, AttributeValue>;

const ACTIVE: &str = "ACTIVE";
const ACTIVE_INDEX: &str = "gsi1";
/// Concurrent transactions on one item may both be cancelled with `TransactionConflict`;
/// re-reading and trying again decides which one wins.
const CONFLICT_ATTEMPTS: u32 = 5;

fn migration_pk(name: &str) -> String {
    format!("MIGRATION#{name}")
}

fn run_sk(run_id: RunId) -> String {
    format!("RUN#{run_id}")
}

fn clone_pk(cluster: &str) -> String {
    format!("CLONE#{cluster}")
}

fn lease_sk(run_id: RunId, domain: &str) -> String {
    format!("LEASE#{run_id}#{domain}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// The `#status IN (...)` condition allowing exactly the statuses that may become `to`,
/// with its placeholder values.
fn status_condition(to: RunStatus) -> (String, Item) {
    let previous = to.allowed_previous();
    let names: Vec<String> = (0..previous.len()).map(|i| format!(":from{i}")).collect();
    let values = names
        .iter()
        .cloned()
        .zip(previous.iter().map(|status| s(status.as_str())))
        .collect();
    (format!("#status IN ({})", names.join(", ")), values)
}

fn to_item<T: Serialize>(value: &T, keys: Item) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(|err| {
        Error::new(ErrorCode::Internal, "could not encode a state record").with_source(err)
    })?;
    item.extend(keys);
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|err| {
        Error::new(ErrorCode::Internal, "a state record could not be read").with_source(err)
    })
}

fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::new(ErrorCode::Internal, "could not build a state store request").with_source(err)
}

/// Maps an SDK failure into the catalogue: throttling, timeouts and dropped connections may be
/// retried as they are; anything else is internal, with the SDK's error kept as the source.
fn sdk_error<E>(operation: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some(
                    "ThrottlingException"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                )
            ) || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let code = if retryable {
        ErrorCode::Retryable
    } else {
        ErrorCode::Internal
    };
    Error::new(code, format!("state store {operation} failed")).with_source(err)
}

/// Why a transaction was cancelled, per item, as DynamoDB reports it.
enum TransactOutcome {
    Done,
    Cancelled { conflict: bool },
}

pub struct DynamoDbStateStore {
    client: Client,
    table: String,
}

impl DynamoDbStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the state table (on-demand, with the sparse index) unless it exists, and
    /// waits until it is ACTIVE. Used by `ferry local init` and tests; in AWS Terraform owns it.
    /// Returns whether it created the table.
    pub async fn create_table_if_missing(&self) -> Result<bool> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key_element = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(ACTIVE_INDEX)
            .key_schema(key_element("gsi1pk", KeyType::Hash)?)
            .key_schema(key_element("sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .attribute_definitions(attribute("gsi1pk")?)
            .key_schema(key_element("pk", KeyType::Hash)?)
            .key_schema(key_element("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        let created = match created {
            Ok(_) => true,
            Err(err) if err.code() == Some("ResourceInUseException") => false,
            Err(err) => return Err(sdk_error("CreateTable", err)),
        };
        for _ in 0..120 {
            let table = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|err| sdk_error("DescribeTable", err))?;
            let status = table.table().and_then(|t| t.table_status());
            if status.map(|s| s.as_str()) == Some("ACTIVE") {
                return Ok(created);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(Error::new(
            ErrorCode::Retryable,
            format!("state table {} did not become ACTIVE in 60 s", self.table),
        ))
    }

    async fn get<T: DeserializeOwned>(&self, key: Item) -> Result<Option<T>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        output.item.map(from_item).transpose()
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<TransactOutcome> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(TransactOutcome::Done),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let conflict = cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|reason| reason.code() == Some("TransactionConflict"));
                    Ok(TransactOutcome::Cancelled { conflict })
                }
                _ => Err(sdk_error(
                    "TransactWriteItems",
                    SdkError::ServiceError(service),
                )),
            },
            Err(err) => Err(sdk_error("TransactWriteItems", err)),
        }
    }

    fn begin_items(&self, record: &RunRecord) -> Result<Vec<TransactWriteItem>> {
        let (condition, mut values) = status_condition(RunStatus::Processing);
        values.extend([
            (":processing".to_string(), s(RunStatus::Processing.as_str())),
            (":run".to_string(), s(record.run_id.to_string())),
            (":name".to_string(), s(&record.migration)),
            (":group".to_string(), s(&record.group)),
            (":now".to_string(), s(record.started_at.to_rfc3339())),
        ]);
        let state = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                migration_pk(&record.migration),
                "STATE".to_string(),
            )))
            .update_expression(
                "SET #status = :processing, current_run = :run, #name = :name, \
                 #group = :group, updated_at = :now",
            )
            .condition_expression(format!("attribute_not_exists(pk) OR {condition}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#group", "group")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        let mut keys = key(migration_pk(&record.migration), run_sk(record.run_id));
        keys.insert("gsi1pk".to_string(), s(ACTIVE));
        let run = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(record, keys)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok(vec![
            TransactWriteItem::builder().update(state).build(),
            TransactWriteItem::builder().put(run).build(),
        ])
    }

    fn finish_items(
        &self,
        migration: &str,
        run_id: RunId,
        outcome: &RunOutcome,
    ) -> Result<Vec<TransactWriteItem>> {
        let to = outcome.status;
        let (condition, mut values) = status_condition(to);
        let now = Utc::now().to_rfc3339();
        values.extend([
            (":to".to_string(), s(to.as_str())),
            (":now".to_string(), s(now)),
        ]);
        let mut run_values = values.clone();
        run_values.insert(
            ":metrics".to_string(),
            AttributeValue::M(to_item(&outcome.metrics, Item::new())?),
        );
        let mut set = "SET #status = :to, ended_at = :now, #metrics = :metrics".to_string();
        if let Some(error) = &outcome.error {
            run_values.insert(
                ":error".to_string(),
                AttributeValue::M(to_item(error, Item::new())?),
            );
            set.push_str(", #error = :error");
        }
        let mut run = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(migration), run_sk(run_id))))
            .update_expression(format!("{set} REMOVE gsi1pk"))
            .condition_expression(format!("attribute_exists(pk) AND {condition}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#metrics", "metrics")
            .set_expression_attribute_values(Some(run_values));
        if outcome.error.is_some() {
            run = run.expression_attribute_names("#error", "error");
        }
        values.insert(":run".to_string(), s(run_id.to_string()));
        let state = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(migration), "STATE".to_string())))
            .update_expression("SET #status = :to, updated_at = :now")
            .condition_expression(format!("current_run = :run AND {condition}"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok(vec![
            TransactWriteItem::builder()
                .update(run.build().map_err(build_error)?)
                .build(),
            TransactWriteItem::builder().update(state).build(),
        ])
    }

    fn run_not_found(migration: &str, run_id: RunId) -> Error {
        Error::new(
            ErrorCode::NotFound,
            format!("migration {migration} has no run {run_id}"),
        )
    }

    async fn leases_of(&self, cluster: &str) -> Result<Vec<CloneLease>> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :lease)")
                .expression_attribute_values(":pk", s(clone_pk(cluster)))
                .expression_attribute_values(":lease", s("LEASE#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sdk_error("Query", err))?;
            for item in output.items.unwrap_or_default() {
                leases.push(from_item(item)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(leases);
            }
        }
    }
}

#[async_trait]
impl StateStore for DynamoDbStateStore {
    async fn migration(&self, name: &str) -> Result<Option<MigrationState>> {
        self.get(key(migration_pk(name), "STATE".to_string())).await
    }

    async fn put_migration(&self, spec: &Spec) -> Result<MigrationState> {
        let spec_value = serde_dynamo::to_attribute_value(spec).map_err(|err| {
            Error::new(ErrorCode::Internal, "cannot encode the spec").with_source(err)
        })?;
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(&spec.name), "STATE".to_string())))
            .update_expression(
                "SET #spec = :spec, #name = :name, #group = :group, updated_at = :now, \
                 #status = if_not_exists(#status, :not_started)",
            )
            .condition_expression("attribute_not_exists(pk) OR #group = :group")
            .expression_attribute_names("#spec", "spec")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#group", "group")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":spec", spec_value)
            .expression_attribute_values(":name", s(&spec.name))
            .expression_attribute_values(":group", s(&spec.group))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .expression_attribute_values(":not_started", s(RunStatus::NotStarted.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match outcome {
            Ok(out) => from_item(out.attributes.unwrap_or_default()),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                Err(Error::new(
                    ErrorCode::NotFound,
                    format!("no migration named {}", spec.name),
                ))
            }
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn begin_run(&self, run: NewRun) -> Result<RunRecord> {
        if run.parallelism == 0 {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                "parallelism: must be at least 1",
            ));
        }
        if let Some(domain) = &run.domain {
            if run.spec.domain_tables(domain).is_none() {
                return Err(Error::new(
                    ErrorCode::InvalidInput,
                    format!("domain: the spec has no domain named {domain:?}"),
                ));
            }
        }
        let record = RunRecord {
            migration: run.spec.name.clone(),
            run_id: run.run_id,
            group: run.spec.group.clone(),
            status: RunStatus::Processing,
            domain: run.domain,
            dry_run: run.dry_run,
            parallelism: run.parallelism,
            spec: run.spec,
            execution_arn: None,
            log_url: None,
            started_at: Utc::now(),
            ended_at: None,
            metrics: Default::default(),
            error: None,
        };
        for _ in 0..CONFLICT_ATTEMPTS {
            match self.transact(self.begin_items(&record)?).await? {
                TransactOutcome::Done => return Ok(record),
                TransactOutcome::Cancelled { conflict: true } => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                TransactOutcome::Cancelled { conflict: false } => {
                    let state = self.migration(&record.migration).await?;
                    let current = state.as_ref().and_then(|s| s.current_run);
                    if current == Some(record.run_id) {
                        // A retry of a start that already took effect.
                        return self
                            .run(&record.migration, record.run_id)
                            .await?
                            .ok_or_else(|| Self::run_not_found(&record.migration, record.run_id));
                    }
                    return Err(match state {
                        Some(state) if state.status == RunStatus::Processing => Error::new(
                            ErrorCode::MigrationAlreadyRunning,
                            format!(
                                "migration {} already has a run PROCESSING ({})",
                                record.migration,
                                current.map(|id| id.to_string()).unwrap_or_default()
                            ),
                        ),
                        _ => Error::new(
                            ErrorCode::InvalidInput,
                            format!("run_id: {} is already used", record.run_id),
                        ),
                    });
                }
            }
        }
        Err(Error::new(
            ErrorCode::Retryable,
            format!(
                "migration {}: too many concurrent changes, try again",
                record.migration
            ),
        ))
    }

    async fn record_execution(
        &self,
        migration: &str,
        run_id: RunId,
        execution_arn: &str,
        log_url: Option<&str>,
    ) -> Result<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(migration), run_sk(run_id))))
            .condition_expression(
                "#status = :processing AND \
                 (attribute_not_exists(execution_arn) OR execution_arn = :arn)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", s(RunStatus::Processing.as_str()))
            .expression_attribute_values(":arn", s(execution_arn));
        update = match log_url {
            Some(url) => update
                .update_expression("SET execution_arn = :arn, log_url = :log")
                .expression_attribute_values(":log", s(url)),
            None => update.update_expression("SET execution_arn = :arn"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => {
                let run = self
                    .run(migration, run_id)
                    .await?
                    .ok_or_else(|| Self::run_not_found(migration, run_id))?;
                Err(Error::new(
                    ErrorCode::InvalidTransition,
                    format!(
                        "run {run_id} is {} with execution {}; it cannot take execution {execution_arn}",
                        run.status,
                        run.execution_arn.as_deref().unwrap_or("(none)")
                    ),
                ))
            }
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn update_metrics(
        &self,
        migration: &str,
        run_id: RunId,
        metrics: &super::RunMetrics,
    ) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(migration), run_sk(run_id))))
            .update_expression("SET #metrics = :metrics")
            .condition_expression("#status = :processing")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#metrics", "metrics")
            .expression_attribute_values(":processing", s(RunStatus::Processing.as_str()))
            .expression_attribute_values(
                ":metrics",
                AttributeValue::M(to_item(metrics, Item::new())?),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => Err(Error::new(
                ErrorCode::InvalidTransition,
                format!("run {run_id} of {migration} is not PROCESSING; its metrics are final"),
            )),
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn finish_run(
        &self,
        migration: &str,
        run_id: RunId,
        outcome: RunOutcome,
    ) -> Result<RunRecord> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let items = self.finish_items(migration, run_id, &outcome)?;
            match self.transact(items).await? {
                TransactOutcome::Cancelled { conflict: true } => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                TransactOutcome::Done => {
                    return self
                        .run(migration, run_id)
                        .await?
                        .ok_or_else(|| Self::run_not_found(migration, run_id));
                }
                TransactOutcome::Cancelled { conflict: false } => {
                    let run = self
                        .run(migration, run_id)
                        .await?
                        .ok_or_else(|| Self::run_not_found(migration, run_id))?;
                    if run.status == outcome.status {
                        return Ok(run);
                    }
                    return Err(run
                        .status
                        .transition(outcome.status)
                        .err()
                        .unwrap_or_else(|| {
                            Error::new(
                                ErrorCode::InvalidTransition,
                                format!("run {run_id} is no longer the current run of {migration}"),
                            )
                        }));
                }
            }
        }
        Err(Error::new(
            ErrorCode::Retryable,
            format!("run {run_id}: too many concurrent changes, try again"),
        ))
    }

    async fn run(&self, migration: &str, run_id: RunId) -> Result<Option<RunRecord>> {
        self.get(key(migration_pk(migration), run_sk(run_id))).await
    }

    async fn runs(
        &self,
        migration: &str,
        limit: u32,
        after: Option<PageKey>,
    ) -> Result<Page<RunRecord>> {
        let limit = limit.clamp(1, 100);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :run)")
            .expression_attribute_values(":pk", s(migration_pk(migration)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(after.map(|page| key(page.pk, page.sk)))
            .send()
            .await
            .map_err(|err| sdk_error("Query", err))?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<RunRecord>>>()?;
        let next = output.last_evaluated_key.and_then(|last| {
            let text = |name: &str| last.get(name)?.as_s().ok().cloned();
            Some(PageKey {
                pk: text("pk")?,
                sk: text("sk")?,
            })
        });
        Ok(Page { items, next })
    }

    async fn active_runs(&self) -> Result<Vec<ActiveRun>> {
        let mut active = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ACTIVE_INDEX)
                .key_condition_expression("gsi1pk = :active")
                .expression_attribute_values(":active", s(ACTIVE))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sdk_error("Query", err))?;
            for item in output.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
                let (Some(pk), Some(sk)) = (text("pk"), text("sk")) else {
                    continue;
                };
                let (Some(migration), Some(run_id)) =
                    (pk.strip_prefix("MIGRATION#"), sk.strip_prefix("RUN#"))
                else {
                    continue;
                };
                active.push(ActiveRun {
                    migration: migration.to_string(),
                    run_id: run_id.parse()?,
                });
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(active);
            }
        }
    }

    async fn delete_run(&self, migration: &str, run_id: RunId) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(migration_pk(migration), run_sk(run_id))))
            .condition_expression("attribute_exists(pk) AND #status <> :processing")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", s(RunStatus::Processing.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => {
                Err(match self.run(migration, run_id).await? {
                    None => Self::run_not_found(migration, run_id),
                    Some(_) => Error::new(
                        ErrorCode::RunStillProcessing,
                        format!("run {run_id} of {migration} is still PROCESSING"),
                    ),
                })
            }
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }

    async fn acquire_clone_lease(&self, lease: &CloneLease) -> Result<()> {
        let item = to_item(
            lease,
            key(
                clone_pk(&lease.cluster),
                lease_sk(lease.run_id, &lease.domain),
            ),
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|err| sdk_error("PutItem", err))?;
        Ok(())
    }

    async fn release_clone_lease(
        &self,
        cluster: &str,
        run_id: RunId,
        domain: &str,
    ) -> Result<Vec<CloneLease>> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(clone_pk(cluster), lease_sk(run_id, domain))))
            .send()
            .await
            .map_err(|err| sdk_error("DeleteItem", err))?;
        self.leases_of(cluster).await
    }

    async fn clone_leases(&self, cluster: &str) -> Result<Vec<CloneLease>> {
        self.leases_of(cluster).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_condition_lists_exactly_the_statuses_that_may_start() {
        let (condition, values) = status_condition(RunStatus::Processing);
        assert_eq!(condition, "#status IN (:from0, :from1, :from2, :from3)");
        let mut allowed: Vec<_> = values.values().map(|v| v.as_s().unwrap().clone()).collect();
        allowed.sort();
        assert_eq!(allowed, ["CANCELLED", "FAILED", "NOT_STARTED", "SUCCEEDED"]);
    }

    #[test]
    fn keys_follow_the_single_table_design() {
        let run = RunId::new();
        assert_eq!(migration_pk("m"), "MIGRATION#m");
        assert_eq!(run_sk(run), format!("RUN#{run}"));
        assert_eq!(lease_sk(run, "rates"), format!("LEASE#{run}#rates"));
        assert_eq!(clone_pk("c1"), "CLONE#c1");
    }
}
