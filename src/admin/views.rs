//! What the read-only endpoints answer, as types: data centers and their endpoints, where each
//! load-balanced name sends clients now, and the server's status. Every verdict comes from
//! [`Health::dc_state`] and [`Health::endpoint_up`], the functions the answer path uses.

use crate::events::rfc3339;
use crate::health::HealthView;
use crate::lock::LockExt;
use crate::model::gslb::{Datacenter, DcId, DcState, Endpoint, GeoRule, GslbName, Policy};
use crate::select::{self, Family, Health, Outcome, Selection};
use crate::state::Snapshot;
use serde::Serialize;

/// A data center as the API shows it.
#[derive(Serialize)]
pub struct DatacenterView {
    pub name: String,
    /// `up` or `down`: whether it takes traffic now.
    pub status: &'static str,
    /// Why: `healthy`, `health checks failing`, `forced up`, `forced down` or `drained`.
    pub reason: &'static str,
    /// The operator's override: `auto`, `up`, `down` or `drained`.
    #[serde(rename = "override")]
    pub forced: &'static str,
    pub weight_override: Option<u32>,
    pub healthy_endpoints: usize,
    pub min_healthy: usize,
    pub location: LocationView,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Serialize)]
pub struct LocationView {
    pub continent: Option<String>,
    pub country: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Serialize)]
pub struct EndpointView {
    pub address: String,
    /// In answers now (checks, configured state and overrides folded in).
    pub up: bool,
    pub weight: u32,
    /// The configured `state`: `up` or `down`.
    pub configured: &'static str,
    #[serde(rename = "override")]
    pub forced: &'static str,
    /// The check's name, when it has one.
    pub check: Option<String>,
    pub probe_address: Option<String>,
    pub probe: Option<ProbeView>,
}

/// What the endpoint's probe last saw.
#[derive(Serialize)]
pub struct ProbeView {
    /// `unknown`, `up` or `down`.
    pub status: &'static str,
    pub since: String,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub last_checked: Option<String>,
    pub last_latency_ms: Option<f64>,
}

impl DatacenterView {
    pub fn new(id: DcId, d: &Datacenter, h: &HealthView) -> DatacenterView {
        let state: DcState = h.dc_state(id, d);
        DatacenterView {
            name: d.name.to_string(),
            status: up_down(state.up),
            reason: state.reason.as_str(),
            forced: h.dc_forced(id).as_str(),
            weight_override: h.dc_weight(id),
            healthy_endpoints: state.healthy,
            min_healthy: state.min_healthy,
            location: LocationView {
                continent: d.location.continent.as_deref().map(String::from),
                country: d.location.country.as_deref().map(String::from),
                lat: d.location.coords.map(|c| c.0),
                lon: d.location.coords.map(|c| c.1),
            },
            endpoints: d.endpoints.iter().map(|e| EndpointView::new(id, e, h)).collect(),
        }
    }

    /// Every data center of `snap`.
    pub fn all(snap: &Snapshot) -> Vec<DatacenterView> {
        dcs(snap)
            .map(|(id, d)| DatacenterView::new(id, d, &snap.health))
            .collect()
    }
}

impl EndpointView {
    fn new(id: DcId, e: &Endpoint, h: &HealthView) -> EndpointView {
        EndpointView {
            address: e.address.to_string(),
            up: h.endpoint_up(id, e),
            weight: e.weight.get(),
            configured: up_down(e.configured_up),
            forced: h.endpoint_override(e).as_str(),
            check: e.check.as_ref().map(|c| c.name.to_string()),
            probe_address: e.probe_address.map(|a| a.to_string()),
            probe: h.probe(e).map(|p| {
                let d = p.detail.locked().clone();
                ProbeView {
                    status: p.status().as_str(),
                    since: rfc3339(d.since),
                    last_ok: d.last_ok,
                    last_error: d.last_error,
                    last_checked: d.last_checked.map(rfc3339),
                    last_latency_ms: d.last_latency.map(|l| l.as_secs_f64() * 1000.0),
                }
            }),
        }
    }
}

/// A load-balanced name: where each geo rule (or the policy) sends clients now.
#[derive(Serialize)]
pub struct NameView {
    pub name: String,
    pub policy: &'static str,
    pub rules: Vec<RuleView>,
}

#[derive(Serialize)]
pub struct RuleView {
    /// The geo rule's condition, or the policy's name.
    pub rule: String,
    /// Data centers in order of preference, health aside.
    pub order: Vec<String>,
    /// The first of them that takes traffic.
    pub now: Option<String>,
    pub passed_over: Vec<PassedOver>,
    /// What such a client is answered now, for A and for AAAA: `select` itself decides.
    pub answers: Answers,
}

#[derive(Serialize)]
pub struct Answers {
    #[serde(rename = "A")]
    pub a: AnswerView,
    #[serde(rename = "AAAA")]
    pub aaaa: AnswerView,
}

/// One answer as `select` makes it.
#[derive(Serialize)]
pub struct AnswerView {
    /// `addresses`, `nodata` (no address of this family, or `when_all_down: none`) or
    /// `servfail` (`when_all_down: servfail` with every candidate down).
    pub outcome: &'static str,
    /// Data centers the addresses come from (none for a fallback).
    pub datacenters: Vec<String>,
    pub addresses: Vec<String>,
    pub ttl: u32,
}

impl AnswerView {
    fn new(s: &Selection, snap: &Snapshot) -> AnswerView {
        let (outcome, addresses) = match &s.outcome {
            Outcome::Addresses(a) => ("addresses", a.iter().map(ToString::to_string).collect()),
            Outcome::NoData => ("nodata", Vec::new()),
            Outcome::ServFail => ("servfail", Vec::new()),
        };
        AnswerView {
            outcome,
            datacenters: s
                .datacenters
                .iter()
                .map(|id| snap.datacenters[usize::from(id.0)].name.to_string())
                .collect(),
            addresses,
            ttl: s.ttl,
        }
    }
}

#[derive(Serialize)]
pub struct PassedOver {
    pub datacenter: String,
    pub why: &'static str,
}

impl NameView {
    pub fn new(g: &GslbName, snap: &Snapshot) -> NameView {
        let rule = |label: String, rule: Option<&GeoRule>| {
            let order = select::preference(g, rule);
            let answer = |family| {
                let s = select::select_for_rule(g, &snap.datacenters, family, rule, &*snap.health);
                AnswerView::new(&s, snap)
            };
            let mut view = RuleView {
                rule: label,
                order: Vec::with_capacity(order.len()),
                now: None,
                passed_over: Vec::new(),
                answers: Answers {
                    a: answer(Family::V4),
                    aaaa: answer(Family::V6),
                },
            };
            for id in order {
                let d = &snap.datacenters[usize::from(id.0)];
                let state = snap.health.dc_state(id, d);
                if state.up {
                    view.now.get_or_insert_with(|| d.name.to_string());
                } else {
                    view.passed_over.push(PassedOver {
                        datacenter: d.name.to_string(),
                        why: state.reason.as_str(),
                    });
                }
                view.order.push(d.name.to_string());
            }
            view
        };
        let rules = match g.policy {
            Policy::Geo => g
                .geo
                .iter()
                .map(|r| rule(r.matches.to_string(), Some(r)))
                .collect(),
            p => vec![rule(p.as_str().to_string(), None)],
        };
        NameView {
            name: g.owner.to_string(),
            policy: g.policy.as_str(),
            rules,
        }
    }

    /// Every load-balanced name of `snap`, sorted by name.
    pub fn all(snap: &Snapshot) -> Vec<NameView> {
        let mut out: Vec<NameView> = snap
            .zones
            .values()
            .flat_map(|z| z.entries.values())
            .filter_map(|e| e.node.as_ref().and_then(|n| n.gslb.as_ref()))
            .map(|g| NameView::new(g, snap))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn dcs(snap: &Snapshot) -> impl Iterator<Item = (DcId, &Datacenter)> {
    snap.datacenters
        .iter()
        .enumerate()
        .map(|(i, d)| (DcId(i as u16), d))
}

fn up_down(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}
