//! `start-migration`: starts a run of a stored migration. The run is recorded PROCESSING first
//! (a conditional write: refused with `MIGRATION_ALREADY_RUNNING` while another runs, so there
//! is never a second execution), then the execution is started, named by the run id. When Step
//! Functions refuses the start, the run is ended FAILED with the reason, and the caller is told.

use ferry_core::state::{NewRun, RunError};
use ferry_core::{Error, ErrorCode, Result, RunId, Spec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::poll_status::{finish, Ending};
use crate::Context;

/// Most chunks a run extracts at once, to protect the source.
pub const MAX_PARALLELISM: u32 = 1000;
pub const DEFAULT_PARALLELISM: u32 = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub migration: String,
    /// `None` runs every domain.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub parallelism: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub migration: String,
    pub run_id: RunId,
    pub execution_arn: String,
}

/// The domains a run covers: the one named, or all.
pub fn domains(spec: &Spec, domain: Option<&str>) -> Result<Vec<String>> {
    match domain {
        Some(d) if spec.domains.contains_key(d) => Ok(vec![d.to_string()]),
        Some(d) => Err(Error::new(
            ErrorCode::InvalidInput,
            format!(
                "domain: the spec has no domain {d:?} (domains: {})",
                spec.domains.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        None => Ok(spec.domains.keys().cloned().collect()),
    }
}

/// The input of `migration.asl.json`: the same for the cloud and for `ferry local run`.
pub fn execution_input(
    spec: &Spec,
    run_id: RunId,
    domains: &[String],
    dry_run: bool,
    parallelism: u32,
) -> Value {
    json!({
        "migration": spec.name,
        "run_id": run_id.to_string(),
        "domains": domains,
        "dry_run": dry_run,
        "parallelism": parallelism,
        "poll": {
            "clone_seconds": spec.poll.clone_seconds,
            "import_seconds": spec.poll.import_seconds,
            "export_seconds": spec.poll.export_seconds,
        },
    })
}

pub fn check_parallelism(parallelism: Option<u32>) -> Result<u32> {
    match parallelism.unwrap_or(DEFAULT_PARALLELISM) {
        n @ 1..=MAX_PARALLELISM => Ok(n),
        n => Err(Error::new(
            ErrorCode::InvalidInput,
            format!("parallelism: {n} is not between 1 and {MAX_PARALLELISM}"),
        )),
    }
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    let state_machine = cx.migration_state_machine.clone().ok_or_else(|| {
        Error::new(
            ErrorCode::Configuration,
            "FERRY_MIGRATION_STATE_MACHINE_ARN is not set: runs cannot be started",
        )
    })?;
    let spec = cx
        .store
        .migration(&request.migration)
        .await?
        .and_then(|m| m.spec)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("no migration named {}", request.migration),
            )
        })?;
    let domains = domains(&spec, request.domain.as_deref())?;
    let parallelism = check_parallelism(request.parallelism)?;
    let run_id = RunId::new();
    cx.store
        .begin_run(NewRun {
            run_id,
            spec: spec.clone(),
            domain: request.domain.clone(),
            dry_run: request.dry_run,
            parallelism,
        })
        .await?;
    let input = execution_input(&spec, run_id, &domains, request.dry_run, parallelism);
    let execution_arn = match cx
        .executions
        .start(&state_machine, &run_id.to_string(), &input)
        .await
    {
        Ok(arn) => arn,
        Err(err) => {
            tracing::error!(error = %err.detail(), %run_id, "StartExecution refused");
            let reason = RunError {
                state: "StartExecution".into(),
                error: err.code().error_type().into(),
                cause: err.message().to_string(),
            };
            finish(cx, &spec.name, run_id, Ending::Failed(reason)).await?;
            return Err(Error::new(
                err.code(),
                format!(
                    "run {run_id} could not start and is recorded FAILED: {}",
                    err.message()
                ),
            ));
        }
    };
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    let log_url = format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    );
    cx.store
        .record_execution(&spec.name, run_id, &execution_arn, Some(&log_url))
        .await?;
    Ok(Response {
        migration: spec.name,
        run_id,
        execution_arn,
    })
}
