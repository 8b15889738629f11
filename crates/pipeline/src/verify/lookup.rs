//! The diff's target side by key: when few keys fall in the unequal buckets, the target's items
//! are read from the live table with BatchGetItem instead of re-reading the whole export. The
//! caller checks the fetched items against the export's bucket digests and re-reads the export
//! when they disagree (an extra item in the target, or a table changed since its export).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as Sdk, KeysAndAttributes};
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::VerifyError;
use crate::value::{AttributeValue, Item};

/// BatchGetItem takes at most 100 keys per call.
const KEYS_PER_CALL: usize = 100;
/// BatchGetItem calls in flight at once.
const CALLS_AT_ONCE: usize = 4;
/// Calls that left keys unprocessed (throttling) are repeated this many times at most.
const UNPROCESSED_ROUNDS: u32 = 8;

/// Reads target items by key.
#[async_trait]
pub trait ItemLookup: Send + Sync + std::fmt::Debug {
    /// The items with these keys (each given as an item of its key attributes only); keys the
    /// table does not hold are left out.
    async fn get_items(&self, keys: &[Item]) -> Result<Vec<Item>, VerifyError>;
}

/// A DynamoDB table, read with strongly consistent BatchGetItem calls.
#[derive(Debug, Clone)]
pub struct DynamoDbLookup {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbLookup {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbLookup {
            client,
            table: table.into(),
        }
    }

    fn error(&self, source: impl std::error::Error + Send + Sync + 'static) -> VerifyError {
        VerifyError::S3 {
            key: format!("table {}", self.table),
            operation: "BatchGetItem",
            source: Box::new(source),
        }
    }
}

impl DynamoDbLookup {
    /// One BatchGetItem of at most 100 keys, repeated for the keys it leaves unprocessed.
    async fn get_batch(&self, batch: &[Item]) -> Result<Vec<Item>, VerifyError> {
        let mut found = Vec::new();
        let mut pending: Vec<HashMap<String, Sdk>> = batch.iter().map(to_sdk_item).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            if rounds == UNPROCESSED_ROUNDS {
                return Err(self.error(std::io::Error::other(format!(
                    "{} keys still unprocessed after {rounds} calls",
                    pending.len()
                ))));
            }
            if rounds > 0 {
                let backoff = 50u64 << rounds.min(5);
                tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
            }
            rounds += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| self.error(e))?;
            let answer = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| self.error(e))?;
            if let Some(items) = answer.responses().and_then(|r| r.get(&self.table)) {
                found.extend(items.iter().map(from_sdk_item));
            }
            if let Some(left) = answer.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = left.keys().to_vec();
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl ItemLookup for DynamoDbLookup {
    async fn get_items(&self, keys: &[Item]) -> Result<Vec<Item>, VerifyError> {
        let calls: Vec<_> = keys
            .chunks(KEYS_PER_CALL)
            .map(|batch| self.get_batch(batch))
            .collect();
        let batches: Vec<Vec<Item>> = futures_util::stream::iter(calls)
            .buffer_unordered(CALLS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }
}

fn to_sdk_item(item: &Item) -> HashMap<String, Sdk> {
    item.attributes
        .iter()
        .map(|(name, value)| (name.clone(), to_sdk(value)))
        .collect()
}

fn to_sdk(value: &AttributeValue) -> Sdk {
    match value {
        AttributeValue::S(s) => Sdk::S(s.clone()),
        AttributeValue::N(n) => Sdk::N(n.clone()),
        AttributeValue::B(b) => Sdk::B(Blob::new(b.clone())),
        AttributeValue::Bool(b) => Sdk::Bool(*b),
        AttributeValue::Null => Sdk::Null(true),
        AttributeValue::L(values) => Sdk::L(values.iter().map(to_sdk).collect()),
        AttributeValue::M(entries) => Sdk::M(
            entries
                .iter()
                .map(|(name, value)| (name.clone(), to_sdk(value)))
                .collect(),
        ),
        AttributeValue::Ss(members) => Sdk::Ss(members.clone()),
        AttributeValue::Ns(members) => Sdk::Ns(members.clone()),
        AttributeValue::Bs(members) => Sdk::Bs(members.iter().cloned().map(Blob::new).collect()),
    }
}

fn from_sdk_item(item: &HashMap<String, Sdk>) -> Item {
    Item {
        attributes: item
            .iter()
            .map(|(name, value)| (name.clone(), from_sdk(value)))
            .collect(),
    }
}

/// A value the SDK gives; a type it does not know (a newer API) becomes NULL, which hashes
/// differently from any real value, so such an item is reported as different, never hidden.
fn from_sdk(value: &Sdk) -> AttributeValue {
    match value {
        Sdk::S(s) => AttributeValue::S(s.clone()),
        Sdk::N(n) => AttributeValue::N(n.clone()),
        Sdk::B(b) => AttributeValue::B(b.clone().into_inner()),
        Sdk::Bool(b) => AttributeValue::Bool(*b),
        Sdk::L(values) => AttributeValue::L(values.iter().map(from_sdk).collect()),
        Sdk::M(entries) => AttributeValue::M(
            entries
                .iter()
                .map(|(name, value)| (name.clone(), from_sdk(value)))
                .collect(),
        ),
        Sdk::Ss(members) => AttributeValue::Ss(members.clone()),
        Sdk::Ns(members) => AttributeValue::Ns(members.clone()),
        Sdk::Bs(members) => {
            AttributeValue::Bs(members.iter().map(|b| b.clone().into_inner()).collect())
        }
        _ => AttributeValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::ItemHasher;

    #[test]
    fn every_type_round_trips_through_the_sdk_with_its_hash() {
        let s = |v: &str| AttributeValue::S(v.into());
        let item = Item {
            attributes: vec![
                ("pk".into(), s("K#1")),
                ("n".into(), AttributeValue::N("1.50".into())),
                ("b".into(), AttributeValue::B(vec![0, 255, 7])),
                ("t".into(), AttributeValue::Bool(true)),
                ("z".into(), AttributeValue::Null),
                (
                    "l".into(),
                    AttributeValue::L(vec![s("x"), AttributeValue::N("2".into())]),
                ),
                (
                    "m".into(),
                    AttributeValue::M(vec![("a".into(), s("1")), ("b".into(), s("2"))]),
                ),
                (
                    "ss".into(),
                    AttributeValue::Ss(vec!["b".into(), "a".into()]),
                ),
                (
                    "ns".into(),
                    AttributeValue::Ns(vec!["1".into(), "2.0".into()]),
                ),
                ("bs".into(), AttributeValue::Bs(vec![vec![1], vec![2, 3]])),
            ],
        };
        let back = from_sdk_item(&to_sdk_item(&item));
        let mut hasher = ItemHasher::new(vec!["pk".into()]);
        assert_eq!(hasher.hash(&back).unwrap(), hasher.hash(&item).unwrap());
        assert_eq!(back.attributes.len(), item.attributes.len());
    }
}
