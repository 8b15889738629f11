use anyhow::Context;
use ferry_pipeline::sample::{self, SampleOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Admin URL of the PostgreSQL server (the databases are created on it).
    #[arg(long, env = "FERRY_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Number of partition databases (dailydatadb-partition-NN).
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Rows of each partition table in each partition.
    #[arg(long, default_value_t = 10_000)]
    rows_per_partition: u64,
    /// The same seed always gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Prefix of every database name (for side-by-side copies).
    #[arg(long, default_value = "")]
    database_prefix: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let options = SampleOptions {
        database_url: args.database_url,
        partitions: args.partitions,
        rows_per_partition: args.rows_per_partition,
        seed: args.seed,
        database_prefix: args.database_prefix,
    };
    let progress = |line: &str| eprintln!("  {line}");
    let summary = sample::generate(&options, &progress)
        .await
        .context("sample data generation failed")?;
    for database in &summary.databases {
        let tables: Vec<String> = database
            .tables
            .iter()
            .map(|(table, rows)| format!("{table} {rows}"))
            .collect();
        println!("{}: {}", database.name, tables.join(", "));
    }
    let seconds = summary.elapsed.as_secs_f64();
    println!(
        "{} rows in {:.1} s ({:.0} rows/s)",
        summary.total_rows,
        seconds,
        summary.total_rows as f64 / seconds.max(1e-9)
    );
    Ok(())
}
