//! The control-plane API in-process: API Gateway v2 events from `tests/fixtures/api/` (the
//! caller's claims, edited per request for method, path and body) through the `api` function's
//! handler, against the real state table and the emulator's Step Functions.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ferry_core::state::DynamoDbStateStore;
use ferry_core::RunStatus;
use ferry_handlers::context::ApiConfig;
use ferry_handlers::{Config, Context, Function};
use serde_json::{json, Value};

pub(crate) struct Api {
    pub(crate) cx: Context,
    pub(crate) spec_name: String,
    pub(crate) spec_text: String,
    pub(crate) state_table: String,
}

pub(crate) fn fixture(name: &str) -> Value {
    let path = ferry_tests::repo_root().join(format!("tests/fixtures/api/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `caller`'s fixture event, as `METHOD path?query` with `body`.
fn event(caller: &str, method: &str, target: &str, body: Option<&str>) -> Value {
    let mut e = fixture(caller);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!(query);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    if let Some(b) = body {
        e["body"] = json!(b);
    }
    e
}

impl Api {
    pub(crate) async fn new(state_machine: Option<String>) -> Api {
        Api::with(state_machine, |_| {}).await
    }

    /// An API over a fresh state table and bucket, its settings changed by `configure`.
    pub(crate) async fn with(
        state_machine: Option<String>,
        configure: impl FnOnce(&mut ApiConfig),
    ) -> Api {
        let sdk = ferry_tests::aws_config().await;
        let prefix = ferry_tests::unique_name("api");
        let (_, bucket) = ferry_tests::s3_bucket(&prefix).await;
        let state_table = format!("{prefix}state");
        DynamoDbStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), &state_table)
            .create_table_if_missing()
            .await
            .unwrap();
        let mut api_config = ApiConfig::new("a-test-key-of-some-length");
        api_config.connection_secret_prefix = format!("{prefix}/connections/");
        configure(&mut api_config);
        let cx = Context::from_aws(
            &Config {
                state_table: state_table.clone(),
                bucket,
                migration_state_machine: state_machine,
                api: Some(api_config),
            },
            &sdk,
        );
        let spec_name = format!("{prefix}ra");
        let spec_text = std::fs::read_to_string(
            ferry_tests::repo_root().join("examples/rates-availability.toml"),
        )
        .unwrap()
        .replace(
            "name = \"rates-availability\"",
            &format!("name = \"{spec_name}\""),
        );
        Api {
            cx,
            spec_name,
            spec_text,
            state_table,
        }
    }

    /// Calls the api function as Lambda would: the event in, API Gateway's response out.
    pub(crate) async fn call(
        &self,
        caller: &str,
        method: &str,
        target: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let out = Function::Api
            .invoke(&self.cx, event(caller, method, target, body))
            .await
            .expect("the api function always answers");
        let status = out["statusCode"].as_u64().unwrap() as u16;
        assert_eq!(out["headers"]["content-type"], "application/json");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        (status, body)
    }
}

pub(crate) async fn create_state_machine(name: &str) -> String {
    create_state_machine_with(
        name,
        json!({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
    )
    .await
}

/// A state machine in the emulator running `definition`.
pub(crate) async fn create_state_machine_with(name: &str, definition: Value) -> String {
    let sdk = ferry_tests::aws_config().await;
    let out = sfn_local::AwsDispatcher::new(&sdk)
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
    // Members in PascalCase, as Step Functions shows them (the dispatcher converts the wire's).
    out["StateMachineArn"]
        .as_str()
        .unwrap_or_else(|| panic!("CreateStateMachine answered {out}"))
        .to_string()
}

async fn executions_of(state_machine: &str) -> usize {
    let sdk = ferry_tests::aws_config().await;
    let out = sfn_local::AwsDispatcher::new(&sdk)
        .call(
            "arn:aws:states:::aws-sdk:sfn:listExecutions",
            &json!({"StateMachineArn": state_machine}),
        )
        .await
        .expect("ListExecutions");
    out["Executions"]
        .as_array()
        .unwrap_or_else(|| panic!("ListExecutions answered {out}"))
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_runs_through_the_api() {
    let machine = create_state_machine(&ferry_tests::unique_name("sm")).await;
    let api = Api::new(Some(machine.clone())).await;
    let name = api.spec_name.clone();
    let runs = format!("/migrations/{name}/runs");

    // No token: 401, whatever the route.
    let (status, body) = api
        .call("no-token", "GET", &format!("/migrations/{name}"), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));

    // A spec with mistakes: 400 naming every field.
    let bad = api.spec_text.replace(
        "template = \"HOTEL#{hotel_id}\"",
        "template = \"HOTEL#{hotelid}\"",
    );
    let (status, body) = api
        .call("hotels-caller", "POST", "/migrations", Some(&bad))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_SPEC");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("tables[0].key.partition.template"),
        "{body}"
    );

    // Create (TOML), then update (the same spec as JSON).
    let (status, body) = api
        .call("hotels-caller", "POST", "/migrations", Some(&api.spec_text))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("NOT_STARTED")),
        "{body}"
    );
    let as_json =
        serde_json::to_string(&toml::from_str::<toml::Value>(&api.spec_text).unwrap()).unwrap();
    let (status, body) = api
        .call("hotels-caller", "POST", "/migrations", Some(&as_json))
        .await;
    assert_eq!(status, 200, "{body}");

    // Another group sees nothing, and cannot take it over.
    for (method, target) in [
        ("GET", format!("/migrations/{name}")),
        ("POST", runs.clone()),
        ("GET", runs.clone()),
    ] {
        let (status, body) = api
            .call("other-group-caller", method, &target, Some("{}"))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{method} {target}"
        );
    }
    let flights = api
        .spec_text
        .replace("group = \"hotels\"", "group = \"flights\"");
    let (status, _) = api
        .call("other-group-caller", "POST", "/migrations", Some(&flights))
        .await;
    assert_eq!(
        status, 404,
        "another group's migration cannot be overwritten"
    );

    // Start: 202; a second start while it runs: 409 and still one execution.
    let (status, started) = api
        .call(
            "hotels-caller",
            "POST",
            &runs,
            Some(r#"{"domain": "rates", "parallelism": 4}"#),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    assert!(started["execution_arn"]
        .as_str()
        .unwrap()
        .ends_with(&run_id));
    let (status, body) = api.call("hotels-caller", "POST", &runs, Some("{}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("MIGRATION_ALREADY_RUNNING"))
    );
    assert_eq!(executions_of(&machine).await, 1);
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            &runs,
            Some(r#"{"parallelism": 0}"#),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_INPUT"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("parallelism:"),
        "{body}"
    );
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            &runs,
            Some(r#"{"domian": "rates"}"#),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("domian"),
        "{body}"
    );

    let (status, body) = api
        .call("hotels-caller", "GET", &format!("/migrations/{name}"), None)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PROCESSING")));
    assert_eq!(body["run"]["run_id"], run_id.as_str());

    // Delete while running: 409. Cancel: CANCELLED; then delete works.
    let run_path = format!("{runs}/{run_id}");
    let (status, body) = api.call("hotels-caller", "DELETE", &run_path, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("RUN_STILL_PROCESSING"))
    );
    let (status, body) = api
        .call("hotels-caller", "POST", &format!("{run_path}/cancel"), None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("CANCELLED")),
        "{body}"
    );
    let (status, body) = api.call("hotels-caller", "GET", &run_path, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let (status, _) = api.call("hotels-caller", "DELETE", &run_path, None).await;
    assert_eq!(status, 200);
    let (status, _) = api.call("hotels-caller", "GET", &run_path, None).await;
    assert_eq!(status, 404);

    // Three more runs, paged two at a time, newest first; a forged token is a 400.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, started) = api.call("hotels-caller", "POST", &runs, Some("{}")).await;
        let id = started["run_id"].as_str().unwrap().to_string();
        let (status, _) = api
            .call(
                "hotels-caller",
                "POST",
                &format!("{runs}/{id}/cancel"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    let (status, page) = api
        .call("hotels-caller", "GET", &format!("{runs}?limit=2"), None)
        .await;
    assert_eq!(status, 200);
    let got: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let token = page["next_token"].as_str().unwrap().to_string();
    let (status, page2) = api
        .call(
            "hotels-caller",
            "GET",
            &format!("{runs}?limit=2&next_token={token}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page2["runs"][0]["run_id"], ids[0].as_str());
    assert!(page2["next_token"].is_null());
    let forged = format!(
        "{}x.{}",
        &token[..token.find('.').unwrap()],
        &token[token.find('.').unwrap() + 1..]
    );
    let (status, body) = api
        .call(
            "hotels-caller",
            "GET",
            &format!("{runs}?next_token={forged}"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_INPUT"))
    );
    let (status, _) = api
        .call("hotels-caller", "GET", &format!("{runs}?limit=0"), None)
        .await;
    assert_eq!(status, 400);
    let (status, body) = api.call("hotels-caller", "GET", "/nowhere", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_step_functions_refuses_is_recorded_failed_with_the_reason() {
    let api = Api::new(Some(
        "arn:aws:states:us-east-1:123456789012:stateMachine:ferry-does-not-exist".into(),
    ))
    .await;
    let name = api.spec_name.clone();
    let (status, _) = api
        .call("hotels-caller", "POST", "/migrations", Some(&api.spec_text))
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            &format!("/migrations/{name}/runs"),
            Some("{}"),
        )
        .await;
    assert!(status >= 500, "{status} {body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("recorded FAILED") && message.contains("StateMachineDoesNotExist"),
        "{body}"
    );
    let (_, page) = api
        .call(
            "hotels-caller",
            "GET",
            &format!("/migrations/{name}/runs"),
            None,
        )
        .await;
    let run = &page["runs"][0];
    assert_eq!(run["status"], "FAILED");
    assert_eq!(run["error"]["state"], "StartExecution");
    assert!(
        run["error"]["cause"]
            .as_str()
            .unwrap()
            .contains("StateMachineDoesNotExist"),
        "{run}"
    );
    let (_, state) = api
        .call("hotels-caller", "GET", &format!("/migrations/{name}"), None)
        .await;
    assert_eq!(state["status"], RunStatus::Failed.as_str());
}

/// Everything the process logs, for searching.
#[derive(Clone, Default)]
pub(crate) struct LogCapture(pub(crate) Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures every log line of this test process (nextest runs each test in its own).
    pub(crate) fn install() -> LogCapture {
        let logs = LogCapture::default();
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .try_init();
        logs
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_reports_every_check_and_never_the_password() {
    let logs = LogCapture::install();
    let api = Api::new(None).await;
    let (db, client) = ferry_tests::database(
        "conn",
        "CREATE TABLE public.rates (id int primary key, amount numeric); \
         INSERT INTO rates SELECT g, g FROM generate_series(1, 50) g; ANALYZE rates;",
    )
    .await;
    drop(client);
    let url = ferry_tests::postgres_url();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    const PASSWORD: &str = "hunter2-do-not-print";

    // A target that exists and holds items fails its check; an absent one passes.
    let sdk = ferry_tests::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let taken = format!("{}Taken", api.spec_name);
    {
        use aws_sdk_dynamodb::types as ddb;
        ferry_tests::create_table(&dynamodb, &taken).await;
        dynamodb
            .put_item()
            .table_name(&taken)
            .item("pk", ddb::AttributeValue::S("x".into()))
            .send()
            .await
            .unwrap();
    }
    let body = json!({
        "host": "127.0.0.1", "port": port, "database": db, "user": "postgres", "password": PASSWORD,
        "tables": ["public.rates", "public.missing"],
        "table_prefix": api.spec_name, "target_tables": ["Free", "Taken"],
    })
    .to_string();
    let (status, answer) = api
        .call("hotels-caller", "POST", "/connections/test", Some(&body))
        .await;
    assert_eq!(status, 200, "{answer}");
    let check = |name: &str| {
        answer["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {answer}"))
            .clone()
    };
    assert_eq!(check("reachable")["ok"], true);
    assert_eq!(check("authentication")["ok"], true, "{answer}");
    assert!(check("server_version")["message"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL 1"));
    let rates = check("table public.rates");
    assert_eq!(rates["ok"], true);
    assert!(
        rates["message"].as_str().unwrap().contains("about 50 rows"),
        "{rates}"
    );
    assert_eq!(check("table public.missing")["ok"], false);
    assert_eq!(check(&format!("target {}Free", api.spec_name))["ok"], true);
    assert_eq!(check(&format!("target {taken}"))["ok"], false);
    assert_eq!(answer["ok"], false);
    assert!(answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["elapsed_ms"].is_u64()));

    // Unreachable: every later check says why it did not run.
    let body = json!({"host": "127.0.0.1", "port": 1, "database": db, "user": "postgres", "password": PASSWORD}).to_string();
    let (status, answer) = api
        .call("hotels-caller", "POST", "/connections/test", Some(&body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["checks"][0]["ok"], false);
    assert!(
        answer["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{answer}"
    );

    // A user the server does not know: authentication fails with the server's reason.
    let body = json!({"host": "127.0.0.1", "port": port, "database": db, "user": "nobody_here", "password": PASSWORD}).to_string();
    let (_, answer) = api
        .call("hotels-caller", "POST", "/connections/test", Some(&body))
        .await;
    let auth = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "authentication")
        .unwrap()
        .clone();
    assert_eq!(auth["ok"], false);
    assert!(
        auth["message"].as_str().unwrap().contains("nobody_here"),
        "{auth}"
    );

    // A malformed body: 400 naming the field.
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            "/connections/test",
            Some(r#"{"host": "h", "port": "x"}"#),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_INPUT"))
    );
    assert!(
        body["message"].as_str().unwrap().starts_with("port:"),
        "{body}"
    );

    let logged = logs.text();
    assert!(!logged.is_empty(), "the handlers log");
    assert!(
        !logged.contains(PASSWORD),
        "the password reached a log line"
    );
    assert!(!answer.to_string().contains(PASSWORD));
}

/// A tool of the project's Python virtualenv, installed by `scripts/lib/common.sh` if missing.
pub(crate) fn venv_tool(ensure: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source scripts/lib/common.sh && {ensure}"))
        .current_dir(ferry_tests::repo_root())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{ensure}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_openapi_document_validates() {
    let validator = venv_tool("ensure_openapi_validator");
    let document = ferry_tests::repo_root().join("docs/openapi.yaml");
    let out = std::process::Command::new(&validator)
        .arg(&document)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a reference to a schema that does not exist is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("openapi.yaml");
    let text = std::fs::read_to_string(&document).unwrap().replace(
        "#/components/schemas/RunId\"",
        "#/components/schemas/NoSuchSchema\"",
    );
    std::fs::write(&broken, text).unwrap();
    let out = std::process::Command::new(&validator)
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the validator accepted a dangling $ref"
    );
}
