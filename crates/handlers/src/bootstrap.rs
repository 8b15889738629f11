//! `bootstrap`: extracts one planned chunk from its shard's clone into the run bucket (one
//! deterministic object and manifest per chunk, so a retry overwrites, never duplicates).

use ferry_core::{Error, ErrorCode, Result, RunId};
use ferry_pipeline::extract::{describe_source, extract_chunk, ExtractOptions};
use ferry_pipeline::item::ItemMapper;
use ferry_pipeline::plan::Chunk;
use serde::{Deserialize, Serialize};

use crate::check_clone::shard_of;
use crate::source::connect;
use crate::Context;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub migration: String,
    pub run_id: RunId,
    pub chunk: Chunk,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub table: String,
    pub shard: String,
    pub chunk: u32,
    pub object_key: String,
    pub rows: u64,
    pub bytes_out: u64,
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    let chunk = &request.chunk;
    if chunk.run != request.run_id.to_string() {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!(
                "chunk.run: {:?} is not the run {}",
                chunk.run, request.run_id
            ),
        ));
    }
    let spec = cx.spec(&request.migration, request.run_id).await?;
    let table = spec.table(&chunk.table).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidInput,
            format!("chunk.table: the spec has no table {:?}", chunk.table),
        )
    })?;
    let shard = shard_of(&spec, &chunk.shard)?;
    let provider = cx.clones.get(spec.source.clone);
    let clone = provider.clone_id(shard, request.run_id);
    let config = provider.connection(shard, &clone).await?;
    let client = connect(&config, &shard.name, &clone).await?;
    let source = describe_source(&client, &table.source).await?;
    let mapper = ItemMapper::new(table, &source.columns)
        .map_err(|err| Error::new(ErrorCode::InvalidSpec, err.to_string()))?;
    let manifest = extract_chunk(
        &client,
        &source,
        &mapper,
        chunk,
        &ExtractOptions::default(),
        cx.sink.as_ref(),
    )
    .await?;
    tracing::info!(
        table = %chunk.table, shard = %chunk.shard, chunk = chunk.chunk,
        rows = manifest.rows, bytes = manifest.bytes_out, "chunk extracted"
    );
    Ok(Response {
        table: chunk.table.clone(),
        shard: chunk.shard.clone(),
        chunk: chunk.chunk,
        object_key: manifest.object_key,
        rows: manifest.rows,
        bytes_out: manifest.bytes_out,
    })
}
