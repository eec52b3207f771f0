//! The admin API (axum): JSON under `/api/v1`, Prometheus metrics, health endpoints, an OpenAPI
//! document and a status page. `router` is the whole API, testable with `oneshot`.

pub mod auth;
mod body;
mod handlers;
pub mod listener;
pub mod openapi;
mod views;
mod zones;

pub use auth::{AdminAccess, ReadAccess};
pub use body::{BodyError, JsonBody, parse_unique};

use crate::control::Control;
use axum::Json;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What handlers share: the control plane, and the token that stops the server (event streams
/// end on it).
#[derive(Clone)]
pub struct AdminState {
    pub ctl: Arc<Control>,
    pub stop: CancellationToken,
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
        let problems: Vec<_> = self
            .problems
            .iter()
            .map(|p| {
                json!({
                    "file": p.file.display().to_string(),
                    "line": p.line,
                    "col": p.col,
                    "message": p.message,
                    "field": p.field,
                })
            })
            .collect();
        let mut body = json!({ "error": self.message, "field": self.field });
        if !problems.is_empty() {
            body["problems"] = json!(problems);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::control::CommitError> for ApiError {
    fn from(e: crate::control::CommitError) -> Self {
        match e {
            crate::control::CommitError::Invalid(problems) => ApiError::invalid(problems),
            e @ crate::control::CommitError::Write { .. } => ApiError::internal(e.to_string()),
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
    })
}

/// The whole admin API.
pub fn router_with(state: AdminState) -> axum::Router {
    use axum::middleware::from_fn_with_state;
    use handlers::*;
    let api = axum::Router::new()
        .route("/status", get(status))
        .route("/datacenters", get(datacenters))
        .route("/datacenters/{dc}", get(datacenter))
        .route("/datacenters/{dc}/drain", post(dc_drain))
        .route("/datacenters/{dc}/undrain", post(dc_undrain))
        .route("/datacenters/{dc}/override", put(dc_override))
        .route("/datacenters/{dc}/weight", put(dc_weight))
        .route("/endpoints/{dc}/{address}/drain", post(ep_drain))
        .route("/endpoints/{dc}/{address}/undrain", post(ep_undrain))
        .route("/endpoints/{dc}/{address}/override", put(ep_override))
        .route("/gslb", get(gslb_names))
        .route("/zones", get(zones::list))
        .route(
            "/zones/{zone}",
            get(zones::get_zone)
                .put(zones::put_zone)
                .delete(zones::delete_zone),
        )
        // `{section}` is `records` (the static RRsets of a name) or `gslb` (a load-balanced name).
        .route(
            "/zones/{zone}/{section}/{name}",
            get(zones::get_named)
                .put(zones::put_named)
                .delete(zones::delete_named),
        )
        .route("/explain", get(explain))
        .route("/events", get(events))
        .route("/reload", post(reload))
        .layer(axum::middleware::map_response(json_errors));
    axum::Router::new()
        .nest("/api/v1", api)
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(page))
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
    let app = router_with(AdminState {
        ctl: ctl.clone(),
        stop: stop.clone(),
    });
    let limits = move || {
        let admin = ctl.admin_settings();
        listener::Limits {
            max_connections: admin.max_connections.get(),
            header_timeout: admin.header_timeout,
            idle_timeout: admin.idle_timeout,
            shutdown_grace: ctl.shutdown_grace(),
        }
    };
    listener::serve(listener, app, limits, stop).await
}
