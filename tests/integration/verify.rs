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
}

async fn migrate(table: &str) -> Migrated {
    let spec = spec();
    let table = spec.table(table).expect("table in the fixture").clone();

    let (_database, client) = ferry_tests::database("verify", PRICES).await;

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
    // Two chunks of block ranges, as the planner would make them; the second is open-ended.
    let sink = S3Sink::new(s3.clone(), &bucket);
    for (number, (start_block, end_block)) in [(0, Some(1)), (1, None)].into_iter().enumerate() {
        let chunk = Chunk {
            run: run.clone(),
            table: table.name.clone(),
            shard: "shard-01".into(),
            chunk: number as u32,
            start_block,
            end_block,
            compression: table.compression,
        };
        extract_chunk(
            &client,
            &source,
            &mapper,
            &chunk,
            &ExtractOptions::default(),
            &sink,
        )
        .await
        .unwrap();
    }

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
    ferry_tests::import_table(
        &dynamodb,
        &bucket,
        &Chunk::data_prefix(&run, &table.name),
        &table_name,
        &keys,
    )
    .await;
    Migrated {
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
        self.dynamodb
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(self.key(id)))
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
        for attempt in 0.. {
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
                _ if attempt < 120 => tokio::time::sleep(Duration::from_millis(250)).await,
                other => panic!("export did not complete: {other:?}"),
            }
        }
    }

    async fn verify(&self) -> TableReport {
        let request = TableVerification::new(&self.run, &self.table, self.spec.verification);
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
    // The import files are gone, and the source changed after the copy.
    let prefix = format!("runs/{}/", migrated.run);
    let listed = migrated
        .s3
        .list_objects_v2()
        .bucket(&migrated.bucket)
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        let key = object.key().unwrap();
        if key.contains("/bootstrap/") || key.contains("/manifests/") {
            migrated
                .s3
                .delete_object()
                .bucket(&migrated.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        }
    }
    migrated
        .client
        .batch_execute("UPDATE prices SET label = 'relabelled' WHERE id = 50")
        .await
        .unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let chunk = Chunk {
        run: migrated.run.clone(),
        table: migrated.table.name.clone(),
        shard: "shard-01".into(),
        chunk: 0,
        start_block: 0,
        end_block: None,
        compression: migrated.table.compression,
    };
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
    let output = ferry_tests::ferry()
        .arg("verify")
        .arg("--spec")
        .arg(ferry_tests::repo_root().join("tests/fixtures/verify/prices.toml"))
        .args(["--run", &migrated.run, "--bucket", &migrated.bucket])
        .args(["--table", "Prices"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "Prices: FAILED — 200 source rows, 199 target items, 199 matching, 1 missing, \
             0 extra, 0 different, 0 duplicate keys (tolerance 0)"
        ),
        "{stdout}"
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
