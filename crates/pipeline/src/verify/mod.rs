//! Verification (DESIGN.md section 6): prove every source row arrived in DynamoDB, and say exactly
//! what differs when it did not.
//!
//! The phases, each usable on its own so a state machine can fan out:
//! 1. **digest files** ([`digest_files`]): stream gzip (or zstd) DynamoDB JSON files, one line at
//!    a time, parse, hash with [`ItemHasher`] and add to [`BucketDigests`]; files in parallel
//!    (bounded), memory bounded by a few compressed pieces per file. [`write_partial`] stores the
//!    result of a batch as JSON under `runs/<run>/verify/<table>/partials/`.
//! 2. **digest source** ([`source_digests`]): merge the bucket digests the bootstrap chunks wrote
//!    in their manifests (`runs/<run>/manifests/<table>/`).
//! 3. **diff** ([`diff_table`]; [`verify_table`] runs 1 to 3 for one table): compare the two sides per bucket; for the unequal buckets
//!    only, list key + item on both sides (source: the bootstrap data files, the exact items the
//!    manifests were computed from; target: the export files) and classify every key as missing,
//!    extra, different (with attribute names) or duplicated in the source (ImportTable keeps one
//!    of two items with the same key silently).
//!
//! Reports hold keys, classes and attribute names, never attribute values, so columns marked
//! sensitive in the spec cannot leak through them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

pub mod bench;
mod lookup;

pub use lookup::{DynamoDbLookup, ItemLookup};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use ferry_core::spec::TableSpec;
use ferry_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::digest::{BucketDigests, DigestError, ItemHash, ItemHasher, DEFAULT_BUCKET_BITS};
use crate::extract::ChunkManifest;
use crate::plan::Chunk;
use crate::sink::{ObjectSink, SinkError};
use crate::value::{parse_item_line, AttributeValue, Item};

/// Files digested at once when the caller gives no parallelism.
pub const DEFAULT_PARALLELISM: usize = 4;
/// Up to this many unequal buckets, the diff keeps whole items in one pass; beyond, keys first.
pub const DEFAULT_WHOLE_ITEM_BUCKETS: usize = 64;
/// Up to this many source items in the unequal buckets, the diff reads the target's items by
/// key (BatchGetItem, 100 per call) instead of re-reading the whole export.
pub const DEFAULT_LOOKUP_KEYS: u64 = 20_000;
/// Compressed pieces buffered between the download and the decoder, per file.
const PIECES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("object {key}: {message}")]
    Io {
        key: String,
        message: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object {key}: S3 {operation} failed")]
    S3 {
        key: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("object {key}, line {line}: not a DynamoDB JSON item")]
    Parse {
        key: String,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("object {key}, line {line}: cannot hash the item")]
    Digest {
        key: String,
        line: u64,
        #[source]
        source: DigestError,
    },
    #[error("table {table}: {message}")]
    Invalid { table: String, message: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("a digest worker stopped: {0}")]
    Worker(String),
}

impl From<VerifyError> for Error {
    fn from(err: VerifyError) -> Self {
        let (code, message) = match &err {
            VerifyError::Io { .. } | VerifyError::S3 { .. } | VerifyError::Sink(_) => (
                ErrorCode::Retryable,
                "reading or writing verification objects failed".to_owned(),
            ),
            VerifyError::Parse { key, line, .. } | VerifyError::Digest { key, line, .. } => (
                ErrorCode::InvalidInput,
                format!("object {key}, line {line}: not a valid DynamoDB JSON item"),
            ),
            VerifyError::Invalid { .. } => (ErrorCode::InvalidInput, err.to_string()),
            VerifyError::Worker(_) => (ErrorCode::Internal, "a digest worker stopped".to_owned()),
        };
        Error::new(code, message).with_source(err)
    }
}

// ---- where objects are read from -------------------------------------------------------------

/// Reads objects by key: S3, or a local directory (benchmarks, local runs).
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, VerifyError>;
    /// A whole small object (manifests, partial digests).
    async fn get(&self, key: &str) -> Result<Bytes, VerifyError>;
    /// The object as a blocking reader, for a `spawn_blocking` worker. The download runs ahead
    /// of the reader by at most a few pieces.
    async fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, VerifyError>;
}

/// Objects as files under a root directory; the key is the relative path.
#[derive(Debug, Clone)]
pub struct LocalDirSource {
    root: PathBuf,
}

impl LocalDirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirSource { root: root.into() }
    }

    fn io(key: &str, message: &str, source: std::io::Error) -> VerifyError {
        VerifyError::Io {
            key: key.to_owned(),
            message: message.to_owned(),
            source,
        }
    }
}

#[async_trait]
impl ObjectSource for LocalDirSource {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, VerifyError> {
        let mut keys = Vec::new();
        // Walk only the directory the prefix names, not the whole root.
        let start = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let mut pending = vec![self.root.join(start)];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Self::io(prefix, "cannot list", err)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Self::io(prefix, "cannot list", e))?;
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if let Ok(relative) = path.strip_prefix(&self.root) {
                    let key = relative.to_string_lossy().replace('\\', "/");
                    let hidden = key.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
                    if key.starts_with(prefix) && !hidden {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Bytes, VerifyError> {
        tokio::fs::read(self.root.join(key))
            .await
            .map(Bytes::from)
            .map_err(|e| Self::io(key, "cannot read", e))
    }

    async fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, VerifyError> {
        let file = std::fs::File::open(self.root.join(key))
            .map_err(|e| Self::io(key, "cannot open", e))?;
        Ok(Box::new(file))
    }
}

/// Objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Source {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Source {
            client,
            bucket: bucket.into(),
        }
    }

    fn s3_error(
        key: &str,
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> VerifyError {
        VerifyError::S3 {
            key: key.to_owned(),
            operation,
            source: Box::new(source),
        }
    }
}

#[async_trait]
impl ObjectSource for S3Source {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, VerifyError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| Self::s3_error(prefix, "ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Bytes, VerifyError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Self::s3_error(key, "GetObject", e))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| Self::s3_error(key, "GetObject body", e))?;
        Ok(body.into_bytes())
    }

    async fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, VerifyError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Self::s3_error(key, "GetObject", e))?;
        let mut body = object.body;
        let (sender, receiver) = tokio::sync::mpsc::channel(PIECES_IN_FLIGHT);
        tokio::spawn(async move {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(std::io::Error::other);
                let failed = piece.is_err();
                // A closed channel means the reader stopped: stop downloading.
                if sender.send(piece).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            receiver,
            current: Bytes::new(),
        }))
    }
}

/// A blocking `Read` over pieces arriving from an async download.
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

// ---- digesting files -------------------------------------------------------------------------

/// What a scan of files gives: digests, counts and, for the buckets asked for, the items.
#[derive(Debug, Clone)]
pub struct FileDigests {
    pub files: u64,
    pub items: u64,
    /// Compressed bytes read.
    pub bytes: u64,
    pub digests: BucketDigests,
    /// Items whose key falls in one of the `collect` buckets, with their hashes.
    pub collected: Vec<(ItemHash, Item)>,
}

impl FileDigests {
    fn empty(bits: u8) -> Result<Self, DigestError> {
        Ok(FileDigests {
            files: 0,
            items: 0,
            bytes: 0,
            digests: BucketDigests::new(bits)?,
            collected: Vec::new(),
        })
    }

    fn merge(&mut self, other: FileDigests) -> Result<(), DigestError> {
        self.files += other.files;
        self.items += other.items;
        self.bytes += other.bytes;
        self.digests.merge(&other.digests)?;
        self.collected.extend(other.collected);
        Ok(())
    }
}

/// How files are digested.
#[derive(Debug, Clone)]
pub struct DigestOptions {
    /// Partition key attribute, then the sort key attribute if any.
    pub key_attributes: Vec<String>,
    pub bucket_bits: u8,
    /// Files digested at once.
    pub parallelism: usize,
    /// Keep the items of these buckets (the diff phase); empty keeps none.
    pub collect: HashSet<usize>,
    /// Keep only the key attributes of collected items (bounded memory when many buckets
    /// differ), except for the items whose key hash is in `whole_keys`.
    pub key_only: bool,
    pub whole_keys: HashSet<u128>,
    /// Only the `collect` buckets matter (the diff's re-reads): a line whose string key puts it
    /// elsewhere is counted and skipped after reading its key alone
    /// ([`ItemHasher::key_hash_line`]), so `digests` then cover only some of the lines.
    pub collect_only: bool,
}

impl DigestOptions {
    pub fn new(key_attributes: Vec<String>) -> Self {
        DigestOptions {
            key_attributes,
            bucket_bits: DEFAULT_BUCKET_BITS,
            parallelism: DEFAULT_PARALLELISM,
            collect: HashSet::new(),
            key_only: false,
            whole_keys: HashSet::new(),
            collect_only: false,
        }
    }
}

/// Counts the bytes read through it (the compressed input).
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Digests one object's lines from a blocking reader; `.zst` keys are zstd, others gzip.
pub fn digest_reader(
    key: &str,
    reader: impl Read,
    options: &DigestOptions,
) -> Result<FileDigests, VerifyError> {
    let io = |message: &str, source| VerifyError::Io {
        key: key.to_owned(),
        message: message.to_owned(),
        source,
    };
    let mut counting = CountingReader {
        inner: reader,
        count: 0,
    };
    let mut result =
        FileDigests::empty(options.bucket_bits).map_err(|source| VerifyError::Digest {
            key: key.to_owned(),
            line: 0,
            source,
        })?;
    {
        let decoder: Box<dyn Read + '_> = if key.ends_with(".zst") {
            Box::new(
                zstd::stream::read::Decoder::new(&mut counting)
                    .map_err(|e| io("cannot start zstd", e))?,
            )
        } else {
            Box::new(flate2::read::MultiGzDecoder::new(&mut counting))
        };
        let mut lines = BufReader::with_capacity(256 * 1024, decoder);
        let mut hasher = ItemHasher::new(options.key_attributes.clone());
        let mut line = Vec::with_capacity(4096);
        let mut number = 0u64;
        loop {
            line.clear();
            let read = lines
                .read_until(b'\n', &mut line)
                .map_err(|e| io("cannot decompress", e))?;
            if read == 0 {
                break;
            }
            number += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            if options.collect_only {
                let key = hasher.key_hash_line(text);
                if key.is_some_and(|key| !options.collect.contains(&result.digests.bucket_of(key)))
                {
                    result.items += 1;
                    continue;
                }
            }
            // Most lines hash straight from their bytes; the owned parse is for the others
            // (it names what is wrong) and for the items a diff collects.
            let fast = hasher.hash_line(text);
            let hash = match fast {
                Some(hash) => hash,
                None => hasher
                    .hash(&parse_line(key, number, text)?)
                    .map_err(|source| VerifyError::Digest {
                        key: key.to_owned(),
                        line: number,
                        source,
                    })?,
            };
            result.digests.add(hash);
            result.items += 1;
            if !options.collect.is_empty()
                && options
                    .collect
                    .contains(&result.digests.bucket_of(hash.key))
            {
                let item = parse_line(key, number, text)?;
                let item = if options.key_only && !options.whole_keys.contains(&hash.key) {
                    key_only(&options.key_attributes, item)
                } else {
                    item
                };
                result.collected.push((hash, item));
            }
        }
    }
    result.files = 1;
    result.bytes = counting.count;
    Ok(result)
}

fn parse_line(key: &str, line: u64, text: &[u8]) -> Result<Item, VerifyError> {
    parse_item_line(text).map_err(|source| VerifyError::Parse {
        key: key.to_owned(),
        line,
        source,
    })
}

fn key_only(key_attributes: &[String], mut item: Item) -> Item {
    item.attributes
        .retain(|(name, _)| key_attributes.iter().any(|k| k == name));
    item
}

/// Digests `keys` in parallel (at most `options.parallelism` at once) and merges the results.
pub async fn digest_files(
    source: Arc<dyn ObjectSource>,
    keys: &[String],
    options: &DigestOptions,
) -> Result<FileDigests, VerifyError> {
    let options = Arc::new(options.clone());
    let worker_error = |e: DigestError| VerifyError::Worker(e.to_string());
    let mut total = FileDigests::empty(options.bucket_bits).map_err(worker_error)?;
    let mut pending = keys.iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < options.parallelism.max(1) {
            let Some(key) = pending.next() else { break };
            let reader = source.open(key).await?;
            let key = key.clone();
            let options = Arc::clone(&options);
            running.spawn_blocking(move || digest_reader(&key, reader, &options));
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let done = done.map_err(|e| VerifyError::Worker(e.to_string()))??;
        total.merge(done).map_err(worker_error)?;
    }
    Ok(total)
}

// ---- the export side -------------------------------------------------------------------------

/// `runs/<run>/export/<table>/`: where the run's ExportTableToPointInTime writes.
pub fn export_prefix(run: &str, table: &str) -> String {
    format!("runs/{run}/export/{table}/")
}

/// `runs/<run>/verify/report.json`.
pub fn report_key(run: &str) -> String {
    format!("runs/{run}/verify/report.json")
}

/// `runs/<run>/verify/<table>/partials/<batch>.json`.
pub fn partial_key(run: &str, table: &str, batch: u32) -> String {
    format!("runs/{run}/verify/{table}/partials/{batch:05}.json")
}

/// The data files of the export(s) under `prefix`: from `manifest-files.json` when present (AWS
/// writes it), else every `data/*.gz` object (the emulator writes only those).
pub async fn export_data_files(
    source: &dyn ObjectSource,
    prefix: &str,
) -> Result<Vec<String>, VerifyError> {
    let keys = source.list(prefix).await?;
    let manifests: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("/manifest-files.json"))
        .collect();
    if manifests.is_empty() {
        return Ok(keys
            .into_iter()
            .filter(|k| k.contains("/data/") && k.ends_with(".gz"))
            .collect());
    }
    #[derive(Deserialize)]
    struct ManifestLine {
        #[serde(rename = "dataFileS3Key")]
        data_file_s3_key: String,
    }
    let mut files = Vec::new();
    for manifest in manifests {
        let body = source.get(manifest).await?;
        for (index, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            let entry: ManifestLine =
                serde_json::from_slice(line).map_err(|source| VerifyError::Parse {
                    key: manifest.clone(),
                    line: index as u64 + 1,
                    source,
                })?;
            files.push(entry.data_file_s3_key);
        }
    }
    files.sort();
    Ok(files)
}

/// One batch's partial digests, as stored for the diff phase to merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialDigests {
    pub table: String,
    pub key_attributes: Vec<String>,
    pub files: Vec<String>,
    pub items: u64,
    pub bytes: u64,
    pub digests: BucketDigests,
}

/// Digests a batch of export files and stores the partial under [`partial_key`].
pub async fn digest_batch(
    source: Arc<dyn ObjectSource>,
    sink: &dyn ObjectSink,
    run: &str,
    table: &str,
    batch: u32,
    files: &[String],
    options: &DigestOptions,
) -> Result<PartialDigests, VerifyError> {
    let digested = digest_files(source, files, options).await?;
    let partial = PartialDigests {
        table: table.to_owned(),
        key_attributes: options.key_attributes.clone(),
        files: files.to_vec(),
        items: digested.items,
        bytes: digested.bytes,
        digests: digested.digests,
    };
    write_partial(sink, run, batch, &partial).await?;
    Ok(partial)
}

pub async fn write_partial(
    sink: &dyn ObjectSink,
    run: &str,
    batch: u32,
    partial: &PartialDigests,
) -> Result<(), VerifyError> {
    let body = serde_json::to_vec(partial).map_err(|e| VerifyError::Worker(e.to_string()))?;
    sink.put(&partial_key(run, &partial.table, batch), Bytes::from(body))
        .await?;
    Ok(())
}

/// Merges the partials of batches `0..batches` stored for `table` in `run` (by number, so a
/// stale partial of an earlier attempt with more batches is never counted).
pub async fn merge_partials(
    source: &dyn ObjectSource,
    run: &str,
    table: &str,
    bucket_bits: u8,
    batches: u32,
) -> Result<(u64, BucketDigests), VerifyError> {
    let keys = (0..batches).map(|batch| partial_key(run, table, batch));
    merge_digest_objects(
        source,
        keys,
        table,
        bucket_bits,
        |partial: PartialDigests| (partial.items, partial.digests),
    )
    .await
}

// ---- the source side -------------------------------------------------------------------------

/// The source's digests of `table` in `run`: the merged digests of its chunk manifests.
pub async fn source_digests(
    source: &dyn ObjectSource,
    run: &str,
    table: &str,
    bucket_bits: u8,
) -> Result<(u64, BucketDigests), VerifyError> {
    let prefix = format!("runs/{run}/manifests/{table}/");
    let keys = source.list(&prefix).await?;
    if keys.is_empty() {
        return Err(VerifyError::Invalid {
            table: table.to_owned(),
            message: format!(
                "no chunk manifests under {prefix}: was the table bootstrapped in this run?"
            ),
        });
    }
    merge_digest_objects(
        source,
        keys,
        table,
        bucket_bits,
        |manifest: ChunkManifest| (manifest.rows, manifest.digests),
    )
    .await
}

/// Reads each object as JSON of type `T` and merges what `parts` takes from it: a count,
/// summed, and bucket digests, merged.
async fn merge_digest_objects<T: serde::de::DeserializeOwned>(
    source: &dyn ObjectSource,
    keys: impl IntoIterator<Item = String>,
    table: &str,
    bucket_bits: u8,
    parts: impl Fn(T) -> (u64, BucketDigests),
) -> Result<(u64, BucketDigests), VerifyError> {
    let invalid = |message: String| VerifyError::Invalid {
        table: table.to_owned(),
        message,
    };
    let mut digests = BucketDigests::new(bucket_bits).map_err(|e| invalid(e.to_string()))?;
    let mut count = 0;
    for key in keys {
        let body = source.get(&key).await?;
        let object: T = serde_json::from_slice(&body).map_err(|source| VerifyError::Parse {
            key,
            line: 1,
            source,
        })?;
        let (n, part) = parts(object);
        count += n;
        digests.merge(&part).map_err(|e| invalid(e.to_string()))?;
    }
    Ok((count, digests))
}

// ---- the diff and the report -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// In both, with other attribute values (or other attributes).
    Different,
    /// The key is more than once in the source files; the target can hold only one.
    Duplicate,
}

/// One differing key. Never holds attribute values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// `attr=value` of the key attributes, space separated.
    pub key: String,
    /// For `different`: the attributes that differ (added, removed or changed), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// For `duplicate`: how many times the key is in the source files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_copies: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Passed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReport {
    pub table: String,
    pub source_rows: u64,
    pub target_items: u64,
    pub matching: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// Keys present more than once in the source files.
    pub duplicates: u64,
    pub differing_buckets: u64,
    pub tolerance: u64,
    pub verdict: Verdict,
    /// At most the spec's `sample_size` differences, ordered by key.
    pub sample: Vec<Difference>,
}

impl TableReport {
    /// Differences counted against the tolerance.
    pub fn mismatches(&self) -> u64 {
        self.missing + self.extra + self.different + self.duplicates
    }

    /// One line for logs and the CLI.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} — {} source rows, {} target items, {} matching, {} missing, {} extra, \
             {} different, {} duplicate keys (tolerance {})",
            self.table,
            match self.verdict {
                Verdict::Passed => "PASSED",
                Verdict::Failed => "FAILED",
            },
            self.source_rows,
            self.target_items,
            self.matching,
            self.missing,
            self.extra,
            self.different,
            self.duplicates,
            self.tolerance
        )
    }
}

/// `runs/<run>/verify/report.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub run: String,
    pub verdict: Verdict,
    pub tables: Vec<TableReport>,
}

impl VerifyReport {
    pub fn new(run: &str, tables: Vec<TableReport>) -> Self {
        let verdict = if tables.iter().all(|t| t.verdict == Verdict::Passed) {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
        VerifyReport {
            run: run.to_owned(),
            verdict,
            tables,
        }
    }

    pub fn summaries(&self) -> Vec<String> {
        self.tables.iter().map(TableReport::summary).collect()
    }

    /// `Ferry.VerificationFailed` naming every failed table and its counts.
    pub fn to_result(&self) -> Result<(), Error> {
        let failed: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.verdict == Verdict::Failed)
            .map(|t| {
                format!(
                    "{} ({} missing, {} extra, {} different, {} duplicate keys; tolerance {})",
                    t.table, t.missing, t.extra, t.different, t.duplicates, t.tolerance
                )
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::VerificationFailed,
            format!("verification failed: {}", failed.join("; ")),
        ))
    }

    pub async fn write(&self, sink: &dyn ObjectSink) -> Result<(), VerifyError> {
        let body =
            serde_json::to_vec_pretty(self).map_err(|e| VerifyError::Worker(e.to_string()))?;
        sink.put(&report_key(&self.run), Bytes::from(body)).await?;
        Ok(())
    }
}

/// What [`verify_table`] checks, and how.
#[derive(Debug, Clone)]
pub struct TableVerification {
    pub run: String,
    pub table: TableSpec,
    /// Where the export's files are (default [`export_prefix`]).
    pub export_prefix: String,
    pub tolerance: u64,
    pub sample_size: u32,
    pub bucket_bits: u8,
    pub parallelism: usize,
    /// Files per stored partial digest.
    pub files_per_batch: usize,
    /// Up to this many unequal buckets the diff reads whole items in one pass; beyond, it reads
    /// keys and hashes first and then the whole items of the sampled `different` keys only.
    pub whole_item_buckets: usize,
    /// The live target table: with it, the diff reads the target's items of the unequal
    /// buckets by key when the source has at most `lookup_keys` items in them.
    pub lookup: Option<Arc<dyn ItemLookup>>,
    pub lookup_keys: u64,
}

impl TableVerification {
    pub fn new(run: &str, table: &TableSpec, verification: ferry_core::spec::Verification) -> Self {
        TableVerification {
            run: run.to_owned(),
            table: table.clone(),
            export_prefix: export_prefix(run, &table.name),
            tolerance: verification.tolerance,
            sample_size: verification.sample_size,
            bucket_bits: DEFAULT_BUCKET_BITS,
            parallelism: DEFAULT_PARALLELISM,
            files_per_batch: 64,
            whole_item_buckets: DEFAULT_WHOLE_ITEM_BUCKETS,
            lookup: None,
            lookup_keys: DEFAULT_LOOKUP_KEYS,
        }
    }

    /// How this table's files are digested.
    pub fn digest_options(&self) -> DigestOptions {
        let mut options = DigestOptions::new(self.key_attributes());
        options.bucket_bits = self.bucket_bits;
        options.parallelism = self.parallelism;
        options
    }

    fn key_attributes(&self) -> Vec<String> {
        let key = &self.table.key;
        std::iter::once(key.partition.attribute.clone())
            .chain(key.sort.as_ref().map(|s| s.attribute.clone()))
            .collect()
    }
}

/// All phases for one table: digest the export in batches (partials stored), merge them, merge
/// the source manifests, and diff the unequal buckets. Manifests, bootstrap files, exports and
/// partials are all read from `objects` (the run bucket).
pub async fn verify_table(
    objects: Arc<dyn ObjectSource>,
    sink: &dyn ObjectSink,
    request: &TableVerification,
) -> Result<TableReport, VerifyError> {
    verify_table_against(Arc::clone(&objects), objects, sink, request).await
}

/// [`verify_table`] with the source side (chunk manifests and data files under
/// `runs/<run>/...`) read from `source` and the exports and partials from `source_of_target`:
/// the independent mode re-extracts the source with [`reextract_source`] into a scratch
/// directory and passes a [`LocalDirSource`] on it here.
pub async fn verify_table_against(
    source: Arc<dyn ObjectSource>,
    target: Arc<dyn ObjectSource>,
    sink: &dyn ObjectSink,
    request: &TableVerification,
) -> Result<TableReport, VerifyError> {
    let options = request.digest_options();
    let export_files = export_data_files(target.as_ref(), &request.export_prefix).await?;
    let batches = export_files.chunks(request.files_per_batch.max(1));
    let batch_count = batches.len() as u32;
    for (batch, files) in batches.enumerate() {
        digest_batch(
            Arc::clone(&target),
            sink,
            &request.run,
            &request.table.name,
            batch as u32,
            files,
            &options,
        )
        .await?;
    }
    diff_table(source, target, request, &export_files, batch_count).await
}

/// The diff phase alone, after the `batch_count` partials of `export_files` were stored by
/// [`digest_batch`] (for a state machine: a Map over batches, then this one task).
pub async fn diff_table(
    source: Arc<dyn ObjectSource>,
    target: Arc<dyn ObjectSource>,
    request: &TableVerification,
    export_files: &[String],
    batch_count: u32,
) -> Result<TableReport, VerifyError> {
    let table = &request.table.name;
    let mut options = request.digest_options();
    let (target_items, target_side) = merge_partials(
        target.as_ref(),
        &request.run,
        table,
        request.bucket_bits,
        batch_count,
    )
    .await?;
    let (source_rows, source_side) =
        source_digests(source.as_ref(), &request.run, table, request.bucket_bits).await?;

    let differing = source_side.differing_buckets(&target_side);
    let mut report = TableReport {
        table: table.clone(),
        source_rows,
        target_items,
        matching: target_items,
        missing: 0,
        extra: 0,
        different: 0,
        duplicates: 0,
        differing_buckets: differing.len() as u64,
        tolerance: request.tolerance,
        verdict: Verdict::Passed,
        sample: Vec::new(),
    };
    if !differing.is_empty() {
        // Pass 1: keys and hashes of every item in the unequal buckets, on both sides.
        // Whole items when few buckets differ (each holds 1/2^bits of the table); only keys
        // and hashes when many do (a failed import), so memory stays bounded.
        options.key_only = differing.len() > request.whole_item_buckets;
        options.collect = differing.into_iter().collect();
        options.collect_only = true;
        let source_files: Vec<String> = source
            .list(&Chunk::data_prefix(&request.run, table))
            .await?;
        let keys_in_unequal: u64 = options
            .collect
            .iter()
            .map(|&b| source_side.buckets()[b].count)
            .sum();
        let lookup = request
            .lookup
            .as_ref()
            .filter(|_| !options.key_only && keys_in_unequal <= request.lookup_keys);
        let (source_collected, target_collected) = match lookup {
            // The source's items, then the target's by key (no export re-read when they agree
            // with the export's digests).
            Some(lookup) => {
                let source_items =
                    digest_files(Arc::clone(&source), &source_files, &options).await?;
                let looked_up = target_by_key(
                    lookup.as_ref(),
                    &options,
                    &source_items.collected,
                    &target_side,
                )
                .await;
                let target_collected = match looked_up {
                    Some(items) => items,
                    None => {
                        digest_files(Arc::clone(&target), export_files, &options)
                            .await?
                            .collected
                    }
                };
                (source_items.collected, target_collected)
            }
            // Both sides at once: with S3 the downloads overlap.
            None => {
                let (source_items, target_items) = tokio::try_join!(
                    digest_files(Arc::clone(&source), &source_files, &options),
                    digest_files(Arc::clone(&target), export_files, &options),
                )?;
                (source_items.collected, target_items.collected)
            }
        };
        let mut differences =
            classify_keyed(&options.key_attributes, source_collected, target_collected);
        for (_, difference) in &differences {
            match difference.kind {
                DifferenceKind::Missing => report.missing += 1,
                DifferenceKind::Extra => report.extra += 1,
                DifferenceKind::Different => report.different += 1,
                DifferenceKind::Duplicate => report.duplicates += 1,
            }
        }
        differences.truncate(request.sample_size as usize);
        // Pass 2: the whole items of the sampled `different` keys, for their attribute names.
        options.whole_keys = differences
            .iter()
            .filter(|(_, d)| d.kind == DifferenceKind::Different)
            .map(|(key, _)| *key)
            .collect();
        if options.key_only && !options.whole_keys.is_empty() {
            let whole = |collected: Vec<(ItemHash, Item)>, wanted: &HashSet<u128>| {
                collected
                    .into_iter()
                    .filter(|(hash, _)| wanted.contains(&hash.key))
                    .map(|(hash, item)| (hash.key, item))
                    .collect::<HashMap<u128, Item>>()
            };
            let source_whole = whole(
                digest_files(Arc::clone(&source), &source_files, &options)
                    .await?
                    .collected,
                &options.whole_keys,
            );
            let target_whole = whole(
                digest_files(Arc::clone(&target), export_files, &options)
                    .await?
                    .collected,
                &options.whole_keys,
            );
            for (key, difference) in &mut differences {
                if let (Some(a), Some(b)) = (source_whole.get(key), target_whole.get(key)) {
                    difference.attributes = differing_attributes(a, b);
                }
            }
        }
        report.sample = differences.into_iter().map(|(_, d)| d).collect();
        report.matching = report
            .target_items
            .saturating_sub(report.extra + report.different);
    }
    if report.mismatches() > report.tolerance {
        report.verdict = Verdict::Failed;
    }
    Ok(report)
}

/// The target's items of the unequal buckets (`options.collect`), read by the keys of the
/// source's items there, hashed; `None` (re-read the export) when the lookup fails or the
/// fetched items do not give the export's digest of every one of those buckets: the target
/// holds a key the source lacks, or the table changed since its export.
async fn target_by_key(
    lookup: &dyn ItemLookup,
    options: &DigestOptions,
    source_items: &[(ItemHash, Item)],
    target_side: &BucketDigests,
) -> Option<Vec<(ItemHash, Item)>> {
    let mut keys: Vec<Item> = Vec::new();
    let mut seen = HashSet::new();
    for (hash, item) in source_items {
        if seen.insert(hash.key) {
            keys.push(key_only(&options.key_attributes, item.clone()));
        }
    }
    let fetched = match lookup.get_items(&keys).await {
        Ok(fetched) => fetched,
        Err(err) => {
            tracing::warn!("reading the target by key failed, re-reading the export: {err}");
            return None;
        }
    };
    let mut hasher = ItemHasher::new(options.key_attributes.clone());
    let mut digests = BucketDigests::new(target_side.bits()).ok()?;
    let mut hashed = Vec::with_capacity(fetched.len());
    for item in fetched {
        let hash = hasher.hash(&item).ok()?;
        digests.add(hash);
        hashed.push((hash, item));
    }
    let agrees = options
        .collect
        .iter()
        .all(|&b| digests.buckets()[b] == target_side.buckets()[b]);
    if !agrees {
        tracing::info!("the target's items by key differ from its export: re-reading the export");
    }
    agrees.then_some(hashed)
}

/// Verifies every table and writes the report to [`report_key`].
pub async fn verify_run(
    source: Arc<dyn ObjectSource>,
    sink: &dyn ObjectSink,
    run: &str,
    requests: &[TableVerification],
) -> Result<VerifyReport, VerifyError> {
    let mut tables = Vec::with_capacity(requests.len());
    for request in requests {
        tables.push(verify_table(Arc::clone(&source), sink, request).await?);
    }
    let report = VerifyReport::new(run, tables);
    report.write(sink).await?;
    Ok(report)
}

/// The independent source side: re-reads `table` from PostgreSQL through the mapping (one chunk
/// per call, the whole table by default) into `scratch` with the bootstrap's own layout
/// (`runs/<run>/bootstrap/...` and `runs/<run>/manifests/...`), for when the import files are
/// gone or the target was loaded some other way. Pass `LocalDirSource::new(scratch)` as the
/// source of [`verify_table_against`] afterwards.
pub async fn reextract_source(
    client: &tokio_postgres::Client,
    table: &crate::extract::SourceTable,
    mapper: &crate::item::ItemMapper,
    chunk: &Chunk,
    scratch: &std::path::Path,
) -> Result<ChunkManifest, Error> {
    let sink = crate::sink::LocalDirSink::new(scratch);
    let options = crate::extract::ExtractOptions::default();
    crate::extract::extract_chunk(client, table, mapper, chunk, &options, &sink)
        .await
        .map_err(Error::from)
}

/// Compares the items of the differing buckets, key by key, ordered by key text. Attribute
/// names are given for `different` keys whose items were collected whole.
pub fn classify(
    key_attributes: &[String],
    source: Vec<(ItemHash, Item)>,
    target: Vec<(ItemHash, Item)>,
) -> Vec<Difference> {
    classify_keyed(key_attributes, source, target)
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

/// [`classify`], each difference with its key hash.
fn classify_keyed(
    key_attributes: &[String],
    source: Vec<(ItemHash, Item)>,
    target: Vec<(ItemHash, Item)>,
) -> Vec<(u128, Difference)> {
    #[derive(Default)]
    struct Sides {
        source: Vec<(u128, Item)>,
        target: Vec<(u128, Item)>,
    }
    // Grouped by key hash (numbers in keys compare canonically), listed by key text.
    let mut by_key: HashMap<u128, Sides> = HashMap::new();
    for (hash, item) in source {
        by_key
            .entry(hash.key)
            .or_default()
            .source
            .push((hash.item, item));
    }
    for (hash, item) in target {
        by_key
            .entry(hash.key)
            .or_default()
            .target
            .push((hash.item, item));
    }
    let by_text: BTreeMap<String, (u128, Sides)> = by_key
        .into_iter()
        .map(|(key_hash, sides)| {
            let first = sides.source.first().or(sides.target.first());
            let text = first.map_or_else(String::new, |(_, item)| key_text(key_attributes, item));
            (text, (key_hash, sides))
        })
        .collect();
    let mut differences = Vec::new();
    for (key, (key_hash, sides)) in by_text {
        let difference = |kind, attributes, source_copies| {
            (
                key_hash,
                Difference {
                    kind,
                    key: key.clone(),
                    attributes,
                    source_copies,
                },
            )
        };
        match (sides.source.len(), sides.target.len()) {
            // Whatever the target holds, two source items cannot both have arrived.
            (copies, _) if copies > 1 => differences.push(difference(
                DifferenceKind::Duplicate,
                Vec::new(),
                Some(copies as u64),
            )),
            (0, _) => differences.push(difference(DifferenceKind::Extra, Vec::new(), None)),
            (_, 0) => differences.push(difference(DifferenceKind::Missing, Vec::new(), None)),
            (1, 1) => {
                let (source_hash, source_item) = &sides.source[0];
                let (target_hash, target_item) = &sides.target[0];
                if source_hash != target_hash {
                    differences.push(difference(
                        DifferenceKind::Different,
                        differing_attributes(source_item, target_item),
                        None,
                    ));
                }
            }
            // One source item, several target items: the target has extra copies.
            _ => differences.push(difference(DifferenceKind::Extra, Vec::new(), None)),
        }
    }
    differences
}

/// Names of the attributes added, removed or changed between two items, compared canonically
/// (so `1.5` and `1.50` are equal, `N` and `S` are not).
pub fn differing_attributes(source: &Item, target: &Item) -> Vec<String> {
    let canonical = |name: &str, value: &AttributeValue| {
        ItemHasher::canonical_bytes(&Item {
            attributes: vec![(name.to_owned(), value.clone())],
        })
        .ok()
    };
    let mut names: Vec<String> = Vec::new();
    for (name, value) in &source.attributes {
        match target.get(name) {
            Some(other) if canonical(name, value) == canonical(name, other) => {}
            _ => names.push(name.clone()),
        }
    }
    for (name, _) in &target.attributes {
        if source.get(name).is_none() {
            names.push(name.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// `pk=HOTEL#1 sk=DATE#2026-01-01`: key attributes only (numbers as spelled, binary base64).
pub fn key_text(key_attributes: &[String], item: &Item) -> String {
    key_attributes
        .iter()
        .map(|name| {
            let value = match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                Some(AttributeValue::N(n)) => n.clone(),
                Some(AttributeValue::B(b)) => base64::engine::general_purpose::STANDARD.encode(b),
                Some(_) => "<not a key type>".to_owned(),
                None => "<absent>".to_owned(),
            };
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::ItemWriter;
    use ferry_core::spec::Compression;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn item(pk: &str, amount: AttributeValue) -> Item {
        Item {
            attributes: vec![("pk".into(), s(pk)), ("amount".into(), amount)],
        }
    }
    fn hashed(items: Vec<Item>) -> Vec<(ItemHash, Item)> {
        let mut hasher = ItemHasher::new(vec!["pk".into()]);
        items
            .into_iter()
            .map(|i| (hasher.hash(&i).unwrap(), i))
            .collect()
    }

    #[test]
    fn classify_names_every_kind() {
        let source = hashed(vec![
            item("same", n("1.5")),
            item("respelled", n("1.5")),
            item("missing", n("1")),
            item("changed", n("1.5")),
            item("dup", n("1")),
            item("dup", n("2")),
            item("dup-gone", n("1")),
            item("dup-gone", n("1")),
        ]);
        let target = hashed(vec![
            item("same", n("1.5")),
            item("respelled", n("1.50")),
            item("extra", n("1")),
            item("changed", s("1.5")),
            item("dup", n("2")),
        ]);
        let differences = classify(&["pk".into()], source, target);
        let kinds: Vec<(String, DifferenceKind, Vec<String>)> = differences
            .into_iter()
            .map(|d| (d.key, d.kind, d.attributes))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    "pk=changed".into(),
                    DifferenceKind::Different,
                    vec!["amount".into()]
                ),
                ("pk=dup".into(), DifferenceKind::Duplicate, vec![]),
                ("pk=dup-gone".into(), DifferenceKind::Duplicate, vec![]),
                ("pk=extra".into(), DifferenceKind::Extra, vec![]),
                ("pk=missing".into(), DifferenceKind::Missing, vec![]),
            ]
        );
    }

    #[test]
    fn a_file_digests_like_its_items_whatever_the_codec() {
        let items: Vec<Item> = (0..500)
            .map(|i| item(&format!("K#{i}"), n(&format!("{i}.50"))))
            .collect();
        let mut expected = BucketDigests::new(DEFAULT_BUCKET_BITS).unwrap();
        let mut hasher = ItemHasher::new(vec!["pk".into()]);
        for it in &items {
            expected.add(hasher.hash(it).unwrap());
        }
        for (codec, key) in [
            (Compression::Gzip, "a.json.gz"),
            (Compression::Zstd, "a.json.zst"),
        ] {
            let mut writer = ItemWriter::new(codec).unwrap();
            let mut bytes = Vec::new();
            for it in &items {
                writer.write_item(it).unwrap();
                if let Some(ready) = writer.take_ready() {
                    bytes.extend_from_slice(&ready);
                }
            }
            bytes.extend_from_slice(&writer.finish().unwrap().0);
            let mut options = DigestOptions::new(vec!["pk".into()]);
            options
                .collect
                .insert(expected.bucket_of(hasher.hash(&items[7]).unwrap().key));
            let digested = digest_reader(key, bytes.as_slice(), &options).unwrap();
            assert_eq!(digested.items, 500);
            assert_eq!(digested.bytes, bytes.len() as u64);
            assert_eq!(digested.digests, expected);
            assert!(digested.collected.iter().any(|(_, i)| i == &items[7]));
        }
    }

    #[tokio::test]
    async fn export_files_come_from_manifest_files_json_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let export = root.join("runs/R/export/T/AWSDynamoDB/01/");
        std::fs::create_dir_all(export.join("data")).unwrap();
        for name in ["a.json.gz", "b.json.gz", "stray.json.gz"] {
            std::fs::write(export.join("data").join(name), b"").unwrap();
        }
        let source = LocalDirSource::new(root);
        let listed = export_data_files(&source, "runs/R/export/T/")
            .await
            .unwrap();
        assert_eq!(listed.len(), 3, "no manifest: every data file");
        std::fs::write(
            export.join("manifest-files.json"),
            concat!(
                r#"{"itemCount":1,"md5Checksum":"x","etag":"y","dataFileS3Key":"runs/R/export/T/AWSDynamoDB/01/data/b.json.gz"}"#,
                "\n",
                r#"{"itemCount":1,"md5Checksum":"x","etag":"y","dataFileS3Key":"runs/R/export/T/AWSDynamoDB/01/data/a.json.gz"}"#,
                "\n"
            ),
        )
        .unwrap();
        let listed = export_data_files(&source, "runs/R/export/T/")
            .await
            .unwrap();
        assert_eq!(
            listed,
            vec![
                "runs/R/export/T/AWSDynamoDB/01/data/a.json.gz".to_owned(),
                "runs/R/export/T/AWSDynamoDB/01/data/b.json.gz".to_owned()
            ]
        );
    }

    #[test]
    fn a_bad_line_names_the_object_and_line() {
        let mut writer = ItemWriter::new(Compression::Gzip).unwrap();
        writer.write_item(&item("a", n("1"))).unwrap();
        let mut bytes = writer.finish().unwrap().0.to_vec();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, b"{\"Item\":{\"pk\":{\"S\":1}}}\n").unwrap();
        bytes.extend_from_slice(&encoder.finish().unwrap());
        let err = digest_reader(
            "x.gz",
            bytes.as_slice(),
            &DigestOptions::new(vec!["pk".into()]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("object x.gz, line 2"), "{err}");
    }

    #[test]
    fn a_failed_report_is_verification_failed_naming_tables_and_counts() {
        let table = |name: &str, missing: u64, verdict| TableReport {
            table: name.into(),
            source_rows: 10,
            target_items: 10 - missing,
            matching: 10 - missing,
            missing,
            extra: 0,
            different: 0,
            duplicates: 0,
            differing_buckets: missing,
            tolerance: 0,
            verdict,
            sample: vec![],
        };
        let report = VerifyReport::new(
            "R1",
            vec![
                table("Good", 0, Verdict::Passed),
                table("Bad", 2, Verdict::Failed),
            ],
        );
        assert_eq!(report.verdict, Verdict::Failed);
        let err = report.to_result().unwrap_err();
        assert_eq!(err.code(), ErrorCode::VerificationFailed);
        assert_eq!(
            err.message(),
            "verification failed: Bad (2 missing, 0 extra, 0 different, 0 duplicate keys; tolerance 0)"
        );
        assert!(report.summaries()[1].starts_with("Bad: FAILED — 10 source rows, 8 target items"));
    }
}
