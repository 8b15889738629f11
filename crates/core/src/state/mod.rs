//! The state store: migrations, their runs and clone leases, kept in one DynamoDB table
//! (DESIGN.md section 5). Handlers take the [`StateStore`] port; [`DynamoDbStateStore`] is
//! the adapter. Every status change is a conditional write from a status that
//! [`RunStatus::allowed_previous`] allows, so a refused change is a typed error, never a
//! silent overwrite, and a retried change that already took effect is a no-op.

mod dynamodb;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use dynamodb::DynamoDbStateStore;

use crate::error::Result;
use crate::run::{RunId, RunStatus};
use crate::spec::Spec;

/// The `STATE` record of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    pub name: String,
    pub group: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_run: Option<RunId>,
    pub updated_at: DateTime<Utc>,
    /// The spec stored through the API (`put_migration`); runs started from the CLI carry
    /// their own snapshot and may leave it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
}

/// What starting a run needs to know.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: RunId,
    pub spec: Spec,
    /// `None` runs every domain of the spec.
    pub domain: Option<String>,
    pub dry_run: bool,
    pub parallelism: u32,
}

/// One run of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub migration: String,
    pub run_id: RunId,
    pub group: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub dry_run: bool,
    pub parallelism: u32,
    /// The spec as it was when the run started.
    pub spec: Spec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub metrics: RunMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
}

/// Counters a run reports as it goes and when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunMetrics {
    pub rows: u64,
    pub items: u64,
    pub bytes: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
}

/// Why a run failed: the state that failed, the error name and its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub state: String,
    pub error: String,
    pub cause: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    status: RunStatus,
    error: Option<RunError>,
    metrics: RunMetrics,
}

impl RunOutcome {
    pub fn succeeded(metrics: RunMetrics) -> Self {
        RunOutcome {
            status: RunStatus::Succeeded,
            error: None,
            metrics,
        }
    }

    pub fn failed(error: RunError, metrics: RunMetrics) -> Self {
        RunOutcome {
            status: RunStatus::Failed,
            error: Some(error),
            metrics,
        }
    }

    /// Stopped by a caller; `error` says who and why.
    pub fn cancelled(error: RunError, metrics: RunMetrics) -> Self {
        RunOutcome {
            status: RunStatus::Cancelled,
            error: Some(error),
            metrics,
        }
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }
}

/// A domain's claim on the clone of a source cluster: the clone lives while any lease does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneLease {
    pub cluster: String,
    pub run_id: RunId,
    pub domain: String,
    pub acquired_at: DateTime<Utc>,
}

/// A run that is PROCESSING, as the sparse `ACTIVE` index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRun {
    pub migration: String,
    pub run_id: RunId,
}

/// Where the next page starts. The API hands it out only in a signed, opaque form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    pub pk: String,
    pub sk: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageKey>,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn migration(&self, name: &str) -> Result<Option<MigrationState>>;

    /// Creates a migration (NOT_STARTED) or replaces its spec, keeping its status and runs.
    /// The group never changes: a spec naming another group than the stored one is refused
    /// as `NOT_FOUND`, as if the migration did not exist.
    async fn put_migration(&self, spec: &Spec) -> Result<MigrationState>;

    /// Records a new PROCESSING run and moves the migration to PROCESSING, both or neither.
    /// Refused with `MIGRATION_ALREADY_RUNNING` while another run is PROCESSING; a retry with
    /// the same run id after it took effect returns the run as it is.
    async fn begin_run(&self, run: NewRun) -> Result<RunRecord>;

    /// Stores the Step Functions execution that carries the run (once; the same ARN again is a no-op).
    async fn record_execution(
        &self,
        migration: &str,
        run_id: RunId,
        execution_arn: &str,
        log_url: Option<&str>,
    ) -> Result<()>;

    /// Replaces the metrics of a run that is still PROCESSING.
    async fn update_metrics(
        &self,
        migration: &str,
        run_id: RunId,
        metrics: &RunMetrics,
    ) -> Result<()>;

    /// Ends a PROCESSING run and its migration with the outcome's status. Ending it again with
    /// the same status is a no-op; with another status it is `INVALID_TRANSITION`.
    async fn finish_run(
        &self,
        migration: &str,
        run_id: RunId,
        outcome: RunOutcome,
    ) -> Result<RunRecord>;

    async fn run(&self, migration: &str, run_id: RunId) -> Result<Option<RunRecord>>;

    /// Runs of a migration, newest first.
    async fn runs(
        &self,
        migration: &str,
        limit: u32,
        after: Option<PageKey>,
    ) -> Result<Page<RunRecord>>;

    /// Every run still PROCESSING, across migrations.
    async fn active_runs(&self) -> Result<Vec<ActiveRun>>;

    /// Deletes a run's record; refused with `RUN_STILL_PROCESSING` while it runs.
    async fn delete_run(&self, migration: &str, run_id: RunId) -> Result<()>;

    /// Takes (or re-takes: idempotent) a domain's lease on a cluster's clone.
    async fn acquire_clone_lease(&self, lease: &CloneLease) -> Result<()>;

    /// Gives a lease back and returns the leases that remain, read after the release.
    async fn release_clone_lease(
        &self,
        cluster: &str,
        run_id: RunId,
        domain: &str,
    ) -> Result<Vec<CloneLease>>;

    async fn clone_leases(&self, cluster: &str) -> Result<Vec<CloneLease>>;
}
