//! Handlers for status, data centers, overrides, explain, events, reload and metrics.

use super::openapi::{ClientNet, DcOverrideWrite, EndpointOverrideWrite, IpAddress};
use super::views::{
    DatacenterView, EventView, ExplainReportSchema, NameView, Peers, StatusView, TrafficView,
};
use super::{AdminAccess, ApiError, ErrorBody, JsonBody, ReadAccess, Stopping};
use crate::control::Control;
use crate::events::Kind;
use crate::model::gslb::{DcId, EndpointKey, Forced};
use crate::select::Health;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

type Ctl = State<Arc<Control>>;
type ApiResult = Result<Response, ApiError>;

/// Version, snapshot generation, zones, data centers down, probes, partition guard, overrides;
/// in cluster mode this node's link to etcd, its quorum rule and the live nodes.
#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, body = StatusView), ReadAccess))]
pub async fn status(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    Ok(Json(StatusView::new(&ctl)).into_response())
}

/// Every data center: state, override, weight, endpoints with probe state, since, last result
/// and error; in cluster mode every node's view of each probe target and the verdict.
#[utoipa::path(get, path = "/datacenters", tag = "datacenters",
    responses((status = 200, body = Vec<DatacenterView>), ReadAccess))]
pub async fn datacenters(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    let peers = Peers::of(&ctl);
    Ok(Json(DatacenterView::all(&ctl.snapshot(), peers.as_ref())).into_response())
}

/// One data center.
#[utoipa::path(get, path = "/datacenters/{dc}", tag = "datacenters", params(Dc),
    responses((status = 200, body = DatacenterView), ReadAccess,
        (status = 404, description = "No such data center", body = ErrorBody)))]
pub async fn datacenter(_: ReadAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    DatacenterView::named(&ctl.snapshot(), &dc, Peers::of(&ctl).as_ref())
        .map(|d| Json(d).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no data center `{dc}`")).field("dc"))
}

/// `{dc}`: a data center's name (for the document; handlers take `Path<String>`).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct Dc {
    /// The data center's name, as configured.
    #[param(example = "eu")]
    dc: String,
}

/// `{dc}/{address}`: an endpoint (for the document; handlers take [`EndpointPath`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EndpointParams {
    /// The data center's name, as configured.
    #[param(example = "eu")]
    dc: String,
    /// The endpoint's address, in any spelling of the IP.
    #[param(value_type = IpAddress, example = "198.51.100.10")]
    address: String,
}

/// An override changed: of `subject` (a data center, or an endpoint as `dc/address`).
#[derive(Serialize, ToSchema)]
pub struct OverrideChange {
    pub subject: String,
    /// The override before: `auto`, `up`, `down` or `drained`.
    pub old: &'static str,
    /// The override now.
    pub new: &'static str,
}

/// A data center's runtime weight changed.
#[derive(Serialize, ToSchema)]
pub struct WeightChange {
    pub subject: String,
    /// The weight now, or null: the configured weights apply.
    pub weight: Option<u32>,
}

/// The answer to an override set on `subject`: from `old` to `new`.
fn changed(subject: String, old: Forced, new: Forced) -> ApiResult {
    let (old, new) = (old.as_str(), new.as_str());
    Ok(Json(OverrideChange { subject, old, new }).into_response())
}

/// Sets a data center's override on behalf of `who` and answers with the change.
async fn set_dc(ctl: &Control, who: &str, dc: &str, state: Forced) -> ApiResult {
    changed(dc.to_string(), ctl.set_dc_override(dc, state, who).await?, state)
}

/// Sets an endpoint's override on behalf of `who` and answers with the change.
async fn set_endpoint(ctl: &Control, who: &str, key: &EndpointKey, state: Forced) -> ApiResult {
    changed(
        key.to_string(),
        ctl.set_endpoint_override(key, state, who).await?,
        state,
    )
}

/// Take a data center out of every answer. Persisted; an event.
#[utoipa::path(post, path = "/datacenters/{dc}/drain", tag = "datacenters", params(Dc),
    responses((status = 200, body = OverrideChange), AdminAccess, DcOverrideWrite))]
pub async fn dc_drain(AdminAccess(who): AdminAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    set_dc(&ctl, &who, &dc, Forced::Drained).await
}

/// Give a data center back to its health checks (its override is `auto` again).
#[utoipa::path(post, path = "/datacenters/{dc}/undrain", tag = "datacenters", params(Dc),
    responses((status = 200, body = OverrideChange), AdminAccess, DcOverrideWrite))]
pub async fn dc_undrain(AdminAccess(who): AdminAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    set_dc(&ctl, &who, &dc, Forced::Auto).await
}

/// `{ "state": "up" | "down" | "auto" }`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "state": "down" }))]
pub struct OverrideBody {
    /// `up` or `down` forces it; `auto` gives it back to its health checks.
    #[schema(schema_with = override_states)]
    state: String,
}

fn override_states() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    serde_json::from_value(json!({ "type": "string", "enum": ["up", "down", "auto"] })).expect("schema")
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

/// Force a data center up or down, or back to auto. Persisted; an event.
#[utoipa::path(put, path = "/datacenters/{dc}/override", tag = "datacenters", params(Dc),
    request_body = OverrideBody,
    responses((status = 200, body = OverrideChange), AdminAccess, JsonBody<OverrideBody>,
        (status = 422, description = "`state` is not up, down or auto", body = ErrorBody),
        DcOverrideWrite))]
pub async fn dc_override(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    Path(dc): Path<String>,
    body: Result<JsonBody<OverrideBody>, ApiError>,
) -> ApiResult {
    set_dc(&ctl, &who, &dc, parse_state(body)?).await
}

/// `{ "weight": 1..=1000000 }`, or `{ "weight": null }` for the configured weights. The key is
/// required: `{}` is a mistake, not a reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "weight": 20 }))]
pub struct WeightBody {
    /// 1 to 1000000, or null for the configured weights.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, required = true, minimum = 1, maximum = 1000000)]
    weight: Option<Option<u32>>,
}

/// `Some(value)` for a key that is present, even as `null` (absent keys take the default, `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Set a runtime weight for a data center in every name, or null for the configured ones.
#[utoipa::path(put, path = "/datacenters/{dc}/weight", tag = "datacenters", params(Dc),
    request_body = WeightBody,
    responses((status = 200, body = WeightChange), AdminAccess, JsonBody<WeightBody>,
        (status = 422, description = "The weight is out of range", body = ErrorBody),
        DcOverrideWrite))]
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
    ctl.set_dc_weight(&dc, weight, &who).await?;
    Ok(Json(WeightChange { subject: dc, weight }).into_response())
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

/// Take one endpoint out of answers. Persisted; an event.
#[utoipa::path(post, path = "/endpoints/{dc}/{address}/drain", tag = "endpoints",
    params(EndpointParams),
    responses((status = 200, body = OverrideChange), AdminAccess,
        (status = 400, description = "The address is not an IP address", body = ErrorBody),
        EndpointOverrideWrite))]
pub async fn ep_drain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, Forced::Drained).await
}

/// Give an endpoint back to its health check.
#[utoipa::path(post, path = "/endpoints/{dc}/{address}/undrain", tag = "endpoints",
    params(EndpointParams),
    responses((status = 200, body = OverrideChange), AdminAccess,
        (status = 400, description = "The address is not an IP address", body = ErrorBody),
        EndpointOverrideWrite))]
pub async fn ep_undrain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, Forced::Auto).await
}

/// Force an endpoint up or down, or back to auto. Persisted; an event.
#[utoipa::path(put, path = "/endpoints/{dc}/{address}/override", tag = "endpoints",
    params(EndpointParams), request_body = OverrideBody,
    responses((status = 200, body = OverrideChange), AdminAccess, JsonBody<OverrideBody>,
        (status = 422, description = "`state` is not up, down or auto", body = ErrorBody),
        EndpointOverrideWrite))]
pub async fn ep_override(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    p: EndpointPath,
    body: Result<JsonBody<OverrideBody>, ApiError>,
) -> ApiResult {
    set_endpoint(&ctl, &who, &p.0, parse_state(body)?).await
}

/// For every load-balanced name: where each geo rule (or the policy) currently sends clients,
/// and why the data centers passed over were passed over.
#[utoipa::path(get, path = "/gslb", tag = "gslb",
    responses((status = 200, body = Vec<NameView>), ReadAccess))]
pub async fn gslb_names(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    Ok(Json(NameView::all(&ctl.snapshot())).into_response())
}

/// Answers per second per data center over the last 15 minutes, one point a second, for the
/// status page's chart (kept in memory from the start of the process).
#[utoipa::path(get, path = "/traffic", tag = "status",
    responses((status = 200, body = TrafficView), ReadAccess))]
pub async fn traffic_history(
    _: ReadAccess,
    State(traffic): State<Arc<super::traffic::Traffic>>,
) -> ApiResult {
    Ok(Json(TrafficView::new(&traffic.readings())).into_response())
}

/// `?name=&type=&client=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// The name asked.
    #[param(required = true, value_type = super::openapi::HostName)]
    name: Option<String>,
    /// The query type (default `A`): a type name like `AAAA`, or `TYPE65`.
    #[serde(rename = "type")]
    #[param(value_type = Option<String>, pattern = "^([A-Za-z][A-Za-z0-9]{0,9}|TYPE[0-9]{1,5})$")]
    qtype: Option<String>,
    /// The client: IP, or IP/prefix as an ECS client subnet.
    #[param(required = true, value_type = ClientNet)]
    client: Option<String>,
}

/// The answer a client gets and every step of the decision.
#[utoipa::path(get, path = "/explain", tag = "gslb", params(ExplainQuery),
    responses((status = 200, body = ExplainReportSchema), ReadAccess,
        (status = 400, description = "A parameter is missing or does not parse", body = ErrorBody)))]
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
    let node = ctl.cluster_status().map(|c| c.node);
    let report = crate::explain::run(
        &req,
        &ctl.snapshot(),
        crate::rng::Entropy::new().draw(),
        node.as_deref(),
    );
    Ok(Json(report).into_response())
}

/// `?follow=&after=&kind=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// `1` or `true` streams transitions as server-sent events; `0` or `false` (the default)
    /// lists the recent ones.
    #[param(value_type = Option<String>, pattern = "^(1|true|0|false)$")]
    follow: Option<String>,
    /// Only events numbered above this one (an event's `seq`): a reader polling for what is
    /// new passes the last `seq` it saw. A number above the last this run gave (from before a
    /// restart with the clock set back) lists every event held. With `follow=1`, the stream
    /// starts with the logged events after it.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Only events of this kind: `health` (probe targets, data centers, the partition guard,
    /// nodes), `overrides` (states and weights set by operators) or `edits` (zones, reloads,
    /// changes from the cluster).
    #[param(value_type = Option<String>, pattern = "^(health|overrides|edits)$")]
    kind: Option<String>,
}

/// Recent transitions, oldest first, each numbered (`seq`) and of a `kind`; `after` lists only
/// newer ones, `kind` one kind. The header `Meridian-Events-First` names the oldest event the
/// log holds; with `after=N`, `Meridian-Events-Missed` how many events after N it no longer
/// holds. With `follow=1`, a stream of server-sent events (`event: transition`, `id:` the event's
/// `seq`, `data:` one event as JSON) until the client or the server stops; with `after` (or a
/// `Last-Event-ID` header, as a reconnecting EventSource sends) it starts with the logged events
/// after that number, then the live ones, none twice. Events a stream cannot send (the reader
/// was too slow, or resumed from events the log no longer holds) are said in an
/// `event: skipped` (`data:` `{"skipped": count, "after": seq, "reason": …}`).
#[utoipa::path(get, path = "/events", tag = "status", params(EventsQuery),
    responses(
        (status = 200, description = "The recent events, or with follow=1 a stream of them",
            headers(
                ("Meridian-Events-First" = u64, description = "The number of the oldest event the log holds (the next event's when it holds none); on the list only"),
                ("Meridian-Events-Missed" = u64, description = "With after=N, on the list: how many events of this run numbered above N the log no longer holds")),
            content((Vec<EventView> = "application/json"), (EventFrame = "text/event-stream"))),
        ReadAccess,
        (status = 400, description = "follow is not 1, true, 0 or false; after (or Last-Event-ID) is not a number; kind is not health, overrides or edits", body = ErrorBody),
        (status = 503, description = "follow=1 while half of admin.max_connections are event streams already",
            body = ErrorBody)))]
pub async fn events(
    _: ReadAccess,
    State(ctl): Ctl,
    State(Stopping(stop)): State<Stopping>,
    headers: axum::http::HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()).field("follow"))?;
    let after = match q.after.as_deref() {
        None => None,
        // Event numbers fit in an int64, as the document types them.
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "after `{text}` is not an event's number (a whole number from 0 to 2^63 - 1)"
                    ))
                    .field("after")
                })?,
        ),
    };
    let kind = match q.kind.as_deref() {
        None => None,
        Some(text) => Some(Kind::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("kind `{text}` is not health, overrides or edits")).field("kind")
        })?),
    };
    let wanted = move |e: &crate::events::Event| kind.is_none_or(|k| e.kind() == k);
    if !follow(q.follow.as_deref())? {
        let first = ctl.events().first();
        let (missed, events) = match after {
            Some(seq) => ctl.events().since(seq),
            None => (0, ctl.events().recent()),
        };
        let list: Vec<EventView> = events.iter().filter(|e| wanted(e)).map(EventView::from).collect();
        let mut resp = Json(list).into_response();
        resp.headers_mut().insert(EVENTS_FIRST, first.into());
        if after.is_some() {
            resp.headers_mut().insert(EVENTS_MISSED, missed.into());
        }
        return Ok(resp);
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
    // A reconnecting EventSource (or `meridian ctl events --follow`) names the last event it got.
    let resume = match headers.get("last-event-id").map(|v| v.to_str().map(str::trim)) {
        None => after,
        Some(Ok(text)) => Some(text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("Last-Event-ID `{text}` is not an event's number"))
                .field("Last-Event-ID")
        })?),
        Some(Err(_)) => {
            return Err(
                ApiError::bad_request("Last-Event-ID is not an event's number").field("Last-Event-ID")
            );
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    // Subscribed here, before the answer: every event from now on reaches the stream.
    let live = ctl.events().subscribe_at();
    tokio::spawn(stream_events(ctl, live, resume, wanted, tx, stop));
    use tokio_stream::StreamExt;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The header of the events list naming the oldest event the log holds (the next one's when it
/// holds none): a reader that saw up to N and finds it above N + 1 missed the events between.
pub const EVENTS_FIRST: &str = "meridian-events-first";

/// The header of the events list asked with `after=N`: how many events of this run numbered
/// above N the log no longer holds (0: none was missed).
pub const EVENTS_MISSED: &str = "meridian-events-missed";

/// One server-sent event of `GET /events?follow=1`, as a reader parses it (the document's
/// schema of the stream; never built).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventFrame {
    /// `transition` (an event), or `skipped` (events the stream could not send).
    #[schema(pattern = "^(transition|skipped)$")]
    event: String,
    /// A transition's `seq` (what a reconnecting reader sends back as `Last-Event-ID`).
    id: Option<String>,
    /// JSON: the event (as in the list), or `{"skipped": count, "after": seq, "reason": …}`.
    data: String,
}

/// Feeds one event stream: the logged events after `resume` (when given), then each new one,
/// every event once and in order, its `seq` as the SSE `id`. Events the stream cannot send any
/// more (dropped from the log while the reader was slow, or before it resumed) are said in an
/// `event: skipped` with their count. Ends when the reader goes or the server stops.
async fn stream_events(
    ctl: Arc<Control>,
    (mut live, mut last): (tokio::sync::broadcast::Receiver<crate::events::Event>, u64),
    resume: Option<u64>,
    wanted: impl Fn(&crate::events::Event) -> bool + Send + 'static,
    tx: tokio::sync::mpsc::Sender<SseEvent>,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    // What the log holds after a number, and how many after it it no longer holds.
    let mut pending = resume.map(|seq| (seq, ctl.events().since(seq)));
    loop {
        if let Some((from, (missing, backlog))) = pending.take() {
            if missing > 0 {
                let notice = SseEvent::default().event("skipped").json_data(json!({
                    "skipped": missing,
                    "after": from,
                    "reason": "the event log no longer holds them (it keeps the last 1000)",
                }));
                if tx.send(notice.expect("a notice serializes")).await.is_err() {
                    return;
                }
            }
            // Every one is newer than what was sent: the live events up to the last of them
            // are passed over below.
            for e in backlog {
                last = last.max(e.seq);
                if wanted(&e) && tx.send(sse_event(&e)).await.is_err() {
                    return;
                }
            }
        }
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            next = live.recv() => next,
        };
        match next {
            Ok(e) if e.seq <= last => {}
            Ok(e) => {
                last = e.seq;
                if wanted(&e) && tx.send(sse_event(&e)).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(_)) => pending = Some((last, ctl.events().since(last))),
            Err(RecvError::Closed) => return,
        }
    }
}

fn sse_event(e: &crate::events::Event) -> SseEvent {
    SseEvent::default()
        .event("transition")
        .id(e.seq.to_string())
        .json_data(EventView::from(e))
        .expect("an event serializes")
}

/// Whether `?follow=` asks for a stream. Anything but the four spellings is refused: a typo
/// (`follow=yes`) would otherwise answer a list where a stream was asked for.
fn follow(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => {
            Err(ApiError::bad_request(format!("follow `{other}` is not 1, true, 0 or false")).field("follow"))
        }
    }
}

/// A reload's answer.
#[derive(Serialize, ToSchema)]
pub struct Reloaded {
    /// Always true: a failed reload answers 422.
    pub reloaded: bool,
    /// The generation now serving.
    pub generation: u64,
}

/// Re-read the configuration and zones from disk; nothing changes unless all of it is valid.
#[utoipa::path(post, path = "/reload", tag = "status",
    responses((status = 200, body = Reloaded), AdminAccess,
        (status = 422, description = "The configuration on disk is invalid: the running one stays", body = ErrorBody)))]
pub async fn reload(_: AdminAccess, State(ctl): Ctl) -> ApiResult {
    match ctl.reload().await {
        Ok(generation) => Ok(Json(Reloaded {
            reloaded: true,
            generation,
        })
        .into_response()),
        // A reload has no body: a problem about no single field is about the configuration.
        Err(problems) => Err(ApiError::invalid(problems).or_field("config")),
    }
}

/// Prometheus metrics, as OpenMetrics 1.0 text (`metrics::CONTENT_TYPE`).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"), ReadAccess))]
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
                checks_up: u8::from(h.endpoint_checks_up(e)),
            });
        }
    }
    let datacenters = snap
        .datacenters
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.to_string(), h.dc_state(DcId(i as u16), d)))
        .collect();
    let guard = ctl.partition_guard();
    let cluster = ctl.cluster_status();
    let nodes = cluster.as_ref().map(|_| ctl.cluster_nodes());
    let body = ctl.metrics().render(StateGauges {
        endpoints,
        targets: target_gauges(&snap, cluster.is_some()),
        datacenters,
        overrides_active: ctl.overrides().len(),
        partition_guard_alarms: guard.alarms,
        partition_guard_engaged: u8::from(guard.engaged),
        probe_targets: ctl.probe_count(),
        snapshot_generation: snap.generation,
        cluster_connected: cluster.as_ref().map(|c| u8::from(c.connected)),
        cluster_nodes: nodes.as_ref().map(|n| n.len()),
        cluster_quorum_rules: nodes.map(|n| {
            let rules: std::collections::BTreeSet<_> = n.values().map(|r| r.quorum.as_str()).collect();
            rules.len()
        }),
    });
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// `meridian_target_up`: each distinct probe target (check and address probed, shared by the
/// endpoints that name both) with this node's own view and, in cluster mode, the verdict
/// answers use; a view still unknown has no series.
fn target_gauges(snap: &crate::state::Snapshot, cluster: bool) -> Vec<crate::metrics::TargetUp> {
    use crate::health::Status;
    use crate::lock::LockExt;
    use crate::metrics::{TargetUp, TargetView};
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in snap.datacenters.iter().flat_map(|d| &d.endpoints) {
        let (Some(check), Some(p)) = (&e.check, snap.health.probe(e)) else {
            continue;
        };
        if !seen.insert((check.name.clone(), e.probe_target())) {
            continue;
        }
        let mut views = vec![(TargetView::Local, p.detail.locked().counter.status)];
        if cluster {
            views.push((TargetView::Cluster, p.status()));
        }
        for (view, status) in views {
            let up = match status {
                Status::Up => 1,
                Status::Down => 0,
                Status::Unknown => continue,
            };
            out.push(TargetUp {
                check: check.name.to_string(),
                address: e.probe_target(),
                view,
                up,
            });
        }
    }
    out
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: 200 once serving DNS, 503 before.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`starting`", body = String, content_type = "text/plain")))]
pub async fn readyz(State(ctl): Ctl) -> Response {
    if ctl.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// The status page.
#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")))]
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
