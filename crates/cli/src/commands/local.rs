use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use ferry_cli::local_run::{self, LocalRunOptions};
use ferry_core::state::DynamoDbStateStore;
use ferry_core::RunStatus;
use ferry_core::Spec;
use ferry_handlers::{Config, Context};

/// Creates the state table in whatever endpoint the AWS environment names (the emulator locally).
pub async fn init(state_table: &str) -> anyhow::Result<()> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let created = ensure_state_table(&config, state_table).await?;
    let verb = if created { "created" } else { "already there" };
    println!("state table {state_table}: {verb}");
    Ok(())
}

async fn ensure_state_table(
    config: &aws_config::SdkConfig,
    state_table: &str,
) -> anyhow::Result<bool> {
    let store = DynamoDbStateStore::new(aws_sdk_dynamodb::Client::new(config), state_table);
    store
        .create_table_if_missing()
        .await
        .map_err(|err| anyhow!(err.detail()))
        .with_context(|| format!("cannot prepare the state table {state_table}"))
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The spec file (TOML).
    spec: PathBuf,
    /// Only this domain (default: every domain of the spec).
    #[arg(long)]
    domain: Option<String>,
    /// Everything but the Kinesis streaming destination.
    #[arg(long)]
    dry_run: bool,
    /// Chunks extracted (and export batches digested) at once.
    #[arg(long, default_value_t = 4)]
    parallelism: u32,
    /// Import into tables named with this prefix instead of the spec's target.table_prefix
    /// (to rehearse the same spec again into new tables).
    #[arg(long)]
    table_prefix: Option<String>,
    /// Also write the run record and the verification report to this file as JSON.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// The state table (created when missing).
    #[arg(long, env = "FERRY_STATE_TABLE", default_value = "ferry-state")]
    state_table: String,
    /// The run bucket (created when missing).
    #[arg(long, env = "FERRY_BUCKET", default_value = "ferry-local")]
    bucket: String,
}

/// Runs the migration state machine locally; exit code 0 only when the run SUCCEEDED.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut spec = Spec::from_path(&args.spec)
        .map_err(|errors| anyhow!("{errors}"))
        .with_context(|| format!("{} is not a valid spec", args.spec.display()))?;
    if let Some(prefix) = &args.table_prefix {
        let valid = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(anyhow!(
                "--table-prefix: {prefix:?} may hold only letters, digits, '_', '-' and '.'"
            ));
        }
        spec.target.table_prefix = prefix.clone();
    }
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let (cx, sdk) = setup.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        ensure_state_table(&sdk, &args.state_table).await?;
        ensure_bucket(&sdk, &args.bucket).await?;
        let config = Config {
            state_table: args.state_table.clone(),
            bucket: args.bucket.clone(),
            migration_state_machine: None,
            api: None,
        };
        anyhow::Ok((Context::from_aws(&config, &sdk), sdk))
    })?;
    drop(setup);

    let outcome = local_run::run(
        cx,
        &sdk,
        LocalRunOptions {
            spec: spec.clone(),
            domain: args.domain.clone(),
            dry_run: args.dry_run,
            parallelism: args.parallelism,
            progress: true,
        },
        None,
    )?;
    let run = &outcome.run;
    let duration = run
        .ended_at
        .map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0)
        .unwrap_or_default();
    println!(
        "run {} of {}: {} in {duration:.1} s — {} rows, {} items, {} bytes, {}/{} chunks",
        run.run_id,
        run.migration,
        run.status,
        run.metrics.rows,
        run.metrics.items,
        run.metrics.bytes,
        run.metrics.chunks_done,
        run.metrics.chunks_total
    );
    if let Some(error) = &run.error {
        println!(
            "failed in {}: {}: {}",
            error.state, error.error, error.cause
        );
    }
    if let Some(report) = &outcome.report {
        for line in report.summaries() {
            println!("{line}");
        }
        println!(
            "report: s3://{}/{}",
            args.bucket,
            ferry_pipeline::verify::report_key(&run.run_id.to_string())
        );
    }
    let domains: Vec<String> = match &args.domain {
        Some(d) => vec![d.clone()],
        None => spec.domains.keys().cloned().collect(),
    };
    let tables: Vec<String> = domains
        .iter()
        .filter_map(|d| spec.domain_tables(d))
        .flatten()
        .map(|t| spec.dynamodb_table_name(t))
        .collect();
    if run.status == RunStatus::Succeeded {
        println!("items: DynamoDB tables {}", tables.join(", "));
    }
    if let Some(path) = &args.report_json {
        let mut record = serde_json::to_value(run)?;
        if let Some(object) = record.as_object_mut() {
            object.remove("spec");
        }
        let body = serde_json::json!({ "run": record, "verification": outcome.report });
        std::fs::write(path, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report JSON: {}", path.display());
    }
    Ok(if run.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn ensure_bucket(sdk: &aws_config::SdkConfig, bucket: &str) -> anyhow::Result<()> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    );
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|err| anyhow!(aws_sdk_s3::error::DisplayErrorContext(err).to_string()))
        .with_context(|| format!("cannot create the bucket {bucket}"))?;
    Ok(())
}
