//! Handlers for status, data centers, overrides, explain, events, reload and metrics.

use super::{AdminAccess, ApiError, JsonBody, ReadAccess, Stopping};
use crate::control::Control;
use crate::events::rfc3339;
use crate::lock::LockExt;
use crate::model::gslb::{DcId, GeoMatch, Policy};
use crate::overrides::Forced;
use crate::select::Health;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type Ctl = State<Arc<Control>>;
type ApiResult = Result<Response, ApiError>;

pub async fn status(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    let snap = ctl.store.load();
    let dcs = datacenter_values(&ctl);
    let down: Vec<&str> = dcs
        .iter()
        .filter(|d| d["status"] == "down")
        .filter_map(|d| d["name"].as_str())
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "generation": snap.generation,
        "ready": ctl.ready.load(Ordering::Relaxed),
        "zones": snap.zones.values().map(|z| z.origin.to_string()).collect::<Vec<_>>(),
        "datacenters": dcs.len(),
        "datacenters_down": down,
        "probes": ctl.scheduler.probe_count(),
        "partition_guard": if ctl.scheduler.guard.is_engaged() { "engaged" } else { "clear" },
        "overrides": ctl.overrides.saved(),
        "geoip": snap.geo.as_ref().map(|g| json!({ "path": g.path.display().to_string(), "type": g.database_type, "locations": g.len() })),
    }))
    .into_response())
}

/// Every data center with its endpoints' health and overrides.
fn datacenter_values(ctl: &Control) -> Vec<Value> {
    let snap = ctl.store.load();
    let h = &snap.health;
    snap.datacenters
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let id = DcId(i as u16);
            let endpoints: Vec<Value> = d
                .endpoints
                .iter()
                .map(|e| {
                    let probe = h.probe(e).map(|p| {
                        let dt = p.detail.locked().clone();
                        json!({
                            "status": p.status().as_str(),
                            "since": rfc3339(dt.since),
                            "last_ok": dt.last_ok,
                            "last_error": dt.last_error,
                            "last_checked": dt.last_checked.map(rfc3339),
                            "last_latency_ms": dt.last_latency.map(|l| l.as_secs_f64() * 1000.0),
                        })
                    });
                    json!({
                        "address": e.address.to_string(),
                        "up": h.endpoint_up(id, e),
                        "weight": e.weight.get(),
                        "configured": if e.configured_up { "up" } else { "down" },
                        "override": h.endpoint_override(e).as_str(),
                        "check": e.check.as_ref().map(|c| c.name.to_string()),
                        "probe_address": e.probe_address.map(|a| a.to_string()),
                        "probe": probe,
                    })
                })
                .collect();
            let healthy = d.endpoints.iter().filter(|e| h.endpoint_up(id, e)).count();
            let forced = h.dc_forced(id);
            let up = forced.verdict().unwrap_or(healthy >= d.min_healthy.get());
            json!({
                "name": &*d.name,
                "status": if up { "up" } else { "down" },
                "override": forced.as_str(),
                "weight_override": h.dc_weight(id),
                "healthy_endpoints": healthy,
                "min_healthy": d.min_healthy.get(),
                "location": {
                    "continent": d.location.continent.as_deref(),
                    "country": d.location.country.as_deref(),
                    "lat": d.location.coords.map(|c| c.0),
                    "lon": d.location.coords.map(|c| c.1),
                },
                "endpoints": endpoints,
            })
        })
        .collect()
}

pub async fn datacenters(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    Ok(Json(datacenter_values(&ctl)).into_response())
}

pub async fn datacenter(_: ReadAccess, State(ctl): Ctl, Path(dc): Path<String>) -> ApiResult {
    datacenter_values(&ctl)
        .into_iter()
        .find(|d| d["name"] == dc.as_str())
        .map(|d| Json(d).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no data center `{dc}`")).field("dc"))
}

/// Sets a data center's override on behalf of `who` and answers with the change.
fn set_dc(ctl: &Control, who: &str, dc: &str, state: Forced) -> ApiResult {
    let old = ctl.overrides.set_dc(dc, state, &ctl.events, who)?;
    Ok(Json(json!({ "subject": dc, "old": old.as_str(), "new": state.as_str() })).into_response())
}

/// Sets an endpoint's override on behalf of `who` and answers with the change.
fn set_endpoint(ctl: &Control, who: &str, dc: &str, addr: IpAddr, state: Forced) -> ApiResult {
    // Endpoints are keyed by the address's canonical text, so every spelling of it names one.
    let addr = addr.to_string();
    let old = ctl.overrides.set_endpoint(dc, &addr, state, &ctl.events, who)?;
    Ok(
        Json(json!({ "subject": format!("{dc}/{addr}"), "old": old.as_str(), "new": state.as_str() }))
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
    ctl.overrides.set_weight(&dc, weight, &ctl.events, &who)?;
    Ok(Json(json!({ "subject": dc, "weight": weight })).into_response())
}

/// `/endpoints/{dc}/{address}`, the address parsed: any spelling of an IP names one endpoint.
pub struct EndpointPath {
    dc: String,
    addr: IpAddr,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for EndpointPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let Path((dc, address)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let addr = address.parse().map_err(|_| {
            ApiError::bad_request(format!("`{address}` is not an IPv4 or IPv6 address")).field("address")
        })?;
        Ok(EndpointPath { dc, addr })
    }
}

pub async fn ep_drain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.dc, p.addr, Forced::Drained)
}

pub async fn ep_undrain(AdminAccess(who): AdminAccess, State(ctl): Ctl, p: EndpointPath) -> ApiResult {
    set_endpoint(&ctl, &who, &p.dc, p.addr, Forced::Auto)
}

pub async fn ep_override(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    p: EndpointPath,
    body: Result<JsonBody<OverrideBody>, ApiError>,
) -> ApiResult {
    set_endpoint(&ctl, &who, &p.dc, p.addr, parse_state(body)?)
}

/// For every load-balanced name: where each geo rule (or the policy) currently sends clients,
/// and why the data centers passed over were passed over.
pub async fn gslb_names(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    let snap = ctl.store.load();
    let h = &*snap.health;
    let dc_up = |id: DcId| {
        let d = &snap.datacenters[usize::from(id.0)];
        h.dc_override(id).unwrap_or_else(|| {
            d.endpoints.iter().filter(|e| h.endpoint_up(id, e)).count() >= d.min_healthy.get()
        })
    };
    let why = |id: DcId| match h.dc_forced(id) {
        Forced::Drained => "drained",
        Forced::Down => "forced down",
        _ => "health checks failing",
    };
    let mut out = Vec::new();
    for z in snap.zones.values() {
        for entry in z.entries.values() {
            let Some(g) = entry.node.as_ref().and_then(|n| n.gslb.as_ref()) else {
                continue;
            };
            let name = |id: DcId| snap.datacenters[usize::from(id.0)].name.to_string();
            let rule_view = |label: String, ranks: Vec<Vec<DcId>>| {
                let order: Vec<DcId> = ranks.into_iter().flatten().collect();
                let chosen: Vec<String> = order.iter().copied().filter(|d| dc_up(*d)).map(name).collect();
                let passed: Vec<Value> = order
                    .iter()
                    .copied()
                    .filter(|d| !dc_up(*d))
                    .map(|d| json!({ "datacenter": name(d), "why": why(d) }))
                    .collect();
                json!({ "rule": label, "order": order.iter().copied().map(name).collect::<Vec<_>>(), "now": chosen.first(), "passed_over": passed })
            };
            let rules: Vec<Value> = match g.policy {
                Policy::Geo => {
                    let default = g
                        .geo
                        .iter()
                        .find(|r| r.matches == GeoMatch::Default)
                        .map(|r| r.ranks.clone())
                        .unwrap_or_default();
                    g.geo
                        .iter()
                        .map(|r| {
                            let mut ranks = r.ranks.clone();
                            ranks.extend(default.clone());
                            ranks.push(g.candidates.clone());
                            let mut seen = Vec::new();
                            let ranks = ranks
                                .into_iter()
                                .map(|rank| {
                                    rank.into_iter()
                                        .filter(|d| {
                                            if seen.contains(d) {
                                                false
                                            } else {
                                                seen.push(*d);
                                                true
                                            }
                                        })
                                        .collect()
                                })
                                .collect();
                            rule_view(r.matches.to_string(), ranks)
                        })
                        .collect()
                }
                p => vec![rule_view(p.as_str().to_string(), vec![g.candidates.clone()])],
            };
            out.push(json!({ "name": g.owner.to_string(), "policy": g.policy.as_str(), "rules": rules }));
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(out).into_response())
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
    use crate::answer::{self, ClientInfo, Question};
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()).field("query"))?;
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("the query parameter `name` is required").field("name"))?;
    let fqdn = if name.ends_with('.') {
        name.clone()
    } else {
        format!("{name}.")
    };
    let qname = crate::name::Name::parse(&fqdn, None)
        .map_err(|e| ApiError::bad_request(format!("name: {e}")).field("name"))?;
    let qtype_text = q.qtype.unwrap_or_else(|| "A".into());
    let qtype = crate::model::RType::from_mnemonic(&qtype_text).ok_or_else(|| {
        ApiError::bad_request(format!("type `{qtype_text}` is not a record type")).field("type")
    })?;
    let client_text = q.client.ok_or_else(|| {
        ApiError::bad_request("the query parameter `client` is required (IP or IP/prefix)").field("client")
    })?;
    let (addr, prefix) = match client_text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (client_text.as_str(), None),
    };
    let addr: std::net::IpAddr = addr
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{addr}` is not an IP address")).field("client"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
            ApiError::bad_request(format!("`/{p}` is not a prefix length for {addr}")).field("client")
        })?,
    };
    let client = ClientInfo {
        addr: crate::geo::mask(addr, prefix),
        source_prefix: prefix,
    };
    let snap = ctl.store.load();
    let question = Question {
        name: qname.wire(),
        qtype,
        qclass: answer::CLASS_IN,
    };
    let e = answer::explain(&question, &client, &snap, crate::rng::Entropy::new().draw());
    let r = &e.response;
    let show = |s: &[answer::Record<'_>]| s.iter().map(|x| x.present(&qname)).collect::<Vec<_>>();
    Ok(Json(json!({
        "name": qname.to_string(),
        "type": qtype.to_string(),
        "client": format!("{}/{}", client.addr, client.source_prefix),
        "rcode": format!("{:?}", r.rcode).to_uppercase(),
        "authoritative": r.authoritative,
        "answer": show(&r.answer),
        "authority": show(&r.authority),
        "additional": show(&r.additional),
        "scope": r.scope.min(client.source_prefix),
        "steps": e.steps,
    }))
    .into_response())
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
        let list: Vec<Value> = ctl.events.recent().iter().map(event_json).collect();
        return Ok(Json(list).into_response());
    }
    // A stream holds its connection for as long as it runs: half the connections at most, so
    // followers can never lock everyone else out.
    let cap = (ctl.running.locked().admin.max_connections.get() / 2).max(1);
    if ctl.events.followers() >= cap {
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
    let rx = ctl.events.subscribe();
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
    let snap = ctl.store.load();
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
    let datacenters = datacenter_values(&ctl)
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or("").to_string(),
                u8::from(d["status"] == "up"),
            )
        })
        .collect();
    let body = ctl.metrics.render(StateGauges {
        endpoints,
        datacenters,
        overrides_active: ctl.overrides.active(),
        partition_guard_alarms: ctl.scheduler.guard.alarms.load(Ordering::Relaxed),
        partition_guard_engaged: u8::from(ctl.scheduler.guard.is_engaged()),
        probe_targets: ctl.scheduler.probe_count(),
        snapshot_generation: snap.generation,
    });
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub async fn readyz(State(ctl): Ctl) -> Response {
    if ctl.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
