//! DynamoDB JSON lines (`{"Item":{...}}`, exactly what ImportTable reads) streamed through GZIP
//! (default; level 1, zlib-rs) or ZSTD (level 1). Compressed output is handed out in pieces of
//! about `flush_at` bytes, so a chunk never sits in memory whole.

use std::io::Write;

use bytes::Bytes;
use ferry_core::spec::Compression;
use flate2::write::GzEncoder;

use crate::value::Item;

/// Compressed bytes are handed out once this many are buffered.
pub const DEFAULT_FLUSH_AT: usize = 1 << 20;

/// The file name extension of a data object.
pub fn extension(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => "json.gz",
        Compression::Zstd => "json.zst",
    }
}

/// ImportTable's `InputCompressionType`.
pub fn import_compression_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => "GZIP",
        Compression::Zstd => "ZSTD",
    }
}

enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// Lines are gathered into batches of this many bytes before the compressor sees them: a
/// compressor call (and its checksum) per line costs more than the copy.
const BATCH: usize = 64 * 1024;

/// Writes items as compressed DynamoDB JSON lines.
pub struct ItemWriter {
    encoder: Encoder,
    line: Vec<u8>,
    /// Lines not yet handed to the compressor.
    batch: Vec<u8>,
    flush_at: usize,
    uncompressed_bytes: u64,
    compressed_bytes: u64,
}

impl ItemWriter {
    pub fn new(compression: Compression) -> std::io::Result<Self> {
        Self::with_flush_at(compression, DEFAULT_FLUSH_AT)
    }

    pub fn with_flush_at(compression: Compression, flush_at: usize) -> std::io::Result<Self> {
        let buffer = Vec::with_capacity(flush_at + flush_at / 4);
        let encoder = match compression {
            Compression::Gzip => Encoder::Gzip(GzEncoder::new(buffer, flate2::Compression::fast())),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(buffer, 1)?),
        };
        Ok(ItemWriter {
            encoder,
            line: Vec::with_capacity(1024),
            batch: Vec::with_capacity(BATCH + 4096),
            flush_at,
            uncompressed_bytes: 0,
            compressed_bytes: 0,
        })
    }

    /// Appends one `{"Item":{...}}` line.
    pub fn write_item(&mut self, item: &Item) -> std::io::Result<()> {
        self.line.clear();
        // Serialising to a Vec cannot fail for these types.
        serde_json::to_writer(&mut self.line, &ItemLineRef { item })
            .map_err(std::io::Error::other)?;
        self.line.push(b'\n');
        let line = std::mem::take(&mut self.line);
        let written = self.write_line(&line);
        self.line = line;
        written
    }

    /// Appends one line that is already DynamoDB JSON, newline included (as
    /// [`crate::item::RowEncoder::line`] gives it).
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.uncompressed_bytes += line.len() as u64;
        self.batch.extend_from_slice(line);
        if self.batch.len() >= BATCH {
            self.compress_batch()?;
        }
        Ok(())
    }

    fn compress_batch(&mut self) -> std::io::Result<()> {
        let written = match &mut self.encoder {
            Encoder::Gzip(e) => e.write_all(&self.batch),
            Encoder::Zstd(e) => e.write_all(&self.batch),
        };
        self.batch.clear();
        written
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match &mut self.encoder {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// The compressed bytes buffered so far, once there are at least `flush_at` of them.
    pub fn take_ready(&mut self) -> Option<Bytes> {
        let flush_at = self.flush_at;
        let output = self.output();
        if output.len() < flush_at {
            return None;
        }
        let ready = std::mem::replace(output, Vec::with_capacity(flush_at + flush_at / 4));
        self.compressed_bytes += ready.len() as u64;
        Some(Bytes::from(ready))
    }

    /// Ends the stream: the last compressed bytes.
    pub fn finish(mut self) -> std::io::Result<(Bytes, WriterTotals)> {
        self.compress_batch()?;
        let rest = match self.encoder {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
        };
        self.compressed_bytes += rest.len() as u64;
        Ok((
            Bytes::from(rest),
            WriterTotals {
                uncompressed_bytes: self.uncompressed_bytes,
                compressed_bytes: self.compressed_bytes,
            },
        ))
    }
}

/// Byte counts of a finished object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterTotals {
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

#[derive(serde::Serialize)]
struct ItemLineRef<'a> {
    #[serde(rename = "Item")]
    item: &'a Item,
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::value::{parse_item_line, AttributeValue};

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                attributes: vec![
                    ("pk".into(), AttributeValue::S(format!("HOTEL#{i}"))),
                    ("v".into(), AttributeValue::N(format!("{i}.50"))),
                ],
            })
            .collect()
    }

    fn round_trip(compression: Compression) {
        let input = items(20_000);
        let mut writer = ItemWriter::with_flush_at(compression, 4096).unwrap();
        let mut out = Vec::new();
        let mut pieces = 0;
        for item in &input {
            writer.write_item(item).unwrap();
            if let Some(ready) = writer.take_ready() {
                pieces += 1;
                out.extend_from_slice(&ready);
            }
        }
        let (rest, totals) = writer.finish().unwrap();
        out.extend_from_slice(&rest);
        assert!(pieces > 1, "output is streamed in pieces");
        assert_eq!(totals.compressed_bytes, out.len() as u64);
        let mut text = Vec::new();
        match compression {
            Compression::Gzip => flate2::read::MultiGzDecoder::new(&out[..])
                .read_to_end(&mut text)
                .unwrap(),
            Compression::Zstd => zstd::stream::read::Decoder::new(&out[..])
                .unwrap()
                .read_to_end(&mut text)
                .unwrap(),
        };
        assert_eq!(totals.uncompressed_bytes, text.len() as u64);
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), input.len());
        assert_eq!(
            lines[1],
            br#"{"Item":{"pk":{"S":"HOTEL#1"},"v":{"N":"1.50"}}}"#
        );
        for (line, item) in lines.iter().zip(&input) {
            assert_eq!(&parse_item_line(line).unwrap(), item);
        }
    }

    #[test]
    fn gzip_lines_round_trip() {
        round_trip(Compression::Gzip);
    }

    #[test]
    fn zstd_lines_round_trip() {
        round_trip(Compression::Zstd);
    }
}
