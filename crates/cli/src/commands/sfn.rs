//! `ferry sfn run`: one execution of a state machine definition in the local engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sfn_local::{
    AwsDispatcher, Clock, DispatcherChain, Engine, ExecutionOptions, ExecutionStatus,
    InProcessDispatcher,
};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The definition (`*.asl.json`).
    definition: PathBuf,
    /// The execution input: a JSON file, or `-` for standard input (default `{}`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// `virtual` jumps over Wait states and retry intervals; `real` sleeps through them.
    #[arg(long, value_enum, default_value_t = ClockKind::Virtual)]
    clock: ClockKind,
    /// Write the execution's history here, one JSON event per line.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Print a line per state event on stderr.
    #[arg(long)]
    progress: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ClockKind {
    Virtual,
    Real,
}

/// Prints exactly one JSON object on stdout: the execution's status and output, or its error
/// and cause. Exit code 0 when it succeeded, 1 when it failed, 2 when it could not start
/// (invalid definition or input, with the reasons on stderr).
pub fn run(args: RunArgs) -> ExitCode {
    match execute(&args) {
        Ok(ExecutionStatus::Succeeded) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(args: &RunArgs) -> anyhow::Result<ExecutionStatus> {
    let definition = std::fs::read_to_string(&args.definition)
        .with_context(|| format!("cannot read {}", args.definition.display()))?;
    let input = read_input(args.input.as_deref())?;
    let clock: Arc<dyn Clock> = match args.clock {
        ClockKind::Virtual => Arc::new(sfn_local::VirtualClock::default()),
        ClockKind::Real => Arc::new(sfn_local::RealClock),
    };
    // No Lambda handlers are registered here: a definition with Lambda tasks needs an embedder
    // (such as `ferry local run`) that provides them, and fails validation otherwise.
    // `aws-sdk:*` tasks and Distributed Map S3 readers/writers go to AWS, or to the endpoint in
    // AWS_ENDPOINT_URL (the AWS configuration is loaded when the first such task runs).
    let tasks = DispatcherChain::new()
        .with(Arc::new(InProcessDispatcher::new()))
        .with(Arc::new(AwsDispatcher::from_env()));
    let engine = Engine::new(Arc::new(tasks), clock);
    let machine = engine
        .load_str(&definition)
        .with_context(|| format!("{} is not a valid definition", args.definition.display()))?;
    let mut options = ExecutionOptions::default();
    if args.progress {
        options = options.with_stderr_progress();
    }
    // The virtual clock needs every sleeper on one thread to jump time consistently.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let execution = runtime.block_on(engine.run(&machine, input, options));
    if let Some(path) = &args.history {
        std::fs::write(path, execution.history_json_lines())
            .with_context(|| format!("cannot write the history to {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(&execution)?);
    Ok(execution.status)
}

fn read_input(path: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    let text = match path {
        None => return Ok(serde_json::json!({})),
        Some(path) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the input from stdin")?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the input {}", path.display()))?,
    };
    serde_json::from_str(&text).context("input: not valid JSON")
}
