//! TLS to a source database, against the test PostgreSQL, which `scripts/local-stack.sh` starts
//! with `ssl = on` and a certificate for 127.0.0.1 / localhost signed by a throwaway CA
//! (`FERRY_PG_CA_FILE`). Every `sslmode` goes through the one connect that extract, plan,
//! clone and test-connection use.

use std::sync::Arc;

use ferry_core::spec::{Connection, Shard};
use ferry_core::ErrorCode;
use ferry_handlers::source::{connect, SecretsManagerReader, Sources};
use ferry_pipeline::source::SourceConfig;

fn ca_file() -> String {
    ferry_tests::services().pg_ca_file.clone().expect(
        "FERRY_PG_CA_FILE is not set: the local stack predates TLS; restart it with \
         scripts/local-stack.sh stop && scripts/local-stack.sh start",
    )
}

/// The test server's URL with these query parameters.
fn url(query: &str) -> String {
    let base = ferry_tests::postgres_url();
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

/// The test server's port, from `FERRY_DATABASE_URL`.
fn server_port() -> String {
    ferry_tests::postgres_url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next().map(str::to_owned))
        .expect("FERRY_DATABASE_URL has a port")
}

/// Connects through the shared connect; answers whether the session uses TLS.
async fn session_tls(url: &str) -> ferry_core::Result<bool> {
    let config = SourceConfig::from_url(url).expect("a valid URL");
    let client = connect(&config, "tls", "postgres").await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_connects_as_libpq_would() {
    let ca = ca_file();
    let encoded_ca: String = form_urlencoded::byte_serialize(ca.as_bytes()).collect();

    assert!(
        session_tls(&url(&format!(
            "sslmode=verify-full&sslrootcert={encoded_ca}"
        )))
        .await
        .expect("verify-full with the CA connects"),
        "verify-full must use TLS"
    );
    assert!(
        session_tls(&url(&format!("sslmode=verify-ca&sslrootcert={encoded_ca}")))
            .await
            .expect("verify-ca with the CA connects")
    );
    assert!(session_tls(&url("sslmode=require"))
        .await
        .expect("require connects without checking the certificate"));
    assert!(
        session_tls(&url(""))
            .await
            .expect("prefer (default) connects"),
        "the default, prefer, uses TLS when the server offers it"
    );
    assert!(
        !session_tls(&url("sslmode=disable"))
            .await
            .expect("disable connects"),
        "disable never uses TLS"
    );

    // A name the certificate does not carry (reached through hostaddr): verify-ca accepts,
    // verify-full refuses.
    let port = server_port();
    let other_name = |mode: &str| {
        format!(
            "postgres://postgres@ferry.invalid:{port}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={encoded_ca}"
        )
    };
    assert!(session_tls(&other_name("verify-ca"))
        .await
        .expect("verify-ca ignores the name"));
    let err = session_tls(&other_name("verify-full")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Configuration, "{}", err.detail());
    assert!(
        err.message().ends_with("the server's certificate is not issued for this host name (connect by the name in the certificate, or use sslmode=verify-ca)"),
        "{}",
        err.message()
    );

    // verify-full without the CA: the system's store does not know the test CA.
    let err = session_tls(&url("sslmode=verify-full")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Configuration, "{}", err.detail());
    assert_eq!(
        err.message(),
        "cannot connect to database \"postgres\" of shard tls: TLS with sslmode=verify-full \
         failed: the server's certificate is not signed by a trusted CA (give its CA bundle as \
         sslrootcert)"
    );
    // A CA bundle that is not there is named.
    let err = session_tls(&url(
        "sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Configuration);
    assert!(
        err.message()
            .contains("cannot read the CA bundle /nonexistent/ca.pem"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_secret_carries_sslmode_and_the_ca_bundle() {
    let ca = ca_file();
    let port: u16 = server_port().parse().expect("a port number");
    let client = aws_sdk_secretsmanager::Client::new(&ferry_tests::aws_config().await);
    let name = ferry_tests::unique_name("tls");
    let secret = |sslmode: &str, rootcert: Option<&str>| {
        let mut json = serde_json::json!({
            "username": "postgres", "password": "unused", "host": "127.0.0.1",
            "port": port, "dbname": "postgres", "sslmode": sslmode,
        });
        if let Some(rootcert) = rootcert {
            json["sslrootcert"] = rootcert.into();
        }
        json.to_string()
    };
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string(secret("verify-full", Some(&ca)))
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("an ARN");
    let sources = Sources::new(Some(Arc::new(SecretsManagerReader::new(client.clone()))));
    let shard = Shard {
        name: "s1".into(),
        database: "postgres".into(),
        connection: Connection::SecretArn(arn.clone()),
        cluster: None,
    };
    let session = sources
        .connect(&shard, "postgres")
        .await
        .expect("verify-full via the secret");
    let row = session
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));

    put_secret(&client, &arn, secret("verify-full", None)).await;
    let err = sources.connect(&shard, "postgres").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Configuration, "{}", err.detail());
    assert!(
        err.message().contains("not signed by a trusted CA"),
        "{}",
        err.message()
    );
    assert!(
        !err.detail().contains("unused"),
        "no password in {}",
        err.detail()
    );

    put_secret(&client, &arn, secret("verify-everything", None)).await;
    let err = sources.connect(&shard, "postgres").await.unwrap_err();
    assert_eq!(
        err.message(),
        format!(
            "the secret {arn} holds no usable credentials: sslmode: \"verify-everything\" is not \
             one of disable, allow, prefer, require, verify-ca, verify-full"
        )
    );
}

async fn put_secret(client: &aws_sdk_secretsmanager::Client, arn: &str, text: String) {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(text)
        .send()
        .await
        .expect("PutSecretValue");
}
