//! The error catalogue: every error ferry reports has one stable [`ErrorCode`], which fixes its
//! HTTP status for the API and its `error_type` for Step Functions (`Retry`/`Catch` match on it).
//!
//! An [`Error`]'s `message` is written for the person who sees it and must never hold internal
//! detail or a secret: the API answers with it as it is. Internal detail (SDK errors, SQL errors)
//! goes into `source`, which only reaches logs.

use std::fmt;

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! catalogue {
    ($( $variant:ident = $code:literal, $status:literal, $error_type:literal, $meaning:literal; )+) => {
        /// A stable error code. The string form never changes once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[non_exhaustive]
        pub enum ErrorCode { $( $variant, )+ }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The stable code, e.g. `MIGRATION_ALREADY_RUNNING`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )+ }
            }

            /// The HTTP status the API answers with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
            }

            /// The name Step Functions sees (`Diagnostic.error_type`, matched by `ErrorEquals`).
            pub fn error_type(self) -> &'static str {
                match self { $( ErrorCode::$variant => $error_type, )+ }
            }

            /// What the code means, for `docs/errors.md` and `ferry errors`.
            pub fn meaning(self) -> &'static str {
                match self { $( ErrorCode::$variant => $meaning, )+ }
            }
        }
    };
}

catalogue! {
    InvalidSpec = "INVALID_SPEC", 400, "Ferry.InvalidSpec",
        "The migration spec does not validate; the message lists every field path at fault.";
    InvalidInput = "INVALID_INPUT", 400, "Ferry.InvalidInput",
        "A request, command-line argument or step input is malformed; the message names the field.";
    Unauthorized = "UNAUTHORIZED", 401, "Ferry.Unauthorized",
        "The caller presented no valid identity.";
    NotFound = "NOT_FOUND", 404, "Ferry.NotFound",
        "The migration, run or other record does not exist (or belongs to another group).";
    MigrationAlreadyRunning = "MIGRATION_ALREADY_RUNNING", 409, "Ferry.MigrationAlreadyRunning",
        "A run of this migration is already PROCESSING; a second one is refused.";
    InvalidTransition = "INVALID_TRANSITION", 409, "Ferry.InvalidTransition",
        "The status change is not allowed from the record's current status (see the run model).";
    RunStillProcessing = "RUN_STILL_PROCESSING", 409, "Ferry.RunStillProcessing",
        "The run is still PROCESSING, so its record cannot be deleted yet.";
    ConnectionInUse = "CONNECTION_IN_USE", 409, "Ferry.ConnectionInUse",
        "A stored migration's spec reads its source through this connection's secret, so the connection cannot be deleted.";
    TransferStillProcessing = "TRANSFER_STILL_PROCESSING", 409, "Ferry.TransferStillProcessing",
        "The export or import is still PROCESSING, so its record cannot be deleted yet.";
    TargetNotEmpty = "TARGET_NOT_EMPTY", 409, "Ferry.TargetNotEmpty",
        "A target DynamoDB table already exists; ImportTable always creates a new table.";
    ImportFailed = "IMPORT_FAILED", 502, "Ferry.ImportFailed",
        "DynamoDB ImportTable ended FAILED or CANCELLED; the cause carries its failure code, message and error count.";
    ExportFailed = "EXPORT_FAILED", 502, "Ferry.ExportFailed",
        "DynamoDB ExportTableToPointInTime ended FAILED; the cause carries its failure code and message.";
    CloneFailed = "CLONE_FAILED", 502, "Ferry.CloneFailed",
        "A clone of a source could not be made or destroyed, or what was to be destroyed is not a ferry clone.";
    BootstrapFailed = "BOOTSTRAP_FAILED", 502, "Ferry.BootstrapFailed",
        "The EMR Serverless bootstrap cannot start: no JAR under the spec's prefix, no application of the spec's name, or no execution role.";
    VerificationFailed = "VERIFICATION_FAILED", 422, "Ferry.VerificationFailed",
        "The copy in DynamoDB differs from the source by more than the spec's tolerance.";
    SourceUnavailable = "SOURCE_UNAVAILABLE", 502, "Ferry.SourceUnavailable",
        "The source database cannot be reached, or refused the credentials or a query.";
    Retryable = "RETRYABLE", 503, "Ferry.Retryable",
        "A transient failure (throttling, timeout, a dropped connection); the same step may be retried as is.";
    Configuration = "CONFIGURATION", 500, "Ferry.Configuration",
        "ferry itself is misconfigured (a missing or malformed environment variable, for instance), or a source connection's TLS settings do not fit its server (an unreadable CA bundle, a certificate the `sslmode` refuses).";
    Internal = "INTERNAL", 500, "Ferry.Internal",
        "An unexpected failure; the logs hold the detail.";
}

/// The catalogue as a Markdown table: `docs/errors.md` embeds exactly this (a test checks it).
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "| code | HTTP | Step Functions `error_type` | meaning |\n|---|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            code.as_str(),
            code.http_status(),
            code.error_type(),
            code.meaning()
        ));
    }
    out
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ferry's one error type. See the module docs for what `message` may hold.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the internal cause, which reaches logs but never an API client.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for whoever sees the error: safe to show, free of internal detail.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by the chain of internal causes, for logs and the CLI.
    pub fn detail(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            out.push_str(": ");
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }

    /// The JSON body the API answers with: `{"code": "...", "message": "..."}`.
    pub fn to_api_body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.as_str(), "message": self.message })
    }
}

impl From<crate::spec::SpecErrors> for Error {
    fn from(errors: crate::spec::SpecErrors) -> Self {
        Error::new(ErrorCode::InvalidSpec, errors.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_and_error_types_are_unique_and_well_formed() {
        let mut codes = HashSet::new();
        let mut types = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(codes.insert(code.as_str()), "duplicate code {code}");
            assert!(
                types.insert(code.error_type()),
                "duplicate type {}",
                code.error_type()
            );
            assert!(code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_'));
            assert!(code.error_type().starts_with("Ferry."));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn serde_uses_the_stable_code() {
        let json = serde_json::to_string(&ErrorCode::MigrationAlreadyRunning).unwrap();
        assert_eq!(json, "\"MIGRATION_ALREADY_RUNNING\"");
        for code in ErrorCode::ALL {
            let back: ErrorCode = serde_json::from_str(&format!("\"{}\"", code.as_str())).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn api_body_carries_the_message_but_never_the_source() {
        let err = Error::new(ErrorCode::Internal, "state store request failed")
            .with_source(std::io::Error::other("password=hunter2 leaked by a driver"));
        let body = err.to_api_body().to_string();
        assert!(body.contains("INTERNAL"));
        assert!(!body.contains("hunter2"));
        assert!(err.detail().contains("hunter2"), "logs keep the cause");
    }

    #[test]
    fn docs_embed_the_catalogue_as_it_is() {
        let docs = include_str!("../../../docs/errors.md");
        assert!(
            docs.contains(&catalogue_markdown()),
            "docs/errors.md is out of date: replace its table with the output of `ferry errors`"
        );
    }
}
