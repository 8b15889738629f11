//! Stored connections and standalone transfers through the api function in-process: the
//! caller fixtures of `tests/fixtures/api/`, the real state table, Secrets Manager and Step
//! Functions of the emulator.

use serde_json::{json, Value};

use crate::api::{create_state_machine, create_state_machine_with, Api, LogCapture};

const PASSWORD: &str = "s3cret-Pa55word-never-shown";

/// A Step Functions call as a state machine makes it: PascalCase in and out.
async fn sfn(operation: &str, input: Value) -> Value {
    let sdk = ferry_tests::aws_config().await;
    sfn_local::AwsDispatcher::new(&sdk)
        .call(&format!("arn:aws:states:::aws-sdk:sfn:{operation}"), &input)
        .await
        .unwrap_or_else(|err| panic!("{operation}: {err:?}"))
}

/// `POST route` with `body` is a 400 whose message names `field`.
async fn refused_naming(api: &Api, route: &str, body: &str, field: &str) {
    let (status, answer) = api.call("hotels-caller", "POST", route, Some(body)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}: {answer}"
    );
    assert!(
        answer["message"].as_str().unwrap().contains(field),
        "{body}: {answer}"
    );
}

fn connection_body(name: &str) -> String {
    json!({
        "name": name, "host": "db.internal.example", "port": 5433, "database": "lipsdb",
        "user": "ferry_reader", "password": PASSWORD, "sslmode": "require",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_connections_keep_the_password_in_secrets_manager_only() {
    let logs = LogCapture::install();
    let api = Api::new(None).await;
    let sdk = ferry_tests::aws_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let mut answers = String::new();

    let (status, _) = api
        .call(
            "no-token",
            "POST",
            "/connections",
            Some(&connection_body("x")),
        )
        .await;
    assert_eq!(status, 401);
    for (body, field) in [
        (r#"{"host": "h", "port": "x"}"#, "port:"),
        (
            r#"{"host": "h", "database": "d", "user": "u", "password": ""}"#,
            "password:",
        ),
        (
            r#"{"host": "h", "database": "d", "user": "u", "password": "p", "sslmode": "maybe"}"#,
            "sslmode:",
        ),
        (
            r#"{"host": "h", "database": "d", "user": "u", "password": "p", "group": "flights"}"#,
            "group:",
        ),
    ] {
        refused_naming(&api, "/connections", body, field).await;
    }

    let (status, created) = api
        .call(
            "hotels-caller",
            "POST",
            "/connections",
            Some(&connection_body("main")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    answers.push_str(&created.to_string());
    let id = created["id"].as_str().unwrap().to_string();
    let arn = created["secret_arn"].as_str().unwrap().to_string();
    assert_eq!(created["group"], "hotels");
    assert_eq!(
        (created["host"].as_str(), created["port"].as_u64()),
        (Some("db.internal.example"), Some(5433))
    );
    assert!(created.get("password").is_none());

    // The secret holds the credentials in the RDS form a spec's secret_arn reads.
    let secret = secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert!(secret
        .name()
        .unwrap()
        .ends_with(&format!("/connections/{id}")));
    let stored: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(
        (stored["username"].as_str(), stored["password"].as_str()),
        (Some("ferry_reader"), Some(PASSWORD))
    );
    // The state table's record has the ARN and never the password.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let item = dynamodb
        .scan()
        .table_name(&api.state_table)
        .send()
        .await
        .unwrap();
    let raw = format!("{:?}", item.items());
    assert!(raw.contains(&arn) && !raw.contains(PASSWORD), "{raw}");

    // Two more; pages of two, newest first; another group sees none of them.
    let mut ids = vec![id.clone()];
    for name in ["second", "third"] {
        let (_, c) = api
            .call(
                "hotels-caller",
                "POST",
                "/connections",
                Some(&connection_body(name)),
            )
            .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let (status, page) = api
        .call("hotels-caller", "GET", "/connections?limit=2", None)
        .await;
    assert_eq!(status, 200, "{page}");
    answers.push_str(&page.to_string());
    let listed: Vec<&str> = page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let token = page["next_token"].as_str().unwrap().to_string();
    let (_, page2) = api
        .call(
            "hotels-caller",
            "GET",
            &format!("/connections?limit=2&next_token={token}"),
            None,
        )
        .await;
    assert_eq!(page2["connections"][0]["id"], ids[0].as_str());
    assert!(page2["next_token"].is_null(), "{page2}");
    // The token is bound to the caller's groups and to its listing; an edited one is a 400.
    for (caller, target) in [
        (
            "other-group-caller",
            format!("/connections?next_token={token}"),
        ),
        ("hotels-caller", format!("/transfers?next_token={token}")),
        ("hotels-caller", format!("/connections?next_token={token}x")),
    ] {
        let (status, answer) = api.call(caller, "GET", &target, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{target}"
        );
    }
    let (status, theirs) = api
        .call("other-group-caller", "GET", "/connections", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(theirs["connections"], json!([]));
    let (status, _) = api
        .call(
            "other-group-caller",
            "DELETE",
            &format!("/connections/{id}"),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "another group's connection does not exist for it"
    );

    // A stored migration reading through the secret holds the connection.
    let uses = api.spec_text.replacen(
        "connection = { env = \"FERRY_DATABASE_URL\" }",
        &format!("connection = {{ secret_arn = \"{arn}\" }}"),
        1,
    );
    assert_ne!(uses, api.spec_text);
    let (status, body) = api
        .call("hotels-caller", "POST", "/migrations", Some(&uses))
        .await;
    assert_eq!(status, 200, "{body}");
    let connection = format!("/connections/{id}");
    let (status, refused) = api.call("hotels-caller", "DELETE", &connection, None).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("CONNECTION_IN_USE")),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains(&api.spec_name),
        "{refused}"
    );
    assert!(secrets
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .is_ok());
    // Once the spec reads elsewhere, the connection and its secret go.
    let (status, _) = api
        .call("hotels-caller", "POST", "/migrations", Some(&api.spec_text))
        .await;
    assert_eq!(status, 200);
    let (status, deleted) = api.call("hotels-caller", "DELETE", &connection, None).await;
    assert_eq!(
        (status, deleted["deleted"].as_str()),
        (200, Some(id.as_str()))
    );
    assert!(
        secrets
            .describe_secret()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "the secret is deleted with its connection"
    );
    let (status, _) = api.call("hotels-caller", "DELETE", &connection, None).await;
    assert_eq!(status, 404);

    let logged = logs.text();
    assert!(logged.contains("connection stored"), "the handlers log");
    assert!(
        !logged.contains(PASSWORD),
        "the password reached a log line"
    );
    assert!(
        !answers.contains(PASSWORD),
        "the password reached an answer"
    );
}

/// Polls `GET /transfers` until the transfer `id` is no longer PROCESSING.
async fn settled(api: &Api, id: &str) -> Value {
    for _ in 0..120 {
        let (status, page) = api.call("hotels-caller", "GET", "/transfers", None).await;
        assert_eq!(status, 200, "{page}");
        let found = page["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("transfer {id} not listed: {page}"));
        if found["status"] != "PROCESSING" {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("transfer {id} still PROCESSING after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_and_imports_start_their_machines_and_follow_the_executions() {
    let waiting = create_state_machine(&ferry_tests::unique_name("export")).await;
    let failing = create_state_machine_with(
        &ferry_tests::unique_name("import"),
        json!({"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Ferry.ImportFailed", "Cause": "the import into T ended FAILED"}}}),
    )
    .await;
    let api = Api::with(None, |config| {
        config.export_state_machine = Some(waiting.clone());
        config.import_state_machine = Some(failing.clone());
    })
    .await;
    let bucket = api.cx.bucket.clone();

    // An export: the machine gets exactly its input; the transfer is PROCESSING.
    let (status, export) = api
        .call(
            "hotels-caller",
            "POST",
            "/exports",
            Some(r#"{"table": "ferry-demo-BaseRate", "pitr": false, "poll_seconds": 5}"#),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    assert_eq!(
        (export["kind"].as_str(), export["status"].as_str()),
        (Some("EXPORT"), Some("PROCESSING"))
    );
    let arn = export["execution_arn"].as_str().unwrap().to_string();
    assert!(arn.ends_with(&export_id), "named by the transfer id: {arn}");
    let described = sfn("describeExecution", json!({"ExecutionArn": arn})).await;
    let input: Value = serde_json::from_str(described["Input"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({
            "bucket": bucket,
            "tables": [{
                "table": "ferry-demo-BaseRate", "dynamodb_table": "ferry-demo-BaseRate",
                "export_prefix": format!("transfers/{export_id}/export/ferry-demo-BaseRate/"),
                "client_token": input["tables"][0]["client_token"], "pitr": false,
            }],
            "poll_seconds": 5,
        })
    );

    // Refused while it runs; another group neither sees nor deletes it.
    let target = format!("/transfers/{export_id}");
    let (status, body) = api.call("hotels-caller", "DELETE", &target, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("TRANSFER_STILL_PROCESSING"))
    );
    let (status, _) = api
        .call("other-group-caller", "DELETE", &target, None)
        .await;
    assert_eq!(status, 404);
    let (_, theirs) = api
        .call("other-group-caller", "GET", "/transfers", None)
        .await;
    assert_eq!(theirs["transfers"], json!([]));

    // Stopped outside ferry: the next read records it CANCELLED, then it may be deleted.
    sfn(
        "stopExecution",
        json!({"ExecutionArn": arn, "Cause": "operator"}),
    )
    .await;
    let (status, cancelled) = api
        .call("hotels-caller", "GET", "/transfers?status=CANCELLED", None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(
        cancelled["transfers"][0]["id"],
        export_id.as_str(),
        "{cancelled}"
    );
    let (status, _) = api.call("hotels-caller", "DELETE", &target, None).await;
    assert_eq!(status, 200);

    // Bad imports: 400 naming the field, nothing started.
    for (body, field) in [
        (
            r#"{"table": "T1x", "prefix": "in/", "partition_key": {"name": "pk", "type": "X"}}"#,
            "partition_key.type:",
        ),
        (
            r#"{"table": "a b", "prefix": "in/", "partition_key": {"name": "pk", "type": "S"}}"#,
            "table:",
        ),
        (
            r#"{"table": "T1x", "prefix": "in/", "partition_key": {"name": "pk", "type": "S"}, "extra": 1}"#,
            "extra",
        ),
        (
            r#"{"table": "T1x", "partition_key": {"name": "pk", "type": "S"}}"#,
            "prefix",
        ),
    ] {
        refused_naming(&api, "/imports", body, field).await;
    }
    assert_eq!(
        sfn("listExecutions", json!({"StateMachineArn": failing})).await["Executions"],
        json!([])
    );

    // An import whose execution fails: FAILED with the machine's error and cause.
    let (status, import) = api
        .call(
            "hotels-caller",
            "POST",
            "/imports",
            Some(
                r#"{"table": "ImportedRates", "prefix": "exports/rates/", "compression": "NONE",
                    "partition_key": {"name": "pk", "type": "S"}, "tags": {"team": "hotels"}}"#,
            ),
        )
        .await;
    assert_eq!(status, 202, "{import}");
    let import_id = import["id"].as_str().unwrap().to_string();
    let described = sfn(
        "describeExecution",
        json!({"ExecutionArn": import["execution_arn"]}),
    )
    .await;
    let input: Value = serde_json::from_str(described["Input"].as_str().unwrap()).unwrap();
    let table = &input["tables"][0];
    assert_eq!(
        (
            table["creation"]["TableName"].as_str(),
            table["data_prefix"].as_str(),
            table["input_compression"].as_str()
        ),
        (Some("ImportedRates"), Some("exports/rates/"), Some("NONE"))
    );
    assert_eq!(table["tags"], json!([{"Key": "team", "Value": "hotels"}]));
    assert_eq!(input["dry_run"], false);
    let failed = settled(&api, &import_id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"]["error"], "Ferry.ImportFailed", "{failed}");
    let (status, body) = api
        .call("hotels-caller", "GET", "/transfers?status=DONE", None)
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("status:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_step_functions_refuses_is_recorded_failed_with_the_reason() {
    let api = Api::with(None, |config| {
        config.export_state_machine =
            Some("arn:aws:states:us-east-1:123456789012:stateMachine:ferry-no-such-export".into());
    })
    .await;
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            "/exports",
            Some(r#"{"table": "Rates"}"#),
        )
        .await;
    assert!(status >= 500, "{status} {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("recorded FAILED"),
        "{body}"
    );
    let (_, page) = api
        .call("hotels-caller", "GET", "/transfers?status=FAILED", None)
        .await;
    let transfer = &page["transfers"][0];
    assert_eq!(transfer["error"]["state"], "StartExecution", "{page}");
    assert!(
        transfer["error"]["cause"]
            .as_str()
            .unwrap()
            .contains("StateMachineDoesNotExist"),
        "{page}"
    );
    // Not configured at all: the import route says which variable is missing.
    let (status, body) = api
        .call(
            "hotels-caller",
            "POST",
            "/imports",
            Some(r#"{"table": "Rates", "prefix": "p/", "partition_key": {"name": "pk", "type": "S"}}"#),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("CONFIGURATION"))
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("FERRY_IMPORT_STATE_MACHINE_ARN"));
}
