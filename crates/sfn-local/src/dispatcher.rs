//! Task execution is delegated to a [`TaskDispatcher`] that the embedder chooses.
//! [`InProcessDispatcher`] calls Rust handlers registered by Lambda function name.

use crate::callbacks::TaskCallbacks;
use crate::clock::Clock;
use crate::error::Failure;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a Task state asks the dispatcher to do.
#[derive(Clone)]
pub struct TaskRequest {
    /// The `Resource` field, as written.
    pub resource: String,
    /// The effective parameters (after InputPath and Parameters).
    pub input: Value,
    pub state_name: String,
    pub execution_arn: String,
    pub task_token: String,
    /// The state's TimeoutSeconds, for dispatchers that pass it on (the engine enforces it).
    pub timeout: Option<std::time::Duration>,
    pub clock: Arc<dyn Clock>,
    /// Where the outcome of a `.waitForTaskToken` task is reported.
    pub callbacks: TaskCallbacks,
}

#[async_trait::async_trait]
pub trait TaskDispatcher: Send + Sync {
    /// Called at validation time for every Task `Resource`: `Err` explains why
    /// this dispatcher cannot run it.
    fn supports(&self, resource: &str) -> Result<(), String>;
    /// Called at validation time for `<resource>.waitForTaskToken` (given without the
    /// suffix): by default every resource the dispatcher runs can wait for a callback.
    fn supports_callback(&self, resource: &str) -> Result<(), String> {
        self.supports(resource)
    }
    /// Runs the task; an `Err` is the error and cause the Task state fails with.
    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure>;
}

/// Several dispatchers in order: each task goes to the first one that supports
/// its resource (for example in-process Lambda handlers, then an AWS SDK pass-through).
#[derive(Clone, Default)]
pub struct DispatcherChain {
    dispatchers: Vec<Arc<dyn TaskDispatcher>>,
}

impl DispatcherChain {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, dispatcher: Arc<dyn TaskDispatcher>) -> Self {
        self.dispatchers.push(dispatcher);
        self
    }

    fn pick(&self, resource: &str) -> Result<&Arc<dyn TaskDispatcher>, String> {
        let mut reasons = Vec::new();
        for d in &self.dispatchers {
            match d.supports(resource) {
                Ok(()) => return Ok(d),
                Err(e) => reasons.push(e),
            }
        }
        Err(if reasons.is_empty() {
            format!("resource {resource:?} is not supported: no task dispatcher is configured")
        } else {
            reasons.join("; ")
        })
    }
}

#[async_trait::async_trait]
impl TaskDispatcher for DispatcherChain {
    fn supports(&self, resource: &str) -> Result<(), String> {
        self.pick(resource).map(|_| ())
    }

    fn supports_callback(&self, resource: &str) -> Result<(), String> {
        self.pick(resource)?.supports_callback(resource)
    }

    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure> {
        let d = self.pick(&request.resource).map_err(Failure::runtime)?;
        d.invoke(request).await
    }
}

/// An error a handler returns, as a Lambda function reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub error_type: String,
    pub error_message: String,
}

impl HandlerError {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        HandlerError {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

/// What a handler receives besides its payload.
#[derive(Clone)]
pub struct InvokeContext {
    pub function_name: String,
    pub clock: Arc<dyn Clock>,
    /// Where a handler reports the outcome of a `.waitForTaskToken` task.
    pub callbacks: TaskCallbacks,
}

type Handler = Arc<
    dyn Fn(Value, InvokeContext) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync,
>;

/// Lambda invocations served by in-process handlers.
#[derive(Clone, Default)]
pub struct InProcessDispatcher {
    handlers: HashMap<String, Handler>,
}

pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// The function name inside a name, a partial ARN (`123456789012:function:f`) or
/// a full ARN, without a version or alias qualifier.
pub fn lambda_function_name(s: &str) -> &str {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if i + 1 < parts.len() => parts[i + 1],
        _ => parts[0],
    }
}

/// What `lambda:invoke` returns: the function's result under `Payload`, with the HTTP
/// metadata Step Functions adds.
pub(crate) fn lambda_invoke_output(
    payload: Value,
    request_id: &str,
    executed_version: &str,
    status: u16,
) -> Value {
    let headers = json!({
        "Connection": "keep-alive",
        "Content-Type": "application/json",
        "X-Amz-Executed-Version": executed_version,
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": request_id,
    });
    let all_headers: Map<String, Value> = headers
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), json!([v]))).collect())
        .unwrap_or_default();
    json!({
        "ExecutedVersion": executed_version,
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": all_headers,
            "HttpHeaders": headers,
            "HttpStatusCode": status
        },
        "SdkResponseMetadata": { "RequestId": request_id },
        "StatusCode": status
    })
}

/// The failure a function error becomes: its type is the error name, and Step Functions
/// reports the function's error object, serialised, as the cause.
pub(crate) fn function_error(e: &HandlerError) -> Failure {
    Failure::new(
        e.error_type.clone(),
        json!({ "errorType": e.error_type, "errorMessage": e.error_message }).to_string(),
    )
}

pub(crate) fn bare_lambda_arn(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:")?;
    let mut it = rest.splitn(6, ':');
    let (_partition, service, _region, _account, kind, name) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    (service == "lambda" && kind == "function").then(|| lambda_function_name(name))
}

impl InProcessDispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the Lambda function `name` (a plain name, or an ARN
    /// whose function name is used).
    pub fn register<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Value, InvokeContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        let h: Handler = Arc::new(move |v, cx| Box::pin(handler(v, cx)));
        self.handlers
            .insert(lambda_function_name(name).to_string(), h);
        self
    }

    pub fn is_registered(&self, name: &str) -> bool {
        self.handlers.contains_key(lambda_function_name(name))
    }

    async fn call(
        &self,
        name: &str,
        payload: Value,
        clock: Arc<dyn Clock>,
        callbacks: TaskCallbacks,
    ) -> Result<Value, Failure> {
        let fname = lambda_function_name(name);
        let Some(h) = self.handlers.get(fname) else {
            return Err(Failure::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {name} (no in-process handler is registered under {fname:?})"),
            ));
        };
        let cx = InvokeContext {
            function_name: fname.to_string(),
            clock,
            callbacks,
        };
        // A panicking handler is a crashed function, not a crashed engine.
        let outcome = std::panic::AssertUnwindSafe(h(payload, cx))
            .catch_unwind()
            .await;
        let Ok(result) = outcome else {
            return Err(Failure::new(
                "Lambda.Unknown",
                "The cause could not be determined because Lambda did not return an error type. (The in-process handler panicked.)",
            ));
        };
        result.map_err(|e| function_error(&e))
    }
}

#[async_trait::async_trait]
impl TaskDispatcher for InProcessDispatcher {
    fn supports(&self, resource: &str) -> Result<(), String> {
        if resource == LAMBDA_INVOKE {
            return Ok(());
        }
        if let Some(name) = bare_lambda_arn(resource) {
            return if self.handlers.contains_key(name) {
                Ok(())
            } else {
                Err(format!(
                    "no in-process handler is registered for Lambda function {name:?}"
                ))
            };
        }
        Err(format!(
            "resource {resource:?} is not supported: the in-process dispatcher runs {LAMBDA_INVOKE} and Lambda function ARNs"
        ))
    }

    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure> {
        if request.resource == LAMBDA_INVOKE {
            let Some(fname) = request.input.get("FunctionName").and_then(Value::as_str) else {
                return Err(Failure::new(
                    "States.Runtime",
                    "The field 'FunctionName' is required by lambda:invoke",
                ));
            };
            let payload = request.input.get("Payload").cloned().unwrap_or(json!({}));
            let result = self
                .call(
                    fname,
                    payload,
                    request.clock.clone(),
                    request.callbacks.clone(),
                )
                .await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            return Ok(lambda_invoke_output(result, &request_id, "$LATEST", 200));
        }
        match bare_lambda_arn(&request.resource) {
            Some(name) => {
                self.call(name, request.input, request.clock, request.callbacks)
                    .await
            }
            None => Err(Failure::runtime(format!(
                "unsupported resource {}",
                request.resource
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(lambda_function_name("f"), "f");
        assert_eq!(lambda_function_name("f:prod"), "f");
        assert_eq!(
            lambda_function_name("arn:aws:lambda:us-east-1:123456789012:function:f:1"),
            "f"
        );
        assert_eq!(lambda_function_name("123456789012:function:f"), "f");
        assert_eq!(
            bare_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:g"),
            Some("g")
        );
        assert_eq!(bare_lambda_arn("arn:aws:states:::lambda:invoke"), None);
    }

    #[test]
    fn chain_picks_the_first_supporting_dispatcher() {
        let mut a = InProcessDispatcher::new();
        a.register("f", |v, _| async move { Ok(v) });
        let chain = DispatcherChain::new().with(Arc::new(a));
        assert!(chain.supports(LAMBDA_INVOKE).is_ok());
        assert!(chain
            .supports("arn:aws:lambda:us-east-1:123456789012:function:f")
            .is_ok());
        let err = chain
            .supports("arn:aws:states:::glue:startJobRun")
            .unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        assert!(DispatcherChain::new().supports(LAMBDA_INVOKE).is_err());
    }
}
