//! Step Functions executions behind a port: start (start-migration, the API), describe
//! (poll-status), stop (the API's cancel).

use async_trait::async_trait;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use ferry_core::{Error, ErrorCode, Result};
use serde_json::Value;

/// Where an execution stands, as DescribeExecution says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionState {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts an execution named `name`; answers its ARN.
    async fn start(&self, state_machine_arn: &str, name: &str, input: &Value) -> Result<String>;
    async fn describe(&self, execution_arn: &str) -> Result<ExecutionState>;
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()>;
}

pub struct StepFunctionsExecutions {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsExecutions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        StepFunctionsExecutions { client }
    }
}

fn sfn_error<E>(what: String, err: aws_sdk_sfn::error::SdkError<E>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let retryable = matches!(
        err,
        aws_sdk_sfn::error::SdkError::TimeoutError(_)
            | aws_sdk_sfn::error::SdkError::DispatchFailure(_)
    ) || matches!(
        err.code(),
        Some("ThrottlingException" | "ExecutionLimitExceeded" | "ServiceUnavailable")
    );
    let code_text = err.code().unwrap_or("unknown").to_string();
    let message = err.message().unwrap_or_default().to_string();
    Error::new(
        if retryable {
            ErrorCode::Retryable
        } else {
            ErrorCode::Configuration
        },
        format!("{what}: Step Functions said {code_text}: {message}"),
    )
    .with_source(err)
}

#[async_trait]
impl Executions for StepFunctionsExecutions {
    async fn start(&self, state_machine_arn: &str, name: &str, input: &Value) -> Result<String> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|err| sfn_error(format!("cannot start {state_machine_arn}"), err))?;
        Ok(out.execution_arn)
    }

    async fn describe(&self, execution_arn: &str) -> Result<ExecutionState> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|err| sfn_error(format!("cannot describe {execution_arn}"), err))?;
        Ok(ExecutionState {
            status: out.status.as_str().to_string(),
            error: out.error,
            cause: out.cause,
        })
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()> {
        self.client
            .stop_execution()
            .execution_arn(execution_arn)
            .cause(cause)
            .send()
            .await
            .map_err(|err| sfn_error(format!("cannot stop {execution_arn}"), err))?;
        Ok(())
    }
}
