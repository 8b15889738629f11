//! The handlers behind ferry's Lambda functions (DESIGN.md section 4).
//!
//! Each handler takes a [`Context`] of ports (state store, object store, source connections,
//! clone providers, execution status) and a typed request, so `functions/<name>` only wires
//! AWS clients into a [`Context`] and `ferry local run` calls the very same handlers
//! in-process. [`Function`] names every function and decodes its JSON payload.

pub mod api;
pub mod artifacts;
pub mod bootstrap;
pub mod check_clone;
pub mod clone;
pub mod compare;
pub mod connections;
pub mod context;
pub mod executions;
pub mod lambda;
pub mod plan;
pub mod poll_status;
pub mod source;
pub mod start;
pub mod targets;
pub mod test_connection;
pub mod transfers;

use ferry_core::{Error, ErrorCode, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use context::{Config, Context};

/// The functions a state machine calls. Their names are the `functions/<name>` crates and the
/// `${<Name>FunctionArn}` placeholders of the definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    CheckClone,
    Plan,
    Bootstrap,
    Compare,
    PollStatus,
    TestConnection,
    StartMigration,
    Api,
}

impl Function {
    /// Every function: one crate under `functions/` each.
    pub const ALL: &'static [Function] = &[
        Function::CheckClone,
        Function::Plan,
        Function::Bootstrap,
        Function::Compare,
        Function::PollStatus,
        Function::TestConnection,
        Function::StartMigration,
        Function::Api,
    ];

    /// The functions the state machines call.
    pub const STEPS: &'static [Function] = &[
        Function::CheckClone,
        Function::Plan,
        Function::Bootstrap,
        Function::Compare,
        Function::PollStatus,
    ];

    /// The function's name: its directory under `functions/`.
    pub fn name(self) -> &'static str {
        match self {
            Function::CheckClone => "check-clone",
            Function::Plan => "plan",
            Function::Bootstrap => "bootstrap",
            Function::Compare => "compare",
            Function::PollStatus => "poll-status",
            Function::TestConnection => "test-connection",
            Function::StartMigration => "start-migration",
            Function::Api => "api",
        }
    }

    /// The placeholder the definitions use for the function's ARN, without `${}`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Function::CheckClone => "CheckCloneFunctionArn",
            Function::Plan => "PlanFunctionArn",
            Function::Bootstrap => "BootstrapFunctionArn",
            Function::Compare => "CompareFunctionArn",
            Function::PollStatus => "PollStatusFunctionArn",
            Function::TestConnection => "TestConnectionFunctionArn",
            Function::StartMigration => "StartMigrationFunctionArn",
            Function::Api => "ApiFunctionArn",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Decodes `payload`, runs the handler, encodes its answer.
    pub async fn invoke(self, cx: &Context, payload: Value) -> Result<Value> {
        match self {
            Function::CheckClone => call(payload, |r| check_clone::handle(cx, r)).await,
            Function::Plan => call(payload, |r| plan::handle(cx, r)).await,
            Function::Bootstrap => call(payload, |r| bootstrap::handle(cx, r)).await,
            Function::Compare => call(payload, |r| compare::handle(cx, r)).await,
            Function::PollStatus => call(payload, |r| poll_status::handle(cx, r)).await,
            Function::TestConnection => call(payload, |r| test_connection::handle(cx, r)).await,
            Function::StartMigration => call(payload, |r| start::handle(cx, r)).await,
            Function::Api => {
                let settings = cx.api.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorCode::Configuration,
                        "FERRY_API_TOKEN_KEY is not set: the API cannot serve",
                    )
                })?;
                call(payload, |event| async move {
                    Ok(api::handle_event(cx, settings, event).await)
                })
                .await
            }
        }
    }
}

async fn call<Req, Resp, Fut>(payload: Value, handler: impl FnOnce(Req) -> Fut) -> Result<Value>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Result<Resp>>,
{
    let request: Req = serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        Error::new(
            ErrorCode::InvalidInput,
            format!("step input: {path}: {}", err.into_inner()),
        )
    })?;
    let response = handler(request).await?;
    serde_json::to_value(response)
        .map_err(|err| Error::new(ErrorCode::Internal, "cannot encode the answer").with_source(err))
}
