//! State transitions per second of the engine, against a hand-written baseline.
//!
//! `cargo run --release -p sfn-local --example bench_transitions -- [--loops N] [--items M] [--rounds R]`

use sfn_local::bench::{self, BenchSize};

fn main() {
    let mut size = BenchSize {
        loops: 100_000,
        items: 10_000,
        doc_fields: 20,
    };
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--loops", Some(v)) => size.loops = v,
            ("--items", Some(v)) => size.items = v,
            ("--fields", Some(v)) => size.doc_fields = v as usize,
            ("--rounds", Some(v)) => rounds = v as u32,
            _ => {
                eprintln!(
                    "usage: bench_transitions [--loops N] [--items M] [--fields F] [--rounds R]"
                );
                std::process::exit(2);
            }
        }
    }
    let report = match bench::run(size, rounds) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_transitions: {e}");
            std::process::exit(1);
        }
    };
    let (entered, with_history) = bench::run_with_history(size).unwrap_or_else(|e| {
        eprintln!("bench_transitions: {e}");
        std::process::exit(1);
    });
    assert_eq!(
        entered, report.transitions,
        "transitions counted from the history"
    );
    println!(
        "definition: an inline Map of {} items (2 Pass states each), then a Pass/Choice loop of {} iterations carrying a document of {} fields",
        size.items, size.loops, size.doc_fields
    );
    println!(
        "transitions per execution: {} (checked against the StateEntered events of a run with history)",
        report.transitions
    );
    println!(
        "engine, virtual clock, no history: {:.0} transitions/s (best of {rounds}: {:.1} ms)",
        report.engine_per_second(),
        report.engine.as_secs_f64() * 1e3
    );
    println!(
        "engine, virtual clock, with history: {:.0} transitions/s ({:.1} ms)",
        report.transitions as f64 / with_history.as_secs_f64(),
        with_history.as_secs_f64() * 1e3
    );
    println!(
        "baseline: {:.0} transitions/s (best of {rounds}: {:.1} ms)",
        report.baseline_per_second(),
        report.baseline.as_secs_f64() * 1e3
    );
    println!(
        "baseline = hand-written serde_json code doing each state's data work (the same Map item \
         objects and ResultPath merge, the same clones for Parameters, the same read and compare \
         for Choice) without parsing, dispatch, context object, payload size checks or clock; \
         ratio = engine transitions/s / baseline transitions/s (1.00 = no interpretation overhead)"
    );
    println!("ratio: {:.2}", report.ratio());
}
