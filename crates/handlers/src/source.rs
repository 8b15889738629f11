//! Connections to the source databases. A shard names its credentials as an environment
//! variable holding a `postgres://` URL, or a Secrets Manager secret (the RDS JSON form
//! `{"username","password","host","port","dbname"}`, optionally with `sslmode` and
//! `sslrootcert`, or a URL as the secret string). The password goes from there into the
//! connection and nowhere else. TLS settings and the connection itself are
//! [`ferry_pipeline::source`]'s.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::spec::{Connection, Shard};
use ferry_core::{Error, ErrorCode, Result};
use ferry_pipeline::source::{ConnectError, SourceConfig};
use serde::Deserialize;

/// How long a connection attempt may take before the step fails (and may be retried).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a secret's string.
#[async_trait]
pub trait SecretReader: Send + Sync {
    async fn secret_string(&self, arn: &str) -> Result<String>;
}

pub struct SecretsManagerReader {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerReader {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerReader { client }
    }
}

#[async_trait]
impl SecretReader for SecretsManagerReader {
    async fn secret_string(&self, arn: &str) -> Result<String> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|err| {
                Error::new(
                    ErrorCode::SourceUnavailable,
                    format!("cannot read the secret {arn}"),
                )
                .with_source(err)
            })?;
        out.secret_string.ok_or_else(|| {
            Error::new(
                ErrorCode::SourceUnavailable,
                format!("the secret {arn} has no string value"),
            )
        })
    }
}

/// Resolves a shard's connection settings.
#[derive(Clone, Default)]
pub struct Sources {
    secrets: Option<Arc<dyn SecretReader>>,
}

#[derive(Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    dbname: Option<String>,
    #[serde(default)]
    sslmode: Option<String>,
    #[serde(default)]
    sslrootcert: Option<String>,
}

impl Sources {
    pub fn new(secrets: Option<Arc<dyn SecretReader>>) -> Self {
        Sources { secrets }
    }

    pub fn secrets(&self) -> Option<&dyn SecretReader> {
        self.secrets.as_deref()
    }

    /// Settings for `database` on the shard's server (the shard's own database, a clone of it,
    /// or the server's maintenance database).
    pub async fn config(&self, shard: &Shard, database: &str) -> Result<SourceConfig> {
        let mut config = match &shard.connection {
            Connection::Env(variable) => {
                let url = std::env::var(variable).map_err(|_| {
                    Error::new(
                        ErrorCode::Configuration,
                        format!(
                            "source.shards[{}].connection.env: the environment variable {variable} is not set",
                            shard.name
                        ),
                    )
                })?;
                parse_url(&url).map_err(|why| {
                    Error::new(
                        ErrorCode::Configuration,
                        format!(
                            "the environment variable {variable} is not a postgres:// URL: {why}"
                        ),
                    )
                })?
            }
            Connection::SecretArn(arn) => {
                let Some(secrets) = &self.secrets else {
                    return Err(Error::new(
                        ErrorCode::Configuration,
                        format!(
                            "shard {}: no Secrets Manager client to read {arn}",
                            shard.name
                        ),
                    ));
                };
                let text = secrets.secret_string(arn).await?;
                from_secret(&text).map_err(|why| {
                    Error::new(
                        ErrorCode::SourceUnavailable,
                        format!("the secret {arn} holds no usable credentials: {why}"),
                    )
                })?
            }
        };
        config
            .postgres
            .dbname(database)
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("ferry");
        Ok(config)
    }

    /// Connects to `database` on the shard's server; the connection runs on its own task.
    pub async fn connect(&self, shard: &Shard, database: &str) -> Result<tokio_postgres::Client> {
        let config = self.config(shard, database).await?;
        connect(&config, &shard.name, database).await
    }
}

/// Connects with `config` (TLS as its `sslmode` says); failures name the shard and database
/// and say what TLS refused, never the credentials.
pub async fn connect(
    config: &SourceConfig,
    shard: &str,
    database: &str,
) -> Result<tokio_postgres::Client> {
    ferry_pipeline::source::connect(config)
        .await
        .map_err(|err| {
            let what = format!("cannot connect to database {database:?} of shard {shard}");
            match err {
                ConnectError::Postgres(err) => {
                    Error::new(ErrorCode::SourceUnavailable, what).with_source(err)
                }
                // A certificate or CA problem is configuration: retrying cannot fix it.
                other => Error::new(ErrorCode::Configuration, format!("{what}: {other}")),
            }
        })
}

fn parse_url(url: &str) -> std::result::Result<SourceConfig, String> {
    SourceConfig::from_url(url)
}

fn from_secret(text: &str) -> std::result::Result<SourceConfig, String> {
    let trimmed = text.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return parse_url(trimmed);
    }
    let secret: RdsSecret = serde_json::from_str(trimmed).map_err(|_| {
        "expected a postgres:// URL or JSON with username, password, host".to_string()
    })?;
    let mut config = SourceConfig::from(tokio_postgres::Config::new());
    config
        .postgres
        .user(&secret.username)
        .password(&secret.password)
        .host(&secret.host)
        .port(secret.port.unwrap_or(5432));
    if let Some(db) = &secret.dbname {
        config.postgres.dbname(db);
    }
    let tls = [
        ("sslmode", &secret.sslmode),
        ("sslrootcert", &secret.sslrootcert),
    ];
    for (name, value) in tls {
        if let Some(value) = value {
            config.tls.set(name, value)?;
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_pipeline::source::{RootCerts, SslMode};

    #[test]
    fn secrets_in_both_forms() {
        let c = from_secret(r#"{"username":"u","password":"p w","host":"h","port":6543}"#).unwrap();
        assert_eq!(c.postgres.get_user(), Some("u"));
        assert_eq!(c.postgres.get_password(), Some(&b"p w"[..]));
        assert_eq!(c.postgres.get_ports(), &[6543]);
        assert_eq!(c.tls.mode, SslMode::Prefer);
        let c = from_secret("postgres://a:b@host:5433/db?sslmode=require").unwrap();
        assert_eq!(c.postgres.get_user(), Some("a"));
        assert_eq!(c.postgres.get_dbname(), Some("db"));
        assert_eq!(c.tls.mode, SslMode::Require);
        let c = from_secret(
            r#"{"username":"u","password":"p","host":"h","sslmode":"verify-full","sslrootcert":"/opt/rds-ca.pem"}"#,
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            c.tls.root_cert,
            Some(RootCerts::File("/opt/rds-ca.pem".into()))
        );
        let err =
            from_secret(r#"{"username":"u","password":"hunter2","host":"h","sslmode":"yes"}"#)
                .unwrap_err();
        assert!(err.starts_with("sslmode: \"yes\""), "{err}");
        let err = from_secret(r#"{"password":"hunter2"}"#).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
