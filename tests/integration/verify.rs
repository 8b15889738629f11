//! Verification through the emulator: bootstrap (extract to S3) → ImportTable → faults injected
//! in the table → ExportTableToPointInTime → verify. Every fault is found with its class and
//! key; a respelled number is not a difference; a key twice in the source files is reported.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types as ddb;
use ferry_core::spec::TableSpec;
use ferry_core::{ErrorCode, Spec};
use ferry_pipeline::extract::{describe_table, extract_chunk, ExtractOptions};
use ferry_pipeline::item::ItemMapper;
use ferry_pipeline::plan::Chunk;
use ferry_pipeline::sink::S3Sink;
use ferry_pipeline::verify::{
    self, Difference, DifferenceKind, S3Source, TableReport, TableVerification, Verdict,
};

const PRICES: &str = r#"
CREATE TABLE prices (
    id integer PRIMARY KEY, grp integer NOT NULL, code text NOT NULL,
    amount numeric(10,2), label text, secret text
);
INSERT INTO prices
SELECT i, i % 7, 'C' || i, 1.50 + i, 'label ' || i, 'secret ' || i FROM generate_series(1, 200) i;
-- Two rows share code C2: PricesByCode maps both to the key CODE#C2.
UPDATE prices SET code = 'C2' WHERE id = 3;
CREATE TABLE empty (id integer PRIMARY KEY, v text);
"#;

fn spec() -> Spec {
    Spec::from_path(&ferry_tests::repo_root().join("tests/fixtures/verify/prices.toml"))
        .expect("the verify fixture spec validates")
}

/// One table bootstrapped to S3 and imported into DynamoDB, ready for faults and an export.
struct Migrated {
    database: String,
    client: tokio_postgres::Client,
    source: ferry_pipeline::extract::SourceTable,
    mapper: ItemMapper,
    spec: Spec,
    table: TableSpec,
    run: String,
    s3: aws_sdk_s3::Client,
    bucket: String,
    dynamodb: aws_sdk_dynamodb::Client,
    table_name: String,
    /// How long the import and the export may take.
    wait: Duration,
}

async fn migrate(table: &str) -> Migrated {
    // Two chunks of block ranges, as the planner would make them; the second is open-ended.
    migrate_with(
        table,
        PRICES,
        &[(0, Some(1)), (1, None)],
        Duration::from_secs(30),
    )
    .await
}

/// `table` of the fixture, its rows made by `sql`, extracted in `chunks` (block ranges, at once,
/// each on its own connection), imported; `wait` bounds the import and, later, the export.
async fn migrate_with(
    table: &str,
    sql: &str,
    chunks: &[(u64, Option<u64>)],
    wait: Duration,
) -> Migrated {
    let spec = spec();
    let table = spec.table(table).expect("table in the fixture").clone();

    let (database, client) = ferry_tests::database("verify", sql).await;

    let config = ferry_tests::aws_config().await;
    let (s3, bucket) = ferry_tests::s3_bucket("vfy").await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build(),
    );

    let run = ulid::Ulid::new().to_string();
    let ferry_core::spec::TableSource::Table(source_name) = &table.source else {
        panic!("fixture tables read tables")
    };
    let source = describe_table(&client, source_name).await.unwrap();
    let mapper = ItemMapper::new(&table, &source.columns).unwrap();
    let sink = S3Sink::new(s3.clone(), &bucket);
    let extracts = chunks
        .iter()
        .enumerate()
        .map(|(number, &(start_block, end_block))| {
            let chunk = Chunk {
                chunk: number as u32,
                start_block,
                end_block,
                ..Chunk::whole(&run, &table.name, "shard-01", table.compression)
            };
            let (database, source, mapper, sink) = (&database, &source, &mapper, &sink);
            async move {
                let client = ferry_tests::connect(database).await;
                extract_chunk(
                    &client,
                    source,
                    mapper,
                    &chunk,
                    &ExtractOptions::default(),
                    sink,
                )
                .await
                .unwrap()
            }
        });
    futures_util::future::join_all(extracts).await;

    let table_name = format!(
        "{}{}",
        ferry_tests::unique_name("vfy").replace('_', "-"),
        table.name
    );
    let key = &table.key;
    let keys: Vec<(&str, ddb::ScalarAttributeType)> = std::iter::once(&key.partition)
        .chain(key.sort.as_ref())
        .map(|attribute| {
            let scalar = match attribute.key_type {
                ferry_core::spec::KeyType::String => ddb::ScalarAttributeType::S,
                ferry_core::spec::KeyType::Number => ddb::ScalarAttributeType::N,
                ferry_core::spec::KeyType::Binary => ddb::ScalarAttributeType::B,
            };
            (attribute.attribute.as_str(), scalar)
        })
        .collect();
    ferry_tests::import_table_within(
        &dynamodb,
        &bucket,
        &Chunk::data_prefix(&run, &table.name),
        &table_name,
        &keys,
        wait,
    )
    .await;
    Migrated {
        database,
        client,
        source,
        mapper,
        spec,
        table,
        run,
        s3,
        bucket,
        dynamodb,
        table_name,
        wait,
    }
}

impl Migrated {
    fn key(&self, id: u32) -> std::collections::HashMap<String, ddb::AttributeValue> {
        [
            ("pk".to_owned(), ddb::AttributeValue::S(format!("P#{id}"))),
            (
                "sk".to_owned(),
                ddb::AttributeValue::S(format!("GRP#{}", id % 7)),
            ),
        ]
        .into()
    }

    async fn set(&self, id: u32, attribute: &str, value: ddb::AttributeValue) {
        self.set_at(self.key(id), attribute, value).await
    }

    async fn set_at(
        &self,
        key: std::collections::HashMap<String, ddb::AttributeValue>,
        attribute: &str,
        value: ddb::AttributeValue,
    ) {
        self.dynamodb
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(key))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", value)
            .send()
            .await
            .unwrap();
    }

    /// PITR on, ExportTableToPointInTime to `runs/<run>/export/<table>`, wait for it.
    async fn export(&self) {
        self.dynamodb
            .update_continuous_backups()
            .table_name(&self.table_name)
            .point_in_time_recovery_specification(
                ddb::PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let table_arn = self
            .dynamodb
            .describe_table()
            .table_name(&self.table_name)
            .send()
            .await
            .unwrap()
            .table()
            .and_then(|t| t.table_arn())
            .unwrap()
            .to_owned();
        let prefix = verify::export_prefix(&self.run, &self.table.name);
        let export = self
            .dynamodb
            .export_table_to_point_in_time()
            .table_arn(table_arn)
            .s3_bucket(&self.bucket)
            .s3_prefix(prefix.trim_end_matches('/'))
            .export_format(ddb::ExportFormat::DynamodbJson)
            .send()
            .await
            .expect("ExportTableToPointInTime");
        let arn = export
            .export_description()
            .and_then(|d| d.export_arn())
            .unwrap()
            .to_owned();
        let started = std::time::Instant::now();
        loop {
            let status = self
                .dynamodb
                .describe_export()
                .export_arn(&arn)
                .send()
                .await
                .ok()
                .and_then(|d| {
                    d.export_description()
                        .and_then(|d| d.export_status().cloned())
                });
            match status {
                Some(ddb::ExportStatus::Completed) => break,
                Some(ddb::ExportStatus::Failed) => panic!("export failed"),
                _ if started.elapsed() < self.wait => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                other => panic!("export did not complete: {other:?}"),
            }
        }
    }

    /// The verification of this table, reading target items by key (the export when they
    /// disagree with it).
    fn request(&self) -> TableVerification {
        let mut request = TableVerification::new(&self.run, &self.table, self.spec.verification);
        request.lookup = Some(Arc::new(verify::DynamoDbLookup::new(
            self.dynamodb.clone(),
            &self.table_name,
        )));
        request
    }

    /// The import files and manifests are gone, and the source changed after the copy.
    async fn forget_the_bootstrap_and_relabel_50(&self) {
        let prefix = format!("runs/{}/", self.run);
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .send()
            .await
            .unwrap();
        for object in listed.contents() {
            let key = object.key().unwrap();
            if key.contains("/bootstrap/") || key.contains("/manifests/") {
                self.s3
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
            }
        }
        self.client
            .batch_execute("UPDATE prices SET label = 'relabelled' WHERE id = 50")
            .await
            .unwrap();
    }

    async fn verify(&self) -> TableReport {
        let request = self.request();
        let source = Arc::new(S3Source::new(self.s3.clone(), &self.bucket));
        let sink = S3Sink::new(self.s3.clone(), &self.bucket);
        let report = verify::verify_run(source, &sink, &self.run, &[request])
            .await
            .expect("verification runs");
        // The report is in S3, and the failed verdict is the error the run fails with.
        let stored = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(verify::report_key(&self.run))
            .send()
            .await
            .expect("the report is written")
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let stored: verify::VerifyReport = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored, report);
        if report.verdict == Verdict::Failed {
            let err = report.to_result().unwrap_err();
            assert_eq!(err.code(), ErrorCode::VerificationFailed);
            assert_eq!(err.code().error_type(), "Ferry.VerificationFailed");
            assert!(err.message().contains(&self.table.name), "{err}");
        } else {
            report.to_result().unwrap();
        }
        report.tables.into_iter().next().unwrap()
    }
}

fn difference(kind: DifferenceKind, key: &str, attributes: &[&str]) -> Difference {
    Difference {
        kind,
        key: key.into(),
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        source_copies: None,
    }
}

#[tokio::test]
async fn an_untouched_copy_passes_and_a_respelled_number_is_not_a_difference() {
    let migrated = migrate("Prices").await;
    // The source wrote 11.50; DynamoDB may hold it as 11.5 (and 1.5 as 1.50): the same number.
    migrated
        .set(10, "amount", ddb::AttributeValue::N("11.5".into()))
        .await;
    migrated
        .set(11, "amount", ddb::AttributeValue::N("12.500".into()))
        .await;
    migrated.export().await;
    let report = migrated.verify().await;
    assert_eq!(report.verdict, Verdict::Passed, "{}", report.summary());
    assert_eq!(
        (report.source_rows, report.target_items, report.matching),
        (200, 200, 200)
    );
    assert_eq!(report.mismatches(), 0);
    assert_eq!(report.differing_buckets, 0);
    assert!(report.sample.is_empty());
    assert_eq!(
        report.summary(),
        "Prices: PASSED — 200 source rows, 200 target items, 200 matching, 0 missing, 0 extra, \
         0 different, 0 duplicate keys (tolerance 0)"
    );
}

#[tokio::test]
async fn deleted_extra_changed_and_retyped_items_are_found_with_class_and_key() {
    let migrated = migrate("Prices").await;
    migrated
        .dynamodb
        .delete_item()
        .table_name(&migrated.table_name)
        .set_key(Some(migrated.key(5)))
        .send()
        .await
        .unwrap();
    let mut extra = migrated.key(900);
    extra.insert("label".into(), ddb::AttributeValue::S("stray".into()));
    migrated
        .dynamodb
        .put_item()
        .table_name(&migrated.table_name)
        .set_item(Some(extra))
        .send()
        .await
        .unwrap();
    migrated
        .set(20, "label", ddb::AttributeValue::S("changed".into()))
        .await;
    // N → S with the same digits.
    migrated
        .set(30, "amount", ddb::AttributeValue::S("31.50".into()))
        .await;
    // A sensitive column changed: named, its value never reported.
    migrated
        .set(40, "secret", ddb::AttributeValue::S("leaked?".into()))
        .await;
    migrated.export().await;

    let report = migrated.verify().await;
    assert_eq!(report.verdict, Verdict::Failed);
    assert_eq!(
        (
            report.source_rows,
            report.target_items,
            report.missing,
            report.extra,
            report.different,
            report.duplicates,
            report.matching
        ),
        (200, 200, 1, 1, 3, 0, 196),
        "{}",
        report.summary()
    );
    // The sample is bounded by the spec's sample_size (3) and ordered by key.
    assert_eq!(
        report.sample,
        vec![
            difference(DifferenceKind::Different, "pk=P#20 sk=GRP#6", &["label"]),
            difference(DifferenceKind::Different, "pk=P#30 sk=GRP#2", &["amount"]),
            difference(DifferenceKind::Different, "pk=P#40 sk=GRP#5", &["secret"]),
        ]
    );
    // The whole list, through a larger sample.
    let mut request =
        TableVerification::new(&migrated.run, &migrated.table, migrated.spec.verification);
    request.sample_size = 100;
    // Keys first, then the whole items of the sampled keys (the path for many unequal buckets).
    request.whole_item_buckets = 0;
    let source = Arc::new(S3Source::new(migrated.s3.clone(), &migrated.bucket));
    let sink = S3Sink::new(migrated.s3.clone(), &migrated.bucket);
    let full = verify::verify_table(source, &sink, &request).await.unwrap();
    assert_eq!(
        full.sample,
        vec![
            difference(DifferenceKind::Different, "pk=P#20 sk=GRP#6", &["label"]),
            difference(DifferenceKind::Different, "pk=P#30 sk=GRP#2", &["amount"]),
            difference(DifferenceKind::Different, "pk=P#40 sk=GRP#5", &["secret"]),
            difference(DifferenceKind::Missing, "pk=P#5 sk=GRP#5", &[]),
            difference(DifferenceKind::Extra, "pk=P#900 sk=GRP#4", &[]),
        ]
    );
    let text = serde_json::to_string(&full).unwrap();
    assert!(
        !text.contains("leaked?") && !text.contains("secret 40"),
        "{text}"
    );
}

#[tokio::test]
async fn a_key_twice_in_the_source_files_is_reported() {
    let migrated = migrate("PricesByCode").await;
    migrated.export().await;
    let report = migrated.verify().await;
    assert_eq!(report.verdict, Verdict::Failed);
    // ImportTable kept one of the two items for CODE#C2; nothing else differs.
    assert_eq!(
        (
            report.source_rows,
            report.target_items,
            report.duplicates,
            report.missing,
            report.extra,
            report.different
        ),
        (200, 199, 1, 0, 0, 0),
        "{}",
        report.summary()
    );
    assert_eq!(
        report.sample,
        vec![Difference {
            kind: DifferenceKind::Duplicate,
            key: "pk=CODE#C2".into(),
            attributes: vec![],
            source_copies: Some(2),
        }]
    );
}

#[tokio::test]
async fn the_independent_mode_re_reads_the_source_through_the_mapping() {
    let migrated = migrate("Prices").await;
    migrated.export().await;
    migrated.forget_the_bootstrap_and_relabel_50().await;

    let scratch = tempfile::tempdir().unwrap();
    let chunk = Chunk::whole(
        &migrated.run,
        &migrated.table.name,
        "shard-01",
        migrated.table.compression,
    );
    let manifest = verify::reextract_source(
        &migrated.client,
        &migrated.source,
        &migrated.mapper,
        &chunk,
        scratch.path(),
    )
    .await
    .unwrap();
    assert_eq!(manifest.rows, 200);
    let request =
        TableVerification::new(&migrated.run, &migrated.table, migrated.spec.verification);
    let report = verify::verify_table_against(
        Arc::new(verify::LocalDirSource::new(scratch.path())),
        Arc::new(S3Source::new(migrated.s3.clone(), &migrated.bucket)),
        &S3Sink::new(migrated.s3.clone(), &migrated.bucket),
        &request,
    )
    .await
    .unwrap();
    assert_eq!(report.verdict, Verdict::Failed);
    assert_eq!(
        (
            report.source_rows,
            report.target_items,
            report.different,
            report.matching
        ),
        (200, 200, 1, 199),
        "{}",
        report.summary()
    );
    assert_eq!(
        report.sample,
        vec![difference(
            DifferenceKind::Different,
            "pk=P#50 sk=GRP#1",
            &["label"]
        )]
    );
}

#[tokio::test]
async fn an_empty_table_verifies() {
    let migrated = migrate("Empty").await;
    migrated.export().await;
    let report = migrated.verify().await;
    assert_eq!(report.verdict, Verdict::Passed, "{}", report.summary());
    assert_eq!((report.source_rows, report.target_items), (0, 0));
}

/// `ferry verify --spec SPEC --run … --bucket … ARGS` on the migrated run: it must fail and
/// print `summary`; gives its stderr.
fn ferry_verify_fails(
    migrated: &Migrated,
    spec: &std::path::Path,
    args: &[&str],
    summary: &str,
) -> String {
    let output = ferry_tests::ferry()
        .arg("verify")
        .arg("--spec")
        .arg(spec)
        .args(["--run", &migrated.run, "--bucket", &migrated.bucket])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(summary), "{stdout}\n{stderr}");
    stderr.into_owned()
}

#[tokio::test]
async fn ferry_verify_prints_the_summary_writes_the_report_and_fails_the_run() {
    let migrated = migrate("Prices").await;
    migrated
        .dynamodb
        .delete_item()
        .table_name(&migrated.table_name)
        .set_key(Some(migrated.key(7)))
        .send()
        .await
        .unwrap();
    migrated.export().await;
    let stderr = ferry_verify_fails(
        &migrated,
        &ferry_tests::repo_root().join("tests/fixtures/verify/prices.toml"),
        &["--table", "Prices"],
        "Prices: FAILED — 200 source rows, 199 target items, 199 matching, 1 missing, \
         0 extra, 0 different, 0 duplicate keys (tolerance 0)",
    );
    assert!(
        stderr.contains("verification failed: Prices (1 missing, 0 extra, 0 different"),
        "{stderr}"
    );
    let stored = migrated
        .s3
        .get_object()
        .bucket(&migrated.bucket)
        .key(verify::report_key(&migrated.run))
        .send()
        .await
        .expect("the CLI wrote the report");
    let stored: verify::VerifyReport =
        serde_json::from_slice(&stored.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(
        stored.tables[0].sample,
        vec![difference(DifferenceKind::Missing, "pk=P#7 sk=GRP#0", &[])]
    );
}

#[tokio::test]
async fn ferry_verify_independent_re_reads_the_shards_and_leaves_no_copy() {
    let migrated = migrate("Prices").await;
    migrated.export().await;
    migrated.forget_the_bootstrap_and_relabel_50().await;
    // The fixture's shard, pointed at this test's database.
    let fixture = ferry_tests::repo_root().join("tests/fixtures/verify/prices.toml");
    let spec = std::fs::read_to_string(fixture).unwrap().replace(
        "name = \"shard-01\"\n",
        &format!(
            "name = \"shard-01\"\ndatabase = \"{}\"\n",
            migrated.database
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let prefix = migrated.table_name.strip_suffix("Prices").unwrap();
    ferry_verify_fails(
        &migrated,
        &spec_path,
        &[
            "--independent",
            "--table",
            "Prices",
            "--table-prefix",
            prefix,
        ],
        "Prices: FAILED — 200 source rows, 200 target items, 199 matching, 0 missing, \
         0 extra, 1 different, 0 duplicate keys (tolerance 0)",
    );
    // The scratch copy of the source rows is removed.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("ferry-verify-") && name.contains(&migrated.run)
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn ferry_bench_verify_ends_with_a_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let output = ferry_tests::ferry()
        .args([
            "bench",
            "verify",
            "--items",
            "3000",
            "--files",
            "2",
            "--work-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("input: 3000 items in 2 gzip files"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    let ratio: f64 = last.strip_prefix("ratio: ").unwrap().parse().unwrap();
    assert!(ratio > 0.0, "{stdout}");
}

/// The run bucket, counting the export data files opened (a diff that read the target by key
/// opens none).
struct CountingSource {
    inner: S3Source,
    export_opens: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl verify::ObjectSource for CountingSource {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, verify::VerifyError> {
        self.inner.list(prefix).await
    }

    async fn get(&self, key: &str) -> Result<bytes::Bytes, verify::VerifyError> {
        self.inner.get(key).await
    }

    async fn open(&self, key: &str) -> Result<Box<dyn std::io::Read + Send>, verify::VerifyError> {
        if key.contains("/export/") {
            self.export_opens
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.open(key).await
    }
}

const MILLION: &str = r#"
CREATE TABLE million (id integer PRIMARY KEY, label text NOT NULL);
INSERT INTO million SELECT i, 'label ' || i FROM generate_series(1, 1000000) i;
"#;

/// The issue's large-table proof: 1,000,000 items through PostgreSQL → bootstrap files →
/// ImportTable → one item changed → ExportTableToPointInTime → verify. The one difference is
/// found with its class, key and attribute, and the verification keeps the benchmark's
/// throughput (see the assertions at the end).
#[tokio::test]
async fn a_million_items_with_one_difference() {
    const ITEMS: u64 = 1_000_000;
    let started = std::time::Instant::now();
    // ~5,500 blocks of ~180 rows: four chunks, the last open-ended.
    let chunks = [
        (0, Some(1_400)),
        (1_400, Some(2_800)),
        (2_800, Some(4_200)),
        (4_200, None),
    ];
    let migrated = migrate_with("Million", MILLION, &chunks, Duration::from_secs(200)).await;
    let imported = started.elapsed();
    migrated
        .set_at(
            [("pk".to_owned(), ddb::AttributeValue::S("M#654321".into()))].into(),
            "label",
            ddb::AttributeValue::S("label 654321 changed".into()),
        )
        .await;
    migrated.export().await;
    let exported = started.elapsed();

    // The verification, in its phases, timed.
    let mut request = migrated.request();
    request.parallelism = 2;
    let objects = Arc::new(CountingSource {
        inner: S3Source::new(migrated.s3.clone(), &migrated.bucket),
        export_opens: 0.into(),
    });
    let sink = S3Sink::new(migrated.s3.clone(), &migrated.bucket);
    let files = verify::export_data_files(objects.as_ref(), &request.export_prefix)
        .await
        .unwrap();
    let verify_started = std::time::Instant::now();
    let batches = files.chunks(request.files_per_batch);
    let batch_count = batches.len() as u32;
    let mut bytes = 0;
    for (batch, batch_files) in batches.enumerate() {
        let partial = verify::digest_batch(
            objects.clone(),
            &sink,
            &migrated.run,
            &migrated.table.name,
            batch as u32,
            batch_files,
            &request.digest_options(),
        )
        .await
        .unwrap();
        bytes += partial.bytes;
    }
    let digested = verify_started.elapsed();
    let opened = objects
        .export_opens
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        opened,
        files.len(),
        "the digest reads each export file once"
    );
    let report = verify::diff_table(
        objects.clone(),
        objects.clone(),
        &request,
        &files,
        batch_count,
    )
    .await
    .unwrap();
    let verified = verify_started.elapsed();
    // The target's side of the unequal bucket came from the table by key (BatchGetItem),
    // checked against the export's digest: no export file was read again.
    assert_eq!(
        objects
            .export_opens
            .load(std::sync::atomic::Ordering::SeqCst),
        opened
    );

    assert_eq!(
        (
            report.verdict,
            report.source_rows,
            report.target_items,
            report.matching,
            report.mismatches(),
            report.differing_buckets
        ),
        (Verdict::Failed, ITEMS, ITEMS, ITEMS - 1, 1, 1),
        "{}",
        report.summary()
    );
    assert_eq!(
        report.sample,
        vec![difference(
            DifferenceKind::Different,
            "pk=M#654321",
            &["label"]
        )]
    );

    // The same-run floor: `zcat | wc -l` on the export files, downloaded.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (index, key) in files.iter().enumerate() {
        let body = verify::ObjectSource::get(objects.as_ref(), key)
            .await
            .unwrap();
        let path = dir.path().join(format!("{index}.json.gz"));
        std::fs::write(&path, body).unwrap();
        paths.push(path);
    }
    let zcat = verify::bench::zcat_baseline(&paths, bytes).unwrap();
    assert_eq!(zcat.items, ITEMS);
    let timing = |elapsed| verify::bench::Timing {
        elapsed,
        items: ITEMS,
        bytes,
    };
    let (digest, whole) = (timing(digested), timing(verified));
    // The emulator holds a million items in memory: let it free them.
    migrated
        .dynamodb
        .delete_table()
        .table_name(&migrated.table_name)
        .send()
        .await
        .unwrap();
    println!(
        "{} export files; PostgreSQL to imported table {:.1} s, export {:.1} s",
        files.len(),
        imported.as_secs_f64(),
        (exported - imported).as_secs_f64()
    );
    println!("{}", zcat.line("baseline zcat FILES | wc -l"));
    println!("{}", digest.line("verify, digest phase"));
    println!("{}", whole.line("verify, digest + diff (1 difference)"));
    let ratio = whole.items_per_second() / zcat.items_per_second();
    println!(
        "ratio to zcat: digest {:.3}, whole verification {ratio:.3}; diff / digest time {:.2}",
        digest.items_per_second() / zcat.items_per_second(),
        (verified - digested).as_secs_f64() / digested.as_secs_f64()
    );
    // "Within the benchmark's throughput": the digest of the million exported items runs at
    // `ferry bench verify`'s target, half the same-run `zcat | wc -l` items/s or better (the
    // pipeline is built with opt-level 2 in the test profile too: measured 0.74-0.80 on the
    // shared 2-core box). The whole verification, the one difference found and named
    // included, keeps a fixed share of it: the diff re-reads the source files and asks the
    // emulator for the unequal bucket's items (0.09-0.28 measured, mostly the emulator's
    // BatchGetItem), and a diff that re-read per difference or grew quadratically would fall
    // far below 0.05.
    let digest_ratio = digest.items_per_second() / zcat.items_per_second();
    assert!(
        digest_ratio >= 0.5,
        "the digest ran at {digest_ratio:.3} of zcat's items/s, below the benchmark's 0.5"
    );
    assert!(
        ratio >= 0.05,
        "the verification ran at {ratio:.3} of zcat's items/s, below 0.05"
    );
}
