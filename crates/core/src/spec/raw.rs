//! The spec file's shape as serde reads it: field names, types and enum values only. Meaning
//! (ranges, references, collisions) is checked in `validate`, which sees all of it at once.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{
    CloneProvider, Compression, Connection, Domain, EmrServerless, KeyType, NullAs, Projection,
    SourceKind, Streaming, TableSource, Target, Ttl,
};

// Numbers are read as i64 so that a negative or zero value gets validation's message
// ("must be at least 1, got 0") rather than serde's type error.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub name: String,
    pub group: Option<String>,
    pub source: RawSource,
    pub target: Target,
    #[serde(default)]
    pub tables: Vec<RawTable>,
    #[serde(default)]
    pub domains: BTreeMap<String, Domain>,
    #[serde(default)]
    pub verification: RawVerification,
    #[serde(default)]
    pub bootstrap: RawBootstrap,
    #[serde(default)]
    pub poll: RawPoll,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub kind: SourceKind,
    pub clone: CloneProvider,
    #[serde(default)]
    pub shards: Vec<RawShard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShard {
    pub name: String,
    pub database: Option<String>,
    pub connection: Connection,
    pub cluster: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub name: String,
    pub shards: Vec<String>,
    pub source: TableSource,
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub sensitive: Vec<String>,
    #[serde(default)]
    pub null_as: NullAs,
    #[serde(default)]
    pub wide_numbers_as_string: Vec<String>,
    #[serde(default)]
    pub compression: Compression,
    pub chunk_target_mb: Option<i64>,
    pub chunk_key: Option<String>,
    pub key: RawKeySchema,
    #[serde(default)]
    pub attributes: RawAttributes,
    pub ttl: Option<Ttl>,
    #[serde(default)]
    pub dynamodb: RawDynamoDb,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeySchema {
    pub partition: RawKeyAttribute,
    pub sort: Option<RawKeyAttribute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyAttribute {
    pub attribute: String,
    pub template: String,
    #[serde(rename = "type", default)]
    pub key_type: KeyType,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttributes {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDynamoDb {
    #[serde(default)]
    pub billing_mode: BillingMode,
    pub read_capacity: Option<i64>,
    pub write_capacity: Option<i64>,
    pub pitr: Option<bool>,
    pub streaming: Option<Streaming>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub gsis: Vec<RawGsi>,
}

#[derive(Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum BillingMode {
    #[default]
    PayPerRequest,
    Provisioned,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGsi {
    pub name: String,
    pub partition: RawKeyAttribute,
    pub sort: Option<RawKeyAttribute>,
    #[serde(default)]
    pub projection: Projection,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerification {
    pub tolerance: Option<i64>,
    pub sample_size: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootstrap {
    #[serde(default)]
    pub engine: BootstrapEngine,
    pub emr_serverless: Option<EmrServerless>,
}

#[derive(Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum BootstrapEngine {
    #[default]
    Lambda,
    EmrServerless,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPoll {
    pub clone_seconds: Option<i64>,
    pub import_seconds: Option<i64>,
    pub export_seconds: Option<i64>,
}

// The spec writes a choice between two forms as a one-key table, `{ env = "..." }` or
// `{ secret_arn = "..." }`. Reading it through a struct of options, rather than as a plain
// enum, lets a wrong number of keys get a message that names both keys.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a table { env = "..." } or { secret_arn = "..." }"#
)]
pub(super) struct ConnectionFields {
    env: Option<String>,
    secret_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a table { table = "..." } or { query = "..." }"#
)]
pub(super) struct TableSourceFields {
    table: Option<String>,
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = r#"a table { kinesis_stream_arn = "..." } or { kinesis_stream_name = "..." }"#
)]
pub(super) struct StreamingFields {
    kinesis_stream_arn: Option<String>,
    kinesis_stream_name: Option<String>,
}

impl TryFrom<ConnectionFields> for Connection {
    type Error = String;

    fn try_from(fields: ConnectionFields) -> Result<Self, String> {
        exactly_one(
            ("env", fields.env, Connection::Env),
            ("secret_arn", fields.secret_arn, Connection::SecretArn),
        )
    }
}

impl TryFrom<TableSourceFields> for TableSource {
    type Error = String;

    fn try_from(fields: TableSourceFields) -> Result<Self, String> {
        exactly_one(
            ("table", fields.table, TableSource::Table),
            ("query", fields.query, TableSource::Query),
        )
    }
}

impl TryFrom<StreamingFields> for Streaming {
    type Error = String;

    fn try_from(fields: StreamingFields) -> Result<Self, String> {
        exactly_one(
            (
                "kinesis_stream_arn",
                fields.kinesis_stream_arn,
                Streaming::KinesisStreamArn,
            ),
            (
                "kinesis_stream_name",
                fields.kinesis_stream_name,
                Streaming::KinesisStreamName,
            ),
        )
    }
}

type Choice<'a, T> = (&'a str, Option<String>, fn(String) -> T);

fn exactly_one<T>(
    (first_key, first, make_first): Choice<'_, T>,
    (second_key, second, make_second): Choice<'_, T>,
) -> Result<T, String> {
    match (first, second) {
        (Some(value), None) => Ok(make_first(value)),
        (None, Some(value)) => Ok(make_second(value)),
        _ => Err(format!(
            "expected exactly one of `{first_key}` or `{second_key}`"
        )),
    }
}
