//! The crate's error type (definition and setup problems) and [`Failure`], the
//! Step Functions error an execution or a state ends with.

use serde::Serialize;
use std::fmt;

/// Problems found before an execution starts, or by the embedder's calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The definition is not JSON.
    #[error("definition is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The definition breaks one or more rules; each issue names the state and field.
    #[error("invalid state machine definition:\n{}", issues_text(.0))]
    Invalid(Vec<ValidationIssue>),
    /// A path expression could not be parsed.
    #[error("invalid path {path:?}: {reason}")]
    Path { path: String, reason: String },
    /// An intrinsic function call could not be parsed.
    #[error("invalid intrinsic function {expression:?}: {reason}")]
    Intrinsic { expression: String, reason: String },
    /// `${Name}` placeholders that no value was given for.
    #[error("no value for the placeholder(s) {}", .0.join(", "))]
    MissingPlaceholders(Vec<String>),
    /// No task is waiting for this task token (it finished, timed out, or never existed).
    #[error("no task is waiting for the task token {0:?}")]
    TaskDoesNotExist(String),
    /// No state machine of that name or ARN is registered with the engine.
    #[error("no state machine registered as {0:?}")]
    UnknownStateMachine(String),
}

fn issues_text(issues: &[ValidationIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One validation problem: `location` is like `States.CheckImport.Choices[1].Variable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationIssue {
    pub location: String,
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Error names Step Functions defines (the `States.` namespace).
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const PERMISSIONS: &str = "States.Permissions";
}

/// A Step Functions error: what a state, a branch or an execution failed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }
    pub fn runtime(cause: impl Into<String>) -> Self {
        Failure::new(names::RUNTIME, cause)
    }
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Failure::new(names::INTRINSIC_FAILURE, cause)
    }
    /// The error output a Catch hands to its ResultPath.
    pub fn to_error_output(&self) -> serde_json::Value {
        serde_json::json!({ "Error": self.error, "Cause": self.cause })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}
