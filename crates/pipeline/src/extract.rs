//! Extract one chunk: `COPY (SELECT <columns> FROM <table> WHERE ctid range) TO STDOUT`, streamed
//! row by row through the mapping, the digests and the compressor into an [`ObjectSink`]; then a
//! small manifest next to it. Nothing holds the whole chunk: memory is one compressed piece plus
//! what the sink buffers (one part for S3).
//!
//! The session reads with `DateStyle = ISO`, `TimeZone = UTC`, `bytea_output = hex` and
//! `extra_float_digits = 1` (shortest exact floats), which the mapping relies on, and a statement
//! timeout. Identifiers are always quoted; the table comes from the catalogue, never spliced
//! from unchecked input.

use std::time::Duration;

use bytes::Bytes;
use ferry_core::spec::Compression;
use ferry_core::{Error, ErrorCode};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::digest::{BucketDigests, DigestError, DEFAULT_BUCKET_BITS};
use crate::encode::ItemWriter;
use crate::item::{ColumnKind, ItemMapper, MapError, RowEncoder, RowError, SourceColumn};
use crate::plan::Chunk;
use crate::sink::{ObjectSink, ObjectUpload, SinkError};
use crate::swar::byte_mask;

/// Everything that can stop a chunk.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("source table {table}: query failed")]
    Source {
        table: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("source table {0} does not exist or has no columns")]
    NoSuchTable(String),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("table \"{table}\": {message}")]
    Invalid { table: String, message: String },
    #[error("table \"{table}\": cannot hash an item")]
    Digest {
        table: String,
        #[source]
        source: DigestError,
    },
    #[error("compressing the chunk failed")]
    Encode(#[from] std::io::Error),
}

impl ExtractError {
    pub fn source(table: &str, source: tokio_postgres::Error) -> Self {
        ExtractError::Source {
            table: table.to_owned(),
            source,
        }
    }
}

impl From<ExtractError> for Error {
    fn from(err: ExtractError) -> Self {
        let code = match &err {
            // A dropped connection or a timeout may well pass on a retry of the same chunk.
            ExtractError::Source { source, .. }
                if source.is_closed()
                    || source.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
            {
                ErrorCode::Retryable
            }
            ExtractError::Source { .. } | ExtractError::NoSuchTable(_) => {
                ErrorCode::SourceUnavailable
            }
            ExtractError::Map(MapError::UnknownColumn { .. }) => ErrorCode::InvalidSpec,
            ExtractError::Map(_) | ExtractError::Invalid { .. } => ErrorCode::InvalidInput,
            ExtractError::Sink(_) => ErrorCode::Retryable,
            ExtractError::Digest { .. } | ExtractError::Encode(_) => ErrorCode::Internal,
        };
        // Map errors name table, column and key: that is the message. Others keep SQL and SDK
        // detail in the source, for logs only.
        let message = err.to_string();
        Error::new(code, message).with_source(err)
    }
}

/// A source table as the catalogue describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub schema: String,
    pub name: String,
    pub columns: Vec<SourceColumn>,
    /// For a spec `query` source: the query (checked by the spec to be one SELECT/WITH
    /// statement), read as a subquery. It has no ctid, so it is extracted in one chunk.
    pub query: Option<String>,
}

impl SourceTable {
    /// What a `FROM` names: `"schema"."name"` quoted, or `(<query>) AS source`.
    pub fn qualified(&self) -> String {
        match &self.query {
            Some(query) => format!("({query}) AS source"),
            None => format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name)),
        }
    }
}

/// Describes a spec table's source: a table from the catalogue ([`describe_table`]), a query
/// from its prepared statement's columns.
pub async fn describe_source(
    client: &Client,
    source: &ferry_core::spec::TableSource,
) -> Result<SourceTable, ExtractError> {
    match source {
        ferry_core::spec::TableSource::Table(qualified) => describe_table(client, qualified).await,
        ferry_core::spec::TableSource::Query(query) => describe_query(client, query).await,
    }
}

async fn describe_query(client: &Client, query: &str) -> Result<SourceTable, ExtractError> {
    const LABEL: &str = "query";
    let statement = client
        .prepare(query)
        .await
        .map_err(|source| ExtractError::source(LABEL, source))?;
    if statement.columns().is_empty() {
        return Err(ExtractError::NoSuchTable(LABEL.to_owned()));
    }
    let mut columns: Vec<SourceColumn> = Vec::new();
    for column in statement.columns() {
        let ty = column.type_();
        let kind = match ty.kind() {
            tokio_postgres::types::Kind::Array(_) => ColumnKind::Array,
            tokio_postgres::types::Kind::Enum(_) => ColumnKind::Text,
            _ => ColumnKind::from_pg_type(ty.name(), b'b' as i8, b'U' as i8),
        };
        if columns.iter().any(|c| c.name == column.name()) {
            return Err(ExtractError::Invalid {
                table: LABEL.to_owned(),
                message: format!(
                    "column \"{}\" appears twice in the query's result; name the columns apart (AS)",
                    column.name()
                ),
            });
        }
        columns.push(SourceColumn {
            name: column.name().to_owned(),
            type_name: ty.name().to_owned(),
            kind,
        });
    }
    Ok(SourceTable {
        schema: String::new(),
        name: LABEL.to_owned(),
        columns,
        query: Some(query.to_owned()),
    })
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads a table's columns from the catalogue. `qualified` is `schema.table` or `table`
/// (schema `public`), as the spec's `source.table` says; a name part may be double-quoted.
pub async fn describe_table(client: &Client, qualified: &str) -> Result<SourceTable, ExtractError> {
    let (schema, name) = split_qualified(qualified);
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, t.typtype, t.typcategory \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &name],
        )
        .await
        .map_err(|source| ExtractError::source(qualified, source))?;
    if rows.is_empty() {
        return Err(ExtractError::NoSuchTable(qualified.to_owned()));
    }
    let columns = rows
        .iter()
        .map(|row| {
            let type_name: String = row.get(1);
            SourceColumn {
                name: row.get(0),
                kind: ColumnKind::from_pg_type(&type_name, row.get(2), row.get(3)),
                type_name,
            }
        })
        .collect();
    Ok(SourceTable {
        schema,
        name,
        columns,
        query: None,
    })
}

fn split_qualified(qualified: &str) -> (String, String) {
    let unquote = |part: &str| {
        let part = part.trim();
        match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(inner) => inner.replace("\"\"", "\""),
            None => part.to_owned(),
        }
    };
    // Split on the first dot outside quotes.
    let mut in_quotes = false;
    for (i, c) in qualified.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => {
                return (unquote(&qualified[..i]), unquote(&qualified[i + 1..]));
            }
            _ => {}
        }
    }
    ("public".to_owned(), unquote(qualified))
}

/// The COPY statement of a chunk: only the mapper's columns, arrays as `to_jsonb`.
pub fn copy_statement(table: &SourceTable, mapper: &ItemMapper, chunk: &Chunk) -> String {
    let columns: Vec<String> = mapper
        .columns()
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Array => format!("to_jsonb({})", quote_ident(&c.name)),
            _ => quote_ident(&c.name),
        })
        .collect();
    // COPY takes no bind parameters: the bounds are rendered from integers, never from text.
    let mut conditions = Vec::new();
    if let Some(range) = &chunk.key_range {
        let key = quote_ident(&range.column);
        if let Some(start) = range.start {
            conditions.push(format!("{key} >= {start}"));
        }
        if let Some(end) = range.end {
            conditions.push(match range.start {
                Some(_) => format!("{key} < {end}"),
                // The first range also takes the rows whose key is NULL.
                None => format!("({key} < {end} OR {key} IS NULL)"),
            });
        }
    } else if table.query.is_none() {
        conditions.push(format!("ctid >= '({},0)'::tid", chunk.start_block));
        if let Some(end) = chunk.end_block {
            conditions.push(format!("ctid < '({end},0)'::tid"));
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!(
        "COPY (SELECT {} FROM {}{filter}) TO STDOUT",
        columns.join(", "),
        table.qualified()
    )
}

/// Session settings the mapping relies on, plus the statement timeout.
pub async fn prepare_session(
    client: &Client,
    statement_timeout: Duration,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}; SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; \
             SET bytea_output = 'hex'; SET extra_float_digits = 1; \
             SET client_encoding = 'UTF8'",
            statement_timeout.as_millis()
        ))
        .await
}

/// How a chunk is extracted.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub statement_timeout: Duration,
    pub bucket_bits: u8,
    /// Compressed bytes handed to the sink at a time.
    pub flush_at: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            statement_timeout: Duration::from_secs(14 * 60),
            bucket_bits: DEFAULT_BUCKET_BITS,
            flush_at: crate::encode::DEFAULT_FLUSH_AT,
        }
    }
}

/// What a chunk produced; written as JSON to [`Chunk::manifest_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkManifest {
    pub chunk: Chunk,
    pub object_key: String,
    pub rows: u64,
    /// COPY text bytes read from PostgreSQL.
    pub bytes_in: u64,
    /// DynamoDB JSON bytes before compression.
    pub bytes_json: u64,
    /// Bytes of the stored object.
    pub bytes_out: u64,
    /// Primary key attributes the digests' buckets are computed from.
    pub key_attributes: Vec<String>,
    pub digests: BucketDigests,
}

/// Extracts one chunk to its object and manifest. On any failure the object upload is aborted,
/// so no partial object remains; a retry writes the same keys again.
pub async fn extract_chunk(
    client: &Client,
    table: &SourceTable,
    mapper: &ItemMapper,
    chunk: &Chunk,
    options: &ExtractOptions,
    sink: &dyn ObjectSink,
) -> Result<ChunkManifest, ExtractError> {
    chunk
        .check_names()
        .map_err(|message| ExtractError::Invalid {
            table: chunk.table.clone(),
            message,
        })?;
    if table.query.is_some() && (chunk.start_block != 0 || chunk.end_block.is_some()) {
        // A block range cannot cut a query's rows: running it would duplicate them.
        return Err(ExtractError::Invalid {
            table: chunk.table.clone(),
            message: format!(
                "chunk {} of a query source has a block range; a query is extracted in one chunk per shard",
                chunk.chunk
            ),
        });
    }
    prepare_session(client, options.statement_timeout)
        .await
        .map_err(|source| ExtractError::source(&table.qualified(), source))?;
    let object_key = chunk.object_key();
    let mut upload = sink.create(&object_key).await?;
    let mut state = ChunkEncoder::new(mapper, chunk.compression, options)?;
    let streamed = stream_rows(client, table, mapper, chunk, &mut state, upload.as_mut()).await;
    let finished = match streamed {
        Ok(()) => match state.finish() {
            Ok((rest, totals)) => upload
                .write(rest)
                .await
                .map(|()| totals)
                .map_err(ExtractError::from),
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    let totals = match finished {
        Ok(totals) => totals,
        Err(err) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %abort, key = %object_key, "abort after a failed chunk failed");
            }
            return Err(err);
        }
    };
    upload.finish().await?;
    let manifest = ChunkManifest {
        chunk: chunk.clone(),
        object_key,
        rows: totals.rows,
        bytes_in: totals.bytes_in,
        bytes_json: totals.writer.uncompressed_bytes,
        bytes_out: totals.writer.compressed_bytes,
        key_attributes: mapper.primary_key_attributes(),
        digests: totals.digests,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    sink.put(&chunk.manifest_key(), Bytes::from(body)).await?;
    Ok(manifest)
}

/// One chunk's COPY text (in any pieces) → compressed DynamoDB JSON lines, bucket digests and
/// counts; no connection, no sink: [`extract_chunk`] drives it.
pub struct ChunkEncoder<'a> {
    mapper: &'a ItemMapper,
    writer: Option<ItemWriter>,
    encoder: RowEncoder<'a>,
    digests: BucketDigests,
    rows: u64,
    bytes_in: u64,
    /// Unescaped field text of the current row, and where each field lies in it.
    text: Vec<u8>,
    fields: Vec<Option<(usize, usize)>>,
    /// Capacity for the current row's field texts (empty between rows).
    values: Vec<Option<&'static str>>,
    /// The tail of the COPY stream that does not end a line yet.
    pending: Vec<u8>,
}

/// What a finished chunk counted.
pub struct ChunkTotals {
    pub rows: u64,
    pub bytes_in: u64,
    pub writer: crate::encode::WriterTotals,
    pub digests: BucketDigests,
}

impl<'a> ChunkEncoder<'a> {
    pub fn new(
        mapper: &'a ItemMapper,
        compression: Compression,
        options: &ExtractOptions,
    ) -> Result<Self, ExtractError> {
        Ok(ChunkEncoder {
            mapper,
            writer: Some(ItemWriter::with_flush_at(compression, options.flush_at)?),
            encoder: mapper.row_encoder(),
            digests: BucketDigests::new(options.bucket_bits).map_err(|source| {
                ExtractError::Digest {
                    table: mapper.table().to_owned(),
                    source,
                }
            })?,
            rows: 0,
            bytes_in: 0,
            text: Vec::with_capacity(1024),
            fields: Vec::with_capacity(mapper.columns().len()),
            values: Vec::with_capacity(mapper.columns().len()),
            pending: Vec::new(),
        })
    }

    /// Feeds COPY bytes; complete lines become items.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ExtractError> {
        self.bytes_in += data.len() as u64;
        let mut rest = data;
        if !self.pending.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.pending.extend_from_slice(rest);
                return Ok(());
            };
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..end]);
            self.row(&line)?;
            rest = &rest[end + 1..];
        }
        while let Some(end) = memchr::memchr(b'\n', rest) {
            self.row(&rest[..end])?;
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn row(&mut self, line: &[u8]) -> Result<(), ExtractError> {
        // Most rows escape nothing (a NULL's `\N` aside): their fields are slices of the line.
        let mut values = recycle(std::mem::take(&mut self.values));
        let plain =
            std::str::from_utf8(line).is_ok_and(|line| split_plain_copy_line(line, &mut values));
        if plain {
            let result = self.encode(&values);
            self.values = recycle(values);
            return result;
        }
        self.values = recycle(values);
        let mut unescaped = std::mem::take(&mut self.text);
        split_copy_line(line, &mut unescaped, &mut self.fields);
        let result = match std::str::from_utf8(&unescaped) {
            Ok(text) => {
                let mut values = recycle(std::mem::take(&mut self.values));
                values.extend(
                    self.fields
                        .iter()
                        .map(|f| f.map(|(start, end)| &text[start..end])),
                );
                let result = self.encode(&values);
                self.values = recycle(values);
                result
            }
            Err(_) => Err(ExtractError::Invalid {
                table: self.mapper.table().to_owned(),
                message: "the source sent text that is not UTF-8".to_owned(),
            }),
        };
        self.text = unescaped;
        result
    }

    /// One row's fields (unescaped, `None` for NULL) → its line in the output and its digest.
    fn encode(&mut self, values: &[Option<&str>]) -> Result<(), ExtractError> {
        if values.len() != self.mapper.columns().len() {
            return Err(ExtractError::Invalid {
                table: self.mapper.table().to_owned(),
                message: format!(
                    "COPY gave {} fields where {} columns were selected",
                    values.len(),
                    self.mapper.columns().len()
                ),
            });
        }
        let hash = self.encoder.encode(values).map_err(|err| match err {
            RowError::Map(err) => ExtractError::Map(err),
            RowError::Digest(source) => ExtractError::Digest {
                table: self.mapper.table().to_owned(),
                source,
            },
        })?;
        self.digests.add(hash);
        self.writer
            .as_mut()
            .expect("writer lives until finish")
            .write_line(self.encoder.line())?;
        self.rows += 1;
        Ok(())
    }

    /// Compressed bytes ready to be stored, once enough are buffered.
    pub fn take_ready(&mut self) -> Option<Bytes> {
        self.writer.as_mut().and_then(ItemWriter::take_ready)
    }

    /// Ends the chunk: the last compressed bytes and the totals. Called once.
    pub fn finish(&mut self) -> Result<(Bytes, ChunkTotals), ExtractError> {
        if !self.pending.is_empty() {
            return Err(ExtractError::Invalid {
                table: self.mapper.table().to_owned(),
                message: "the COPY stream ended in the middle of a row".to_owned(),
            });
        }
        let writer = self.writer.take().expect("finish is called once");
        let (rest, writer_totals) = writer.finish()?;
        Ok((
            rest,
            ChunkTotals {
                rows: self.rows,
                bytes_in: self.bytes_in,
                writer: writer_totals,
                digests: std::mem::replace(
                    &mut self.digests,
                    BucketDigests::new(1).expect("1 bit is valid"),
                ),
            },
        ))
    }
}

/// An empty vector of field texts with `values`' capacity and any lifetime: the buffer is
/// kept from row to row, the borrows of a row are not.
fn recycle<'b>(mut values: Vec<Option<&str>>) -> Vec<Option<&'b str>> {
    values.clear();
    values.into_iter().map(|_| None).collect()
}

async fn stream_rows(
    client: &Client,
    table: &SourceTable,
    mapper: &ItemMapper,
    chunk: &Chunk,
    state: &mut ChunkEncoder<'_>,
    upload: &mut dyn ObjectUpload,
) -> Result<(), ExtractError> {
    let statement = copy_statement(table, mapper, chunk);
    let source_error = |source| ExtractError::source(&table.qualified(), source);
    let stream = client.copy_out(&statement).await.map_err(source_error)?;
    let mut stream = std::pin::pin!(stream);
    while let Some(data) = stream.next().await {
        let data = data.map_err(source_error)?;
        state.feed(&data)?;
        if let Some(ready) = state.take_ready() {
            upload.write(ready).await?;
        }
    }
    Ok(())
}

/// Splits a line of COPY text format that escapes nothing but NULLs (`\N`) into `values`;
/// false (and `values` partly filled) when some field has another escape.
fn split_plain_copy_line<'l>(line: &'l str, values: &mut Vec<Option<&'l str>>) -> bool {
    let bytes = line.as_bytes();
    let mut start = 0;
    let mut escaped = false;
    // Eight bytes at a time (the last ones padded with zeros): a mask of the tabs and
    // backslashes among them.
    let full = bytes.len() / 8 * 8;
    let mut tail = [0u8; 8];
    tail[..bytes.len() - full].copy_from_slice(&bytes[full..]);
    let words = bytes[..full]
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .chain([u64::from_le_bytes(tail)]);
    for (n, word) in words.enumerate() {
        let mut stops = byte_mask(word, b'\t') | byte_mask(word, b'\\');
        while stops != 0 {
            let at = n * 8 + (stops.trailing_zeros() / 8) as usize;
            stops &= stops - 1;
            if bytes[at] == b'\\' {
                escaped = true;
                continue;
            }
            if !push_plain_field(line, start, at, escaped, values) {
                return false;
            }
            start = at + 1;
            escaped = false;
        }
    }
    push_plain_field(line, start, bytes.len(), escaped, values)
}

/// Ends the field `line[start..end]`: plain, `\N`, or (false) an escape the no-copy split does
/// not undo.
#[inline(always)]
fn push_plain_field<'l>(
    line: &'l str,
    start: usize,
    end: usize,
    escaped: bool,
    values: &mut Vec<Option<&'l str>>,
) -> bool {
    if !escaped {
        values.push(Some(&line[start..end]));
    } else if &line.as_bytes()[start..end] == b"\\N" {
        values.push(None);
    } else {
        return false;
    }
    true
}

/// Splits one line of COPY text format into fields, undoing its escapes: `\N` is NULL, and
/// `\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\ooo` and hex `\xhh` stand for bytes.
pub fn split_copy_line(line: &[u8], text: &mut Vec<u8>, fields: &mut Vec<Option<(usize, usize)>>) {
    text.clear();
    fields.clear();
    let mut i = 0;
    let mut start = 0;
    let mut null = false;
    loop {
        // Copy the run up to the next tab or backslash at once.
        let run_end = line[i..]
            .iter()
            .position(|&b| b == b'\t' || b == b'\\')
            .map_or(line.len(), |at| i + at);
        text.extend_from_slice(&line[i..run_end]);
        i = run_end;
        if i == line.len() || line[i] == b'\t' {
            fields.push((!null).then_some((start, text.len())));
            if i == line.len() {
                return;
            }
            i += 1;
            start = text.len();
            null = false;
            continue;
        }
        if i + 1 == line.len() {
            // A backslash that ends the line stands for itself.
            text.push(b'\\');
            i += 1;
            continue;
        }
        let escaped = line[i + 1];
        i += 2;
        if escaped == b'N' && text.len() == start && (i == line.len() || line[i] == b'\t') {
            null = true;
        } else {
            unescape(escaped, line, &mut i, text);
        }
    }
}

/// Appends the byte(s) that `\<escaped>` stands for; octal and hex escapes read their further
/// digits from `line` at `*i` and move `*i` past them.
fn unescape(escaped: u8, line: &[u8], i: &mut usize, text: &mut Vec<u8>) {
    match escaped {
        b't' => text.push(b'\t'),
        b'n' => text.push(b'\n'),
        b'r' => text.push(b'\r'),
        b'b' => text.push(0x08),
        b'f' => text.push(0x0c),
        b'v' => text.push(0x0b),
        b'0'..=b'7' => {
            let mut value = u32::from(escaped - b'0');
            let mut digits = 1;
            while digits < 3 && *i < line.len() && (b'0'..=b'7').contains(&line[*i]) {
                value = value * 8 + u32::from(line[*i] - b'0');
                *i += 1;
                digits += 1;
            }
            text.push(value as u8);
        }
        b'x' if *i < line.len() && line[*i].is_ascii_hexdigit() => {
            let mut value = 0u32;
            let mut digits = 0;
            while digits < 2 && *i < line.len() && line[*i].is_ascii_hexdigit() {
                value = value * 16 + (line[*i] as char).to_digit(16).unwrap_or(0);
                *i += 1;
                digits += 1;
            }
            text.push(value as u8);
        }
        other => text.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Vec<Option<String>> {
        let mut text = Vec::new();
        let mut fields = Vec::new();
        split_copy_line(line, &mut text, &mut fields);
        fields
            .iter()
            .map(|f| f.map(|(s, e)| String::from_utf8(text[s..e].to_vec()).unwrap()))
            .collect()
    }

    /// The byte-at-a-time splitter the run-copying one replaced, as the reference.
    fn split_bytewise(line: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut fields = Vec::new();
        let mut text = Vec::new();
        let mut i = 0;
        let mut null = false;
        loop {
            if i == line.len() || line[i] == b'\t' {
                fields.push((!null).then(|| std::mem::take(&mut text)));
                text.clear();
                if i == line.len() {
                    return fields;
                }
                i += 1;
                null = false;
                continue;
            }
            let b = line[i];
            if b != b'\\' || i + 1 == line.len() {
                text.push(b);
                i += 1;
                continue;
            }
            let escaped = line[i + 1];
            i += 2;
            if escaped == b'N' && text.is_empty() && (i == line.len() || line[i] == b'\t') {
                null = true;
            } else {
                unescape(escaped, line, &mut i, &mut text);
            }
        }
    }

    #[test]
    fn run_copying_split_equals_the_bytewise_one() {
        let alphabet: &[&[u8]] = &[
            br"\",
            b"\t",
            br"\N",
            b"N",
            br"\",
            br"\t",
            br"\x4",
            br"\x4f",
            br"\101",
            br"\7",
            br"\n",
            b"ab",
            br"\xg",
            br"\q",
            "é".as_bytes(),
            b"0",
            b"",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut plain = 0;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            for _ in 0..(state % 9) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.extend_from_slice(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut text = Vec::new();
            let mut fields = Vec::new();
            split_copy_line(&line, &mut text, &mut fields);
            let got: Vec<Option<Vec<u8>>> = fields
                .iter()
                .map(|f| f.map(|(s, e)| text[s..e].to_vec()))
                .collect();
            assert_eq!(
                got,
                split_bytewise(&line),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
            // The no-copy split, where it accepts the line, gives the same fields.
            let mut values = Vec::new();
            if let Ok(line) = std::str::from_utf8(&line) {
                if split_plain_copy_line(line, &mut values) {
                    plain += 1;
                    let plain: Vec<Option<Vec<u8>>> = values
                        .iter()
                        .map(|v| v.map(|v| v.as_bytes().to_vec()))
                        .collect();
                    assert_eq!(plain, got, "{line:?}");
                }
            }
        }
        assert!(
            plain > 1_000,
            "the no-copy split was tried on {plain} lines"
        );
    }

    #[test]
    fn copy_text_lines_unescape() {
        assert_eq!(
            split(b"1\t\\N\ta\\tb\\nc\\\\d\t\t\\\\x1f"),
            [
                Some("1".into()),
                None,
                Some("a\tb\nc\\d".into()),
                Some(String::new()),
                Some("\\x1f".into()),
            ]
        );
        assert_eq!(split(b"\\101\\x41\\r"), [Some("AA\r".into())]);
        assert_eq!(split(b""), [Some(String::new())]);
        assert_eq!(split(b"\\N"), [None]);
    }

    /// Rows split across COPY messages anywhere (even inside an escape) give the same items.
    #[test]
    fn rows_split_across_messages_are_joined() {
        let text = include_str!("../../../examples/rates-availability.toml");
        let spec = ferry_core::Spec::from_toml_str(text).unwrap();
        let mut table = spec.table("Inventory").unwrap().clone();
        table.dynamodb.gsis.clear();
        let kinds = [
            ("hotel_id", ColumnKind::Integer),
            ("room_type_id", ColumnKind::Integer),
            ("stay_date", ColumnKind::Date),
            ("total_rooms", ColumnKind::Integer),
            ("sold_rooms", ColumnKind::Integer),
            ("blocked_rooms", ColumnKind::Integer),
            ("room_type_name", ColumnKind::Text),
            ("updated_at", ColumnKind::Timestamp),
            ("expiry_date", ColumnKind::Date),
        ];
        let columns: Vec<SourceColumn> = kinds
            .iter()
            .map(|(name, kind)| SourceColumn {
                name: (*name).into(),
                type_name: format!("{kind:?}"),
                kind: *kind,
            })
            .collect();
        let mapper = ItemMapper::new(&table, &columns).unwrap();
        let chunk = Chunk::whole("r", "Inventory", "s", ferry_core::spec::Compression::Gzip);
        let copy: Vec<u8> = (0..50)
            .flat_map(|i| {
                format!(
                    "{i}\t2\t2026-01-01\t10\t3\t\\N\tSuite\\t\\\\ {i}\t2026-01-01 00:00:00+00\t2026-04-01\n"
                )
                .into_bytes()
            })
            .collect();
        let run = |pieces: &[&[u8]]| {
            let mut state =
                ChunkEncoder::new(&mapper, chunk.compression, &ExtractOptions::default()).unwrap();
            for piece in pieces {
                state.feed(piece).unwrap();
            }
            let (_, totals) = state.finish().unwrap();
            (totals.rows, totals.digests)
        };
        let whole = run(&[&copy]);
        assert_eq!(whole.0, 50);
        for size in [1, 7, 64, 333] {
            let pieces: Vec<&[u8]> = copy.chunks(size).collect();
            assert_eq!(run(&pieces), whole, "pieces of {size} bytes");
        }
        let mut state =
            ChunkEncoder::new(&mapper, chunk.compression, &ExtractOptions::default()).unwrap();
        state.feed(&copy[..copy.len() - 3]).unwrap();
        assert!(matches!(state.finish(), Err(ExtractError::Invalid { .. })));
    }

    #[test]
    fn qualified_names_and_quoting() {
        assert_eq!(
            split_qualified("public.base_rate"),
            ("public".into(), "base_rate".into())
        );
        assert_eq!(split_qualified("t"), ("public".into(), "t".into()));
        assert_eq!(
            split_qualified("\"my.schema\".\"Odd\"\"Name\""),
            ("my.schema".into(), "Odd\"Name".into())
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
