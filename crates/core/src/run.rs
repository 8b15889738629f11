//! The run model: run ids and the status a migration or a run can have, with the only
//! transitions allowed between them. The state store enforces these transitions with
//! conditional writes, so the rules here are the single place they are written down.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{Error, ErrorCode};

/// A run's id: a ULID, so ids sort by start time (also as text, which the state table relies on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RunId(Ulid);

impl RunId {
    pub fn new() -> Self {
        RunId(Ulid::new())
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ulid::from_string(s).map(RunId).map_err(|_| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("run_id: {s:?} is not a run id (26 characters of Crockford base32)"),
            )
        })
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for RunId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

/// The status of a migration (its `STATE` record) or of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    NotStarted,
    Processing,
    Succeeded,
    Failed,
    /// Stopped by a caller (the API's cancel): the execution was stopped, cleanup still ran.
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::NotStarted,
        RunStatus::Processing,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::NotStarted => "NOT_STARTED",
            RunStatus::Processing => "PROCESSING",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// The statuses this one may change to. A migration starts a new run only from a status
    /// that is not PROCESSING (that refusal is what stops a second concurrent run), and a
    /// run only ends from PROCESSING. Nothing goes back to NOT_STARTED.
    pub fn allowed_next(self) -> &'static [RunStatus] {
        match self {
            RunStatus::NotStarted
            | RunStatus::Succeeded
            | RunStatus::Failed
            | RunStatus::Cancelled => &[RunStatus::Processing],
            RunStatus::Processing => &[
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled,
            ],
        }
    }

    /// The statuses from which `self` may be reached: what a conditional write checks.
    pub fn allowed_previous(self) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|from| from.allowed_next().contains(&self))
            .collect()
    }

    pub fn can_become(self, next: RunStatus) -> bool {
        self.allowed_next().contains(&next)
    }

    /// Checks the transition, with an error that says what was refused and why.
    pub fn transition(self, next: RunStatus) -> Result<RunStatus, Error> {
        if self.can_become(next) {
            return Ok(next);
        }
        let code = if self == RunStatus::Processing && next == RunStatus::Processing {
            ErrorCode::MigrationAlreadyRunning
        } else {
            ErrorCode::InvalidTransition
        };
        Err(Error::new(
            code,
            format!("status cannot change from {self} to {next}"),
        ))
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "status: {s:?} is not one of NOT_STARTED, PROCESSING, SUCCEEDED, FAILED, CANCELLED"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole transition table, written out so a change to the rules must change this too.
    const ALLOWED: &[(RunStatus, RunStatus)] = &[
        (RunStatus::NotStarted, RunStatus::Processing),
        (RunStatus::Processing, RunStatus::Succeeded),
        (RunStatus::Processing, RunStatus::Failed),
        (RunStatus::Processing, RunStatus::Cancelled),
        (RunStatus::Succeeded, RunStatus::Processing),
        (RunStatus::Failed, RunStatus::Processing),
        (RunStatus::Cancelled, RunStatus::Processing),
    ];

    #[test]
    fn every_transition_outside_the_table_is_refused() {
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let allowed = ALLOWED.contains(&(from, to));
                assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
                match from.transition(to) {
                    Ok(next) => assert!(allowed && next == to),
                    Err(err) => {
                        assert!(!allowed, "{from} -> {to} refused");
                        assert!(err.message().contains(from.as_str()));
                        assert!(err.message().contains(to.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn a_second_start_is_already_running() {
        let err = RunStatus::Processing
            .transition(RunStatus::Processing)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::MigrationAlreadyRunning);
        let err = RunStatus::Succeeded
            .transition(RunStatus::Failed)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidTransition);
    }

    #[test]
    fn allowed_previous_is_the_inverse_of_allowed_next() {
        assert_eq!(
            RunStatus::Processing.allowed_previous(),
            vec![
                RunStatus::NotStarted,
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled
            ]
        );
        assert_eq!(
            RunStatus::Failed.allowed_previous(),
            vec![RunStatus::Processing]
        );
        assert!(RunStatus::NotStarted.allowed_previous().is_empty());
    }

    #[test]
    fn status_round_trips_through_text_and_serde() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let err = "DONE".parse::<RunStatus>().unwrap_err();
        assert!(err.message().starts_with("status:"));
    }

    #[test]
    fn run_ids_sort_by_creation_and_parse_back() {
        let first = RunId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = RunId::new();
        assert!(first.to_string() < second.to_string());
        assert_eq!(first.to_string().parse::<RunId>().unwrap(), first);
        let err = "not-a-ulid".parse::<RunId>().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(err.message().starts_with("run_id:"));
    }
}
