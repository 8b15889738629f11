//! A local Amazon States Language engine.
//!
//! Parse and validate a definition ([`StateMachine`], or [`Engine::load`] which
//! also asks the [`TaskDispatcher`] about every Task resource), then run it with
//! [`Engine::run`]. Time goes through a [`Clock`]: [`RealClock`] sleeps,
//! [`VirtualClock`] jumps, so tests and rehearsals never wait.
//!
//! ```
//! use serde_json::json;
//! use sfn_local::{Engine, ExecutionOptions, InProcessDispatcher, VirtualClock};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut lambdas = InProcessDispatcher::new();
//! lambdas.register("double", |payload, _cx| async move {
//!     Ok(json!(payload["n"].as_i64().unwrap_or(0) * 2))
//! });
//! let engine = Engine::new(Arc::new(lambdas), Arc::new(VirtualClock::default()));
//! let machine = engine
//!     .load(&json!({
//!         "StartAt": "Double",
//!         "States": {
//!             "Double": {
//!                 "Type": "Task",
//!                 "Resource": "arn:aws:states:::lambda:invoke",
//!                 "Parameters": {"FunctionName": "double", "Payload.$": "$"},
//!                 "ResultSelector": {"doubled.$": "$.Payload"},
//!                 "ResultPath": "$.result",
//!                 "End": true
//!             }
//!         }
//!     }))
//!     .expect("valid definition");
//! let execution = engine
//!     .run(&machine, json!({"n": 21}), ExecutionOptions::default())
//!     .await;
//! assert_eq!(
//!     serde_json::to_value(&execution).unwrap(),
//!     json!({"status": "SUCCEEDED", "output": {"n": 21, "result": {"doubled": 42}}})
//! );
//! # });
//! ```

pub mod aws;
pub mod bench;
pub mod callbacks;
pub mod casing;
pub mod choice;
pub mod clock;
pub mod definition;
pub mod dispatcher;
pub mod distributed;
pub mod emr_serverless;
pub mod engine;
pub mod error;
pub mod intrinsics;
pub mod lambda_http;
pub mod path;
pub mod placeholders;
pub mod template;

pub use aws::AwsDispatcher;
pub use callbacks::{TaskCallback, TaskCallbacks};
pub use clock::{Clock, RealClock, VirtualClock};
pub use definition::StateMachine;
pub use dispatcher::{
    DispatcherChain, HandlerError, InProcessDispatcher, InvokeContext, TaskDispatcher, TaskRequest,
};
pub use engine::{Engine, Execution, ExecutionOptions, ExecutionStatus, ProgressFn};
pub use error::{Error, Failure, ValidationIssue};
pub use lambda_http::HttpLambdaDispatcher;
