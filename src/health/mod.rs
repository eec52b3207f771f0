//! Health: probes report outcomes, a small state machine decides up and down.
//!
//! `observe` is the pure rise/fall machine. `ProbeState` is what one probe knows, shared with the
//! answer path through an atomic (no lock on the query path). `scheduler` runs the probes.

pub mod probe;
pub mod quorum;
pub mod scheduler;

use crate::lock::LockExt;
use crate::model::gslb::{Datacenter, DcId, Endpoint, Forced};
use crate::overrides::{Overrides, Slot};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An endpoint's health as probes see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No result yet, or held by the partition guard before any: treated as up.
    Unknown,
    Up,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
        }
    }
}

/// Rise/fall bookkeeping of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub status: Status,
    /// Consecutive results that disagree with `status`.
    pub streak: u32,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            status: Status::Unknown,
            streak: 0,
        }
    }
}

/// Feeds one probe result to the machine. The first result decides at once (so the first
/// answers reflect health); after that, `rise` consecutive successes make an endpoint up and
/// `fall` consecutive failures make it down. Returns the new status when it changed.
pub fn observe(c: &mut Counter, ok: bool, rise: u32, fall: u32) -> Option<Status> {
    let target = if ok { Status::Up } else { Status::Down };
    if c.status == Status::Unknown {
        c.status = target;
        c.streak = 0;
        return Some(target);
    }
    if c.status == target {
        c.streak = 0;
        return None;
    }
    c.streak += 1;
    let needed = if ok { rise } else { fall };
    if c.streak >= needed {
        c.status = target;
        c.streak = 0;
        return Some(target);
    }
    None
}

/// Everything known of one probe target. `up` is what the answer path reads: this node's own
/// view, or in cluster mode the cluster's verdict.
#[derive(Debug)]
pub struct ProbeState {
    up: AtomicU8,
    /// This node's own view and its history.
    pub detail: Mutex<Detail>,
    /// In cluster mode, how the verdict was last reached.
    pub decision: Mutex<Option<Decision>>,
}

/// How the cluster's verdict on a target was reached: the rule, the count, every vote.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// This node's name.
    pub node: String,
    pub rule: crate::config::Quorum,
    pub tally: quorum::Tally,
    /// Every node's view, this node's first (when it has one).
    pub views: Vec<quorum::View>,
    /// This node cannot reach etcd and its own view changed since: it decides alone.
    pub alone: bool,
}

impl Decision {
    /// The verdict in words: how the nodes voted, or why this node decided alone.
    pub fn describe(&self) -> String {
        if self.alone {
            return "this node cannot reach etcd and its own view changed since: it decides alone".into();
        }
        quorum::describe(self.rule, &self.tally, &self.views, &self.node)
    }

    /// No vote counted yet under `rule` on node `node`: the verdict is unknown (treated as up).
    pub fn none(rule: crate::config::Quorum, node: &str) -> Decision {
        Decision {
            node: node.to_string(),
            rule,
            tally: quorum::tally(rule, []),
            views: Vec::new(),
            alone: false,
        }
    }

    /// Every node's view as operators read it: `this` node first, then the others by name, and
    /// each of the `live` nodes with no view counted here as `Unknown` (not probed yet there, or,
    /// when this node decides alone, not counted).
    pub fn ballots<'a>(&self, this: &str, live: impl IntoIterator<Item = &'a str>) -> Vec<Ballot> {
        let mut out: Vec<Ballot> = self
            .views
            .iter()
            .map(|v| Ballot {
                node: v.node.clone(),
                status: v.status,
                since: Some(v.since),
                reason: v.reason.clone(),
                latency: v.latency,
                this: v.node == this,
            })
            .collect();
        for node in live {
            if !out.iter().any(|b| b.node == node) {
                out.push(Ballot {
                    node: node.to_string(),
                    status: Status::Unknown,
                    since: None,
                    reason: None,
                    latency: None,
                    this: node == this,
                });
            }
        }
        out.sort_by(|a, b| b.this.cmp(&a.this).then_with(|| a.node.cmp(&b.node)));
        out
    }
}

/// One node's view of a target in a [`Decision`], for operators.
#[derive(Clone, Debug, PartialEq)]
pub struct Ballot {
    pub node: String,
    /// `Unknown`: a live node whose view is not counted (it has none yet).
    pub status: Status,
    /// When that node's view last changed (`None` for `Unknown`).
    pub since: Option<SystemTime>,
    /// The last error when down.
    pub reason: Option<String>,
    pub latency: Option<Duration>,
    /// This node's own view.
    pub this: bool,
}

/// The probe's history, for explanations and the admin API.
#[derive(Clone, Debug)]
pub struct Detail {
    pub counter: Counter,
    /// When `counter.status` last changed.
    pub since: SystemTime,
    pub last_ok: Option<bool>,
    pub last_checked: Option<SystemTime>,
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    /// Results so far.
    pub results: u64,
    /// Start of the current run of failures, for the partition guard.
    pub failing_since: Option<std::time::Instant>,
}

const UP: u8 = 1;
const DOWN: u8 = 2;
const UNKNOWN: u8 = 0;

impl ProbeState {
    pub fn new() -> ProbeState {
        ProbeState {
            up: AtomicU8::new(UNKNOWN),
            detail: Mutex::new(Detail {
                counter: Counter::default(),
                since: SystemTime::now(),
                last_ok: None,
                last_checked: None,
                last_latency: None,
                last_error: None,
                results: 0,
                failing_since: None,
            }),
            decision: Mutex::new(None),
        }
    }

    /// Up or unknown (a target never probed yet is not taken out).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed) != DOWN
    }

    pub fn status(&self) -> Status {
        match self.up.load(Ordering::Relaxed) {
            UP => Status::Up,
            DOWN => Status::Down,
            _ => Status::Unknown,
        }
    }

    pub(crate) fn publish(&self, s: Status) {
        self.up.store(
            match s {
                Status::Up => UP,
                Status::Down => DOWN,
                Status::Unknown => UNKNOWN,
            },
            Ordering::Relaxed,
        );
    }

    /// Whether at least one result has arrived.
    pub fn has_result(&self) -> bool {
        self.detail.locked().results > 0
    }
}

impl Default for ProbeState {
    fn default() -> Self {
        ProbeState::new()
    }
}

/// Health as the answer path sees it: operator overrides first, then the configured state, then
/// the probe's.
#[derive(Debug, Default)]
pub struct HealthView {
    /// Indexed by `EndpointId`; `None` for endpoints without a check.
    pub probes: Vec<Option<Arc<ProbeState>>>,
    /// Data center overrides, indexed by `DcId`.
    pub dc_overrides: Vec<Arc<Slot>>,
    /// Endpoint overrides, indexed by `EndpointId`.
    pub endpoint_overrides: Vec<Option<Arc<Slot>>>,
}

impl HealthView {
    /// The probe state of an endpoint, if it has a check.
    pub fn probe(&self, e: &Endpoint) -> Option<&Arc<ProbeState>> {
        self.probes.get(e.id.0 as usize).and_then(Option::as_ref)
    }

    /// The view of `dcs`: their probes (indexed by `EndpointId`) and their overrides.
    pub fn new(
        probes: Vec<Option<Arc<ProbeState>>>,
        overrides: &Overrides,
        dcs: &[Datacenter],
    ) -> HealthView {
        let (dc_overrides, endpoint_overrides) = overrides.slots_for(dcs);
        HealthView {
            probes,
            dc_overrides,
            endpoint_overrides,
        }
    }

    /// The same view without endpoint overrides, for health events: an operator's drain of an
    /// endpoint is an event of its own, not a change of health. Data center overrides stay, so
    /// that an event can say one holds.
    pub fn without_endpoint_overrides(&self) -> HealthView {
        HealthView {
            probes: self.probes.clone(),
            dc_overrides: self.dc_overrides.clone(),
            endpoint_overrides: Vec::new(),
        }
    }

    /// An endpoint's override.
    pub fn endpoint_override(&self, e: &Endpoint) -> Forced {
        self.endpoint_overrides
            .get(e.id.0 as usize)
            .and_then(Option::as_ref)
            .map(|s| s.get())
            .unwrap_or_default()
    }
}

impl HealthView {
    /// Whether the endpoint's checks pass, overrides and its configured state left out: an
    /// endpoint with no check passes.
    pub fn endpoint_checks_up(&self, e: &Endpoint) -> bool {
        self.probe(e).is_none_or(|p| p.is_up())
    }
}

impl crate::select::Health for HealthView {
    fn endpoint_up(&self, _dc: DcId, e: &Endpoint) -> bool {
        match self.endpoint_override(e).verdict() {
            Some(v) => v,
            None => e.configured_up && self.endpoint_checks_up(e),
        }
    }

    fn dc_forced(&self, dc: DcId) -> Forced {
        self.dc_overrides
            .get(usize::from(dc.0))
            .map(|s| s.get())
            .unwrap_or_default()
    }

    fn dc_weight(&self, dc: DcId) -> Option<u32> {
        self.dc_overrides.get(usize::from(dc.0)).and_then(|s| s.weight())
    }

    fn endpoint_note(&self, _dc: DcId, e: &Endpoint) -> Option<String> {
        let forced = self.endpoint_override(e);
        if forced != Forced::Auto {
            return Some(format!("override: {}", forced.as_str()));
        }
        if !e.configured_up {
            return Some("state: down in the configuration".into());
        }
        let p = self.probes.get(e.id.0 as usize)?.as_ref()?;
        if let Some(decision) = p.decision.locked().clone() {
            return cluster_note(p, &decision);
        }
        let d = p.detail.locked().clone();
        let since = humantime_ago(d.since);
        match d.counter.status {
            Status::Down => Some(format!(
                "down since {since} ago: {}",
                d.last_error.unwrap_or_else(|| "failing".into())
            )),
            Status::Up if d.last_ok == Some(false) => Some(format!(
                "up since {since} ago, last probe failed: {}",
                d.last_error.unwrap_or_default()
            )),
            Status::Unknown => Some("not probed yet (treated as up)".into()),
            Status::Up => None,
        }
    }
}

/// The note of a target the cluster decides on, when there is something to say: taken out by
/// quorum, kept by quorum although this node sees it down, or decided alone.
fn cluster_note(p: &ProbeState, decision: &Decision) -> Option<String> {
    let own = p.detail.locked().counter.status;
    match (decision.tally.verdict, own) {
        (Status::Down, _) if decision.alone => Some(format!("down: {}", decision.describe())),
        (Status::Down, _) => Some(format!("down by {}", decision.describe())),
        (Status::Up, Status::Down) => Some(format!("up by {} (this node sees it down)", decision.describe())),
        (Status::Unknown, _) => Some("not probed yet (treated as up)".into()),
        _ => None,
    }
}

fn humantime_ago(t: SystemTime) -> String {
    let d = SystemTime::now().duration_since(t).unwrap_or_default();
    if d.as_secs() >= 120 {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_table() {
        // (results, rise, fall, statuses after each result)
        use Status::*;
        let cases: &[(&str, u32, u32, &[Status])] = &[
            ("1", 2, 2, &[Up]),
            ("0", 2, 2, &[Down]),
            ("1101", 2, 2, &[Up, Up, Up, Up]),
            ("1001", 2, 2, &[Up, Up, Down, Down]),
            ("10011", 2, 2, &[Up, Up, Down, Down, Up]),
            ("1010101", 2, 2, &[Up, Up, Up, Up, Up, Up, Up]), // flapping faster than the thresholds
            ("100", 3, 3, &[Up, Up, Up]),
            ("1000", 3, 3, &[Up, Up, Up, Down]),
            ("10", 1, 1, &[Up, Down]),
        ];
        for (results, rise, fall, want) in cases {
            let mut c = Counter::default();
            let got: Vec<Status> = results
                .chars()
                .map(|r| {
                    observe(&mut c, r == '1', *rise, *fall);
                    c.status
                })
                .collect();
            assert_eq!(&got, want, "{results} rise {rise} fall {fall}");
        }
    }

    #[test]
    fn ballots_put_this_node_first_and_name_live_nodes_without_a_view() {
        let view = |node: &str, status| quorum::View {
            node: node.into(),
            status,
            since: SystemTime::UNIX_EPOCH,
            reason: (status == Status::Down).then(|| "refused".into()),
            latency: None,
        };
        let rule = crate::config::Quorum::Majority;
        // The decision lists this node's view first, the others by name; "m" is live but has
        // no view yet, "a" is live and this node has no result yet.
        let views = vec![view("c", Status::Down), view("b", Status::Up)];
        let decision = Decision {
            node: "m".into(),
            rule,
            tally: quorum::tally(rule, &views),
            views,
            alone: false,
        };
        let got: Vec<(String, Status, bool, bool)> = decision
            .ballots("m", ["a", "b", "c", "m"])
            .into_iter()
            .map(|b| (b.node, b.status, b.since.is_some(), b.this))
            .collect();
        assert_eq!(
            got,
            [
                ("m".into(), Status::Unknown, false, true),
                ("a".into(), Status::Unknown, false, false),
                ("b".into(), Status::Up, true, false),
                ("c".into(), Status::Down, true, false),
            ]
        );
        // A node gone from the live set still shows while its view counts.
        let names: Vec<String> = decision.ballots("b", []).into_iter().map(|b| b.node).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(Decision::none(rule, "m").tally.verdict, Status::Unknown);
    }

    #[test]
    fn observe_reports_only_changes() {
        let mut c = Counter::default();
        assert_eq!(observe(&mut c, true, 2, 2), Some(Status::Up));
        assert_eq!(observe(&mut c, true, 2, 2), None);
        assert_eq!(observe(&mut c, false, 2, 2), None);
        assert_eq!(observe(&mut c, false, 2, 2), Some(Status::Down));
    }
}
