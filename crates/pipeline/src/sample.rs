//! Deterministic sample data: the rates & availability dataset of DESIGN.md section 8.
//!
//! [`generate`] (re)creates `{prefix}lipsdb` (hotels, rate plans) and
//! `{prefix}dailydatadb-partition-NN` (base rates, rate associations, inventory and restrictions
//! per stay date) and fills every table with `COPY ... FROM STDIN`, one connection per table and a
//! few tables at a time. Primary keys are built after the load and every table is analysed.
//!
//! Determinism: each table draws its values from its own ChaCha stream seeded by
//! (seed, database, table), and hotel-level facts (city, room counts) come from a hash of
//! (seed, hotel), so tables load in parallel, in any order, and the same options always give the
//! same bytes. Timestamps are derived from the seed around a fixed base date (2026-01-01), never
//! from the clock.
//!
//! Key space: every hotel has [`RATE_PLANS`] rate plans (ids `1..=4` carry base rates, `5` and `6`
//! are derived from them), [`ROOM_TYPES`] room types and [`STAY_DAYS`] stay dates from 2026-01-01.
//! A partition table enumerates its keys stay date first, then hotel, then the rest of its key, and
//! takes the first `rows_per_partition`, so `M` rows are exactly `M` distinct keys. Each partition
//! owns a contiguous range of hotel ids, just enough hotels for the narrowest table (inventory:
//! room types x stay dates per hotel), so keys never collide across partitions.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{Datelike, NaiveDate};
use futures_util::SinkExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_postgres::{Client, Config, NoTls};

/// Largest accepted `partitions`: partition numbers have at most three digits.
pub const MAX_PARTITIONS: u32 = 999;
/// Largest accepted `rows_per_partition`.
pub const MAX_ROWS_PER_PARTITION: u64 = 1_000_000_000;
/// PostgreSQL silently truncates longer identifiers, which would make names collide.
const MAX_DATABASE_NAME_BYTES: usize = 63;

/// Rate plans `1..=BASE_PLANS` carry base rates.
const BASE_PLANS: u64 = 4;
/// Rate plans `BASE_PLANS + 1..=RATE_PLANS` are derived from a base plan.
const DERIVED_PLANS: u64 = 2;
/// Rate plans per hotel.
pub const RATE_PLANS: u64 = BASE_PLANS + DERIVED_PLANS;
/// Room types per hotel.
pub const ROOM_TYPES: u64 = 3;
/// Stay dates per hotel, from 2026-01-01.
pub const STAY_DAYS: u64 = 365;
/// Hotel ids are `FIRST_HOTEL_ID..`, partition 1 first.
const FIRST_HOTEL_ID: i64 = 100_001;
/// Rows are sent to PostgreSQL in batches of about this many bytes.
const BATCH_BYTES: usize = 1 << 20;
/// Expiry (a TTL-like date) is the stay date plus this many days, plus up to `EXPIRY_JITTER_DAYS`.
const EXPIRY_DAYS: i64 = 90;
const EXPIRY_JITTER_DAYS: i64 = 30;
const SECONDS_PER_DAY: i64 = 86_400;

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Admin connection URL; its database name is replaced by each generated database's.
    pub database_url: String,
    /// Number of partition databases, `1..=999`.
    pub partitions: u32,
    /// Rows of each of the four partition tables in each partition, `>= 1`.
    pub rows_per_partition: u64,
    /// Same seed, same bytes; another seed, other values (the keys stay).
    pub seed: u64,
    /// Prepended to every database name (e.g. a test's unique prefix); may be empty.
    pub database_prefix: String,
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// In the order of [`database_names`].
    pub databases: Vec<DatabaseSummary>,
    /// Rows of all tables of all databases, lipsdb included.
    pub total_rows: u64,
    pub elapsed: Duration,
}

/// One generated database and the row count of each of its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSummary {
    pub name: String,
    pub tables: Vec<(String, u64)>,
}

/// Why generating failed. Messages name the database and table and never carry a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    #[error("invalid sample option `{field}`: {reason}")]
    InvalidOption { field: &'static str, reason: String },
    #[error("cannot connect to database \"{database}\": {cause}")]
    Connect {
        database: String,
        cause: tokio_postgres::Error,
    },
    #[error("cannot recreate database \"{database}\": {cause}")]
    RecreateDatabase {
        database: String,
        cause: tokio_postgres::Error,
    },
    #[error("cannot {step} table {table} in database \"{database}\": {cause}")]
    Table {
        database: String,
        table: &'static str,
        step: &'static str,
        cause: tokio_postgres::Error,
    },
    #[error("loading table {table} in database \"{database}\" stopped unexpectedly: {reason}")]
    Task {
        database: String,
        table: &'static str,
        reason: String,
    },
}

/// The databases [`generate`] creates, main database first:
/// `["{prefix}lipsdb", "{prefix}dailydatadb-partition-01", ...]`. Partition numbers have two
/// digits, three when `partitions > 99`.
pub fn database_names(prefix: &str, partitions: u32) -> Vec<String> {
    let width = if partitions > 99 { 3 } else { 2 };
    std::iter::once(format!("{prefix}lipsdb"))
        .chain((1..=partitions).map(|p| format!("{prefix}dailydatadb-partition-{p:0width$}")))
        .collect()
}

/// (Re)creates the sample databases and fills them; see the module docs.
///
/// `progress` receives one short line per step (e.g. `dailydatadb-partition-01.base_rate: 250000
/// rows`). On error the databases are left as they are; running again starts from scratch.
pub async fn generate(
    options: &SampleOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SampleSummary, SampleError> {
    let started = Instant::now();
    let admin = validate(options)?;
    let layout = Layout::new(options.partitions, options.rows_per_partition);
    let names = database_names(&options.database_prefix, options.partitions);

    progress(&format!(
        "generating {} databases: {} partitions x {} rows x {} tables, {} hotels",
        names.len(),
        options.partitions,
        options.rows_per_partition,
        PARTITION_TABLES.len(),
        layout.hotels()
    ));
    // Each database's tables start loading as soon as it exists, while the next is created.
    let admin_database = admin.get_dbname().unwrap_or("postgres").to_owned();
    let admin_client = connect(&admin, &admin_database).await?;
    let mut loads = Loads::new(&admin, layout, options.seed);
    for (index, name) in names.iter().enumerate() {
        recreate_database(&admin_client, name).await?;
        for &table in tables_of(index as u32) {
            loads.spawn(LoadJob {
                database: name.clone(),
                partition: index as u32,
                table,
            });
        }
        loads.report_finished(progress)?;
    }
    drop(admin_client);
    let counts = loads.finish(progress).await?;

    let databases: Vec<DatabaseSummary> = names
        .into_iter()
        .enumerate()
        .map(|(index, name)| DatabaseSummary {
            name,
            tables: tables_of(index as u32)
                .iter()
                .map(|&table| {
                    let rows = counts.get(&(index as u32, table)).copied().unwrap_or(0);
                    (table.name().to_owned(), rows)
                })
                .collect(),
        })
        .collect();
    let total_rows = databases
        .iter()
        .flat_map(|database| database.tables.iter().map(|(_, rows)| rows))
        .sum();
    let elapsed = started.elapsed();
    progress(&format!(
        "{total_rows} rows in {} databases in {:.1} s",
        databases.len(),
        elapsed.as_secs_f64()
    ));
    Ok(SampleSummary {
        databases,
        total_rows,
        elapsed,
    })
}

/// Checks the options and parses the admin URL.
fn validate(options: &SampleOptions) -> Result<Config, SampleError> {
    let invalid = |field, reason: String| SampleError::InvalidOption { field, reason };
    if !(1..=MAX_PARTITIONS).contains(&options.partitions) {
        return Err(invalid(
            "partitions",
            format!(
                "must be between 1 and {MAX_PARTITIONS}, got {}",
                options.partitions
            ),
        ));
    }
    if !(1..=MAX_ROWS_PER_PARTITION).contains(&options.rows_per_partition) {
        return Err(invalid(
            "rows_per_partition",
            format!(
                "must be between 1 and {MAX_ROWS_PER_PARTITION}, got {}",
                options.rows_per_partition
            ),
        ));
    }
    if options.database_prefix.contains('\0') {
        return Err(invalid(
            "database_prefix",
            "must not contain a NUL character".into(),
        ));
    }
    let longest = database_names(&options.database_prefix, options.partitions)
        .into_iter()
        .max_by_key(String::len)
        .unwrap_or_default();
    if longest.len() > MAX_DATABASE_NAME_BYTES {
        return Err(invalid(
            "database_prefix",
            format!(
                "is too long: database \"{longest}\" would have {} bytes, PostgreSQL allows {MAX_DATABASE_NAME_BYTES}",
                longest.len()
            ),
        ));
    }
    // The parser's messages name the offending option, never its value.
    options.database_url.parse::<Config>().map_err(|error| {
        invalid(
            "database_url",
            format!("is not a PostgreSQL connection URL: {error}"),
        )
    })
}

/// Tables loaded concurrently: PostgreSQL parses COPY in one backend per table, so about one
/// table per core keeps the machine busy without thrashing it.
fn load_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 16))
}

async fn connect(admin: &Config, database: &str) -> Result<Client, SampleError> {
    let mut config = admin.clone();
    config.dbname(database).application_name("ferry-sample");
    let (client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|cause| SampleError::Connect {
                database: database.to_owned(),
                cause,
            })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "sample data connection closed with an error");
        }
    });
    Ok(client)
}

/// `DROP DATABASE IF EXISTS ... WITH (FORCE)` then `CREATE DATABASE`.
async fn recreate_database(admin: &Client, name: &str) -> Result<(), SampleError> {
    let quoted = quote_ident(name);
    // Separate statements: neither may run inside the implicit transaction of a batch.
    for statement in [
        format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        format!("CREATE DATABASE {quoted}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .map_err(|cause| SampleError::RecreateDatabase {
                database: name.to_owned(),
                cause,
            })?;
    }
    Ok(())
}

/// The tables of lipsdb (`partition` 0) or of a partition database.
fn tables_of(partition: u32) -> &'static [SampleTable] {
    if partition == 0 {
        &MAIN_TABLES
    } else {
        &PARTITION_TABLES
    }
}

type LoadResult = Result<(LoadJob, u64), SampleError>;

/// The table loads under way: at most [`load_concurrency`] at a time, each on its own task.
struct Loads {
    admin: Config,
    layout: Layout,
    seed: u64,
    permits: Arc<Semaphore>,
    tasks: JoinSet<LoadResult>,
    /// Where each task works, to name it if it panics.
    places: HashMap<tokio::task::Id, (String, &'static str)>,
    lines: mpsc::UnboundedSender<String>,
    progress_lines: mpsc::UnboundedReceiver<String>,
    rows: HashMap<(u32, SampleTable), u64>,
}

impl Loads {
    fn new(admin: &Config, layout: Layout, seed: u64) -> Self {
        let (lines, progress_lines) = mpsc::unbounded_channel();
        Self {
            admin: admin.clone(),
            layout,
            seed,
            permits: Arc::new(Semaphore::new(load_concurrency())),
            tasks: JoinSet::new(),
            places: HashMap::new(),
            lines,
            progress_lines,
            rows: HashMap::new(),
        }
    }

    fn spawn(&mut self, job: LoadJob) {
        let permits = Arc::clone(&self.permits);
        let lines = self.lines.clone();
        let admin = self.admin.clone();
        let (layout, seed) = (self.layout, self.seed);
        let place = (job.database.clone(), job.table.name());
        let handle = self.tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let rows = load_table(&admin, &job, layout, seed).await?;
            // The receiver only goes away when generate itself is dropped.
            let _ = lines.send(format!(
                "{}.{}: {rows} rows",
                job.database,
                job.table.name()
            ));
            Ok((job, rows))
        });
        self.places.insert(handle.id(), place);
    }

    fn record(
        &mut self,
        joined: Result<LoadResult, tokio::task::JoinError>,
    ) -> Result<(), SampleError> {
        match joined {
            Ok(Ok((job, rows))) => {
                self.rows.insert((job.partition, job.table), rows);
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(error) => {
                let (database, table) = self.places.remove(&error.id()).unwrap_or_default();
                Err(SampleError::Task {
                    database,
                    table,
                    reason: error.to_string(),
                })
            }
        }
    }

    /// Reports finished loads without waiting; the first failure ends the run.
    fn report_finished(&mut self, progress: &(dyn Fn(&str) + Sync)) -> Result<(), SampleError> {
        while let Ok(line) = self.progress_lines.try_recv() {
            progress(&line);
        }
        while let Some(joined) = self.tasks.try_join_next() {
            self.record(joined)?;
        }
        Ok(())
    }

    /// Waits for every load; returns the rows of each (partition, table).
    async fn finish(
        mut self,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<HashMap<(u32, SampleTable), u64>, SampleError> {
        loop {
            tokio::select! {
                Some(line) = self.progress_lines.recv() => progress(&line),
                joined = self.tasks.join_next() => match joined {
                    Some(joined) => self.record(joined)?,
                    None => break,
                },
            }
        }
        self.report_finished(progress)?;
        Ok(self.rows)
    }
}

/// One table of one database.
struct LoadJob {
    database: String,
    /// 0 for lipsdb, `1..=partitions` for a partition.
    partition: u32,
    table: SampleTable,
}

/// Creates, fills (COPY FREEZE in the creating transaction: no later hint-bit rewrites), keys and
/// analyses one table on its own connection. Returns the rows copied.
async fn load_table(
    admin: &Config,
    job: &LoadJob,
    layout: Layout,
    seed: u64,
) -> Result<u64, SampleError> {
    let table = job.table;
    let failed = |step| {
        move |cause| SampleError::Table {
            database: job.database.clone(),
            table: table.name(),
            step,
            cause,
        }
    };
    let client = connect(admin, &job.database).await?;
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '256MB'; BEGIN; CREATE TABLE {} ({})",
            table.name(),
            table.columns()
        ))
        .await
        .map_err(failed("create"))?;

    let sink = client
        .copy_in::<_, Bytes>(&format!(
            "COPY {} FROM STDIN WITH (FORMAT text, FREEZE)",
            table.name()
        ))
        .await
        .map_err(failed("copy into"))?;
    futures_util::pin_mut!(sink);
    let mut rows = RowGenerator::new(table, layout, job.partition, seed);
    let mut batch = BytesMut::with_capacity(BATCH_BYTES + 64 * 1024);
    loop {
        let more = rows.fill(&mut batch, BATCH_BYTES);
        if !batch.is_empty() {
            sink.send(batch.split().freeze())
                .await
                .map_err(failed("copy into"))?;
        }
        if !more {
            break;
        }
    }
    let copied = sink.as_mut().finish().await.map_err(failed("copy into"))?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(failed("commit"))?;

    client
        .batch_execute(&format!(
            "ALTER TABLE {} ADD PRIMARY KEY ({})",
            table.name(),
            table.primary_key()
        ))
        .await
        .map_err(failed("add the primary key to"))?;
    client
        .batch_execute(&format!("ANALYZE {}", table.name()))
        .await
        .map_err(failed("analyse"))?;
    Ok(copied)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables, in load order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SampleTable {
    Hotel,
    RatePlan,
    BaseRate,
    BaseRateAssociation,
    Inventory,
    Restriction,
}

const MAIN_TABLES: [SampleTable; 2] = [SampleTable::Hotel, SampleTable::RatePlan];
const PARTITION_TABLES: [SampleTable; 4] = [
    SampleTable::BaseRate,
    SampleTable::BaseRateAssociation,
    SampleTable::Inventory,
    SampleTable::Restriction,
];

impl SampleTable {
    fn name(self) -> &'static str {
        match self {
            Self::Hotel => "hotel",
            Self::RatePlan => "rate_plan",
            Self::BaseRate => "base_rate",
            Self::BaseRateAssociation => "base_rate_association",
            Self::Inventory => "inventory",
            Self::Restriction => "restriction",
        }
    }

    /// Column definitions, in COPY order. Key columns are NOT NULL up front so adding the
    /// primary key later need not check them.
    fn columns(self) -> &'static str {
        match self {
            Self::Hotel => {
                "hotel_id bigint NOT NULL, code text NOT NULL, name text NOT NULL, \
                 country char(2) NOT NULL, currency char(3) NOT NULL, timezone text NOT NULL, \
                 created_at timestamptz NOT NULL, attributes jsonb"
            }
            Self::RatePlan => {
                "hotel_id bigint NOT NULL, rate_plan_id integer NOT NULL, name text NOT NULL, \
                 meal_plan text, refundable boolean NOT NULL"
            }
            Self::BaseRate => {
                "hotel_id bigint NOT NULL, rate_plan_id integer NOT NULL, \
                 room_type_id integer NOT NULL, stay_date date NOT NULL, \
                 amount numeric(12,2) NOT NULL, currency char(3) NOT NULL, \
                 occupancy smallint NOT NULL, extra_adult_amount numeric(10,2), \
                 updated_at timestamptz NOT NULL, expiry_date date NOT NULL"
            }
            Self::BaseRateAssociation => {
                "hotel_id bigint NOT NULL, rate_plan_id integer NOT NULL, \
                 derived_rate_plan_id integer NOT NULL, stay_date date NOT NULL, \
                 offset_type text NOT NULL, offset_value numeric(8,3) NOT NULL, rules jsonb, \
                 expiry_date date NOT NULL"
            }
            Self::Inventory => {
                "hotel_id bigint NOT NULL, room_type_id integer NOT NULL, \
                 stay_date date NOT NULL, total_rooms integer NOT NULL, \
                 sold_rooms integer NOT NULL, blocked_rooms integer, \
                 room_type_name text NOT NULL, updated_at timestamptz NOT NULL, \
                 expiry_date date NOT NULL"
            }
            Self::Restriction => {
                "hotel_id bigint NOT NULL, rate_plan_id integer NOT NULL, \
                 stay_date date NOT NULL, closed boolean NOT NULL, min_stay smallint, \
                 max_stay smallint, closed_to_arrival boolean NOT NULL, \
                 closed_to_departure boolean NOT NULL, details jsonb, expiry_date date NOT NULL"
            }
        }
    }

    fn primary_key(self) -> &'static str {
        match self {
            Self::Hotel => "hotel_id",
            Self::RatePlan => "hotel_id, rate_plan_id",
            Self::BaseRate => "hotel_id, rate_plan_id, room_type_id, stay_date",
            Self::BaseRateAssociation => "hotel_id, rate_plan_id, derived_rate_plan_id, stay_date",
            Self::Inventory => "hotel_id, room_type_id, stay_date",
            Self::Restriction => "hotel_id, rate_plan_id, stay_date",
        }
    }

    /// Keys per (hotel, stay date) of a partition table; keys per hotel of a main table.
    fn keys_per_hotel_day(self) -> u64 {
        match self {
            Self::Hotel => 1,
            Self::RatePlan => RATE_PLANS,
            Self::BaseRate => BASE_PLANS * ROOM_TYPES,
            Self::BaseRateAssociation => BASE_PLANS * DERIVED_PLANS,
            Self::Inventory => ROOM_TYPES,
            Self::Restriction => RATE_PLANS,
        }
    }

    /// Identifies the table's random stream; part of the data format, never renumber.
    fn stream(self) -> u32 {
        match self {
            Self::Hotel => 1,
            Self::RatePlan => 2,
            Self::BaseRate => 3,
            Self::BaseRateAssociation => 4,
            Self::Inventory => 5,
            Self::Restriction => 6,
        }
    }
}

/// How many hotels each partition has and how many rows each table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    partitions: u32,
    rows_per_partition: u64,
    hotels_per_partition: u64,
}

/// Where a row sits in the key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RowKey {
    /// Index of the hotel among all hotels (all partitions).
    hotel: u64,
    hotel_id: i64,
    /// Days after 2026-01-01; 0 for the main tables.
    day: i64,
    /// The rest of the key, `0..table.keys_per_hotel_day()`.
    sub: u64,
}

impl Layout {
    fn new(partitions: u32, rows_per_partition: u64) -> Self {
        let narrowest = PARTITION_TABLES
            .iter()
            .map(|table| table.keys_per_hotel_day())
            .min()
            .unwrap_or(1);
        Self {
            partitions,
            rows_per_partition,
            hotels_per_partition: rows_per_partition.div_ceil(narrowest * STAY_DAYS),
        }
    }

    fn hotels(&self) -> u64 {
        self.hotels_per_partition * u64::from(self.partitions)
    }

    fn rows(&self, table: SampleTable) -> u64 {
        match table {
            SampleTable::Hotel => self.hotels(),
            SampleTable::RatePlan => self.hotels() * RATE_PLANS,
            _ => self.rows_per_partition,
        }
    }

    fn hotel_id(hotel: u64) -> i64 {
        FIRST_HOTEL_ID + hotel as i64
    }

    /// The key of row `index` of `table` in `partition` (0 = lipsdb).
    fn key(&self, table: SampleTable, partition: u32, index: u64) -> RowKey {
        let width = table.keys_per_hotel_day();
        if partition == 0 {
            let hotel = index / width;
            return RowKey {
                hotel,
                hotel_id: Self::hotel_id(hotel),
                day: 0,
                sub: index % width,
            };
        }
        let per_day = self.hotels_per_partition * width;
        let within_day = index % per_day;
        let hotel = u64::from(partition - 1) * self.hotels_per_partition + within_day / width;
        RowKey {
            hotel,
            hotel_id: Self::hotel_id(hotel),
            day: (index / per_day) as i64,
            sub: within_day % width,
        }
    }
}

/// Writes the rows of one table of one database, in key-enumeration order.
struct RowGenerator {
    table: SampleTable,
    layout: Layout,
    partition: u32,
    seed: u64,
    rng: ChaCha8Rng,
    next: u64,
    end: u64,
    scratch: String,
}

impl RowGenerator {
    fn new(table: SampleTable, layout: Layout, partition: u32, seed: u64) -> Self {
        Self {
            table,
            layout,
            partition,
            seed,
            rng: table_rng(seed, partition, table),
            next: 0,
            end: layout.rows(table),
            scratch: String::with_capacity(512),
        }
    }

    /// Appends rows (COPY text format) until `buf` holds at least `limit` bytes or the table is
    /// complete. Returns whether rows remain.
    fn fill(&mut self, buf: &mut BytesMut, limit: usize) -> bool {
        while self.next < self.end && buf.len() < limit {
            let key = self.layout.key(self.table, self.partition, self.next);
            let city = city_of(self.seed, key.hotel_id);
            let mut row = Row::new(buf);
            let (rng, text) = (&mut self.rng, &mut self.scratch);
            match self.table {
                SampleTable::Hotel => hotel_row(&mut row, rng, text, key, city),
                SampleTable::RatePlan => rate_plan_row(&mut row, rng, key),
                SampleTable::BaseRate => base_rate_row(&mut row, rng, key, city),
                SampleTable::BaseRateAssociation => association_row(&mut row, rng, text, key),
                SampleTable::Inventory => inventory_row(&mut row, rng, key, city, self.seed),
                SampleTable::Restriction => restriction_row(&mut row, rng, text, key),
            }
            row.end();
            self.next += 1;
        }
        self.next < self.end
    }
}

/// Each (seed, database, table) gets its own stream, so tables generate independently.
fn table_rng(seed: u64, partition: u32, table: SampleTable) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&partition.to_le_bytes());
    key[12..16].copy_from_slice(&table.stream().to_le_bytes());
    key[16..].copy_from_slice(b"ferry sample v1\0");
    ChaCha8Rng::from_seed(key)
}

/// SplitMix64 finaliser: hotel-level facts that several tables must agree on.
fn mix(seed: u64, value: u64) -> u64 {
    let mut z = seed ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct City {
    code: &'static str,
    name: &'static str,
    country: &'static str,
    currency: &'static str,
    timezone: &'static str,
    /// As written in timestamps (January, so standard time south of the equator is summer time).
    utc_offset: &'static str,
    offset_minutes: i64,
    /// Local currency per euro.
    price_factor: f64,
    /// Prices are whole units (JPY, KRW, ISK).
    whole_units: bool,
    /// Degrees x 10^4.
    lat: i64,
    lon: i64,
}

// One row of the CITIES table; a struct literal per city would bury the data.
#[allow(clippy::too_many_arguments)]
const fn city(
    code: &'static str,
    name: &'static str,
    country: &'static str,
    currency: &'static str,
    timezone: &'static str,
    utc_offset: &'static str,
    offset_minutes: i64,
    price_factor: f64,
    lat: i64,
    lon: i64,
) -> City {
    let whole_units = matches!(currency.as_bytes(), b"JPY" | b"KRW" | b"ISK");
    City {
        code,
        name,
        country,
        currency,
        timezone,
        utc_offset,
        offset_minutes,
        price_factor,
        whole_units,
        lat,
        lon,
    }
}

#[rustfmt::skip]
const CITIES: [City; 16] = [
    city("TYO", "東京", "JP", "JPY", "Asia/Tokyo", "+09:00", 540, 160.0, 356_895, 1_396_917),
    city("PAR", "Paris", "FR", "EUR", "Europe/Paris", "+01:00", 60, 1.0, 488_566, 23_522),
    city("ZRH", "Zürich", "CH", "CHF", "Europe/Zurich", "+01:00", 60, 0.95, 473_769, 85_417),
    city("GRU", "São Paulo", "BR", "BRL", "America/Sao_Paulo", "-03:00", -180, 6.2, -235_505, -466_333),
    city("NYC", "New York", "US", "USD", "America/New_York", "-05:00", -300, 1.1, 407_128, -740_060),
    city("REK", "Reykjavík", "IS", "ISK", "Atlantic/Reykjavik", "+00:00", 0, 150.0, 641_466, -219_426),
    city("BOM", "मुंबई", "IN", "INR", "Asia/Kolkata", "+05:30", 330, 92.0, 190_760, 728_777),
    city("KTM", "काठमाडौं", "NP", "NPR", "Asia/Kathmandu", "+05:45", 345, 147.0, 277_172, 853_240),
    city("SYD", "Sydney", "AU", "AUD", "Australia/Sydney", "+11:00", 660, 1.7, -338_688, 1_512_093),
    city("KRK", "Kraków", "PL", "PLN", "Europe/Warsaw", "+01:00", 60, 4.3, 500_647, 199_450),
    city("IST", "İstanbul", "TR", "TRY", "Europe/Istanbul", "+03:00", 180, 36.0, 410_082, 289_784),
    city("ATH", "Αθήνα", "GR", "EUR", "Europe/Athens", "+02:00", 120, 1.0, 379_838, 237_275),
    city("SEL", "서울", "KR", "KRW", "Asia/Seoul", "+09:00", 540, 1450.0, 375_665, 1_269_780),
    city("DXB", "دبي", "AE", "AED", "Asia/Dubai", "+04:00", 240, 4.0, 252_048, 552_708),
    city("YYT", "St. John's", "CA", "CAD", "America/St_Johns", "-03:30", -210, 1.5, 475_615, -527_126),
    city("LON", "London", "GB", "GBP", "Europe/London", "+00:00", 0, 0.85, 515_072, -1_276),
];

fn city_of(seed: u64, hotel_id: i64) -> &'static City {
    &CITIES[(mix(seed, hotel_id as u64) % CITIES.len() as u64) as usize]
}

/// The first hotels get these names, so even a tiny dataset has them.
const SPECIAL_HOTEL_NAMES: [&str; 3] = [
    "Hôtel Ünïcødé 東京",
    "Pension \"Zum Löwen\"\t\\ Annex",
    "Ryokan 🌸 花見 O'Hara",
];
const HOTEL_BRANDS: [&str; 12] = [
    "Hôtel",
    "Grand Hotel",
    "Hotel",
    "Ryokan",
    "Pousada",
    "Gästehaus",
    "Auberge",
    "Boutique Hôtel",
    "Hostal",
    "Residenza",
    "Palace",
    "Inn",
];
const HOTEL_SUFFIXES: [&str; 6] = ["", "", " 🌴", " ★★★★", " & Spa", " — Centre"];
const CHAINS: [&str; 4] = ["Ünïcødé Hotels", "Sakura ホテルズ", "Nordlys", "Casa & Co"];
const AMENITIES: [&str; 6] = ["wifi", "spa", "piscine 🏊", "parking", "gym", "露天風呂"];
const RATE_PLAN_NAMES: [&str; RATE_PLANS as usize] = [
    "Best Available Rate",
    "Flexible – free cancellation",
    "Non-refundable (prepaid)",
    "Bed & Breakfast 朝食付き",
    "Member rate −10 % 🎟️",
    "Early bird \"30 days\"",
];
const MEAL_PLANS: [&str; 5] = ["RO", "BB", "HB", "FB", "AI"];
/// Room type names cycle through this list hotel by hotel, so every entry (one with a quote,
/// tab, backslash, CR and LF to exercise escaping) appears in the first three hotels.
const ROOM_TYPE_NAMES: [&str; 9] = [
    "Chambre Double Supérieure",
    "Deluxe King 🛏️",
    "和室 Japanese-style room",
    "Suite \"Océan\"\t\\ 2 niveaux\r\n(duplex)",
    "Habitación Estándar",
    "Einzelzimmer Komfort",
    "Семейный номер",
    "Studio à l'étage",
    "غرفة مزدوجة",
];
/// Base price of each room type in euro cents.
const ROOM_BASE_CENTS: [u64; ROOM_TYPES as usize] = [8_900, 12_900, 24_900];
/// Base rate plan price in percent of the room's base price.
const PLAN_PERCENT: [u64; BASE_PLANS as usize] = [100, 110, 88, 115];
const ROUNDINGS: [&str; 3] = ["UP", "DOWN", "NEAREST"];
const CHANNELS: [&str; 4] = ["web", "gds", "ota", "call-centre"];
const RESTRICTION_SOURCES: [&str; 3] = ["channel-manager", "revenue-system", "manual"];
const RESTRICTION_REASONS: [&str; 4] = [
    "Événement local 🎉",
    "Maintenance \"lift B\"\t\\ floors 3–5",
    "繁忙期",
    "Group block",
];

fn hotel_row(row: &mut Row, rng: &mut ChaCha8Rng, text: &mut String, key: RowKey, city: &City) {
    row.int(key.hotel_id);
    let code = row.field();
    code.extend_from_slice(city.code.as_bytes());
    push_u64(code, key.hotel_id as u64);
    text.clear();
    match SPECIAL_HOTEL_NAMES.get(key.hotel as usize) {
        Some(name) => text.push_str(name),
        None => {
            text.push_str(pick(rng, &HOTEL_BRANDS));
            text.push(' ');
            text.push_str(city.name);
            text.push_str(pick(rng, &HOTEL_SUFFIXES));
        }
    }
    row.text(text);
    row.text(city.country);
    row.text(city.currency);
    row.text(city.timezone);
    // Opened between 2015 and the end of 2025.
    let opened = -rng.random_range(31 * SECONDS_PER_DAY..4_000 * SECONDS_PER_DAY);
    row.timestamptz(opened, rng.random_range(0..1_000_000), city);
    if is_null(rng) {
        row.null();
    } else {
        hotel_attributes(rng, text, city);
        row.text(text);
    }
}

fn hotel_attributes(rng: &mut ChaCha8Rng, json: &mut String, city: &City) {
    json.clear();
    let stars = rng.random_range(1..=5);
    let rating = rng.random_range(55..=99);
    let rooms = rng.random_range(8..=400);
    let _ = write!(
        json,
        "{{\"stars\": {stars}, \"rating\": {}.{}, \"rooms\": {rooms}, \"chain\": ",
        rating / 10,
        rating % 10
    );
    if rng.random_ratio(1, 4) {
        json.push_str("null");
    } else {
        json_string(json, pick(rng, &CHAINS));
    }
    json.push_str(", \"amenities\": [");
    let mut first = true;
    for amenity in AMENITIES {
        if rng.random_bool(0.5) {
            if !first {
                json.push_str(", ");
            }
            first = false;
            json_string(json, amenity);
        }
    }
    json.push_str("], \"geo\": {\"lat\": ");
    json_fixed(json, city.lat + rng.random_range(-500..=500), 4);
    json.push_str(", \"lon\": ");
    json_fixed(json, city.lon + rng.random_range(-500..=500), 4);
    let _ = write!(
        json,
        "}}, \"pets_allowed\": {}, \"check_in\": {{\"from\": \"15:00\", \"until\": ",
        rng.random_bool(0.3)
    );
    json.push_str(if rng.random_bool(0.5) {
        "null"
    } else {
        "\"23:30\""
    });
    json.push('}');
    if rng.random_ratio(1, 10) {
        json.push_str(", \"note\": ");
        json_string(json, "Late arrival: ring \"Night\" bell\t\\ side door 🔔");
    }
    json.push('}');
}

fn rate_plan_row(row: &mut Row, rng: &mut ChaCha8Rng, key: RowKey) {
    let plan = key.sub + 1;
    row.int(key.hotel_id);
    row.int(plan as i64);
    row.text(RATE_PLAN_NAMES[key.sub as usize]);
    if is_null(rng) {
        row.null();
    } else {
        row.text(pick(rng, &MEAL_PLANS));
    }
    // Plan 3 is the prepaid one.
    row.bool(plan != 3 && rng.random_bool(0.85));
}

fn base_rate_row(row: &mut Row, rng: &mut ChaCha8Rng, key: RowKey, city: &City) {
    let plan = key.sub / ROOM_TYPES;
    let room = key.sub % ROOM_TYPES;
    row.int(key.hotel_id);
    row.int(plan as i64 + 1);
    row.int(room as i64 + 1);
    row.date(key.day);
    // Weekends (2026-01-03 is a Saturday) cost a fifth more.
    let weekend = if matches!(key.day % 7, 2 | 3) {
        120
    } else {
        100
    };
    let euro_cents = ROOM_BASE_CENTS[room as usize] * PLAN_PERCENT[plan as usize] / 100 * weekend
        / 100
        * rng.random_range(85..=135)
        / 100;
    let mut amount = local_cents(city, euro_cents);
    // Prices are often round: 129.00 or 129.50.
    match rng.random_range(0..10) {
        0..=3 => amount -= amount % 100,
        4 if !city.whole_units => amount = amount - amount % 100 + 50,
        _ => {}
    }
    row.decimal(amount, 2);
    row.text(city.currency);
    row.int(rng.random_range(1..=2) + room as i64);
    if is_null(rng) {
        row.null();
    } else {
        // 1.50 to 30.00 euro in steps of 0.50.
        row.decimal(local_cents(city, rng.random_range(3..=60) * 50), 2);
    }
    let updated = -rng.random_range(0..31 * SECONDS_PER_DAY);
    row.timestamptz(updated, rng.random_range(0..1_000_000), city);
    row.date(expiry(rng, key.day));
}

fn association_row(row: &mut Row, rng: &mut ChaCha8Rng, json: &mut String, key: RowKey) {
    let plan = key.sub / DERIVED_PLANS + 1;
    let derived = BASE_PLANS + key.sub % DERIVED_PLANS + 1;
    row.int(key.hotel_id);
    row.int(plan as i64);
    row.int(derived as i64);
    row.date(key.day);
    if rng.random_bool(0.7) {
        row.text("PERCENT");
        // -20.000 to 20.000 in steps of 0.5: 1.500, 10.000, ...
        row.decimal(rng.random_range(-40..=40) * 500, 3);
    } else {
        row.text("AMOUNT");
        const AMOUNTS: [i64; 6] = [1_500, 2_500, 5_000, 10_000, 12_750, 100_000];
        let millis = if rng.random_bool(0.5) {
            pick(rng, &AMOUNTS)
        } else {
            rng.random_range(100..=150_000)
        };
        row.decimal(millis, 3);
    }
    if is_null(rng) {
        row.null();
    } else {
        association_rules(rng, json);
        row.text(json);
    }
    row.date(expiry(rng, key.day));
}

fn association_rules(rng: &mut ChaCha8Rng, json: &mut String) {
    json.clear();
    json.push_str("{\"rounding\": ");
    json_string(json, pick(rng, &ROUNDINGS));
    json.push_str(", \"min_amount\": ");
    json_fixed(json, rng.random_range(0..=40) * 50, 2);
    json.push_str(", \"channels\": [");
    let count = rng.random_range(1..=CHANNELS.len());
    for (index, channel) in CHANNELS.iter().take(count).enumerate() {
        if index > 0 {
            json.push_str(", ");
        }
        json_string(json, channel);
    }
    let _ = write!(
        json,
        "], \"stackable\": {}, \"priority\": {}, \"valid_weekdays\": [1, 2, 3, 4, 5{}], \"source\": null}}",
        rng.random_bool(0.2),
        rng.random_range(1..=9),
        if rng.random_bool(0.5) { ", 6, 7" } else { "" }
    );
}

fn inventory_row(row: &mut Row, rng: &mut ChaCha8Rng, key: RowKey, city: &City, seed: u64) {
    let room = key.sub;
    row.int(key.hotel_id);
    row.int(room as i64 + 1);
    row.date(key.day);
    // A hotel's room type has the same number of rooms every day.
    let total = 5 + (mix(seed ^ 0x1A7E_17D0, key.hotel * ROOM_TYPES + room) % 116) as i64;
    let sold = rng.random_range(0..=total);
    row.int(total);
    row.int(sold);
    if is_null(rng) {
        row.null();
    } else {
        row.int(rng.random_range(0..=(total - sold).min(5)));
    }
    let name = (key.hotel * ROOM_TYPES + room) % ROOM_TYPE_NAMES.len() as u64;
    row.text(ROOM_TYPE_NAMES[name as usize]);
    let updated = -rng.random_range(0..31 * SECONDS_PER_DAY);
    row.timestamptz(updated, rng.random_range(0..1_000_000), city);
    row.date(expiry(rng, key.day));
}

fn restriction_row(row: &mut Row, rng: &mut ChaCha8Rng, json: &mut String, key: RowKey) {
    row.int(key.hotel_id);
    row.int(key.sub as i64 + 1);
    row.date(key.day);
    row.bool(rng.random_ratio(1, 12));
    let min_stay = rng.random_range(1..=3);
    if is_null(rng) {
        row.null();
    } else {
        row.int(min_stay);
    }
    if is_null(rng) {
        row.null();
    } else {
        row.int(rng.random_range(7..=30));
    }
    row.bool(rng.random_ratio(1, 20));
    row.bool(rng.random_ratio(1, 20));
    if is_null(rng) {
        row.null();
    } else {
        restriction_details(rng, json, min_stay);
        row.text(json);
    }
    row.date(expiry(rng, key.day));
}

fn restriction_details(rng: &mut ChaCha8Rng, json: &mut String, min_stay: i64) {
    json.clear();
    json.push_str("{\"source\": ");
    json_string(json, pick(rng, &RESTRICTION_SOURCES));
    json.push_str(", \"reason\": ");
    json_string(json, pick(rng, &RESTRICTION_REASONS));
    json.push_str(", \"stay_lengths\": [");
    for length in min_stay..min_stay + rng.random_range(1..=3) {
        if length > min_stay {
            json.push_str(", ");
        }
        let _ = write!(json, "{length}");
    }
    let _ = write!(
        json,
        "], \"override\": null, \"strict\": {}, \"by\": {{\"user\": \"revenue-bot\", \"id\": {}, \"score\": ",
        rng.random_bool(0.5),
        rng.random_range(1..=500)
    );
    json_fixed(json, rng.random_range(-1_000..=1_000), 3);
    json.push_str("}}");
}

/// About one value in ten of a nullable column is NULL.
fn is_null(rng: &mut ChaCha8Rng) -> bool {
    rng.random_ratio(1, 10)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn expiry(rng: &mut ChaCha8Rng, day: i64) -> i64 {
    day + EXPIRY_DAYS + rng.random_range(0..=EXPIRY_JITTER_DAYS)
}

/// Euro cents to local cents (whole units where the currency has no minor unit).
fn local_cents(city: &City, euro_cents: u64) -> i64 {
    let cents = (euro_cents as f64 * city.price_factor).round() as i64;
    if city.whole_units {
        cents - cents % 100
    } else {
        cents
    }
}

/// A JSON string literal.
fn json_string(json: &mut String, value: &str) {
    json.push_str(&serde_json::to_string(value).expect("a string always serializes"));
}

/// A JSON number with `scale` decimals from an integer count of 10^-scale.
fn json_fixed(json: &mut String, value: i64, scale: u32) {
    let unit = 10u64.pow(scale);
    let magnitude = value.unsigned_abs();
    let sign = if value < 0 { "-" } else { "" };
    let _ = write!(
        json,
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = scale as usize
    );
}

/// One row in COPY text format: fields separated by tabs, a newline at the end.
struct Row<'a> {
    buf: &'a mut BytesMut,
    started: bool,
}

impl<'a> Row<'a> {
    fn new(buf: &'a mut BytesMut) -> Self {
        Self {
            buf,
            started: false,
        }
    }

    /// Starts the next field and returns the buffer to write it into.
    fn field(&mut self) -> &mut BytesMut {
        if self.started {
            self.buf.put_u8(b'\t');
        }
        self.started = true;
        self.buf
    }

    fn int(&mut self, value: i64) {
        push_i64(self.field(), value);
    }

    fn decimal(&mut self, value: i64, scale: u32) {
        push_fixed(self.field(), value, scale);
    }

    fn text(&mut self, value: &str) {
        push_escaped(self.field(), value);
    }

    fn bool(&mut self, value: bool) {
        self.field().put_u8(if value { b't' } else { b'f' });
    }

    fn null(&mut self) {
        self.field().extend_from_slice(b"\\N");
    }

    /// Days after 2026-01-01.
    fn date(&mut self, day: i64) {
        self.field().extend_from_slice(calendar().date(day));
    }

    /// `seconds` after 2026-01-01T00:00:00Z, written in the city's local time with its offset.
    fn timestamptz(&mut self, seconds: i64, micros: u32, city: &City) {
        push_timestamptz(
            self.field(),
            seconds,
            micros,
            city.offset_minutes,
            city.utc_offset,
        );
    }

    fn end(self) {
        self.buf.put_u8(b'\n');
    }
}

/// Escapes a value for COPY text format: backslash, tab, newline and carriage return.
fn push_escaped(buf: &mut BytesMut, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..index]);
        buf.extend_from_slice(escaped);
        start = index + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

fn push_u64(buf: &mut BytesMut, value: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn push_i64(buf: &mut BytesMut, value: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `value` counts units of 10^-scale: (150, 2) is `1.50`, (100000, 3) is `100.000`.
fn push_fixed(buf: &mut BytesMut, value: i64, scale: u32) {
    let unit = 10u64.pow(scale);
    let magnitude = value.unsigned_abs();
    if value < 0 {
        buf.put_u8(b'-');
    }
    push_u64(buf, magnitude / unit);
    if scale > 0 {
        buf.put_u8(b'.');
        let mut fraction = magnitude % unit;
        let mut digits = [b'0'; 20];
        for at in (0..scale as usize).rev() {
            digits[at] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        buf.extend_from_slice(&digits[..scale as usize]);
    }
}

fn push_two_digits(buf: &mut BytesMut, value: i64) {
    buf.extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
}

/// `2025-12-14 08:30:12.123456+09:00`: the local wall clock at `offset_minutes` from UTC.
fn push_timestamptz(
    buf: &mut BytesMut,
    seconds: i64,
    micros: u32,
    offset_minutes: i64,
    offset: &str,
) {
    let local = seconds + offset_minutes * 60;
    buf.extend_from_slice(calendar().date(local.div_euclid(SECONDS_PER_DAY)));
    let second_of_day = local.rem_euclid(SECONDS_PER_DAY);
    buf.put_u8(b' ');
    push_two_digits(buf, second_of_day / 3600);
    buf.put_u8(b':');
    push_two_digits(buf, second_of_day / 60 % 60);
    buf.put_u8(b':');
    push_two_digits(buf, second_of_day % 60);
    buf.put_u8(b'.');
    let mut digits = [b'0'; 6];
    let mut rest = micros % 1_000_000;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    buf.extend_from_slice(&digits);
    buf.extend_from_slice(offset.as_bytes());
}

/// Formatted dates around 2026-01-01, computed once.
struct Calendar {
    first_day: i64,
    dates: Vec<[u8; 10]>,
}

/// Oldest date written: hotels opened up to 4000 days before 2026-01-01.
const CALENDAR_FIRST_DAY: i64 = -4_100;
/// Past the last expiry date.
const CALENDAR_END_DAY: i64 = STAY_DAYS as i64 + EXPIRY_DAYS + EXPIRY_JITTER_DAYS + 10;

fn calendar() -> &'static Calendar {
    static CALENDAR: OnceLock<Calendar> = OnceLock::new();
    CALENDAR.get_or_init(|| {
        let base = NaiveDate::from_ymd_opt(2026, 1, 1)
            .expect("a valid date")
            .num_days_from_ce();
        let dates = (CALENDAR_FIRST_DAY..CALENDAR_END_DAY)
            .map(|day| {
                let date = NaiveDate::from_num_days_from_ce_opt(base + day as i32)
                    .expect("dates near 2026 are valid");
                let mut text = [0u8; 10];
                let year = date.year() as u32;
                let digits = [
                    year / 1000,
                    year / 100 % 10,
                    year / 10 % 10,
                    year % 10,
                    date.month() / 10,
                    date.month() % 10,
                    date.day() / 10,
                    date.day() % 10,
                ];
                let positions = [0, 1, 2, 3, 5, 6, 8, 9];
                for (position, digit) in positions.into_iter().zip(digits) {
                    text[position] = b'0' + digit as u8;
                }
                text[4] = b'-';
                text[7] = b'-';
                text
            })
            .collect();
        Calendar {
            first_day: CALENDAR_FIRST_DAY,
            dates,
        }
    })
}

impl Calendar {
    /// `day` days after 2026-01-01, as `YYYY-MM-DD`.
    fn date(&self, day: i64) -> &[u8; 10] {
        &self.dates[(day - self.first_day) as usize]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn options() -> SampleOptions {
        SampleOptions {
            database_url: "postgres://postgres:hunter2@127.0.0.1:5432/postgres".into(),
            partitions: 2,
            rows_per_partition: 100,
            seed: 7,
            database_prefix: "t_".into(),
        }
    }

    fn table_bytes(table: SampleTable, layout: Layout, partition: u32, seed: u64) -> Vec<u8> {
        let mut generator = RowGenerator::new(table, layout, partition, seed);
        let mut buf = BytesMut::new();
        // Small batches: the output must not depend on where batches end.
        loop {
            let limit = buf.len() + 1000;
            if !generator.fill(&mut buf, limit) {
                break;
            }
        }
        buf.to_vec()
    }

    /// Splits COPY text into rows of fields, unescaped; `None` for NULL.
    fn parse_copy(bytes: &[u8]) -> Vec<Vec<Option<String>>> {
        let text = std::str::from_utf8(bytes).expect("COPY text is UTF-8");
        text.lines()
            .map(|line| {
                line.split('\t')
                    .map(|field| {
                        if field == "\\N" {
                            return None;
                        }
                        let mut value = String::new();
                        let mut chars = field.chars();
                        while let Some(c) = chars.next() {
                            if c != '\\' {
                                value.push(c);
                                continue;
                            }
                            match chars.next() {
                                Some('t') => value.push('\t'),
                                Some('n') => value.push('\n'),
                                Some('r') => value.push('\r'),
                                Some('\\') => value.push('\\'),
                                other => panic!("unexpected escape {other:?} in {field:?}"),
                            }
                        }
                        Some(value)
                    })
                    .collect()
            })
            .collect()
    }

    fn column_count(table: SampleTable) -> usize {
        table.columns().split(", ").count()
    }

    #[test]
    fn generate_can_run_on_a_spawned_task() {
        fn assert_send<T: Send>(_: &T) {}
        let options = options();
        let progress = |_: &str| {};
        let future = generate(&options, &progress);
        assert_send(&future);
    }

    #[test]
    fn database_names_use_two_digits_then_three() {
        assert_eq!(
            database_names("p_", 2),
            [
                "p_lipsdb",
                "p_dailydatadb-partition-01",
                "p_dailydatadb-partition-02"
            ]
        );
        let many = database_names("", 100);
        assert_eq!(many.len(), 101);
        assert_eq!(many[1], "dailydatadb-partition-001");
        assert_eq!(many[100], "dailydatadb-partition-100");
        assert_eq!(database_names("", 99)[99], "dailydatadb-partition-99");
    }

    #[test]
    fn invalid_options_name_the_field() {
        let cases = [
            (
                "partitions",
                SampleOptions {
                    partitions: 0,
                    ..options()
                },
            ),
            (
                "partitions",
                SampleOptions {
                    partitions: 1000,
                    ..options()
                },
            ),
            (
                "rows_per_partition",
                SampleOptions {
                    rows_per_partition: 0,
                    ..options()
                },
            ),
            (
                "database_prefix",
                SampleOptions {
                    database_prefix: "x".repeat(40),
                    ..options()
                },
            ),
            (
                "database_prefix",
                SampleOptions {
                    database_prefix: "a\0b".into(),
                    ..options()
                },
            ),
            (
                "database_url",
                SampleOptions {
                    database_url: "postgres://postgres:hunter2@127.0.0.1:notaport/x".into(),
                    ..options()
                },
            ),
        ];
        for (field, options) in cases {
            let error = validate(&options).expect_err(field);
            assert!(
                matches!(error, SampleError::InvalidOption { field: f, .. } if f == field),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(field), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        assert!(validate(&options()).is_ok());
    }

    #[test]
    fn copy_text_escapes_backslash_tab_newline_and_carriage_return() {
        let mut buf = BytesMut::new();
        push_escaped(&mut buf, "a\tb\\c\nd\re \"q\" ü東🌴");
        assert_eq!(&buf[..], "a\\tb\\\\c\\nd\\re \"q\" ü東🌴".as_bytes());
        buf.clear();
        push_escaped(&mut buf, "\\N");
        assert_eq!(&buf[..], b"\\\\N");
    }

    #[test]
    fn numbers_keep_their_scale() {
        let cases: [(i64, u32, &str); 7] = [
            (150, 2, "1.50"),
            (100_000, 3, "100.000"),
            (-5, 2, "-0.05"),
            (0, 3, "0.000"),
            (-12_500, 3, "-12.500"),
            (i64::MIN, 0, "-9223372036854775808"),
            (42, 0, "42"),
        ];
        for (value, scale, expected) in cases {
            let mut buf = BytesMut::new();
            push_fixed(&mut buf, value, scale);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), expected);
            let mut json = String::new();
            if scale > 0 {
                json_fixed(&mut json, value, scale);
                assert_eq!(json, expected);
            }
        }
    }

    #[test]
    fn dates_and_timestamps_are_local_with_offsets() {
        assert_eq!(calendar().date(0), b"2026-01-01");
        assert_eq!(calendar().date(-1), b"2025-12-31");
        assert_eq!(calendar().date(59), b"2026-03-01");
        assert_eq!(calendar().date(364), b"2026-12-31");
        let mut buf = BytesMut::new();
        // 2025-12-31T20:00:00.000042Z is already the new year in Kathmandu.
        push_timestamptz(&mut buf, -4 * 3600, 42, 345, "+05:45");
        assert_eq!(&buf[..], b"2026-01-01 01:45:00.000042+05:45");
        buf.clear();
        push_timestamptz(&mut buf, 3600 + 59, 999_999, -210, "-03:30");
        assert_eq!(&buf[..], b"2025-12-31 21:30:59.999999-03:30");
    }

    #[test]
    fn keys_are_distinct_and_partitions_own_disjoint_hotels() {
        for rows in [1, 2, 1_094, 1_095, 1_096, 5_000] {
            let layout = Layout::new(3, rows);
            assert_eq!(
                layout.hotels_per_partition,
                rows.div_ceil(ROOM_TYPES * STAY_DAYS)
            );
            let mut all_hotels = HashSet::new();
            for table in PARTITION_TABLES {
                let mut seen = HashSet::new();
                for partition in 1..=3 {
                    let mut hotels = HashSet::new();
                    for index in 0..rows {
                        let key = layout.key(table, partition, index);
                        assert!((0..STAY_DAYS as i64).contains(&key.day), "{key:?}");
                        assert!(key.sub < table.keys_per_hotel_day());
                        assert_eq!(
                            key.hotel / layout.hotels_per_partition,
                            u64::from(partition - 1)
                        );
                        assert!(seen.insert((key.hotel_id, key.day, key.sub)), "{key:?}");
                        hotels.insert(key.hotel_id);
                    }
                    all_hotels.extend(hotels);
                }
                assert_eq!(seen.len() as u64, rows * 3);
            }
            // The narrowest table uses every hotel, so lipsdb has no hotel without rows.
            assert_eq!(all_hotels.len() as u64, layout.hotels());
            let main: HashSet<_> = (0..layout.rows(SampleTable::Hotel))
                .map(|index| layout.key(SampleTable::Hotel, 0, index).hotel_id)
                .collect();
            assert_eq!(main, all_hotels);
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_values() {
        let layout = Layout::new(2, 3_000);
        for (partition, table) in [(0, SampleTable::Hotel), (0, SampleTable::RatePlan)]
            .into_iter()
            .chain(PARTITION_TABLES.map(|table| (2, table)))
        {
            let first = table_bytes(table, layout, partition, 42);
            assert_eq!(
                first,
                table_bytes(table, layout, partition, 42),
                "{table:?}"
            );
            assert_ne!(
                first,
                table_bytes(table, layout, partition, 43),
                "{table:?}"
            );
            let mut whole = RowGenerator::new(table, layout, partition, 42);
            let mut buf = BytesMut::new();
            assert!(!whole.fill(&mut buf, usize::MAX));
            assert_eq!(&buf[..], &first[..], "{table:?}: batching changes nothing");
        }
    }

    #[test]
    fn rows_are_well_formed() {
        let layout = Layout::new(2, 5_000);
        for (partition, table) in [(0, SampleTable::Hotel), (0, SampleTable::RatePlan)]
            .into_iter()
            .chain(PARTITION_TABLES.map(|table| (1, table)))
        {
            let bytes = table_bytes(table, layout, partition, 1);
            let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(newlines, layout.rows(table), "{table:?}");
            let rows = parse_copy(&bytes);
            let columns: Vec<&str> = table.columns().split(", ").collect();
            for row in &rows {
                assert_eq!(row.len(), column_count(table), "{table:?}: {row:?}");
                for (value, column) in row.iter().zip(&columns) {
                    match value {
                        None => assert!(!column.ends_with("NOT NULL"), "{table:?}.{column}"),
                        Some(json) if column.contains("jsonb") => {
                            serde_json::from_str::<serde_json::Value>(json)
                                .unwrap_or_else(|e| panic!("{column}: {e}: {json}"));
                        }
                        Some(_) => {}
                    }
                }
            }
            // Nullable columns are NULL about one time in ten.
            for (index, column) in columns.iter().enumerate() {
                if column.ends_with("NOT NULL") || rows.len() < 1000 {
                    continue;
                }
                let nulls = rows.iter().filter(|row| row[index].is_none()).count();
                let share = nulls as f64 / rows.len() as f64;
                assert!((0.07..0.13).contains(&share), "{column}: {share}");
            }
        }
    }

    #[test]
    fn values_exercise_unicode_escaping_and_scale() {
        let layout = Layout::new(1, 3_000);
        let hotels = parse_copy(&table_bytes(SampleTable::Hotel, layout, 0, 5));
        let names: Vec<_> = hotels.iter().map(|row| row[2].clone().unwrap()).collect();
        assert_eq!(names[..3], SPECIAL_HOTEL_NAMES.map(String::from));
        let inventory = parse_copy(&table_bytes(SampleTable::Inventory, layout, 1, 5));
        let room_names: HashSet<_> = inventory
            .iter()
            .map(|row| row[6].clone().unwrap())
            .collect();
        assert_eq!(room_names.len(), ROOM_TYPE_NAMES.len());
        assert!(room_names.contains("Suite \"Océan\"\t\\ 2 niveaux\r\n(duplex)"));
        for row in &inventory {
            let [total, sold] = [3, 4].map(|i| row[i].as_deref().unwrap().parse::<i64>().unwrap());
            assert!((0..=total).contains(&sold));
            let stay = row[2].as_deref().unwrap();
            let expiry = row[8].as_deref().unwrap();
            assert!(expiry > stay, "{stay} {expiry}");
        }
        let associations = parse_copy(&table_bytes(SampleTable::BaseRateAssociation, layout, 1, 5));
        let offsets: HashSet<_> = associations
            .iter()
            .map(|row| row[5].clone().unwrap())
            .collect();
        assert!(offsets.contains("1.500") && offsets.contains("100.000"));
        let rates = parse_copy(&table_bytes(SampleTable::BaseRate, layout, 1, 5));
        assert!(rates
            .iter()
            .any(|row| row[4].as_deref().unwrap().ends_with(".50")));
        assert!(rates.iter().all(|row| row[4]
            .as_deref()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .len()
            == 2));
    }
}
