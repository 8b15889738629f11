//! The planner: splits each table × shard into chunks of ctid block ranges (PostgreSQL 14+ scans a
//! TID range without reading the rest of the table; a clone takes no writes, so the ranges are
//! stable). Sizes come from the catalogue: the relation's size in blocks and `reltuples`.
//!
//! The last chunk of a shard has no upper bound, so rows in blocks added after planning (or beyond
//! a stale size) are still read. A table with a `chunk_key` (an integer column) is cut into ranges
//! of that column's values instead, as many as the block plan would make: the first range is
//! open below and takes the NULLs, the last is open above. One DynamoDB import reads at most [`MAX_IMPORT_OBJECTS`]
//! objects, so a table's chunks over all shards never exceed it: chunks grow instead.

use ferry_core::spec::{Compression, TableSpec};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use bytes::Bytes;

use crate::encode;
use crate::extract::{ExtractError, SourceTable};
use crate::sink::{ObjectSink, SinkError};

/// ImportTable reads at most this many objects.
pub const MAX_IMPORT_OBJECTS: u64 = 50_000;
/// Chunk size when the spec gives none: heap megabytes per chunk.
pub const DEFAULT_CHUNK_TARGET_MB: u64 = 128;

/// One unit of bootstrap work: rows of one table in one shard, in a block range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub run: String,
    /// The spec's table name (the DynamoDB table without its prefix).
    pub table: String,
    pub shard: String,
    pub chunk: u32,
    /// First heap block, inclusive.
    pub start_block: u64,
    /// Last heap block, exclusive; `None` reads to the end of the table.
    pub end_block: Option<u64>,
    pub compression: Compression,
    /// With a `chunk_key`: the chunk's range of key values (then the block range is whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_range: Option<KeyRange>,
}

/// Values of an integer column: `start <= key < end`; an open start also takes the NULLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub column: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Chunk {
    /// Chunk 0 of a shard, reading all of it.
    pub fn whole(run: &str, table: &str, shard: &str, compression: Compression) -> Chunk {
        Chunk {
            run: run.to_owned(),
            table: table.to_owned(),
            shard: shard.to_owned(),
            chunk: 0,
            start_block: 0,
            end_block: None,
            compression,
            key_range: None,
        }
    }

    /// Where ImportTable reads this table's data objects from: `runs/<run>/bootstrap/<table>/`.
    pub fn data_prefix(run: &str, table: &str) -> String {
        format!("runs/{run}/bootstrap/{table}/")
    }

    /// `runs/<run>/bootstrap/<table>/<shard>-<chunk>.json.gz`: deterministic, so a retried
    /// chunk overwrites its own object.
    pub fn object_key(&self) -> String {
        format!(
            "{}{}-{:05}.{}",
            Self::data_prefix(&self.run, &self.table),
            self.shard,
            self.chunk,
            encode::extension(self.compression)
        )
    }

    /// `runs/<run>/manifests/<table>/<shard>-<chunk>.json`: outside the data prefix, because
    /// ImportTable would try to read anything under it as items.
    pub fn manifest_key(&self) -> String {
        format!(
            "runs/{}/manifests/{}/{}-{:05}.json",
            self.run, self.table, self.shard, self.chunk
        )
    }

    /// Checks that the names that go into object keys cannot escape their prefix.
    pub fn check_names(&self) -> Result<(), String> {
        for (what, name) in [
            ("run", &self.run),
            ("table", &self.table),
            ("shard", &self.shard),
        ] {
            let safe = !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains(['/', '\\'])
                && !name.chars().any(char::is_control);
            if !safe {
                return Err(format!(
                    "{what} name \"{name}\" cannot be part of an object key"
                ));
            }
        }
        Ok(())
    }
}

/// How big a table is in one shard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TableSize {
    pub blocks: u64,
    pub block_size: u64,
    /// `pg_class.reltuples`: -1 when never analysed.
    pub rows_estimate: f64,
}

/// Reads the table's size: blocks from `pg_relation_size` (exact, unlike a stale `relpages`).
pub async fn table_size(client: &Client, table: &SourceTable) -> Result<TableSize, ExtractError> {
    let row = client
        .query_one(
            "SELECT pg_relation_size(c.oid)::bigint, current_setting('block_size')::bigint, \
                    c.reltuples::float8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(|source| ExtractError::source(&table.qualified(), source))?;
    let bytes: i64 = row.get(0);
    let block_size: i64 = row.get(1);
    Ok(TableSize {
        blocks: (bytes / block_size.max(1)) as u64,
        block_size: block_size as u64,
        rows_estimate: row.get(2),
    })
}

/// Chunks for one table over its shards (`shards`: name and size), each about `target_mb` of
/// heap, at most [`MAX_IMPORT_OBJECTS`] in all.
pub fn plan_table(
    run: &str,
    spec: &TableSpec,
    shards: &[(String, TableSize)],
) -> Result<Vec<Chunk>, String> {
    check_shard_count(spec, shards.len())?;
    let target_mb = spec
        .chunk_target_mb
        .unwrap_or(DEFAULT_CHUNK_TARGET_MB)
        .max(1);
    let mut blocks_per_chunk: u64 = shards
        .iter()
        .map(|(_, size)| (target_mb << 20) / size.block_size.max(1))
        .max()
        .unwrap_or(1)
        .max(1);
    let count = |per: u64| -> u64 {
        shards
            .iter()
            .map(|(_, size)| size.blocks.div_ceil(per).max(1))
            .sum()
    };
    while count(blocks_per_chunk) > MAX_IMPORT_OBJECTS {
        blocks_per_chunk *= 2;
    }
    let mut chunks = Vec::new();
    for (shard, size) in shards {
        let n = size.blocks.div_ceil(blocks_per_chunk).max(1);
        for i in 0..n {
            let chunk = Chunk {
                chunk: i as u32,
                start_block: i * blocks_per_chunk,
                end_block: (i + 1 < n).then_some((i + 1) * blocks_per_chunk),
                ..Chunk::whole(run, &spec.name, shard, spec.compression)
            };
            chunk.check_names()?;
            chunks.push(chunk);
        }
    }
    Ok(chunks)
}

/// A shard's integer chunk key: its smallest and largest non-NULL value, and PostgreSQL's
/// equal-frequency histogram of it (`pg_stats.histogram_bounds`; empty without statistics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBounds {
    pub low: i64,
    pub high: i64,
    pub histogram: Vec<i64>,
}

impl KeyBounds {
    /// Bounds without a histogram (even cuts).
    pub fn even(low: i64, high: i64) -> KeyBounds {
        KeyBounds {
            low,
            high,
            histogram: Vec::new(),
        }
    }

    /// Up to `n - 1` increasing cut points inside `(low, high]`: from the histogram when it has
    /// at least `n` buckets (ranges of about equal rows, whatever the skew), else `[low, high]`
    /// cut into equal widths.
    fn cuts(&self, n: usize) -> Vec<i64> {
        let (low, high) = (self.low, self.high);
        let buckets = self.histogram.len().saturating_sub(1);
        let mut cuts: Vec<i64> = if n > 1 && buckets >= n {
            (1..n).map(|i| self.histogram[i * buckets / n]).collect()
        } else {
            // i128: the span of two i64 does not fit an i64.
            let n = n as i128;
            let span = i128::from(high) - i128::from(low) + 1;
            let width = ((span + n - 1) / n).max(1);
            (1..n)
                .map_while(|i| i64::try_from(i128::from(low) + i * width).ok())
                .collect()
        };
        cuts.retain(|cut| *cut > low && *cut <= high);
        cuts.dedup();
        cuts
    }
}

/// The key-range plan of a table with a `chunk_key`: per shard, as many chunks as
/// [`plan_table`] makes, cutting the shard's key at its histogram's quantiles (or its
/// `[min, max]` into equal ranges when it has no statistics). `bounds` holds each shard's
/// [`KeyBounds`] (`None`: no non-NULL key, one whole chunk). The first range is open below
/// (and takes the NULL keys), the last open above, so stale statistics move rows between
/// chunks but never lose or repeat one.
pub fn plan_table_by_key(
    run: &str,
    spec: &TableSpec,
    shards: &[(String, TableSize)],
    bounds: &[Option<KeyBounds>],
) -> Result<Vec<Chunk>, String> {
    let column = spec
        .chunk_key
        .clone()
        .ok_or_else(|| format!("table \"{}\" has no chunk_key", spec.name))?;
    let by_blocks = plan_table(run, spec, shards)?;
    let mut chunks = Vec::new();
    for ((shard, _), bounds) in shards.iter().zip(bounds) {
        let n = by_blocks.iter().filter(|c| &c.shard == shard).count();
        let whole = Chunk::whole(run, &spec.name, shard, spec.compression);
        let Some(bounds) = bounds else {
            chunks.push(whole);
            continue;
        };
        let cuts = bounds.cuts(n);
        for i in 0..=cuts.len() {
            chunks.push(Chunk {
                chunk: i as u32,
                key_range: Some(KeyRange {
                    column: column.clone(),
                    start: i.checked_sub(1).map(|before| cuts[before]),
                    end: cuts.get(i).copied(),
                }),
                ..whole.clone()
            });
        }
    }
    Ok(chunks)
}

/// The smallest and largest non-NULL value of the integer column `column` and its histogram
/// from `pg_stats` (empty when the table was never analysed); `None` when it has no non-NULL
/// value. Refuses a column that is not smallint, integer or bigint.
pub async fn key_bounds(
    client: &Client,
    table: &SourceTable,
    column: &str,
) -> Result<Option<KeyBounds>, ExtractError> {
    let invalid = |message: String| ExtractError::Invalid {
        table: table.qualified(),
        message,
    };
    let source = table
        .columns
        .iter()
        .find(|c| c.name == column)
        .ok_or_else(|| {
            invalid(format!(
                "chunk_key names column \"{column}\", which the table does not have"
            ))
        })?;
    if !matches!(source.type_name.as_str(), "int2" | "int4" | "int8") {
        return Err(invalid(format!(
            "chunk_key \"{column}\" is {}, not an integer column",
            source.type_name
        )));
    }
    let quoted = crate::extract::quote_ident(column);
    let source_error = |source| ExtractError::source(&table.qualified(), source);
    let row = client
        .query_one(
            &format!(
                "SELECT min({quoted})::bigint, max({quoted})::bigint FROM {}",
                table.qualified()
            ),
            &[],
        )
        .await
        .map_err(source_error)?;
    let (low, high): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    let Some((low, high)) = low.zip(high) else {
        return Ok(None);
    };
    let histogram: Option<String> = client
        .query_opt(
            "SELECT histogram_bounds::text FROM pg_stats \
             WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
            &[&table.schema, &table.name, &column],
        )
        .await
        .map_err(source_error)?
        .and_then(|row| row.get(0));
    Ok(Some(KeyBounds {
        low,
        high,
        histogram: histogram.map_or_else(Vec::new, |text| parse_histogram(&text)),
    }))
}

/// `{1,5,9}` → `[1, 5, 9]`; anything else (or a value that is not an integer) → empty.
fn parse_histogram(text: &str) -> Vec<i64> {
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return Vec::new();
    };
    inner
        .split(',')
        .map(|value| value.trim().parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// Every shard gives at least one object, and one import reads at most [`MAX_IMPORT_OBJECTS`].
fn check_shard_count(spec: &TableSpec, shards: usize) -> Result<(), String> {
    if shards as u64 > MAX_IMPORT_OBJECTS {
        return Err(format!(
            "table \"{}\" has {shards} shards, more than the {MAX_IMPORT_OBJECTS} objects one import reads",
            spec.name
        ));
    }
    Ok(())
}

/// One chunk per shard, each reading the whole source: what a `query` source gets, since a
/// query has no ctid to cut by.
pub fn plan_whole(run: &str, spec: &TableSpec, shards: &[String]) -> Result<Vec<Chunk>, String> {
    check_shard_count(spec, shards.len())?;
    shards
        .iter()
        .map(|shard| {
            let chunk = Chunk::whole(run, &spec.name, shard, spec.compression);
            chunk.check_names()?;
            Ok(chunk)
        })
        .collect()
}

/// The chunk list as a JSON array, what a Distributed Map's ItemReader (`InputType: JSON`)
/// reads: each element is one iteration's item.
pub fn chunk_list_json(chunks: &[Chunk]) -> Vec<u8> {
    serde_json::to_vec(chunks).expect("chunks serialise")
}

/// `runs/<run>/plan/<list>.json`: where a chunk list goes (one per domain in a run).
pub fn chunk_list_key(run: &str, list: &str) -> String {
    format!("runs/{run}/plan/{list}.json")
}

/// Writes a chunk list for the Distributed Map's ItemReader; returns its key.
pub async fn write_chunk_list(
    sink: &dyn ObjectSink,
    run: &str,
    list: &str,
    chunks: &[Chunk],
) -> Result<String, SinkError> {
    let key = chunk_list_key(run, list);
    sink.put(&key, Bytes::from(chunk_list_json(chunks))).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target_mb: Option<u64>) -> TableSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/rates-availability.toml"
        ))
        .unwrap();
        let mut table = ferry_core::Spec::from_toml_str(&text).unwrap().tables[0].clone();
        table.chunk_target_mb = target_mb;
        table
    }

    fn size(blocks: u64) -> TableSize {
        TableSize {
            blocks,
            block_size: 8192,
            rows_estimate: blocks as f64 * 100.0,
        }
    }

    #[test]
    fn chunks_cover_every_block_once() {
        // 1 MiB chunks = 128 blocks.
        let shards = vec![
            ("p-01".to_string(), size(300)),
            ("p-02".to_string(), size(0)),
        ];
        let chunks = plan_table("01RUN", &spec(Some(1)), &shards).unwrap();
        let ranges: Vec<_> = chunks
            .iter()
            .map(|c| (c.shard.as_str(), c.chunk, c.start_block, c.end_block))
            .collect();
        assert_eq!(
            ranges,
            [
                ("p-01", 0, 0, Some(128)),
                ("p-01", 1, 128, Some(256)),
                ("p-01", 2, 256, None),
                ("p-02", 0, 0, None),
            ]
        );
        assert_eq!(
            chunks[1].object_key(),
            "runs/01RUN/bootstrap/BaseRate/p-01-00001.json.gz"
        );
        assert_eq!(
            chunks[1].manifest_key(),
            "runs/01RUN/manifests/BaseRate/p-01-00001.json"
        );
        let back: Vec<Chunk> = serde_json::from_slice(&chunk_list_json(&chunks)).unwrap();
        assert_eq!(back, chunks);
    }

    #[test]
    fn histogram_cuts_follow_the_quantiles() {
        // 100 buckets: 99 of them below 100, one up to a million.
        let mut histogram: Vec<i64> = (1..=100).collect();
        histogram.push(1_000_000);
        let skewed = KeyBounds {
            low: 1,
            high: 1_000_000,
            histogram,
        };
        assert_eq!(skewed.cuts(4), [26, 51, 76]);
        assert_eq!(skewed.cuts(1), Vec::<i64>::new());
        // Fewer buckets than chunks: equal widths instead.
        let few = KeyBounds {
            histogram: vec![1, 5, 1_000_000],
            ..skewed.clone()
        };
        assert_eq!(few.cuts(4), KeyBounds::even(1, 1_000_000).cuts(4));
        assert_eq!(few.cuts(4), [250_001, 500_001, 750_001]);
        // Repeated bounds give one cut; cuts at or below the minimum (stale statistics) and
        // above the maximum are dropped.
        let stale = KeyBounds {
            low: 50,
            high: 60,
            histogram: vec![1, 7, 7, 7, 55, 55, 99, 200, 300],
        };
        assert_eq!(stale.cuts(8), [55]);
        assert_eq!(parse_histogram("{1,5,-9}"), [1, 5, -9]);
        assert_eq!(parse_histogram("{1,x}"), Vec::<i64>::new());
        assert_eq!(parse_histogram(""), Vec::<i64>::new());
    }

    #[test]
    fn key_ranges_are_contiguous_open_at_both_ends_and_never_overflow() {
        let mut table = spec(Some(1));
        table.chunk_key = Some("hotel_id".into());
        let shards = vec![
            ("p-01".to_string(), size(300)),
            ("p-02".to_string(), size(300)),
            ("p-03".to_string(), size(0)),
        ];
        let bounds = [
            Some(KeyBounds::even(10, 99)),
            Some(KeyBounds::even(i64::MIN, i64::MAX)),
            None,
        ];
        let chunks = plan_table_by_key("01RUN", &table, &shards, &bounds).unwrap();
        let ranges: Vec<_> = chunks
            .iter()
            .map(|c| {
                let r = c.key_range.as_ref();
                (
                    c.shard.as_str(),
                    c.chunk,
                    r.and_then(|r| r.start),
                    r.and_then(|r| r.end),
                )
            })
            .collect();
        assert_eq!(
            ranges,
            [
                ("p-01", 0, None, Some(40)),
                ("p-01", 1, Some(40), Some(70)),
                ("p-01", 2, Some(70), None),
                // 2^64 values in 3 ranges of ceil(2^64 / 3) = 6,148,914,691,236,517,206.
                ("p-02", 0, None, Some(-3_074_457_345_618_258_602)),
                (
                    "p-02",
                    1,
                    Some(-3_074_457_345_618_258_602),
                    Some(3_074_457_345_618_258_604)
                ),
                ("p-02", 2, Some(3_074_457_345_618_258_604), None),
                ("p-03", 0, None, None),
            ]
        );
        assert!(chunks[..6]
            .iter()
            .all(|c| c.start_block == 0 && c.end_block.is_none()));
        assert_eq!(
            chunks[6],
            Chunk::whole("01RUN", "BaseRate", "p-03", table.compression)
        );
        let back: Vec<Chunk> = serde_json::from_slice(&chunk_list_json(&chunks)).unwrap();
        assert_eq!(back, chunks);
        // A chunk list without key ranges (written before they existed) still reads.
        let old = r#"[{"run":"r","table":"t","shard":"s","chunk":0,"start_block":0,"end_block":null,"compression":"gzip"}]"#;
        let old: Vec<Chunk> = serde_json::from_str(old).unwrap();
        assert_eq!(old[0].key_range, None);
    }

    #[tokio::test]
    async fn the_chunk_list_is_written_where_the_map_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let sink = crate::sink::LocalDirSink::new(dir.path());
        let chunks = plan_table("R1", &spec(Some(1)), &[("p".to_string(), size(200))]).unwrap();
        let key = write_chunk_list(&sink, "R1", "BaseRate", &chunks)
            .await
            .unwrap();
        assert_eq!(key, "runs/R1/plan/BaseRate.json");
        let bytes = std::fs::read(dir.path().join(&key)).unwrap();
        assert_eq!(bytes, chunk_list_json(&chunks));
    }

    #[test]
    fn never_more_than_an_import_reads() {
        let shards: Vec<_> = (0..3)
            .map(|i| (format!("p-{i}"), size(10_000_000)))
            .collect();
        let chunks = plan_table("r", &spec(Some(1)), &shards).unwrap();
        assert!(
            chunks.len() as u64 <= MAX_IMPORT_OBJECTS,
            "{}",
            chunks.len()
        );
        assert!(chunks.len() > 10_000);
        let bad = vec![("../x".to_string(), size(1))];
        assert!(plan_table("r", &spec(None), &bad).is_err());
    }
}
