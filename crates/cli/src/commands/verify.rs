//! `ferry verify`: compare a run's source digests (bootstrap manifests) with its DynamoDB
//! exports, print one summary line per table and write `runs/<run>/verify/report.json`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ferry_core::Spec;
use ferry_pipeline::sink::S3Sink;
use ferry_pipeline::verify::bench::{self, VerifyBenchOptions};
use ferry_pipeline::verify::{self, DynamoDbLookup, S3Source, TableVerification};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The spec file (TOML).
    #[arg(long)]
    spec: PathBuf,
    /// The run whose bootstrap manifests and exports are compared.
    #[arg(long)]
    run: String,
    /// The run bucket (holds `runs/<run>/...`).
    #[arg(long, env = "FERRY_BUCKET")]
    bucket: String,
    /// Only these tables (default: every table of the spec). Repeatable.
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Export files digested at once.
    #[arg(long, default_value_t = verify::DEFAULT_PARALLELISM)]
    parallelism: usize,
    /// The target tables are named with this prefix instead of the spec's
    /// target.table_prefix (as with `ferry local --table-prefix`).
    #[arg(long)]
    table_prefix: Option<String>,
    /// Never read target items by key (BatchGetItem): the diff re-reads the export instead.
    #[arg(long)]
    export_only: bool,
    /// Re-read each table from every one of its shards through the mapping, instead of using
    /// the bootstrap's manifests and files (for when they are gone, or the target was loaded
    /// another way). Shards are reached as the spec says (env URL or secret).
    #[arg(long)]
    independent: bool,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let mut spec = Spec::from_path(&args.spec)
        .map_err(|errors| anyhow::anyhow!("{errors}"))
        .with_context(|| format!("{} is not a valid spec", args.spec.display()))?;
    if let Some(prefix) = &args.table_prefix {
        spec.target.table_prefix = prefix.clone();
    }
    let mut requests = Vec::new();
    if args.tables.is_empty() {
        requests.extend(
            spec.tables
                .iter()
                .map(|t| TableVerification::new(&args.run, t, spec.verification)),
        );
    } else {
        for name in &args.tables {
            let table = spec
                .table(name)
                .with_context(|| format!("the spec has no table named {name:?}"))?;
            requests.push(TableVerification::new(&args.run, table, spec.verification));
        }
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    for request in &mut requests {
        request.parallelism = args.parallelism;
        if !args.export_only {
            let table = spec.dynamodb_table_name(&request.table);
            request.lookup = Some(Arc::new(DynamoDbLookup::new(dynamodb.clone(), table)));
        }
    }

    // Emulators serve buckets by path, not by virtual host.
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build(),
    );
    let objects = Arc::new(S3Source::new(s3.clone(), &args.bucket));
    let sink = S3Sink::new(s3, &args.bucket);
    let failed = |err: verify::VerifyError| anyhow::anyhow!(ferry_core::Error::from(err).detail());
    let report = if args.independent {
        let mut tables = Vec::with_capacity(requests.len());
        for request in &requests {
            let scratch = std::env::temp_dir().join(format!(
                "ferry-verify-{}-{}-{}",
                std::process::id(),
                args.run,
                request.table.name
            ));
            let verified = async {
                reextract(&spec, &request.table, &args.run, &scratch).await?;
                let source = Arc::new(verify::LocalDirSource::new(&scratch));
                verify::verify_table_against(source, objects.clone(), &sink, request)
                    .await
                    .map_err(failed)
            }
            .await;
            // The scratch copy holds source rows: never leave it behind.
            let _ = std::fs::remove_dir_all(&scratch);
            tables.push(verified.context("verification could not run")?);
        }
        let report = verify::VerifyReport::new(&args.run, tables);
        report.write(&sink).await.map_err(failed)?;
        report
    } else {
        verify::verify_run(objects, &sink, &args.run, &requests)
            .await
            .map_err(failed)
            .context("verification could not run")?
    };
    for line in report.summaries() {
        println!("{line}");
    }
    println!(
        "report: s3://{}/{}",
        args.bucket,
        verify::report_key(&args.run)
    );
    report
        .to_result()
        .map_err(|err| anyhow::anyhow!(err.to_string()))
}

/// The independent source side of `table`: each of its shards re-read through the mapping
/// (one chunk per shard) into `scratch`, in the bootstrap's layout.
async fn reextract(
    spec: &Spec,
    table: &ferry_core::spec::TableSpec,
    run: &str,
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    let ferry_core::spec::TableSource::Table(source_name) = &table.source else {
        anyhow::bail!(
            "table {}: --independent re-reads source tables, not queries",
            table.name
        );
    };
    let sources = ferry_handlers::source::Sources::new(None);
    for shard in spec.shards_of(table) {
        let client = sources
            .connect(shard, &shard.database)
            .await
            .map_err(|err| anyhow::anyhow!(err.detail()))?;
        let source = ferry_pipeline::extract::describe_table(&client, source_name)
            .await
            .map_err(|err| anyhow::anyhow!(ferry_core::Error::from(err).detail()))?;
        let mapper =
            ferry_pipeline::item::ItemMapper::new(table, &source.columns).with_context(|| {
                format!("table {}: the mapping does not fit the source", table.name)
            })?;
        let chunk =
            ferry_pipeline::plan::Chunk::whole(run, &table.name, &shard.name, table.compression);
        verify::reextract_source(&client, &source, &mapper, &chunk, scratch)
            .await
            .map_err(|err| anyhow::anyhow!(err.detail()))
            .with_context(|| format!("re-reading {} from shard {}", table.name, shard.name))?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Items of gzip DynamoDB JSON to digest.
    #[arg(long, default_value_t = bench::DEFAULT_ITEMS)]
    items: u64,
    /// Files the items are spread over.
    #[arg(long, default_value_t = bench::DEFAULT_FILES)]
    files: usize,
    /// Files digested at once (default: the number of cores).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Where the files are written (reused when they already hold the same items).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("ferry-bench-verify"))]
    work_dir: PathBuf,
}

/// ferry's digest of export-like files vs `zcat FILES | wc -l`; the last line is `ratio: X.XX`.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let options = VerifyBenchOptions {
        items: args.items,
        files: args.files.max(1),
        parallelism: args.parallelism,
        work_dir: args.work_dir,
    };
    let report = bench::run(&options)
        .await
        .context("the verify benchmark failed")?;
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}
