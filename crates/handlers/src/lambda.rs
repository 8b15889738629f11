//! The Lambda side of a function: what every `functions/<name>/src/main.rs` calls.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::{Config, Context, Function};

/// How an error reaches Step Functions: `error_type` is what `ErrorEquals` matches
/// (`Ferry.Retryable`, ...); the message carries the detail, never a secret.
pub fn diagnostic(err: &ferry_core::Error) -> (String, String) {
    (err.code().error_type().to_string(), err.detail())
}

#[derive(Debug)]
pub struct FunctionError(pub ferry_core::Error);

impl From<FunctionError> for Diagnostic {
    fn from(err: FunctionError) -> Diagnostic {
        let (error_type, error_message) = diagnostic(&err.0);
        Diagnostic {
            error_type,
            error_message,
        }
    }
}

/// Sets up JSON logs, reads the configuration, builds the AWS clients once and serves
/// `function` until the Lambda runtime stops.
pub async fn serve(function: Function) -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let config = Config::from_env()
        .inspect_err(|err| tracing::error!(error = %err.detail(), "configuration"))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let cx = Context::from_aws(&config, &sdk);
    let cx = &cx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        function.invoke(cx, event.payload).await.map_err(|err| {
            tracing::error!(function = function.name(), error = %err.detail(), "failed");
            FunctionError(err)
        })
    }))
    .await
}
