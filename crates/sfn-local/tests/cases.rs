//! Table-driven tests: every `tests/cases/<topic>/*.json` file is one case.
//!
//! A case is `{ "definition", "input", "expected", "handlers"?, "machines"? }`:
//! - `expected`: `{"status":"SUCCEEDED","output":...}`,
//!   `{"status":"FAILED","error":"...","cause":"..."?, "cause_contains":"..."?}`,
//!   or `{"status":"INVALID","issues":["substring of an issue", ...]}`;
//!   optional `"history_types": [...]` lists event types that must occur, in order;
//!   optional `"elapsed_seconds": n` checks the virtual clock after the run.
//! - `handlers`: `{ "fnName": behaviour | [behaviour, ...] }`, one behaviour per call,
//!   the last repeating: `{"return": v}`, `{"echo": true}` (returns its payload),
//!   `{"error": "Type", "message": "..."}`, `{"panic": true}`, each optionally with `"sleep": seconds`;
//!   for `.waitForTaskToken` tasks, `{"callback": "success"|"failure"|"none", "output"?,
//!   "error"?, "cause"?, "after"?: seconds, "heartbeat_every"?: seconds}` reports on the
//!   token found in the payload's `token` field
//!   (on the virtual clock, before answering).
//! - `machines`: `{ "name": definition }` registered for nested executions.
//!
//! Executions run on a virtual clock starting 2026-01-01T00:00:00Z, named "case", of a
//! state machine named "Case", with a limit of 25,000 history events.

use serde_json::{json, Value};
use sfn_local::{
    DispatcherChain, Engine, ExecutionOptions, HandlerError, InProcessDispatcher, TaskDispatcher,
    VirtualClock,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod aws;
mod emr_sync;
mod fake;
mod lambda_http;

pub(crate) fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            case_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn dispatcher(handlers: &Value) -> InProcessDispatcher {
    let mut d = InProcessDispatcher::new();
    if let Value::Object(m) = handlers {
        for (name, spec) in m {
            let steps: Vec<Value> = match spec {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let calls = Arc::new(AtomicUsize::new(0));
            d.register(name, move |payload, cx| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let step = steps[n.min(steps.len() - 1)].clone();
                async move {
                    if let Some(kind) = step.get("callback").and_then(Value::as_str) {
                        report_later(kind, &step, &payload, &cx);
                        return Ok(json!({"submitted": true}));
                    }
                    if let Some(s) = step.get("sleep").and_then(Value::as_f64) {
                        cx.clock.sleep(Duration::from_secs_f64(s)).await;
                    }
                    if let Some(e) = step.get("error").and_then(Value::as_str) {
                        let msg = step.get("message").and_then(Value::as_str).unwrap_or("");
                        return Err(HandlerError::new(e, msg));
                    }
                    if step.get("panic").is_some() {
                        panic!("handler asked to panic");
                    }
                    if step.get("echo").is_some() {
                        return Ok(payload);
                    }
                    Ok(step.get("return").cloned().unwrap_or(Value::Null))
                }
            });
        }
    }
    d
}

/// A `.waitForTaskToken` worker: reports on `payload.token`, after `after` seconds,
/// sending a heartbeat every `heartbeat_every` seconds meanwhile.
fn report_later(kind: &str, step: &Value, payload: &Value, cx: &sfn_local::InvokeContext) {
    let token = payload["token"].as_str().unwrap_or_default().to_string();
    let after = step.get("after").and_then(Value::as_f64).unwrap_or(0.0);
    let every = step.get("heartbeat_every").and_then(Value::as_f64);
    let (kind, step) = (kind.to_string(), step.clone());
    let (callbacks, clock) = (cx.callbacks.clone(), cx.clock.clone());
    let report = move || match kind.as_str() {
        "success" => {
            let _ =
                callbacks.send_success(&token, step.get("output").cloned().unwrap_or(Value::Null));
        }
        "failure" => {
            let _ = callbacks.send_failure(
                &token,
                step["error"].as_str().unwrap_or_default(),
                step["cause"].as_str().unwrap_or_default(),
            );
        }
        _ => {}
    };
    if after == 0.0 {
        report();
        return;
    }
    let callbacks = cx.callbacks.clone();
    let token = payload["token"].as_str().unwrap_or_default().to_string();
    tokio::spawn(async move {
        let mut waited = 0.0;
        while let Some(e) = every.filter(|e| waited + e < after) {
            clock.sleep(Duration::from_secs_f64(e)).await;
            waited += e;
            let _ = callbacks.send_heartbeat(&token);
        }
        clock.sleep(Duration::from_secs_f64(after - waited)).await;
        report();
    });
}

/// Runs one case; `extra` (when given) takes the tasks the case's handlers do not.
async fn run_case(case: &Value, extra: Option<Arc<dyn TaskDispatcher>>) -> Result<(), String> {
    let expected = case.get("expected").ok_or("no \"expected\"")?;
    let status = expected["status"]
        .as_str()
        .ok_or("expected.status missing")?;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map_err(|e| e.to_string())?
        .with_timezone(&chrono::Utc);
    let clock = Arc::new(VirtualClock::new(start));
    let handlers: Arc<dyn TaskDispatcher> =
        Arc::new(dispatcher(case.get("handlers").unwrap_or(&Value::Null)));
    let tasks: Arc<dyn TaskDispatcher> = match extra {
        Some(extra) => Arc::new(DispatcherChain::new().with(handlers).with(extra)),
        None => handlers,
    };
    let engine = Engine::new(tasks, clock.clone());
    if let Some(Value::Object(machines)) = case.get("machines") {
        for (name, def) in machines {
            engine
                .register(name, def)
                .map_err(|e| format!("machine {name}: {e}"))?;
        }
    }
    let loaded = engine.load(&case["definition"]);
    if status == "INVALID" {
        let err = match loaded {
            Ok(_) => return Err("expected INVALID, but the definition loaded".into()),
            Err(e) => e.to_string(),
        };
        for want in expected["issues"].as_array().into_iter().flatten() {
            let want = want.as_str().unwrap_or_default();
            if !err.contains(want) {
                return Err(format!("issue {want:?} not reported; got:\n{err}"));
            }
        }
        return Ok(());
    }
    let sm = loaded.map_err(|e| format!("definition rejected: {e}"))?;
    let input = case.get("input").cloned().unwrap_or(json!({}));
    let exec = engine
        .run(
            &sm,
            input,
            ExecutionOptions {
                name: Some("case".into()),
                state_machine_name: Some("Case".into()),
                progress: None,
                max_history_events: Some(25_000),
                skip_history: false,
            },
        )
        .await;
    let got = serde_json::to_value(&exec).map_err(|e| e.to_string())?;
    if got["status"] != expected["status"] {
        return Err(format!("status: got {got}, expected {expected}"));
    }
    for field in ["output", "error", "cause"] {
        if let Some(want) = expected.get(field) {
            if got.get(field) != Some(want) {
                return Err(format!(
                    "{field}: got {}, expected {want}",
                    got.get(field).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    if let Some(want) = expected.get("cause_contains").and_then(Value::as_str) {
        let cause = got["cause"].as_str().unwrap_or_default();
        if !cause.contains(want) {
            return Err(format!("cause {cause:?} does not contain {want:?}"));
        }
    }
    if let Some(want) = expected.get("elapsed_seconds").and_then(Value::as_f64) {
        let secs = clock.elapsed().as_secs_f64();
        if (secs - want).abs() > 1e-6 {
            return Err(format!(
                "elapsed {secs}s on the virtual clock, expected {want}s"
            ));
        }
    }
    if let Some(types) = expected.get("history_types").and_then(Value::as_array) {
        let seen: Vec<&str> = exec
            .history
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        let mut pos = 0;
        for t in types {
            let t = t.as_str().unwrap_or_default();
            match seen[pos..].iter().position(|s| *s == t) {
                Some(i) => pos += i + 1,
                None => return Err(format!("history lacks {t:?} (in order); got {seen:?}")),
            }
        }
    }
    Ok(())
}

// The virtual clock is meant for a current-thread runtime: spawned workers then
// interleave with the engine at await points, so sleeps overlap deterministically.
#[tokio::test]
async fn cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    let mut failures = Vec::new();
    for f in &files {
        let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let outcome = match serde_json::from_str::<Value>(&text) {
            Err(e) => Err(format!("not JSON: {e}")),
            Ok(case) => run_case(&case, None).await,
        };
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "{} cases: {} passed, {} failed",
        files.len(),
        files.len() - failures.len(),
        failures.len()
    );
    assert!(
        files.len() >= 150,
        "expected at least 150 cases, found {}",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Map iterations really run concurrently, never more than MaxConcurrency at once.
#[tokio::test]
async fn map_concurrency_is_bounded_and_real() {
    use std::sync::atomic::AtomicUsize;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut d = InProcessDispatcher::new();
    {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        d.register("work", move |payload, cx| {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                cx.clock.sleep(Duration::from_secs(1)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(payload)
            }
        });
    }
    let clock = Arc::new(VirtualClock::default());
    let engine = Engine::new(Arc::new(d), clock.clone());
    let sm = engine
        .load(&json!({
            "StartAt": "M",
            "States": {"M": {"Type": "Map", "MaxConcurrency": 3, "End": true,
                "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work", "End": true}}}}}
        }))
        .expect("valid definition");
    let items: Vec<Value> = (0..20).map(Value::from).collect();
    let exec = engine
        .run(
            &sm,
            Value::Array(items.clone()),
            ExecutionOptions::default(),
        )
        .await;
    assert_eq!(exec.output, Some(Value::Array(items)));
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    // 20 items, 3 at a time, 1 s each: 7 rounds of virtual time.
    assert_eq!(clock.elapsed(), Duration::from_secs(7));
}

/// The progress callback gets one line per event, and the history serialises as JSON lines.
#[tokio::test]
async fn progress_lines_and_history() {
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let engine = Engine::new(
        Arc::new(InProcessDispatcher::new()),
        Arc::new(VirtualClock::default()),
    );
    let sm = engine
        .load_str(r#"{"StartAt":"A","States":{"A":{"Type":"Wait","Seconds":2,"Next":"B"},"B":{"Type":"Succeed"}}}"#)
        .expect("valid definition");
    let exec = engine
        .run(
            &sm,
            json!({}),
            ExecutionOptions {
                progress: Some(Arc::new(move |l: &str| {
                    sink.lock().expect("lock").push(l.to_string())
                })),
                ..ExecutionOptions::default()
            },
        )
        .await;
    let lines = lines.lock().expect("lock").clone();
    assert_eq!(lines.len(), exec.history.len());
    assert!(lines[1].contains("WaitStateEntered A"), "{lines:?}");
    assert!(lines[2].contains("2.000s"), "{lines:?}");
    let jsonl = exec.history_json_lines();
    assert_eq!(jsonl.lines().count(), exec.history.len());
    for l in jsonl.lines() {
        let v: Value = serde_json::from_str(l).expect("each line is JSON");
        assert!(v["type"].is_string() && v["id"].is_u64() && v["timestamp"].is_string());
    }
}

/// Without history the result is the same, the history stays empty, and the
/// history limit still counts events.
#[tokio::test]
async fn skip_history_keeps_results_and_limits() {
    let engine = Engine::new(
        Arc::new(InProcessDispatcher::new()),
        Arc::new(VirtualClock::default()),
    );
    let sm = engine
        .load_str(r#"{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}"#)
        .expect("valid definition");
    let exec = engine
        .run(
            &sm,
            json!([1, 2, 3]),
            ExecutionOptions {
                skip_history: true,
                ..ExecutionOptions::default()
            },
        )
        .await;
    assert_eq!(exec.output, Some(json!([1, 2, 3])));
    assert!(exec.history.is_empty());
    let looping = engine
        .load_str(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"Next":"W"}}}"#)
        .expect("valid definition");
    let exec = engine
        .run(
            &looping,
            json!({}),
            ExecutionOptions {
                skip_history: true,
                max_history_events: Some(100),
                ..ExecutionOptions::default()
            },
        )
        .await;
    assert_eq!(exec.error.as_deref(), Some("States.Runtime"));
}

/// The real clock runs the same machines (zero-length waits, so nothing sleeps long).
#[tokio::test]
async fn real_clock_smoke() {
    let mut d = InProcessDispatcher::new();
    d.register("f", |v, _| async move { Ok(v) });
    let engine = Engine::new(Arc::new(d), Arc::new(sfn_local::RealClock));
    let sm = engine
        .load(&json!({
            "TimeoutSeconds": 60,
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 0, "Next": "T"},
                "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                      "TimeoutSeconds": 30, "End": true}
            }
        }))
        .expect("valid definition");
    let exec = engine
        .run(&sm, json!({"k": 1}), ExecutionOptions::default())
        .await;
    assert_eq!(
        serde_json::to_value(&exec).expect("serialisable"),
        json!({"status": "SUCCEEDED", "output": {"k": 1}})
    );
}
