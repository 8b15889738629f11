//! Stored connections (`POST/GET /connections`, `DELETE /connections/{id}`).
//!
//! The credentials go to Secrets Manager, in the RDS JSON form (`username`, `password`, `host`,
//! `port`, `dbname`) that a spec's `connection = { secret_arn = "..." }` reads, under the name
//! `<FERRY_CONNECTION_SECRET_PREFIX><id>`. The record in the state table keeps the secret's ARN,
//! the group, host, port, database, user, sslmode and when it was made: never the password,
//! which is also never echoed or logged.
//!
//! A migration *uses* a connection when a shard of its stored spec reads through the
//! connection's secret (`connection.secret_arn` equal to the secret's ARN). Deleting a used
//! connection is refused (`CONNECTION_IN_USE`), whichever group the migration belongs to.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use ferry_core::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use ulid::Ulid;

use crate::api::records::{Collection, Deleted};
use crate::api::{ApiSettings, Caller};
use crate::Context;

/// Where connection credentials are kept.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Creates the secret `name` holding `secret`; answers its ARN.
    async fn create(&self, name: &str, description: &str, secret: &str) -> Result<String>;
    /// Deletes the secret at once (no recovery window); a secret already gone is fine.
    async fn delete(&self, arn: &str) -> Result<()>;
}

pub struct SecretsManagerCredentials {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerCredentials {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerCredentials { client }
    }
}

#[async_trait]
impl CredentialStore for SecretsManagerCredentials {
    async fn create(&self, name: &str, description: &str, secret: &str) -> Result<String> {
        let out = self
            .client
            .create_secret()
            .name(name)
            .description(description)
            .secret_string(secret)
            .send()
            .await
            .map_err(|err| {
                // The SDK error names the request, never its secret string.
                Error::new(
                    ErrorCode::Internal,
                    format!("cannot create the secret {name}"),
                )
                .with_source(err)
            })?;
        out.arn.ok_or_else(|| {
            Error::new(
                ErrorCode::Internal,
                format!("Secrets Manager created {name} without an ARN"),
            )
        })
    }

    async fn delete(&self, arn: &str) -> Result<()> {
        match self
            .client
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(err) => Err(Error::new(
                ErrorCode::Internal,
                format!("cannot delete the secret {arn}"),
            )
            .with_source(err)),
        }
    }
}

/// `POST /connections`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// A label for people; the id is what identifies the connection.
    #[serde(default)]
    pub name: Option<String>,
    /// The owner group; may be left out by a caller with exactly one group.
    #[serde(default)]
    pub group: Option<String>,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub sslmode: Option<String>,
}

// No derived Debug: it would print the password.
impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn default_port() -> u16 {
    5432
}

pub const SSLMODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// A stored connection, as the state table keeps it and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub group: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub sslmode: String,
    pub secret_arn: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidInput, message)
}

/// `value` holds `min` to `max` bytes and no control character.
pub(crate) fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    if value.len() < min || value.len() > max {
        return Err(invalid(format!(
            "{field}: must hold {min} to {max} bytes, got {}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: must not hold control characters"
        )));
    }
    Ok(())
}

fn not_empty(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field}: must not be empty")));
    }
    check_text(field, value, 1, max)
}

/// The group a new object belongs to: the one named (one of the caller's, or any for the
/// admin group), or the caller's only group.
pub fn owner_group(caller: &Caller, group: Option<&str>) -> Result<String> {
    match group {
        Some(g) if g.trim().is_empty() => Err(invalid("group: must not be empty")),
        Some(g) if caller.may_see(g) => Ok(g.to_string()),
        Some(g) => Err(invalid(format!("group: you are not a member of {g:?}"))),
        None => match caller.groups.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(invalid("group: your token names no group")),
            _ => Err(invalid(
                "group: required, since you are a member of several groups",
            )),
        },
    }
}

pub async fn create(
    cx: &Context,
    settings: &ApiSettings,
    caller: &Caller,
    body: NewConnection,
) -> Result<ConnectionRecord> {
    let group = owner_group(caller, body.group.as_deref())?;
    not_empty("host", &body.host, 255)?;
    not_empty("database", &body.database, 63)?;
    not_empty("user", &body.user, 63)?;
    if body.password.is_empty() {
        return Err(invalid("password: must not be empty"));
    }
    if body.password.len() > 4096 {
        return Err(invalid("password: at most 4096 characters"));
    }
    if body.port == 0 {
        return Err(invalid("port: must be from 1 to 65535"));
    }
    if let Some(name) = &body.name {
        not_empty("name", name, 128)?;
    }
    let sslmode = body.sslmode.clone().unwrap_or_else(|| "disable".into());
    if !SSLMODES.contains(&sslmode.as_str()) {
        return Err(invalid(format!(
            "sslmode: {sslmode:?} is not one of {}",
            SSLMODES.join(", ")
        )));
    }
    let id = Ulid::new().to_string();
    let secret = json!({
        "engine": "postgres",
        "host": body.host,
        "port": body.port,
        "dbname": body.database,
        "username": body.user,
        "password": body.password,
        "sslmode": sslmode,
    })
    .to_string();
    let secret_name = format!("{}{id}", settings.connection_secret_prefix);
    let secret_arn = cx
        .credentials
        .create(
            &secret_name,
            &format!("ferry connection {id} of group {group}"),
            &secret,
        )
        .await?;
    let record = ConnectionRecord {
        id: id.clone(),
        name: body.name,
        group,
        host: body.host,
        port: body.port,
        database: body.database,
        user: body.user,
        sslmode,
        secret_arn,
        created_at: Utc::now(),
    };
    let stored = serde_json::to_value(&record)
        .map_err(|err| Error::new(ErrorCode::Internal, "cannot encode").with_source(err));
    let stored = match stored {
        Ok(value) => {
            cx.records
                .insert(Collection::Connections, &id, &value)
                .await
        }
        Err(err) => Err(err),
    };
    if let Err(err) = stored {
        // Nothing half-made: the secret goes when its record could not be written.
        if let Err(cleanup) = cx.credentials.delete(&record.secret_arn).await {
            tracing::error!(error = %cleanup.detail(), secret = %record.secret_arn, "orphaned connection secret");
        }
        return Err(err);
    }
    tracing::info!(connection = %id, group = %record.group, "connection stored");
    Ok(record)
}

/// The connection, if it exists and the caller may see it; 404 otherwise.
pub async fn visible(cx: &Context, caller: &Caller, id: &str) -> Result<ConnectionRecord> {
    let not_found = || Error::new(ErrorCode::NotFound, format!("no connection {id}"));
    if Ulid::from_string(id).is_err() {
        return Err(not_found());
    }
    let record: Option<ConnectionRecord> = cx
        .records
        .get(Collection::Connections, id)
        .await?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|err| {
            Error::new(ErrorCode::Internal, "a connection record could not be read")
                .with_source(err)
        })?;
    record
        .filter(|r| caller.may_see(&r.group))
        .ok_or_else(not_found)
}

pub async fn delete(cx: &Context, caller: &Caller, id: &str) -> Result<ConnectionRecord> {
    let record = visible(cx, caller, id).await?;
    let users = cx
        .records
        .migrations_using_secret(&record.secret_arn)
        .await?;
    if !users.is_empty() {
        // Name only the migrations the caller may see.
        let named: Vec<&str> = users
            .iter()
            .filter(|(_, group)| caller.may_see(group))
            .map(|(name, _)| name.as_str())
            .collect();
        return Err(Error::new(
            ErrorCode::ConnectionInUse,
            format!(
                "connection {id} is used by {} stored migration(s){}; change their specs first",
                users.len(),
                if named.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", named.join(", "))
                }
            ),
        ));
    }
    // The secret first: a record without its secret can be deleted again, a password
    // without its record would be forgotten.
    cx.credentials.delete(&record.secret_arn).await?;
    match cx.records.delete(Collection::Connections, id, None).await? {
        Deleted::Deleted | Deleted::Missing => Ok(record),
        Deleted::Refused => Err(Error::new(
            ErrorCode::Internal,
            "the connection record could not be deleted",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(groups: &[&str], admin: bool) -> Caller {
        Caller {
            subject: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            admin,
        }
    }

    #[test]
    fn the_owner_group_is_the_callers() {
        assert_eq!(
            owner_group(&caller(&["hotels"], false), None).unwrap(),
            "hotels"
        );
        let two = caller(&["hotels", "flights"], false);
        assert!(owner_group(&two, None)
            .unwrap_err()
            .message()
            .starts_with("group:"));
        assert_eq!(owner_group(&two, Some("flights")).unwrap(), "flights");
        assert!(owner_group(&two, Some("cars")).is_err());
        assert_eq!(
            owner_group(&caller(&["admins"], true), Some("cars")).unwrap(),
            "cars"
        );
    }

    #[test]
    fn debug_never_prints_the_password() {
        let body: NewConnection = serde_json::from_value(json!({
            "host": "h", "database": "d", "user": "u", "password": "hunter2"
        }))
        .unwrap();
        assert!(!format!("{body:?}").contains("hunter2"));
    }
}
