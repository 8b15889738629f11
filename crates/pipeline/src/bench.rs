//! `ferry bench extract` (issue 7 item 8): in one run, for each codec, the baseline
//! `psql -c "\copy (SELECT …) TO STDOUT (FORMAT csv)" | gzip -1` (or `| zstd -1`) against ferry's
//! plan + extract of the same rows to DynamoDB JSON with the same codec in a local directory,
//! chunks in parallel on every core. Ratios, never absolute timings, are what to compare.
//!
//! Each codec is measured in rounds (default 3): a round runs the baseline and then ferry, so
//! the two sides of a round's ratio ran seconds apart, and the printed ratio is the
//! median of the rounds' ratios (every round's is printed too). On a shared 2-core machine the
//! baseline alone moves by a third between runs; one round would report that noise.
//!
//! The ratio lines are measured with [`lean_bench_table_spec`] (BaseRate keyed by its key
//! columns, JSON ≈ 3.7 times the COPY text); the example spec's full mapping
//! ([`bench_table_spec`], an index key and the key columns repeated, ≈ 6 times) is measured too
//! and printed on its own line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ferry_core::spec::{ColumnSelection, Compression, TableSource, TableSpec};
use tokio_postgres::Client;

use crate::source::{ConnectError, SourceConfig};

use crate::extract::{describe_table, extract_chunk, ExtractOptions};
use crate::item::ItemMapper;
use crate::plan::{plan_table, table_size};
use crate::sink::LocalDirSink;

/// The benchmark table, shaped like the sample dataset's `base_rate`.
pub const BENCH_TABLE: &str = "ferry_bench_base_rate";
pub const DEFAULT_ROWS: u64 = 2_000_000;
pub const DEFAULT_ROUNDS: u16 = 3;

#[derive(Debug, Clone)]
pub struct ExtractBenchOptions {
    /// A `postgres://` URL; the benchmark table is created in its database when missing.
    pub database_url: String,
    pub rows: u64,
    /// Where both sides write their files (emptied per codec).
    pub work_dir: PathBuf,
    /// Chunks extracted at once; defaults to the number of cores.
    pub parallelism: Option<usize>,
    pub codecs: Vec<Compression>,
    /// Baseline-then-ferry rounds per codec (at least 1); the ratios are their medians.
    pub rounds: u16,
}

/// One round of one codec: the baseline, then ferry with both mappings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub baseline_rows_per_second: f64,
    pub ferry_rows_per_second: f64,
    pub example_ferry_rows_per_second: f64,
}

impl Round {
    /// ferry rows/s ÷ baseline rows/s, with the measured mapping ([`lean_bench_table_spec`]).
    pub fn ratio(&self) -> f64 {
        self.ferry_rows_per_second / self.baseline_rows_per_second
    }

    /// The same with the example spec's full BaseRate mapping ([`bench_table_spec`]).
    pub fn example_ratio(&self) -> f64 {
        self.example_ferry_rows_per_second / self.baseline_rows_per_second
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CodecResult {
    pub codec: Compression,
    pub rounds: Vec<Round>,
    pub baseline_bytes: u64,
    pub ferry_bytes: u64,
    pub chunks: usize,
    /// DynamoDB JSON bytes per COPY text byte of the measured mapping.
    pub json_per_text: f64,
    pub example_json_per_text: f64,
}

impl CodecResult {
    /// The median of the rounds' [`Round::ratio`]: the benchmark's result.
    pub fn ratio(&self) -> f64 {
        median(self.rounds.iter().map(Round::ratio))
    }

    pub fn example_ratio(&self) -> f64 {
        median(self.rounds.iter().map(Round::example_ratio))
    }

    pub fn baseline_rows_per_second(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.baseline_rows_per_second))
    }

    pub fn ferry_rows_per_second(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.ferry_rows_per_second))
    }

    pub fn example_ferry_rows_per_second(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.example_ferry_rows_per_second))
    }
}

/// The middle value (the mean of the middle two for an even count; 0 for none).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtractBenchReport {
    pub rows: u64,
    pub parallelism: usize,
    pub results: Vec<CodecResult>,
    /// Peak resident memory of this process (`VmHWM`), when the platform tells.
    pub peak_memory_bytes: Option<u64>,
}

impl ExtractBenchReport {
    /// The lines `ferry bench extract` prints; one `ratio: X.XX` line per codec.
    pub fn lines(&self) -> Vec<String> {
        let rounds = self.results.first().map_or(0, |r| r.rounds.len());
        let mut out = vec![format!(
            "rows: {}, parallelism: {}, rounds: {rounds} (figures are medians)",
            self.rows, self.parallelism
        )];
        let listed = |ratios: Vec<f64>| {
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for r in &self.results {
            let codec = crate::encode::import_compression_type(r.codec);
            out.push(format!(
                "{codec}: baseline {:.0} rows/s ({} bytes), ferry {:.0} rows/s ({} bytes, {} chunks, JSON {:.1} x the COPY text); ratio per round: {}",
                r.baseline_rows_per_second(), r.baseline_bytes, r.ferry_rows_per_second(), r.ferry_bytes, r.chunks, r.json_per_text,
                listed(r.rounds.iter().map(Round::ratio).collect())
            ));
        }
        for r in &self.results {
            let codec = crate::encode::import_compression_type(r.codec);
            out.push(format!(
                "{codec} with the example's full mapping (index key, key columns repeated; JSON {:.1} x): ferry {:.0} rows/s, ratio {:.2} (per round: {})",
                r.example_json_per_text, r.example_ferry_rows_per_second(), r.example_ratio(),
                listed(r.rounds.iter().map(Round::example_ratio).collect())
            ));
        }
        if let Some(peak) = self.peak_memory_bytes {
            out.push(format!(
                "ferry peak memory: {:.1} MiB",
                peak as f64 / 1048576.0
            ));
        }
        for r in &self.results {
            let codec = crate::encode::import_compression_type(r.codec);
            out.push(format!("ratio: {:.2} ({codec})", r.ratio()));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("database: {}", .0.as_db_error().map_or_else(|| .0.to_string(), |e| e.message().to_owned()))]
    Database(#[from] tokio_postgres::Error),
    #[error("extract: {0}")]
    Extract(#[from] crate::extract::ExtractError),
    #[error("{0}")]
    Other(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the benchmark and returns what it measured.
pub async fn extract(options: &ExtractBenchOptions) -> Result<ExtractBenchReport, BenchError> {
    // The URL's sslmode (default prefer) applies to ferry as psql applies it to the baseline.
    let config = SourceConfig::from_url(&options.database_url)
        .map_err(|e| BenchError::Other(format!("invalid database URL: {e}")))?;
    let client = connect(&config).await?;
    ensure_table(&client, options.rows).await?;
    let parallelism = options.parallelism.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let mut results = Vec::new();
    for &codec in &options.codecs {
        let dir = options
            .work_dir
            .join(crate::encode::import_compression_type(codec));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let extract = |spec| timed_extract(&config, &client, spec, parallelism, &dir, options.rows);
        let mut rounds = Vec::new();
        let mut last = None;
        for _ in 0..options.rounds.max(1) {
            let (baseline_seconds, baseline_bytes) =
                baseline(&options.database_url, codec, &dir).await?;
            let (lean_rate, lean) = extract(lean_bench_table_spec(codec, 1)).await?;
            let (example_rate, example) = extract(bench_table_spec(codec, 1)).await?;
            rounds.push(Round {
                baseline_rows_per_second: options.rows as f64 / baseline_seconds,
                ferry_rows_per_second: lean_rate,
                example_ferry_rows_per_second: example_rate,
            });
            last = Some((baseline_bytes, lean, example));
        }
        let (baseline_bytes, lean, example) = last.expect("at least one round");
        results.push(CodecResult {
            codec,
            rounds,
            baseline_bytes,
            ferry_bytes: lean.bytes_out,
            chunks: lean.chunks,
            json_per_text: lean.json_per_text(),
            example_json_per_text: example.json_per_text(),
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExtractBenchReport {
        rows: options.rows,
        parallelism,
        results,
        peak_memory_bytes: peak_memory(),
    })
}

async fn connect(config: &SourceConfig) -> Result<Client, BenchError> {
    match crate::source::connect(config).await {
        Ok(client) => Ok(client),
        Err(ConnectError::Postgres(err)) => Err(BenchError::Database(err)),
        Err(other) => Err(BenchError::Other(other.to_string())),
    }
}

/// Creates (or reuses, when it has exactly `rows` rows) the BaseRate-shaped table.
async fn ensure_table(client: &Client, rows: u64) -> Result<(), BenchError> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&BENCH_TABLE])
        .await?
        .get(0);
    if exists {
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {BENCH_TABLE}"), &[])
            .await?
            .get(0);
        if count as u64 == rows {
            return Ok(());
        }
        client
            .batch_execute(&format!("DROP TABLE {BENCH_TABLE}"))
            .await?;
    }
    // Key space as in the sample data: 4 rate plans × 3 room types × 365 stay dates per hotel.
    client
        .batch_execute(&format!(
            "CREATE TABLE {BENCH_TABLE} (
                hotel_id bigint, rate_plan_id integer, room_type_id integer, stay_date date,
                amount numeric(12,2) NOT NULL, currency char(3) NOT NULL, occupancy smallint NOT NULL,
                extra_adult_amount numeric(10,2), updated_at timestamptz NOT NULL,
                expiry_date date NOT NULL);
             INSERT INTO {BENCH_TABLE}
             SELECT 100001 + i / 4380, 1 + (i / 1095) % 4, 1 + (i / 365) % 3,
                    date '2026-01-01' + (i % 365)::int,
                    50 + (i * 7919 % 50000) / 100.0, 'EUR', 1 + (i % 4)::smallint,
                    CASE WHEN i % 3 = 0 THEN NULL ELSE (i % 5000) / 100.0 END,
                    timestamptz '2026-01-01 00:00:00+00' + (i % 100000) * interval '1 second',
                    date '2026-04-01' + (i % 365)::int
             FROM generate_series(0::bigint, {} - 1) AS i;
             ALTER TABLE {BENCH_TABLE} ADD PRIMARY KEY (hotel_id, rate_plan_id, room_type_id, stay_date);",
            rows
        ))
        .await?;
    // VACUUM cannot run in the implicit transaction of a multi-statement batch.
    client
        .batch_execute(&format!("VACUUM ANALYZE {BENCH_TABLE}"))
        .await?;
    Ok(())
}

fn columns() -> &'static str {
    "hotel_id, rate_plan_id, room_type_id, stay_date, amount, currency, occupancy, \
     extra_adult_amount, updated_at, expiry_date"
}

/// `psql \copy ... (FORMAT csv) | gzip -1 > file` (or `zstd -1`); seconds and output bytes.
async fn baseline(url: &str, codec: Compression, dir: &Path) -> Result<(f64, u64), BenchError> {
    let file = dir.join("baseline.csv.out");
    let compressor = match codec {
        Compression::Gzip => "gzip -1",
        Compression::Zstd => "zstd -q -1",
    };
    let script = format!(
        "set -o pipefail; psql \"$FERRY_BENCH_URL\" -X -q -c \"\\copy (SELECT {} FROM {BENCH_TABLE}) TO STDOUT (FORMAT csv)\" | {compressor} > \"$FERRY_BENCH_OUT\"",
        columns()
    );
    let started = Instant::now();
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("FERRY_BENCH_URL", url)
        .env("FERRY_BENCH_OUT", &file)
        .status()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(BenchError::Other(format!(
            "the baseline pipeline failed ({status}); it needs psql and {compressor} on PATH"
        )));
    }
    let bytes = std::fs::metadata(&file)?.len();
    std::fs::remove_file(&file)?;
    Ok((seconds, bytes))
}

/// The BaseRate mapping of the example spec, reading the benchmark table.
pub fn bench_table_spec(codec: Compression, chunk_target_mb: u64) -> TableSpec {
    let text = include_str!("../../../examples/rates-availability.toml");
    let spec = ferry_core::Spec::from_toml_str(text).expect("the example spec validates");
    let mut table = spec
        .table("BaseRate")
        .expect("the example has BaseRate")
        .clone();
    table.source = TableSource::Table(format!("public.{BENCH_TABLE}"));
    table.compression = codec;
    table.chunk_target_mb = Some(chunk_target_mb);
    table
}

/// The mapping the extract benchmark's ratio is measured on: BaseRate as a table keyed by its
/// key columns alone. The key columns live in `pk`/`sk` only (not repeated as attributes) and
/// there is no index key, so an item's JSON is about 3.7 times its COPY text; the example's full
/// mapping ([`bench_table_spec`]) repeats them and adds an index key (about 6 times).
pub fn lean_bench_table_spec(codec: Compression, chunk_target_mb: u64) -> TableSpec {
    let mut table = bench_table_spec(codec, chunk_target_mb);
    table.dynamodb.gsis.clear();
    table.attributes.selection = ColumnSelection::Exclude(
        ["hotel_id", "rate_plan_id", "room_type_id", "stay_date"]
            .map(String::from)
            .to_vec(),
    );
    table
}

/// What one ferry extract of the benchmark table (or one worker's share of it) produced.
#[derive(Default)]
struct FerryRun {
    rows: u64,
    bytes_in: u64,
    bytes_json: u64,
    bytes_out: u64,
    chunks: usize,
}

impl FerryRun {
    fn add(&mut self, other: &FerryRun) {
        self.rows += other.rows;
        self.bytes_in += other.bytes_in;
        self.bytes_json += other.bytes_json;
        self.bytes_out += other.bytes_out;
        self.chunks += other.chunks;
    }

    fn json_per_text(&self) -> f64 {
        self.bytes_json as f64 / self.bytes_in.max(1) as f64
    }
}

/// [`ferry_extract`] timed: its rows/s, and what it produced; an error unless it read `rows`.
async fn timed_extract(
    config: &SourceConfig,
    client: &Client,
    spec: TableSpec,
    parallelism: usize,
    dir: &Path,
    rows: u64,
) -> Result<(f64, FerryRun), BenchError> {
    let started = Instant::now();
    let run = ferry_extract(config, client, spec, parallelism, dir).await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    if run.rows != rows {
        return Err(BenchError::Other(format!(
            "ferry extracted {} rows of {rows}",
            run.rows
        )));
    }
    Ok((rate, run))
}

async fn ferry_extract(
    config: &SourceConfig,
    client: &Client,
    probe: TableSpec,
    parallelism: usize,
    dir: &Path,
) -> Result<FerryRun, BenchError> {
    let source = describe_table(client, &format!("public.{BENCH_TABLE}")).await?;
    let size = table_size(client, &source).await?;
    // About eight chunks per worker, so the workers finish close together (17 chunks for 2
    // workers measured a little better than 9).
    let heap_mb = (size.blocks * size.block_size) >> 20;
    let target_mb = (heap_mb / (parallelism as u64 * 8)).max(1);
    let spec = TableSpec {
        chunk_target_mb: Some(target_mb),
        chunk_key: None,
        ..probe
    };
    let mapper = Arc::new(
        ItemMapper::new(&spec, &source.columns)
            .map_err(|e| BenchError::Extract(crate::extract::ExtractError::Map(e)))?,
    );
    let chunks =
        plan_table("bench", &spec, &[("bench".to_owned(), size)]).map_err(BenchError::Other)?;
    let source = Arc::new(source);
    let sink = LocalDirSink::new(dir);
    // Each worker is an OS thread with its own single-threaded runtime: a chunk's connection
    // and its encoding share one core's caches, as in a Lambda.
    let queue = Arc::new(std::sync::Mutex::new(chunks.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..parallelism {
        let (config, source, mapper, sink, queue) = (
            config.clone(),
            source.clone(),
            mapper.clone(),
            sink.clone(),
            queue.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut done = FerryRun::default();
                // One connection per worker: the benchmark measures the data plane. A new
                // connection per chunk (as the bootstrap Lambda makes) took 5-18 ms here, which
                // a Lambda's chunk of minutes hides but the benchmark's 0.3 s chunks do not.
                let client = connect(&config).await?;
                loop {
                    let next = queue.lock().expect("not poisoned").next();
                    let Some(chunk) = next else { break };
                    let manifest = extract_chunk(
                        &client,
                        &source,
                        &mapper,
                        &chunk,
                        &ExtractOptions::default(),
                        &sink,
                    )
                    .await?;
                    done.add(&FerryRun {
                        rows: manifest.rows,
                        bytes_in: manifest.bytes_in,
                        bytes_json: manifest.bytes_json,
                        bytes_out: manifest.bytes_out,
                        chunks: 1,
                    });
                }
                Ok::<_, BenchError>(done)
            })
        }));
    }
    let mut total = FerryRun::default();
    for worker in workers {
        let done = worker
            .join()
            .map_err(|_| BenchError::Other("a worker thread panicked".into()))??;
        total.add(&done);
    }
    Ok(total)
}

/// Peak resident set size from `/proc/self/status` (Linux).
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
