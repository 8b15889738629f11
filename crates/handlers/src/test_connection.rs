//! `test-connection`: can ferry read this source and write these targets? Every check runs and
//! reports `ok`, a message and how long it took; one failing check does not hide the others.
//! The password is used for the connection only: never echoed, logged or stored.

use std::time::{Duration, Instant};

use ferry_core::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

use ferry_pipeline::source::{SourceConfig, SslMode, TlsSettings};

use crate::source::SecretReader;
use crate::Context;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    /// Exactly one of `password` and `secret_arn`.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub secret_arn: Option<String>,
    /// libpq's `sslmode` (default `prefer`); `verify-ca` / `verify-full` trust the system's CAs.
    #[serde(default)]
    pub sslmode: Option<String>,
    /// Source tables (`schema.table` or `table`) that must be readable.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Prefix of the target DynamoDB tables; with `target_tables` it names them.
    #[serde(default)]
    pub table_prefix: String,
    /// Target table names without the prefix: each must be absent or empty.
    #[serde(default)]
    pub target_tables: Vec<String>,
}

// No Debug: a Debug print would show the password.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

fn default_port() -> u16 {
    5432
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub message: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub checks: Vec<Check>,
}

struct Checks {
    checks: Vec<Check>,
}

impl Checks {
    fn record(
        &mut self,
        name: &str,
        started: Instant,
        outcome: std::result::Result<String, String>,
    ) -> bool {
        let ok = outcome.is_ok();
        self.checks.push(Check {
            name: name.to_string(),
            ok,
            message: outcome.unwrap_or_else(|e| e),
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        ok
    }

    fn skipped(&mut self, name: &str, why: &str) {
        self.checks.push(Check {
            name: name.to_string(),
            ok: false,
            message: format!("not checked: {why}"),
            elapsed_ms: 0,
        });
    }
}

async fn password(request: &Request, secrets: Option<&dyn SecretReader>) -> Result<String> {
    match (&request.password, &request.secret_arn) {
        (Some(p), None) => Ok(p.clone()),
        (None, Some(arn)) => {
            let secrets = secrets
                .ok_or_else(|| Error::new(ErrorCode::Configuration, "no Secrets Manager client"))?;
            // The caller named this secret: one that cannot be read is their input's fault (400),
            // and the reason stays in the log.
            let text = secrets.secret_string(arn).await.map_err(|err| {
                tracing::info!(error = %err.detail(), "secret_arn unreadable");
                Error::new(
                    ErrorCode::InvalidInput,
                    format!("secret_arn: {}", err.message()),
                )
            })?;
            // The RDS form keeps the password under "password"; else the string is it.
            Ok(serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("password")
                        .and_then(|p| p.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or(text))
        }
        _ => Err(Error::new(
            ErrorCode::InvalidInput,
            "password: give exactly one of password and secret_arn",
        )),
    }
}

pub async fn handle(cx: &Context, request: Request) -> Result<Response> {
    handle_with(cx, request, None).await
}

/// [`handle`] with the secret reader to use for `secret_arn`.
pub async fn handle_with(
    cx: &Context,
    request: Request,
    secrets: Option<&dyn SecretReader>,
) -> Result<Response> {
    if request.host.trim().is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            "host: must not be empty",
        ));
    }
    if request.database.trim().is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            "database: must not be empty",
        ));
    }
    let password = password(&request, secrets.or(cx.sources.secrets())).await?;
    let mut checks = Checks { checks: Vec::new() };

    let started = Instant::now();
    let reachable = tokio::time::timeout(
        TIMEOUT,
        tokio::net::TcpStream::connect((request.host.as_str(), request.port)),
    )
    .await;
    let reachable = checks.record(
        "reachable",
        started,
        match reachable {
            Ok(Ok(_)) => Ok(format!(
                "{}:{} accepts connections",
                request.host, request.port
            )),
            Ok(Err(err)) => Err(format!(
                "cannot reach {}:{}: {err}",
                request.host, request.port
            )),
            Err(_) => Err(format!(
                "no answer from {}:{} within {} s",
                request.host,
                request.port,
                TIMEOUT.as_secs()
            )),
        },
    );

    let mut tls = TlsSettings::default();
    if let Some(mode) = &request.sslmode {
        tls.set("sslmode", mode)
            .map_err(|why| Error::new(ErrorCode::InvalidInput, why))?;
    }

    let mut client = None;
    if reachable {
        let started = Instant::now();
        let mut config = SourceConfig::from(tokio_postgres::Config::new());
        config.tls = tls.clone();
        config
            .postgres
            .host(&request.host)
            .port(request.port)
            .dbname(&request.database)
            .user(&request.user)
            .password(&password)
            .connect_timeout(TIMEOUT)
            .application_name("ferry-test-connection");
        let connected = crate::source::connect(&config, "test", &request.database).await;
        // TLS refusals (certificate, CA bundle) are Configuration errors; the rest SQL's.
        let tls_refused = matches!(&connected, Err(err) if err.code() == ErrorCode::Configuration);
        let tls_outcome = match &connected {
            Ok(client) => tls_in_use(client, tls.mode).await,
            Err(err) if tls_refused => Err(err.message().to_string()),
            Err(_) => Ok(format!(
                "sslmode={}; not known, the sign-in failed",
                tls.mode.as_str()
            )),
        };
        checks.record("tls", started, tls_outcome);
        if tls_refused {
            checks.skipped("authentication", "the TLS handshake failed");
        } else {
            checks.record(
                "authentication",
                started,
                match &connected {
                    Ok(_) => Ok(format!(
                        "signed in to {:?} as {:?}",
                        request.database, request.user
                    )),
                    // The cause chain holds the server's answer (never the password).
                    Err(err) => Err(err.detail()),
                },
            );
        }
        client = connected.ok();
    } else {
        checks.skipped("tls", "the server is not reachable");
        checks.skipped("authentication", "the server is not reachable");
    }

    match &client {
        Some(client) => {
            let started = Instant::now();
            let version = client.query_one("SHOW server_version", &[]).await;
            checks.record(
                "server_version",
                started,
                version
                    .map(|row| format!("PostgreSQL {}", row.get::<_, String>(0)))
                    .map_err(|e| e.to_string()),
            );
            for table in &request.tables {
                let started = Instant::now();
                let outcome = table_check(client, table).await;
                checks.record(&format!("table {table}"), started, outcome);
            }
        }
        None => {
            checks.skipped("server_version", "no connection");
            for table in &request.tables {
                checks.skipped(&format!("table {table}"), "no connection");
            }
        }
    }

    for table in &request.target_tables {
        let name = format!("{}{table}", request.table_prefix);
        let started = Instant::now();
        let outcome = match cx.targets.item_count(&name).await {
            Ok(None) => Ok(format!("{name} does not exist yet")),
            Ok(Some(0)) => Ok(format!("{name} exists and is empty")),
            Ok(Some(n)) => Err(format!(
                "{name} exists with about {n} items; ImportTable creates its table, so it must not exist"
            )),
            Err(err) => Err(err.message().to_string()),
        };
        checks.record(&format!("target {name}"), started, outcome);
    }
    let ok = checks.checks.iter().all(|c| c.ok);
    Ok(Response {
        ok,
        checks: checks.checks,
    })
}

/// What the server says about this session's TLS.
async fn tls_in_use(
    client: &tokio_postgres::Client,
    mode: SslMode,
) -> std::result::Result<String, String> {
    let row = client
        .query_opt(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(match row {
        Some(row) if row.get::<_, bool>(0) => format!(
            "{} (sslmode={})",
            row.get::<_, Option<String>>(1)
                .unwrap_or_else(|| "TLS".into()),
            mode.as_str()
        ),
        _ => format!("no TLS (sslmode={})", mode.as_str()),
    })
}

async fn table_check(
    client: &tokio_postgres::Client,
    table: &str,
) -> std::result::Result<String, String> {
    let source = ferry_pipeline::extract::describe_table(client, table)
        .await
        .map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!("SELECT * FROM {} LIMIT 0", source.qualified()))
        .await
        .map_err(|e| format!("{table} is not readable: {e}"))?;
    let estimate: f32 = client
        .query_one(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&source.schema, &source.name],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1.0);
    Ok(if estimate < 0.0 {
        format!(
            "{table} is readable; {} columns; never analysed, no row estimate",
            source.columns.len()
        )
    } else {
        format!(
            "{table} is readable; {} columns; about {} rows",
            source.columns.len(),
            estimate as i64
        )
    })
}
