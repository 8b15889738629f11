//! `ferry local run`: the migration state machine of `statemachines/`, executed by sfn-local
//! with the functions' handlers in-process and every AWS task sent to the endpoints of the
//! environment (the emulator locally). Waits run on the virtual clock.
//!
//! The run starts through the same state-store logic as the API (`begin_run`: refused while
//! another run is PROCESSING) and ends through the state machine's own finish step; should
//! the execution end without it, the runner ends the run from the execution's outcome.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use ferry_core::state::{NewRun, RunRecord};
use ferry_core::{RunId, RunStatus, Spec};
use ferry_handlers::poll_status::{self, Ending, Failure};
use ferry_handlers::{Context, Function};
use ferry_pipeline::verify::VerifyReport;
use serde_json::Value;
use sfn_local::{
    AwsDispatcher, DispatcherChain, Engine, Execution, ExecutionOptions, ExecutionStatus,
    HandlerError, InProcessDispatcher, TaskDispatcher, VirtualClock,
};

/// The definitions, compiled in: a local run executes exactly the files Terraform deploys.
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "migration",
        include_str!("../../../statemachines/migration.asl.json"),
    ),
    (
        "clone",
        include_str!("../../../statemachines/clone.asl.json"),
    ),
    (
        "bootstrap",
        include_str!("../../../statemachines/bootstrap.asl.json"),
    ),
    (
        "dynamodb-import",
        include_str!("../../../statemachines/dynamodb-import.asl.json"),
    ),
    (
        "dynamodb-export",
        include_str!("../../../statemachines/dynamodb-export.asl.json"),
    ),
    (
        "verify",
        include_str!("../../../statemachines/verify.asl.json"),
    ),
    (
        "cleanup",
        include_str!("../../../statemachines/cleanup.asl.json"),
    ),
];

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// The placeholder a child machine's ARN fills: `dynamodb-import` → `DynamoDbImportStateMachineArn`.
pub fn machine_placeholder(name: &str) -> String {
    let camel: String = name
        .split('-')
        .map(|part| match part {
            "dynamodb" => "DynamoDb".to_string(),
            other => {
                let mut c = other.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
        })
        .collect();
    format!("{camel}StateMachineArn")
}

/// Every placeholder value of a local run: function ARNs and child machine ARNs.
pub fn placeholder_values(engine: &Engine) -> HashMap<String, String> {
    let mut values = HashMap::new();
    for f in Function::STEPS {
        values.insert(
            f.placeholder().to_string(),
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", f.name()),
        );
    }
    for (name, _) in DEFINITIONS {
        values.insert(
            machine_placeholder(name),
            engine.state_machine_arn(&format!("ferry-{name}")),
        );
    }
    values
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LocalRunOptions {
    pub spec: Spec,
    /// `None`: every domain of the spec.
    pub domain: Option<String>,
    pub dry_run: bool,
    pub parallelism: u32,
    /// Print progress on stderr.
    pub progress: bool,
}

/// How a local run ended.
pub struct LocalRunOutcome {
    pub run: RunRecord,
    pub execution: Execution,
    pub report: Option<VerifyReport>,
}

/// Wraps the dispatcher a run uses (tests inject faults this way).
pub type DispatcherWrapper =
    Box<dyn FnOnce(Arc<dyn TaskDispatcher>) -> Arc<dyn TaskDispatcher> + Send>;

/// Counters the progress line is made of.
#[derive(Default)]
struct Progress {
    chunks_total: AtomicU64,
    chunks_done: AtomicU64,
    rows: AtomicU64,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    fn line(&self, started: Instant) -> String {
        let total = self.chunks_total.load(Ordering::Relaxed);
        let done = self.chunks_done.load(Ordering::Relaxed);
        let rows = self.rows.load(Ordering::Relaxed);
        let width = 24usize;
        let filled = if total == 0 {
            0
        } else {
            (done.min(total) as usize * width) / total as usize
        };
        let secs = started.elapsed().as_secs_f64().max(0.001);
        format!(
            "  bootstrap [{}{}] {done}/{total} chunks, {rows} rows, {:.0} rows/s",
            "#".repeat(filled),
            "-".repeat(width - filled),
            rows as f64 / secs
        )
    }
}

/// Runs one migration run to its end. Builds its own runtimes, so call it from a plain thread
/// (or `spawn_blocking`), not from inside an async task.
pub fn run(
    cx: Context,
    sdk: &aws_config::SdkConfig,
    options: LocalRunOptions,
    wrap: Option<DispatcherWrapper>,
) -> anyhow::Result<LocalRunOutcome> {
    // Handlers (CPU and I/O work) run on a multi-thread runtime; the engine runs on a
    // current-thread runtime, which the virtual clock needs.
    let workers = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let engine_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;

    let spec = options.spec.clone();
    let domains = ferry_handlers::start::domains(&spec, options.domain.as_deref())
        .map_err(|err| anyhow!("--{}", err.message()))?;
    if options.parallelism == 0 {
        return Err(anyhow!("--parallelism: must be at least 1"));
    }

    let run_id = RunId::new();
    workers
        .block_on(cx.store.begin_run(NewRun {
            run_id,
            spec: spec.clone(),
            domain: options.domain.clone(),
            dry_run: options.dry_run,
            parallelism: options.parallelism,
        }))
        .map_err(|err| anyhow!(err.detail()))
        .context("cannot start the run")?;
    let say = |line: &str| {
        if options.progress {
            eprintln!("{line}");
        }
    };
    say(&format!(
        "run {run_id} of {} ({}){}: PROCESSING",
        spec.name,
        domains.join(", "),
        if options.dry_run { ", dry run" } else { "" }
    ));

    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let mut lambdas = InProcessDispatcher::new();
    for function in Function::STEPS.iter().copied() {
        let cx = cx.clone();
        let handle = workers.handle().clone();
        let progress = Arc::clone(&progress);
        let show = options.progress;
        lambdas.register(function.name(), move |payload: Value, _| {
            let cx = cx.clone();
            let handle = handle.clone();
            let progress = Arc::clone(&progress);
            async move {
                let outcome = handle
                    .spawn(async move { function.invoke(&cx, payload).await })
                    .await
                    .map_err(|err| HandlerError::new("Ferry.Internal", err.to_string()))?;
                let value = outcome.map_err(|err| {
                    let (error_type, message) = ferry_handlers::lambda::diagnostic(&err);
                    HandlerError::new(error_type, message)
                })?;
                match function {
                    Function::Plan => {
                        let n = value["chunks_total"].as_u64().unwrap_or(0);
                        progress.chunks_total.fetch_add(n, Ordering::Relaxed);
                    }
                    Function::Bootstrap => {
                        progress.chunks_done.fetch_add(1, Ordering::Relaxed);
                        progress
                            .rows
                            .fetch_add(value["rows"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        let mut last = progress.last_line.lock().unwrap_or_else(|e| e.into_inner());
                        let due = last.is_none_or(|t| t.elapsed().as_millis() >= 500);
                        let all = progress.chunks_done.load(Ordering::Relaxed)
                            >= progress.chunks_total.load(Ordering::Relaxed);
                        if show && (due || all) {
                            eprintln!("{}", progress.line(started));
                            *last = Some(Instant::now());
                        }
                    }
                    Function::Compare => {
                        if let Some(lines) = value["summaries"].as_array() {
                            if show && value.get("report_key").is_none() {
                                for line in lines {
                                    eprintln!("  verified {}", line.as_str().unwrap_or_default());
                                }
                            }
                        }
                    }
                    _ => {}
                }
                Ok(value)
            }
        });
    }
    let chain: Arc<dyn TaskDispatcher> = Arc::new(
        DispatcherChain::new()
            .with(Arc::new(lambdas))
            .with(Arc::new(AwsDispatcher::new(sdk))),
    );
    let dispatcher = match wrap {
        Some(wrap) => wrap(chain),
        None => chain,
    };
    let engine = Engine::new(dispatcher, Arc::new(VirtualClock::default()));
    let values = placeholder_values(&engine);
    let mut migration = None;
    for (name, text) in DEFINITIONS {
        let filled = sfn_local::placeholders::substitute(text, &values)
            .with_context(|| format!("statemachines/{name}.asl.json"))?;
        let definition: Value = serde_json::from_str(&filled)
            .with_context(|| format!("statemachines/{name}.asl.json is not JSON"))?;
        if *name == "migration" {
            migration = Some(
                engine
                    .load(&definition)
                    .map_err(|err| anyhow!("statemachines/{name}.asl.json: {err}"))?,
            );
        }
        engine
            .register(&format!("ferry-{name}"), &definition)
            .map_err(|err| anyhow!("statemachines/{name}.asl.json: {err}"))?;
    }
    let migration = migration.expect("the migration definition is compiled in");

    let execution_arn =
        format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:ferry-migration:{run_id}");
    workers
        .block_on(
            cx.store
                .record_execution(&spec.name, run_id, &execution_arn, None),
        )
        .map_err(|err| anyhow!(err.detail()))?;

    let input = ferry_handlers::start::execution_input(
        &spec,
        run_id,
        &domains,
        options.dry_run,
        options.parallelism,
    );
    let steps = [
        "Prepare",
        "Clone",
        "Bootstrap",
        "Import",
        "Export",
        "Verify",
        "Cleanup",
        "CleanupAfterFailure",
        "Report",
        "Finish",
    ];
    let show = options.progress;
    let execution = engine_rt.block_on(engine.run(
        &migration,
        input,
        ExecutionOptions {
            name: Some(run_id.to_string()),
            state_machine_name: Some("ferry-migration".into()),
            progress: Some(Arc::new(move |line: &str| {
                if !show {
                    return;
                }
                let entered = line.split_once("StateEntered ").map(|(_, n)| n.trim());
                if let Some(name) = entered.filter(|n| steps.contains(n)) {
                    eprintln!("→ {name}");
                } else if line.contains(" error=") && line.contains("Failed") {
                    eprintln!("  {}", line.trim());
                }
            })),
            max_history_events: Some(200_000),
            skip_history: false,
        },
    ));
    drop(engine_rt);

    // The backstop: the state machine ends the run itself; if it could not, end it here.
    let record = workers.block_on(async {
        let current = cx.run(&spec.name, run_id).await?;
        if current.status != RunStatus::Processing {
            return Ok(current);
        }
        let ending = match execution.status {
            ExecutionStatus::Succeeded => Ending::Succeeded,
            _ => Ending::Failed(poll_status::run_error(
                None,
                &Failure {
                    state: Some("execution".into()),
                    error: execution.error.clone().unwrap_or_default(),
                    cause: execution.cause.clone(),
                },
            )),
        };
        poll_status::finish(&cx, &spec.name, run_id, ending).await
    });
    let record = record.map_err(|err| anyhow!(err.detail()))?;
    let report = workers
        .block_on(ferry_handlers::compare::run_report(
            &cx,
            &run_id.to_string(),
        ))
        .ok()
        .filter(|r| !r.tables.is_empty());
    Ok(LocalRunOutcome {
        run: record,
        execution,
        report,
    })
}
