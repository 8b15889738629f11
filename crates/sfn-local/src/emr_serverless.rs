//! EMR Serverless, a REST-JSON service: the `aws-sdk:emrserverless:<action>` tasks and the
//! optimized `emr-serverless:startJobRun` / `startJobRun.sync` integration.
//!
//! Step Functions speaks PascalCase to every AWS service (`ApplicationId`, `JobDriver.SparkSubmit`)
//! while EMR Serverless' wire names are camelCase: parameters are converted on the way out and
//! results on the way back. Keys of map-typed members (`Tags`, `Properties`, `InitialCapacity`...)
//! are data, not member names, and are left alone.
//!
//! Error names: the SDK integration prefixes the service's error code with `EmrServerless`
//! (as for every `aws-sdk` service: the SDK's service name); the optimized integration with
//! `EMRServerless` (`EMRServerless.ValidationException`). A `.sync` job run that ends `FAILED` or
//! `CANCELLED` fails the task with `States.TaskFailed`, its cause the job run (GetJobRun's
//! `JobRun`, PascalCase) as JSON; a `SUCCESS` run's `JobRun` is the task's result.

use crate::aws::{service_cause, step_functions_error_name, Clients, RawResponse};
use crate::casing;
use crate::clock::Clock;
use crate::error::{names, Failure};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The service in `aws-sdk:<service>:<action>`.
pub const SDK_SERVICE: &str = "emrserverless";
/// The resource prefix of the optimized integration.
pub const OPTIMIZED_PREFIX: &str = "arn:aws:states:::emr-serverless:";
/// The error prefix of `aws-sdk:emrserverless:*` tasks.
pub const SDK_ERROR_PREFIX: &str = "EmrServerless";
/// The error prefix of the optimized integration.
pub const OPTIMIZED_ERROR_PREFIX: &str = "EMRServerless";
pub const SIGNING_NAME: &str = "emr-serverless";
/// `AWS_ENDPOINT_URL_EMR_SERVERLESS`, as the AWS SDKs name it.
pub const ENV_KEY: &str = "EMR_SERVERLESS";

/// One REST operation: how its (camelCase) members map onto method, path and query.
#[derive(Debug, PartialEq, Eq)]
pub struct RestOperation {
    /// camelCase, as written in the resource.
    pub action: &'static str,
    pub method: &'static str,
    /// With `{member}` placeholders for the URI members.
    pub path: &'static str,
    /// Members sent in the query string (lists repeat the name).
    pub query: &'static [&'static str],
    /// A member the SDKs fill with a fresh token when it is not given.
    pub idempotency_token: Option<&'static str>,
}

/// The operations supported (from the service model, API version 2021-07-13).
pub const OPERATIONS: &[RestOperation] = &[
    RestOperation {
        action: "createApplication",
        method: "POST",
        path: "/applications",
        query: &[],
        idempotency_token: Some("clientToken"),
    },
    RestOperation {
        action: "deleteApplication",
        method: "DELETE",
        path: "/applications/{applicationId}",
        query: &[],
        idempotency_token: None,
    },
    RestOperation {
        action: "listApplications",
        method: "GET",
        path: "/applications",
        query: &["nextToken", "maxResults", "states"],
        idempotency_token: None,
    },
    RestOperation {
        action: "getApplication",
        method: "GET",
        path: "/applications/{applicationId}",
        query: &[],
        idempotency_token: None,
    },
    RestOperation {
        action: "startApplication",
        method: "POST",
        path: "/applications/{applicationId}/start",
        query: &[],
        idempotency_token: None,
    },
    RestOperation {
        action: "stopApplication",
        method: "POST",
        path: "/applications/{applicationId}/stop",
        query: &[],
        idempotency_token: None,
    },
    RestOperation {
        action: "startJobRun",
        method: "POST",
        path: "/applications/{applicationId}/jobruns",
        query: &[],
        idempotency_token: Some("clientToken"),
    },
    RestOperation {
        action: "getJobRun",
        method: "GET",
        path: "/applications/{applicationId}/jobruns/{jobRunId}",
        query: &["attempt"],
        idempotency_token: None,
    },
    RestOperation {
        action: "listJobRuns",
        method: "GET",
        path: "/applications/{applicationId}/jobruns",
        query: &[
            "nextToken",
            "maxResults",
            "createdAtAfter",
            "createdAtBefore",
            "states",
            "mode",
        ],
        idempotency_token: None,
    },
    RestOperation {
        action: "cancelJobRun",
        method: "DELETE",
        path: "/applications/{applicationId}/jobruns/{jobRunId}",
        query: &["shutdownGracePeriodInSeconds"],
        idempotency_token: None,
    },
];

/// Members whose values are maps: their keys are kept as written.
const MAP_MEMBERS: &[&str] = &[
    "encryptionContext",
    "initialCapacity",
    "logTypes",
    "properties",
    "tags",
    "workerTypeSpecifications",
];

fn operation(action: &str) -> Option<&'static RestOperation> {
    OPERATIONS.iter().find(|o| o.action == action)
}

/// The operation of `aws-sdk:emrserverless:<action>`.
pub(crate) fn sdk_operation(action: &str) -> Result<&'static RestOperation, String> {
    let action = action.strip_suffix(".waitForTaskToken").unwrap_or(action);
    operation(action).ok_or_else(|| {
        let known: Vec<&str> = OPERATIONS.iter().map(|o| o.action).collect();
        format!(
            "{SDK_SERVICE} has no supported action {action:?} (supported: {})",
            known.join(", ")
        )
    })
}

/// `startJobRun` → `Ok(false)`, `startJobRun.sync` → `Ok(true)`.
pub(crate) fn parse_optimized(action: &str) -> Result<bool, String> {
    match action {
        "startJobRun" => Ok(false),
        "startJobRun.sync" => Ok(true),
        "startJobRun.waitForTaskToken" => Err(
            "emr-serverless does not support the .waitForTaskToken integration pattern".into(),
        ),
        other => Err(format!(
            "the emr-serverless action {other:?} is not supported (supported: startJobRun, startJobRun.sync)"
        )),
    }
}

/// Step Functions' PascalCase parameters as the service's camelCase members.
pub fn to_wire(v: &Value) -> Value {
    casing::to_camel_wire(v, MAP_MEMBERS)
}

/// The service's camelCase answer as Step Functions shows it (PascalCase).
pub fn from_wire(v: &Value) -> Value {
    casing::from_camel_wire(v, MAP_MEMBERS)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What one call sends: method, path and query, body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HttpCall {
    pub method: &'static str,
    pub path_and_query: String,
    pub body: Option<Vec<u8>>,
}

/// Lays out PascalCase `params` for `op`: URI members into the path, query members into
/// the query string, the rest into the JSON body (POST only).
pub(crate) fn build(op: &RestOperation, params: &Value) -> Result<HttpCall, String> {
    let mut members = match to_wire(params) {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => return Err(format!("the parameters must be an object, got {other}")),
    };
    if let Some(token) = op.idempotency_token {
        members
            .entry(token)
            .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()));
    }
    let mut path = String::new();
    let mut rest = op.path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or(rest.len());
        let name = &rest[open + 1..close];
        path.push_str(&rest[..open]);
        let value = members
            .remove(name)
            .as_ref()
            .and_then(scalar_text)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!(
                    "{} needs the string parameter '{}'",
                    op.action,
                    casing::pascal_case(name)
                )
            })?;
        path.push_str(&percent_encode(&value));
        rest = &rest[(close + 1).min(rest.len())..];
    }
    path.push_str(rest);
    let mut query = Vec::new();
    for name in op.query {
        match members.remove(*name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in &items {
                    let text = scalar_text(item)
                        .ok_or_else(|| format!("'{name}' must be a list of strings"))?;
                    query.push(format!("{name}={}", percent_encode(&text)));
                }
            }
            Some(v) => {
                let text = scalar_text(&v).ok_or_else(|| format!("'{name}' must be a scalar"))?;
                query.push(format!("{name}={}", percent_encode(&text)));
            }
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let body = if op.method == "POST" {
        Some(serde_json::to_vec(&Value::Object(members)).map_err(|e| e.to_string())?)
    } else if !members.is_empty() {
        let mut unknown: Vec<String> = members.keys().map(|k| casing::pascal_case(k)).collect();
        unknown.sort();
        return Err(format!(
            "{} does not take the parameter(s) {}",
            op.action,
            unknown.join(", ")
        ));
    } else {
        None
    };
    Ok(HttpCall {
        method: op.method,
        path_and_query: path,
        body,
    })
}

/// Calls `op` with PascalCase `params`; the result is PascalCase, errors are
/// `<error_prefix>.<Code>`.
pub(crate) async fn call(
    clients: &Clients,
    op: &RestOperation,
    params: &Value,
    error_prefix: &str,
) -> Result<Value, Failure> {
    let client_error = |what: String| {
        Failure::new(
            names::TASK_FAILED,
            format!("{what} (Service: {error_prefix}, Action: {})", op.action),
        )
    };
    let HttpCall {
        method,
        path_and_query,
        body,
    } = build(op, params).map_err(|e| Failure::runtime(format!("{error_prefix}: {e}")))?;
    let endpoint = clients.endpoint(ENV_KEY, SIGNING_NAME);
    let url = format!("{}{path_and_query}", endpoint.trim_end_matches('/'));
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("content-type", "application/json")]
    } else {
        &[]
    };
    let RawResponse {
        status,
        request_id,
        error_type,
        body,
    } = clients
        .send_signed(
            method,
            &url,
            headers,
            body.unwrap_or_default(),
            SIGNING_NAME,
        )
        .await
        .map_err(client_error)?;
    let json: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) if (200..300).contains(&status) => {
                return Err(client_error(format!(
                    "the response from {url} is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )))
            }
            Err(_) => json!({"message": String::from_utf8_lossy(&body)}),
        }
    };
    if (200..300).contains(&status) {
        return Ok(from_wire(&json));
    }
    let code = error_type
        .or_else(|| {
            ["__type", "code", "Code"]
                .iter()
                .find_map(|k| json.get(*k).and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| format!("Http{status}"));
    let message = json
        .get("message")
        .or_else(|| json.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(Failure::new(
        step_functions_error_name(error_prefix, &code),
        service_cause(message, error_prefix, status, &request_id),
    ))
}

/// The optimized `startJobRun`: with `poll` (`.sync`), waits for the job run to end,
/// checking every interval on the given clock.
pub(crate) async fn start_job_run(
    clients: &Clients,
    params: &Value,
    poll: Option<(&dyn Clock, Duration)>,
) -> Result<Value, Failure> {
    let start = operation("startJobRun").expect("in the table");
    let started = call(clients, start, params, OPTIMIZED_ERROR_PREFIX).await?;
    let Some((clock, interval)) = poll else {
        return Ok(started);
    };
    let get = operation("getJobRun").expect("in the table");
    let ids = json!({
        "ApplicationId": started.get("ApplicationId").cloned().unwrap_or(Value::Null),
        "JobRunId": started.get("JobRunId").cloned().unwrap_or(Value::Null),
    });
    loop {
        let answer = call(clients, get, &ids, OPTIMIZED_ERROR_PREFIX).await?;
        let run = answer.get("JobRun").cloned().unwrap_or(answer);
        match run.get("State").and_then(Value::as_str).unwrap_or_default() {
            "SUCCESS" => return Ok(run),
            "FAILED" | "CANCELLED" => {
                return Err(Failure::new(names::TASK_FAILED, run.to_string()))
            }
            _ => clock.sleep(interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_case_but_not_map_keys() {
        let params = json!({
            "ApplicationId": "app1",
            "JobDriver": {"SparkSubmit": {"EntryPoint": "s3://b/job.py", "EntryPointArguments": ["--X"]}},
            "Tags": {"Team": "data"},
            "ConfigurationOverrides": {"ApplicationConfiguration": [
                {"Classification": "spark-defaults", "Properties": {"spark.Executor.memory": "2g"}}]}
        });
        assert_eq!(
            to_wire(&params),
            json!({
                "applicationId": "app1",
                "jobDriver": {"sparkSubmit": {"entryPoint": "s3://b/job.py", "entryPointArguments": ["--X"]}},
                "tags": {"Team": "data"},
                "configurationOverrides": {"applicationConfiguration": [
                    {"classification": "spark-defaults", "properties": {"spark.Executor.memory": "2g"}}]}
            })
        );
        let answer = json!({"application": {"initialCapacity": {"DRIVER": {"workerCount": 1}},
            "tags": {"team": "x"}, "state": "STARTED"}});
        assert_eq!(
            from_wire(&answer),
            json!({"Application": {"InitialCapacity": {"DRIVER": {"WorkerCount": 1}},
                "Tags": {"team": "x"}, "State": "STARTED"}})
        );
    }

    #[test]
    fn requests_are_laid_out_by_the_model() {
        let op = |a| operation(a).expect("known");
        let c = build(
            op("listApplications"),
            &json!({"MaxResults": 2, "States": ["STARTED", "CREATED"], "NextToken": "a/b=="}),
        )
        .expect("builds");
        assert_eq!(c.method, "GET");
        assert_eq!(
            c.path_and_query,
            "/applications?nextToken=a%2Fb%3D%3D&maxResults=2&states=STARTED&states=CREATED"
        );
        assert_eq!(c.body, None);
        let c = build(
            op("getJobRun"),
            &json!({"ApplicationId": "app", "JobRunId": "run"}),
        )
        .expect("builds");
        assert_eq!(c.path_and_query, "/applications/app/jobruns/run");
        let c = build(
            op("startJobRun"),
            &json!({"ApplicationId": "app", "ExecutionRoleArn": "r", "Name": "n"}),
        )
        .expect("builds");
        assert_eq!(c.path_and_query, "/applications/app/jobruns");
        let body: Value = serde_json::from_slice(&c.body.expect("POST body")).expect("JSON");
        assert_eq!(body["executionRoleArn"], "r");
        assert!(body["clientToken"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body.get("applicationId").is_none());
        let e = build(op("getApplication"), &json!({})).unwrap_err();
        assert!(e.contains("'ApplicationId'"), "{e}");
        let e = build(
            op("getApplication"),
            &json!({"ApplicationId": "a", "Bogus": 1}),
        )
        .unwrap_err();
        assert!(e.contains("Bogus"), "{e}");
    }

    #[test]
    fn resources() {
        assert_eq!(parse_optimized("startJobRun"), Ok(false));
        assert_eq!(parse_optimized("startJobRun.sync"), Ok(true));
        assert!(parse_optimized("startJobRun.waitForTaskToken").is_err());
        assert!(parse_optimized("createApplication").is_err());
        assert!(sdk_operation("getJobRun").is_ok());
        assert!(sdk_operation("GetJobRun").is_err());
    }
}
