//! Tasks against the local AWS emulator (moto), through [`AwsDispatcher`].
//!
//! Table-driven: every `tests/aws-cases/<topic>/*.json` file is a case in the format of
//! `tests/cases` (see `cases.rs`) plus an optional `setup`:
//! `{"buckets": ["name"], "objects": {"bucket/key": "text" | json}, "tables": [CreateTable request]}`.
//! Every `${p}` in the file is replaced by a prefix unique to the case and run, so cases never
//! see each other's buckets, tables or secrets.
//!
//! The emulator is found through `AWS_ENDPOINT_URL`. Outside CI it is started with
//! `scripts/local-stack.sh start` when that is unset; in CI (`CI=true`) the tests fail and
//! say how to start it, never skip.

use super::{case_files, run_case};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sfn_local::{
    AwsDispatcher, DispatcherChain, Engine, ExecutionOptions, InProcessDispatcher, TaskDispatcher,
    VirtualClock,
};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The emulator's endpoint and region.
fn emulator() -> &'static (String, String) {
    static EMULATOR: OnceLock<(String, String)> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let region = var("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
        if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
            return (endpoint, region);
        }
        let how = "start the AWS emulator with `source \"$(scripts/local-stack.sh start)\"` \
                   (it exports AWS_ENDPOINT_URL) or run `scripts/test.sh`";
        if var("CI").is_some_and(|v| v == "true") {
            panic!("AWS_ENDPOINT_URL is not set: these tests need the AWS emulator; {how}");
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/local-stack.sh"))
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/local-stack.sh: {e}; {how}"));
        assert!(
            out.status.success(),
            "scripts/local-stack.sh start failed; {how}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env_file = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let text = std::fs::read_to_string(&env_file)
            .unwrap_or_else(|e| panic!("cannot read {env_file}: {e}; {how}"));
        let endpoint = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export AWS_ENDPOINT_URL="))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
            .next()
            .unwrap_or_else(|| panic!("{env_file} has no AWS_ENDPOINT_URL; {how}"));
        (endpoint, region)
    })
}

async fn sdk_config() -> SdkConfig {
    let (endpoint, region) = emulator();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.clone()))
        .credentials_provider(aws_credential_types_for_tests())
        .load()
        .await
}

fn aws_credential_types_for_tests() -> aws_sdk_dynamodb::config::Credentials {
    aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "sfn-local-tests")
}

/// A prefix unique to this process and call: lowercase letters, digits and dashes.
fn unique_prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "sfn-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

async fn setup(config: &SdkConfig, setup: &Value) -> Result<(), String> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    for b in setup["buckets"].as_array().into_iter().flatten() {
        let b = b.as_str().ok_or("setup.buckets: strings")?;
        s3.create_bucket()
            .bucket(b)
            .send()
            .await
            .map_err(|e| format!("create bucket {b}: {e:?}"))?;
    }
    for (path, content) in setup["objects"].as_object().into_iter().flatten() {
        let (bucket, key) = path.split_once('/').ok_or("setup.objects: bucket/key")?;
        let body = match content {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .map_err(|e| format!("put s3://{path}: {e:?}"))?;
    }
    let ddb = aws_sdk_dynamodb::Client::new(config);
    for t in setup["tables"].as_array().into_iter().flatten() {
        create_table(&ddb, t).await?;
    }
    Ok(())
}

/// A table with string key attributes, from a CreateTable-like request
/// (`TableName`, `KeySchema`, `AttributeDefinitions` of type S), on demand.
async fn create_table(ddb: &aws_sdk_dynamodb::Client, t: &Value) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = t["TableName"].as_str().ok_or("table: TableName")?;
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for k in t["KeySchema"].as_array().into_iter().flatten() {
        req = req.key_schema(
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap_or("HASH")))
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    for a in t["AttributeDefinitions"].as_array().into_iter().flatten() {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap_or("S"),
                ))
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    req.send()
        .await
        .map_err(|e| format!("create table {name}: {e:?}"))?;
    Ok(())
}

#[tokio::test]
async fn aws_cases() {
    let config = sdk_config().await;
    let aws: Arc<dyn TaskDispatcher> = Arc::new(AwsDispatcher::new(&config));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-cases");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    let mut failures = Vec::new();
    for f in &files {
        let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let text = std::fs::read_to_string(f)
            .unwrap_or_default()
            .replace("${p}", &unique_prefix());
        let outcome = match serde_json::from_str::<Value>(&text) {
            Err(e) => Err(format!("not JSON: {e}")),
            Ok(case) => match setup(&config, &case["setup"]).await {
                Err(e) => Err(format!("setup: {e}")),
                Ok(()) => run_case(&case, Some(aws.clone())).await,
            },
        };
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "{} AWS cases: {} passed, {} failed",
        files.len(),
        files.len() - failures.len(),
        failures.len()
    );
    assert!(!files.is_empty(), "no cases under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} failing AWS case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Unknown services and actions are refused when the definition is loaded, not half-way.
#[tokio::test]
async fn unknown_aws_resources_fail_validation() {
    // Validation needs no AWS configuration: `from_env` loads it at the first call only.
    let chain = DispatcherChain::new()
        .with(Arc::new(InProcessDispatcher::new()))
        .with(Arc::new(AwsDispatcher::from_env()));
    let engine = Engine::new(Arc::new(chain), Arc::new(VirtualClock::default()));
    for (resource, want) in [
        (
            "arn:aws:states:::aws-sdk:glue:startJobRun",
            "service \"glue\" is not supported",
        ),
        (
            "arn:aws:states:::aws-sdk:dynamodb:putThing",
            "dynamodb has no action \"putThing\"",
        ),
        (
            "arn:aws:states:::aws-sdk:dynamodb:PutItem",
            "dynamodb has no action \"PutItem\"",
        ),
        (
            "arn:aws:states:::aws-sdk:s3:createBucket",
            "S3 action \"createBucket\" is not supported",
        ),
        (
            "arn:aws:states:::emr-serverless:startJobRun.waitForTaskToken",
            "emr-serverless does not support the .waitForTaskToken integration pattern",
        ),
    ] {
        let err = engine
            .load(&json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": true}}}))
            .err()
            .unwrap_or_else(|| panic!("{resource} loaded"))
            .to_string();
        assert!(err.contains("States.T.Resource"), "{err}");
        assert!(err.contains(want), "{resource}: {err}");
    }
    let ok = engine.load(&json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:kinesis:describeStream", "End": true}}}));
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// An endpoint nobody listens on is a task failure that names the endpoint.
#[tokio::test]
async fn unreachable_endpoint_is_a_task_failure() {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types_for_tests())
        .load()
        .await;
    let engine = Engine::new(
        Arc::new(AwsDispatcher::new(&config)),
        Arc::new(VirtualClock::default()),
    );
    let sm = engine
        .load(&json!({"StartAt": "T", "States": {"T": {"Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:dynamodb:listTables", "End": true}}}))
        .expect("valid");
    let exec = engine
        .run(&sm, json!({}), ExecutionOptions::default())
        .await;
    assert_eq!(exec.error.as_deref(), Some("States.TaskFailed"));
    let cause = exec.cause.unwrap_or_default();
    assert!(cause.contains("cannot reach http://127.0.0.1:9"), "{cause}");
}

/// Sends `POST /moto-api/config` (moto runs state machines only when told to).
fn moto_config(endpoint: &str, body: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&host).map_err(|e| format!("{host}: {e}"))?;
    let request = format!(
        "POST /moto-api/config HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'))
    {
        Ok(())
    } else {
        Err(format!(
            "moto answered {}",
            answer.lines().next().unwrap_or_default()
        ))
    }
}

/// The case files `DIVERGENCES.md` lists (as `` `topic/file.json` `` in its table), where
/// moto's interpreter is known to differ from AWS.
fn known_divergences() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("DIVERGENCES.md"))
            .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect()
}

/// Differential: the table-driven cases of some topics run in moto's Step Functions
/// interpreter too (a port of LocalStack's, which is checked against AWS), and must give the
/// result our engine is expected to give, unless `DIVERGENCES.md` lists the case.
#[tokio::test]
async fn differential_against_moto() {
    let config = sdk_config().await;
    let (endpoint, _) = emulator();
    moto_config(
        endpoint,
        r#"{"stepfunctions":{"execute_state_machine":true}}"#,
    )
    .expect("enable moto's state machine execution");
    let aws = AwsDispatcher::new(&config);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files = Vec::new();
    for topic in [
        "pass",
        "choice",
        "intrinsics",
        "terminal",
        "map",
        "parallel",
        "variables",
        "catch",
        "retry",
        "execution",
    ] {
        case_files(&root.join(topic), &mut files);
    }
    let known = known_divergences();
    let prefix = unique_prefix();
    let mut runnable = Vec::new();
    for f in &files {
        let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap_or_default())
            .unwrap_or(Value::Null);
        let expected = &case["expected"];
        let status = expected["status"].as_str().unwrap_or_default();
        // Only self-contained, deterministic cases with a definite result, and nothing that
        // sleeps: moto runs Waits and retry intervals in real time.
        let text = case["definition"].to_string();
        let sleeps = text.contains(r#""Type":"Wait""#) || text.contains(r#""Retry":"#);
        // moto needs seconds for a Map over hundreds of items.
        let large = case["input"].to_string().len() > 2_000;
        if !sleeps
            && !large
            && case.get("handlers").is_none()
            && case.get("machines").is_none()
            && (status == "SUCCEEDED" && expected.get("output").is_some()
                || status == "FAILED" && expected.get("error").is_some())
            && !name.contains("uuid")
            && !name.contains("random")
        {
            runnable.push((name, case));
        }
    }
    let compared = runnable.len();
    let (aws, prefix) = (&aws, &prefix);
    // moto runs each execution on a thread of its own: a few at a time keeps the test short.
    let verdicts: Vec<(String, Result<(), String>)> =
        futures_util::stream::iter(runnable.into_iter().enumerate())
            .map(|(n, (name, case))| async move {
                let expected = &case["expected"];
                let verdict = match run_in_moto(aws, prefix, n, &case).await {
                    Err(e) => Err(format!("moto: {e}")),
                    Ok(got) => {
                        let same = got["status"] == expected["status"]
                            && ["output", "error"].iter().all(|k| {
                                expected.get(*k).is_none() || got.get(*k) == expected.get(*k)
                            });
                        if same {
                            Ok(())
                        } else {
                            Err(format!("moto gave {got}, sfn-local {expected}"))
                        }
                    }
                };
                (name, verdict)
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let (mut agreed, mut known_seen) = (0, 0);
    let mut failures = Vec::new();
    for (name, verdict) in verdicts {
        match verdict {
            Ok(()) => agreed += 1,
            Err(_) if known.contains(&name) => known_seen += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "differential: {compared} definitions, {agreed} identical in moto, {known_seen} known divergences"
    );
    assert!(compared >= 60, "only {compared} definitions compared");
    assert!(
        failures.is_empty(),
        "{} unexplained difference(s) with moto (list them in DIVERGENCES.md with the AWS \
         documentation that decides, or fix the engine):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn run_in_moto(
    aws: &AwsDispatcher,
    prefix: &str,
    n: usize,
    case: &Value,
) -> Result<Value, String> {
    let sfn = |action: &str| format!("arn:aws:states:::aws-sdk:sfn:{action}");
    let created = aws
        .call(
            &sfn("createStateMachine"),
            &json!({
                "Name": format!("{prefix}-{n}"),
                "Definition": case["definition"].to_string(),
                "RoleArn": "arn:aws:iam::123456789012:role/sfn-local-differential",
            }),
        )
        .await
        .map_err(|f| f.to_string())?;
    // Members in PascalCase, as in a definition: the dispatcher converts them for the wire.
    let arn = created["StateMachineArn"].as_str().unwrap_or_default();
    let input = case.get("input").cloned().unwrap_or(json!({}));
    let started = aws
        .call(
            &sfn("startExecution"),
            &json!({"StateMachineArn": arn, "Name": "case", "Input": input.to_string()}),
        )
        .await
        .map_err(|f| f.to_string())?;
    let execution = started["ExecutionArn"].as_str().unwrap_or_default();
    // Generous: moto runs the execution on a thread of its own, which a loaded 2-core
    // machine can starve for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let d = aws
            .call(
                &sfn("describeExecution"),
                &json!({ "ExecutionArn": execution }),
            )
            .await
            .map_err(|f| f.to_string())?;
        match d["Status"].as_str() {
            Some("RUNNING") | None => {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await
            }
            Some(status) => {
                let mut got = json!({ "status": status });
                if let Some(o) = d["Output"].as_str() {
                    // moto returns a string output unquoted (AWS: JSON text, `"yes"`); see
                    // DIVERGENCES.md. Read such an output as the string it stands for.
                    got["output"] =
                        serde_json::from_str(o).unwrap_or_else(|_| Value::String(o.to_string()));
                }
                for (from, to) in [("Error", "error"), ("Cause", "cause")] {
                    if let Some(v) = d.get(from) {
                        got[to] = v.clone();
                    }
                }
                return Ok(got);
            }
        }
    }
    Err("the execution did not end within 60 s".into())
}
