//! [`AwsDispatcher`]: `arn:aws:states:::aws-sdk:<service>:<action>` tasks for the JSON-protocol
//! services in [`JSON_SERVICES`] (one generic SigV4-signed pass-through), the S3 actions in
//! [`S3_ACTIONS`] through `aws-sdk-s3`, and EMR Serverless (REST-JSON: `aws-sdk:emrserverless:*`
//! and the optimized `emr-serverless:startJobRun[.sync]`, see [`crate::emr_serverless`]), against
//! the endpoint the AWS configuration names (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`) or
//! the regional default.
//!
//! Errors are named the way Step Functions names them: `<Service>.<ErrorName>` with the
//! service in PascalCase (`DynamoDb`, `SecretsManager`, `S3`) and the error name always ending
//! in `Exception` (`S3.NoSuchKey` is `S3.NoSuchKeyException`), as the developer guide's
//! "AWS SDK service integrations" page says.

use crate::casing::{self, camel_case, pascal_case};
use crate::clock::{Clock, RealClock};
use crate::dispatcher::{TaskDispatcher, TaskRequest};
use crate::emr_serverless;
use crate::error::{names, Failure};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The resource prefix of AWS SDK integrations.
pub const AWS_SDK_PREFIX: &str = "arn:aws:states:::aws-sdk:";

/// A JSON-protocol service the pass-through knows how to call.
#[derive(Debug, PartialEq, Eq)]
pub struct JsonService {
    /// The name in the resource (`aws-sdk:<name>:...`).
    pub name: &'static str,
    /// The `X-Amz-Target` prefix (`DynamoDB_20120810`).
    pub target_prefix: &'static str,
    /// `application/x-amz-json-<version>`.
    pub json_version: &'static str,
    /// The SigV4 signing name and the regional endpoint's first label.
    pub signing_name: &'static str,
    /// `AWS_ENDPOINT_URL_<env_key>`.
    pub env_key: &'static str,
    /// The service part of Step Functions' error names (`DynamoDb`).
    pub error_prefix: &'static str,
    /// The actions in PascalCase (streaming ones left out: Step Functions cannot call them).
    pub actions: &'static [&'static str],
    /// How the wire protocol spells member names.
    pub members: WireMembers,
}

/// How a service's JSON protocol spells member names. Step Functions always shows them in
/// PascalCase; services whose wire protocol is camelCase get them converted both ways.
#[derive(Debug, PartialEq, Eq)]
pub enum WireMembers {
    /// PascalCase on the wire too (DynamoDB, Kinesis, ...): sent and returned as they are.
    Pascal,
    /// camelCase on the wire (Step Functions' own API); the members listed hold maps, whose
    /// keys are user data and keep their case.
    Camel {
        map_members: &'static [&'static str],
    },
}

/// The JSON-protocol services supported by the pass-through.
pub const JSON_SERVICES: &[JsonService] = &[
    JsonService {
        name: "dynamodb",
        target_prefix: "DynamoDB_20120810",
        json_version: "1.0",
        signing_name: "dynamodb",
        env_key: "DYNAMODB",
        error_prefix: "DynamoDb",
        members: WireMembers::Pascal,
        actions: &[
            "BatchExecuteStatement",
            "BatchGetItem",
            "BatchWriteItem",
            "CreateBackup",
            "CreateGlobalTable",
            "CreateTable",
            "DeleteBackup",
            "DeleteItem",
            "DeleteResourcePolicy",
            "DeleteTable",
            "DescribeBackup",
            "DescribeContinuousBackups",
            "DescribeContributorInsights",
            "DescribeEndpoints",
            "DescribeExport",
            "DescribeGlobalTable",
            "DescribeGlobalTableSettings",
            "DescribeImport",
            "DescribeKinesisStreamingDestination",
            "DescribeLimits",
            "DescribeTable",
            "DescribeTableReplicaAutoScaling",
            "DescribeTimeToLive",
            "DisableKinesisStreamingDestination",
            "EnableKinesisStreamingDestination",
            "ExecuteStatement",
            "ExecuteTransaction",
            "ExportTableToPointInTime",
            "GetItem",
            "GetResourcePolicy",
            "ImportTable",
            "ListBackups",
            "ListContributorInsights",
            "ListExports",
            "ListGlobalTables",
            "ListImports",
            "ListTables",
            "ListTagsOfResource",
            "PutItem",
            "PutResourcePolicy",
            "Query",
            "RestoreTableFromBackup",
            "RestoreTableToPointInTime",
            "Scan",
            "TagResource",
            "TransactGetItems",
            "TransactWriteItems",
            "UntagResource",
            "UpdateContinuousBackups",
            "UpdateContributorInsights",
            "UpdateGlobalTable",
            "UpdateGlobalTableSettings",
            "UpdateItem",
            "UpdateKinesisStreamingDestination",
            "UpdateTable",
            "UpdateTableReplicaAutoScaling",
            "UpdateTimeToLive",
        ],
    },
    JsonService {
        name: "kinesis",
        target_prefix: "Kinesis_20131202",
        json_version: "1.1",
        signing_name: "kinesis",
        env_key: "KINESIS",
        error_prefix: "Kinesis",
        members: WireMembers::Pascal,
        actions: &[
            "AddTagsToStream",
            "CreateStream",
            "DecreaseStreamRetentionPeriod",
            "DeleteResourcePolicy",
            "DeleteStream",
            "DeregisterStreamConsumer",
            "DescribeLimits",
            "DescribeStream",
            "DescribeStreamConsumer",
            "DescribeStreamSummary",
            "DisableEnhancedMonitoring",
            "EnableEnhancedMonitoring",
            "GetRecords",
            "GetResourcePolicy",
            "GetShardIterator",
            "IncreaseStreamRetentionPeriod",
            "ListShards",
            "ListStreamConsumers",
            "ListStreams",
            "ListTagsForResource",
            "ListTagsForStream",
            "MergeShards",
            "PutRecord",
            "PutRecords",
            "PutResourcePolicy",
            "RegisterStreamConsumer",
            "RemoveTagsFromStream",
            "SplitShard",
            "StartStreamEncryption",
            "StopStreamEncryption",
            "TagResource",
            "UntagResource",
            "UpdateShardCount",
            "UpdateStreamMode",
        ],
    },
    JsonService {
        name: "secretsmanager",
        target_prefix: "secretsmanager",
        json_version: "1.1",
        signing_name: "secretsmanager",
        env_key: "SECRETS_MANAGER",
        error_prefix: "SecretsManager",
        members: WireMembers::Pascal,
        actions: &[
            "BatchGetSecretValue",
            "CancelRotateSecret",
            "CreateSecret",
            "DeleteResourcePolicy",
            "DeleteSecret",
            "DescribeSecret",
            "GetRandomPassword",
            "GetResourcePolicy",
            "GetSecretValue",
            "ListSecretVersionIds",
            "ListSecrets",
            "PutResourcePolicy",
            "PutSecretValue",
            "RemoveRegionsFromReplication",
            "ReplicateSecretToRegions",
            "RestoreSecret",
            "RotateSecret",
            "StopReplicationToReplica",
            "TagResource",
            "UntagResource",
            "UpdateSecret",
            "UpdateSecretVersionStage",
            "ValidateResourcePolicy",
        ],
    },
    JsonService {
        name: "sqs",
        target_prefix: "AmazonSQS",
        json_version: "1.0",
        signing_name: "sqs",
        env_key: "SQS",
        error_prefix: "Sqs",
        members: WireMembers::Pascal,
        actions: &[
            "AddPermission",
            "CancelMessageMoveTask",
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
            "CreateQueue",
            "DeleteMessage",
            "DeleteMessageBatch",
            "DeleteQueue",
            "GetQueueAttributes",
            "GetQueueUrl",
            "ListDeadLetterSourceQueues",
            "ListMessageMoveTasks",
            "ListQueueTags",
            "ListQueues",
            "PurgeQueue",
            "ReceiveMessage",
            "RemovePermission",
            "SendMessage",
            "SendMessageBatch",
            "SetQueueAttributes",
            "StartMessageMoveTask",
            "TagQueue",
            "UntagQueue",
        ],
    },
    JsonService {
        name: "sfn",
        target_prefix: "AWSStepFunctions",
        json_version: "1.0",
        signing_name: "states",
        env_key: "SFN",
        error_prefix: "Sfn",
        // The only map-typed member of the API (DescribeStateMachine's answer).
        members: WireMembers::Camel {
            map_members: &["variableReferences"],
        },
        actions: &[
            "CreateActivity",
            "CreateStateMachine",
            "CreateStateMachineAlias",
            "DeleteActivity",
            "DeleteStateMachine",
            "DeleteStateMachineAlias",
            "DeleteStateMachineVersion",
            "DescribeActivity",
            "DescribeExecution",
            "DescribeMapRun",
            "DescribeStateMachine",
            "DescribeStateMachineAlias",
            "DescribeStateMachineForExecution",
            "GetActivityTask",
            "GetExecutionHistory",
            "ListActivities",
            "ListExecutions",
            "ListMapRuns",
            "ListStateMachineAliases",
            "ListStateMachineVersions",
            "ListStateMachines",
            "ListTagsForResource",
            "PublishStateMachineVersion",
            "RedriveExecution",
            "SendTaskFailure",
            "SendTaskHeartbeat",
            "SendTaskSuccess",
            "StartExecution",
            "StopExecution",
            "TagResource",
            "TestState",
            "UntagResource",
            "UpdateMapRun",
            "UpdateStateMachine",
            "UpdateStateMachineAlias",
            "ValidateStateMachineDefinition",
        ],
    },
];

/// The S3 actions supported (through `aws-sdk-s3`).
pub const S3_ACTIONS: &[&str] = &[
    "getObject",
    "putObject",
    "listObjectsV2",
    "deleteObject",
    "headObject",
];

/// What a resource names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Json(&'static JsonService, String),
    S3(&'a str),
    /// `aws-sdk:emrserverless:<action>` (REST-JSON).
    EmrServerless(&'static emr_serverless::RestOperation),
    /// The optimized `emr-serverless:startJobRun` integration; `sync` for `.sync`.
    EmrServerlessJob {
        sync: bool,
    },
}

fn parse_resource(resource: &str) -> Result<Target<'_>, String> {
    if let Some(action) = resource.strip_prefix(emr_serverless::OPTIMIZED_PREFIX) {
        return emr_serverless::parse_optimized(action)
            .map(|sync| Target::EmrServerlessJob { sync })
            .map_err(|e| format!("resource {resource:?}: {e}"));
    }
    let Some(rest) = resource.strip_prefix(AWS_SDK_PREFIX) else {
        return Err(format!(
            "resource {resource:?} is not supported: the AWS dispatcher runs {AWS_SDK_PREFIX}<service>:<action> and {}startJobRun[.sync]",
            emr_serverless::OPTIMIZED_PREFIX
        ));
    };
    let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
    // `.waitForTaskToken` is the engine's business; `.sync` does not exist for aws-sdk tasks.
    let action = action.strip_suffix(".waitForTaskToken").unwrap_or(action);
    if service == "s3" {
        return S3_ACTIONS
            .iter()
            .find(|a| **a == action)
            .map(|a| Target::S3(a))
            .ok_or_else(|| {
                format!(
                    "resource {resource:?}: the S3 action {action:?} is not supported (supported: {})",
                    S3_ACTIONS.join(", ")
                )
            });
    }
    if service == emr_serverless::SDK_SERVICE {
        return emr_serverless::sdk_operation(action)
            .map(Target::EmrServerless)
            .map_err(|e| format!("resource {resource:?}: {e}"));
    }
    let supported_services = || {
        let mut s: Vec<&str> = JSON_SERVICES.iter().map(|s| s.name).collect();
        s.push("s3");
        s.push(emr_serverless::SDK_SERVICE);
        s.join(", ")
    };
    let Some(svc) = JSON_SERVICES.iter().find(|s| s.name == service) else {
        return Err(format!(
            "resource {resource:?}: the AWS SDK service {service:?} is not supported (supported: {})",
            supported_services()
        ));
    };
    let pascal = pascal_case(action);
    // Step Functions writes actions in camelCase: `putItem`, not `PutItem`.
    let camel_ok = action
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase());
    if !camel_ok || !svc.actions.contains(&pascal.as_str()) {
        return Err(format!(
            "resource {resource:?}: {service} has no action {action:?} (actions are camelCase, like \"{}\")",
            camel_case(svc.actions[0])
        ));
    }
    Ok(Target::Json(svc, pascal))
}

/// Where a service's calls go: `AWS_ENDPOINT_URL_<SERVICE>`, else the configured endpoint
/// (`AWS_ENDPOINT_URL`), else the regional AWS endpoint.
fn endpoint_for(
    env_key: &str,
    signing_name: &str,
    env: impl Fn(&str) -> Option<String>,
    configured: Option<&str>,
    region: &str,
) -> String {
    env(&format!("AWS_ENDPOINT_URL_{env_key}"))
        .filter(|v| !v.is_empty())
        .or_else(|| configured.map(str::to_string))
        .unwrap_or_else(|| format!("https://{signing_name}.{region}.amazonaws.com"))
}

/// The name Step Functions gives a service error: `<Prefix>.<Name>Exception`.
pub fn step_functions_error_name(prefix: &str, code: &str) -> String {
    // JSON protocol codes may come as `com.amazonaws.dynamodb.v20120810#Name` or `Name:url`.
    let code = code.rsplit('#').next().unwrap_or(code);
    let code = code.split(':').next().unwrap_or(code);
    if code.ends_with("Exception") {
        format!("{prefix}.{code}")
    } else {
        format!("{prefix}.{code}Exception")
    }
}

pub(crate) fn service_cause(message: &str, prefix: &str, status: u16, request_id: &str) -> String {
    format!("{message} (Service: {prefix}, Status Code: {status}, Request ID: {request_id})")
}

/// An AWS answer, before it is judged.
pub(crate) struct RawResponse {
    pub status: u16,
    pub request_id: String,
    /// `x-amzn-errortype`, the error code of JSON and REST-JSON services.
    pub error_type: Option<String>,
    pub body: bytes::Bytes,
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<bytes::Bytes>>;

/// Runs `aws-sdk:*` tasks against AWS, or the endpoint the AWS configuration names.
///
/// [`AwsDispatcher::from_env`] loads the AWS configuration (region, credentials) only when
/// the first task runs, so a definition without AWS tasks never waits for it.
pub struct AwsDispatcher {
    config: Option<aws_config::SdkConfig>,
    clients: tokio::sync::OnceCell<Result<Clients, String>>,
    /// How long `.sync` integrations wait between status checks.
    poll_interval: Duration,
}

/// The default wait between status checks of a `.sync` integration.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) struct Clients {
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    s3: aws_sdk_s3::Client,
    http: HttpClient,
    /// `AWS_ENDPOINT_URL` (or the one the configuration was built with).
    endpoint_url: Option<String>,
}

impl AwsDispatcher {
    /// The AWS configuration loaded the usual way (environment, profile, credential chain),
    /// when the first task needs it.
    pub fn from_env() -> Self {
        AwsDispatcher {
            config: None,
            clients: tokio::sync::OnceCell::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// Uses this configuration: region, credentials and endpoint URL.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        AwsDispatcher {
            config: Some(config.clone()),
            clients: tokio::sync::OnceCell::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// How long `.sync` integrations (`emr-serverless:startJobRun.sync`) wait between
    /// status checks, on the execution's clock ([`DEFAULT_POLL_INTERVAL`] unless set).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    async fn clients(&self) -> Result<&Clients, Failure> {
        let clients = self
            .clients
            .get_or_init(|| async {
                let config = match &self.config {
                    Some(c) => c.clone(),
                    None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
                };
                Clients::new(&config)
            })
            .await;
        clients
            .as_ref()
            .map_err(|e| Failure::new(names::TASK_FAILED, e.clone()))
    }
}

impl Clients {
    fn new(config: &aws_config::SdkConfig) -> Result<Self, String> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint_url = config.endpoint_url().map(str::to_string).or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty())
        });
        let mut s3 = aws_sdk_s3::config::Builder::from(config);
        if let Some(url) = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| endpoint_url.clone())
        {
            // Emulators serve buckets by path, not by virtual host.
            s3 = s3.endpoint_url(url).force_path_style(true);
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Clients {
            region,
            credentials: config.credentials_provider(),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            http,
            endpoint_url,
        })
    }

    /// The endpoint of a service: see [`endpoint_for`].
    pub(crate) fn endpoint(&self, env_key: &str, signing_name: &str) -> String {
        endpoint_for(
            env_key,
            signing_name,
            |name| std::env::var(name).ok(),
            self.endpoint_url.as_deref(),
            &self.region,
        )
    }

    /// Sends one SigV4-signed request. `Err` is a client-side problem (credentials,
    /// signing, transport), described for a cause.
    pub(crate) async fn send_signed(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        signing_name: &str,
    ) -> Result<RawResponse, String> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder
            .body(body.clone())
            .map_err(|e| format!("bad request to {url}: {e}"))?;
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| "no AWS credentials are configured".to_string())?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("cannot load AWS credentials: {e}"))?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(signing_name)
            .time(SystemTime::now())
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let signed_headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            method,
            url,
            signed_headers.into_iter(),
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )
        .map_err(|e| format!("cannot sign the request: {e}"))?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let request = request.map(|b| Full::new(bytes::Bytes::from(b)));
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-amzn-requestid").unwrap_or_default();
        let error_type = header("x-amzn-errortype");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("cannot read the response from {url}: {e}"))?
            .to_bytes();
        Ok(RawResponse {
            status,
            request_id,
            error_type,
            body,
        })
    }

    async fn call_json(
        &self,
        svc: &JsonService,
        action: &str,
        params: &Value,
    ) -> Result<Value, Failure> {
        let client_error = |what: String| {
            Failure::new(
                names::TASK_FAILED,
                format!("{what} (Service: {}, Action: {action})", svc.error_prefix),
            )
        };
        let body = match svc.members {
            WireMembers::Pascal => serde_json::to_vec(params),
            WireMembers::Camel { map_members } => {
                serde_json::to_vec(&casing::to_camel_wire(params, map_members))
            }
        }
        .map_err(|e| client_error(e.to_string()))?;
        let url = self.endpoint(svc.env_key, svc.signing_name);
        let target = format!("{}.{action}", svc.target_prefix);
        let content_type = format!("application/x-amz-json-{}", svc.json_version);
        let RawResponse {
            status,
            request_id,
            error_type,
            body: bytes,
        } = self
            .send_signed(
                "POST",
                &url,
                &[("content-type", &content_type), ("x-amz-target", &target)],
                body,
                svc.signing_name,
            )
            .await
            .map_err(client_error)?;
        let json: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                client_error(format!(
                    "the response from {url} is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                ))
            })?
        };
        if (200..300).contains(&status) {
            return Ok(match svc.members {
                WireMembers::Pascal => json,
                WireMembers::Camel { map_members } => casing::from_camel_wire(&json, map_members),
            });
        }
        let code = json
            .get("__type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(error_type)
            .unwrap_or_else(|| format!("Http{status}"));
        let message = json
            .get("message")
            .or_else(|| json.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(Failure::new(
            step_functions_error_name(svc.error_prefix, &code),
            service_cause(message, svc.error_prefix, status, &request_id),
        ))
    }

    async fn call_s3(&self, action: &str, p: &Value) -> Result<Value, Failure> {
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        let required = |k: &str| {
            s(k).ok_or_else(|| {
                Failure::new(
                    names::RUNTIME,
                    format!("The S3 action {action} needs the string parameter '{k}'"),
                )
            })
        };
        let bucket = required("Bucket")?;
        let out = match action {
            "getObject" => {
                let key = required("Key")?;
                let mut req = self.s3.get_object().bucket(bucket).key(key);
                if let Some(range) = s("Range") {
                    req = req.range(range);
                }
                if let Some(v) = s("VersionId") {
                    req = req.version_id(v);
                }
                let o = req.send().await.map_err(s3_failure)?;
                let mut m = Map::new();
                insert_opt(&mut m, "ContentLength", o.content_length.map(Value::from));
                insert_opt(
                    &mut m,
                    "ContentType",
                    o.content_type.clone().map(Value::from),
                );
                insert_opt(&mut m, "ETag", o.e_tag.clone().map(Value::from));
                insert_opt(&mut m, "LastModified", o.last_modified.map(date));
                insert_opt(&mut m, "VersionId", o.version_id.clone().map(Value::from));
                if let Some(meta) = &o.metadata {
                    m.insert("Metadata".into(), json!(meta));
                }
                let body = o.body.collect().await.map_err(|e| {
                    Failure::new(
                        "S3.SdkClientException",
                        format!("cannot read the object: {e}"),
                    )
                })?;
                // Step Functions hands the body over as text.
                let body = String::from_utf8_lossy(&body.into_bytes()).into_owned();
                m.insert("Body".into(), Value::String(body));
                Value::Object(m)
            }
            "putObject" => {
                let key = required("Key")?;
                let body = match p.get("Body") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(t)) => t.clone().into_bytes(),
                    Some(other) => other.to_string().into_bytes(),
                };
                let mut req = self
                    .s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body.into());
                if let Some(ct) = s("ContentType") {
                    req = req.content_type(ct);
                }
                let o = req.send().await.map_err(s3_failure)?;
                let mut m = Map::new();
                insert_opt(&mut m, "ETag", o.e_tag.map(Value::from));
                insert_opt(&mut m, "VersionId", o.version_id.map(Value::from));
                insert_opt(
                    &mut m,
                    "ServerSideEncryption",
                    o.server_side_encryption.map(|e| Value::from(e.as_str())),
                );
                Value::Object(m)
            }
            "deleteObject" => {
                let key = required("Key")?;
                let o = self
                    .s3
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(s3_failure)?;
                let mut m = Map::new();
                insert_opt(&mut m, "DeleteMarker", o.delete_marker.map(Value::from));
                insert_opt(&mut m, "VersionId", o.version_id.map(Value::from));
                Value::Object(m)
            }
            "headObject" => {
                let key = required("Key")?;
                let o = self
                    .s3
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(s3_failure)?;
                let mut m = Map::new();
                insert_opt(&mut m, "ContentLength", o.content_length.map(Value::from));
                insert_opt(&mut m, "ContentType", o.content_type.map(Value::from));
                insert_opt(&mut m, "ETag", o.e_tag.map(Value::from));
                insert_opt(&mut m, "LastModified", o.last_modified.map(date));
                insert_opt(&mut m, "VersionId", o.version_id.map(Value::from));
                if let Some(meta) = o.metadata {
                    m.insert("Metadata".into(), json!(meta));
                }
                Value::Object(m)
            }
            "listObjectsV2" => {
                let mut req = self.s3.list_objects_v2().bucket(&bucket);
                if let Some(v) = s("Prefix") {
                    req = req.prefix(v);
                }
                if let Some(v) = s("Delimiter") {
                    req = req.delimiter(v);
                }
                if let Some(v) = s("ContinuationToken") {
                    req = req.continuation_token(v);
                }
                if let Some(v) = s("StartAfter") {
                    req = req.start_after(v);
                }
                if let Some(v) = p.get("MaxKeys").and_then(Value::as_i64) {
                    req = req.max_keys(v as i32);
                }
                let o = req.send().await.map_err(s3_failure)?;
                let contents: Vec<Value> = o
                    .contents()
                    .iter()
                    .map(|c| {
                        let mut m = Map::new();
                        insert_opt(&mut m, "Key", c.key.clone().map(Value::from));
                        insert_opt(&mut m, "LastModified", c.last_modified.map(date));
                        insert_opt(&mut m, "ETag", c.e_tag.clone().map(Value::from));
                        insert_opt(&mut m, "Size", c.size.map(Value::from));
                        insert_opt(
                            &mut m,
                            "StorageClass",
                            c.storage_class.as_ref().map(|s| Value::from(s.as_str())),
                        );
                        Value::Object(m)
                    })
                    .collect();
                let mut m = Map::new();
                if !contents.is_empty() {
                    m.insert("Contents".into(), Value::Array(contents));
                }
                let prefixes: Vec<Value> = o
                    .common_prefixes()
                    .iter()
                    .filter_map(|c| c.prefix.clone())
                    .map(|p| json!({ "Prefix": p }))
                    .collect();
                if !prefixes.is_empty() {
                    m.insert("CommonPrefixes".into(), Value::Array(prefixes));
                }
                insert_opt(&mut m, "IsTruncated", o.is_truncated.map(Value::from));
                insert_opt(&mut m, "KeyCount", o.key_count.map(Value::from));
                insert_opt(&mut m, "MaxKeys", o.max_keys.map(Value::from));
                m.insert("Name".into(), Value::from(bucket));
                insert_opt(&mut m, "Prefix", o.prefix.map(Value::from));
                insert_opt(&mut m, "Delimiter", o.delimiter.map(Value::from));
                insert_opt(
                    &mut m,
                    "NextContinuationToken",
                    o.next_continuation_token.map(Value::from),
                );
                insert_opt(
                    &mut m,
                    "ContinuationToken",
                    o.continuation_token.map(Value::from),
                );
                Value::Object(m)
            }
            other => return Err(Failure::runtime(format!("unsupported S3 action {other}"))),
        };
        Ok(out)
    }
}

fn insert_opt(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v);
    }
}

fn date(d: aws_sdk_s3::primitives::DateTime) -> Value {
    d.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .map(Value::from)
        .unwrap_or(Value::Null)
}

fn s3_failure<E>(
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Failure
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (e.code(), status) {
        (Some(code), Some(status)) => {
            let request_id = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-request-id"))
                .unwrap_or_default()
                .to_string();
            Failure::new(
                step_functions_error_name("S3", code),
                service_cause(e.message().unwrap_or_default(), "S3", status, &request_id),
            )
        }
        // HEAD answers carry no body, so no code: name the status as the SDK does.
        (None, Some(404)) => Failure::new(
            "S3.NotFoundException",
            service_cause("Not Found", "S3", 404, ""),
        ),
        _ => Failure::new(
            names::TASK_FAILED,
            format!(
                "{} (Service: S3)",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        ),
    }
}

impl AwsDispatcher {
    /// Runs one `aws-sdk:<service>:<action>` call outside any execution, as a Task state
    /// would (same parameters, result and error names).
    /// `.sync` integrations wait on the real clock.
    pub async fn call(&self, resource: &str, parameters: &Value) -> Result<Value, Failure> {
        self.call_on(resource, parameters, Arc::new(RealClock))
            .await
    }

    async fn call_on(
        &self,
        resource: &str,
        parameters: &Value,
        clock: Arc<dyn Clock>,
    ) -> Result<Value, Failure> {
        let clients = self.clients().await?;
        match parse_resource(resource).map_err(Failure::runtime)? {
            Target::Json(svc, action) => clients.call_json(svc, &action, parameters).await,
            Target::S3(action) => clients.call_s3(action, parameters).await,
            Target::EmrServerless(op) => {
                emr_serverless::call(clients, op, parameters, emr_serverless::SDK_ERROR_PREFIX)
                    .await
            }
            Target::EmrServerlessJob { sync } => {
                let poll = sync.then_some((clock.as_ref(), self.poll_interval));
                emr_serverless::start_job_run(clients, parameters, poll).await
            }
        }
    }
}

#[async_trait::async_trait]
impl TaskDispatcher for AwsDispatcher {
    fn supports(&self, resource: &str) -> Result<(), String> {
        parse_resource(resource).map(|_| ())
    }

    /// The optimized EMR Serverless integration has no callback pattern ("The Wait for a
    /// Callback with Task Token integration pattern is not supported", developer guide, EMR
    /// Serverless); the AWS SDK integrations have one.
    fn supports_callback(&self, resource: &str) -> Result<(), String> {
        match parse_resource(resource)? {
            Target::EmrServerlessJob { .. } => Err(format!(
                "resource {resource:?}: emr-serverless does not support the .waitForTaskToken integration pattern"
            )),
            _ => Ok(()),
        }
    }

    async fn invoke(&self, request: TaskRequest) -> Result<Value, Failure> {
        self.call_on(&request.resource, &request.input, request.clock)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources() {
        let t = parse_resource("arn:aws:states:::aws-sdk:dynamodb:putItem").expect("supported");
        assert!(
            matches!(t, Target::Json(s, a) if s.target_prefix == "DynamoDB_20120810" && a == "PutItem")
        );
        let t = parse_resource("arn:aws:states:::aws-sdk:kinesis:describeStream").expect("ok");
        assert!(matches!(t, Target::Json(s, a) if s.name == "kinesis" && a == "DescribeStream"));
        let t =
            parse_resource("arn:aws:states:::aws-sdk:secretsmanager:getSecretValue").expect("ok");
        assert!(matches!(t, Target::Json(s, _) if s.target_prefix == "secretsmanager"));
        assert_eq!(
            parse_resource("arn:aws:states:::aws-sdk:s3:listObjectsV2"),
            Ok(Target::S3("listObjectsV2"))
        );
        assert!(parse_resource("arn:aws:states:::aws-sdk:dynamodb:PutItem").is_err());
        assert!(parse_resource("arn:aws:states:::aws-sdk:dynamodb:frobnicate").is_err());
        let e = parse_resource("arn:aws:states:::aws-sdk:glue:startJobRun").unwrap_err();
        assert!(
            e.contains("dynamodb, kinesis, secretsmanager, sqs, sfn, s3"),
            "{e}"
        );
        assert!(parse_resource("arn:aws:states:::aws-sdk:s3:createBucket").is_err());
        assert!(parse_resource("arn:aws:states:::lambda:invoke").is_err());
    }

    #[test]
    fn endpoints() {
        let svc = |n: &str| JSON_SERVICES.iter().find(|s| s.name == n).expect("service");
        let env = |name: &str| (name == "AWS_ENDPOINT_URL_DYNAMODB").then(|| "http://ddb:1".into());
        let local = Some("http://local:2");
        let at = |n: &str, env: &dyn Fn(&str) -> Option<String>, configured, region| {
            let s = svc(n);
            endpoint_for(s.env_key, s.signing_name, env, configured, region)
        };
        assert_eq!(at("dynamodb", &env, local, "eu-west-1"), "http://ddb:1");
        assert_eq!(at("kinesis", &env, local, "eu-west-1"), "http://local:2");
        assert_eq!(
            at("secretsmanager", &env, None, "eu-west-1"),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            at("sfn", &|_| None, None, "us-east-2"),
            "https://states.us-east-2.amazonaws.com"
        );
        let emr =
            |name: &str| (name == "AWS_ENDPOINT_URL_EMR_SERVERLESS").then(|| "http://e:3".into());
        assert_eq!(
            endpoint_for(
                emr_serverless::ENV_KEY,
                emr_serverless::SIGNING_NAME,
                emr,
                local,
                "x"
            ),
            "http://e:3"
        );
        assert_eq!(
            endpoint_for(
                emr_serverless::ENV_KEY,
                emr_serverless::SIGNING_NAME,
                |_| None,
                None,
                "eu-west-1"
            ),
            "https://emr-serverless.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn error_names() {
        assert_eq!(
            step_functions_error_name(
                "DynamoDb",
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
            ),
            "DynamoDb.ConditionalCheckFailedException"
        );
        assert_eq!(
            step_functions_error_name("S3", "NoSuchKey"),
            "S3.NoSuchKeyException"
        );
        assert_eq!(
            step_functions_error_name("Kinesis", "ResourceNotFoundException:http://x"),
            "Kinesis.ResourceNotFoundException"
        );
    }
}
