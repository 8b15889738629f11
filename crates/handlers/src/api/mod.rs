//! The control-plane API behind API Gateway (an HTTP API with a JWT authorizer): routes in
//! `docs/openapi.yaml`. The Lambda receives API Gateway's v2 event; [`handle_event`] turns it
//! into an [`ApiRequest`], routes it and answers a v2 response. Every error is an entry of the
//! error catalogue (`{"code", "message"}` with its HTTP status); internal detail goes to the log.

mod auth;
mod page;
pub mod records;

use std::collections::HashMap;

use base64::Engine as _;
use ferry_core::state::RunRecord;
use ferry_core::{Error, ErrorCode, Result, RunId, RunStatus, Spec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use auth::{AuthSettings, Caller, LocalTokens};
pub use page::PageTokens;

use crate::poll_status::{finish, Ending};
use crate::Context;
use records::{Collection, RecordFilter};

/// What the API needs besides the ports: who may do what, the page token key, where
/// connection secrets go and which machines transfers start.
#[derive(Clone)]
pub struct ApiSettings {
    pub auth: AuthSettings,
    pub pages: PageTokens,
    /// Only when `FERRY_API_LOCAL_JWT_SECRET` is set (local serving).
    pub local_tokens: Option<LocalTokens>,
    pub connection_secret_prefix: String,
    pub export_state_machine: Option<String>,
    pub import_state_machine: Option<String>,
}

impl ApiSettings {
    pub fn new(config: &crate::context::ApiConfig) -> ApiSettings {
        ApiSettings {
            auth: AuthSettings {
                groups_claim: config.groups_claim.clone(),
                admin_group: config.admin_group.clone(),
            },
            pages: PageTokens::new(config.token_key.as_bytes()),
            local_tokens: config.local_jwt_secret.as_deref().map(LocalTokens::new),
            connection_secret_prefix: config.connection_secret_prefix.clone(),
            export_state_machine: config.export_state_machine.clone(),
            import_state_machine: config.import_state_machine.clone(),
        }
    }
}

/// The part of API Gateway's v2 (HTTP API, payload format 2.0) event the API reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    #[serde(default)]
    pub raw_path: String,
    /// Absent or `null` (as `cargo lambda watch` sends it) when there is no query.
    #[serde(default)]
    pub raw_query_string: Option<String>,
    /// Header names in lower case (API Gateway's and `cargo lambda watch`'s form).
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default)]
    pub request_context: RequestContext,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    #[serde(default)]
    pub http: HttpContext,
    #[serde(default)]
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpContext {
    #[serde(default)]
    pub method: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Authorizer {
    #[serde(default)]
    pub jwt: Option<Jwt>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwt {
    #[serde(default)]
    pub claims: HashMap<String, Value>,
}

/// A request as the router sees it.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Option<String>,
    /// The JWT authorizer's claims; `None` when the request carried no valid token.
    pub claims: Option<HashMap<String, Value>>,
    /// The `Authorization` header, read only in local mode when there are no claims.
    pub authorization: Option<String>,
}

impl ApiRequest {
    pub fn from_event(event: HttpApiEvent) -> Result<ApiRequest> {
        let body = match (event.body, event.is_base64_encoded) {
            (Some(b), true) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        Error::new(ErrorCode::InvalidInput, "body: not base64 of UTF-8 text")
                    })?,
            ),
            (body, _) => body,
        };
        let query = form_urlencoded::parse(event.raw_query_string.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(ApiRequest {
            method: event.request_context.http.method.to_uppercase(),
            path: event.raw_path,
            query,
            body,
            claims: event
                .request_context
                .authorizer
                .and_then(|a| a.jwt)
                .map(|jwt| jwt.claims),
            authorization: event.headers.get("authorization").cloned(),
        })
    }
}

/// An answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

impl ApiResponse {
    fn ok(status: u16, body: impl Serialize) -> ApiResponse {
        ApiResponse {
            status,
            body: serde_json::to_value(body).unwrap_or(Value::Null),
        }
    }

    fn error(err: &Error) -> ApiResponse {
        ApiResponse {
            status: err.code().http_status(),
            body: err.to_api_body(),
        }
    }

    /// API Gateway's v2 response.
    pub fn to_event(&self) -> Value {
        json!({
            "statusCode": self.status,
            "headers": {"content-type": "application/json"},
            "isBase64Encoded": false,
            "body": self.body.to_string(),
            // API Gateway reads it as optional; cargo lambda watch requires it.
            "cookies": [],
        })
    }
}

/// The Lambda's entry: a v2 event in, a v2 response out. Never fails: errors are answers.
pub async fn handle_event(cx: &Context, settings: &ApiSettings, event: HttpApiEvent) -> Value {
    let response = match ApiRequest::from_event(event) {
        Ok(request) => handle(cx, settings, request).await,
        Err(err) => ApiResponse::error(&err),
    };
    response.to_event()
}

/// Routes one request.
pub async fn handle(cx: &Context, settings: &ApiSettings, request: ApiRequest) -> ApiResponse {
    let method = request.method.clone();
    let path = request.path.clone();
    match route(cx, settings, request).await {
        Ok(response) => response,
        Err(err) => {
            // Internal detail to the log only; the caller gets the catalogue's message.
            if err.code().http_status() >= 500 {
                tracing::error!(%method, %path, error = %err.detail(), "request failed");
            } else {
                tracing::info!(%method, %path, code = err.code().as_str(), "request refused");
            }
            ApiResponse::error(&err)
        }
    }
}

fn not_found(what: &str) -> Error {
    Error::new(ErrorCode::NotFound, format!("no {what}"))
}

fn json_body<T: serde::de::DeserializeOwned>(request: &ApiRequest) -> Result<T> {
    let text = request.body.as_deref().unwrap_or("{}");
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        Error::new(
            ErrorCode::InvalidInput,
            format!("{field}: {}", err.into_inner()),
        )
    })
}

/// The caller: from the authorizer's claims, or else (local mode only) from a bearer token
/// the function verifies itself.
fn caller(settings: &ApiSettings, request: &ApiRequest) -> Result<Caller> {
    let from_authorizer = request.claims.as_ref().filter(|c| !c.is_empty());
    match (from_authorizer, &settings.local_tokens) {
        (None, Some(local)) => {
            let claims = local.claims(request.authorization.as_deref())?;
            settings.auth.caller(Some(&claims))
        }
        (claims, _) => settings.auth.caller(claims),
    }
}

fn limit_param(request: &ApiRequest) -> Result<u32> {
    match request.query.get("limit") {
        None => Ok(20),
        Some(text) => match text.parse::<u32>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(Error::new(
                ErrorCode::InvalidInput,
                "limit: must be a number from 1 to 100",
            )),
        },
    }
}

/// The listing a page token belongs to: the route, its filter, and whose view it is, so a
/// token is only good for the listing and the caller's groups it came from.
fn page_scope(caller: &Caller, listing: &str) -> String {
    if caller.admin {
        format!("{listing}:*")
    } else {
        let mut groups = caller.groups.clone();
        groups.sort();
        format!("{listing}:{}", groups.join(","))
    }
}

fn after_token(
    settings: &ApiSettings,
    request: &ApiRequest,
    scope: &str,
) -> Result<Option<ferry_core::state::PageKey>> {
    request
        .query
        .get("next_token")
        .map(|token| settings.pages.read(token, scope))
        .transpose()
}

fn group_filter(caller: &Caller) -> Option<Vec<String>> {
    (!caller.admin).then(|| caller.groups.clone())
}

async fn route(cx: &Context, settings: &ApiSettings, request: ApiRequest) -> Result<ApiResponse> {
    let caller = caller(settings, &request)?;
    let segments: Vec<&str> = request
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["connections", "test"]) => {
            let body = json_body(&request)?;
            let answer = crate::test_connection::handle(cx, body).await?;
            Ok(ApiResponse::ok(200, answer))
        }
        ("POST", ["connections"]) => {
            let record =
                crate::connections::create(cx, settings, &caller, json_body(&request)?).await?;
            Ok(ApiResponse::ok(201, record))
        }
        ("GET", ["connections"]) => {
            let limit = limit_param(&request)?;
            let scope = page_scope(&caller, "connections");
            let after = after_token(settings, &request, &scope)?;
            let filter = RecordFilter {
                groups: group_filter(&caller),
                statuses: None,
            };
            let page = cx
                .records
                .page(Collection::Connections, &filter, limit, after)
                .await?;
            Ok(ApiResponse::ok(
                200,
                json!({
                    "connections": page.items,
                    "next_token": page.next.map(|key| settings.pages.issue(&key, &scope)),
                }),
            ))
        }
        ("DELETE", ["connections", id]) => {
            let record = crate::connections::delete(cx, &caller, id).await?;
            Ok(ApiResponse::ok(200, json!({"deleted": record.id})))
        }
        ("POST", ["exports"]) => {
            let record =
                crate::transfers::start_export(cx, settings, &caller, json_body(&request)?).await?;
            Ok(ApiResponse::ok(202, record))
        }
        ("POST", ["imports"]) => {
            let record =
                crate::transfers::start_import(cx, settings, &caller, json_body(&request)?).await?;
            Ok(ApiResponse::ok(202, record))
        }
        ("GET", ["transfers"]) => {
            let limit = limit_param(&request)?;
            let status = crate::transfers::status_filter(request.query.get("status"))?;
            let scope = page_scope(
                &caller,
                &format!("transfers:{}", status.map(|s| s.as_str()).unwrap_or("*")),
            );
            let after = after_token(settings, &request, &scope)?;
            // A stored PROCESSING record may have ended since: read those too, follow their
            // executions, and keep what matches.
            let filter = RecordFilter {
                groups: group_filter(&caller),
                statuses: status.map(|s| {
                    let mut statuses = vec![s.as_str().to_string()];
                    if s != RunStatus::Processing {
                        statuses.push(RunStatus::Processing.as_str().to_string());
                    }
                    statuses
                }),
            };
            let page = cx
                .records
                .page(Collection::Transfers, &filter, limit, after)
                .await?;
            let transfers = crate::transfers::followed(cx, page.items, status).await?;
            Ok(ApiResponse::ok(
                200,
                json!({
                    "transfers": transfers,
                    "next_token": page.next.map(|key| settings.pages.issue(&key, &scope)),
                }),
            ))
        }
        ("DELETE", ["transfers", id]) => {
            let record = crate::transfers::delete(cx, &caller, id).await?;
            Ok(ApiResponse::ok(200, json!({"deleted": record.id})))
        }
        ("POST", ["migrations"]) => put_migration(cx, &caller, &request).await,
        ("GET", ["migrations", name]) => {
            let state = visible_migration(cx, &caller, name).await?;
            let last = match state.current_run {
                Some(run) => cx.store.run(name, run).await?.map(|r| run_view(&r)),
                None => None,
            };
            Ok(ApiResponse::ok(
                200,
                json!({
                    "name": state.name,
                    "group": state.group,
                    "status": state.status,
                    "updated_at": state.updated_at,
                    "run": last,
                }),
            ))
        }
        ("POST", ["migrations", name, "runs"]) => {
            visible_migration(cx, &caller, name).await?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct StartBody {
                #[serde(default)]
                domain: Option<String>,
                #[serde(default)]
                dry_run: bool,
                #[serde(default)]
                parallelism: Option<u32>,
            }
            let body: StartBody = json_body(&request)?;
            let started = crate::start::handle(
                cx,
                crate::start::Request {
                    migration: name.to_string(),
                    domain: body.domain,
                    dry_run: body.dry_run,
                    parallelism: body.parallelism,
                },
            )
            .await?;
            Ok(ApiResponse::ok(202, started))
        }
        ("GET", ["migrations", name, "runs"]) => {
            visible_migration(cx, &caller, name).await?;
            let limit = limit_param(&request)?;
            let after = after_token(settings, &request, &format!("runs:{name}"))?;
            let page = cx.store.runs(name, limit, after).await?;
            let next = page
                .next
                .map(|key| settings.pages.issue(&key, &format!("runs:{name}")));
            Ok(ApiResponse::ok(
                200,
                json!({
                    "runs": page.items.iter().map(run_view).collect::<Vec<_>>(),
                    "next_token": next,
                }),
            ))
        }
        ("GET", ["migrations", name, "runs", run]) => {
            visible_migration(cx, &caller, name).await?;
            let record = find_run(cx, name, run).await?;
            let mut view = run_view(&record);
            if let Ok(report) = crate::compare::run_report(cx, &record.run_id.to_string()).await {
                if !report.tables.is_empty() {
                    view["verification"] = json!({
                        "verdict": report.verdict,
                        "summaries": report.summaries(),
                        "report": format!("s3://{}/{}", cx.bucket, ferry_pipeline::verify::report_key(&record.run_id.to_string())),
                    });
                }
            }
            Ok(ApiResponse::ok(200, view))
        }
        ("DELETE", ["migrations", name, "runs", run]) => {
            visible_migration(cx, &caller, name).await?;
            let record = find_run(cx, name, run).await?;
            cx.store.delete_run(name, record.run_id).await?;
            Ok(ApiResponse::ok(200, json!({"deleted": record.run_id})))
        }
        ("POST", ["migrations", name, "runs", run, "cancel"]) => {
            visible_migration(cx, &caller, name).await?;
            let record = find_run(cx, name, run).await?;
            if record.status != RunStatus::Processing {
                return Err(Error::new(
                    ErrorCode::InvalidTransition,
                    format!("run {} is {}, not PROCESSING", record.run_id, record.status),
                ));
            }
            let who = caller.subject.clone().unwrap_or_else(|| "a caller".into());
            if let Some(arn) = &record.execution_arn {
                cx.executions
                    .stop(arn, &format!("cancelled by {who} through the API"))
                    .await?;
            }
            let ended = finish(
                cx,
                name,
                record.run_id,
                Ending::Cancelled(ferry_core::state::RunError {
                    state: "Cancel".into(),
                    error: "Ferry.Cancelled".into(),
                    cause: format!("cancelled by {who}"),
                }),
            )
            .await?;
            Ok(ApiResponse::ok(200, run_view(&ended)))
        }
        _ => Err(Error::new(
            ErrorCode::NotFound,
            format!("no route {} {}", request.method, request.path),
        )),
    }
}

/// The migration, if it exists and the caller may see it; 404 otherwise (never 403, so a
/// caller learns nothing about other groups' migrations).
async fn visible_migration(
    cx: &Context,
    caller: &Caller,
    name: &str,
) -> Result<ferry_core::state::MigrationState> {
    match cx.store.migration(name).await? {
        Some(state) if caller.may_see(&state.group) => Ok(state),
        _ => Err(not_found(&format!("migration named {name}"))),
    }
}

async fn find_run(cx: &Context, name: &str, run: &str) -> Result<RunRecord> {
    let run_id: RunId = run.parse()?;
    cx.store
        .run(name, run_id)
        .await?
        .ok_or_else(|| not_found(&format!("run {run_id} of {name}")))
}

async fn put_migration(cx: &Context, caller: &Caller, request: &ApiRequest) -> Result<ApiResponse> {
    let text = request.body.as_deref().unwrap_or_default();
    let spec = if text.trim_start().starts_with('{') {
        // JSON is read as the same document as the TOML file.
        let value: toml::Value = serde_json::from_str(text).map_err(|err| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("body: not a JSON spec: {err}"),
            )
        })?;
        let toml_text = toml::to_string(&value).map_err(|err| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("body: cannot be a spec: {err}"),
            )
        })?;
        Spec::from_toml_str(&toml_text)?
    } else {
        Spec::from_toml_str(text)?
    };
    if !caller.may_see(&spec.group) {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!("group: you are not a member of {:?}", spec.group),
        ));
    }
    if let Some(existing) = cx.store.migration(&spec.name).await? {
        if !caller.may_see(&existing.group) {
            return Err(not_found(&format!("migration named {}", spec.name)));
        }
    }
    let state = cx.store.put_migration(&spec).await?;
    Ok(ApiResponse::ok(
        200,
        json!({"name": state.name, "group": state.group, "status": state.status, "updated_at": state.updated_at}),
    ))
}

/// A run as the API shows it: no spec snapshot, a throughput figure.
fn run_view(run: &RunRecord) -> Value {
    let seconds = run
        .ended_at
        .map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0);
    json!({
        "run_id": run.run_id,
        "status": run.status,
        "domain": run.domain,
        "dry_run": run.dry_run,
        "parallelism": run.parallelism,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "execution_arn": run.execution_arn,
        "log_url": run.log_url,
        "metrics": run.metrics,
        "rows_per_second": seconds.filter(|s| *s > 0.0).map(|s| (run.metrics.rows as f64 / s).round()),
        "error": run.error,
    })
}
