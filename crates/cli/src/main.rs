//! `ferry`: validate migration specs, make sample data, prepare and run migrations locally.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Migrate PostgreSQL into DynamoDB, and prove the copy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a migration spec; every mistake is reported with its field path.
    Validate {
        /// The spec file (TOML).
        spec: PathBuf,
    },
    /// Show what a run of the spec would do, step by step, without touching anything.
    Plan {
        spec: PathBuf,
        /// Only this domain (default: every domain).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Create the sample databases (rates & availability) and fill them deterministically.
    SampleData(commands::sample_data::Args),
    /// Prepare the local AWS emulator for ferry.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run Step Functions definitions in the local engine.
    Sfn {
        #[command(subcommand)]
        command: SfnCommand,
    },
    /// Prove a run's copy: digest the DynamoDB exports, compare with the bootstrap digests,
    /// print one line per table and write runs/<run>/verify/report.json.
    Verify(commands::verify::VerifyArgs),
    /// Print the error catalogue as Markdown (the source of docs/errors.md).
    Errors,
    /// Start a run of the deployed migration state machine (recorded in the state table first,
    /// refused while another runs); with --watch, follow it to its end.
    Start(commands::cloud::StartArgs),
    /// Print each state change of an execution until it ends; exit code 0 only on success.
    Watch(commands::cloud::WatchArgs),
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Run a migration end to end on this machine: the project's state machines in the local
    /// engine, the functions in-process, AWS calls to the configured endpoint (the emulator).
    Run(commands::local::RunArgs),
    /// Create the state table in the emulator (idempotent).
    Init {
        /// The state table's name.
        #[arg(long, env = "FERRY_STATE_TABLE", default_value = "ferry-state")]
        state_table: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Plan + extract of a BaseRate-shaped table to DynamoDB JSON, vs `psql \copy | gzip -1`.
    Extract(commands::bench::ExtractArgs),
    /// Digest of gzip DynamoDB JSON files (verification), vs `zcat FILES | wc -l`.
    Verify(commands::verify::BenchArgs),
}

#[derive(Subcommand)]
enum SfnCommand {
    /// Run one execution and print its result as JSON.
    Run(commands::sfn::RunArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sfn {
            command: SfnCommand::Run(args),
        } => return commands::sfn::run(args),
        Command::Start(args) => {
            return commands::cloud::start(args).unwrap_or_else(|err| {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            })
        }
        Command::Watch(args) => {
            return commands::cloud::watch(args).unwrap_or_else(|err| {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            })
        }
        Command::Local {
            command: LocalCommand::Run(args),
        } => {
            return commands::local::run(args).unwrap_or_else(|err| {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            })
        }
        Command::Validate { spec } => commands::validate::run(&spec),
        Command::Plan { spec, domain } => commands::plan::run(&spec, domain.as_deref()),
        Command::SampleData(args) => runtime().block_on(commands::sample_data::run(args)),
        Command::Local {
            command: LocalCommand::Init { state_table },
        } => runtime().block_on(commands::local::init(&state_table)),
        Command::Bench {
            command: BenchCommand::Extract(args),
        } => runtime().block_on(commands::bench::extract(args)),
        Command::Bench {
            command: BenchCommand::Verify(args),
        } => runtime().block_on(commands::verify::bench(args)),
        Command::Verify(args) => runtime().block_on(commands::verify::run(args)),
        Command::Errors => {
            print!("{}", commands::errors::markdown());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
