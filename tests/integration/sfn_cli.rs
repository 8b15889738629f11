//! `ferry sfn run`: the local Step Functions engine from the command line.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ferry_tests::{ferry_binary, repo_root};
use serde_json::{json, Value};

fn sfn_run(definition: &str, input: &str, extra: &[&str]) -> (Output, Value) {
    sfn_run_with_env(definition, input, extra, Vec::new())
}

fn sfn_run_with_env(
    definition: &str,
    input: &str,
    extra: &[&str],
    env: Vec<(&'static str, String)>,
) -> (Output, Value) {
    let path = repo_root().join("tests/fixtures/sfn").join(definition);
    let mut child = Command::new(ferry_binary())
        .envs(env)
        .args(["sfn", "run"])
        .arg(path)
        .args(["--input", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output, result)
}

#[test]
fn a_successful_execution_prints_its_output_and_exits_0() {
    let started = Instant::now();
    let history = std::env::temp_dir().join(format!("{}.jsonl", ferry_tests::unique_name("h")));
    let history_arg = history.display().to_string();
    let (output, result) = sfn_run(
        "wait-and-choose.asl.json",
        r#"{"n": 42}"#,
        &["--history", &history_arg],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        result,
        json!({"status": "SUCCEEDED", "output": {"label": "big 42"}})
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "the hour-long Wait was not skipped"
    );
    let events = std::fs::read_to_string(&history).unwrap();
    assert!(events.lines().count() >= 6, "{events}");
    assert!(events.contains("WaitStateEntered"), "{events}");
    std::fs::remove_file(history).unwrap();
}

#[test]
fn a_failed_execution_prints_error_and_cause_and_exits_1() {
    let (output, result) = sfn_run("wait-and-choose.asl.json", r#"{"n": 3}"#, &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        result,
        json!({"status": "FAILED", "error": "Demo.TooSmall", "cause": "n must exceed 10"})
    );
}

#[test]
fn an_invalid_definition_names_the_state_and_exits_2() {
    let (output, result) = sfn_run("dangling-next.asl.json", "{}", &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(result, Value::Null, "nothing on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("First"), "{stderr}");
    assert!(stderr.contains("Nowhere"), "{stderr}");

    let (output, _) = sfn_run("wait-and-choose.asl.json", "{not json", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("input: not valid JSON"));
}

#[test]
fn aws_sdk_tasks_reach_the_emulator_and_service_errors_are_renamed() {
    let table = ferry_tests::unique_name("sfn");
    let (output, result) = sfn_run_with_env(
        "aws-sdk-dynamodb.asl.json",
        &json!({ "table": table }).to_string(),
        &[],
        ferry_tests::services().env(),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        result,
        json!({"status": "SUCCEEDED", "output": {"v": "first"}})
    );
}
