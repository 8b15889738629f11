//! `ferry start` and `ferry watch`: a run in AWS (or whatever endpoint the environment names),
//! started through the same logic as the API's start route, and followed state by state.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use ferry_core::Spec;
use ferry_handlers::{Config, Context};

#[derive(clap::Args)]
pub struct StartArgs {
    /// The spec to store and run (stored first, as `POST /migrations` does).
    #[arg(long, conflicts_with = "migration")]
    spec: Option<PathBuf>,
    /// A migration already stored (through the API or an earlier `ferry start --spec`).
    #[arg(long, required_unless_present = "spec")]
    migration: Option<String>,
    /// Only this domain (default: every domain of the spec).
    #[arg(long)]
    domain: Option<String>,
    /// Everything but the Kinesis streaming destination.
    #[arg(long)]
    dry_run: bool,
    /// Chunks extracted at once.
    #[arg(long, default_value_t = ferry_handlers::start::DEFAULT_PARALLELISM)]
    parallelism: u32,
    /// The migration state machine: its name or ARN.
    #[arg(long, env = "FERRY_STATE_MACHINE", default_value = "ferry-migration")]
    state_machine: String,
    /// The state table.
    #[arg(long, env = "FERRY_STATE_TABLE", default_value = "ferry-state")]
    state_table: String,
    /// The run bucket.
    #[arg(long, env = "FERRY_BUCKET")]
    bucket: String,
    /// Follow the execution until it ends (as `ferry watch`); the exit code is the run's.
    #[arg(long)]
    watch: bool,
    /// Seconds between two looks at the execution while watching.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The execution's ARN (`ferry start` prints it).
    execution_arn: String,
    /// Seconds between two looks at the execution.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")
}

/// The ARN of the state machine `name_or_arn` (searched by name, page by page).
pub async fn state_machine_arn(
    sfn: &aws_sdk_sfn::Client,
    name_or_arn: &str,
) -> anyhow::Result<String> {
    if name_or_arn.starts_with("arn:") {
        return Ok(name_or_arn.to_string());
    }
    let mut seen = Vec::new();
    let mut pages = sfn.list_state_machines().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|err| anyhow!(aws_sdk_sfn::error::DisplayErrorContext(err).to_string()))
            .context("cannot list the state machines")?;
        for machine in page.state_machines() {
            if machine.name() == name_or_arn {
                return Ok(machine.state_machine_arn().to_string());
            }
            seen.push(machine.name().to_string());
        }
    }
    bail!(
        "no state machine named {name_or_arn:?} in this account and region (found: {})",
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join(", ")
        }
    )
}

pub fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let machine = state_machine_arn(&sfn, &args.state_machine).await?;
        let cx = Context::from_aws(
            &Config {
                state_table: args.state_table.clone(),
                bucket: args.bucket.clone(),
                migration_state_machine: Some(machine),
                api: None,
            },
            &sdk,
        );
        let migration = match (&args.spec, &args.migration) {
            (Some(path), _) => {
                let spec = Spec::from_path(path)
                    .map_err(|errors| anyhow!("{errors}"))
                    .with_context(|| format!("{} is not a valid spec", path.display()))?;
                cx.store
                    .put_migration(&spec)
                    .await
                    .map_err(|err| anyhow!(err.detail()))
                    .context("cannot store the spec")?;
                spec.name
            }
            (None, Some(name)) => name.clone(),
            (None, None) => bail!("give --spec or --migration"),
        };
        let started = ferry_handlers::start::handle(
            &cx,
            ferry_handlers::start::Request {
                migration,
                domain: args.domain.clone(),
                dry_run: args.dry_run,
                parallelism: Some(args.parallelism),
            },
        )
        .await
        .map_err(|err| anyhow!(err.detail()))?;
        println!("run {} of {} started", started.run_id, started.migration);
        println!("execution {}", started.execution_arn);
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        watch_execution(&sfn, &started.execution_arn, args.poll_seconds).await
    })
}

pub fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        watch_execution(&sfn, &args.execution_arn, args.poll_seconds).await
    })
}

/// One line for a history event worth showing: state changes and failures.
fn describe(event: &HistoryEvent) -> Option<String> {
    let t = event.timestamp();
    let when = chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())?
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let text = match event.r#type() {
        HistoryEventType::TaskStateEntered
        | HistoryEventType::MapStateEntered
        | HistoryEventType::ChoiceStateEntered
        | HistoryEventType::WaitStateEntered
        | HistoryEventType::PassStateEntered
        | HistoryEventType::ParallelStateEntered
        | HistoryEventType::SucceedStateEntered
        | HistoryEventType::FailStateEntered => {
            format!("→ {}", event.state_entered_event_details()?.name())
        }
        HistoryEventType::TaskFailed => {
            let d = event.task_failed_event_details()?;
            format!(
                "  task failed: {} {}",
                d.error().unwrap_or_default(),
                d.cause().unwrap_or_default()
            )
        }
        HistoryEventType::LambdaFunctionFailed => {
            let d = event.lambda_function_failed_event_details()?;
            format!(
                "  function failed: {} {}",
                d.error().unwrap_or_default(),
                d.cause().unwrap_or_default()
            )
        }
        HistoryEventType::ExecutionSucceeded => "execution SUCCEEDED".to_string(),
        HistoryEventType::ExecutionFailed => "execution FAILED".to_string(),
        HistoryEventType::ExecutionAborted => "execution ABORTED".to_string(),
        HistoryEventType::ExecutionTimedOut => "execution TIMED_OUT".to_string(),
        _ => return None,
    };
    Some(format!("[{when}] {text}"))
}

/// Prints each state change until the execution ends; exit code 0 only when it SUCCEEDED.
pub async fn watch_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    poll_seconds: u64,
) -> anyhow::Result<ExitCode> {
    let mut shown: HashSet<i64> = HashSet::new();
    let mut last_state = String::from("(none)");
    loop {
        let mut pages = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|err| anyhow!(aws_sdk_sfn::error::DisplayErrorContext(err).to_string()))
                .with_context(|| format!("cannot read the history of {execution_arn}"))?;
            for event in page.events() {
                if shown.insert(event.id()) {
                    if let Some(entered) = event.state_entered_event_details() {
                        last_state = entered.name().to_string();
                    }
                    if let Some(line) = describe(event) {
                        println!("{line}");
                    }
                }
            }
        }
        let execution = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|err| anyhow!(aws_sdk_sfn::error::DisplayErrorContext(err).to_string()))
            .with_context(|| format!("cannot describe {execution_arn}"))?;
        match execution.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                tokio::time::sleep(Duration::from_secs(poll_seconds.max(1))).await;
            }
            ExecutionStatus::Succeeded => {
                println!("SUCCEEDED");
                if let Some(output) = execution.output() {
                    println!("{output}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            other => {
                println!("{}", other.as_str());
                println!("failed in: {last_state}");
                println!("error: {}", execution.error().unwrap_or("(none)"));
                println!("cause: {}", execution.cause().unwrap_or("(none)"));
                return Ok(ExitCode::FAILURE);
            }
        }
    }
}
