//! `check-clone`: leases, and ensure / destroy of one clone through the spec's clone provider.
//!
//! - `acquire` (the orchestrator's prepare step): one lease per domain on every clone the
//!   domain reads, taken before any domain starts, so no domain's cleanup can destroy a clone
//!   another domain of the run still needs.
//! - `ensure`: start the clone when absent; say AVAILABLE or CREATING (the state machine waits
//!   and asks again).
//! - `release` (cleanup): give the domain's leases back; answer the clones no lease holds any
//!   more, which the cleanup machine destroys. When two domains release at the same moment,
//!   each reads the leases after its own release, so at least one sees none left; destroy is
//!   idempotent, so both destroying is harmless.
//! - `destroy`: delete one clone (refusing anything that is not ferry's clone of the shard);
//!   say DELETING or GONE.

use chrono::Utc;
use ferry_core::spec::Shard;
use ferry_core::state::CloneLease;
use ferry_core::{Error, ErrorCode, Result, RunId, Spec};
use serde::{Deserialize, Serialize};

use crate::clone::CloneStatus;
use crate::Context;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Acquire {
        migration: String,
        run_id: RunId,
        domains: Vec<String>,
    },
    Ensure {
        migration: String,
        run_id: RunId,
        shard: String,
        clone: String,
    },
    Release {
        migration: String,
        run_id: RunId,
        domain: String,
    },
    Destroy {
        migration: String,
        run_id: RunId,
        shard: String,
        clone: String,
    },
}

/// A clone one step works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneRef {
    pub shard: String,
    pub clone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainClones {
    pub domain: String,
    pub clones: Vec<CloneRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Acquired {
        domains: Vec<DomainClones>,
    },
    Status {
        shard: String,
        clone: String,
        status: CloneStatus,
    },
    Released {
        destroy: Vec<CloneRef>,
    },
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    match request {
        Request::Acquire {
            migration,
            run_id,
            domains,
        } => {
            let spec = cx.spec(&migration, run_id).await?;
            let mut out = Vec::new();
            for domain in domains {
                let clones = domain_clones(cx, &spec, &domain, run_id)?;
                for clone in &clones {
                    cx.store
                        .acquire_clone_lease(&CloneLease {
                            cluster: clone.clone.clone(),
                            run_id,
                            domain: domain.clone(),
                            acquired_at: Utc::now(),
                        })
                        .await?;
                }
                out.push(DomainClones { domain, clones });
            }
            Ok(Response::Acquired { domains: out })
        }
        Request::Ensure {
            migration,
            run_id,
            shard,
            clone,
        } => one_clone(cx, &migration, run_id, shard, clone, CloneOp::Ensure).await,
        Request::Release {
            migration,
            run_id,
            domain,
        } => {
            let spec = cx.spec(&migration, run_id).await?;
            let mut destroy = Vec::new();
            for clone in domain_clones(cx, &spec, &domain, run_id)? {
                let remaining = cx
                    .store
                    .release_clone_lease(&clone.clone, run_id, &domain)
                    .await?;
                if remaining.is_empty() {
                    destroy.push(clone);
                } else {
                    tracing::info!(clone = %clone.clone, held_by = remaining.len(), "clone still leased");
                }
            }
            Ok(Response::Released { destroy })
        }
        Request::Destroy {
            migration,
            run_id,
            shard,
            clone,
        } => one_clone(cx, &migration, run_id, shard, clone, CloneOp::Destroy).await,
    }
}

#[derive(Debug, Clone, Copy)]
enum CloneOp {
    Ensure,
    Destroy,
}

/// Ensures or destroys one clone through the spec's provider; answers where it stands.
async fn one_clone(
    cx: &Context,
    migration: &str,
    run_id: RunId,
    shard: String,
    clone: String,
    op: CloneOp,
) -> Result<Response> {
    let spec = cx.spec(migration, run_id).await?;
    let provider = cx.clones.get(spec.source.clone);
    let source = shard_of(&spec, &shard)?;
    let status = match op {
        CloneOp::Ensure => provider.ensure(source, &clone, run_id).await?,
        CloneOp::Destroy => provider.destroy(source, &clone, run_id).await?,
    };
    tracing::info!(%shard, %clone, ?status, ?op, "clone");
    Ok(Response::Status {
        shard,
        clone,
        status,
    })
}

/// The clones a domain reads: one per shard of its tables, in spec order.
pub fn domain_clones(
    cx: &Context,
    spec: &Spec,
    domain: &str,
    run_id: RunId,
) -> Result<Vec<CloneRef>> {
    let tables = spec.domain_tables(domain).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidInput,
            format!(
                "domain: the spec has no domain {domain:?} (domains: {})",
                spec.domains.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let provider = cx.clones.get(spec.source.clone);
    let mut out: Vec<CloneRef> = Vec::new();
    for shard in &spec.source.shards {
        let used = tables
            .iter()
            .any(|t| spec.shards_of(t).iter().any(|s| s.name == shard.name));
        if used {
            out.push(CloneRef {
                shard: shard.name.clone(),
                clone: provider.clone_id(shard, run_id),
            });
        }
    }
    Ok(out)
}

pub fn shard_of<'a>(spec: &'a Spec, name: &str) -> Result<&'a Shard> {
    spec.source
        .shards
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("shard: the spec has no shard named {name:?}"),
            )
        })
}
