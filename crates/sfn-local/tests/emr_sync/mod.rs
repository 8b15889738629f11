//! `emr-serverless:startJobRun.sync` against a fake EMR Serverless whose job runs go through
//! intermediate states before ending: moto's runs are SUCCESS at once, so the polling and the
//! FAILED / CANCELLED endings are checked here.

use crate::fake::{serve, Fake, Response};
use aws_config::{BehaviorVersion, Region};
use serde_json::{json, Value};
use sfn_local::{AwsDispatcher, Engine, ExecutionOptions, VirtualClock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Job runs of application `ok` end SUCCESS, of `fails` FAILED, of `halted` CANCELLED, each
/// after two non-terminal answers; GetJobRun calls are counted.
async fn fake_emr_serverless(polls: Arc<AtomicUsize>) -> Fake {
    serve(move |req| {
        let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["applications", app, "jobruns"]) => Response::json(
                200,
                &json!({"applicationId": app, "jobRunId": "run1",
                    "arn": format!("arn:aws:emr-serverless:us-east-1:123456789012:/applications/{app}/jobruns/run1")}),
            ),
            ("GET", ["applications", app, "jobruns", run]) => {
                let n = polls.fetch_add(1, Ordering::SeqCst) % 3;
                let end = match *app {
                    "ok" => "SUCCESS",
                    "fails" => "FAILED",
                    _ => "CANCELLED",
                };
                let state = ["SUBMITTED", "RUNNING", end][n];
                let mut run = json!({"applicationId": app, "jobRunId": run, "name": "nightly", "state": state,
                    "jobDriver": {"sparkSubmit": {"entryPoint": "s3://scripts/job.py"}},
                    "tags": {"team": "data"}});
                if state == "FAILED" {
                    run["stateDetails"] = json!("Job failed, ExitCode: 1");
                }
                Response::json(200, &json!({"jobRun": run}))
            }
            _ => Response::json(400, &json!({"message": "unexpected request"}))
                .with_header("x-amzn-errortype", "ValidationException"),
        }
    })
    .await
}

#[tokio::test]
async fn start_job_run_sync_polls_until_the_run_ends() {
    let polls = Arc::new(AtomicUsize::new(0));
    let fake = fake_emr_serverless(polls.clone()).await;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&fake.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "sfn-local-tests",
        ))
        .load()
        .await;
    let aws = Arc::new(AwsDispatcher::new(&config).with_poll_interval(Duration::from_secs(10)));
    let definition = |app: &str| {
        json!({"StartAt": "Run", "States": {
            "Run": {"Type": "Task", "Resource": "arn:aws:states:::emr-serverless:startJobRun.sync",
                "Parameters": {"ApplicationId": app, "Name": "nightly",
                    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/emr-job",
                    "JobDriver": {"SparkSubmit": {"EntryPoint": "s3://scripts/job.py"}}},
                "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Stopped"}], "End": true},
            "Stopped": {"Type": "Pass", "End": true}}})
    };
    let run = |app: &'static str| {
        let aws = aws.clone();
        let definition = definition(app);
        async move {
            let clock = Arc::new(VirtualClock::default());
            let engine = Engine::new(aws, clock.clone());
            let machine = engine.load(&definition).expect("valid definition");
            let exec = engine
                .run(&machine, json!({}), ExecutionOptions::default())
                .await;
            (
                serde_json::to_value(&exec).expect("serialisable"),
                clock.elapsed(),
            )
        }
    };

    let (got, elapsed) = run("ok").await;
    assert_eq!(got["status"], "SUCCEEDED", "{got}");
    assert_eq!(
        got["output"],
        json!({"ApplicationId": "ok", "JobRunId": "run1", "Name": "nightly", "State": "SUCCESS",
            "JobDriver": {"SparkSubmit": {"EntryPoint": "s3://scripts/job.py"}}, "Tags": {"team": "data"}})
    );
    // Three GetJobRun calls, two waits between them.
    assert_eq!(elapsed, Duration::from_secs(20));

    let (got, elapsed) = run("fails").await;
    assert_eq!(elapsed, Duration::from_secs(20));
    assert_eq!(got["status"], "SUCCEEDED", "caught: {got}");
    assert_eq!(got["output"]["Error"], "States.TaskFailed", "{got}");
    let cause: Value = serde_json::from_str(got["output"]["Cause"].as_str().unwrap_or_default())
        .expect("the cause is the job run as JSON");
    assert_eq!(cause["State"], "FAILED");
    assert_eq!(cause["StateDetails"], "Job failed, ExitCode: 1");
    assert_eq!(cause["JobRunId"], "run1");

    let (got, _) = run("halted").await;
    let cause: Value = serde_json::from_str(got["output"]["Cause"].as_str().unwrap_or_default())
        .expect("the cause is the job run as JSON");
    assert_eq!(cause["State"], "CANCELLED", "{got}");
    assert_eq!(polls.load(Ordering::SeqCst), 9);

    // What went over the wire: signed for emr-serverless, camelCase members, a client token.
    let requests = fake.requests();
    let start = requests
        .iter()
        .find(|r| r.method == "POST")
        .expect("a StartJobRun request");
    assert_eq!(start.path, "/applications/ok/jobruns");
    let auth = start.header("authorization").unwrap_or_default();
    assert!(
        auth.contains("/us-east-1/emr-serverless/aws4_request"),
        "{auth}"
    );
    let body: Value = serde_json::from_slice(&start.body).expect("JSON body");
    assert_eq!(
        body["jobDriver"],
        json!({"sparkSubmit": {"entryPoint": "s3://scripts/job.py"}})
    );
    assert_eq!(
        body["executionRoleArn"],
        "arn:aws:iam::123456789012:role/emr-job"
    );
    assert!(
        body["clientToken"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}
