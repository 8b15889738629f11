//! What every handler works with: the ports, and the typed configuration they are built from.

use std::sync::Arc;

use aws_config::SdkConfig;
use ferry_core::state::{DynamoDbStateStore, RunRecord, StateStore};
use ferry_core::{Error, ErrorCode, Result, RunId, Spec};
use ferry_pipeline::sink::{ObjectSink, S3Sink};
use ferry_pipeline::verify::{ObjectSource, S3Source};

use crate::api::records::{DynamoDbRecords, RecordStore};
use crate::api::ApiSettings;
use crate::artifacts::{Artifacts, S3Artifacts};
use crate::clone::CloneProviders;
use crate::connections::{CredentialStore, SecretsManagerCredentials};
use crate::executions::{Executions, StepFunctionsExecutions};
use crate::source::{SecretsManagerReader, Sources};
use crate::targets::{DynamoDbTargets, TargetTables};

/// Configuration read once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `FERRY_STATE_TABLE`: the DynamoDB table of migrations, runs and leases.
    pub state_table: String,
    /// `FERRY_BUCKET`: the run bucket (`runs/<run>/...`).
    pub bucket: String,
    /// `FERRY_MIGRATION_STATE_MACHINE_ARN`: what starting a run executes (start-migration
    /// and the API need it; the other functions do not).
    pub migration_state_machine: Option<String>,
    /// The API's settings (`FERRY_API_*`); only the api function needs them.
    pub api: Option<ApiConfig>,
}

/// `FERRY_API_TOKEN_KEY` (signs page tokens), `FERRY_API_GROUPS_CLAIM`,
/// `FERRY_API_ADMIN_GROUP`, `FERRY_CONNECTION_SECRET_PREFIX`,
/// `FERRY_EXPORT_STATE_MACHINE_ARN`, `FERRY_IMPORT_STATE_MACHINE_ARN`, and
/// `FERRY_API_LOCAL_JWT_SECRET` (local serving only, never set in AWS).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub token_key: String,
    pub groups_claim: String,
    pub admin_group: String,
    /// Name prefix of the secrets holding stored connections' credentials.
    pub connection_secret_prefix: String,
    pub export_state_machine: Option<String>,
    pub import_state_machine: Option<String>,
    /// When set, a request without the authorizer's claims may present an HS256 JWT signed
    /// with this secret (`Authorization: Bearer ...`): how `cargo lambda watch` is called.
    pub local_jwt_secret: Option<String>,
}

impl ApiConfig {
    /// The defaults of everything but the token key.
    pub fn new(token_key: impl Into<String>) -> ApiConfig {
        ApiConfig {
            token_key: token_key.into(),
            groups_claim: "cognito:groups".into(),
            admin_group: "ferry-admins".into(),
            connection_secret_prefix: "ferry/connections/".into(),
            export_state_machine: None,
            import_state_machine: None,
            local_jwt_secret: None,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("groups_claim", &self.groups_claim)
            .field("admin_group", &self.admin_group)
            .field("connection_secret_prefix", &self.connection_secret_prefix)
            .field("export_state_machine", &self.export_state_machine)
            .field("import_state_machine", &self.import_state_machine)
            .field("local_jwt", &self.local_jwt_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] over any lookup, so it is testable without touching the process.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let optional = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &str| {
            optional(name).ok_or_else(|| {
                Error::new(
                    ErrorCode::Configuration,
                    format!("the environment variable {name} is not set"),
                )
            })
        };
        Ok(Config {
            state_table: required("FERRY_STATE_TABLE")?,
            bucket: required("FERRY_BUCKET")?,
            migration_state_machine: optional("FERRY_MIGRATION_STATE_MACHINE_ARN"),
            api: match lookup("FERRY_API_TOKEN_KEY") {
                None => None,
                Some(key) if key.len() < 16 => {
                    return Err(Error::new(
                        ErrorCode::Configuration,
                        "FERRY_API_TOKEN_KEY must hold at least 16 characters",
                    ))
                }
                Some(token_key) => {
                    let defaults = ApiConfig::new(token_key);
                    let local_jwt_secret = optional("FERRY_API_LOCAL_JWT_SECRET");
                    if local_jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
                        return Err(Error::new(
                            ErrorCode::Configuration,
                            "FERRY_API_LOCAL_JWT_SECRET must hold at least 32 characters",
                        ));
                    }
                    Some(ApiConfig {
                        groups_claim: optional("FERRY_API_GROUPS_CLAIM")
                            .unwrap_or(defaults.groups_claim),
                        admin_group: optional("FERRY_API_ADMIN_GROUP")
                            .unwrap_or(defaults.admin_group),
                        connection_secret_prefix: optional("FERRY_CONNECTION_SECRET_PREFIX")
                            .unwrap_or(defaults.connection_secret_prefix),
                        export_state_machine: optional("FERRY_EXPORT_STATE_MACHINE_ARN"),
                        import_state_machine: optional("FERRY_IMPORT_STATE_MACHINE_ARN"),
                        local_jwt_secret,
                        token_key: defaults.token_key,
                    })
                }
            },
        })
    }
}

/// The ports a handler uses. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn StateStore>,
    pub objects: Arc<dyn ObjectSource>,
    pub sink: Arc<dyn ObjectSink>,
    pub bucket: String,
    pub sources: Sources,
    pub clones: CloneProviders,
    pub executions: Arc<dyn Executions>,
    pub targets: Arc<dyn TargetTables>,
    pub migration_state_machine: Option<String>,
    pub api: Option<ApiSettings>,
    /// Where the EMR Serverless engine's JAR is looked up.
    pub artifacts: Arc<dyn Artifacts>,
    /// The API's stored connections and transfers.
    pub records: Arc<dyn RecordStore>,
    /// Where stored connections keep their credentials.
    pub credentials: Arc<dyn CredentialStore>,
}

impl Context {
    /// The AWS adapters for every port, from one SDK configuration. S3 is addressed by path
    /// when an endpoint override is set (emulators serve buckets by path).
    pub fn from_aws(config: &Config, sdk: &SdkConfig) -> Context {
        let path_style = sdk.endpoint_url().is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(path_style)
                .build(),
        );
        let sources = Sources::new(Some(Arc::new(SecretsManagerReader::new(
            aws_sdk_secretsmanager::Client::new(sdk),
        ))));
        Context {
            store: Arc::new(DynamoDbStateStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.state_table,
            )),
            objects: Arc::new(S3Source::new(s3.clone(), &config.bucket)),
            sink: Arc::new(S3Sink::new(s3.clone(), &config.bucket)),
            artifacts: Arc::new(S3Artifacts::new(s3)),
            bucket: config.bucket.clone(),
            clones: CloneProviders::new(sources.clone(), aws_sdk_rds::Client::new(sdk)),
            sources,
            executions: Arc::new(StepFunctionsExecutions::new(aws_sdk_sfn::Client::new(sdk))),
            targets: Arc::new(DynamoDbTargets::new(aws_sdk_dynamodb::Client::new(sdk))),
            migration_state_machine: config.migration_state_machine.clone(),
            api: config.api.as_ref().map(ApiSettings::new),
            records: Arc::new(DynamoDbRecords::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &config.state_table,
            )),
            credentials: Arc::new(SecretsManagerCredentials::new(
                aws_sdk_secretsmanager::Client::new(sdk),
            )),
        }
    }

    /// The run's record; its spec snapshot is what every step works from.
    pub async fn run(&self, migration: &str, run_id: RunId) -> Result<RunRecord> {
        self.store.run(migration, run_id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("migration {migration:?} has no run {run_id}"),
            )
        })
    }

    pub async fn spec(&self, migration: &str, run_id: RunId) -> Result<Spec> {
        Ok(self.run(migration, run_id).await?.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_missing_variable() {
        let err = Config::from_lookup(|name| (name == "FERRY_BUCKET").then(|| "b".to_string()))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Configuration);
        assert!(err.message().contains("FERRY_STATE_TABLE"), "{err}");
        let config = Config::from_lookup(|name| Some(format!("{name}-value"))).unwrap();
        assert_eq!(config.bucket, "FERRY_BUCKET-value");
        assert_eq!(config.state_table, "FERRY_STATE_TABLE-value");
        let api = config.api.unwrap();
        assert_eq!(
            api.export_state_machine.as_deref(),
            Some("FERRY_EXPORT_STATE_MACHINE_ARN-value")
        );
        assert!(api.local_jwt_secret.is_some());
    }

    #[test]
    fn the_api_defaults_and_refuses_a_short_local_secret() {
        let env = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                [
                    ("FERRY_STATE_TABLE", "t"),
                    ("FERRY_BUCKET", "b"),
                    ("FERRY_API_TOKEN_KEY", "0123456789abcdef"),
                ]
                .iter()
                .chain(extra)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
            }
        };
        let api = Config::from_lookup(env(&[])).unwrap().api.unwrap();
        assert_eq!(api.connection_secret_prefix, "ferry/connections/");
        assert_eq!(
            api.local_jwt_secret, None,
            "local tokens are off unless asked for"
        );
        let err = Config::from_lookup(env(&[("FERRY_API_LOCAL_JWT_SECRET", "short")])).unwrap_err();
        assert!(
            err.message().contains("FERRY_API_LOCAL_JWT_SECRET"),
            "{err}"
        );
    }
}
