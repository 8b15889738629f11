//! `poll-status`: keeps run records true.
//!
//! - `finish` (the orchestrator's last step): ends the run SUCCEEDED or FAILED from the
//!   domains' results, with metrics (rows, items, bytes, chunks) and, on failure, the state,
//!   error and cause of the first failure, unwrapped from nested executions and Lambda
//!   error objects down to the innermost error.
//! - `sweep` (every minute, from EventBridge Scheduler): every run still PROCESSING whose
//!   execution has ended is ended the same way: the backstop for an execution that could not
//!   write its own end (aborted, timed out, or failed in a way no Catch saw).

use ferry_core::state::{RunError, RunMetrics, RunOutcome};
use ferry_core::{Error, ErrorCode, Result, RunId, RunStatus};
use ferry_pipeline::extract::ChunkManifest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::run_report;
pub use crate::executions::{ExecutionState, Executions};
use crate::Context;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Finish {
        migration: String,
        run_id: RunId,
        /// One per domain: `{"domain", "status": "SUCCEEDED"|"FAILED", "failure"?}`.
        #[serde(default)]
        results: Vec<DomainResult>,
        /// A failure outside the domains (the prepare step).
        #[serde(default)]
        failure: Option<Failure>,
    },
    Sweep {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainResult {
    pub domain: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// A caught error, as a Catch with `ResultPath` hands it over, plus the state that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "State", default)]
    pub state: Option<String>,
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Finished {
        status: RunStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
        metrics: RunMetrics,
    },
    Swept {
        converged: Vec<Converged>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converged {
    pub migration: String,
    pub run_id: RunId,
    pub status: RunStatus,
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    match request {
        Request::Finish {
            migration,
            run_id,
            results,
            failure,
        } => {
            let failure = failure.map(|f| (None, f)).or_else(|| {
                results
                    .iter()
                    .find(|r| r.status != RunStatus::Succeeded)
                    .map(|r| {
                        let f = r.failure.clone().unwrap_or(Failure {
                            state: None,
                            error: "States.Runtime".into(),
                            cause: Some(format!("domain {} did not succeed", r.domain)),
                        });
                        (Some(r.domain.clone()), f)
                    })
            });
            let ending = match failure {
                Some((domain, f)) => Ending::Failed(run_error(domain.as_deref(), &f)),
                None => Ending::Succeeded,
            };
            let record = finish(cx, &migration, run_id, ending).await?;
            Ok(Response::Finished {
                status: record.status,
                error: record.error.as_ref().map(|e| e.error.clone()),
                cause: record
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.state, e.cause)),
                metrics: record.metrics,
            })
        }
        Request::Sweep {} => {
            let mut converged = Vec::new();
            for active in cx.store.active_runs().await? {
                let Some(record) = cx.store.run(&active.migration, active.run_id).await? else {
                    continue;
                };
                let Some(arn) = &record.execution_arn else {
                    continue;
                };
                let state = cx.executions.describe(arn).await?;
                let ending = match state.status.as_str() {
                    "SUCCEEDED" => Ending::Succeeded,
                    "RUNNING" | "PENDING_REDRIVE" => continue,
                    other => {
                        let error = run_error(
                            None,
                            &Failure {
                                state: Some(format!("execution {other}")),
                                error: state.error.unwrap_or_else(|| format!("States.{other}")),
                                cause: state.cause,
                            },
                        );
                        if other == "ABORTED" {
                            Ending::Cancelled(error)
                        } else {
                            Ending::Failed(error)
                        }
                    }
                };
                let record = finish(cx, &active.migration, active.run_id, ending).await?;
                converged.push(Converged {
                    migration: active.migration,
                    run_id: active.run_id,
                    status: record.status,
                });
            }
            Ok(Response::Swept { converged })
        }
    }
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    Failed(RunError),
    Cancelled(RunError),
}

/// Ends the run (idempotent for the same outcome) with metrics from the run's objects.
pub async fn finish(
    cx: &Context,
    migration: &str,
    run_id: RunId,
    ending: Ending,
) -> Result<ferry_core::state::RunRecord> {
    let metrics = run_metrics(cx, run_id).await.unwrap_or_else(|err| {
        tracing::warn!(error = %err.detail(), "cannot gather the run's metrics");
        RunMetrics::default()
    });
    let outcome = match ending {
        Ending::Succeeded => RunOutcome::succeeded(metrics),
        Ending::Failed(error) => RunOutcome::failed(error, metrics),
        Ending::Cancelled(error) => RunOutcome::cancelled(error, metrics),
    };
    cx.store.finish_run(migration, run_id, outcome).await
}

/// Rows, bytes and chunks from the chunk manifests; items from the verification reports.
pub async fn run_metrics(cx: &Context, run_id: RunId) -> Result<RunMetrics> {
    let run = run_id.to_string();
    let io = |err: ferry_pipeline::verify::VerifyError| Error::from(err);
    let mut metrics = RunMetrics::default();
    for key in cx
        .objects
        .list(&format!("runs/{run}/plan/"))
        .await
        .map_err(io)?
    {
        let body = cx.objects.get(&key).await.map_err(io)?;
        let chunks: Vec<serde_json::Value> = serde_json::from_slice(&body).map_err(|err| {
            Error::new(ErrorCode::Internal, format!("{key} is not a chunk list")).with_source(err)
        })?;
        metrics.chunks_total += chunks.len() as u64;
    }
    for key in cx
        .objects
        .list(&format!("runs/{run}/manifests/"))
        .await
        .map_err(io)?
    {
        let body = cx.objects.get(&key).await.map_err(io)?;
        let manifest: ChunkManifest = serde_json::from_slice(&body).map_err(|err| {
            Error::new(
                ErrorCode::Internal,
                format!("{key} is not a chunk manifest"),
            )
            .with_source(err)
        })?;
        metrics.rows += manifest.rows;
        metrics.bytes += manifest.bytes_out;
        metrics.chunks_done += 1;
    }
    metrics.items = run_report(cx, &run)
        .await?
        .tables
        .iter()
        .map(|t| t.target_items)
        .sum();
    Ok(metrics)
}

/// The run's error from a caught failure: the innermost error and cause, and where it happened.
pub fn run_error(domain: Option<&str>, failure: &Failure) -> RunError {
    let (error, cause) = innermost(&failure.error, failure.cause.as_deref().unwrap_or(""));
    let state = match (domain, &failure.state) {
        (Some(d), Some(s)) => format!("{d}/{s}"),
        (None, Some(s)) => s.clone(),
        (Some(d), None) => d.to_string(),
        (None, None) => "unknown".to_string(),
    };
    RunError {
        state,
        error,
        cause,
    }
}

/// Follows a failure down through nested executions (`startExecution.sync` puts the child's
/// DescribeExecution answer in the cause) and Lambda error objects.
pub fn innermost(error: &str, cause: &str) -> (String, String) {
    let (mut error, mut cause) = (error.to_string(), cause.to_string());
    for _ in 0..16 {
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&cause) else {
            break;
        };
        let text = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_owned);
        if let (Some(e), Some(m)) = (text("errorType"), text("errorMessage")) {
            (error, cause) = (e, m);
            break;
        }
        match (text("Error"), text("Cause")) {
            (Some(e), c) => (error, cause) = (e, c.unwrap_or_default()),
            _ => break,
        }
    }
    (error, cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_error_is_found_through_nested_executions() {
        let lambda = serde_json::json!({"errorType": "Ferry.SourceUnavailable", "errorMessage": "cannot connect"}).to_string();
        let child = serde_json::json!({"Status": "FAILED", "Error": "Ferry.SourceUnavailable", "Cause": lambda}).to_string();
        let parent =
            serde_json::json!({"Status": "FAILED", "Error": "States.TaskFailed", "Cause": child})
                .to_string();
        assert_eq!(
            innermost("States.TaskFailed", &parent),
            (
                "Ferry.SourceUnavailable".to_string(),
                "cannot connect".to_string()
            )
        );
        assert_eq!(
            innermost("States.Timeout", "plain text"),
            ("States.Timeout".to_string(), "plain text".to_string())
        );
        let error = run_error(
            Some("rates"),
            &Failure {
                state: Some("Bootstrap".into()),
                error: "States.TaskFailed".into(),
                cause: Some(parent),
            },
        );
        assert_eq!(error.state, "rates/Bootstrap");
        assert_eq!(error.error, "Ferry.SourceUnavailable");
    }
}
