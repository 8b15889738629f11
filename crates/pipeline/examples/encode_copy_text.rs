//! ferry's per-row work alone, without PostgreSQL: a file of COPY text (the benchmark table's
//! columns, e.g. `psql -c "\copy (SELECT …) TO 'rows.txt'"`) through the chunk encoder on one
//! thread, per codec. For profiling the extract (`perf record`); the ratio lives in
//! `ferry bench extract`.
//!
//! `cargo run --release -p ferry-pipeline --example encode_copy_text -- FILE [REPEAT]`

use std::time::Instant;

use ferry_core::spec::Compression;
use ferry_pipeline::bench::{bench_table_spec, lean_bench_table_spec};
use ferry_pipeline::extract::{ChunkEncoder, ExtractOptions};
use ferry_pipeline::item::{ColumnKind, ItemMapper, SourceColumn};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: encode_copy_text FILE [REPEAT]");
    let repeat: usize = args.next().map_or(1, |r| r.parse().expect("REPEAT"));
    let data = std::fs::read(path).expect("the COPY text file");
    let kinds = [
        ("hotel_id", "int8", ColumnKind::Integer),
        ("rate_plan_id", "int4", ColumnKind::Integer),
        ("room_type_id", "int4", ColumnKind::Integer),
        ("stay_date", "date", ColumnKind::Date),
        ("amount", "numeric", ColumnKind::Numeric),
        ("currency", "bpchar", ColumnKind::Text),
        ("occupancy", "int2", ColumnKind::Integer),
        ("extra_adult_amount", "numeric", ColumnKind::Numeric),
        ("updated_at", "timestamptz", ColumnKind::Timestamp),
        ("expiry_date", "date", ColumnKind::Date),
    ];
    let columns: Vec<SourceColumn> = kinds
        .iter()
        .map(|(name, type_name, kind)| SourceColumn {
            name: (*name).into(),
            type_name: (*type_name).into(),
            kind: *kind,
        })
        .collect();
    let lean = std::env::var_os("FERRY_BENCH_MAPPING").is_none_or(|m| m != "example");
    for codec in [Compression::Gzip, Compression::Zstd] {
        let spec = if lean {
            lean_bench_table_spec(codec, 64)
        } else {
            bench_table_spec(codec, 64)
        };
        let mapper = ItemMapper::new(&spec, &columns).expect("the mapping fits the columns");
        let started = Instant::now();
        let mut rows = 0;
        let mut bytes_out = 0;
        let mut json_bytes = 0;
        for _ in 0..repeat {
            let mut encoder =
                ChunkEncoder::new(&mapper, codec, &ExtractOptions::default()).expect("an encoder");
            // PostgreSQL sends one CopyData message per row.
            for line in data.split_inclusive(|b| *b == b'\n') {
                encoder.feed(line).expect("rows encode");
                if let Some(ready) = encoder.take_ready() {
                    bytes_out += ready.len();
                }
            }
            let (rest, totals) = encoder.finish().expect("the chunk ends");
            bytes_out += rest.len();
            rows += totals.rows;
            json_bytes += totals.writer.uncompressed_bytes;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{codec:?}: {rows} rows in {seconds:.2} s = {:.0} rows/s, {:.2} µs/row, {json_bytes} bytes of JSON, {bytes_out} bytes out",
            rows as f64 / seconds,
            seconds * 1e6 / rows as f64
        );
    }
}
