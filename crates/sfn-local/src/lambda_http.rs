//! [`HttpLambdaDispatcher`]: Lambda tasks (`arn:aws:states:::lambda:invoke` and Lambda function
//! ARNs) sent to a Lambda Invoke API endpoint over HTTP — `cargo lambda watch` (port 9000) or any
//! Lambda-compatible server — as `POST /2015-03-31/functions/{name}/invocations`.
//!
//! Results and failures look exactly as with [`InProcessDispatcher`](crate::InProcessDispatcher):
//! a function error (`X-Amz-Function-Error` with an `{errorType, errorMessage}` body) fails the
//! task with `errorType` as the error and that object as the cause; an unknown function (404) is
//! `Lambda.ResourceNotFoundException`; an endpoint that cannot be reached is
//! `Lambda.SdkClientException`, as Step Functions names client-side failures.
//!
//! Requests are not signed and the endpoint must be `http://` (local servers); a real Lambda
//! endpoint is reached through `aws-sdk:lambda` or the AWS SDK, not here.

use crate::aws::{service_cause, step_functions_error_name};
use crate::dispatcher::{
    bare_lambda_arn, function_error, lambda_function_name, lambda_invoke_output, HandlerError,
    TaskDispatcher, TaskRequest, LAMBDA_INVOKE,
};
use crate::error::{names, Failure};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

/// The environment variable [`HttpLambdaDispatcher::from_env`] reads, as the AWS SDKs name it.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_LAMBDA";

/// Sends Lambda tasks to a Lambda Invoke API endpoint.
pub struct HttpLambdaDispatcher {
    endpoint: String,
    http: Client<HttpConnector, Full<bytes::Bytes>>,
}

impl HttpLambdaDispatcher {
    /// `endpoint` is the server's base URL, like `http://127.0.0.1:9000`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        HttpLambdaDispatcher {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The endpoint in `AWS_ENDPOINT_URL_LAMBDA`, when that is set.
    pub fn from_env() -> Option<Self> {
        std::env::var(ENDPOINT_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Self::new)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Invokes `function` with `payload`; `Ok` carries the payload, the request id, the
    /// executed version and the status code.
    async fn invoke_function(
        &self,
        function: &str,
        payload: &Value,
        invocation_type: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<(Value, String, String, u16), Failure> {
        let name = lambda_function_name(function);
        let mut url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.endpoint,
            encode_segment(name)
        );
        if let Some(q) = qualifier {
            url.push_str("?Qualifier=");
            url.push_str(&encode_segment(q));
        }
        let client_error = |what: String| {
            Failure::new(
                "Lambda.SdkClientException",
                format!("Unable to execute HTTP request: {what} (endpoint {url})"),
            )
        };
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/json");
        if let Some(t) = invocation_type {
            request = request.header("x-amz-invocation-type", t);
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(payload.to_string())))
            .map_err(|e| client_error(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| client_error(format!("{e}")))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-amzn-requestid").unwrap_or_default();
        let function_error_kind = header("x-amz-function-error");
        let error_code = header("x-amzn-errortype");
        let executed_version = header("x-amz-executed-version").unwrap_or_else(|| "$LATEST".into());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| client_error(format!("cannot read the response: {e}")))?
            .to_bytes();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if !(200..300).contains(&status) {
            let message = parsed
                .as_ref()
                .and_then(|v| v.get("message").or_else(|| v.get("Message")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let error = match (status, error_code) {
                (_, Some(code)) => step_functions_error_name("Lambda", &code),
                (404, None) => "Lambda.ResourceNotFoundException".to_string(),
                (s, None) if s >= 500 => "Lambda.ServiceException".to_string(),
                _ => "Lambda.AWSLambdaException".to_string(),
            };
            let message = if message.is_empty() && status == 404 {
                format!("Function not found: {function}")
            } else {
                message
            };
            return Err(Failure::new(
                error,
                service_cause(&message, "Lambda", status, &request_id),
            ));
        }
        if function_error_kind.is_some() {
            let field = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            return Err(match field("errorType") {
                Some(error_type) => function_error(&HandlerError::new(
                    error_type,
                    field("errorMessage").unwrap_or_default(),
                )),
                None => Failure::new(
                    "Lambda.Unknown",
                    format!(
                        "The cause could not be determined because Lambda did not return an error type. Returned payload: {}",
                        String::from_utf8_lossy(&body)
                    ),
                ),
            });
        }
        let payload = match parsed {
            Some(v) => v,
            None if body.is_empty() => Value::Null,
            None => Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
        Ok((payload, request_id, executed_version, status))
    }
}

fn encode_segment(s: &str) -> String {
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

#[async_trait::async_trait]
impl TaskDispatcher for HttpLambdaDispatcher {
    fn supports(&self, resource: &str) -> Result<(), String> {
        if resource == LAMBDA_INVOKE || bare_lambda_arn(resource).is_some() {
            Ok(())
        } else {
            Err(format!(
                "resource {resource:?} is not supported: the HTTP Lambda dispatcher ({}) runs {LAMBDA_INVOKE} and Lambda function ARNs",
                self.endpoint
            ))
        }
    }

    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure> {
        if request.resource == LAMBDA_INVOKE {
            let text = |k: &str| request.input.get(k).and_then(Value::as_str);
            let Some(function) = text("FunctionName") else {
                return Err(Failure::new(
                    names::RUNTIME,
                    "The field 'FunctionName' is required by lambda:invoke",
                ));
            };
            let payload = request.input.get("Payload").cloned().unwrap_or(json!({}));
            let (result, request_id, version, status) = self
                .invoke_function(
                    function,
                    &payload,
                    text("InvocationType"),
                    text("Qualifier"),
                )
                .await?;
            return Ok(lambda_invoke_output(result, &request_id, &version, status));
        }
        match bare_lambda_arn(&request.resource) {
            Some(name) => self
                .invoke_function(name, &request.input, None, None)
                .await
                .map(|(payload, ..)| payload),
            None => Err(Failure::runtime(format!(
                "unsupported resource {}",
                request.resource
            ))),
        }
    }
}
