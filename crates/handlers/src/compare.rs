//! `compare`: verification in phases, so `verify.asl.json` can fan out over the export files.
//!
//! - `list`: the export data files of every table of a domain, cut into batches, written as
//!   a JSON array for a Distributed Map.
//! - `digest`: one batch of files → its partial bucket digests in S3.
//! - `diff`: per table, merge the partials, compare with the source digests (the bootstrap
//!   manifests), classify the unequal buckets; writes `runs/<run>/verify/tables/<table>.json`;
//!   fails with `Ferry.VerificationFailed` naming tables and counts above the tolerance.
//! - `report`: every table report of the run in `runs/<run>/verify/report.json`.

use std::sync::Arc;

use bytes::Bytes;
use ferry_core::{Error, ErrorCode, Result, RunId, Spec};
use ferry_pipeline::verify::{
    self, diff_table, digest_batch, export_data_files, TableReport, TableVerification, Verdict,
    VerifyError, VerifyReport,
};
use serde::{Deserialize, Serialize};

use crate::Context;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    List {
        migration: String,
        run_id: RunId,
        domain: String,
    },
    Digest {
        migration: String,
        run_id: RunId,
        table: String,
        batch: u32,
        files: Vec<String>,
    },
    Diff {
        migration: String,
        run_id: RunId,
        domain: String,
    },
    Report {
        migration: String,
        run_id: RunId,
    },
}

/// One line of the batch list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub table: String,
    pub batch: u32,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Listed {
        bucket: String,
        batch_list_key: String,
        batches: u64,
        /// Where the Distributed Map writes its results.
        results_prefix: String,
    },
    Digested {
        table: String,
        batch: u32,
        items: u64,
    },
    Compared {
        verdict: Verdict,
        summaries: Vec<String>,
    },
    /// `verdict` and `report_key` are absent when no table of the run was compared (the run
    /// failed before verification): no report is written then.
    Reported {
        #[serde(skip_serializing_if = "Option::is_none")]
        verdict: Option<Verdict>,
        #[serde(skip_serializing_if = "Option::is_none")]
        report_key: Option<String>,
        summaries: Vec<String>,
    },
}

fn verify_error(err: VerifyError) -> Error {
    Error::from(err)
}

/// Each table of the domain, as verification sees it, with its export's data files.
async fn domain_exports(
    cx: &Context,
    spec: &Spec,
    domain: &str,
    run: &str,
) -> Result<Vec<(TableVerification, Vec<String>)>> {
    let tables = spec.domain_tables(domain).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidInput,
            format!("domain: the spec has no domain {domain:?}"),
        )
    })?;
    let mut out = Vec::new();
    for table in tables {
        let request = TableVerification::new(run, table, spec.verification);
        let files = export_data_files(cx.objects.as_ref(), &request.export_prefix)
            .await
            .map_err(verify_error)?;
        out.push((request, files));
    }
    Ok(out)
}

/// `runs/<run>/verify/tables/<table>.json`.
pub fn table_report_key(run: &str, table: &str) -> String {
    format!("runs/{run}/verify/tables/{table}.json")
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    match request {
        Request::List {
            migration,
            run_id,
            domain,
        } => {
            let spec = cx.spec(&migration, run_id).await?;
            let run = run_id.to_string();
            let mut list: Vec<Batch> = Vec::new();
            for (request, files) in domain_exports(cx, &spec, &domain, &run).await? {
                for (batch, files) in files.chunks(request.files_per_batch.max(1)).enumerate() {
                    list.push(Batch {
                        table: request.table.name.clone(),
                        batch: batch as u32,
                        files: files.to_vec(),
                    });
                }
            }
            // A JSON array: the ItemReader input type both AWS and the emulator read.
            let batch_list_key = format!("runs/{run}/verify/{domain}/batches.json");
            let body = serde_json::to_vec(&list).expect("batches serialise");
            cx.sink
                .put(&batch_list_key, Bytes::from(body))
                .await
                .map_err(|err| {
                    Error::new(ErrorCode::Retryable, "cannot write the batch list").with_source(err)
                })?;
            Ok(Response::Listed {
                bucket: cx.bucket.clone(),
                batch_list_key,
                batches: list.len() as u64,
                results_prefix: format!("runs/{run}/verify/{domain}/results/"),
            })
        }
        Request::Digest {
            migration,
            run_id,
            table,
            batch,
            files,
        } => {
            let spec = cx.spec(&migration, run_id).await?;
            let run = run_id.to_string();
            let table_spec = spec.table(&table).ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidInput,
                    format!("table: the spec has no table {table:?}"),
                )
            })?;
            let options =
                TableVerification::new(&run, table_spec, spec.verification).digest_options();
            let partial = digest_batch(
                Arc::clone(&cx.objects),
                cx.sink.as_ref(),
                &run,
                &table,
                batch,
                &files,
                &options,
            )
            .await
            .map_err(verify_error)?;
            Ok(Response::Digested {
                table,
                batch,
                items: partial.items,
            })
        }
        Request::Diff {
            migration,
            run_id,
            domain,
        } => {
            let spec = cx.spec(&migration, run_id).await?;
            let run = run_id.to_string();
            let mut reports = Vec::new();
            for (request, files) in domain_exports(cx, &spec, &domain, &run).await? {
                let batches = files.chunks(request.files_per_batch.max(1)).len() as u32;
                let report = diff_table(
                    Arc::clone(&cx.objects),
                    Arc::clone(&cx.objects),
                    &request,
                    &files,
                    batches,
                )
                .await
                .map_err(verify_error)?;
                tracing::info!("{}", report.summary());
                put_json(cx, &table_report_key(&run, &report.table), &report).await?;
                reports.push(report);
            }
            let report = VerifyReport::new(&run, reports);
            report.to_result()?;
            Ok(Response::Compared {
                verdict: report.verdict,
                summaries: report.summaries(),
            })
        }
        Request::Report { migration, run_id } => {
            let run = run_id.to_string();
            // The run must exist: a report is never written for a run nobody started.
            cx.run(&migration, run_id).await?;
            let report = run_report(cx, &run).await?;
            if report.tables.is_empty() {
                return Ok(Response::Reported {
                    verdict: None,
                    report_key: None,
                    summaries: Vec::new(),
                });
            }
            report.write(cx.sink.as_ref()).await.map_err(verify_error)?;
            Ok(Response::Reported {
                verdict: Some(report.verdict),
                report_key: Some(verify::report_key(&run)),
                summaries: report.summaries(),
            })
        }
    }
}

/// Every table report stored for the run, as one report.
pub async fn run_report(cx: &Context, run: &str) -> Result<VerifyReport> {
    let keys = cx
        .objects
        .list(&format!("runs/{run}/verify/tables/"))
        .await
        .map_err(verify_error)?;
    let mut tables = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(".json")) {
        let body = cx.objects.get(key).await.map_err(verify_error)?;
        let report: TableReport = serde_json::from_slice(&body).map_err(|err| {
            Error::new(ErrorCode::Internal, format!("{key} is not a table report")).with_source(err)
        })?;
        tables.push(report);
    }
    Ok(VerifyReport::new(run, tables))
}

async fn put_json<T: Serialize>(cx: &Context, key: &str, value: &T) -> Result<()> {
    let body = serde_json::to_vec_pretty(value)
        .map_err(|err| Error::new(ErrorCode::Internal, "cannot encode").with_source(err))?;
    cx.sink.put(key, Bytes::from(body)).await.map_err(|err| {
        Error::new(ErrorCode::Retryable, format!("cannot write {key}")).with_source(err)
    })
}
