//! [`HttpLambdaDispatcher`] against a fake Lambda Invoke API (`POST
//! /2015-03-31/functions/{name}/invocations`), compared with the in-process dispatcher.

use crate::fake::{serve, Fake, Response};
use serde_json::{json, Value};
use sfn_local::{
    Engine, ExecutionOptions, HandlerError, HttpLambdaDispatcher, InProcessDispatcher,
    TaskDispatcher, VirtualClock,
};
use std::sync::Arc;

/// `echo` returns its payload, `fails` raises `OrderNotFound`, `garbled` fails without an
/// error type; any other name is unknown (404), as `cargo lambda watch` answers.
async fn fake_lambda() -> Fake {
    serve(|req| {
        let name = req
            .path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|p| p.split('/').next())
            .unwrap_or_default()
            .to_string();
        if req.method != "POST" || !req.path.contains("/invocations") {
            return Response::json(400, &json!({"message": "bad route"}));
        }
        let ok = |r: Response| {
            r.with_header("x-amzn-requestid", "req-1")
                .with_header("x-amz-executed-version", "$LATEST")
        };
        match name.as_str() {
            "echo" => ok(Response {
                status: 200,
                headers: vec![],
                body: req.body.clone(),
            }),
            "fails" => ok(Response::json(
                200,
                &json!({"errorType": "OrderNotFound", "errorMessage": "order 7 is missing", "stackTrace": []}),
            )
            .with_header("x-amz-function-error", "Unhandled")),
            "garbled" => ok(Response {
                status: 200,
                headers: vec![],
                body: b"Segmentation fault".to_vec(),
            }
            .with_header("x-amz-function-error", "Unhandled")),
            _ => Response::json(
                404,
                &json!({"Type": "User", "message": format!("Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}")}),
            )
            .with_header("x-amzn-errortype", "ResourceNotFoundException")
            .with_header("x-amzn-requestid", "req-404"),
        }
    })
    .await
}

fn in_process() -> InProcessDispatcher {
    let mut d = InProcessDispatcher::new();
    d.register("echo", |payload, _| async move { Ok(payload) });
    d.register("fails", |_, _| async move {
        Err(HandlerError::new("OrderNotFound", "order 7 is missing"))
    });
    d
}

async fn run(tasks: Arc<dyn TaskDispatcher>, definition: &Value, input: Value) -> Value {
    let engine = Engine::new(tasks, Arc::new(VirtualClock::default()));
    let machine = engine.load(definition).expect("valid definition");
    let exec = engine
        .run(&machine, input, ExecutionOptions::default())
        .await;
    serde_json::to_value(&exec).expect("serialisable")
}

/// The same definition gives the same outputs, errors and causes over HTTP as in-process.
#[tokio::test]
async fn http_lambda_matches_in_process() {
    let fake = fake_lambda().await;
    let http: Arc<dyn TaskDispatcher> = Arc::new(HttpLambdaDispatcher::new(&fake.url));
    let local: Arc<dyn TaskDispatcher> = Arc::new(in_process());
    let caught = json!({"StartAt": "Invoke", "States": {
        "Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "echo", "Payload": {"order.$": "$.order", "n": 1}},
            "ResultSelector": {"echoed.$": "$.Payload", "status.$": "$.StatusCode", "version.$": "$.ExecutedVersion"},
            "ResultPath": "$.first", "Next": "Bare"},
        "Bare": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
            "ResultPath": "$.second", "Next": "Fails"},
        "Fails": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:fails:prod",
            "Catch": [{"ErrorEquals": ["OrderNotFound"], "ResultPath": "$.err", "Next": "Done"}], "End": true},
        "Done": {"Type": "Succeed"}}});
    let uncaught = json!({"StartAt": "Fails", "States": {
        "Fails": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "fails", "Payload.$": "$"}, "End": true}}});
    for definition in [&caught, &uncaught] {
        let over_http = run(http.clone(), definition, json!({"order": 7})).await;
        let in_proc = run(local.clone(), definition, json!({"order": 7})).await;
        assert_eq!(over_http, in_proc, "{definition}");
    }
    let got = run(http.clone(), &caught, json!({"order": 7})).await;
    assert_eq!(
        got["output"]["first"],
        json!({"echoed": {"order": 7, "n": 1}, "status": 200, "version": "$LATEST"})
    );
    assert_eq!(
        got["output"]["err"],
        json!({"Error": "OrderNotFound", "Cause": "{\"errorMessage\":\"order 7 is missing\",\"errorType\":\"OrderNotFound\"}"})
    );
    let got = run(http, &uncaught, json!({"order": 7})).await;
    assert_eq!(got["error"], "OrderNotFound");
    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert!(
        paths.contains(&"/2015-03-31/functions/echo/invocations"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/2015-03-31/functions/fails/invocations"),
        "{paths:?}"
    );
    let bare = requests
        .iter()
        .find(|r| serde_json::from_slice::<Value>(&r.body).ok() == Some(json!({"order": 7, "first": {"echoed": {"order": 7, "n": 1}, "status": 200, "version": "$LATEST"}})))
        .is_some();
    assert!(
        bare,
        "the bare ARN task sends its whole input as the payload"
    );
}

/// Unknown functions, errors without a type and unreachable endpoints, named as AWS names them.
#[tokio::test]
async fn http_lambda_failures_are_named() {
    let fake = fake_lambda().await;
    let http: Arc<dyn TaskDispatcher> = Arc::new(HttpLambdaDispatcher::new(&fake.url));
    let task = |resource: &str, params: Value| json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "Parameters": params, "End": true}}});
    let invoke = "arn:aws:states:::lambda:invoke";
    let got = run(
        http.clone(),
        &task(invoke, json!({"FunctionName": "missing"})),
        json!({}),
    )
    .await;
    assert_eq!(got["error"], "Lambda.ResourceNotFoundException", "{got}");
    let cause = got["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("Function not found"), "{cause}");
    assert!(
        cause.contains("(Service: Lambda, Status Code: 404, Request ID: req-404)"),
        "{cause}"
    );
    let got = run(
        http.clone(),
        &task(
            "arn:aws:lambda:us-east-1:123456789012:function:missing",
            json!({}),
        ),
        json!({}),
    )
    .await;
    assert_eq!(got["error"], "Lambda.ResourceNotFoundException", "{got}");
    let got = run(
        http.clone(),
        &task(invoke, json!({"FunctionName": "garbled"})),
        json!({}),
    )
    .await;
    assert_eq!(got["error"], "Lambda.Unknown", "{got}");
    assert!(
        got["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("Segmentation fault"),
        "{got}"
    );
    let nowhere: Arc<dyn TaskDispatcher> =
        Arc::new(HttpLambdaDispatcher::new("http://127.0.0.1:9"));
    let got = run(
        nowhere,
        &task(invoke, json!({"FunctionName": "echo"})),
        json!({}),
    )
    .await;
    assert_eq!(got["error"], "Lambda.SdkClientException", "{got}");
    assert!(
        got["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1:9"),
        "{got}"
    );
    assert!(HttpLambdaDispatcher::new("http://x")
        .supports("arn:aws:states:::aws-sdk:s3:getObject")
        .is_err());
}
