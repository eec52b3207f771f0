//! The admin API (axum): JSON under `/api/v1`, Prometheus metrics, health endpoints, an OpenAPI
//! document and a status page. `router` is the whole API, testable with `oneshot`.

pub mod auth;
mod body;
mod handlers;
pub mod listener;
pub mod openapi;
pub mod tls;
pub mod traffic;
mod views;
mod zones;

pub use auth::{AdminAccess, ReadAccess};
pub use body::{BodyError, JsonBody, parse_unique};

use crate::control::Control;
use axum::Json;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What handlers share: the control plane, and the token that stops the server (event streams
/// end on it).
#[derive(Clone)]
pub struct AdminState {
    pub ctl: Arc<Control>,
    pub stop: CancellationToken,
    /// Answers per data center over the last minutes, for the page's chart.
    pub traffic: Arc<traffic::Traffic>,
}

impl FromRef<AdminState> for Arc<traffic::Traffic> {
    fn from_ref(s: &AdminState) -> Self {
        s.traffic.clone()
    }
}

impl FromRef<AdminState> for Arc<Control> {
    fn from_ref(s: &AdminState) -> Self {
        s.ctl.clone()
    }
}

/// Cancelled when the server stops.
#[derive(Clone)]
pub struct Stopping(pub CancellationToken);

impl FromRef<AdminState> for Stopping {
    fn from_ref(s: &AdminState) -> Self {
        Stopping(s.stop.clone())
    }
}

/// Largest request body accepted (a whole zone file as JSON).
pub const MAX_BODY: usize = 1 << 20;

/// An error answer: JSON `{ "error": message, "field": field-at-fault, "problems": [...] }`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    pub problems: Vec<crate::config::Problem>,
}

/// The JSON of an [`ApiError`], for the OpenAPI document (`Error`). `into_response` writes it;
/// a test below reads every kind of answer back through this type, so the two cannot drift.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and, where there is one, what to do.
    pub error: String,
    /// The field at fault: a body key path like `records.www.a`, a path or query parameter, a
    /// header (`If-Match`, `Content-Type`, `Host`), `body` or `config`.
    pub field: Option<String>,
    /// Every validation problem (422), with its place in the files as they would be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
}

/// One validation problem, at a position in a configuration or zone file.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Problem)]
pub struct ProblemBody {
    pub file: String,
    pub line: u64,
    pub col: u64,
    pub message: String,
    /// The field path the problem is about, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            problems: Vec::new(),
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// Sets the field unless one is set, or when it is only the whole `body`.
    pub fn or_field(mut self, field: impl Into<String>) -> Self {
        if self.field.as_deref().is_none_or(|f| f == "body") {
            self.field = Some(field.into());
        }
        self
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// 422 from validation problems; the field is the first problem's field path, or `body`
    /// when the problem concerns no single field (the problems list gives its place).
    pub fn invalid(problems: crate::config::Problems) -> Self {
        let first = problems.0.first();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: first.map_or("invalid".into(), |p| p.message.clone()),
            field: Some(
                first
                    .and_then(|p| p.field.clone())
                    .unwrap_or_else(|| "body".into()),
            ),
            problems: problems.0,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problems = self
            .problems
            .into_iter()
            .map(|p| ProblemBody {
                file: p.file.display().to_string(),
                line: p.line.into(),
                col: p.col.into(),
                message: p.message,
                field: p.field,
            })
            .collect();
        let body = ErrorBody {
            error: self.message,
            field: self.field,
            problems,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::control::CommitError> for ApiError {
    fn from(e: crate::control::CommitError) -> Self {
        match e {
            crate::control::CommitError::Invalid(problems) => ApiError::invalid(problems),
            e @ crate::control::CommitError::Write { .. } => ApiError::internal(e.to_string()),
            crate::control::CommitError::Cluster(e) => e.into(),
        }
    }
}

impl From<crate::control::ClusterError> for ApiError {
    fn from(e: crate::control::ClusterError) -> Self {
        use crate::control::ClusterError::*;
        let status = match e {
            Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Conflict { .. } => StatusCode::PRECONDITION_FAILED,
            Etcd(_) => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::control::SetError> for ApiError {
    fn from(e: crate::control::SetError) -> Self {
        match e {
            crate::control::SetError::Override(e) => e.into(),
            crate::control::SetError::Cluster(e) => e.into(),
        }
    }
}

impl From<crate::overrides::OverrideError> for ApiError {
    fn from(e: crate::overrides::OverrideError) -> Self {
        use crate::overrides::OverrideError::*;
        match e {
            NoDatacenter(_) => ApiError::not_found(e.to_string()).field("dc"),
            NoEndpoint(..) => ApiError::not_found(e.to_string()).field("address"),
            Persist { .. } | Load { .. } => ApiError::internal(e.to_string()),
        }
    }
}

/// The whole admin API, for tests: event streams end only with their client.
pub fn router(ctl: Arc<Control>) -> axum::Router {
    router_with(AdminState {
        ctl,
        stop: CancellationToken::new(),
        traffic: Arc::default(),
    })
}

/// Every route, with its OpenAPI operation: `routes!` registers both from one handler, so a
/// route cannot go undocumented (the document is [`openapi::build`]).
fn routes() -> OpenApiRouter<AdminState> {
    use handlers::*;
    let api = OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(datacenters))
        .routes(routes!(datacenter))
        .routes(routes!(dc_drain))
        .routes(routes!(dc_undrain))
        .routes(routes!(dc_override))
        .routes(routes!(dc_weight))
        .routes(routes!(ep_drain))
        .routes(routes!(ep_undrain))
        .routes(routes!(ep_override))
        .routes(routes!(gslb_names))
        .routes(routes!(traffic_history))
        .routes(routes!(zones::list))
        .routes(routes!(zones::get_zone, zones::put_zone, zones::delete_zone))
        .routes(routes!(
            zones::get_records,
            zones::put_records,
            zones::delete_records
        ))
        .routes(routes!(zones::get_gslb, zones::put_gslb, zones::delete_gslb))
        .routes(routes!(explain))
        .routes(routes!(events))
        .routes(routes!(reload))
        .layer(axum::middleware::map_response(json_errors));
    OpenApiRouter::new()
        .nest("/api/v1", api)
        .routes(routes!(openapi::document))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(page))
}

/// The whole admin API.
pub fn router_with(state: AdminState) -> axum::Router {
    use axum::middleware::from_fn_with_state;
    let (router, _) = routes().split_for_parts();
    router
        .fallback(|| async { ApiError::not_found("no such route; see /api/openapi.json") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(from_fn_with_state(state.ctl.clone(), auth::check_host))
        .with_state(state)
}

/// Errors that axum answers itself (a path that does not decode, a method not allowed) come
/// as text or empty: give them the API's JSON shape.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    ApiError::new(status, message).into_response()
}

/// Serves the API on `listener` until `stop`, within the running configuration's
/// `admin.max_connections`, `header_timeout` and `idle_timeout` (see [`listener`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctl: Arc<Control>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let traffic = Arc::new(traffic::Traffic::default());
    tokio::spawn(traffic.clone().sample(ctl.clone(), stop.clone()));
    let app = router_with(AdminState {
        ctl: ctl.clone(),
        stop: stop.clone(),
        traffic,
    });
    let certs = tls::Certs::default();
    let limits = move || {
        let admin = ctl.admin_settings();
        listener::Limits {
            max_connections: admin.max_connections.get(),
            header_timeout: admin.header_timeout,
            idle_timeout: admin.idle_timeout,
            shutdown_grace: ctl.shutdown_grace(),
            scheme: match &admin.tls {
                None => listener::Scheme::Http,
                Some(t) => match certs.config(t, ctl.snapshot().generation, ctl.events()) {
                    Some(config) => listener::Scheme::Https(config),
                    None => listener::Scheme::Refuse,
                },
            },
        }
    };
    listener::serve(listener, app, limits, stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document says what `/metrics` really sends (Schemathesis checks answers against it).
    #[test]
    fn the_metrics_content_type_is_documented() {
        let doc = openapi::build();
        let content = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(content.get(crate::metrics::CONTENT_TYPE).is_some(), "{content}");
    }

    /// Every kind of error answer reads back as [`ErrorBody`] (which refuses unknown keys): the
    /// document's `Error` schema is the shape `into_response` writes.
    #[tokio::test]
    async fn error_answers_read_as_their_schema() {
        let problem = crate::config::Problem {
            file: "zones/example.test.yaml".into(),
            line: 3,
            col: 5,
            message: "ttl: not a duration".into(),
            field: Some("ttl".into()),
        };
        for e in [
            ApiError::not_found("no such thing"),
            ApiError::bad_request("bad").field("state"),
            ApiError::invalid(crate::config::Problems(vec![problem])),
        ] {
            let bytes = axum::body::to_bytes(e.into_response().into_body(), 1 << 20)
                .await
                .unwrap();
            let body: ErrorBody = serde_json::from_slice(&bytes)
                .unwrap_or_else(|err| panic!("{}: {err}", String::from_utf8_lossy(&bytes)));
            assert!(!body.error.is_empty());
        }
    }
}
