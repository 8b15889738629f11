//! The shared harness of ferry's integration tests.
//!
//! Tests need a real PostgreSQL and the local AWS emulator. The harness finds them through
//! `FERRY_DATABASE_URL` and `AWS_ENDPOINT_URL` (what `scripts/test.sh` exports), or else starts
//! them with `scripts/local-stack.sh start`, which is idempotent and locked, so the many test
//! processes of one run share one stack. Nothing is ever skipped: when the services cannot be
//! found or started, the test fails and says how to start them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where the local services listen.
#[derive(Debug, Clone)]
pub struct Services {
    /// Admin URL of the test PostgreSQL (database `postgres`).
    pub database_url: String,
    /// The AWS emulator's endpoint.
    pub aws_endpoint: String,
    pub aws_region: String,
    /// The CA that signed the test PostgreSQL's TLS certificate (`FERRY_PG_CA_FILE`).
    pub pg_ca_file: Option<String>,
}

impl Services {
    /// Environment variables that point a `ferry` process at these services.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FERRY_DATABASE_URL", self.database_url.clone()),
            ("AWS_ENDPOINT_URL", self.aws_endpoint.clone()),
            ("AWS_REGION", self.aws_region.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ]
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The local services, found or started once per process.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let env = match (from_env("FERRY_DATABASE_URL"), from_env("AWS_ENDPOINT_URL")) {
            (Some(database_url), Some(aws_endpoint)) => {
                let mut env = HashMap::from([
                    ("FERRY_DATABASE_URL".to_string(), database_url),
                    ("AWS_ENDPOINT_URL".to_string(), aws_endpoint),
                ]);
                if let Some(ca) = from_env("FERRY_PG_CA_FILE") {
                    env.insert("FERRY_PG_CA_FILE".to_string(), ca);
                }
                env
            }
            _ => start_local_stack(),
        };
        Services {
            database_url: env["FERRY_DATABASE_URL"].clone(),
            aws_endpoint: env["AWS_ENDPOINT_URL"].clone(),
            aws_region: from_env("AWS_REGION").unwrap_or_else(|| "us-east-1".to_string()),
            pg_ca_file: env.get("FERRY_PG_CA_FILE").cloned(),
        }
    })
}

fn start_local_stack() -> HashMap<String, String> {
    let script = repo_root().join("scripts/local-stack.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("start")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    if !output.status.success() {
        panic!(
            "the integration tests need PostgreSQL and the AWS emulator, and starting them \
             failed.\nStart them yourself with `scripts/local-stack.sh start` and export what \
             `scripts/local-stack.sh env` prints (FERRY_DATABASE_URL, AWS_ENDPOINT_URL), or run \
             `scripts/test.sh`.\n--- local-stack.sh said:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let env_file = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let text = std::fs::read_to_string(&env_file)
        .unwrap_or_else(|err| panic!("cannot read the local stack's env file {env_file}: {err}"));
    parse_env_file(&text)
}

/// Reads `export NAME=value` lines (values may be single- or double-quoted).
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| {
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// Admin URL of the test PostgreSQL.
pub fn postgres_url() -> String {
    services().database_url.clone()
}

/// The same server, database `database`.
pub fn postgres_url_for(database: &str) -> String {
    let base = postgres_url();
    let (server, _) = base
        .rsplit_once('/')
        .expect("FERRY_DATABASE_URL ends in /<database>");
    format!("{server}/{database}")
}

/// An AWS SDK configuration pointing at the emulator, with its dummy credentials.
pub async fn aws_config() -> SdkConfig {
    let services = services();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&services.aws_endpoint)
        .region(Region::new(services.aws_region.clone()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "ferry-tests",
        ))
        .load()
        .await
}

/// A fresh name for a test's own database or table prefix: lowercase, safe as an unquoted SQL
/// identifier and as part of a DynamoDB table name, unique across parallel tests and runs.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "t_{prefix}_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// The `ferry` binary built alongside the tests (`target/<profile>/ferry`).
pub fn ferry_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/integration-<hash> -> target/<profile>/ferry
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let binary = profile_dir.join("ferry");
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p ferry-cli`; scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A `ferry` command with the local services in its environment.
pub fn ferry() -> Command {
    let mut command = Command::new(ferry_binary());
    command.envs(services().env());
    command
}

/// An S3 client for the emulator (path-style addressing) and a fresh bucket made with it.
pub async fn s3_bucket(prefix: &str) -> (aws_sdk_s3::Client, String) {
    let config = aws_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique_name(prefix).replace('_', "-");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    (s3, bucket)
}

/// An empty on-demand table with a string partition key `pk`.
pub async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types as ddb;
    dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ddb::ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            ddb::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(ddb::KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(ddb::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
}

/// ImportTable (DynamoDB JSON, GZIP) from `bucket`/`prefix` into a new on-demand table whose
/// key attributes are `keys` (partition key first, then the sort key if any), and waits until
/// the import has COMPLETED; any other end fails the test with the import's failure.
pub async fn import_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    bucket: &str,
    prefix: &str,
    table_name: &str,
    keys: &[(&str, aws_sdk_dynamodb::types::ScalarAttributeType)],
) {
    import_table_within(
        dynamodb,
        bucket,
        prefix,
        table_name,
        keys,
        std::time::Duration::from_secs(30),
    )
    .await
}

/// [`import_table`], waiting up to `limit` for the import (a million items take a minute).
pub async fn import_table_within(
    dynamodb: &aws_sdk_dynamodb::Client,
    bucket: &str,
    prefix: &str,
    table_name: &str,
    keys: &[(&str, aws_sdk_dynamodb::types::ScalarAttributeType)],
    limit: std::time::Duration,
) {
    use aws_sdk_dynamodb::types as ddb;
    let mut params = ddb::TableCreationParameters::builder()
        .table_name(table_name)
        .billing_mode(ddb::BillingMode::PayPerRequest);
    for (i, (name, kind)) in keys.iter().enumerate() {
        let key_type = if i == 0 {
            ddb::KeyType::Hash
        } else {
            ddb::KeyType::Range
        };
        params = params
            .attribute_definitions(
                ddb::AttributeDefinition::builder()
                    .attribute_name(*name)
                    .attribute_type(kind.clone())
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                ddb::KeySchemaElement::builder()
                    .attribute_name(*name)
                    .key_type(key_type)
                    .build()
                    .expect("key schema element"),
            );
    }
    let import = dynamodb
        .import_table()
        .s3_bucket_source(
            ddb::S3BucketSource::builder()
                .s3_bucket(bucket)
                .s3_key_prefix(prefix)
                .build()
                .expect("S3 source"),
        )
        .input_format(ddb::InputFormat::DynamodbJson)
        .input_compression_type(ddb::InputCompressionType::Gzip)
        .table_creation_parameters(params.build().expect("table parameters"))
        .send()
        .await
        .expect("ImportTable");
    let arn = import
        .import_table_description()
        .and_then(|d| d.import_arn())
        .expect("an import ARN")
        .to_owned();
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        let described = dynamodb
            .describe_import()
            .import_arn(&arn)
            .send()
            .await
            .expect("DescribeImport");
        let description = described
            .import_table_description()
            .expect("an import description");
        match description.import_status() {
            Some(ddb::ImportStatus::Completed) => return,
            Some(ddb::ImportStatus::InProgress) | None => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await
            }
            other => panic!(
                "import ended {other:?}: {:?} {:?}",
                description.failure_code(),
                description.failure_message()
            ),
        }
    }
    panic!("import {arn} did not complete in {limit:?}");
}

/// A client of `database` on the test PostgreSQL, its connection driven in the background.
pub async fn connect(database: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&postgres_url_for(database), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect to the test database {database}: {err}"));
    tokio::spawn(connection);
    client
}

/// A fresh database (named from `prefix`) on the test PostgreSQL, holding what `sql` makes,
/// with its name and a client of it.
pub async fn database(prefix: &str, sql: &str) -> (String, tokio_postgres::Client) {
    let name = unique_name(prefix);
    connect("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let client = connect(&name).await;
    client.batch_execute(sql).await.expect("the test schema");
    (name, client)
}
