//! Handlers for status, data centers, overrides, explain, events, reload and metrics.

use super::views::{DatacenterView, NameView};
use super::{AdminAccess, ApiError, JsonBody, ReadAccess, Stopping};
use crate::control::Control;
use crate::events::rfc3339;
use crate::model::gslb::{DcId, EndpointKey, Forced};
use crate::select::Health;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Ctl = State<Arc<Control>>;
type ApiResult = Result<Response, ApiError>;

pub async fn status(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    let snap = ctl.snapshot();
    let dcs = DatacenterView::all(&snap);
    let down: Vec<&str> = dcs
        .iter()
        .filter(|d| d.status == "down")
        .map(|d| d.name.as_str())
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "generation": snap.generation,
        "ready": ctl.is_ready(),
        "zones": snap.zones.values().map(|z| z.origin.to_string()).collect::<Vec<_>>(),
        "datacenters": dcs.len(),
        "datacenters_down": down,
        "probes": ctl.probe_count(),
        "partition_guard": if ctl.partition_guard().engaged { "engaged" } else { "clear" },
        "overrides": ctl.overrides(),
        "geoip": snap.geo.as_ref().map(|g| json!({ "path": g.path.display().to_string(), "type": g.database_type, "locations": g.len() })),
    }))
    .into_response())
}

pub async fn datacenters(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    Ok(Json(DatacenterView::all(&ctl.snapshot())).into_response())
}

pub async fn datacenter(_: ReadAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    DatacenterView::all(&ctl.snapshot())
        .into_iter()
        .find(|d| d.name == dc)
        .map(|d| Json(d).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no data center `{dc}`")).field("dc"))
}

/// Sets a data center's override on behalf of `who` and answers with the change.
fn set_dc(ctl: &Control, who: &str, dc: &str, state: Forced) -> ApiResult {
    let old = ctl.set_dc_override(dc, state, who)?;
    Ok(Json(json!({ "subject": dc, "old": old.as_str(), "new": state.as_str() })).into_response())
}

/// Sets an endpoint's override on behalf of `who` and answers with the change.
fn set_endpoint(ctl: &Control, who: &str, key: &EndpointKey, state: Forced) -> ApiResult {
    let old = ctl.set_endpoint_override(key, state, who)?;
    Ok(
        Json(json!({ "subject": key.to_string(), "old": old.as_str(), "new": state.as_str() }))
            .into_response(),
    )
}

pub async fn dc_drain(AdminAccess(who): AdminAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    set_dc(&ctl, &who, &dc, Forced::Drained)
}

pub async fn dc_undrain(AdminAccess(who): AdminAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    set_dc(&ctl, &who, &dc, Forced::Auto)
}

/// `{ "state": "up" | "down" | "auto" }`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    state: String,
}

fn parse_state(body: Result<JsonBody<OverrideBody>, ApiError>) -> Result<Forced, ApiError> {
    let JsonBody(b) = body.map_err(|e| e.or_field("state"))?;
    match b.state.as_str() {
        "up" => Ok(Forced::Up),
        "down" => Ok(Forced::Down),
        "auto" => Ok(Forced::Auto),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("state `{other}` is not up, down or auto"),
        )
        .field("state")),
    }
}

pub async fn dc_override(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    Path(dc): Path<String>,
    body: Result<JsonBody<OverrideBody>, ApiError>,
) -> ApiResult {
    set_dc(&ctl, &who, &dc, parse_state(body)?)
}

/// `{ "weight": 1..=1000000 }`, or `{ "weight": null }` for the configured weights. The key is
/// required: `{}` is a mistake, not a reset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightBody {
    #[serde(default, deserialize_with = "present")]
    weight: Option<Option<u32>>,
}

/// `Some(value)` for a key that is present, even as `null` (absent keys take the default, `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

pub async fn dc_weight(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    Path(dc): Path<String>,
    body: Result<JsonBody<WeightBody>, ApiError>,
) -> ApiResult {
    let JsonBody(b) = body.map_err(|e| e.or_field("weight"))?;
    let Some(weight) = b.weight else {
        return Err(ApiError::bad_request(
            "the body needs `weight`: a number from 1 to 1000000, or null for the configured weights",
        )
        .field("weight"));
    };
    if weight.is_some_and(|w| w == 0 || w > 1_000_000) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weight must be between 1 and 1000000, or null",
        )
        .field("weight"));
    }
    ctl.set_dc_weight(&dc, weight, &who)?;
    Ok(Json(json!({ "subject": dc, "weight": weight })).into_response())
}

/// `/endpoints/{dc}/{address}`, the address parsed: any spelling of an IP names one endpoint.
pub struct EndpointPath(EndpointKey);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for EndpointPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let Path((dc, address)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let addr = address.parse().map_err(|_| {
            ApiError::bad_request(format!("`{address}` is not an IPv4 or IPv6 address")).field("address")
        })?;
        Ok(EndpointPath(EndpointKey {
            dc: dc.into(),
            address: addr,
        }))
    }
}

pub async fn ep_drain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, Forced::Drained)
}

pub async fn ep_undrain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, Forced::Auto)
}

pub async fn ep_override(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    p: EndpointPath,
    body: Result<JsonBody<OverrideBody>, ApiError>,
) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, parse_state(body)?)
}

/// For every load-balanced name: where each geo rule (or the policy) currently sends clients,
/// and why the data centers passed over were passed over.
pub async fn gslb_names(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    Ok(Json(NameView::all(&ctl.snapshot())).into_response())
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    name: Option<String>,
    #[serde(rename = "type")]
    qtype: Option<String>,
    client: Option<String>,
}

pub async fn explain(
    _: ReadAccess,
    State(ctl): Ctl,
    q: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()).field("query"))?;
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("the query parameter `name` is required").field("name"))?;
    let client = q.client.ok_or_else(|| {
        ApiError::bad_request("the query parameter `client` is required (IP or IP/prefix)").field("client")
    })?;
    let req = crate::explain::Request::parse(&name, q.qtype.as_deref().unwrap_or("A"), &client)
        .map_err(|e| ApiError::bad_request(e.to_string()).field(e.field()))?;
    let report = crate::explain::run(&req, &ctl.snapshot(), crate::rng::Entropy::new().draw());
    Ok(Json(report).into_response())
}

fn event_json(e: &crate::events::Event) -> Value {
    json!({ "time": rfc3339(e.time), "subject": e.subject, "old": e.old, "new": e.new, "reason": e.reason })
}

#[derive(Deserialize)]
pub struct EventsQuery {
    follow: Option<String>,
}

pub async fn events(
    _: ReadAccess,
    State(ctl): Ctl,
    State(Stopping(stop)): State<Stopping>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()).field("follow"))?;
    if !matches!(q.follow.as_deref(), Some("1" | "true")) {
        let list: Vec<Value> = ctl.events().recent().iter().map(event_json).collect();
        return Ok(Json(list).into_response());
    }
    // A stream holds its connection for as long as it runs: half the connections at most, so
    // followers can never lock everyone else out.
    let cap = (ctl.admin_settings().max_connections.get() / 2).max(1);
    if ctl.events().followers() >= cap {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{cap} event streams are open, half of admin.max_connections: close one, or raise \
                 admin.max_connections"
            ),
        )
        .field("follow"));
    }
    use tokio_stream::StreamExt;
    let rx = ctl.events().subscribe();
    // The stream ends when the server stops, so a follower never holds up shutdown.
    let stream = UntilStopped {
        inner: tokio_stream::wrappers::BroadcastStream::new(rx),
        stopped: Box::pin(stop.cancelled_owned()),
    }
    .filter_map(|e| {
        e.ok().map(|e| {
            Ok::<_, std::convert::Infallible>(
                SseEvent::default()
                    .event("transition")
                    .data(event_json(&e).to_string()),
            )
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A stream that ends when the server stops.
struct UntilStopped<S> {
    inner: S,
    stopped: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl<S: tokio_stream::Stream + Unpin> tokio_stream::Stream for UntilStopped<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

pub async fn reload(_: AdminAccess, State(ctl): Ctl) -> ApiResult {
    match ctl.reload().await {
        Ok(generation) => Ok(Json(json!({ "reloaded": true, "generation": generation })).into_response()),
        // A reload has no body: a problem about no single field is about the configuration.
        Err(problems) => Err(ApiError::invalid(problems).or_field("config")),
    }
}

pub async fn metrics(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    use crate::metrics::{CONTENT_TYPE, EndpointUp, StateGauges};
    let snap = ctl.snapshot();
    let h = &*snap.health;
    let mut endpoints = Vec::new();
    for (i, d) in snap.datacenters.iter().enumerate() {
        for e in &d.endpoints {
            endpoints.push(EndpointUp {
                datacenter: d.name.to_string(),
                address: e.address,
                up: u8::from(h.endpoint_up(DcId(i as u16), e)),
            });
        }
    }
    let datacenters = snap
        .datacenters
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.to_string(), u8::from(h.dc_state(DcId(i as u16), d).up)))
        .collect();
    let guard = ctl.partition_guard();
    let body = ctl.metrics().render(StateGauges {
        endpoints,
        datacenters,
        overrides_active: ctl.overrides().len(),
        partition_guard_alarms: guard.alarms,
        partition_guard_engaged: u8::from(guard.engaged),
        probe_targets: ctl.probe_count(),
        snapshot_generation: snap.generation,
    });
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub async fn readyz(State(ctl): Ctl) -> Response {
    if ctl.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
