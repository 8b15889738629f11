//! State transitions per second: a Pass/Choice loop followed by an inline Map, on the
//! virtual clock without history, measured against a hand-written baseline doing the same
//! `serde_json` work (see [`baseline`]). `examples/bench_transitions.rs` prints the figures.

use crate::{Engine, ExecutionOptions, ExecutionStatus, InProcessDispatcher, VirtualClock};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark's size.
#[derive(Debug, Clone, Copy)]
pub struct BenchSize {
    /// Loop iterations (each is a Pass and a Choice: two transitions).
    pub loops: u64,
    /// Map items (each runs two Pass states: two transitions). About 10,000 at most: the
    /// items are the execution input, which Step Functions caps at 256 KiB.
    pub items: u64,
    /// Fields of the document carried through the loop.
    pub doc_fields: usize,
}

impl BenchSize {
    /// Transitions (states entered) of one execution: Init, the Map state and its
    /// iterations, Trim, the loop, Done.
    pub fn transitions(&self) -> u64 {
        1 + 1 + 2 * self.items + 1 + 2 * self.loops + 1
    }
}

/// The definition benchmarked: an inline Map over the input's items (its result summarised
/// by a ResultSelector, since the whole array would pass the 256 KiB state output limit),
/// then a Pass/Choice loop carrying a small document.
pub fn definition(size: &BenchSize) -> Value {
    json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Next": "Fan"},
            "Fan": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
                "ItemProcessor": {"StartAt": "Shape", "States": {
                    "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id", "v.$": "$.v", "tag": "seen"}, "Next": "Keep"},
                    "Keep": {"Type": "Pass", "ResultPath": "$.kept", "Result": true, "End": true}}},
                "ResultSelector": {"count.$": "States.ArrayLength($)", "first.$": "$[0]", "last.$": "$[-1]"},
                "ResultPath": "$.mapped", "Next": "Trim"},
            "Trim": {"Type": "Pass", "Parameters": {"i": 0, "doc.$": "$.doc", "mapped.$": "$.mapped"}, "Next": "Step"},
            "Step": {"Type": "Pass",
                "Parameters": {"i.$": "States.MathAdd($.i, 1)", "doc.$": "$.doc", "mapped.$": "$.mapped"},
                "Next": "More?"},
            "More?": {"Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThan": size.loops, "Next": "Step"}],
                "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    })
}

/// The execution input: a document of `doc_fields` fields and `items` Map items.
pub fn input(size: &BenchSize) -> Value {
    let doc: Map<String, Value> = (0..size.doc_fields)
        .map(|f| (format!("field{f}"), json!(format!("value {f}"))))
        .collect();
    let items: Vec<Value> = (0..size.items)
        .map(|i| json!({"id": i, "v": i % 10}))
        .collect();
    json!({"doc": doc, "items": items})
}

/// The same data work as [`definition`], written by hand over `serde_json::Value`: the Map
/// builds each item's object and adds `kept`, the summary is merged at `$.mapped` (into a
/// copy of the input, as ResultPath must), each Pass builds its Parameters object (cloning
/// the selected values, as a path selection must) and each Choice reads and compares `$.i`.
/// No parsing, dispatch, context object, payload size checks or clock: what the engine
/// spends beyond this is its interpretation overhead.
pub fn baseline(size: &BenchSize, input: &Value) -> Value {
    let mapped: Vec<Value> = input["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let mut m = Map::new();
                    m.insert("id".into(), item["id"].clone());
                    m.insert("v".into(), item["v"].clone());
                    m.insert("tag".into(), json!("seen"));
                    m.insert("kept".into(), json!(true));
                    Value::Object(m)
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = json!({
        "count": mapped.len(),
        "first": mapped.first().cloned().unwrap_or(Value::Null),
        "last": mapped.last().cloned().unwrap_or(Value::Null),
    });
    let mut after_map = input.clone();
    if let Value::Object(m) = &mut after_map {
        m.insert("mapped".into(), summary);
    }
    let params = |i: Value, from: &Value| {
        let mut m = Map::new();
        m.insert("i".into(), i);
        m.insert("doc".into(), from["doc"].clone());
        m.insert("mapped".into(), from["mapped"].clone());
        Value::Object(m)
    };
    let mut state = params(json!(0), &after_map);
    loop {
        let next = state["i"].as_i64().unwrap_or(0) + 1;
        state = params(json!(next), &state);
        if (state["i"].as_f64().unwrap_or(0.0)) >= size.loops as f64 {
            break;
        }
    }
    state
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub size: BenchSize,
    pub transitions: u64,
    pub engine: Duration,
    pub baseline: Duration,
}

impl BenchReport {
    pub fn engine_per_second(&self) -> f64 {
        self.transitions as f64 / self.engine.as_secs_f64()
    }
    pub fn baseline_per_second(&self) -> f64 {
        self.transitions as f64 / self.baseline.as_secs_f64()
    }
    /// Engine throughput over baseline throughput (1.00: as fast as the hand-written code).
    pub fn ratio(&self) -> f64 {
        self.engine_per_second() / self.baseline_per_second()
    }
}

/// Runs the engine `rounds` times and the baseline as often, keeping the fastest of each;
/// both results are checked to be equal first.
pub fn run(size: BenchSize, rounds: u32) -> Result<BenchReport, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let engine = Engine::new(
        Arc::new(InProcessDispatcher::new()),
        Arc::new(VirtualClock::default()),
    );
    let machine = engine.load(&definition(&size)).map_err(|e| e.to_string())?;
    let input = input(&size);
    let expected = baseline(&size, &input);
    let options = || ExecutionOptions {
        skip_history: true,
        ..ExecutionOptions::default()
    };
    let mut engine_best = Duration::MAX;
    let mut baseline_best = Duration::MAX;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let exec = runtime.block_on(engine.run(&machine, input.clone(), options()));
        engine_best = engine_best.min(started.elapsed());
        if exec.status != ExecutionStatus::Succeeded || exec.output.as_ref() != Some(&expected) {
            return Err(format!(
                "the engine's result differs from the baseline's: {:?} {:?}",
                exec.error, exec.cause
            ));
        }
        let started = Instant::now();
        let out = baseline(&size, &input);
        baseline_best = baseline_best.min(started.elapsed());
        std::hint::black_box(out);
    }
    Ok(BenchReport {
        size,
        transitions: size.transitions(),
        engine: engine_best,
        baseline: baseline_best,
    })
}

/// Runs once with history (every event built, AWS style): the states entered, counted from
/// the history (a check of [`BenchSize::transitions`]), and the time taken.
pub fn run_with_history(size: BenchSize) -> Result<(u64, Duration), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let engine = Engine::new(
        Arc::new(InProcessDispatcher::new()),
        Arc::new(VirtualClock::default()),
    );
    let machine = engine.load(&definition(&size)).map_err(|e| e.to_string())?;
    let input = input(&size);
    let started = Instant::now();
    let exec = runtime.block_on(engine.run(&machine, input, ExecutionOptions::default()));
    let took = started.elapsed();
    let entered = exec
        .history
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("StateEntered"))
        })
        .count() as u64;
    Ok((entered, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_and_baseline_agree_and_transitions_are_counted_right() {
        let size = BenchSize {
            loops: 7,
            items: 5,
            doc_fields: 3,
        };
        let report = run(size, 1).expect("same results");
        assert_eq!(report.transitions, 2 + 10 + 1 + 14 + 1);
        let (entered, _) = run_with_history(size).expect("runs");
        assert_eq!(entered, size.transitions());
    }
}
