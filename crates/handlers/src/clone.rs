//! Clones of the source, behind one trait. A run never reads a live source: it reads a clone
//! made for the run (`aurora`: a copy-on-write cluster clone; `postgres-template`: `CREATE
//! DATABASE … TEMPLATE …` on the same server), or, with `none`, the source itself.
//!
//! A clone's name is derived from the source and the run id, so every step finds it without
//! being told, and a retried step finds the clone its first attempt started.

mod aurora;
mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::spec::{self, Shard};
use ferry_core::{Result, RunId};
use ferry_pipeline::source::SourceConfig;
use serde::{Deserialize, Serialize};

pub use aurora::AuroraClones;
pub use postgres::TemplateClones;

use crate::source::Sources;

/// Where a clone stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloneStatus {
    /// Ready to read.
    Available,
    /// Being made; ask again after the poll interval.
    Creating,
    /// Being destroyed; ask again after the poll interval.
    Deleting,
    /// Does not exist (destroyed, or never made).
    Gone,
}

/// Makes, finds and destroys clones of a shard.
#[async_trait]
pub trait CloneProvider: Send + Sync {
    /// The clone's identifier for this shard and run (a cluster or database name). Leases
    /// are kept per clone identifier.
    fn clone_id(&self, shard: &Shard, run: RunId) -> String;

    /// Starts the clone when it does not exist; says where it stands.
    async fn ensure(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus>;

    /// Destroys the clone, refusing anything that is not a ferry clone of this shard's source.
    async fn destroy(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus>;

    /// Connection settings to read the shard's rows from the clone.
    async fn connection(&self, shard: &Shard, clone_id: &str) -> Result<SourceConfig>;
}

/// `none`: every step reads the source database itself.
pub struct NoClones {
    sources: Sources,
}

#[async_trait]
impl CloneProvider for NoClones {
    fn clone_id(&self, shard: &Shard, _run: RunId) -> String {
        shard.database.clone()
    }

    async fn ensure(&self, _: &Shard, _: &str, _: RunId) -> Result<CloneStatus> {
        Ok(CloneStatus::Available)
    }

    async fn destroy(&self, _: &Shard, _: &str, _: RunId) -> Result<CloneStatus> {
        Ok(CloneStatus::Gone)
    }

    async fn connection(&self, shard: &Shard, _: &str) -> Result<SourceConfig> {
        self.sources.config(shard, &shard.database).await
    }
}

/// One provider of each kind; the spec picks one.
#[derive(Clone)]
pub struct CloneProviders {
    aurora: Arc<dyn CloneProvider>,
    template: Arc<dyn CloneProvider>,
    none: Arc<dyn CloneProvider>,
}

impl CloneProviders {
    pub fn new(sources: Sources, rds: aws_sdk_rds::Client) -> Self {
        CloneProviders {
            aurora: Arc::new(AuroraClones::new(rds, sources.clone())),
            template: Arc::new(TemplateClones::new(sources.clone())),
            none: Arc::new(NoClones { sources }),
        }
    }

    /// Replaces the provider of one kind (tests inject faults this way).
    pub fn with(mut self, kind: spec::CloneProvider, provider: Arc<dyn CloneProvider>) -> Self {
        match kind {
            spec::CloneProvider::Aurora => self.aurora = provider,
            spec::CloneProvider::PostgresTemplate => self.template = provider,
            spec::CloneProvider::None => self.none = provider,
        }
        self
    }

    pub fn get(&self, kind: spec::CloneProvider) -> &dyn CloneProvider {
        match kind {
            spec::CloneProvider::Aurora => self.aurora.as_ref(),
            spec::CloneProvider::PostgresTemplate => self.template.as_ref(),
            spec::CloneProvider::None => self.none.as_ref(),
        }
    }
}

/// `<base><sep>ferry<sep><run>`, within `max` characters: unique per run, recognisable, and
/// within the name limits of PostgreSQL (63) and RDS (63). A base too long to fit is cut and
/// followed by a hash of the whole base, so two long names that share a beginning (shards
/// `…-partition-01` and `…-partition-02`) still get two clones.
pub(crate) fn derived_name(base: &str, run: RunId, sep: char, max: usize) -> String {
    let suffix = format!("{sep}ferry{sep}{}", run.to_string().to_lowercase());
    let room = max.saturating_sub(suffix.len());
    if base.len() <= room {
        return format!("{base}{suffix}");
    }
    let hash = format!(
        "{sep}{:08x}",
        xxhash_rust::xxh3::xxh3_64(base.as_bytes()) as u32
    );
    let mut cut: String = base.chars().take(room.saturating_sub(hash.len())).collect();
    while cut.len() > room.saturating_sub(hash.len()) {
        cut.pop();
    }
    format!("{cut}{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_limits_and_name_the_run() {
        let run: RunId = "01JD0000000000000000000000".parse().unwrap();
        let name = derived_name("dailydatadb-partition-01", run, '_', 63);
        assert_eq!(
            name,
            "dailydatadb-partition-01_ferry_01jd0000000000000000000000"
        );
        let long = derived_name(&"x".repeat(80), run, '-', 63);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-ferry-01jd0000000000000000000000"));
        let base = "t_m_01jd00000000000000000000_dailydatadb-partition-";
        let one = derived_name(&format!("{base}01"), run, '_', 63);
        let two = derived_name(&format!("{base}02"), run, '_', 63);
        assert_ne!(one, two);
        assert!(one.len() <= 63 && two.len() <= 63);
    }
}
