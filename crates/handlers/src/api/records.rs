//! The API's own records in the state table: stored connections and standalone transfers.
//!
//! Each kind lives in one partition (`pk = CONNECTIONS` / `TRANSFERS`, `sk = <KIND>#<ulid>`),
//! so a listing is one Query, newest first, with the group and status filters applied by
//! DynamoDB (`FilterExpression`) and the page continuing from the last key it evaluated. These
//! are operator actions, a few per day: one partition is far from its limits. The
//! [`RecordStore`] port keeps the handlers testable; [`DynamoDbRecords`] is its adapter.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use ferry_core::state::{Page, PageKey};
use ferry_core::{Error, ErrorCode, Result};
use serde_json::Value;

type Item = HashMap<String, AttributeValue>;

/// The kinds of record the API keeps besides migrations and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Connections,
    Transfers,
}

impl Collection {
    fn pk(self) -> &'static str {
        match self {
            Collection::Connections => "CONNECTIONS",
            Collection::Transfers => "TRANSFERS",
        }
    }

    fn sk(self, id: &str) -> String {
        match self {
            Collection::Connections => format!("CONNECTION#{id}"),
            Collection::Transfers => format!("TRANSFER#{id}"),
        }
    }
}

/// Which records a listing keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only these groups' records; `None` for every group (the admin group).
    pub groups: Option<Vec<String>>,
    /// Only records whose `status` is one of these.
    pub statuses: Option<Vec<String>>,
}

/// What a conditional delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    Missing,
    /// The record's `status` was the one that forbids deleting it.
    Refused,
}

#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Stores a new record (a JSON object); an id already taken is refused.
    async fn insert(&self, collection: Collection, id: &str, record: &Value) -> Result<()>;

    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Value>>;

    /// Sets `fields` (a JSON object) on the record if its `status` is still `from`; answers
    /// whether it did. The only way a record's status changes.
    async fn update_if_status(
        &self,
        collection: Collection,
        id: &str,
        from: &str,
        fields: &Value,
    ) -> Result<bool>;

    /// Deletes the record unless its `status` is `unless_status`.
    async fn delete(
        &self,
        collection: Collection,
        id: &str,
        unless_status: Option<&str>,
    ) -> Result<Deleted>;

    /// Up to `limit` records, newest first, from `after` on.
    async fn page(
        &self,
        collection: Collection,
        filter: &RecordFilter,
        limit: u32,
        after: Option<PageKey>,
    ) -> Result<Page<Value>>;

    /// The stored migrations (name and group) whose spec reads a shard through the secret
    /// `secret_arn`.
    async fn migrations_using_secret(&self, secret_arn: &str) -> Result<Vec<(String, String)>>;
}

pub struct DynamoDbRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbRecords {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbRecords {
            client,
            table: table.into(),
        }
    }

    fn key(collection: Collection, id: &str) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(collection.pk().into())),
            ("sk".to_string(), AttributeValue::S(collection.sk(id))),
        ])
    }
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn sdk_error<E>(operation: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) || matches!(
        err.code(),
        Some("ThrottlingException" | "ProvisionedThroughputExceededException")
    );
    Error::new(
        if retryable {
            ErrorCode::Retryable
        } else {
            ErrorCode::Internal
        },
        format!("state store {operation} failed"),
    )
    .with_source(err)
}

fn to_item(record: &Value) -> Result<Item> {
    serde_dynamo::to_item(record).map_err(|err| {
        Error::new(ErrorCode::Internal, "could not encode a record").with_source(err)
    })
}

fn from_item(mut item: Item) -> Result<Value> {
    item.remove("pk");
    item.remove("sk");
    serde_dynamo::from_item(item)
        .map_err(|err| Error::new(ErrorCode::Internal, "could not read a record").with_source(err))
}

/// `#<attribute> IN (:<attribute>0, ...)`, its name and values added to the expression's.
fn in_list(
    attribute: &str,
    allowed: &[String],
    names: &mut HashMap<String, String>,
    values: &mut Item,
) -> String {
    let placeholders: Vec<String> = (0..allowed.len())
        .map(|i| format!(":{attribute}{i}"))
        .collect();
    for (placeholder, value) in placeholders.iter().zip(allowed) {
        values.insert(placeholder.clone(), s(value));
    }
    names.insert(format!("#{attribute}"), attribute.to_string());
    format!("#{attribute} IN ({})", placeholders.join(", "))
}

fn is_condition_failure<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl RecordStore for DynamoDbRecords {
    async fn insert(&self, collection: Collection, id: &str, record: &Value) -> Result<()> {
        let mut item = to_item(record)?;
        item.extend(Self::key(collection, id));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Err(Error::new(
                ErrorCode::InvalidInput,
                format!("id: {id} is already used"),
            )),
            Err(err) => Err(sdk_error("PutItem", err)),
        }
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Value>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(collection, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        out.item.map(from_item).transpose()
    }

    async fn update_if_status(
        &self,
        collection: Collection,
        id: &str,
        from: &str,
        fields: &Value,
    ) -> Result<bool> {
        let fields = to_item(fields)?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(collection, id)))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from));
        let mut sets = Vec::new();
        for (i, (name, value)) in fields.into_iter().enumerate() {
            sets.push(format!("#f{i} = :f{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        match update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn delete(
        &self,
        collection: Collection,
        id: &str,
        unless_status: Option<&str>,
    ) -> Result<Deleted> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(collection, id)));
        delete = match unless_status {
            Some(status) => delete
                .condition_expression("attribute_exists(pk) AND #status <> :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status)),
            None => delete.condition_expression("attribute_exists(pk)"),
        };
        match delete.send().await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(err) if is_condition_failure(&err) => Ok(match self.get(collection, id).await? {
                None => Deleted::Missing,
                Some(_) => Deleted::Refused,
            }),
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }

    async fn page(
        &self,
        collection: Collection,
        filter: &RecordFilter,
        limit: u32,
        after: Option<PageKey>,
    ) -> Result<Page<Value>> {
        let limit = limit.clamp(1, 100) as usize;
        let mut conditions = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([(":pk".to_string(), s(collection.pk()))]);
        if let Some(groups) = &filter.groups {
            if groups.is_empty() {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            conditions.push(in_list("group", groups, &mut names, &mut values));
        }
        if let Some(statuses) = &filter.statuses {
            conditions.push(in_list("status", statuses, &mut names, &mut values));
        }
        let mut items = Vec::new();
        let mut start = after.map(|page| {
            HashMap::from([
                ("pk".to_string(), s(page.pk)),
                ("sk".to_string(), s(page.sk)),
            ])
        });
        // A filter may drop every item DynamoDB read: read on until the page is full, the
        // partition ends, or a few reads were spent (the caller continues with the token).
        for _ in 0..8 {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .set_filter_expression((!conditions.is_empty()).then(|| conditions.join(" AND ")))
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit((limit - items.len()) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sdk_error("Query", err))?;
            for item in out.items.unwrap_or_default() {
                items.push(from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() || items.len() >= limit {
                break;
            }
        }
        let next = start.and_then(|last| {
            let text = |name: &str| last.get(name)?.as_s().ok().cloned();
            Some(PageKey {
                pk: text("pk")?,
                sk: text("sk")?,
            })
        });
        Ok(Page { items, next })
    }

    async fn migrations_using_secret(&self, secret_arn: &str) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :state AND begins_with(pk, :migration)")
                .projection_expression("#name, #group, #spec.#source")
                .expression_attribute_names("#name", "name")
                .expression_attribute_names("#group", "group")
                .expression_attribute_names("#spec", "spec")
                .expression_attribute_names("#source", "source")
                .expression_attribute_values(":state", s("STATE"))
                .expression_attribute_values(":migration", s("MIGRATION#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| sdk_error("Scan", err))?;
            for item in out.items.unwrap_or_default() {
                let record = from_item(item)?;
                let uses = record["spec"]["source"]["shards"]
                    .as_array()
                    .is_some_and(|shards| {
                        shards
                            .iter()
                            .any(|shard| shard["connection"]["secret_arn"] == secret_arn)
                    });
                if uses {
                    let text = |k: &str| record[k].as_str().unwrap_or_default().to_string();
                    found.push((text("name"), text("group")));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
