//! What the read-only endpoints answer, as types: data centers and their endpoints, where each
//! load-balanced name sends clients now, the server's status, events and explain reports. Every
//! verdict comes from [`Health::dc_state`] and [`Health::endpoint_up`], the functions the answer
//! path uses. Each type derives `ToSchema`: the OpenAPI document describes what is serialized.

use crate::config::Quorum;
use crate::control::Control;
use crate::events::Event;
use crate::events::rfc3339;
use crate::explain::Votes;
use crate::health::{Decision, HealthView};
use crate::lock::LockExt;
use crate::model::gslb::{
    Datacenter, DcId, DcReason, DcState, Endpoint, Forced, GeoRule, GslbName, Policy, WhenAllDown,
};
use crate::overrides::Saved;
use crate::select::{self, Family, Health, Outcome, Selection};
use crate::state::Snapshot;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

/// A data center as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct DatacenterView {
    pub name: String,
    /// `up` or `down`: whether it takes traffic now.
    #[schema(schema_with = up_or_down)]
    pub status: &'static str,
    /// Why: `healthy`, `health checks failing`, `forced up`, `forced down` or `drained`.
    #[schema(schema_with = dc_reason)]
    pub reason: &'static str,
    /// The operator's override: `auto`, `up`, `down` or `drained`.
    #[serde(rename = "override")]
    #[schema(schema_with = forced)]
    pub forced: &'static str,
    pub weight_override: Option<u32>,
    pub healthy_endpoints: usize,
    pub min_healthy: usize,
    pub location: LocationView,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Serialize, ToSchema)]
pub struct LocationView {
    pub continent: Option<String>,
    pub country: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    pub address: String,
    /// In answers now (checks, configured state and overrides folded in).
    pub up: bool,
    pub weight: u32,
    /// The configured `state`: `up` or `down`.
    #[schema(schema_with = up_or_down)]
    pub configured: &'static str,
    /// The operator's override: `auto`, `up`, `down` or `drained`.
    #[serde(rename = "override")]
    #[schema(schema_with = forced)]
    pub forced: &'static str,
    /// The check's name, when it has one.
    pub check: Option<String>,
    pub probe_address: Option<String>,
    pub probe: Option<ProbeView>,
}

/// What the endpoint's probe last saw, and the verdict answers use.
#[derive(Serialize, ToSchema)]
pub struct ProbeView {
    /// This node's own view (its probe's rise and fall): `unknown` (no result yet), `up` or
    /// `down`.
    #[schema(schema_with = probe_status)]
    pub status: &'static str,
    /// The verdict answers use: this node's own view on a single node; in cluster mode the
    /// cluster's, counted by `health.quorum` (`cluster` says how). `unknown` is treated as up.
    #[schema(schema_with = probe_status)]
    pub verdict: &'static str,
    /// RFC 3339: when this node's own view last changed.
    pub since: String,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub last_checked: Option<String>,
    pub last_latency_ms: Option<f64>,
    /// Cluster mode: every node's view and how the verdict was reached (null on a single node).
    #[schema(value_type = Option<ProbeClusterView>)]
    pub cluster: Option<Votes>,
}

// The schema of `explain::Votes`, which the API serializes as it is (the explain report shows
// the same for the targets it read), checked against it field by field
// (`probe_votes_match_their_schema`). The doc comment is the schema's description.
/// How the nodes of the cluster decide on one probe target.
#[derive(Serialize, ToSchema)]
pub struct ProbeClusterView {
    /// The rule this node counts by (`health.quorum`): `majority`, `any`, `all` or a number of
    /// nodes.
    pub quorum: String,
    /// `up`, `down`, or `unknown` (no node has a view yet: treated as up).
    #[schema(schema_with = probe_status)]
    pub verdict: &'static str,
    /// Nodes that see the target down.
    pub down: usize,
    /// Nodes that vote: those with a view, up or down.
    pub voters: usize,
    /// Down votes that take the target out (`down >= needed`: down).
    pub needed: usize,
    /// This node cannot reach etcd and its own view changed since: it decides alone, and the
    /// other nodes' views are not counted.
    pub alone: bool,
    /// Every node's view: this node first, then the others by name; a live node with no view
    /// counted is `unknown`.
    pub nodes: Vec<NodeVoteView>,
}

// The schema of `explain::Vote` (see `ProbeClusterView`).
/// One node's view of a probe target.
#[derive(Serialize, ToSchema)]
pub struct NodeVoteView {
    /// The node's name (`cluster.node`).
    pub node: String,
    /// `up`, `down`, or `unknown` (no view of this target counted: not probed there yet).
    #[schema(schema_with = probe_status)]
    pub state: &'static str,
    /// RFC 3339: when that node's view last changed (null when `unknown`).
    pub since: Option<String>,
    /// Why, as that node reported it: the last error when down (what brought it up, when a
    /// node says so).
    pub reason: Option<String>,
    /// That node's probe latency when its view changed.
    pub latency_ms: Option<f64>,
    /// This node's own view.
    #[serde(rename = "self")]
    pub this: bool,
}

/// This node in a cluster, as the views of shared health need it: its name, its rule and the
/// live nodes (`None` on a single node).
pub struct Peers {
    pub node: String,
    pub quorum: Quorum,
    /// The live nodes' names, as their `nodes/` keys say.
    pub live: Vec<String>,
}

impl Peers {
    /// This node's place in the cluster, in cluster mode.
    pub fn of(ctl: &Control) -> Option<Peers> {
        let node = ctl.cluster_status()?.node;
        Some(Peers {
            node,
            quorum: ctl.quorum(),
            live: ctl.cluster_nodes().into_keys().collect(),
        })
    }

    /// How the nodes decide on a target, by `decision` (`None`: no vote counted yet): every
    /// live node shown, those with no view counted as `unknown`.
    fn votes(&self, decision: Option<&Decision>) -> Votes {
        let live = self.live.iter().map(String::as_str);
        match decision {
            Some(d) => Votes::new(d, &self.node, live),
            None => Votes::new(&Decision::none(self.quorum, &self.node), &self.node, live),
        }
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl DatacenterView {
    /// Data center `id` (which is `d`) under `h`; `peers` in cluster mode.
    pub fn new(id: DcId, d: &Datacenter, h: &HealthView, peers: Option<&Peers>) -> DatacenterView {
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
            endpoints: d
                .endpoints
                .iter()
                .map(|e| EndpointView::new(id, e, h, peers))
                .collect(),
        }
    }

    /// The data center of `snap` named `name`, if there is one.
    pub fn named(snap: &Snapshot, name: &str, peers: Option<&Peers>) -> Option<DatacenterView> {
        dcs(snap)
            .find(|(_, d)| &*d.name == name)
            .map(|(id, d)| DatacenterView::new(id, d, &snap.health, peers))
    }

    /// Every data center of `snap`.
    pub fn all(snap: &Snapshot, peers: Option<&Peers>) -> Vec<DatacenterView> {
        dcs(snap)
            .map(|(id, d)| DatacenterView::new(id, d, &snap.health, peers))
            .collect()
    }
}

impl EndpointView {
    fn new(id: DcId, e: &Endpoint, h: &HealthView, peers: Option<&Peers>) -> EndpointView {
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
                    status: d.counter.status.as_str(),
                    verdict: p.status().as_str(),
                    since: rfc3339(d.since),
                    last_ok: d.last_ok,
                    last_error: d.last_error,
                    last_checked: d.last_checked.map(rfc3339),
                    last_latency_ms: d.last_latency.map(millis),
                    cluster: peers.map(|peers| peers.votes(p.decision.locked().as_ref())),
                }
            }),
        }
    }
}

/// A load-balanced name: where each geo rule (or the policy) sends clients now.
#[derive(Serialize, ToSchema)]
pub struct NameView {
    pub name: String,
    #[schema(schema_with = policy)]
    pub policy: &'static str,
    pub rules: Vec<RuleView>,
    /// What clients get when no candidate is up (`when_all_down`).
    pub when_all_down: WhenAllDownView,
}

/// A name's `when_all_down`, for the page to say what happens when nothing is left.
#[derive(Serialize, ToSchema)]
pub struct WhenAllDownView {
    /// `all` (fail open: answer as if every candidate were up), `none` (NODATA), `servfail`, or
    /// `fallback` (the addresses below).
    #[schema(schema_with = when_all_down)]
    pub action: &'static str,
    /// The fallback addresses (`fallback` only).
    pub addresses: Vec<String>,
}

impl From<&WhenAllDown> for WhenAllDownView {
    fn from(w: &WhenAllDown) -> WhenAllDownView {
        let (action, addresses) = match w {
            WhenAllDown::All => ("all", Vec::new()),
            WhenAllDown::None => ("none", Vec::new()),
            WhenAllDown::Servfail => ("servfail", Vec::new()),
            WhenAllDown::Fallback(a) => ("fallback", a.iter().map(ToString::to_string).collect()),
        };
        WhenAllDownView { action, addresses }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RuleView {
    /// The geo rule's condition, or the policy's name.
    pub rule: String,
    /// Data centers in order of preference, health aside.
    pub order: Vec<String>,
    /// The first of them that takes traffic.
    pub now: Option<String>,
    pub passed_over: Vec<PassedOver>,
    /// How first choices split now among the data centers that take traffic, in percent: by
    /// weight for `weighted` and a geo rank of several, else all to `now` (`all`: each
    /// answer holds every one; `nearest`: the nearest to each client). Empty when none is up.
    pub shares: Vec<ShareView>,
    /// What such a client is answered now, for A and for AAAA: `select` itself decides.
    pub answers: Answers,
}

#[derive(Serialize, ToSchema)]
pub struct Answers {
    #[serde(rename = "A")]
    pub a: AnswerView,
    #[serde(rename = "AAAA")]
    pub aaaa: AnswerView,
}

/// One answer as `select` makes it.
#[derive(Serialize, ToSchema)]
pub struct AnswerView {
    /// `addresses`, `nodata` (no address of this family, or `when_all_down: none`) or
    /// `servfail` (`when_all_down: servfail` with every candidate down).
    #[schema(schema_with = outcome)]
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

/// A data center's share of first choices.
#[derive(Serialize, ToSchema)]
pub struct ShareView {
    pub datacenter: String,
    pub percent: f64,
}

#[derive(Serialize, ToSchema)]
pub struct PassedOver {
    pub datacenter: String,
    /// The data center's reason for being down.
    #[schema(schema_with = dc_reason)]
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
                shares: Vec::new(),
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
            view.shares = shares(g, rule, snap);
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
            when_all_down: WhenAllDownView::from(&g.when_all_down),
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

/// How first choices split among the data centers that take traffic for a client `rule`
/// matched: the first rank with one up, by weight among those up (`weighted`: every candidate
/// is one rank). When no rank of the rule has one up, the first candidate up takes all.
fn shares(g: &GslbName, rule: Option<&GeoRule>, snap: &Snapshot) -> Vec<ShareView> {
    let up = |id: DcId| snap.health.dc_state(id, &snap.datacenters[usize::from(id.0)]).up;
    let name = |id: DcId| snap.datacenters[usize::from(id.0)].name.to_string();
    let rank: Vec<DcId> = match g.policy {
        Policy::Weighted => g.candidates.iter().copied().filter(|&d| up(d)).collect(),
        Policy::Geo => select::geo::ranks(g, rule)
            .map(|r| r.iter().copied().filter(|&d| up(d)).collect::<Vec<_>>())
            .find(|r| !r.is_empty())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if rank.is_empty() {
        let first = select::preference(g, rule).into_iter().find(|&d| up(d));
        return first
            .map(|d| ShareView {
                datacenter: name(d),
                percent: 100.0,
            })
            .into_iter()
            .collect();
    }
    let weights: Vec<u32> = rank
        .iter()
        .map(|&d| select::weight(g, &*snap.health, d))
        .collect();
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    rank.iter()
        .zip(weights)
        .map(|(&d, w)| ShareView {
            datacenter: name(d),
            percent: f64::from(w) * 100.0 / total,
        })
        .collect()
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

// === status, events, explain ===

/// `GET /status`.
#[derive(Serialize, ToSchema)]
pub struct StatusView {
    pub version: String,
    /// The serving snapshot's generation: one more for every published change.
    pub generation: u64,
    /// Serving DNS (the listeners are bound and the first probes have run).
    pub ready: bool,
    /// Zone origins, absolute.
    pub zones: Vec<String>,
    /// How many data centers are configured.
    pub datacenters: usize,
    /// The names of those down now.
    pub datacenters_down: Vec<String>,
    /// Distinct probes running.
    pub probes: usize,
    /// `engaged` while the partition guard holds health, else `clear`.
    #[schema(schema_with = guard)]
    pub partition_guard: &'static str,
    pub overrides: OverridesView,
    /// The GeoIP database in use, if any.
    pub geoip: Option<GeoipView>,
    /// Cluster mode: this node and its link to etcd (absent on a single node).
    pub cluster: Option<ClusterView>,
}

/// This node in the cluster: its name and whether it follows etcd now.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    pub node: String,
    /// `connected`, or `disconnected`: the node serves its last good state and refuses writes.
    #[schema(schema_with = link_state)]
    pub state: &'static str,
    /// RFC 3339: since when it is connected or disconnected.
    pub since: String,
    /// Why it is disconnected.
    pub error: Option<String>,
    /// The etcd revision this node has applied up to.
    pub revision: i64,
    /// Changes read from etcd and refused since the start (invalid documents).
    pub refused: u64,
    /// How this node counts the nodes' views of a target (`health.quorum`): `majority`, `any`,
    /// `all` or a number of nodes.
    pub quorum: String,
    /// The live nodes (each holds a lease in etcd): this node first, then the others by name.
    pub nodes: Vec<LiveNodeView>,
}

/// A live node of the cluster.
#[derive(Serialize, ToSchema)]
pub struct LiveNodeView {
    /// Its `cluster.node`.
    pub name: String,
    /// RFC 3339: when it joined (took its lease).
    pub started: String,
    /// The rule it counts by (its `health.quorum`).
    pub quorum: String,
    /// Its rule is not this node's: the two can reach different verdicts on one target.
    pub quorum_differs: bool,
    /// This node.
    #[serde(rename = "self")]
    pub this: bool,
}

fn link_state() -> RefOr<Schema> {
    strings(&["connected", "disconnected"])
}

/// The overrides in force, as persisted in `state_dir`.
#[derive(Serialize, ToSchema)]
pub struct OverridesView {
    /// By data center name.
    pub datacenters: BTreeMap<String, DcOverrideView>,
    /// By `dc/address`: `up`, `down` or `drained`.
    #[schema(value_type = BTreeMap<String, String>)]
    pub endpoints: BTreeMap<String, &'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct DcOverrideView {
    /// `auto`, `up`, `down` or `drained` (`auto` with a weight override only).
    #[schema(schema_with = forced)]
    pub state: &'static str,
    /// The runtime weight for this data center in every name, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl From<&Saved> for OverridesView {
    fn from(s: &Saved) -> OverridesView {
        OverridesView {
            datacenters: s
                .datacenters
                .iter()
                .map(|(name, d)| {
                    let view = DcOverrideView {
                        state: d.state.as_str(),
                        weight: d.weight,
                    };
                    (name.clone(), view)
                })
                .collect(),
            endpoints: s
                .endpoints
                .iter()
                .map(|(k, f)| (k.to_string(), f.as_str()))
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GeoipView {
    pub path: String,
    /// The database's type, like `GeoLite2-City`.
    #[serde(rename = "type")]
    pub database_type: String,
    /// Networks with a location.
    pub locations: usize,
}

impl StatusView {
    pub fn new(ctl: &Control) -> StatusView {
        let snap = ctl.snapshot();
        StatusView {
            version: env!("CARGO_PKG_VERSION").into(),
            generation: snap.generation,
            ready: ctl.is_ready(),
            zones: snap.zones.values().map(|z| z.origin.to_string()).collect(),
            datacenters: snap.datacenters.len(),
            datacenters_down: dcs(&snap)
                .filter(|(id, d)| !snap.health.dc_state(*id, d).up)
                .map(|(_, d)| d.name.to_string())
                .collect(),
            probes: ctl.probe_count(),
            partition_guard: if ctl.partition_guard().engaged {
                "engaged"
            } else {
                "clear"
            },
            overrides: OverridesView::from(&ctl.overrides()),
            geoip: snap.geo.as_ref().map(|g| GeoipView {
                path: g.path.display().to_string(),
                database_type: g.database_type.clone(),
                locations: g.len(),
            }),
            cluster: ctl.cluster_status().map(|c| {
                let quorum = ctl.quorum().to_string();
                let mut nodes: Vec<LiveNodeView> = ctl
                    .cluster_nodes()
                    .into_iter()
                    .map(|(name, record)| LiveNodeView {
                        this: name == c.node,
                        quorum_differs: record.quorum != quorum,
                        name,
                        started: record.started,
                        quorum: record.quorum,
                    })
                    .collect();
                // By name already (a sorted map): this node to the front.
                nodes.sort_by_key(|n| !n.this);
                ClusterView {
                    node: c.node,
                    state: if c.connected { "connected" } else { "disconnected" },
                    since: rfc3339(c.since),
                    error: c.error,
                    revision: c.revision,
                    refused: c.refused,
                    quorum,
                    nodes,
                }
            }),
        }
    }
}

/// A transition: of an endpoint's probe, a data center, an override, the partition guard, a
/// reload or a zone edit.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// The event's number: one more than the event before, rising across restarts. Pass the
    /// last one seen as `?after=` to list only newer events.
    pub seq: u64,
    /// `health` (probe targets, data centers, the partition guard, nodes), `overrides` (states
    /// and weights set by operators) or `edits` (zones, reloads, changes from the cluster).
    #[schema(schema_with = event_kind)]
    pub kind: &'static str,
    /// RFC 3339.
    pub time: String,
    /// Like `target http://198.51.100.10:80/healthz (check web)`, `datacenter eu`,
    /// `override datacenter eu`, `override endpoint eu/198.51.100.10`, `weight datacenter eu`,
    /// `partition-guard`, `zone example.com`.
    pub subject: String,
    pub old: String,
    pub new: String,
    pub reason: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        EventView {
            seq: e.seq,
            kind: e.kind().as_str(),
            time: rfc3339(e.time),
            subject: e.subject.clone(),
            old: e.old.clone(),
            new: e.new.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// `GET /traffic`: answers per second per data center, a point a second, oldest first.
#[derive(Serialize, ToSchema)]
pub struct TrafficView {
    /// The server's time of this answer (RFC 3339): the reference the status page measures its
    /// chart and its "ago" times from, so a browser whose clock is off still shows them right.
    pub now: String,
    /// Seconds between points.
    pub step_seconds: u64,
    /// The data centers of the latest point, by name.
    pub datacenters: Vec<String>,
    pub points: Vec<TrafficPoint>,
}

/// Answers per second in the second before `time`.
#[derive(Serialize, ToSchema)]
pub struct TrafficPoint {
    /// RFC 3339.
    pub time: String,
    /// By data center name.
    pub answers_per_second: BTreeMap<String, f64>,
}

impl TrafficView {
    pub fn new(readings: &[super::traffic::Reading]) -> TrafficView {
        TrafficView {
            now: rfc3339(std::time::SystemTime::now()),
            step_seconds: super::traffic::STEP.as_secs(),
            datacenters: readings
                .last()
                .map(|r| r.totals.keys().cloned().collect())
                .unwrap_or_default(),
            points: super::traffic::rates(readings)
                .into_iter()
                .map(|(time, answers_per_second)| TrafficPoint {
                    time: rfc3339(time),
                    answers_per_second,
                })
                .collect(),
        }
    }
}

/// The schema of [`crate::explain::Report`], which the API serializes as it is: the report is
/// shared with the `explain` command, so it stays free of the API's schema derive, and this
/// mirror is checked against it field by field (`explain_report_matches_its_schema`).
#[derive(Serialize, ToSchema)]
#[schema(as = ExplainReport)]
pub struct ExplainReportSchema {
    /// The name asked, absolute.
    pub name: String,
    /// The query type, like `A`.
    #[serde(rename = "type")]
    pub qtype: String,
    /// `address/prefix`.
    pub client: String,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, …
    pub rcode: String,
    pub authoritative: bool,
    /// Records in presentation format.
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// The ECS scope prefix the answer would carry.
    pub scope: u8,
    /// The decision, one step a line.
    pub steps: Vec<String>,
    /// Cluster mode: how the nodes see each probe target of the data centers the answer read
    /// (empty on a single node).
    pub votes: Vec<ExplainVotesSchema>,
}

/// The schema of [`crate::explain::TargetVotes`] (see [`ExplainReportSchema`]): the nodes'
/// views of one endpoint's probe target, and the verdict they reach.
#[derive(Serialize, ToSchema)]
#[schema(as = ExplainVotes)]
pub struct ExplainVotesSchema {
    pub datacenter: String,
    /// The endpoint's address.
    pub address: String,
    pub check: String,
    /// The rule counted by (`health.quorum`): `majority`, `any`, `all` or a number of nodes.
    pub quorum: String,
    /// `up`, `down`, or `unknown` (no view yet: treated as up).
    #[schema(schema_with = probe_status)]
    pub verdict: String,
    /// Nodes that see the target down.
    pub down: usize,
    /// Nodes that vote: those with a view, up or down.
    pub voters: usize,
    /// Down votes that take the target out.
    pub needed: usize,
    /// This node cannot reach etcd and its own view changed since: it decides alone.
    pub alone: bool,
    /// The views counted: this node's first, then the others by name.
    pub nodes: Vec<NodeVoteView>,
}

// === enumerated strings: the `as_str` names of model enums ===

fn strings(values: &[&str]) -> RefOr<Schema> {
    serde_json::from_value(json!({ "type": "string", "enum": values })).expect("schema")
}

fn up_or_down() -> RefOr<Schema> {
    strings(&["up", "down"])
}

fn forced() -> RefOr<Schema> {
    use Forced::*;
    strings(&[Auto, Up, Down, Drained].map(Forced::as_str))
}

fn dc_reason() -> RefOr<Schema> {
    use DcReason::*;
    strings(&[Healthy, ChecksFailing, ForcedUp, ForcedDown, Drained].map(DcReason::as_str))
}

fn probe_status() -> RefOr<Schema> {
    strings(&["unknown", "up", "down"])
}

fn policy() -> RefOr<Schema> {
    use Policy::*;
    strings(&[Failover, Weighted, Geo, Nearest, All].map(Policy::as_str))
}

fn outcome() -> RefOr<Schema> {
    strings(&["addresses", "nodata", "servfail"])
}

fn when_all_down() -> RefOr<Schema> {
    strings(&["all", "none", "servfail", "fallback"])
}

fn event_kind() -> RefOr<Schema> {
    use crate::events::Kind::*;
    strings(&[Health, Overrides, Edits].map(crate::events::Kind::as_str))
}

fn guard() -> RefOr<Schema> {
    strings(&["engaged", "clear"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// Every variant is in its schema's list: a new variant fails to compile here (the matches
    /// are exhaustive) until the list above names it.
    #[test]
    fn enumerations_name_every_variant() {
        let names = |s: RefOr<Schema>| serde_json::to_value(s).unwrap()["enum"].clone();
        for f in [Forced::Auto, Forced::Up, Forced::Down, Forced::Drained] {
            match f {
                Forced::Auto | Forced::Up | Forced::Down | Forced::Drained => {}
            }
            assert!(names(forced()).as_array().unwrap().contains(&json!(f.as_str())));
        }
        for r in [
            DcReason::Healthy,
            DcReason::ChecksFailing,
            DcReason::ForcedUp,
            DcReason::ForcedDown,
            DcReason::Drained,
        ] {
            match r {
                DcReason::Healthy
                | DcReason::ChecksFailing
                | DcReason::ForcedUp
                | DcReason::ForcedDown
                | DcReason::Drained => {}
            }
            assert!(
                names(dc_reason())
                    .as_array()
                    .unwrap()
                    .contains(&json!(r.as_str()))
            );
        }
        for p in [
            Policy::Failover,
            Policy::Weighted,
            Policy::Geo,
            Policy::Nearest,
            Policy::All,
        ] {
            match p {
                Policy::Failover | Policy::Weighted | Policy::Geo | Policy::Nearest | Policy::All => {}
            }
            assert!(names(policy()).as_array().unwrap().contains(&json!(p.as_str())));
        }
    }

    /// The keys of a JSON object, sorted.
    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    /// The properties a schema names.
    fn properties(s: RefOr<Schema>) -> serde_json::Value {
        serde_json::to_value(s).unwrap()["properties"].clone()
    }

    /// The mirror schema names exactly the keys a report serializes to.
    #[test]
    fn explain_report_matches_its_schema() {
        let report = crate::explain::Report {
            name: "www.example.test.".into(),
            qtype: "A".into(),
            client: "192.0.2.1/32".into(),
            rcode: "NOERROR",
            authoritative: true,
            answer: vec![],
            authority: vec![],
            additional: vec![],
            scope: 0,
            steps: vec![],
            votes: vec![crate::explain::TargetVotes {
                datacenter: "eu".into(),
                address: "192.0.2.10".into(),
                check: "web".into(),
                votes: votes(),
            }],
        };
        let report = serde_json::to_value(&report).unwrap();
        assert_eq!(keys(&report), keys(&properties(ExplainReportSchema::schema())));
        let votes = &report["votes"][0];
        assert_eq!(keys(votes), keys(&properties(ExplainVotesSchema::schema())));
        assert_eq!(
            keys(&votes["nodes"][0]),
            keys(&properties(NodeVoteView::schema()))
        );
    }

    /// Votes as serialized in a probe's `cluster`: one down vote of this node.
    fn votes() -> Votes {
        Votes {
            quorum: "majority".into(),
            verdict: "down",
            down: 1,
            voters: 1,
            needed: 1,
            alone: false,
            nodes: vec![crate::explain::Vote {
                node: "ns1".into(),
                state: "down",
                since: Some("2026-11-24T00:00:00.000Z".into()),
                reason: Some("timed out".into()),
                latency_ms: None,
                this: true,
            }],
        }
    }

    /// The mirror schemas of a probe's votes name exactly the keys they serialize to.
    #[test]
    fn probe_votes_match_their_schema() {
        let votes = serde_json::to_value(votes()).unwrap();
        assert_eq!(keys(&votes), keys(&properties(ProbeClusterView::schema())));
        assert_eq!(
            keys(&votes["nodes"][0]),
            keys(&properties(NodeVoteView::schema()))
        );
    }
}
