//! `ferry bench verify`: digest N items of gzip DynamoDB JSON from a local directory, against
//! `zcat FILES | wc -l` on the same files in the same run (decompression is the floor).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::spec::Compression;

use super::{
    digest_files, verify_table, DifferenceKind, DigestOptions, LocalDirSource, TableVerification,
    VerifyError,
};
use crate::digest::{BucketDigests, ItemHasher, DEFAULT_BUCKET_BITS};
use crate::encode::ItemWriter;
use crate::extract::ChunkManifest;
use crate::plan::Chunk;
use crate::sink::LocalDirSink;
use crate::value::{AttributeValue, Item};

pub const DEFAULT_ITEMS: u64 = 2_000_000;
pub const DEFAULT_FILES: usize = 8;

#[derive(Debug, Clone)]
pub struct VerifyBenchOptions {
    pub items: u64,
    pub files: usize,
    /// Files digested at once (default: the number of cores).
    pub parallelism: Option<usize>,
    /// Where the export-like files are written (reused when they hold exactly `items`).
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Timing {
    pub elapsed: Duration,
    pub items: u64,
    pub bytes: u64,
}

impl Timing {
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `what: S s, N items/s, M MB/s of compressed input`.
    pub fn line(&self, what: &str) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{what}: {:.2} s, {:.0} items/s, {:.1} MB/s of compressed input",
            seconds,
            self.items as f64 / seconds,
            self.bytes as f64 / seconds / 1e6
        )
    }
}

#[derive(Debug, Clone)]
pub struct EndToEnd {
    pub timing: Timing,
    pub summary: String,
    pub found: String,
}

#[derive(Debug, Clone)]
pub struct VerifyBenchReport {
    pub files: usize,
    pub bytes: u64,
    pub baseline: Timing,
    pub single: Timing,
    pub ferry: Timing,
    /// The whole compare of a table (export digested, partials merged with the manifests, the
    /// unequal bucket diffed) with one planted difference.
    pub end_to_end: EndToEnd,
    pub parallelism: usize,
    pub peak_memory: Option<u64>,
}

impl VerifyBenchReport {
    /// ferry's items/s over the baseline's (parallel ferry vs one `zcat` process).
    pub fn ratio(&self) -> f64 {
        self.baseline.elapsed.as_secs_f64() / self.ferry.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "input: {} items in {} gzip files, {:.1} MB",
                self.ferry.items,
                self.files,
                self.bytes as f64 / 1e6
            ),
            self.baseline.line("baseline zcat FILES | wc -l"),
            self.single.line("ferry digest, 1 worker"),
            self.ferry
                .line(&format!("ferry digest, {} workers", self.parallelism)),
        ];
        lines.push(
            self.end_to_end
                .timing
                .line("ferry verify end to end (1 planted difference)"),
        );
        lines.push(format!("  {}", self.end_to_end.summary));
        lines.push(format!("  found: {}", self.end_to_end.found));
        if let Some(peak) = self.peak_memory {
            lines.push(format!("peak memory: {:.1} MiB", peak as f64 / 1048576.0));
        }
        lines.push(format!(
            "ratio (1 worker): {:.2}",
            self.baseline.elapsed.as_secs_f64() / self.single.elapsed.as_secs_f64().max(1e-9)
        ));
        lines.push(format!("ratio: {:.2}", self.ratio()));
        lines
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyBenchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Other(String),
}

/// A BaseRate-shaped item, deterministic in `i`.
pub fn bench_item(i: u64) -> Item {
    let hotel = i / 3650;
    let plan = (i / 365) % 10;
    let day = i % 365;
    let s = |v: String| AttributeValue::S(v);
    let n = |v: String| AttributeValue::N(v);
    Item {
        attributes: vec![
            ("pk".into(), s(format!("HOTEL#{hotel}"))),
            ("sk".into(), s(format!("RATE#{plan}#DATE#{day:03}"))),
            ("hotelId".into(), n(hotel.to_string())),
            ("ratePlanId".into(), n(plan.to_string())),
            ("stayDate".into(), s(format!("2026-D{day:03}"))),
            (
                "amount".into(),
                n(format!("{}.{:02}", 80 + i % 400, i % 100)),
            ),
            ("currency".into(), s("EUR".into())),
            ("lengthOfStay".into(), n((1 + i % 7).to_string())),
            ("closed".into(), AttributeValue::Bool(i % 11 == 0)),
            (
                "note".into(),
                s(format!("Hôtel rate {i} — petit-déjeuner inclus")),
            ),
            ("updatedAt".into(), s("2026-01-02T03:04:05Z".into())),
            (
                "expiresAt".into(),
                n((1_775_001_600 + day * 86_400).to_string()),
            ),
        ],
    }
}

const RUN: &str = "bench";
const TABLE: &str = "BaseRate";

fn chunk(index: usize) -> Chunk {
    Chunk {
        chunk: index as u32,
        ..Chunk::whole(RUN, TABLE, "bench", Compression::Gzip)
    }
}

/// The key of the file's (bootstrap side) object, relative to the work directory.
fn file_key(index: usize) -> String {
    chunk(index).object_key()
}

fn export_key(index: usize) -> String {
    format!(
        "{}AWSDynamoDB/bench/data/{index:05}.json.gz",
        super::export_prefix(RUN, TABLE)
    )
}

/// The item planted as a difference: the export holds it with `amount` as a string.
fn planted(per_file: u64) -> u64 {
    per_file / 2
}

/// Writes items `start..end` to `path` (gzip DynamoDB JSON); with `plant`, that item's amount is
/// a string. Returns the digests of what was written and the compressed size.
fn write_file(
    path: &Path,
    start: u64,
    end: u64,
    plant: Option<u64>,
) -> Result<(BucketDigests, u64), VerifyBenchError> {
    std::fs::create_dir_all(path.parent().expect("files live in a directory"))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = ItemWriter::new(Compression::Gzip)?;
    let mut hasher = ItemHasher::new(vec!["pk".into(), "sk".into()]);
    let mut digests = BucketDigests::new(DEFAULT_BUCKET_BITS)
        .map_err(|e| VerifyBenchError::Other(e.to_string()))?;
    for i in start..end {
        let mut item = bench_item(i);
        if plant == Some(i) {
            item.set("amount", AttributeValue::S("planted".into()));
        }
        digests.add(
            hasher
                .hash(&item)
                .map_err(|e| VerifyBenchError::Other(e.to_string()))?,
        );
        writer.write_item(&item)?;
        if let Some(ready) = writer.take_ready() {
            std::io::Write::write_all(&mut out, &ready)?;
        }
    }
    let (rest, totals) = writer.finish()?;
    std::io::Write::write_all(&mut out, &rest)?;
    std::io::Write::flush(&mut out)?;
    Ok((digests, totals.compressed_bytes))
}

/// Writes the bootstrap side (`items` items over `files` gzip files, in parallel, with their
/// chunk manifests) and the export side (the same files, hard-linked, except the first, which
/// holds one planted difference), unless the directory already holds exactly that.
fn prepare(options: &VerifyBenchOptions) -> Result<Vec<PathBuf>, VerifyBenchError> {
    let dir = &options.work_dir;
    let marker = dir.join("items.txt");
    let wanted = format!("{} {} v2", options.items, options.files);
    let paths: Vec<PathBuf> = (0..options.files).map(|i| dir.join(file_key(i))).collect();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(paths);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let per_file = options.items.div_ceil(options.files as u64);
    std::thread::scope(|scope| -> Result<(), VerifyBenchError> {
        let workers: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(index, path)| {
                scope.spawn(move || -> Result<(), VerifyBenchError> {
                    let start = index as u64 * per_file;
                    let end = (start + per_file).min(options.items);
                    let (digests, bytes_out) = write_file(path, start, end, None)?;
                    let manifest = ChunkManifest {
                        chunk: chunk(index),
                        object_key: file_key(index),
                        rows: end.saturating_sub(start),
                        bytes_in: 0,
                        bytes_json: 0,
                        bytes_out,
                        key_attributes: vec!["pk".into(), "sk".into()],
                        digests,
                    };
                    let manifest_path = dir.join(chunk(index).manifest_key());
                    std::fs::create_dir_all(manifest_path.parent().expect("in a directory"))?;
                    std::fs::write(
                        manifest_path,
                        serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
                    )?;
                    let export = dir.join(export_key(index));
                    std::fs::create_dir_all(export.parent().expect("in a directory"))?;
                    if index == 0 {
                        write_file(&export, start, end, Some(planted(per_file)))?;
                    } else {
                        std::fs::hard_link(path, &export)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| VerifyBenchError::Other("a writer thread panicked".into()))??;
        }
        Ok(())
    })?;
    std::fs::write(&marker, wanted)?;
    Ok(paths)
}

/// `zcat FILES | wc -l` timed: the decompression floor any digest of `paths` is compared with.
pub fn zcat_baseline(paths: &[PathBuf], bytes: u64) -> Result<Timing, VerifyBenchError> {
    let started = Instant::now();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("zcat \"$@\" | wc -l")
        .arg("sh")
        .args(paths)
        .output()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(VerifyBenchError::Other(format!(
            "zcat | wc -l failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let lines: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| VerifyBenchError::Other(format!("wc -l printed no count: {e}")))?;
    Ok(Timing {
        elapsed,
        items: lines,
        bytes,
    })
}

async fn ferry(
    options: &VerifyBenchOptions,
    parallelism: usize,
) -> Result<Timing, VerifyBenchError> {
    let source = Arc::new(LocalDirSource::new(&options.work_dir));
    let keys: Vec<String> = (0..options.files).map(file_key).collect();
    let mut digest = DigestOptions::new(vec!["pk".into(), "sk".into()]);
    digest.parallelism = parallelism;
    let started = Instant::now();
    let digested = digest_files(source, &keys, &digest).await?;
    Ok(Timing {
        elapsed: started.elapsed(),
        items: digested.items,
        bytes: digested.bytes,
    })
}

async fn end_to_end(
    options: &VerifyBenchOptions,
    parallelism: usize,
    bytes: u64,
) -> Result<EndToEnd, VerifyBenchError> {
    let spec = crate::bench::bench_table_spec(Compression::Gzip, 128);
    let mut request = TableVerification::new(
        RUN,
        &spec,
        ferry_core::spec::Verification {
            tolerance: 0,
            sample_size: 100,
        },
    );
    request.parallelism = parallelism;
    let source = Arc::new(LocalDirSource::new(&options.work_dir));
    let sink = LocalDirSink::new(&options.work_dir);
    let started = Instant::now();
    let report = verify_table(source, &sink, &request).await?;
    let elapsed = started.elapsed();
    let planted_key = super::key_text(
        &["pk".to_owned(), "sk".to_owned()],
        &bench_item(planted(options.items.div_ceil(options.files as u64))),
    );
    let found = report.sample.first().cloned();
    let expected = (report.mismatches(), report.different);
    match found {
        Some(d)
            if expected == (1, 1)
                && d.kind == DifferenceKind::Different
                && d.key == planted_key
                && d.attributes == ["amount"] =>
        {
            Ok(EndToEnd {
                timing: Timing {
                    elapsed,
                    items: report.target_items,
                    bytes,
                },
                summary: report.summary(),
                found: format!("different {} [amount]", d.key),
            })
        }
        _ => Err(VerifyBenchError::Other(format!(
            "the planted difference at {planted_key} was not found as the only one: {} {:?}",
            report.summary(),
            report.sample
        ))),
    }
}

/// Prepares the files, then times the baseline, ferry on one worker, and ferry in parallel.
pub async fn run(options: &VerifyBenchOptions) -> Result<VerifyBenchReport, VerifyBenchError> {
    let prepared = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || prepare(&options))
            .await
            .map_err(|e| VerifyBenchError::Other(e.to_string()))??
    };
    let bytes = prepared
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let parallelism = options.parallelism.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
    });
    let baseline = {
        let paths = prepared.clone();
        tokio::task::spawn_blocking(move || zcat_baseline(&paths, bytes))
            .await
            .map_err(|e| VerifyBenchError::Other(e.to_string()))??
    };
    let single = ferry(options, 1).await?;
    let parallel = ferry(options, parallelism).await?;
    let end_to_end = end_to_end(options, parallelism, bytes).await?;
    for timing in [&baseline, &single, &parallel] {
        if timing.items != options.items {
            return Err(VerifyBenchError::Other(format!(
                "counted {} items, expected {}",
                timing.items, options.items
            )));
        }
    }
    Ok(VerifyBenchReport {
        files: options.files,
        bytes,
        baseline,
        single,
        ferry: parallel,
        end_to_end,
        parallelism,
        peak_memory: crate::bench::peak_memory(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bench_counts_every_item_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let options = VerifyBenchOptions {
            items: 5_000,
            files: 3,
            parallelism: Some(2),
            work_dir: dir.path().join("bench"),
        };
        let report = run(&options).await.unwrap();
        assert_eq!(report.baseline.items, 5_000);
        assert_eq!(report.ferry.items, 5_000);
        let lines = report.lines();
        assert!(lines.last().unwrap().starts_with("ratio: "), "{lines:?}");
        // A second run reuses the files.
        let again = run(&options).await.unwrap();
        assert_eq!(again.bytes, report.bytes);
    }
}
