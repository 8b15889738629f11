//! `postgres-template`: `CREATE DATABASE <clone> TEMPLATE <source>` on the source's own server.
//! PostgreSQL copies a template only while nobody else is connected to it, so the copy is
//! retried for a while and then fails naming who is still connected. The clone carries a
//! comment naming its source and run; destroy drops only a database whose comment says so.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::spec::Shard;
use ferry_core::{Error, ErrorCode, Result, RunId};
use ferry_pipeline::extract::quote_ident;
use tokio_postgres::error::SqlState;

use super::{derived_name, CloneProvider, CloneStatus};
use crate::source::Sources;

/// The database every server has, to run CREATE / DROP DATABASE from.
const MAINTENANCE_DATABASE: &str = "postgres";

pub struct TemplateClones {
    sources: Sources,
    /// How long to keep trying while other sessions hold the source open.
    busy_timeout: Duration,
}

impl TemplateClones {
    pub fn new(sources: Sources) -> Self {
        TemplateClones {
            sources,
            busy_timeout: Duration::from_secs(30),
        }
    }

    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    async fn maintenance(&self, shard: &Shard) -> Result<tokio_postgres::Client> {
        self.sources.connect(shard, MAINTENANCE_DATABASE).await
    }
}

fn comment(shard: &Shard, run: RunId) -> String {
    format!("ferry clone of {} for run {run}", shard.database)
}

fn sql_error(what: String) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |err| Error::new(ErrorCode::CloneFailed, what).with_source(err)
}

/// The comment of database `name`, or `None` when it does not exist.
async fn database_comment(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<Option<Option<String>>> {
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(sql_error(format!("cannot look up database {name:?}")))?;
    Ok(row.map(|r| r.get(0)))
}

#[async_trait]
impl CloneProvider for TemplateClones {
    fn clone_id(&self, shard: &Shard, run: RunId) -> String {
        derived_name(&shard.database, run, '_', 63)
    }

    async fn ensure(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus> {
        let client = self.maintenance(shard).await?;
        // Two domains of a run ensure the same clone at once: one makes and labels it while
        // the other waits here, then finds it labelled. The lock goes with the session.
        let lock_key = xxhash_rust::xxh3::xxh3_64(clone_id.as_bytes()) as i64;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&lock_key])
            .await
            .map_err(sql_error(format!(
                "cannot lock the clone name {clone_id:?}"
            )))?;
        let expected = comment(shard, run);
        if let Some(found) = database_comment(&client, clone_id).await? {
            return if found.as_deref() == Some(expected.as_str()) {
                Ok(CloneStatus::Available)
            } else {
                Err(Error::new(
                    ErrorCode::CloneFailed,
                    format!("database {clone_id:?} exists but is not the ferry clone of {} for run {run}", shard.database),
                ))
            };
        }
        let create = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(clone_id),
            quote_ident(&shard.database)
        );
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            match client.batch_execute(&create).await {
                Ok(()) => break,
                // Another step (a second domain of the same run) made it first.
                Err(err) if err.code() == Some(&SqlState::DUPLICATE_DATABASE) => {
                    return Ok(CloneStatus::Creating)
                }
                Err(err)
                    if err.code() == Some(&SqlState::OBJECT_IN_USE)
                        && started.elapsed() < self.busy_timeout =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(err) if err.code() == Some(&SqlState::OBJECT_IN_USE) => {
                    let sessions = client
                        .query(
                            "SELECT coalesce(nullif(application_name, ''), 'unnamed'), count(*) \
                             FROM pg_stat_activity WHERE datname = $1 GROUP BY 1 ORDER BY 1",
                            &[&shard.database],
                        )
                        .await
                        .map(|rows| {
                            rows.iter()
                                .map(|r| {
                                    format!("{} x{}", r.get::<_, String>(0), r.get::<_, i64>(1))
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    return Err(Error::new(
                        ErrorCode::CloneFailed,
                        format!(
                            "cannot clone database {:?}: other sessions stayed connected to it for {} s ({sessions}); \
                             PostgreSQL copies a template only while nobody else is connected",
                            shard.database,
                            self.busy_timeout.as_secs()
                        ),
                    ));
                }
                Err(err) if err.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                    return Err(Error::new(
                        ErrorCode::SourceUnavailable,
                        format!(
                            "shard {}: the source database {:?} does not exist",
                            shard.name, shard.database
                        ),
                    )
                    .with_source(err))
                }
                Err(err) => {
                    return Err(sql_error(format!(
                        "cannot clone database {:?}",
                        shard.database
                    ))(err))
                }
            }
        }
        client
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS '{}'",
                quote_ident(clone_id),
                expected.replace('\'', "''")
            ))
            .await
            .map_err(sql_error(format!("cannot label the clone {clone_id:?}")))?;
        Ok(CloneStatus::Available)
    }

    async fn destroy(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus> {
        if clone_id == shard.database {
            return Err(Error::new(
                ErrorCode::CloneFailed,
                format!("refusing to drop {clone_id:?}: it is the source database, not a clone"),
            ));
        }
        let client = self.maintenance(shard).await?;
        let Some(found) = database_comment(&client, clone_id).await? else {
            return Ok(CloneStatus::Gone);
        };
        if found.as_deref() != Some(comment(shard, run).as_str()) {
            return Err(Error::new(
                ErrorCode::CloneFailed,
                format!(
                    "refusing to drop database {clone_id:?}: it is not labelled as the ferry clone of {:?} for run {run}",
                    shard.database
                ),
            ));
        }
        match client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(clone_id)
            ))
            .await
        {
            Ok(()) => Ok(CloneStatus::Gone),
            Err(err) => Err(sql_error(format!("cannot drop the clone {clone_id:?}"))(
                err,
            )),
        }
    }

    async fn connection(
        &self,
        shard: &Shard,
        clone_id: &str,
    ) -> Result<ferry_pipeline::source::SourceConfig> {
        self.sources.config(shard, clone_id).await
    }
}
