//! The admin API (axum): JSON under `/api/v1`, Prometheus metrics, health endpoints, an OpenAPI
//! document and a status page. `router` is the whole API, testable with `oneshot`.

pub mod auth;
mod handlers;
pub mod openapi;
mod zones;

use crate::control::Control;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;

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
    /// 422 from validation problems; the field is the first problem's field path.
    pub fn invalid(problems: crate::config::Problems) -> Self {
        let field = problems.0.first().and_then(|p| field_of(&p.message));
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: problems.0.first().map_or("invalid".into(), |p| p.message.clone()),
            field,
            problems: problems.0,
        }
    }
}

/// The `a.b.c` field path a validation message starts with, if any.
fn field_of(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    (!head.contains(' ') && !head.is_empty()).then(|| head.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problems: Vec<_> = self
            .problems
            .iter()
            .map(|p| json!({ "file": p.file.display().to_string(), "line": p.line, "col": p.col, "message": p.message }))
            .collect();
        let mut body = json!({ "error": self.message, "field": self.field });
        if !problems.is_empty() {
            body["problems"] = json!(problems);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::overrides::OverrideError> for ApiError {
    fn from(e: crate::overrides::OverrideError) -> Self {
        use crate::overrides::OverrideError::*;
        match e {
            NoDatacenter(_) => ApiError::not_found(e.to_string()).field("dc"),
            NoEndpoint(..) => ApiError::not_found(e.to_string()).field("address"),
            Persist { .. } => ApiError::internal(e.to_string()),
        }
    }
}

/// The whole admin API.
pub fn router(ctl: Arc<Control>) -> axum::Router {
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
        .route("/reload", post(reload));
    axum::Router::new()
        .nest("/api/v1", api)
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(page))
        .fallback(|| async { ApiError::not_found("no such route; see /api/openapi.json") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctl)
}

/// Serves the router on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctl: Arc<Control>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctl))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}
