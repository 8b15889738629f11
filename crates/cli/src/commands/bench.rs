//! `ferry bench`: performance measured against a baseline run in the same process.

use std::path::PathBuf;

use anyhow::Context;
use ferry_core::spec::Compression;
use ferry_pipeline::bench::{self, ExtractBenchOptions};

#[derive(clap::Args)]
pub struct ExtractArgs {
    /// Admin URL of the PostgreSQL server; the benchmark table is made (or reused) there.
    #[arg(long, env = "FERRY_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Rows of the BaseRate-shaped table.
    #[arg(long, default_value_t = bench::DEFAULT_ROWS)]
    rows: u64,
    /// Chunks extracted at once (default: the number of cores).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Baseline-then-ferry rounds per codec; the printed figures are the rounds' medians.
    #[arg(long, default_value_t = bench::DEFAULT_ROUNDS, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Where the baseline and ferry write their files (emptied first).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("ferry-bench-extract"))]
    work_dir: PathBuf,
}

/// ferry's plan + extract to DynamoDB JSON vs `psql \copy | gzip -1` (and `| zstd -1`), with
/// one `ratio:` line per codec at the end.
pub async fn extract(args: ExtractArgs) -> anyhow::Result<()> {
    let options = ExtractBenchOptions {
        database_url: args.database_url,
        rows: args.rows,
        work_dir: args.work_dir,
        parallelism: args.parallelism,
        codecs: vec![Compression::Gzip, Compression::Zstd],
        rounds: args.rounds,
    };
    let report = bench::extract(&options)
        .await
        .context("the extract benchmark failed")?;
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}
