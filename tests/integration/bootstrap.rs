//! The bootstrap data plane against a real PostgreSQL and the emulator: every type of
//! docs/type-mapping.md goes extract → S3 object → ImportTable → Scan and comes back as the
//! expected item; a chunked extract equals a single-chunk one; bad values fail naming table,
//! column and key, and leave no object behind.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::types as ddb;
use ferry_core::spec::TableSource;
use ferry_core::spec::{KeyTemplate, TableSpec};
use ferry_core::{ErrorCode, Spec};
use ferry_pipeline::digest::{BucketDigests, ItemHasher};
use ferry_pipeline::extract::{
    describe_source, describe_table, extract_chunk, ChunkManifest, ExtractOptions, SourceTable,
};
use ferry_pipeline::item::ItemMapper;
use ferry_pipeline::plan::{
    key_bounds, plan_table, plan_table_by_key, plan_whole, table_size, Chunk, KeyBounds,
};
use ferry_pipeline::sink::{LocalDirSink, ObjectSink, S3Sink};
use ferry_pipeline::value::{parse_item_line, AttributeValue, Item};
use tokio_postgres::Client;

fn spec() -> Spec {
    Spec::from_path(&ferry_tests::repo_root().join("tests/fixtures/bootstrap/all-types.toml"))
        .expect("the bootstrap fixture spec validates")
}

fn table(name: &str) -> TableSpec {
    spec().table(name).expect("table in the fixture").clone()
}

async fn database(sql: &str) -> (String, Client) {
    ferry_tests::database("boot", sql).await
}

const ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE all_types (
    id bigint PRIMARY KEY,
    small smallint, int4v integer, big bigint,
    num numeric(20,4), wide numeric,
    real_v real, dbl double precision,
    txt text, tricky text, vc varchar(20), ch char(4), uid uuid, feeling mood,
    flag boolean NOT NULL, day date NOT NULL,
    ts timestamp, tstz timestamptz,
    doc jsonb, js json,
    ints integer[], texts text[],
    raw bytea, expires date, hidden text
);
INSERT INTO all_types VALUES (
    1, -32768, 2147483647, 9223372036854775807,
    1.5000, -12345678901234567890123456789012345678,
    0.1, 1e100,
    'Hôtel 東京 Ünïcødé', E'q"uote\ttab\nnewline\\back\r', '', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy',
    true, '2026-01-01',
    '2026-01-02 03:04:05.123456', '2026-01-02 03:04:05+02',
    '{"a": 1.50, "b": [true, null, "x"], "c": {"d": -2}}', '[1, "two"]',
    '{1,2,3}', '{"a b","c"}',
    '\x00ff10', '2026-04-01', 'secret'
);
INSERT INTO all_types (id, flag, day) VALUES (2, false, '2026-01-02');
"#;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

fn item(attributes: Vec<(&str, AttributeValue)>) -> Item {
    Item {
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}

fn expected_all_types() -> Vec<Item> {
    use AttributeValue::{Bool, Null, B, L, M};
    vec![
        item(vec![
            ("pk", s("ROW#1")),
            ("sk", s("DAY#2026-01-01#true")),
            ("id", n("1")),
            ("small", n("-32768")),
            ("int4v", n("2147483647")),
            ("big", n("9223372036854775807")),
            ("num", n("1.5")),
            ("wide", n("-12345678901234567890123456789012345678")),
            ("real_v", n("0.1")),
            ("dbl", n("1E+100")),
            ("text", s("Hôtel 東京 Ünïcødé")),
            ("tricky", s("q\"uote\ttab\nnewline\\back\r")),
            ("vc", s("")),
            ("ch", s("ab  ")),
            ("uid", s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
            ("feeling", s("happy")),
            ("flag", Bool(true)),
            ("day", s("2026-01-01")),
            ("ts", s("2026-01-02T03:04:05.123456Z")),
            ("updatedAt", s("2026-01-02T01:04:05Z")),
            (
                "doc",
                M(vec![
                    ("a".into(), n("1.5")),
                    ("b".into(), L(vec![Bool(true), Null, s("x")])),
                    ("c".into(), M(vec![("d".into(), n("-2"))])),
                ]),
            ),
            ("js", L(vec![n("1"), s("two")])),
            ("ints", L(vec![n("1"), n("2"), n("3")])),
            ("texts", L(vec![s("a b"), s("c")])),
            ("raw", B(vec![0, 255, 16])),
            ("expires", s("2026-04-01")),
            ("expiresAt", n("1775001600")),
        ]),
        item(vec![
            ("pk", s("ROW#2")),
            ("sk", s("DAY#2026-01-02#false")),
            ("id", n("2")),
            ("flag", Bool(false)),
            ("day", s("2026-01-02")),
        ]),
    ]
}

fn expected_all_types_null() -> Vec<Item> {
    use AttributeValue::{Bool, Null, L, M};
    vec![
        item(vec![
            ("id", n("1")),
            ("txt", s("Hôtel 東京 Ünïcødé")),
            ("num", n("1.50")),
            (
                "doc",
                M(vec![
                    ("a".into(), n("1.50")),
                    ("b".into(), L(vec![Bool(true), Null, s("x")])),
                    ("c".into(), M(vec![("d".into(), n("-2"))])),
                ]),
            ),
        ]),
        item(vec![
            ("id", n("2")),
            ("txt", Null),
            ("num", Null),
            ("doc", Null),
        ]),
    ]
}

/// Attribute by attribute, numbers compared by value (DynamoDB may respell them).
fn assert_same_items(table: &str, mut expected: Vec<Item>, mut actual: Vec<Item>) {
    let key = |item: &Item| format!("{:?}", item.sorted().first().map(|(_, v)| (*v).clone()));
    expected.sort_by_key(key);
    actual.sort_by_key(key);
    assert_eq!(actual.len(), expected.len(), "{table}: item count");
    for (want, got) in expected.iter().zip(&actual) {
        let want_names: Vec<&str> = want.sorted().iter().map(|(n, _)| *n).collect();
        let got_names: Vec<&str> = got.sorted().iter().map(|(n, _)| *n).collect();
        assert_eq!(got_names, want_names, "{table}: attribute names");
        for (name, value) in want.sorted() {
            let canonical = |v: &AttributeValue| {
                ItemHasher::canonical_bytes(&Item {
                    attributes: vec![(name.to_owned(), v.clone())],
                })
                .unwrap()
            };
            let got_value = got.get(name).unwrap();
            assert_eq!(
                canonical(got_value),
                canonical(value),
                "{table}: attribute {name}: got {got_value:?}, want {value:?}"
            );
        }
    }
}

pub(crate) fn from_sdk(value: &ddb::AttributeValue) -> AttributeValue {
    match value {
        ddb::AttributeValue::S(v) => AttributeValue::S(v.clone()),
        ddb::AttributeValue::N(v) => AttributeValue::N(v.clone()),
        ddb::AttributeValue::B(v) => AttributeValue::B(v.as_ref().to_vec()),
        ddb::AttributeValue::Bool(v) => AttributeValue::Bool(*v),
        ddb::AttributeValue::Null(_) => AttributeValue::Null,
        ddb::AttributeValue::L(v) => AttributeValue::L(v.iter().map(from_sdk).collect()),
        ddb::AttributeValue::M(v) => {
            AttributeValue::M(v.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect())
        }
        ddb::AttributeValue::Ss(v) => AttributeValue::Ss(v.clone()),
        ddb::AttributeValue::Ns(v) => AttributeValue::Ns(v.clone()),
        ddb::AttributeValue::Bs(v) => {
            AttributeValue::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect())
        }
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// One chunk of the whole table.
fn single_chunk(run: &str, spec: &TableSpec, shard: &str) -> Chunk {
    Chunk::whole(run, &spec.name, shard, spec.compression)
}

async fn prepare(client: &Client, spec: &TableSpec) -> (SourceTable, ItemMapper) {
    let ferry_core::spec::TableSource::Table(name) = &spec.source else {
        panic!("fixture tables read tables")
    };
    let source = describe_table(client, name).await.unwrap();
    let mapper = ItemMapper::new(spec, &source.columns).unwrap();
    (source, mapper)
}

/// ImportTable from `prefix`, wait for it, and Scan the new table.
async fn import_and_scan(
    bucket: &str,
    prefix: &str,
    table_name: &str,
    keys: &[(&str, ddb::ScalarAttributeType)],
) -> Vec<Item> {
    let config = ferry_tests::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    ferry_tests::import_table(&dynamodb, bucket, prefix, table_name, keys).await;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table_name)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for raw in page.items() {
            items.push(Item {
                attributes: raw.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect(),
            });
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    items
}

async fn bucket() -> (aws_sdk_s3::Client, String) {
    ferry_tests::s3_bucket("bkt").await
}

async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn every_type_goes_through_extract_import_and_scan() {
    let (_db, client) = database(ALL_TYPES).await;
    let (s3, bucket) = bucket().await;
    let sink = S3Sink::new(s3.clone(), &bucket);
    let run = ulid::Ulid::new().to_string();
    let prefix = ferry_tests::unique_name("imp").replace('_', "-");

    for (name, expected, keys) in [
        (
            "AllTypes",
            expected_all_types(),
            vec![
                ("pk", ddb::ScalarAttributeType::S),
                ("sk", ddb::ScalarAttributeType::S),
            ],
        ),
        (
            "AllTypesNull",
            expected_all_types_null(),
            vec![("id", ddb::ScalarAttributeType::N)],
        ),
    ] {
        let spec = table(name);
        let (source, mapper) = prepare(&client, &spec).await;
        let chunk = single_chunk(&run, &spec, "shard-01");
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
        assert_eq!(manifest.rows, 2);
        assert_eq!(manifest.digests.total(), 2);

        // The objects: the data under the import prefix, the manifest outside it.
        let keys_now = object_keys(&s3, &bucket).await;
        assert!(keys_now.contains(&chunk.object_key()), "{keys_now:?}");
        assert!(keys_now.contains(&chunk.manifest_key()), "{keys_now:?}");
        let stored: ChunkManifest = serde_json::from_slice(
            &s3.get_object()
                .bucket(&bucket)
                .key(chunk.manifest_key())
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes(),
        )
        .unwrap();
        assert_eq!(stored, manifest);

        // The object as written: every item exactly, and the same digests as the manifest.
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(chunk.object_key())
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let written = gunzip_items(&object);
        let mut hasher = ItemHasher::new(mapper.primary_key_attributes());
        let mut from_file = BucketDigests::new(manifest.digests.bits()).unwrap();
        for item in &written {
            from_file.add(hasher.hash(item).unwrap());
        }
        assert_eq!(from_file, manifest.digests, "{name}: digests of the file");
        assert_same_items(name, expected.clone(), written);

        // What DynamoDB holds after ImportTable (scripts/moto_server.py makes moto undo JSON
        // escapes as DynamoDB does).
        let table_name = format!("{prefix}-{name}");
        let scanned =
            import_and_scan(&bucket, &Chunk::data_prefix(&run, name), &table_name, &keys).await;
        assert_same_items(name, expected, scanned);
    }
}

fn gunzip_items(compressed: &[u8]) -> Vec<Item> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .read_to_end(&mut text)
        .unwrap();
    text.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| parse_item_line(line).unwrap())
        .collect()
}

/// A BaseRate-shaped table of `hotels` × 10 rate plans × 200 days, and its row count.
fn rates(hotels: u64) -> (String, u64) {
    let sql = format!(
        r#"
CREATE TABLE rates (
    hotel_id bigint, rate_plan_id integer, stay_date date,
    amount numeric(12,2) NOT NULL, currency char(3) NOT NULL, note text,
    updated_at timestamptz NOT NULL, expiry_date date NOT NULL,
    PRIMARY KEY (hotel_id, rate_plan_id, stay_date)
);
INSERT INTO rates
SELECT h, p, date '2026-01-01' + d, ((h * p + d) % 100000) / 100.0, 'EUR',
       CASE WHEN d % 7 = 0 THEN NULL ELSE 'Chambre ' || h || E' \u00e9\t' || d END,
       timestamptz '2026-01-01 00:00:00+00' + d * interval '1 minute',
       date '2026-04-01' + d
FROM generate_series(1, {hotels}) h, generate_series(1, 10) p, generate_series(0, 199) d;
ANALYZE rates;
"#
    );
    (sql, hotels * 10 * 200)
}

/// 500 hotels: 1,000,000 rows (issue 7's proof), in chunks of about 8 MB of table.
const CHUNKED_HOTELS: u64 = 500;
const CHUNKED_TARGET_MB: u64 = 8;

#[tokio::test]
async fn chunked_extract_equals_single_chunk_extract() {
    let (sql, rates_rows) = rates(CHUNKED_HOTELS);
    let (db, client) = database(&sql).await;
    let mut spec = table("Rates");
    spec.chunk_target_mb = Some(CHUNKED_TARGET_MB);
    let (source, mapper) = prepare(&client, &spec).await;
    let size = table_size(&client, &source).await.unwrap();
    let chunks = plan_table("run-c", &spec, &[("shard-01".to_owned(), size)]).unwrap();
    assert!(
        chunks.len() >= 4,
        "small chunks split the table: {chunks:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path());
    let options = ExtractOptions::default();

    // Chunks in parallel, each on its own connection, as the Distributed Map runs them (a few
    // at a time: the test server's connections are shared by every test).
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in chunks.clone() {
        let slots = slots.clone();
        let (db, source, mapper, sink, options) = (
            db.clone(),
            source.clone(),
            mapper.clone(),
            sink.clone(),
            options.clone(),
        );
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let client = ferry_tests::connect(&db).await;
            extract_chunk(&client, &source, &mapper, &chunk, &options, &sink)
                .await
                .unwrap()
        });
    }
    let mut chunked = BucketDigests::new(options.bucket_bits).unwrap();
    let mut rows = 0;
    while let Some(manifest) = tasks.join_next().await {
        let manifest = manifest.unwrap();
        rows += manifest.rows;
        chunked.merge(&manifest.digests).unwrap();
    }
    assert_eq!(rows, rates_rows);

    let whole = extract_chunk(
        &client,
        &source,
        &mapper,
        &single_chunk("run-s", &spec, "shard-01"),
        &options,
        &sink,
    )
    .await
    .unwrap();
    assert_eq!(whole.rows, rates_rows);
    assert_eq!(chunked, whole.digests, "chunked and single digests agree");

    // No key twice over the chunk files, and their items hash to the same digests. Lines are
    // hashed straight from their bytes (the owned path only for a line that needs it), and
    // keys compared by their 128-bit hashes: 1,000,000 parsed items cost a minute in debug.
    let mut keys = HashSet::new();
    let mut hasher = ItemHasher::new(mapper.primary_key_attributes());
    let mut from_files = BucketDigests::new(options.bucket_bits).unwrap();
    let mut text = Vec::new();
    for chunk in &chunks {
        text.clear();
        let compressed = std::fs::read(dir.path().join(chunk.object_key())).unwrap();
        flate2::read::MultiGzDecoder::new(&compressed[..])
            .read_to_end(&mut text)
            .unwrap();
        for line in text.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
            let hash = match hasher.hash_line(line) {
                Some(hash) => hash,
                None => hasher.hash(&parse_item_line(line).unwrap()).unwrap(),
            };
            from_files.add(hash);
            assert!(
                keys.insert(hash.key),
                "duplicate key in {}",
                String::from_utf8_lossy(line)
            );
        }
    }
    assert_eq!(keys.len() as u64, rates_rows);
    assert_eq!(from_files, whole.digests);

    // A retried chunk writes the identical object over its own.
    let path = dir.path().join(chunks[1].object_key());
    let before = std::fs::read(&path).unwrap();
    extract_chunk(&client, &source, &mapper, &chunks[1], &options, &sink)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Key-range chunks (`chunk_key`): every row once, the rows whose key is NULL too, and the same
/// digests as one whole chunk; a skewed key is cut at its histogram's quantiles, so the chunks
/// hold about equal rows where equal widths would put almost all rows in one; a key that is
/// not an integer column is refused by name.
#[tokio::test]
async fn key_range_chunks_read_every_row_once_nulls_included() {
    let (sql, rates_rows) = rates(50);
    // `lot` is hotel × 100 + plan (101..=4410) for hotels 1-44 and a million times that for
    // hotels 45-50 (up to 5,010,000,000): 88 % of the rows in the lowest millionth of the
    // range. NULL for hotel 3's plan 5 (200 rows).
    let sql = format!(
        "{sql}\nALTER TABLE rates ADD COLUMN lot bigint;\n\
         UPDATE rates SET lot = NULLIF(CASE WHEN hotel_id < 45 THEN hotel_id * 100 + rate_plan_id \
         ELSE (hotel_id * 100 + rate_plan_id) * 1000000 END, 305);\nANALYZE rates;"
    );
    let (_db, client) = database(&sql).await;
    let mut spec = table("Rates");
    spec.chunk_target_mb = Some(1);
    spec.chunk_key = Some("lot".into());
    let (source, mapper) = prepare(&client, &spec).await;
    let bounds = key_bounds(&client, &source, "lot").await.unwrap().unwrap();
    assert_eq!((bounds.low, bounds.high), (101, 5_010_000_000));
    assert!(
        bounds.histogram.len() > 10,
        "ANALYZE made a histogram: {bounds:?}"
    );
    let size = table_size(&client, &source).await.unwrap();
    let shards = [("shard-01".to_owned(), size)];
    let chunks = plan_table_by_key("run-k", &spec, &shards, &[Some(bounds.clone())]).unwrap();
    assert!(chunks.len() >= 4, "{chunks:?}");

    // Rows per chunk, counted in PostgreSQL with the chunks' own ranges.
    let count = |chunk: &ferry_pipeline::plan::Chunk| {
        let range = chunk.key_range.clone().unwrap();
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM rates WHERE (lot IS NULL AND $1::bigint IS NULL) \
                     OR (($1 IS NULL OR lot >= $1) AND ($2::bigint IS NULL OR lot < $2))",
                    &[&range.start, &range.end],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) as u64
        }
    };
    let mut per_chunk = Vec::new();
    for chunk in &chunks {
        per_chunk.push(count(chunk).await);
    }
    assert_eq!(per_chunk.iter().sum::<u64>(), rates_rows, "{per_chunk:?}");
    let fair = rates_rows / chunks.len() as u64;
    assert!(
        per_chunk.iter().all(|rows| *rows <= 2 * fair),
        "histogram cuts keep chunks near {fair} rows: {per_chunk:?}"
    );
    // Equal widths of the same range would not: one chunk takes nearly everything.
    let even = KeyBounds::even(bounds.low, bounds.high);
    let even_chunks = plan_table_by_key("run-k", &spec, &shards, &[Some(even)]).unwrap();
    let mut largest = 0;
    for chunk in &even_chunks {
        largest = largest.max(count(chunk).await);
    }
    assert!(largest * 10 >= rates_rows * 8, "{largest} of {rates_rows}");

    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path());
    let options = ExtractOptions::default();
    let mut digests = BucketDigests::new(options.bucket_bits).unwrap();
    let mut rows = 0;
    for chunk in &chunks {
        let manifest = extract_chunk(&client, &source, &mapper, chunk, &options, &sink)
            .await
            .unwrap();
        rows += manifest.rows;
        digests.merge(&manifest.digests).unwrap();
    }
    assert_eq!(rows, rates_rows, "every row once, the NULL keys included");
    let whole = extract_whole(&client, &spec, dir.path()).await;
    assert_eq!(whole.rows, rates_rows);
    assert_eq!(digests, whole.digests);

    let err = key_bounds(&client, &source, "note").await.unwrap_err();
    assert!(
        err.to_string().contains("chunk_key \"note\" is text"),
        "{err}"
    );
}

/// Extracts `spec`'s source (table or query) whole into `dir`; its manifest.
async fn extract_whole(client: &Client, spec: &TableSpec, dir: &Path) -> ChunkManifest {
    let chunks = plan_whole("run-q", spec, &["shard-01".to_owned()]).unwrap();
    assert_eq!(chunks, vec![single_chunk("run-q", spec, "shard-01")]);
    extract_query_or_table(client, spec, &chunks[0], dir)
        .await
        .unwrap()
}

/// Describes `spec`'s source and extracts `chunk` of it into `dir` with default options.
async fn extract_query_or_table(
    client: &Client,
    spec: &TableSpec,
    chunk: &Chunk,
    dir: &Path,
) -> Result<ChunkManifest, ferry_pipeline::extract::ExtractError> {
    let source = describe_source(client, &spec.source).await?;
    let mapper = ItemMapper::new(spec, &source.columns)?;
    let options = ExtractOptions::default();
    extract_chunk(
        client,
        &source,
        &mapper,
        chunk,
        &options,
        &LocalDirSink::new(dir),
    )
    .await
}

#[tokio::test]
async fn query_sources_extract_what_the_query_returns() {
    let (sql, rates_rows) = rates(5);
    let (_db, client) = database(&format!("{ALL_TYPES}\n{sql}")).await;
    let dir = tempfile::tempdir().unwrap();
    for (name, query) in [
        ("AllTypes", "SELECT * FROM all_types"),
        ("Rates", "WITH r AS (SELECT * FROM rates) SELECT * FROM r"),
    ] {
        let table_spec = table(name);
        let mut query_spec = table_spec.clone();
        query_spec.source = TableSource::Query(query.into());
        let from_table = extract_whole(&client, &table_spec, dir.path()).await;
        let from_query = extract_whole(&client, &query_spec, dir.path()).await;
        assert_eq!(from_query.rows, from_table.rows, "{name}");
        assert_eq!(from_query.digests, from_table.digests, "{name}: same items");
        // The query's columns have the kinds the catalogue gives the table's.
        let described = describe_source(&client, &query_spec.source).await.unwrap();
        let catalogued = describe_source(&client, &table_spec.source).await.unwrap();
        assert_eq!(described.columns, catalogued.columns, "{name}");
    }

    // A filtering, computing query: only its rows, its values.
    let mut spec = table("Rates");
    spec.source = TableSource::Query(
        "SELECT hotel_id, rate_plan_id, stay_date, amount * 2 AS amount, currency, note, \
         updated_at, expiry_date FROM rates WHERE rate_plan_id = 3"
            .into(),
    );
    let manifest = extract_whole(&client, &spec, dir.path()).await;
    assert_eq!(manifest.rows, rates_rows / 10);
    let items = gunzip_items(&std::fs::read(dir.path().join(manifest.object_key.clone())).unwrap());
    assert_eq!(items.len() as u64, rates_rows / 10);
    assert!(items.iter().all(
        |item| matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("RATE#3#"))
    ));

    // A block range would run the query once per chunk: refused.
    let mut ranged = single_chunk("run-q", &spec, "shard-01");
    ranged.end_block = Some(10);
    let err = extract_query_or_table(&client, &spec, &ranged, dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "table \"Rates\": chunk 0 of a query source has a block range; a query is extracted in one chunk per shard"
    );
    // Two result columns of one name cannot be told apart.
    let err = describe_source(
        &client,
        &TableSource::Query("SELECT id, id FROM all_types".into()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("column \"id\" appears twice"),
        "{err}"
    );
}

/// Runs `fault`, extracts AllTypes, and returns the error; checks nothing was left behind.
async fn extract_error(fault: &str) -> ferry_core::Error {
    let (_db, client) = database(ALL_TYPES).await;
    client.batch_execute(fault).await.unwrap();
    let spec = table("AllTypes");
    let (source, mapper) = prepare(&client, &spec).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path());
    let chunk = single_chunk("run-e", &spec, "shard-01");
    let err = extract_chunk(
        &client,
        &source,
        &mapper,
        &chunk,
        &ExtractOptions::default(),
        &sink,
    )
    .await
    .unwrap_err();
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "a failed chunk left {left:?}");
    err.into()
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn wide_numbers_are_strings_where_the_spec_lists_the_column() {
    let (_db, client) = database(ALL_TYPES).await;
    let wide = "1234567890123456789012345678901234567891.5";
    client
        .batch_execute(&format!(
            "UPDATE all_types SET wide = {wide} WHERE id = 1; UPDATE all_types SET wide = 7.25 WHERE id = 2"
        ))
        .await
        .unwrap();
    let mut spec = table("AllTypes");
    spec.wide_numbers_as_string = vec!["wide".into()];
    let (source, mapper) = prepare(&client, &spec).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path());
    let chunk = single_chunk("run-w", &spec, "shard-01");
    let options = ExtractOptions::default();
    let manifest = extract_chunk(&client, &source, &mapper, &chunk, &options, &sink)
        .await
        .unwrap();
    assert_eq!(manifest.rows, 2);
    let items = gunzip_items(&std::fs::read(dir.path().join(chunk.object_key())).unwrap());
    let wide_of = |pk: &str| {
        items
            .iter()
            .find(|item| item.get("pk") == Some(&AttributeValue::S(pk.into())))
            .and_then(|item| item.get("wide").cloned())
    };
    assert_eq!(wide_of("ROW#1"), Some(AttributeValue::S(wide.into())));
    assert_eq!(wide_of("ROW#2"), Some(AttributeValue::N("7.25".into())));

    // A column that is not numeric is refused before any row is read.
    spec.wide_numbers_as_string = vec!["dbl".into()];
    let err = ItemMapper::new(&spec, &source.columns).unwrap_err();
    assert_eq!(
        err.to_string(),
        "table \"AllTypes\", column \"dbl\": wide_numbers_as_string lists only numeric columns, not float8"
    );
}

#[tokio::test]
async fn bad_values_fail_naming_table_column_and_key() {
    let cases = [
        (
            "UPDATE all_types SET wide = 1234567890123456789012345678901234567891 WHERE id = 1",
            "table \"AllTypes\", column \"wide\", key pk=ROW#1 sk=DAY#2026-01-01#true: \
             1234567890123456789012345678901234567891 has 40 significant digits; \
             DynamoDB numbers hold at most 38",
        ),
        (
            "UPDATE all_types SET dbl = 'NaN' WHERE id = 2",
            "table \"AllTypes\", column \"dbl\", key pk=ROW#2 sk=DAY#2026-01-02#false: \
             NaN is not a number DynamoDB can store",
        ),
        (
            "UPDATE all_types SET real_v = '-Infinity' WHERE id = 1",
            "table \"AllTypes\", column \"real_v\", key pk=ROW#1 sk=DAY#2026-01-01#true: \
             -Infinity is not a number DynamoDB can store",
        ),
        (
            "UPDATE all_types SET num = 'NaN' WHERE id = 1",
            "table \"AllTypes\", column \"num\", key pk=ROW#1 sk=DAY#2026-01-01#true: \
             NaN is not a number DynamoDB can store",
        ),
    ];
    for (fault, message) in cases {
        let err = extract_error(fault).await;
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{fault}");
        assert_eq!(err.message(), message, "{fault}");
    }

    let mut spec = table("AllTypes");
    spec.key.sort.as_mut().unwrap().template = KeyTemplate::parse("DAY#{dayy}").unwrap();
    let (_db, client) = database(ALL_TYPES).await;
    let source = describe_table(&client, "public.all_types").await.unwrap();
    let err = ItemMapper::new(&spec, &source.columns).unwrap_err();
    let err: ferry_core::Error = ferry_pipeline::extract::ExtractError::from(err).into();
    assert_eq!(err.code(), ErrorCode::InvalidSpec);
    assert!(
        err.message().starts_with(
            "table \"AllTypes\": the sort key \"sk\" names column \"dayy\", which the source \
             table does not have (columns: id, small,"
        ),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_failed_chunk_leaves_no_s3_object_and_the_retry_is_identical() {
    let (_db, client) = database(ALL_TYPES).await;
    let (s3, bucket) = bucket().await;
    let sink = S3Sink::new(s3.clone(), &bucket);
    let spec = table("AllTypes");
    let (source, mapper) = prepare(&client, &spec).await;
    let chunk = single_chunk("run-f", &spec, "shard-01");

    client
        .batch_execute("UPDATE all_types SET dbl = 'NaN' WHERE id = 2")
        .await
        .unwrap();
    let options = ExtractOptions::default();
    assert!(
        extract_chunk(&client, &source, &mapper, &chunk, &options, &sink)
            .await
            .is_err()
    );
    assert!(object_keys(&s3, &bucket).await.is_empty());
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());

    client
        .batch_execute("UPDATE all_types SET dbl = NULL WHERE id = 2")
        .await
        .unwrap();
    let first = extract_chunk(&client, &source, &mapper, &chunk, &options, &sink)
        .await
        .unwrap();
    let get = |key: String| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
        }
    };
    let object = get(chunk.object_key()).await;
    let again = extract_chunk(&client, &source, &mapper, &chunk, &options, &sink)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(get(chunk.object_key()).await, object);
    assert_eq!(
        object_keys(&s3, &bucket).await,
        [chunk.manifest_key(), chunk.object_key()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

/// S3 multipart: an object larger than one part is uploaded in parts and reads back whole.
#[tokio::test]
async fn large_objects_go_up_in_parts() {
    let (s3, bucket) = bucket().await;
    let sink = S3Sink::new(s3.clone(), &bucket).with_part_size(5 * 1024 * 1024);
    let mut upload = sink.create("big/object.bin").await.unwrap();
    let piece: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for _ in 0..11 {
        upload
            .write(bytes::Bytes::from(piece.clone()))
            .await
            .unwrap();
    }
    upload.finish().await.unwrap();
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key("big/object.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(body.len(), 11 * piece.len());
    assert_eq!(&body[5 * piece.len()..6 * piece.len()], &piece[..]);

    // An aborted multipart upload leaves nothing.
    let mut upload = sink.create("big/aborted.bin").await.unwrap();
    for _ in 0..6 {
        upload
            .write(bytes::Bytes::from(piece.clone()))
            .await
            .unwrap();
    }
    upload.abort().await.unwrap();
    assert_eq!(object_keys(&s3, &bucket).await, ["big/object.bin"]);
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
}

/// A source failure mid-chunk (here the statement timeout cancelling the COPY) is retryable and
/// leaves no object; the retry then writes the chunk whole.
#[tokio::test]
async fn a_source_failure_mid_chunk_is_retryable_and_leaves_nothing() {
    let (sql, rates_rows) = rates(50);
    let (_db, client) = database(&sql).await;
    let spec = table("Rates");
    let (source, mapper) = prepare(&client, &spec).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDirSink::new(dir.path());
    let chunk = single_chunk("run-t", &spec, "shard-01");
    let hasty = ExtractOptions {
        statement_timeout: Duration::from_millis(1),
        ..ExtractOptions::default()
    };
    let err: ferry_core::Error = extract_chunk(&client, &source, &mapper, &chunk, &hasty, &sink)
        .await
        .unwrap_err()
        .into();
    assert_eq!(err.code(), ErrorCode::Retryable, "{}", err.detail());
    assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));

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
    assert_eq!(manifest.rows, rates_rows);
    assert_eq!(walk(dir.path()).len(), 2, "the object and its manifest");
}

/// `ferry bench extract` end to end on a small table: both codecs, both mappings, the peak
/// memory, and the last two lines `ratio: X.XX (GZIP)` / `(ZSTD)`. Rates are not asserted.
#[tokio::test]
async fn ferry_bench_extract_ends_with_a_ratio_per_codec() {
    let (database, _client) = ferry_tests::database("bench_extract", "SELECT 1").await;
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(ferry_tests::ferry_binary())
        .args(["bench", "extract", "--rows", "20000", "--rounds", "2"])
        .arg("--database-url")
        .arg(ferry_tests::postgres_url_for(&database))
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("rows: 20000, parallelism: ")
            && lines[0].ends_with("rounds: 2 (figures are medians)"),
        "{stdout}"
    );
    let mut round_ratios = Vec::new();
    for codec in ["GZIP", "ZSTD"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{codec}: baseline ")))
            .unwrap_or_else(|| panic!("no {codec} line in\n{stdout}"));
        assert!(line.contains("JSON 3.7 x the COPY text"), "{stdout}");
        let rounds: Vec<f64> = line
            .split_once("; ratio per round: ")
            .map(|(_, list)| list.split(", ").map(|r| r.parse().unwrap()).collect())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(rounds.len(), 2, "{line}");
        round_ratios.push(rounds);
        assert!(
            lines.iter().any(|l| l
                .starts_with(&format!("{codec} with the example's full mapping"))
                && l.contains("JSON 6.1 x")),
            "{stdout}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("ferry peak memory: ")),
        "{stdout}"
    );
    let last = lines[lines.len() - 2..].iter().zip(["GZIP", "ZSTD"]);
    for ((line, codec), rounds) in last.zip(&round_ratios) {
        let ratio: f64 = line
            .strip_prefix("ratio: ")
            .and_then(|rest| rest.strip_suffix(&format!(" ({codec})")))
            .and_then(|ratio| ratio.parse().ok())
            .unwrap_or_else(|| panic!("{line:?} in\n{stdout}"));
        assert!(ratio > 0.0, "{stdout}");
        // The ratio is the rounds' median: for two rounds, their mean (each printed rounded).
        let mean = (rounds[0] + rounds[1]) / 2.0;
        assert!(
            (ratio - mean).abs() <= 0.011,
            "{ratio} vs {rounds:?} in\n{stdout}"
        );
    }
    // The work directory is left empty.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{stdout}"
    );
}
