//! The target DynamoDB tables, as far as a connection test needs them.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use ferry_core::{Error, ErrorCode, Result};

#[async_trait]
pub trait TargetTables: Send + Sync {
    /// `None` when the table does not exist, else its (approximate) item count.
    async fn item_count(&self, table: &str) -> Result<Option<i64>>;
}

pub struct DynamoDbTargets {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoDbTargets {
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        DynamoDbTargets { client }
    }
}

#[async_trait]
impl TargetTables for DynamoDbTargets {
    async fn item_count(&self, table: &str) -> Result<Option<i64>> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(out) => Ok(Some(
                out.table.and_then(|t| t.item_count).unwrap_or_default(),
            )),
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
            Err(err) => Err(Error::new(
                ErrorCode::Retryable,
                format!("cannot describe the DynamoDB table {table}"),
            )
            .with_source(err)),
        }
    }
}
