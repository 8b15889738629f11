//! `plan`: splits every table of a domain into chunks (read from the clones), writes the chunk
//! list the bootstrap Distributed Map reads, and describes each target table the way the
//! import and export machines need it (ImportTable's TableCreationParameters, tags, TTL, PITR,
//! streaming). Everything environment-specific comes from the spec snapshot of the run.
//!
//! With `engine = "emr-serverless"` the plan also describes the Spark job run (the newest JAR
//! under the spec's prefix, its arguments): the job writes the import files under
//! `runs/<run>/emr/<table>/`, which is where the import reads them, while the chunk Map still
//! extracts every chunk with ferry's own mapping into `runs/<run>/bootstrap/`, so verification
//! compares the job's output with an independent reading of the source.

use std::collections::HashMap;

use ferry_core::spec::{
    Billing, Bootstrap, Compression, EmrServerless, KeySchema, KeyType, Projection, Spec,
    Streaming, TableSource, TableSpec,
};
use ferry_core::{Error, ErrorCode, Result, RunId};
use ferry_pipeline::extract::describe_source;
use ferry_pipeline::plan::{
    key_bounds, plan_table, plan_table_by_key, plan_whole, table_size, write_chunk_list, Chunk,
};
use ferry_pipeline::verify::export_prefix;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::check_clone::{domain_clones, shard_of};
use crate::source::connect;
use crate::Context;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub migration: String,
    pub run_id: RunId,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub bucket: String,
    /// A JSON array of [`Chunk`]s: the bootstrap Distributed Map's ItemReader.
    pub chunk_list_key: String,
    pub chunks_total: u64,
    /// Where the Distributed Map writes its results.
    pub results_prefix: String,
    /// `lambda` or `emr-serverless`: the bootstrap machine's branch.
    pub engine: String,
    /// The Spark job run of the `emr-serverless` engine; absent for `lambda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emr: Option<EmrJob>,
    pub tables: Vec<TableTarget>,
}

/// What the bootstrap machine needs to start the EMR Serverless job run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmrJob {
    /// Found by name through ListApplications.
    pub application_name: String,
    /// `s3://bucket/key.jar`: the newest JAR under the spec's `jar_prefix`.
    pub jar: String,
    /// `--class <entry_point_class>`, then the spec's own parameters.
    pub spark_submit_parameters: String,
    /// The job's contract: `--migration M --run R --domain D --chunk-list s3://… --output
    /// s3://…/runs/<run>/emr/ --compression GZIP`; it writes `<output><table>/*`.
    pub arguments: Vec<String>,
    /// From the spec; absent: the application's `FerryExecutionRoleArn` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    pub job_name: String,
    /// StartJobRun's idempotency token: a retried start never makes a second job run.
    pub client_token: String,
}

/// `runs/<run>/emr/`: where the Spark job writes each table's import files.
pub fn emr_output_prefix(run: &str) -> String {
    format!("runs/{run}/emr/")
}

/// One target table, as the import, export and verify machines need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableTarget {
    pub table: String,
    pub dynamodb_table: String,
    /// Where ImportTable reads the table's chunk objects.
    pub data_prefix: String,
    /// Where ExportTableToPointInTime writes.
    pub export_prefix: String,
    /// ImportTable's InputCompressionType.
    pub input_compression: String,
    /// ImportTable's TableCreationParameters.
    pub creation: Value,
    /// ImportTable's and ExportTableToPointInTime's idempotency token.
    pub client_token: String,
    /// TagResource's Tags; absent when the spec gives none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Value>,
    /// UpdateTimeToLive's TimeToLiveSpecification; absent without TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Value>,
    pub pitr: bool,
    /// The Kinesis stream of the streaming destination; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    let spec = cx.spec(&request.migration, request.run_id).await?;
    let tables = spec.domain_tables(&request.domain).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidInput,
            format!("domain: the spec has no domain {:?}", request.domain),
        )
    })?;
    let run = request.run_id.to_string();
    let provider = cx.clones.get(spec.source.clone);
    let mut clients = HashMap::new();
    for clone in domain_clones(cx, &spec, &request.domain, request.run_id)? {
        let shard = shard_of(&spec, &clone.shard)?;
        let config = provider.connection(shard, &clone.clone).await?;
        clients.insert(
            clone.shard.clone(),
            connect(&config, &shard.name, &clone.clone).await?,
        );
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut targets = Vec::new();
    for table in tables {
        let mut sizes = Vec::new();
        let mut bounds = Vec::new();
        for shard in spec.shards_of(table) {
            let client = &clients[&shard.name];
            let in_shard =
                |e: ferry_pipeline::extract::ExtractError| Error::from(e).with_context(&shard.name);
            // Describing a query prepares it: a query the source cannot run fails here.
            let source = describe_source(client, &table.source)
                .await
                .map_err(in_shard)?;
            if source.query.is_none() {
                sizes.push((
                    shard.name.clone(),
                    table_size(client, &source).await.map_err(in_shard)?,
                ));
            }
            if let Some(key) = &table.chunk_key {
                bounds.push(key_bounds(client, &source, key).await.map_err(in_shard)?);
            }
        }
        let planned = match &table.source {
            TableSource::Table(_) if table.chunk_key.is_some() => {
                plan_table_by_key(&run, table, &sizes, &bounds)
            }
            TableSource::Table(_) => plan_table(&run, table, &sizes),
            TableSource::Query(_) => {
                let shards: Vec<String> = spec
                    .shards_of(table)
                    .iter()
                    .map(|shard| shard.name.clone())
                    .collect();
                plan_whole(&run, table, &shards)
            }
        }
        .map_err(|message| Error::new(ErrorCode::InvalidSpec, message))?;
        tracing::info!(table = %table.name, chunks = planned.len(), "planned");
        chunks.extend(planned);
        let mut target = table_target(&spec, table, &run);
        if matches!(spec.bootstrap, Bootstrap::EmrServerless(_)) {
            // The job writes GZIP (what every ImportTable and the emulator read).
            target.data_prefix = format!("{}{}/", emr_output_prefix(&run), table.name);
            target.input_compression = "GZIP".to_string();
        }
        targets.push(target);
    }
    // A JSON array: the ItemReader input type both AWS and the emulator read.
    let chunk_list_key = write_chunk_list(cx.sink.as_ref(), &run, &request.domain, &chunks)
        .await
        .map_err(|err| {
            Error::new(ErrorCode::Retryable, "cannot write the chunk list").with_source(err)
        })?;
    let emr = match &spec.bootstrap {
        Bootstrap::Lambda => None,
        Bootstrap::EmrServerless(settings) => {
            Some(emr_job(cx, &spec, settings, &request.domain, &run, &chunk_list_key).await?)
        }
    };
    Ok(Response {
        bucket: cx.bucket.clone(),
        chunk_list_key,
        chunks_total: chunks.len() as u64,
        results_prefix: format!("runs/{run}/bootstrap-results/{}/", request.domain),
        engine: match emr {
            None => "lambda",
            Some(_) => "emr-serverless",
        }
        .to_string(),
        emr,
        tables: targets,
    })
}

async fn emr_job(
    cx: &Context,
    spec: &Spec,
    settings: &EmrServerless,
    domain: &str,
    run: &str,
    chunk_list_key: &str,
) -> Result<EmrJob> {
    let jar = cx
        .artifacts
        .newest(&settings.jar_prefix, ".jar")
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::BootstrapFailed,
                format!(
                    "bootstrap.emr_serverless.jar_prefix: no .jar object under {}",
                    settings.jar_prefix
                ),
            )
        })?;
    let bucket = &cx.bucket;
    let mut spark_submit_parameters = format!("--class {}", settings.entry_point_class);
    if let Some(extra) = settings.spark_submit_parameters.as_deref() {
        spark_submit_parameters.push(' ');
        spark_submit_parameters.push_str(extra);
    }
    let arguments = [
        ("--migration", spec.name.clone()),
        ("--run", run.to_string()),
        ("--domain", domain.to_string()),
        ("--chunk-list", format!("s3://{bucket}/{chunk_list_key}")),
        (
            "--output",
            format!("s3://{bucket}/{}", emr_output_prefix(run)),
        ),
        ("--compression", "GZIP".to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect();
    // Job names and client tokens are short in EMR Serverless: 1–256 and 1–64 characters.
    let token = xxhash_rust::xxh3::xxh3_128(format!("{}/{run}/{domain}", spec.name).as_bytes());
    Ok(EmrJob {
        application_name: settings.application_name.clone(),
        jar,
        spark_submit_parameters,
        arguments,
        execution_role_arn: settings.execution_role_arn.clone(),
        job_name: format!("ferry-{run}-{domain}").chars().take(256).collect(),
        client_token: format!("{token:032x}"),
    })
}

trait WithContext {
    fn with_context(self, shard: &str) -> Self;
}

impl WithContext for Error {
    /// Prefixes the message with the shard, keeping code and source.
    fn with_context(self, shard: &str) -> Self {
        let message = format!("shard {shard}: {}", self.message());
        let code = self.code();
        Error::new(code, message).with_source(self)
    }
}

/// The import/export description of one table, from the spec alone.
pub fn table_target(spec: &Spec, table: &TableSpec, run: &str) -> TableTarget {
    let dynamodb_table = spec.dynamodb_table_name(table);
    let settings = &table.dynamodb;
    let mut definitions: Vec<(String, KeyType)> = Vec::new();
    let mut define = |key: &KeySchema| {
        for attr in std::iter::once(&key.partition).chain(key.sort.as_ref()) {
            if !definitions.iter().any(|(name, _)| *name == attr.attribute) {
                definitions.push((attr.attribute.clone(), attr.key_type));
            }
        }
    };
    define(&table.key);
    for gsi in &settings.gsis {
        define(&gsi.key);
    }
    let throughput = match settings.billing {
        Billing::PayPerRequest => None,
        Billing::Provisioned {
            read_capacity,
            write_capacity,
        } => {
            Some(json!({"ReadCapacityUnits": read_capacity, "WriteCapacityUnits": write_capacity}))
        }
    };
    let mut creation = json!({
        "TableName": dynamodb_table,
        "AttributeDefinitions": definitions.iter().map(|(name, kind)| json!({
            "AttributeName": name,
            "AttributeType": key_type(*kind),
        })).collect::<Vec<_>>(),
        "KeySchema": key_schema(&table.key),
        "BillingMode": if throughput.is_some() { "PROVISIONED" } else { "PAY_PER_REQUEST" },
    });
    if let Some(t) = &throughput {
        creation["ProvisionedThroughput"] = t.clone();
    }
    if !settings.gsis.is_empty() {
        creation["GlobalSecondaryIndexes"] = settings
            .gsis
            .iter()
            .map(|gsi| {
                let projection = match &gsi.projection {
                    Projection::All => json!({"ProjectionType": "ALL"}),
                    Projection::KeysOnly => json!({"ProjectionType": "KEYS_ONLY"}),
                    Projection::Include(attributes) => {
                        json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": attributes})
                    }
                };
                let mut index = json!({
                    "IndexName": gsi.name,
                    "KeySchema": key_schema(&gsi.key),
                    "Projection": projection,
                });
                if let Some(t) = &throughput {
                    index["ProvisionedThroughput"] = t.clone();
                }
                index
            })
            .collect();
    }
    let token = xxhash_rust::xxh3::xxh3_128(format!("{run}/{dynamodb_table}").as_bytes());
    TableTarget {
        table: table.name.clone(),
        data_prefix: Chunk::data_prefix(run, &table.name),
        export_prefix: export_prefix(run, &table.name),
        input_compression: match table.compression {
            Compression::Gzip => "GZIP",
            Compression::Zstd => "ZSTD",
        }
        .to_string(),
        creation,
        client_token: format!("{token:032x}"),
        tags: settings
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
        ttl: table
            .ttl
            .as_ref()
            .map(|ttl| json!({"Enabled": true, "AttributeName": ttl.attribute})),
        pitr: settings.pitr,
        stream_name: settings.streaming.as_ref().map(|s| match s {
            Streaming::KinesisStreamName(name) => name.clone(),
            Streaming::KinesisStreamArn(arn) => arn
                .rsplit_once("stream/")
                .map(|(_, name)| name.to_string())
                .unwrap_or_else(|| arn.clone()),
        }),
        dynamodb_table,
    }
}

fn key_type(kind: KeyType) -> &'static str {
    match kind {
        KeyType::String => "S",
        KeyType::Number => "N",
        KeyType::Binary => "B",
    }
}

fn key_schema(key: &KeySchema) -> Value {
    let mut out = vec![json!({"AttributeName": key.partition.attribute, "KeyType": "HASH"})];
    if let Some(sort) = &key.sort {
        out.push(json!({"AttributeName": sort.attribute, "KeyType": "RANGE"}));
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_tables_describe_their_import() {
        let spec = Spec::from_path(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/rates-availability.toml"),
        )
        .unwrap();
        let target = table_target(&spec, spec.table("BaseRate").unwrap(), "RUN");
        assert_eq!(target.dynamodb_table, "ferry-demo-BaseRate");
        assert_eq!(target.data_prefix, "runs/RUN/bootstrap/BaseRate/");
        assert_eq!(
            target.creation["KeySchema"],
            json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        );
        assert_eq!(
            target.creation["AttributeDefinitions"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            target.creation["GlobalSecondaryIndexes"][0]["Projection"],
            json!({"ProjectionType": "KEYS_ONLY"})
        );
        assert_eq!(target.creation["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(target.tags.len(), 2);
        assert_eq!(
            target.ttl,
            Some(json!({"Enabled": true, "AttributeName": "expiresAt"}))
        );
        assert_eq!(target.client_token.len(), 32);
        let value = serde_json::to_value(&target).unwrap();
        assert!(value.get("stream_name").is_none(), "{value}");
    }
}
