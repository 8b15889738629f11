//! The sample data generator against a real PostgreSQL: exact sizes, primary keys, determinism
//! by seed, values that round-trip, and options checked before anything is touched.

use ferry_pipeline::sample::{self, SampleError, SampleOptions};
use tokio_postgres::{Client, Config, NoTls};

const PARTITIONS: u32 = 2;
const ROWS: u64 = 2_000;

/// Every table with its primary key, as PostgreSQL prints the constraint.
const MAIN_TABLES: [(&str, &str); 2] = [
    ("hotel", "hotel_id"),
    ("rate_plan", "hotel_id, rate_plan_id"),
];
const PARTITION_TABLES: [(&str, &str); 4] = [
    (
        "base_rate",
        "hotel_id, rate_plan_id, room_type_id, stay_date",
    ),
    (
        "base_rate_association",
        "hotel_id, rate_plan_id, derived_rate_plan_id, stay_date",
    ),
    ("inventory", "hotel_id, room_type_id, stay_date"),
    ("restriction", "hotel_id, rate_plan_id, stay_date"),
];

/// Row count and checksum of one table.
#[derive(Debug, PartialEq, Eq)]
struct TableDigest {
    database: String,
    table: &'static str,
    rows: i64,
    md5: String,
}

fn options(prefix: &str, seed: u64) -> SampleOptions {
    SampleOptions {
        database_url: ferry_tests::postgres_url(),
        partitions: PARTITIONS,
        rows_per_partition: ROWS,
        seed,
        database_prefix: prefix.to_owned(),
    }
}

/// A fresh database prefix for one test.
fn prefix() -> String {
    format!("{}_", ferry_tests::unique_name("smp"))
}

fn tables_of(index: usize) -> &'static [(&'static str, &'static str)] {
    if index == 0 {
        &MAIN_TABLES
    } else {
        &PARTITION_TABLES
    }
}

/// A connection to `database` on the test server, or to the admin database for `None`.
async fn connect_to(database: Option<&str>) -> Client {
    let mut config: Config = ferry_tests::postgres_url()
        .parse()
        .expect("the harness gives a valid URL");
    if let Some(database) = database {
        config.dbname(database);
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {database:?}: {e}"));
    tokio::spawn(connection);
    client
}

async fn connect(database: &str) -> Client {
    connect_to(Some(database)).await
}

async fn generate(prefix: &str, seed: u64) -> sample::SampleSummary {
    sample::generate(&options(prefix, seed), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("generate {prefix}* with seed {seed}: {e}"))
}

/// Count and md5 of every table's rows in primary-key order, in a fixed time zone so
/// timestamptz prints the same whatever the server's default.
async fn digests(prefix: &str) -> Vec<TableDigest> {
    let mut digests = Vec::new();
    for (index, database) in sample::database_names(prefix, PARTITIONS)
        .into_iter()
        .enumerate()
    {
        let client = connect(&database).await;
        client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
        for &(table, key) in tables_of(index) {
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY {key})), '') \
                         FROM {table} t"
                    ),
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("digest {database}.{table}: {e}"));
            digests.push(TableDigest {
                database: database.clone(),
                table,
                rows: row.get(0),
                md5: row.get(1),
            });
        }
    }
    digests
}

async fn drop_databases(prefix: &str) {
    let admin = connect_to(None).await;
    for database in sample::database_names(prefix, PARTITIONS) {
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
            ))
            .await
            .unwrap_or_else(|e| panic!("drop {database}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_regenerates_identical_tables_with_exact_counts() {
    let prefix = prefix();
    let summary = generate(&prefix, 7).await;
    let first = digests(&prefix).await;

    let hotels = i64::try_from(PARTITIONS as u64 * ROWS.div_ceil(3 * 365)).unwrap();
    for digest in &first {
        let expected = match digest.table {
            "hotel" => hotels,
            "rate_plan" => hotels * 6,
            _ => ROWS as i64,
        };
        assert_eq!(digest.rows, expected, "{digest:?}");
    }
    let names = sample::database_names(&prefix, PARTITIONS);
    assert_eq!(
        summary
            .databases
            .iter()
            .map(|d| d.name.clone())
            .collect::<Vec<_>>(),
        names
    );
    let reported: Vec<(String, u64)> = summary
        .databases
        .iter()
        .flat_map(|d| d.tables.iter().cloned())
        .collect();
    let counted: Vec<(String, u64)> = first
        .iter()
        .map(|d| (d.table.to_owned(), d.rows as u64))
        .collect();
    assert_eq!(reported, counted);
    assert_eq!(
        summary.total_rows,
        counted.iter().map(|(_, rows)| rows).sum::<u64>()
    );

    // Running again over the existing databases replaces them with the same bytes.
    generate(&prefix, 7).await;
    assert_eq!(digests(&prefix).await, first);
    drop_databases(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_seed_changes_every_table() {
    let (one, other) = (prefix(), prefix());
    generate(&one, 1).await;
    generate(&other, 2).await;
    let (one_digests, other_digests) = (digests(&one).await, digests(&other).await);
    for (a, b) in one_digests.iter().zip(&other_digests) {
        assert_eq!((a.table, a.rows), (b.table, b.rows));
        assert_ne!(a.md5, b.md5, "{} is the same for seeds 1 and 2", a.table);
    }
    drop_databases(&one).await;
    drop_databases(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_have_their_primary_keys_and_partitions_share_no_hotel() {
    let prefix = prefix();
    generate(&prefix, 3).await;
    let names = sample::database_names(&prefix, PARTITIONS);
    let mut hotel_ranges = Vec::new();
    for (index, database) in names.iter().enumerate() {
        let client = connect(database).await;
        for &(table, key) in tables_of(index) {
            let definition: String = client
                .query_one(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE conrelid = $1::text::regclass AND contype = 'p'",
                    &[&table],
                )
                .await
                .unwrap_or_else(|e| panic!("primary key of {database}.{table}: {e}"))
                .get(0);
            assert_eq!(
                definition,
                format!("PRIMARY KEY ({key})"),
                "{database}.{table}"
            );
            let analysed: bool = client
                .query_one(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1",
                    &[&table],
                )
                .await
                .unwrap()
                .get(0);
            assert!(analysed, "{database}.{table} was not analysed");
        }
        if index > 0 {
            let row = client
                .query_one("SELECT min(hotel_id), max(hotel_id) FROM inventory", &[])
                .await
                .unwrap();
            hotel_ranges.push((row.get::<_, i64>(0), row.get::<_, i64>(1)));
        }
    }
    assert!(
        hotel_ranges[0].1 < hotel_ranges[1].0,
        "partitions overlap: {hotel_ranges:?}"
    );

    // Every partition hotel is in lipsdb, with the currency its rates are in.
    let main = connect(&names[0]).await;
    let partition = connect(&names[1]).await;
    let currencies: Vec<(i64, String)> = partition
        .query(
            "SELECT DISTINCT hotel_id, currency::text FROM base_rate ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(!currencies.is_empty());
    for (hotel_id, currency) in currencies {
        let known: String = main
            .query_one(
                "SELECT currency::text FROM hotel WHERE hotel_id = $1",
                &[&hotel_id],
            )
            .await
            .unwrap_or_else(|e| panic!("hotel {hotel_id} in lipsdb: {e}"))
            .get(0);
        assert_eq!(known, currency, "hotel {hotel_id}");
    }
    drop_databases(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_escapes_unicode_nulls_and_scale() {
    let prefix = prefix();
    generate(&prefix, 11).await;
    let names = sample::database_names(&prefix, PARTITIONS);
    let main = connect(&names[0]).await;
    let checks_main = [
        "SELECT count(*) FROM hotel WHERE name = 'Hôtel Ünïcødé 東京'",
        "SELECT count(*) FROM hotel WHERE name = E'Pension \"Zum Löwen\"\\t\\\\ Annex'",
        "SELECT count(*) FROM hotel WHERE attributes ? 'geo'",
    ];
    for sql in checks_main {
        let found: i64 = main.query_one(sql, &[]).await.unwrap().get(0);
        assert!(found >= 1, "{sql}");
    }

    let partition = connect(&names[1]).await;
    let checks_partition = [
        "SELECT count(*) FROM inventory \
         WHERE room_type_name = E'Suite \"Océan\"\\t\\\\ 2 niveaux\\r\\n(duplex)'",
        "SELECT count(*) FROM base_rate_association WHERE offset_value = 100.000",
        "SELECT count(*) FROM base_rate WHERE amount::text LIKE '%.50'",
        "SELECT count(*) FROM restriction WHERE details @> '{\"override\": null}'",
        "SELECT count(*) FROM restriction WHERE jsonb_typeof(details -> 'stay_lengths') = 'array'",
    ];
    for sql in checks_partition {
        let found: i64 = partition.query_one(sql, &[]).await.unwrap().get(0);
        assert!(found >= 1, "{sql}");
    }

    // About one value in ten of a nullable column is NULL, none of a NOT NULL one.
    let shares = partition
        .query_one(
            "SELECT avg((extra_adult_amount IS NULL)::int)::float8, \
                    count(*) FILTER (WHERE expiry_date <= stay_date) \
             FROM base_rate",
            &[],
        )
        .await
        .unwrap();
    let null_share: f64 = shares.get(0);
    assert!((0.05..0.15).contains(&null_share), "{null_share}");
    assert_eq!(shares.get::<_, i64>(1), 0, "expiry_date follows stay_date");
    drop_databases(&prefix).await;
}

#[tokio::test]
async fn invalid_options_are_refused_naming_the_field() {
    let prefix = prefix();
    let cases: [(&str, SampleOptions); 4] = [
        (
            "partitions",
            SampleOptions {
                partitions: 0,
                ..options(&prefix, 1)
            },
        ),
        (
            "rows_per_partition",
            SampleOptions {
                rows_per_partition: 0,
                ..options(&prefix, 1)
            },
        ),
        (
            "database_prefix",
            SampleOptions {
                database_prefix: "p".repeat(60),
                ..options(&prefix, 1)
            },
        ),
        (
            "database_url",
            SampleOptions {
                database_url: "postgres://u:s3cr3t@127.0.0.1:port/postgres".into(),
                ..options(&prefix, 1)
            },
        ),
    ];
    for (field, options) in cases {
        let error = sample::generate(&options, &|_| {}).await.expect_err(field);
        assert!(
            matches!(&error, SampleError::InvalidOption { field: f, .. } if *f == field),
            "{field}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(field), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    // Nothing was created for the refused runs.
    let admin = connect_to(None).await;
    let created: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 0);
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_the_password() {
    let options = SampleOptions {
        // Port 1 on loopback refuses at once.
        database_url: "postgres://ferry:s3cr3t@127.0.0.1:1/postgres".into(),
        ..options(&prefix(), 1)
    };
    let error = sample::generate(&options, &|_| {})
        .await
        .expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(
        matches!(&error, SampleError::Connect { database, .. } if database == "postgres"),
        "{error:?}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
}
