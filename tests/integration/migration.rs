//! The migration end to end: `statemachines/*.asl.json` in sfn-local, the functions' handlers
//! in-process, real PostgreSQL and the emulator. Each test has its own sample databases, state
//! table, bucket and DynamoDB table prefix; faults are injected by wrapping the task
//! dispatcher, so the definitions and handlers run exactly as they ship.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types as ddb;
use ferry_cli::local_run::{self, DispatcherWrapper, LocalRunOptions, LocalRunOutcome};
use ferry_core::state::{DynamoDbStateStore, NewRun};
use ferry_core::{ErrorCode, RunId, RunStatus, Spec};
use ferry_handlers::check_clone::{self, CloneRef};
use ferry_handlers::{Config, Context};
use ferry_pipeline::digest::ItemHasher;
use ferry_pipeline::extract::{describe_table, extract_chunk, ExtractOptions};
use ferry_pipeline::item::ItemMapper;
use ferry_pipeline::plan::Chunk;
use ferry_pipeline::sample::{self, SampleOptions};
use ferry_pipeline::sink::LocalDirSink;
use ferry_pipeline::value::{parse_item_line, Item};
use ferry_pipeline::verify::Verdict;
use serde_json::{json, Value};
use sfn_local::{Failure, TaskDispatcher, TaskRequest};

const PARTITIONS: u32 = 2;

/// One test's world.
struct World {
    prefix: String,
    spec: Spec,
    sdk: SdkConfig,
    cx: Context,
    dynamodb: aws_sdk_dynamodb::Client,
}

/// Sample databases (`rows` per table and partition) under a fresh prefix, the example spec
/// pointed at them (then edited by `edit`), a state table and a bucket.
async fn world(rows: u64, edit: impl Fn(String) -> String) -> World {
    let services = ferry_tests::services();
    // The example spec reads the source URL from FERRY_DATABASE_URL (nextest runs each test
    // in its own process, so setting it here touches no other test).
    if std::env::var("FERRY_DATABASE_URL").ok().as_deref() != Some(&services.database_url) {
        std::env::set_var("FERRY_DATABASE_URL", &services.database_url);
    }
    let prefix = format!("{}_", ferry_tests::unique_name("m"));
    sample::generate(
        &SampleOptions {
            database_url: services.database_url.clone(),
            partitions: PARTITIONS,
            rows_per_partition: rows,
            seed: 11,
            database_prefix: prefix.clone(),
        },
        &|_| {},
    )
    .await
    .expect("sample data");
    let text =
        std::fs::read_to_string(ferry_tests::repo_root().join("examples/rates-availability.toml"))
            .expect("the example spec");
    let text = text
        .replace(
            "name = \"rates-availability\"",
            &format!("name = \"{prefix}ra\""),
        )
        .replace(
            "table_prefix = \"ferry-demo-\"",
            &format!("table_prefix = \"{prefix}\""),
        )
        .replace("\"lipsdb\"", &format!("\"{prefix}lipsdb\""))
        .replace(
            "dailydatadb-partition-",
            &format!("{prefix}dailydatadb-partition-"),
        );
    let spec = Spec::from_toml_str(&edit(text)).expect("the edited example spec validates");
    let sdk = ferry_tests::aws_config().await;
    let (_, bucket) = ferry_tests::s3_bucket(&prefix).await;
    let state_table = format!("{prefix}state");
    DynamoDbStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), &state_table)
        .create_table_if_missing()
        .await
        .expect("state table");
    let cx = Context::from_aws(
        &Config {
            state_table,
            bucket,
            migration_state_machine: None,
            api: None,
        },
        &sdk,
    );
    World {
        prefix,
        spec,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sdk,
        cx,
    }
}

impl World {
    async fn run(
        &self,
        domain: Option<&str>,
        dry_run: bool,
        wrap: Option<DispatcherWrapper>,
    ) -> anyhow::Result<LocalRunOutcome> {
        let (cx, sdk) = (self.cx.clone(), self.sdk.clone());
        let options = LocalRunOptions {
            spec: self.spec.clone(),
            domain: domain.map(str::to_owned),
            dry_run,
            parallelism: 3,
            progress: false,
        };
        tokio::task::spawn_blocking(move || local_run::run(cx, &sdk, options, wrap))
            .await
            .expect("the run's thread")
    }

    /// Clone databases of this world still on the server (found by the label every clone
    /// carries: its name may be cut short).
    async fn clones_left(&self) -> Vec<String> {
        let client = ferry_tests::connect("postgres").await;
        client
            .query(
                "SELECT datname FROM pg_database \
                 WHERE starts_with(shobj_description(oid, 'pg_database'), 'ferry clone of ' || $1)",
                &[&self.prefix],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    async fn leases_left(&self, run_id: RunId, domains: &[&str]) -> usize {
        let mut n = 0;
        for domain in domains {
            for clone in check_clone::domain_clones(&self.cx, &self.spec, domain, run_id).unwrap() {
                n += self
                    .cx
                    .store
                    .clone_leases(&clone.clone)
                    .await
                    .unwrap()
                    .len();
            }
        }
        n
    }

    fn table_name(&self, table: &str) -> String {
        self.spec
            .dynamodb_table_name(self.spec.table(table).unwrap())
    }

    /// The items the spec's mapping makes of the source rows, keyed by primary key hash.
    async fn expected_items(&self, table: &str) -> BTreeMap<u128, Vec<u8>> {
        let spec_table = self.spec.table(table).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path());
        let mut out = BTreeMap::new();
        for (index, shard) in self.spec.shards_of(spec_table).into_iter().enumerate() {
            let client = ferry_tests::connect(&shard.database).await;
            let ferry_core::spec::TableSource::Table(qualified) = &spec_table.source else {
                unreachable!()
            };
            let source = describe_table(&client, qualified).await.unwrap();
            let mapper = ItemMapper::new(spec_table, &source.columns).unwrap();
            let chunk = Chunk::whole(
                "expected",
                table,
                &format!("s{index}"),
                spec_table.compression,
            );
            let manifest = extract_chunk(
                &client,
                &source,
                &mapper,
                &chunk,
                &ExtractOptions::default(),
                &sink,
            )
            .await
            .unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(
                std::fs::File::open(dir.path().join(&manifest.object_key)).unwrap(),
            )
            .read_to_string(&mut text)
            .unwrap();
            let mut hasher = ItemHasher::new(mapper.primary_key_attributes());
            for line in text.lines() {
                let item = parse_item_line(line.as_bytes()).unwrap();
                let hash = hasher.hash(&item).unwrap();
                out.insert(hash.key, ItemHasher::canonical_bytes(&item).unwrap());
            }
        }
        out
    }

    async fn dynamodb_items(&self, table: &str) -> BTreeMap<u128, Vec<u8>> {
        let spec_table = self.spec.table(table).unwrap();
        let keys: Vec<String> = std::iter::once(spec_table.key.partition.attribute.clone())
            .chain(spec_table.key.sort.as_ref().map(|s| s.attribute.clone()))
            .collect();
        let mut hasher = ItemHasher::new(keys);
        let mut out = BTreeMap::new();
        let mut pages = self
            .dynamodb
            .scan()
            .table_name(self.table_name(table))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let mut converted = Item::default();
            for (name, value) in item.unwrap() {
                converted.set(name, crate::bootstrap::from_sdk(&value));
            }
            let hash = hasher.hash(&converted).unwrap();
            assert!(
                out.insert(hash.key, ItemHasher::canonical_bytes(&converted).unwrap())
                    .is_none(),
                "a key twice in {table}"
            );
        }
        out
    }
}

/// A dispatcher that lets a test see or change every task before it runs.
struct Intercept<F> {
    inner: Arc<dyn TaskDispatcher>,
    hook: F,
}

type Hooked<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, Failure>> + Send + 'a>>;

#[async_trait::async_trait]
impl<F> TaskDispatcher for Intercept<F>
where
    F: for<'a> Fn(&'a Arc<dyn TaskDispatcher>, TaskRequest) -> Hooked<'a> + Send + Sync,
{
    fn supports(&self, resource: &str) -> Result<(), String> {
        self.inner.supports(resource)
    }
    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure> {
        (self.hook)(&self.inner, request).await
    }
}

fn intercept<F>(hook: F) -> DispatcherWrapper
where
    F: for<'a> Fn(&'a Arc<dyn TaskDispatcher>, TaskRequest) -> Hooked<'a> + Send + Sync + 'static,
{
    Box::new(move |inner| Arc::new(Intercept { inner, hook }))
}

fn function_of(request: &TaskRequest) -> &str {
    request.resource.rsplit(':').next().unwrap_or_default()
}

/// A domain's release of its leases: the clones it was told to destroy, and how many clones
/// of the world existed right after.
type Release = (String, Vec<CloneRef>, usize);

const DOMAINS: [&str; 2] = ["availability", "rates"];
const TABLES: [&str; 4] = [
    "BaseRate",
    "BaseRateAssociation",
    "Inventory",
    "Restriction",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_domains_migrate_verify_stream_and_clean_up() {
    let streaming = |text: String| {
        text.replace(
            "[tables.dynamodb]\ntags = { team = \"availability\" }\n\n[[tables]]",
            "[tables.dynamodb]\ntags = { team = \"availability\" }\nstreaming = { kinesis_stream_name = \"STREAM\" }\n\n[[tables]]",
        )
    };
    let stream = format!("{}inventory", ferry_tests::unique_name("s"));
    let name = stream.clone();
    let w = world(150, move |t| streaming(t).replace("STREAM", &name)).await;
    assert!(
        w.spec
            .table("Inventory")
            .unwrap()
            .dynamodb
            .streaming
            .is_some(),
        "the spec edit took"
    );
    create_stream(&w.sdk, &stream).await;

    // Who released which clones, and whether the clones were still there right after.
    let releases: Arc<Mutex<Vec<Release>>> = Arc::default();
    let seen = Arc::clone(&releases);
    let prefix = w.prefix.clone();
    let wrap = intercept(move |inner, request| {
        let seen = Arc::clone(&seen);
        let prefix = prefix.clone();
        Box::pin(async move {
            let release =
                function_of(&request) == "check-clone" && request.input["action"] == "release";
            let domain = request.input["domain"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // Two domains finishing at the same moment may both see no lease left (and both
            // destroy, which is idempotent: the concurrent case has its own test). Here the
            // order is fixed so the outcome is exact: rates gives its leases back first.
            if release && domain == "availability" {
                for _ in 0..6000 {
                    if seen.lock().unwrap().iter().any(|r| r.0 == "rates") {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            let out = inner.invoke(request).await?;
            if release {
                let destroy: Vec<CloneRef> =
                    serde_json::from_value(out["destroy"].clone()).unwrap();
                let client = ferry_tests::connect("postgres").await;
                let clones: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_database \
                         WHERE starts_with(shobj_description(oid, 'pg_database'), 'ferry clone of ' || $1)",
                        &[&prefix],
                    )
                    .await
                    .unwrap()
                    .get(0);
                seen.lock()
                    .unwrap()
                    .push((domain, destroy, clones as usize));
            }
            Ok(out)
        })
    });
    let outcome = w.run(None, false, Some(wrap)).await.expect("the run ran");
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let total_rows = 4 * 150 * u64::from(PARTITIONS);
    assert_eq!(run.metrics.rows, total_rows);
    assert_eq!(run.metrics.items, total_rows);
    assert!(run.metrics.bytes > 0);
    assert!(run.metrics.chunks_total >= 8, "{:?}", run.metrics);
    assert_eq!(run.metrics.chunks_done, run.metrics.chunks_total);
    assert!(run.ended_at.is_some());

    // Every table holds exactly the items the mapping makes of the source rows.
    for table in TABLES {
        let expected = w.expected_items(table).await;
        assert_eq!(
            expected.len() as u64,
            150 * u64::from(PARTITIONS),
            "{table}"
        );
        assert!(
            w.dynamodb_items(table).await == expected,
            "{table}: DynamoDB differs from the source"
        );
    }
    let report = outcome.report.expect("a verification report");
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(report.tables.len(), 4);

    // Table settings: tags, TTL, PITR, and the streaming destination (not a dry run).
    let base_rate = w.table_name("BaseRate");
    let ttl = w
        .dynamodb
        .describe_time_to_live()
        .table_name(&base_rate)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expiresAt")
    );
    let backups = w
        .dynamodb
        .describe_continuous_backups()
        .table_name(&base_rate)
        .send()
        .await
        .unwrap();
    assert_eq!(
        backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status()),
        Some(&ddb::PointInTimeRecoveryStatus::Enabled)
    );
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{base_rate}");
    let tags = w
        .dynamodb
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    assert_eq!(streaming_destinations(&w, "Inventory").await, 1);
    assert_eq!(streaming_destinations(&w, "Restriction").await, 0);

    // Clones and leases are gone; the shared clones outlived the first domain's cleanup.
    assert!(
        w.clones_left().await.is_empty(),
        "{:?}",
        w.clones_left().await
    );
    assert_eq!(w.leases_left(run.run_id, &DOMAINS).await, 0);
    let releases = releases.lock().unwrap().clone();
    assert_eq!(releases.len(), 2, "{releases:?}");
    let (first, last) = (&releases[0], &releases[1]);
    assert_eq!(
        (first.0.as_str(), last.0.as_str()),
        ("rates", "availability")
    );
    assert!(
        first.1.is_empty(),
        "the first domain to finish destroyed a shared clone: {releases:?}"
    );
    assert_eq!(
        first.2, PARTITIONS as usize,
        "the clones must survive the first cleanup"
    );
    assert_eq!(
        last.1.len(),
        PARTITIONS as usize,
        "the last domain destroys the clones: {releases:?}"
    );

    // The record says the same.
    let stored =
        w.cx.store
            .run(&w.spec.name, run.run_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert_eq!(stored.metrics, run.metrics);
}

async fn create_stream(sdk: &SdkConfig, name: &str) {
    sfn_local::AwsDispatcher::new(sdk)
        .call(
            "arn:aws:states:::aws-sdk:kinesis:createStream",
            &json!({"StreamName": name, "ShardCount": 1}),
        )
        .await
        .expect("CreateStream");
}

async fn streaming_destinations(w: &World, table: &str) -> usize {
    w.dynamodb
        .describe_kinesis_streaming_destination()
        .table_name(w.table_name(table))
        .send()
        .await
        .expect("DescribeKinesisStreamingDestination")
        .kinesis_data_stream_destinations()
        .iter()
        .filter(|d| {
            matches!(
                d.destination_status(),
                Some(ddb::DestinationStatus::Active | ddb::DestinationStatus::Enabling)
            )
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_enables_no_streaming_destination() {
    let probe_prefix = ferry_tests::unique_name("s");
    let stream = format!("{probe_prefix}inventory");
    let s = stream.clone();
    let w = world(20, move |text| {
        text.replace(
            "[tables.dynamodb]\ntags = { team = \"availability\" }\n\n[[tables]]",
            &format!("[tables.dynamodb]\ntags = {{ team = \"availability\" }}\nstreaming = {{ kinesis_stream_name = \"{s}\" }}\n\n[[tables]]"),
        )
    })
    .await;
    create_stream(&w.sdk, &stream).await;
    let outcome = w.run(Some("availability"), true, None).await.unwrap();
    assert_eq!(
        outcome.run.status,
        RunStatus::Succeeded,
        "{:?}",
        outcome.run.error
    );
    assert!(outcome.run.dry_run);
    assert_eq!(streaming_destinations(&w, "Inventory").await, 0);
    assert_eq!(
        w.expected_items("Inventory").await,
        w.dynamodb_items("Inventory").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_while_one_runs_is_refused_without_an_execution() {
    let w = world(5, |t| t).await;
    let first = RunId::new();
    w.cx.store
        .begin_run(NewRun {
            run_id: first,
            spec: w.spec.clone(),
            domain: None,
            dry_run: false,
            parallelism: 1,
        })
        .await
        .unwrap();
    let executions = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&executions);
    let wrap = intercept(move |inner, request| {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(inner.invoke(request))
    });
    let err = w.run(None, false, Some(wrap)).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("already"), "{text}");
    assert_eq!(
        executions.load(Ordering::SeqCst),
        0,
        "no task of a second execution ran"
    );
    let runs = w.cx.store.runs(&w.spec.name, 10, None).await.unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].run_id, first);
    assert_eq!(runs.items[0].status, RunStatus::Processing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_source_fails_the_run_naming_the_state_and_cause() {
    std::env::set_var(
        "FERRY_TEST_UNREACHABLE_URL",
        "postgres://postgres@127.0.0.1:1/postgres",
    );
    let w = world(5, |t| {
        t.replace(
            "{ env = \"FERRY_DATABASE_URL\" }",
            "{ env = \"FERRY_TEST_UNREACHABLE_URL\" }",
        )
    })
    .await;
    let outcome = w.run(Some("rates"), false, None).await.unwrap();
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.as_ref().expect("an error");
    assert_eq!(error.state, "rates/Clone", "{error:?}");
    assert_eq!(
        error.error,
        ErrorCode::SourceUnavailable.error_type(),
        "{error:?}"
    );
    assert!(error.cause.contains("cannot connect"), "{error:?}");
    assert_eq!(
        outcome.execution.error.as_deref(),
        Some("Ferry.SourceUnavailable")
    );
    assert_eq!(w.leases_left(run.run_id, &["rates"]).await, 0);
    assert!(w.clones_left().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_import_fails_the_run_and_cleans_up() {
    let w = world(20, |t| t).await;
    // ImportTable always creates its table: one that exists makes the import fail.
    ferry_tests::create_table(&w.dynamodb, &w.table_name("BaseRate")).await;
    let outcome = w.run(Some("rates"), false, None).await.unwrap();
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.as_ref().unwrap();
    assert_eq!(error.state, "rates/Import", "{error:?}");
    // The emulator starts the import and fails it (DescribeImport says FAILED, with the
    // reason); AWS may refuse ImportTable at once (DynamoDb.ResourceInUseException). Both
    // end the run in the Import state.
    assert_eq!(error.error, "Ferry.ImportFailed", "{error:?}");
    assert!(error.cause.contains("ended FAILED"), "{error:?}");
    assert!(error.cause.contains("Table already exists"), "{error:?}");
    assert!(w.clones_left().await.is_empty());
    assert_eq!(w.leases_left(run.run_id, &["rates"]).await, 0);
    assert_eq!(
        run.metrics.rows,
        2 * 20 * u64::from(PARTITIONS),
        "the bootstrap ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_mismatch_fails_the_run_with_table_and_counts() {
    let w = world(30, |t| t).await;
    let inventory = w.table_name("Inventory");
    let deleted = Arc::new(AtomicBool::new(false));
    let dynamodb = w.dynamodb.clone();
    let wrap = intercept(move |inner, request| {
        let (dynamodb, inventory, deleted) =
            (dynamodb.clone(), inventory.clone(), Arc::clone(&deleted));
        Box::pin(async move {
            // Just before the export: an item disappears from the imported table.
            if request.resource.ends_with("dynamodb:describeTable")
                && request.input["TableName"] == inventory.as_str()
                && !deleted.swap(true, Ordering::SeqCst)
            {
                let page = dynamodb
                    .scan()
                    .table_name(&inventory)
                    .limit(1)
                    .send()
                    .await
                    .unwrap();
                let item = page.items()[0].clone();
                let key = ["pk", "sk"].map(|k| (k.to_string(), item[k].clone()));
                dynamodb
                    .delete_item()
                    .table_name(&inventory)
                    .set_key(Some(key.into_iter().collect()))
                    .send()
                    .await
                    .unwrap();
            }
            inner.invoke(request).await
        })
    });
    let outcome = w
        .run(Some("availability"), false, Some(wrap))
        .await
        .unwrap();
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.as_ref().unwrap();
    assert_eq!(error.state, "availability/Verify", "{error:?}");
    assert_eq!(error.error, "Ferry.VerificationFailed");
    assert!(
        error
            .cause
            .contains("Inventory (1 missing, 0 extra, 0 different"),
        "{error:?}"
    );
    let report = outcome
        .report
        .expect("the report is written on failure too");
    assert_eq!(report.verdict, Verdict::Failed);
    let inventory_report = report
        .tables
        .iter()
        .find(|t| t.table == "Inventory")
        .unwrap();
    assert_eq!(
        (inventory_report.missing, inventory_report.sample.len()),
        (1, 1)
    );
    assert!(w.clones_left().await.is_empty());
    assert_eq!(w.leases_left(run.run_id, &["availability"]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_fails_once_is_retried_without_duplicates() {
    let w = world(40, |t| t).await;
    let failed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failed);
    let wrap = intercept(move |inner, request| {
        let flag = Arc::clone(&flag);
        Box::pin(async move {
            let bootstrap = function_of(&request) == "bootstrap";
            let out = inner.invoke(request).await?;
            // The chunk's object is written, then the invocation "times out": the retry
            // writes the same object again.
            if bootstrap && !flag.swap(true, Ordering::SeqCst) {
                return Err(Failure::new(
                    "Ferry.Retryable",
                    "injected: the chunk's connection dropped",
                ));
            }
            Ok(out)
        })
    });
    let outcome = w.run(Some("rates"), false, Some(wrap)).await.unwrap();
    // The injected failure was raised once; the run succeeding means the Retry ran the chunk again.
    assert!(failed.load(Ordering::SeqCst), "the fault was injected");
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    for table in ["BaseRate", "BaseRateAssociation"] {
        let expected = w.expected_items(table).await;
        assert!(w.dynamodb_items(table).await == expected, "{table}");
    }
    assert_eq!(run.metrics.rows, run.metrics.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_domains_releasing_at_once_destroy_each_clone_once_the_last_lease_goes() {
    let w = world(3, |t| t).await;
    let run_id = RunId::new();
    w.cx.store
        .begin_run(NewRun {
            run_id,
            spec: w.spec.clone(),
            domain: None,
            dry_run: false,
            parallelism: 1,
        })
        .await
        .unwrap();
    let call = |v: Value| {
        let cx = w.cx.clone();
        async move {
            ferry_handlers::Function::CheckClone
                .invoke(&cx, v)
                .await
                .unwrap()
        }
    };
    let base = json!({"migration": w.spec.name, "run_id": run_id.to_string()});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let acquired = call(with(json!({"action": "acquire", "domains": DOMAINS}))).await;
    let clones: Vec<CloneRef> =
        serde_json::from_value(acquired["domains"][0]["clones"].clone()).unwrap();
    assert_eq!(clones.len(), PARTITIONS as usize);
    for c in &clones {
        let status = call(with(
            json!({"action": "ensure", "shard": c.shard, "clone": c.clone}),
        ))
        .await;
        assert_eq!(status["status"], "AVAILABLE");
    }
    assert_eq!(w.clones_left().await.len(), PARTITIONS as usize);
    let (a, b) = tokio::join!(
        call(with(json!({"action": "release", "domain": "rates"}))),
        call(with(json!({"action": "release", "domain": "availability"}))),
    );
    let mut destroy: Vec<CloneRef> = serde_json::from_value(a["destroy"].clone()).unwrap();
    destroy.extend(serde_json::from_value::<Vec<CloneRef>>(b["destroy"].clone()).unwrap());
    for c in &clones {
        assert!(
            destroy.contains(c),
            "{c:?} must be destroyed by someone: {a} {b}"
        );
    }
    // Both may destroy the same clone: it is idempotent.
    let destroys = destroy.iter().map(|c| {
        call(with(
            json!({"action": "destroy", "shard": c.shard, "clone": c.clone}),
        ))
    });
    for status in futures_util::future::join_all(destroys).await {
        assert_eq!(status["status"], "GONE");
    }
    assert!(w.clones_left().await.is_empty());
    assert_eq!(w.leases_left(run_id, &DOMAINS).await, 0);

    // Destroy refuses a database that is not this run's clone.
    let source = &w.spec.source.shards[1];
    let err = ferry_handlers::Function::CheckClone
        .invoke(
            &w.cx,
            with(json!({"action": "destroy", "shard": source.name, "clone": source.database})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CloneFailed, "{err}");
    let client = ferry_tests::connect("postgres").await;
    let exists: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&source.database],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(exists, 1, "the source database is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_clones_are_made_in_steps_and_only_ferry_clones_are_destroyed() {
    use ferry_handlers::clone::{AuroraClones, CloneProvider, CloneStatus};
    let sdk = ferry_tests::aws_config().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let source = ferry_tests::unique_name("src").replace('_', "-");
    rds.create_db_cluster()
        .db_cluster_identifier(&source)
        .engine("aurora-postgresql")
        .master_username("ferry")
        .master_user_password("not-a-real-secret")
        .send()
        .await
        .expect("CreateDBCluster");
    let spec_text = format!(
        "name = \"a\"\ngroup = \"g\"\n[source]\nkind = \"postgres\"\nclone = \"aurora\"\n\
         [[source.shards]]\nname = \"main\"\ndatabase = \"app\"\ncluster = \"{source}\"\n\
         connection = {{ env = \"FERRY_DATABASE_URL\" }}\n\
         [target]\ntable_prefix = \"x-\"\n\
         [[tables]]\nname = \"T\"\nshards = [\"main\"]\nsource = {{ table = \"t\" }}\n\
         [tables.key]\npartition = {{ attribute = \"pk\", template = \"{{id}}\" }}\n\
         [domains.d]\ntables = [\"T\"]\n"
    );
    let spec = Spec::from_toml_str(&spec_text).expect("an aurora spec");
    let shard = &spec.source.shards[0];
    let clones = AuroraClones::new(rds.clone(), ferry_handlers::source::Sources::default());
    let run = RunId::new();
    let clone = clones.clone_id(shard, run);
    assert!(clone.starts_with(&source[..12]), "{clone}");
    assert!(
        clone.ends_with(&format!("-ferry-{}", run.to_string().to_lowercase())),
        "{clone}"
    );
    assert!(
        clone.len() <= 61,
        "{clone}: the instance adds \"-1\" within RDS's 63"
    );

    // Restore (copy-on-write), then an instance, then available.
    let steps = until(CloneStatus::Available, || async {
        clones.ensure(shard, &clone, run).await.expect("ensure")
    })
    .await;
    assert_eq!(steps.last(), Some(&CloneStatus::Available), "{steps:?}");
    assert!(
        steps.len() >= 2,
        "the clone and its instance are made in steps: {steps:?}"
    );
    let described = rds
        .describe_db_clusters()
        .db_cluster_identifier(&clone)
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = described.db_clusters()[0]
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert!(
        tags.contains(&("ferry:clone-of".into(), source.clone())),
        "{tags:?}"
    );

    // The source itself, or the clone of another run, is never deleted.
    let err = clones.destroy(shard, &source, run).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CloneFailed);
    let err = clones
        .destroy(shard, &clone, RunId::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CloneFailed, "{err}");

    let statuses = until(CloneStatus::Gone, || async {
        clones.destroy(shard, &clone, run).await.expect("destroy")
    })
    .await;
    assert_eq!(statuses.last(), Some(&CloneStatus::Gone), "{statuses:?}");
    let left = rds
        .describe_db_clusters()
        .db_cluster_identifier(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.db_clusters().len(),
        1,
        "the source cluster is untouched"
    );
}

/// Asks `step` until it answers `done`, at most five times; every answer, in order.
async fn until<F, Fut>(
    done: ferry_handlers::clone::CloneStatus,
    mut step: F,
) -> Vec<ferry_handlers::clone::CloneStatus>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ferry_handlers::clone::CloneStatus>,
{
    let mut answers = Vec::new();
    for _ in 0..5 {
        let status = step().await;
        answers.push(status);
        if status == done {
            break;
        }
    }
    answers
}

/// Executions as a test wants them to be.
struct KnownExecutions(
    std::collections::HashMap<String, ferry_handlers::poll_status::ExecutionState>,
);

#[async_trait::async_trait]
impl ferry_handlers::poll_status::Executions for KnownExecutions {
    async fn start(&self, _: &str, _: &str, _: &Value) -> ferry_core::Result<String> {
        Err(ferry_core::Error::new(
            ErrorCode::Internal,
            "the sweep starts nothing",
        ))
    }
    async fn stop(&self, _: &str, _: &str) -> ferry_core::Result<()> {
        Err(ferry_core::Error::new(
            ErrorCode::Internal,
            "the sweep stops nothing",
        ))
    }
    async fn describe(
        &self,
        arn: &str,
    ) -> ferry_core::Result<ferry_handlers::poll_status::ExecutionState> {
        Ok(self.0[arn].clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_ends_runs_whose_execution_ended_and_leaves_running_ones() {
    use ferry_handlers::poll_status::ExecutionState;
    let w = world(1, |t| t).await;
    let mut states = std::collections::HashMap::new();
    let mut runs = Vec::new();
    // Three migrations (one run each may be PROCESSING): failed, still running, succeeded.
    for (i, (status, error)) in [
        ("FAILED", Some("States.Timeout")),
        ("RUNNING", None),
        ("SUCCEEDED", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = w.spec.clone();
        spec.name = format!("{}{i}", w.spec.name);
        let run_id = RunId::new();
        w.cx.store
            .begin_run(NewRun {
                run_id,
                spec: spec.clone(),
                domain: None,
                dry_run: false,
                parallelism: 1,
            })
            .await
            .unwrap();
        let arn =
            format!("arn:aws:states:us-east-1:123456789012:execution:ferry-migration:{run_id}");
        w.cx.store
            .record_execution(&spec.name, run_id, &arn, None)
            .await
            .unwrap();
        states.insert(
            arn,
            ExecutionState {
                status: status.into(),
                error: error.map(str::to_owned),
                cause: error.map(|_| "the execution ran out of time".to_owned()),
            },
        );
        runs.push((spec.name, run_id));
    }
    let mut cx = w.cx.clone();
    cx.executions = Arc::new(KnownExecutions(states));
    let out = ferry_handlers::Function::PollStatus
        .invoke(&cx, json!({"action": "sweep"}))
        .await
        .unwrap();
    let converged = out["converged"].as_array().unwrap();
    assert_eq!(converged.len(), 2, "{out}");
    let status = |i: usize| {
        let (name, id) = runs[i].clone();
        let store = Arc::clone(&w.cx.store);
        async move { store.run(&name, id).await.unwrap().unwrap() }
    };
    let failed = status(0).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(
        (error.error.as_str(), error.cause.as_str()),
        ("States.Timeout", "the execution ran out of time")
    );
    assert_eq!(status(1).await.status, RunStatus::Processing);
    assert_eq!(status(2).await.status, RunStatus::Succeeded);
    // A second sweep finds nothing more to do.
    let again = ferry_handlers::Function::PollStatus
        .invoke(&cx, json!({"action": "sweep"}))
        .await
        .unwrap();
    assert_eq!(again["converged"], json!([]));
}

// ---- EMR Serverless engine --------------------------------------------------------------------

/// Writes what the chunk extraction writes under `runs/<run>/bootstrap/` under
/// `runs/<run>/emr/` instead, and drops the manifests: the output of a Spark job that knows
/// nothing of ferry's digests.
struct SparkJobSink {
    inner: Arc<dyn ferry_pipeline::sink::ObjectSink>,
}

#[async_trait::async_trait]
impl ferry_pipeline::sink::ObjectSink for SparkJobSink {
    async fn create(
        &self,
        key: &str,
    ) -> Result<Box<dyn ferry_pipeline::sink::ObjectUpload>, ferry_pipeline::sink::SinkError> {
        self.inner
            .create(&key.replacen("/bootstrap/", "/emr/", 1))
            .await
    }
    async fn put(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> Result<(), ferry_pipeline::sink::SinkError> {
        if key.contains("/manifests/") {
            return Ok(());
        }
        self.inner.put(key, body).await
    }
}

/// What the fake Spark job saw: the StartJobRun parameters and the chunks it wrote.
#[derive(Default)]
struct SparkJobRuns {
    starts: Mutex<Vec<Value>>,
    chunks_written: AtomicU32,
    /// ListApplications pages read.
    pages: AtomicU32,
}

/// Stands in for the team's Spark job: when the bootstrap machine starts the job run, it reads
/// the chunk list named in the job's arguments and writes every chunk (but the one `lose`
/// names, by position) where `--output` says, in the import format; then the start goes on to
/// the emulator, which records the job run.
fn spark_job(w: &World, runs: Arc<SparkJobRuns>, lose: Option<usize>) -> DispatcherWrapper {
    let mut job_cx = w.cx.clone();
    job_cx.sink = Arc::new(SparkJobSink {
        inner: Arc::clone(&w.cx.sink),
    });
    let (bucket, migration) = (w.cx.bucket.clone(), w.spec.name.clone());
    intercept(move |inner, request| {
        let (job_cx, runs, bucket, migration) = (
            job_cx.clone(),
            Arc::clone(&runs),
            bucket.clone(),
            migration.clone(),
        );
        Box::pin(async move {
            if request.resource.ends_with("emrserverless:listApplications") {
                runs.pages.fetch_add(1, Ordering::SeqCst);
            }
            if request
                .resource
                .ends_with("emr-serverless:startJobRun.sync")
            {
                runs.starts.lock().unwrap().push(request.input.clone());
                let args: Vec<String> = serde_json::from_value(
                    request.input["JobDriver"]["SparkSubmit"]["EntryPointArguments"].clone(),
                )
                .unwrap();
                let arg = |flag: &str| {
                    let at = args.iter().position(|a| a == flag).unwrap();
                    args[at + 1].clone()
                };
                assert_eq!(
                    arg("--output"),
                    format!("s3://{bucket}/runs/{}/emr/", arg("--run"))
                );
                let list_key = arg("--chunk-list")
                    .strip_prefix(&format!("s3://{bucket}/"))
                    .unwrap()
                    .to_string();
                let chunks: Vec<Chunk> =
                    serde_json::from_slice(&job_cx.objects.get(&list_key).await.unwrap()).unwrap();
                for (at, chunk) in chunks.into_iter().enumerate() {
                    if Some(at) == lose {
                        continue;
                    }
                    let request = ferry_handlers::bootstrap::Request {
                        migration: migration.clone(),
                        run_id: arg("--run").parse().unwrap(),
                        chunk,
                    };
                    ferry_handlers::bootstrap::handle(&job_cx, request)
                        .await
                        .unwrap();
                    runs.chunks_written.fetch_add(1, Ordering::SeqCst);
                }
            }
            inner.invoke(request).await
        })
    })
}

/// An EMR Serverless world: the example spec with the emr-serverless engine, JARs under a
/// prefix (the newest is not the greatest key), and `others` applications created before the
/// one the spec names (so it is on a later page of ListApplications).
async fn emr_world(rows: u64, others: usize, create_wanted: bool) -> (World, String, String) {
    let (s3, jars) = ferry_tests::s3_bucket("jars").await;
    for key in [
        "jobs/ferry-job-2.0.jar",
        "jobs/ferry-job-1.9.jar",
        "jobs/NOTES.txt",
    ] {
        s3.put_object()
            .bucket(&jars)
            .key(key)
            .body(bytes::Bytes::from_static(b"PK").into())
            .send()
            .await
            .unwrap();
        // LastModified has a resolution of one second in S3 listings.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let app = format!("{}spark", ferry_tests::unique_name("emr"));
    let jars_url = format!("s3://{jars}/jobs/");
    let (spec_app, spec_jars) = (app.clone(), jars_url.clone());
    let w = world(rows, move |t| {
        t.replace(
            "[bootstrap]\nengine = \"lambda\"\n",
            &format!(
                "[bootstrap]\nengine = \"emr-serverless\"\n[bootstrap.emr_serverless]\n\
                 application_name = \"{spec_app}\"\njar_prefix = \"{spec_jars}\"\n\
                 entry_point_class = \"com.example.FerryJob\"\n\
                 spark_submit_parameters = \"--conf spark.executor.cores=4\"\n"
            ),
        )
    })
    .await;
    let emr = sfn_local::AwsDispatcher::new(&w.sdk);
    let create = |name: String, tags: Value| {
        let emr = &emr;
        async move {
            emr.call(
                "arn:aws:states:::aws-sdk:emrserverless:createApplication",
                &json!({"Name": name, "ReleaseLabel": "emr-7.0.0", "Type": "SPARK", "Tags": tags}),
            )
            .await
            .expect("CreateApplication")
        }
    };
    for i in 0..others {
        create(format!("{app}-other-{i}"), json!({})).await;
    }
    if create_wanted {
        create(
            app.clone(),
            json!({"FerryExecutionRoleArn": "arn:aws:iam::123456789012:role/ferry-spark"}),
        )
        .await;
    }
    (w, app, jars_url)
}

/// Runs the availability domain with the stand-in Spark job.
async fn run_with_spark_job(
    w: &World,
    lose: Option<usize>,
) -> (LocalRunOutcome, Arc<SparkJobRuns>) {
    let runs = Arc::new(SparkJobRuns::default());
    let wrap = spark_job(w, Arc::clone(&runs), lose);
    let outcome = w
        .run(Some("availability"), false, Some(wrap))
        .await
        .unwrap();
    (outcome, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emr_serverless_engine_runs_the_newest_jar_and_is_verified_independently() {
    // 50 applications fill ListApplications' first page: the one named is on a later page.
    let (w, app, jars) = emr_world(30, 50, true).await;
    let (outcome, runs) = run_with_spark_job(&w, None).await;
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);

    let starts = runs.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 1, "one job run: {starts:?}");
    let start = &starts[0];
    assert_eq!(
        start["ExecutionRoleArn"], "arn:aws:iam::123456789012:role/ferry-spark",
        "the role comes from the application's tag"
    );
    let driver = &start["JobDriver"]["SparkSubmit"];
    assert_eq!(driver["EntryPoint"], format!("{jars}ferry-job-1.9.jar"));
    assert_eq!(
        driver["SparkSubmitParameters"],
        "--class com.example.FerryJob --conf spark.executor.cores=4"
    );
    assert_eq!(
        start["ClientToken"].as_str().map(str::len),
        Some(32),
        "{start}"
    );
    // The application id is the one of the named application.
    let emr = sfn_local::AwsDispatcher::new(&w.sdk);
    let got = emr
        .call(
            "arn:aws:states:::aws-sdk:emrserverless:getApplication",
            &json!({"ApplicationId": start["ApplicationId"]}),
        )
        .await
        .unwrap();
    assert_eq!(got["Application"]["Name"], app.as_str());
    assert!(runs.chunks_written.load(Ordering::SeqCst) > 0);
    assert!(
        runs.pages.load(Ordering::SeqCst) >= 2,
        "the name is on a later page"
    );

    // The import read what the job wrote; ferry's own extraction verified it.
    for table in ["Inventory", "Restriction"] {
        let expected = w.expected_items(table).await;
        assert!(!expected.is_empty());
        assert_eq!(w.dynamodb_items(table).await, expected, "{table}");
    }
    let report = outcome.report.expect("a report");
    assert_eq!(report.verdict, Verdict::Passed);
    assert!(w.clones_left().await.is_empty());
    assert_eq!(w.leases_left(run.run_id, &["availability"]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spark_job_that_loses_a_chunk_fails_verification() {
    let (w, _, _) = emr_world(30, 0, true).await;
    let (outcome, runs) = run_with_spark_job(&w, Some(0)).await;
    assert_eq!(runs.starts.lock().unwrap().len(), 1);
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.as_ref().unwrap();
    assert_eq!(error.state, "availability/Verify", "{error:?}");
    assert_eq!(error.error, "Ferry.VerificationFailed");
    let report = outcome.report.expect("a report");
    let lost: u64 = report.tables.iter().map(|t| t.missing).sum();
    assert!(lost > 0, "{report:?}");
    assert!(report
        .tables
        .iter()
        .all(|t| t.extra == 0 && t.different == 0));
    assert!(w.clones_left().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emr_application_that_does_not_exist_fails_the_bootstrap_by_name() {
    let (w, app, _) = emr_world(10, 1, false).await;
    let (outcome, runs) = run_with_spark_job(&w, None).await;
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.as_ref().unwrap();
    assert_eq!(error.state, "availability/Bootstrap", "{error:?}");
    assert_eq!(error.error, "Ferry.BootstrapFailed");
    assert!(error.cause.contains(&app), "{error:?}");
    assert!(runs.starts.lock().unwrap().is_empty());
    assert!(w.clones_left().await.is_empty());
}
