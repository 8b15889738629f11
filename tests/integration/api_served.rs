//! The api function served over real HTTP by `cargo lambda watch`, then schemathesis against
//! it with a valid token: no 5xx, no answer that breaks `docs/openapi.yaml`.
//!
//! `cargo lambda watch --only-lambda-apis` serves HTTP, turns each request into the API
//! Gateway v2 event and runs the Lambda runtime API; the function is the `api` binary the
//! workspace build already made (`cargo build --workspace --all-targets`, as
//! `scripts/test.sh` does), started here against that runtime API. Letting cargo-lambda build
//! it instead would compile the function alone, with other features unified than the
//! workspace build, and rebuild most dependencies (minutes). There is no authorizer locally,
//! so the function runs with `FERRY_API_LOCAL_JWT_SECRET` and the test signs HS256 tokens.
//! cargo-lambda and schemathesis come from the project's venv (`scripts/lib/common.sh`); when
//! they cannot be installed the test fails, it never skips.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

use crate::api::{create_state_machine, venv_tool, Api};

/// What schemathesis checks: no 5xx, every status, content type and body as documented.
pub(crate) const SCHEMATHESIS_CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

const LOCAL_SECRET: &str = "local-jwt-secret-for-the-served-api-test";

/// A process group (the process and whatever it starts), ended when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command, log: &Path) -> Group {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log).unwrap();
    let child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    Group(child)
}

/// The directory the test binary was built in (`<target>/<profile>`): the api binary of the
/// same build is next to it.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test binary>")
        .to_path_buf()
}

fn token(secret: &str, groups: &[&str]) -> String {
    let claims = json!({
        "sub": "local-developer",
        "cognito:groups": groups,
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(120), self.client.request(request))
            .await
            .expect("an answer within 120 s")
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{method} {path}: {status} {text}"
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_served_by_cargo_lambda_watch_answers_over_http_and_passes_schemathesis() {
    let cargo_lambda = venv_tool("ensure_cargo_lambda");
    let schemathesis = venv_tool("ensure_schemathesis");
    let api_binary = profile_dir().join("api");
    assert!(
        api_binary.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace --all-targets`; \
         scripts/test.sh does)",
        api_binary.display()
    );

    // The same fresh state table and bucket an in-process test gets, and state machines that
    // wait, so starts made over HTTP (by us or by schemathesis) stay PROCESSING.
    let machine = create_state_machine(&ferry_tests::unique_name("served")).await;
    let api = Api::new(Some(machine.clone())).await;
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let _watch = spawn(
        Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .arg("--manifest-path")
            .arg(ferry_tests::repo_root().join("Cargo.toml")),
        &logs.path().join("watch.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port} within 60 s:\n{}",
            tail(&logs.path().join("watch.log"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let services = ferry_tests::services();
    let function_log = logs.path().join("api.log");
    let _function = spawn(
        Command::new(&api_binary)
            .envs(services.env())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("RUST_LOG", "info")
            .env("FERRY_STATE_TABLE", &api.state_table)
            .env("FERRY_BUCKET", &api.cx.bucket)
            .env("FERRY_MIGRATION_STATE_MACHINE_ARN", &machine)
            .env("FERRY_EXPORT_STATE_MACHINE_ARN", &machine)
            .env("FERRY_IMPORT_STATE_MACHINE_ARN", &machine)
            .env("FERRY_API_TOKEN_KEY", "a-served-test-key-of-some-length")
            .env(
                "FERRY_CONNECTION_SECRET_PREFIX",
                format!("{}/connections/", api.state_table),
            )
            .env("FERRY_API_LOCAL_JWT_SECRET", LOCAL_SECRET),
        &function_log,
    );
    let http = Http {
        client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        base: format!("http://127.0.0.1:{port}"),
    };

    // No token, a token signed with another secret: 401, through the whole HTTP path.
    let (status, body) = http.call("GET", "/connections", None, None).await;
    eprintln!(
        "cargo lambda watch served its first request after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHORIZED")),
        "{}",
        tail(&function_log)
    );
    let forged = token("another-secret-that-is-long-enough-too", &["hotels"]);
    let (status, _) = http.call("GET", "/connections", Some(&forged), None).await;
    assert_eq!(status, 401);

    // The README's way to get a token (scripts/lib/common.sh), checked by the function.
    let hotels = venv_tool(&format!(
        "FERRY_API_LOCAL_JWT_SECRET={LOCAL_SECRET} local_api_token hotels"
    ));
    let (status, body) = http
        .call("POST", "/migrations", Some(&hotels), Some(&api.spec_text))
        .await;
    assert_eq!(status, 200, "{body}");
    let name = api.spec_name.clone();
    let (status, body) = http
        .call("GET", &format!("/migrations/{name}"), Some(&hotels), None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("NOT_STARTED"))
    );
    let (status, started_run) = http
        .call(
            "POST",
            &format!("/migrations/{name}/runs"),
            Some(&hotels),
            Some("{}"),
        )
        .await;
    assert_eq!(status, 202, "{started_run}");
    let (status, body) = http
        .call(
            "GET",
            &format!("/migrations/{name}/runs?limit=1"),
            Some(&hotels),
            None,
        )
        .await;
    assert_eq!(
        (status, body["runs"][0]["run_id"].clone()),
        (200, started_run["run_id"].clone())
    );
    let flights = token(LOCAL_SECRET, &["flights"]);
    let (status, _) = http
        .call("GET", &format!("/migrations/{name}"), Some(&flights), None)
        .await;
    assert_eq!(
        status, 404,
        "another group's migration does not exist for it"
    );
    let (status, created) = http
        .call(
            "POST",
            "/connections",
            Some(&hotels),
            Some(r#"{"host": "db.example", "database": "d", "user": "u", "password": "over-http-Pw"}"#),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, listed) = http.call("GET", "/connections", Some(&hotels), None).await;
    assert_eq!(
        (status, listed["connections"][0]["id"].clone()),
        (200, created["id"].clone())
    );

    // schemathesis: every operation of docs/openapi.yaml with the hotels token, valid data
    // first, then invalid parameters. Invalid POST bodies stay out of the HTTP run: schemathesis
    // sends bytes that are not UTF-8 there, which API Gateway would hand over base64-encoded
    // (the function answers 400) but cargo lambda watch answers itself with a 500. The
    // in-process tests cover malformed bodies. One worker: with two, hypothesis parses source
    // in two threads at once and CPython 3.11 fails ("AST constructor recursion depth mismatch").
    for (mode, extra) in [
        ("positive", vec![]),
        ("negative", vec!["--exclude-method", "POST"]),
    ] {
        let report = logs.path().join(format!("schemathesis-{mode}"));
        let started = Instant::now();
        let out = Command::new(&schemathesis)
            .arg("run")
            .arg(ferry_tests::repo_root().join("docs/openapi.yaml"))
            .args(["--url", &http.base])
            .args(["--header", &format!("Authorization: Bearer {hotels}")])
            .args(["--checks", SCHEMATHESIS_CHECKS])
            .args(["--mode", mode, "--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "25", "--workers", "1", "--seed", "1"])
            .args(["--request-timeout", "30", "--generation-database", "none"])
            .args(extra)
            .arg("--report-dir")
            .arg(&report)
            .current_dir(logs.path())
            .output()
            .expect("schemathesis runs");
        eprintln!(
            "schemathesis ({mode}) took {} s",
            started.elapsed().as_secs()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis ({mode}) found problems:\n{stdout}\n{}\n--- the function's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&function_log)
        );
        // It did reach the API: its summary counts the operations that passed.
        assert!(stdout.contains("passed"), "{stdout}");
    }
    assert!(
        !std::fs::read_to_string(&function_log)
            .unwrap()
            .contains("over-http-Pw"),
        "the password reached the function's log"
    );
}
