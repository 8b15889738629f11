//! The validated spec. Defaults are filled in and every cross-reference has been checked, so
//! code downstream reads it without re-checking. It round-trips through JSON, as the spec
//! snapshot stored with each run. Only the types the spec file is also read into directly
//! deny unknown fields, so a snapshot with fields added by a newer ferry still reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::raw;
use super::template::KeyTemplate;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    /// Owner group, for API authorization.
    pub group: String,
    pub source: Source,
    pub target: Target,
    pub tables: Vec<TableSpec>,
    pub domains: BTreeMap<String, Domain>,
    pub verification: Verification,
    pub bootstrap: Bootstrap,
    pub poll: PollIntervals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub clone: CloneProvider,
    pub shards: Vec<Shard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloneProvider {
    /// Copy-on-write Aurora clone of each shard's cluster.
    Aurora,
    /// `CREATE DATABASE clone TEMPLATE source`, for local runs.
    PostgresTemplate,
    /// Read the source databases directly.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub name: String,
    /// Database name on the server; replaces the database of the connection URL.
    pub database: String,
    pub connection: Connection,
    /// Aurora cluster identifier; always present when the clone provider is Aurora.
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "raw::ConnectionFields")]
pub enum Connection {
    /// Name of an environment variable holding a `postgres://` URL.
    Env(String),
    /// Secrets Manager secret holding the credentials.
    SecretArn(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Prepended to every table name to give the DynamoDB table name.
    pub table_prefix: String,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub name: String,
    /// Shard names as written; a trailing `*` matches by prefix (see `Spec::shards_of`).
    pub shards: Vec<String>,
    pub source: TableSource,
    /// When given, every column reference in this table was checked against it.
    pub columns: Option<Vec<String>>,
    /// Columns whose values never appear in reports or logs.
    pub sensitive: Vec<String>,
    pub null_as: NullAs,
    /// Numeric columns whose values beyond DynamoDB's 38 significant digits (or its exponent
    /// range) are stored as S with PostgreSQL's exact text instead of failing the chunk.
    pub wide_numbers_as_string: Vec<String>,
    pub compression: Compression,
    pub chunk_target_mb: Option<u64>,
    /// An integer column: chunks are ranges of its values instead of ctid block ranges.
    pub chunk_key: Option<String>,
    pub key: KeySchema,
    pub attributes: Attributes,
    pub ttl: Option<Ttl>,
    pub dynamodb: DynamoDbSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "raw::TableSourceFields")]
pub enum TableSource {
    Table(String),
    Query(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NullAs {
    /// A NULL column is left out of the item.
    #[default]
    Omit,
    /// A NULL column becomes a DynamoDB NULL attribute.
    Null,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

/// A partition key and an optional sort key, of the table or of a GSI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    pub attribute: String,
    pub template: KeyTemplate,
    #[serde(rename = "type")]
    pub key_type: KeyType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[default]
    #[serde(rename = "S")]
    String,
    /// Only for a template that is exactly one placeholder.
    #[serde(rename = "N")]
    Number,
    #[serde(rename = "B")]
    Binary,
}

/// Which columns become item attributes, and under which names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub selection: ColumnSelection,
    /// Column name to attribute name; unlisted columns keep their names.
    pub rename: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnSelection {
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl ColumnSelection {
    pub fn includes(&self, column: &str) -> bool {
        match self {
            ColumnSelection::All => true,
            ColumnSelection::Include(columns) => columns.iter().any(|c| c == column),
            ColumnSelection::Exclude(columns) => !columns.iter().any(|c| c == column),
        }
    }
}

/// The item expires at the date in `column`, written as epoch seconds to `attribute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ttl {
    pub attribute: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamoDbSettings {
    pub billing: Billing,
    pub pitr: bool,
    /// Kinesis streaming destination, enabled after import unless the run is a dry run.
    pub streaming: Option<Streaming>,
    pub tags: BTreeMap<String, String>,
    pub gsis: Vec<Gsi>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "billing_mode", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Billing {
    PayPerRequest,
    Provisioned {
        read_capacity: u64,
        write_capacity: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "raw::StreamingFields")]
pub enum Streaming {
    KinesisStreamArn(String),
    KinesisStreamName(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gsi {
    pub name: String,
    pub key: KeySchema,
    pub projection: Projection,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    #[default]
    #[serde(rename = "ALL")]
    All,
    #[serde(rename = "KEYS_ONLY")]
    KeysOnly,
    /// The keys plus these attributes.
    #[serde(rename = "include")]
    Include(Vec<String>),
}

/// A group of tables migrated together by one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Most differing items a run may have and still succeed.
    pub tolerance: u64,
    /// Most differences listed in the report.
    pub sample_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "engine", rename_all = "kebab-case")]
pub enum Bootstrap {
    /// Extract chunks with the `bootstrap` Lambda.
    Lambda,
    /// Run an existing Spark job on EMR Serverless.
    EmrServerless(EmrServerless),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmrServerless {
    pub application_name: String,
    /// `s3://` prefix; the newest JAR under it is run.
    pub jar_prefix: String,
    pub entry_point_class: String,
    /// Found from the application at run time when absent.
    pub execution_role_arn: Option<String>,
    pub spark_submit_parameters: Option<String>,
}

/// Seconds between status checks of the slow AWS operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollIntervals {
    pub clone_seconds: u32,
    pub import_seconds: u32,
    pub export_seconds: u32,
}
