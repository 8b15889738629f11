//! Connections to a source PostgreSQL: the settings (a `postgres://` URL, or fields read from a
//! secret) and the one [`connect`] that extract, plan, clone and test-connection use.
//!
//! TLS follows libpq's `sslmode` (default `prefer`):
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | – |
//! | `allow`, `prefer` | when the server offers it, else plain | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and issued for the host name |
//!
//! The trusted CAs are the PEM bundle named by `sslrootcert` (a file path; e.g. the RDS CA
//! bundle shipped with the function), or the system's store when it is absent or `system`.
//! tokio-postgres only knows disable/prefer/require, so both settings are taken out of the URL
//! here, by one parser ([`TlsSettings::set`]) for URLs and secrets alike.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::Client;

/// libpq's `sslmode`, all six values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, allow, prefer, require, verify-ca, verify-full";

    pub fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode: {other:?} is not one of {}",
                    SslMode::NAMES
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootCerts {
    /// The system's certificate store.
    #[default]
    System,
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
}

/// The TLS part of a source's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `None`: not given (then `require` does not check the certificate).
    pub root_cert: Option<RootCerts>,
}

impl TlsSettings {
    /// Sets one of the two TLS settings from its libpq name; `Ok(false)` for any other name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        match name {
            "sslmode" => self.mode = SslMode::parse(value)?,
            "sslrootcert" => {
                self.root_cert = Some(match value {
                    "" => return Err("sslrootcert: empty; give a PEM file's path or system".into()),
                    "system" => RootCerts::System,
                    path => RootCerts::File(PathBuf::from(path)),
                })
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// How the server's certificate is checked (`None`: not at all).
    fn verification(&self) -> Option<(&RootCerts, bool)> {
        const SYSTEM: &RootCerts = &RootCerts::System;
        match self.mode {
            SslMode::VerifyFull => Some((self.root_cert.as_ref().unwrap_or(SYSTEM), true)),
            SslMode::VerifyCa => Some((self.root_cert.as_ref().unwrap_or(SYSTEM), false)),
            SslMode::Require => self.root_cert.as_ref().map(|roots| (roots, false)),
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => None,
        }
    }
}

/// Everything needed to connect to a source database.
#[derive(Clone)]
pub struct SourceConfig {
    pub postgres: tokio_postgres::Config,
    pub tls: TlsSettings,
}

impl From<tokio_postgres::Config> for SourceConfig {
    fn from(postgres: tokio_postgres::Config) -> Self {
        SourceConfig {
            postgres,
            tls: TlsSettings::default(),
        }
    }
}

impl std::fmt::Debug for SourceConfig {
    // tokio_postgres::Config's Debug redacts the password; keep it that way.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("postgres", &self.postgres)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SourceConfig {
    /// Parses a `postgres://` (or `postgresql://`) URL; `sslmode` and `sslrootcert` in its query
    /// are read here, every other parameter by tokio-postgres. Errors never quote the URL.
    pub fn from_url(url: &str) -> Result<SourceConfig, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut tls = TlsSettings::default();
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = form_urlencoded::parse(pair.as_bytes())
                .next()
                .unwrap_or_default();
            if !tls.set(&name, &value)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let postgres = rest
            .parse::<tokio_postgres::Config>()
            .map_err(|err| err.to_string())?;
        Ok(SourceConfig { postgres, tls })
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the CA bundle {path}: {reason}")]
    RootCerts { path: PathBuf, reason: String },
    #[error("TLS with sslmode={mode} failed: {reason}")]
    Tls { mode: &'static str, reason: String },
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// Connects as `config` says; the connection runs on its own task until the client is dropped.
pub async fn connect(config: &SourceConfig) -> Result<Client, ConnectError> {
    let mut postgres = config.postgres.clone();
    postgres.ssl_mode(match config.tls.mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    if config.tls.mode == SslMode::Disable {
        let (client, connection) = postgres.connect(tokio_postgres::NoTls).await?;
        spawn_connection(connection);
        return Ok(client);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&config.tls)?);
    let (client, connection) = postgres
        .connect(tls)
        .await
        .map_err(|err| tls_error(config.tls.mode, err))?;
    spawn_connection(connection);
    Ok(client)
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    tokio_postgres::Connection<S, T>:
        std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "source connection ended with an error");
        }
    });
}

/// A certificate the handshake refused becomes [`ConnectError::Tls`] saying what to change.
fn tls_error(mode: SslMode, err: tokio_postgres::Error) -> ConnectError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = cause {
        // tokio-rustls hands rustls' error over inside an io::Error, whose source() skips it.
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(rustls_err) = inner.or_else(|| current.downcast_ref::<rustls::Error>()) {
            let reason = match rustls_err {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    "the server's certificate is not signed by a trusted CA (give its CA bundle as sslrootcert)".to_string()
                }
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => "the server's certificate is not issued for this host name (connect by the name in the certificate, or use sslmode=verify-ca)".to_string(),
                other => other.to_string(),
            };
            return ConnectError::Tls {
                mode: mode.as_str(),
                reason,
            };
        }
        cause = current.source();
    }
    ConnectError::Postgres(err)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match tls.verification() {
        None => Arc::new(CertificateCheck {
            webpki: None,
            check_name: false,
            provider: provider.clone(),
        }),
        Some((roots, check_name)) => {
            let store = Arc::new(root_store(roots)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                .build()
                .map_err(|err| ConnectError::Tls {
                    mode: tls.mode.as_str(),
                    reason: err.to_string(),
                })?;
            Arc::new(CertificateCheck {
                webpki: Some(webpki),
                check_name,
                provider: provider.clone(),
            })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ConnectError::Tls {
            mode: tls.mode.as_str(),
            reason: err.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, ConnectError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(ConnectError::RootCerts {
                    path: PathBuf::from("system"),
                    reason: "the system's certificate store is empty or unreadable".into(),
                });
            }
        }
        RootCerts::File(path) => {
            let failed = |reason: String| ConnectError::RootCerts {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| failed(err.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| failed(err.to_string()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(failed("no usable CA certificate in it".into()));
            }
        }
    }
    Ok(store)
}

/// The server-certificate check for every mode: signatures are always verified (that is the
/// handshake's integrity); the chain only with `webpki`, the host name only with `check_name`.
#[derive(Debug)]
struct CertificateCheck {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // The chain is checked before the name, so a name mismatch means a good chain.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_the_url() {
        let c = SourceConfig::from_url(
            "postgres://u:p%20w@db.example:6543/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            c.tls.root_cert,
            Some(RootCerts::File(PathBuf::from("/etc/ca.pem")))
        );
        assert_eq!(c.postgres.get_password(), Some(&b"p w"[..]));
        assert_eq!(c.postgres.get_application_name(), Some("x"));
        assert_eq!(c.postgres.get_ports(), &[6543]);

        let plain = SourceConfig::from_url("postgresql://u@h/db").unwrap();
        assert_eq!(plain.tls, TlsSettings::default());
        assert_eq!(plain.tls.mode, SslMode::Prefer);
        let system = SourceConfig::from_url("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(system.tls.root_cert, Some(RootCerts::System));
    }

    #[test]
    fn bad_tls_settings_name_the_parameter_and_not_the_password() {
        let err = SourceConfig::from_url("postgres://u:hunter2@h/db?sslmode=on").unwrap_err();
        assert_eq!(
            err,
            "sslmode: \"on\" is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let err = SourceConfig::from_url("postgres://u:hunter2@h/db?sslrootcert=").unwrap_err();
        assert!(err.starts_with("sslrootcert:"), "{err}");
        let err = SourceConfig::from_url("postgres://u:hunter2@h/db?nonsense=1").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn which_modes_check_what() {
        let file = RootCerts::File(PathBuf::from("/ca.pem"));
        let with = |mode, root_cert: Option<RootCerts>| TlsSettings { mode, root_cert };
        assert_eq!(
            with(SslMode::Prefer, Some(file.clone())).verification(),
            None
        );
        assert_eq!(with(SslMode::Require, None).verification(), None);
        assert_eq!(
            with(SslMode::Require, Some(file.clone())).verification(),
            Some((&file, false))
        );
        assert_eq!(
            with(SslMode::VerifyCa, None).verification(),
            Some((&RootCerts::System, false))
        );
        assert_eq!(
            with(SslMode::VerifyFull, Some(file.clone())).verification(),
            Some((&file, true))
        );
    }

    #[test]
    fn a_missing_ca_bundle_is_named() {
        let tls = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCerts::File(PathBuf::from("/nonexistent/ca.pem"))),
        };
        let err = client_config(&tls).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read the CA bundle /nonexistent/ca.pem"),
            "{err}"
        );
    }
}
