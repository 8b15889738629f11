//! `scripts/run-step-functions-workflow.sh` (and `ferry start --watch` under it) against the
//! emulator's Step Functions: a run that succeeds, one that fails, a wrong state machine name.

use std::process::Command;

use ferry_core::state::DynamoDbStateStore;
use serde_json::json;

/// A state machine in the emulator running `definition`; answers its name.
async fn machine(definition: serde_json::Value) -> String {
    let sdk = ferry_tests::aws_config().await;
    let name = ferry_tests::unique_name("wf").replace('_', "-");
    sfn_local::AwsDispatcher::new(&sdk)
        .call(
            "arn:aws:states:::aws-sdk:sfn:createStateMachine",
            &json!({
                "name": name,
                "roleArn": "arn:aws:iam::123456789012:role/ferry-test",
                "definition": definition.to_string(),
            }),
        )
        .await
        .expect("CreateStateMachine");
    name
}

/// Runs the script for a fresh migration (the example spec under a unique name).
async fn run_script(state_machine: &str) -> (bool, String, String) {
    let sdk = ferry_tests::aws_config().await;
    let prefix = ferry_tests::unique_name("wf");
    let (_, bucket) = ferry_tests::s3_bucket(&prefix).await;
    let state_table = format!("{prefix}state");
    DynamoDbStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), &state_table)
        .create_table_if_missing()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    let text =
        std::fs::read_to_string(ferry_tests::repo_root().join("examples/rates-availability.toml"))
            .unwrap()
            .replace(
                "name = \"rates-availability\"",
                &format!("name = \"{prefix}ra\""),
            );
    std::fs::write(&spec, text).unwrap();
    // A run that never ends must fail the test, not hang the suite.
    let out = Command::new("timeout")
        .arg("120")
        .arg("bash")
        .arg(ferry_tests::repo_root().join("scripts/run-step-functions-workflow.sh"))
        .args([
            "--environment",
            "test",
            "--domain",
            "rates",
            "--parallelism",
            "2",
            "--spec",
        ])
        .arg(&spec)
        .envs(ferry_tests::services().env())
        .env("FERRY_BIN", ferry_tests::ferry_binary())
        .env("FERRY_STATE_MACHINE", state_machine)
        .env("FERRY_STATE_TABLE", &state_table)
        .env("FERRY_BUCKET", &bucket)
        .env("FERRY_POLL_SECONDS", "1")
        .output()
        .expect("run the script");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_script_follows_a_run_to_success() {
    let name = machine(json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Finish"},
            "Finish": {"Type": "Pass", "Result": {"status": "SUCCEEDED"}, "End": true}
        }
    }))
    .await;
    let (ok, stdout, stderr) = run_script(&name).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("started") && stdout.contains("execution arn:aws:states:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("→ Prepare") && stdout.contains("→ Finish"),
        "{stdout}"
    );
    assert!(stdout.contains("SUCCEEDED"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_script_fails_with_the_state_error_and_cause() {
    let name = machine(json!({
        "StartAt": "Verify",
        "States": {
            "Verify": {"Type": "Fail", "Error": "Ferry.VerificationFailed", "Cause": "verification failed: BaseRate (1 missing)"}
        }
    }))
    .await;
    let (ok, stdout, stderr) = run_script(&name).await;
    assert!(!ok, "a failed run must fail the job: {stdout}");
    assert!(stdout.contains("failed in: Verify"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("error: Ferry.VerificationFailed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cause: verification failed: BaseRate (1 missing)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_script_names_a_missing_state_machine() {
    let (ok, stdout, stderr) = run_script("ferry-no-such-machine").await;
    assert!(!ok);
    assert!(
        stderr.contains("no state machine named \"ferry-no-such-machine\""),
        "{stdout}\n{stderr}"
    );
}
