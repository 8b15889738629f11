//! `aurora`: a copy-on-write clone of the shard's cluster (RestoreDBClusterToPointInTime with
//! RestoreType `copy-on-write` and the latest restorable time), plus one instance in it so it
//! can be read. The clone is tagged with its source cluster and run; destroy deletes only a
//! cluster whose tags and attributes say it is ferry's clone of that source.

use async_trait::async_trait;
use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::{DbCluster, Tag};
use ferry_core::spec::Shard;
use ferry_core::{Error, ErrorCode, Result, RunId};

use super::{derived_name, CloneProvider, CloneStatus};
use crate::source::Sources;

const TAG_CLONE_OF: &str = "ferry:clone-of";
const TAG_RUN: &str = "ferry:run";

pub struct AuroraClones {
    rds: aws_sdk_rds::Client,
    sources: Sources,
}

impl AuroraClones {
    pub fn new(rds: aws_sdk_rds::Client, sources: Sources) -> Self {
        AuroraClones { rds, sources }
    }

    async fn cluster(&self, id: &str) -> Result<Option<DbCluster>> {
        match self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_clusters.unwrap_or_default().into_iter().next()),
            Err(err) if err.code() == Some("DBClusterNotFoundFault") => Ok(None),
            Err(err) => Err(rds_error(format!("cannot describe cluster {id}"), err)),
        }
    }

    /// The instances of a cluster: identifier and status.
    async fn instances(&self, cluster: &DbCluster) -> Vec<String> {
        cluster
            .db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier().map(str::to_owned))
            .collect()
    }

    async fn instance_status(&self, id: &str) -> Result<Option<String>> {
        match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .db_instances
                .unwrap_or_default()
                .into_iter()
                .next()
                .and_then(|i| i.db_instance_status)),
            Err(err) if err.code() == Some("DBInstanceNotFound") => Ok(None),
            Err(err) => Err(rds_error(format!("cannot describe instance {id}"), err)),
        }
    }
}

fn source_cluster(shard: &Shard) -> Result<&str> {
    shard.cluster.as_deref().ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidSpec,
            format!(
                "source.shards[{}].cluster: the aurora clone provider needs the cluster identifier",
                shard.name
            ),
        )
    })
}

fn rds_error<E>(what: String, err: aws_sdk_rds::error::SdkError<E>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let code = match err.code() {
        Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => ErrorCode::Retryable,
        _ if matches!(
            err,
            aws_sdk_rds::error::SdkError::TimeoutError(_)
                | aws_sdk_rds::error::SdkError::DispatchFailure(_)
        ) =>
        {
            ErrorCode::Retryable
        }
        _ => ErrorCode::CloneFailed,
    };
    Error::new(code, what).with_source(err)
}

fn tag<'a>(cluster: &'a DbCluster, key: &str) -> Option<&'a str> {
    cluster
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn instance_id(clone_id: &str) -> String {
    format!("{clone_id}-1")
}

#[async_trait]
impl CloneProvider for AuroraClones {
    fn clone_id(&self, shard: &Shard, run: RunId) -> String {
        let base = shard.cluster.as_deref().unwrap_or(&shard.name);
        // Cluster identifiers: letters, digits and single hyphens, at most 63 characters, and
        // the instance adds "-1".
        let clean: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let clean = clean
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        derived_name(&clean, run, '-', 61)
    }

    async fn ensure(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus> {
        let source_id = source_cluster(shard)?;
        let Some(clone) = self.cluster(clone_id).await? else {
            let source = self.cluster(source_id).await?.ok_or_else(|| {
                Error::new(
                    ErrorCode::SourceUnavailable,
                    format!(
                        "shard {}: the source cluster {source_id} does not exist",
                        shard.name
                    ),
                )
            })?;
            let mut restore = self
                .rds
                .restore_db_cluster_to_point_in_time()
                .source_db_cluster_identifier(source_id)
                .db_cluster_identifier(clone_id)
                .restore_type("copy-on-write")
                .use_latest_restorable_time(true)
                .tags(Tag::builder().key(TAG_CLONE_OF).value(source_id).build())
                .tags(Tag::builder().key(TAG_RUN).value(run.to_string()).build())
                .set_db_subnet_group_name(source.db_subnet_group.clone())
                .set_vpc_security_group_ids(Some(
                    source
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                        .collect(),
                ));
            if let Some(kms) = source.kms_key_id() {
                restore = restore.kms_key_id(kms);
            }
            match restore.send().await {
                Ok(_) => return Ok(CloneStatus::Creating),
                Err(err) if err.code() == Some("DBClusterAlreadyExistsFault") => {
                    return Ok(CloneStatus::Creating)
                }
                Err(err) => {
                    return Err(rds_error(format!("cannot clone cluster {source_id}"), err))
                }
            }
        };
        if tag(&clone, TAG_CLONE_OF) != Some(source_id) {
            return Err(Error::new(
                ErrorCode::CloneFailed,
                format!(
                    "cluster {clone_id} exists but is not tagged as a ferry clone of {source_id}"
                ),
            ));
        }
        if clone.status() != Some("available") {
            return Ok(CloneStatus::Creating);
        }
        let instance = instance_id(clone_id);
        match self.instance_status(&instance).await? {
            Some(status) if status == "available" => Ok(CloneStatus::Available),
            Some(_) => Ok(CloneStatus::Creating),
            None => {
                let source = self.cluster(source_id).await?;
                let class = match source.as_ref().and_then(|s| s.db_cluster_members().first()) {
                    Some(member) => {
                        let id = member.db_instance_identifier().unwrap_or_default();
                        self.rds
                            .describe_db_instances()
                            .db_instance_identifier(id)
                            .send()
                            .await
                            .ok()
                            .and_then(|o| o.db_instances.unwrap_or_default().into_iter().next())
                            .and_then(|i| i.db_instance_class)
                    }
                    None => None,
                }
                .unwrap_or_else(|| "db.r6g.large".to_string());
                match self
                    .rds
                    .create_db_instance()
                    .db_instance_identifier(&instance)
                    .db_cluster_identifier(clone_id)
                    .engine(clone.engine().unwrap_or("aurora-postgresql"))
                    .db_instance_class(class)
                    .tags(Tag::builder().key(TAG_CLONE_OF).value(source_id).build())
                    .tags(Tag::builder().key(TAG_RUN).value(run.to_string()).build())
                    .send()
                    .await
                {
                    Ok(_) => Ok(CloneStatus::Creating),
                    Err(err) if err.code() == Some("DBInstanceAlreadyExists") => {
                        Ok(CloneStatus::Creating)
                    }
                    Err(err) => Err(rds_error(
                        format!("cannot add an instance to the clone {clone_id}"),
                        err,
                    )),
                }
            }
        }
    }

    async fn destroy(&self, shard: &Shard, clone_id: &str, run: RunId) -> Result<CloneStatus> {
        let source_id = source_cluster(shard)?;
        if clone_id == source_id {
            return Err(Error::new(
                ErrorCode::CloneFailed,
                format!("refusing to delete {clone_id}: it is the source cluster"),
            ));
        }
        let Some(clone) = self.cluster(clone_id).await? else {
            return Ok(CloneStatus::Gone);
        };
        let run_text = run.to_string();
        let source = self.cluster(source_id).await?;
        let same_clone_group = match (
            clone.clone_group_id(),
            source.as_ref().and_then(|s| s.clone_group_id()),
        ) {
            (Some(a), Some(b)) => a == b,
            // Emulators and some engines leave it out; the tags and the engine still decide.
            _ => true,
        };
        let same_engine =
            source.as_ref().map(|s| s.engine()) == Some(clone.engine()) || source.is_none();
        if tag(&clone, TAG_CLONE_OF) != Some(source_id)
            || tag(&clone, TAG_RUN) != Some(run_text.as_str())
            || !same_clone_group
            || !same_engine
        {
            return Err(Error::new(
                ErrorCode::CloneFailed,
                format!("refusing to delete cluster {clone_id}: it is not ferry's clone of {source_id} for run {run}"),
            ));
        }
        if clone.status() == Some("deleting") {
            return Ok(CloneStatus::Deleting);
        }
        let members = self.instances(&clone).await;
        if !members.is_empty() {
            for member in members {
                match self
                    .rds
                    .delete_db_instance()
                    .db_instance_identifier(&member)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(err)
                        if matches!(
                            err.code(),
                            Some("DBInstanceNotFound" | "InvalidDBInstanceState")
                        ) => {}
                    Err(err) => {
                        return Err(rds_error(format!("cannot delete instance {member}"), err))
                    }
                }
            }
            return Ok(CloneStatus::Deleting);
        }
        match self
            .rds
            .delete_db_cluster()
            .db_cluster_identifier(clone_id)
            .skip_final_snapshot(true)
            .send()
            .await
        {
            Ok(_) => Ok(CloneStatus::Deleting),
            Err(err) if err.code() == Some("DBClusterNotFoundFault") => Ok(CloneStatus::Gone),
            Err(err) if err.code() == Some("InvalidDBClusterStateFault") => {
                Ok(CloneStatus::Deleting)
            }
            Err(err) => Err(rds_error(format!("cannot delete cluster {clone_id}"), err)),
        }
    }

    async fn connection(
        &self,
        shard: &Shard,
        clone_id: &str,
    ) -> Result<ferry_pipeline::source::SourceConfig> {
        let clone = self.cluster(clone_id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::CloneFailed,
                format!(
                    "the clone {clone_id} of shard {} does not exist",
                    shard.name
                ),
            )
        })?;
        let endpoint = clone.endpoint().ok_or_else(|| {
            Error::new(
                ErrorCode::Retryable,
                format!("the clone {clone_id} has no endpoint yet"),
            )
        })?;
        // The clone keeps the source's users and passwords; it is reached with the source's
        // TLS settings, only the host changes.
        let source = self.sources.config(shard, &shard.database).await?;
        let mut config = ferry_pipeline::source::SourceConfig {
            postgres: tokio_postgres::Config::new(),
            tls: source.tls.clone(),
        };
        if let Some(user) = source.postgres.get_user() {
            config.postgres.user(user);
        }
        if let Some(password) = source.postgres.get_password() {
            config.postgres.password(password);
        }
        config
            .postgres
            .dbname(&shard.database)
            .host(endpoint)
            .port(clone.port().map(|p| p as u16).unwrap_or(5432))
            .connect_timeout(crate::source::CONNECT_TIMEOUT)
            .application_name("ferry");
        Ok(config)
    }
}
