//! Runs every distinct probe once per interval (with jitter), bounded in concurrency, and turns
//! results into state through `observe`. Probes of removed endpoints stop at reload; new ones
//! start at once. Nothing here is on the DNS path: the answer path only reads atomics.

use super::probe::{Report, Runner, Target, Tls};
use super::quorum::{View, tally};
use super::{Counter, Decision, HealthView, ProbeState, Status, observe};
use crate::config::Quorum;
use crate::events::Events;
use crate::lock::LockExt;
use crate::metrics::Metrics;
use crate::model::gslb::{Datacenter, DcId, DcState};
use crate::select::Health as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_concurrent: usize,
    pub partition_guard: bool,
}

struct Running {
    id: u64,
    state: Arc<ProbeState>,
    cancel: CancellationToken,
}

/// The running probes, by target and by target key (`Target::key`, the name the cluster knows a
/// target by), so that a peer's view or a published key finds its probe without a scan.
#[derive(Default)]
struct Probes {
    by_target: HashMap<Target, Running>,
    /// A key names one target: a check whose settings change gets a new target under the same
    /// key, which replaces the old one here as `sync` starts it.
    by_key: HashMap<String, Target>,
}

impl Probes {
    fn by_key(&self, key: &str) -> Option<(&Target, &Running)> {
        let target = self.by_key.get(key)?;
        Some((target, self.by_target.get(target)?))
    }
}

/// The partition guard: when no target has answered since a probe began failing, this node is
/// more likely cut off than every region down. Down transitions are then held, and an alarm
/// raised, until some probe succeeds again.
#[derive(Default)]
pub struct Guard {
    enabled: bool,
    last_success: Mutex<HashMap<u64, Instant>>,
    engaged: AtomicBool,
    /// How many times the guard has engaged (a metric).
    alarms: AtomicU64,
}

impl Guard {
    fn success(&self, id: u64, events: &Events, target: &Target) {
        self.last_success.locked().insert(id, Instant::now());
        if self.engaged.swap(false, Ordering::Relaxed) {
            events.emit(
                "partition-guard",
                "engaged",
                "clear",
                format!("{target} answered"),
            );
        }
    }

    /// Whether a down transition of probe `id`, failing since `since`, must be held.
    fn holds(&self, id: u64, since: Instant) -> bool {
        if !self.enabled {
            return false;
        }
        let last = self.last_success.locked();
        let others = last.keys().filter(|k| **k != id).count();
        // With one target there is nothing to compare with: the guard cannot tell.
        others > 0 && !last.iter().any(|(k, t)| *k != id && *t >= since)
    }

    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Relaxed)
    }

    /// How many times the guard has engaged since the start.
    pub fn alarms(&self) -> u64 {
        self.alarms.load(Ordering::Relaxed)
    }
}

/// This node as one of a cluster's: the others' views, and how the verdict is reached.
struct Votes {
    node: String,
    rule: Quorum,
    /// The other nodes' views, by target key, then node.
    peers: HashMap<String, BTreeMap<String, View>>,
    /// The live nodes (with a `nodes/` key in etcd): only their views count.
    live: BTreeSet<String>,
    /// Since when this node cannot reach etcd: the others' views are as of then.
    cut: Option<SystemTime>,
}

/// What data center events are computed from.
#[derive(Default)]
struct DcView {
    dcs: Vec<Datacenter>,
    health: Arc<HealthView>,
    /// Last known state per data center.
    last: HashMap<Box<str>, DcState>,
}

/// The probe scheduler. One per process; `sync` is called at start and at every reload.
pub struct Scheduler {
    tls: Arc<Tls>,
    events: Arc<Events>,
    limit: Arc<Semaphore>,
    guard: Guard,
    running: Mutex<Probes>,
    next_id: AtomicU64,
    stop: CancellationToken,
    tracker: TaskTracker,
    /// The data centers and endpoint states as of the last `sync`, for data center events.
    view: Mutex<DcView>,
    metrics: Arc<Metrics>,
    /// In cluster mode: the votes the verdicts are counted from.
    votes: Mutex<Option<Votes>>,
    /// Targets whose own view changed (or stopped) and is not yet published to the cluster.
    unpublished: Mutex<BTreeSet<String>>,
    /// Woken when `unpublished` grows.
    to_publish: tokio::sync::Notify,
}

impl Scheduler {
    pub fn new(
        settings: Settings,
        events: Arc<Events>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            metrics,
            tls: Tls::new(),
            events,
            limit: Arc::new(Semaphore::new(settings.max_concurrent)),
            guard: Guard {
                enabled: settings.partition_guard,
                ..Guard::default()
            },
            running: Mutex::default(),
            next_id: AtomicU64::new(1),
            stop,
            tracker: TaskTracker::new(),
            view: Mutex::new(DcView::default()),
            votes: Mutex::new(None),
            unpublished: Mutex::default(),
            to_publish: tokio::sync::Notify::new(),
        })
    }

    /// Makes the running probes match `dcs`: new targets start at once, targets no endpoint
    /// uses any more stop, the rest keep their state. Returns each endpoint's probe, indexed by
    /// `EndpointId` (`None` without a check).
    pub fn sync(self: &Arc<Self>, dcs: &[Datacenter]) -> Vec<Option<Arc<ProbeState>>> {
        let mut running = self.running.locked();
        let mut wanted: HashMap<Target, ()> = HashMap::new();
        let mut started = Vec::new();
        let count = dcs.iter().map(|d| d.endpoints.len()).sum::<usize>();
        let mut probes = vec![
            None;
            dcs.iter()
                .flat_map(|d| &d.endpoints)
                .map(|e| e.id.0 as usize + 1)
                .max()
                .unwrap_or(count)
        ];
        for e in dcs.iter().flat_map(|d| &d.endpoints) {
            let Some(check) = &e.check else { continue };
            let target = Target {
                addr: e.probe_target(),
                check: check.clone(),
            };
            let state = match running.by_target.get(&target) {
                Some(r) => r.state.clone(),
                None => {
                    let state = Arc::new(ProbeState::new());
                    let cancel = self.stop.child_token();
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let runner = Runner::new(target.clone(), &self.tls);
                    self.tracker
                        .spawn(self.clone().probe_loop(id, runner, state.clone(), cancel.clone()));
                    running.by_key.insert(target.key(), target.clone());
                    running.by_target.insert(
                        target.clone(),
                        Running {
                            id,
                            state: state.clone(),
                            cancel,
                        },
                    );
                    tracing::debug!(%target, "probe started");
                    started.push((target.clone(), state.clone()));
                    state
                }
            };
            wanted.insert(target, ());
            probes[e.id.0 as usize] = Some(state);
        }
        let before = self.unpublished.locked().len();
        let Probes { by_target, by_key } = &mut *running;
        by_target.retain(|target, r| {
            let keep = wanted.contains_key(target);
            if !keep {
                r.cancel.cancel();
                self.guard.last_success.locked().remove(&r.id);
                let key = target.key();
                if by_key.get(&key) == Some(target) {
                    by_key.remove(&key);
                }
                self.unpublished.locked().insert(key);
                tracing::debug!(%target, "probe stopped");
            }
            keep
        });
        if self.unpublished.locked().len() > before {
            self.to_publish.notify_one();
        }
        drop(running);
        if self.votes.locked().is_some() {
            // The other nodes' views of a new target count before this node's first result.
            for (target, state) in &started {
                self.decide(target, state);
            }
        }
        probes
    }

    /// The health view of `dcs` now serving (probes and data center overrides; without endpoint
    /// overrides, which are events of their own): data center events compare its verdicts from
    /// here on.
    pub fn watch(&self, dcs: &[Datacenter], health: Arc<HealthView>) {
        let mut v = self.view.locked();
        v.dcs = dcs.to_vec();
        v.health = health;
        v.last = dc_states(&v.dcs, &v.health);
    }

    /// The partition guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Number of distinct probes running.
    pub fn probe_count(&self) -> usize {
        self.running.locked().by_target.len()
    }

    /// Waits until every probe has a first result, or `wait` has passed.
    pub async fn first_round(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let pending = {
                let r = self.running.locked();
                r.by_target.values().filter(|p| !p.state.has_result()).count()
            };
            if pending == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(pending, "starting before every probe has reported");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.settle_first_round();
    }

    fn raise_alarm(&self, why: &str) {
        self.guard.alarms.fetch_add(1, Ordering::Relaxed);
        tracing::error!("partition guard: {why}; this node looks cut off, holding the last known health");
        self.events.emit(
            "partition-guard",
            "clear",
            "engaged",
            format!("{why}: this node looks cut off; health held"),
        );
    }

    /// After the first round: targets whose first probe failed while no other had answered yet
    /// were held as unknown. If any target answered in the round, they are really down; if none
    /// did, this node is cut off and they stay unknown (treated as up) with the alarm raised.
    fn settle_first_round(&self) {
        let running = self.running.locked();
        let any_success = !self.guard.last_success.locked().is_empty();
        let mut changed: Vec<(Target, Arc<ProbeState>, String)> = Vec::new();
        for (target, r) in running.by_target.iter() {
            let mut d = r.state.detail.locked();
            if d.counter.status != Status::Unknown || d.last_ok != Some(false) {
                continue;
            }
            if !any_success {
                if self.guard.enabled && !self.guard.engaged.swap(true, Ordering::Relaxed) {
                    self.raise_alarm("no target answered in the first round of health checks");
                }
                continue;
            }
            d.counter = Counter {
                status: Status::Down,
                streak: 0,
            };
            d.since = SystemTime::now();
            changed.push((
                target.clone(),
                r.state.clone(),
                d.last_error.clone().unwrap_or_default(),
            ));
        }
        drop(running);
        for (target, state, why) in changed {
            self.transition(&target, &state, Status::Unknown, Status::Down, why);
        }
        self.datacenter_events();
    }

    /// Stops every probe and waits for them.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn probe_loop(
        self: Arc<Self>,
        id: u64,
        runner: Runner,
        state: Arc<ProbeState>,
        cancel: CancellationToken,
    ) {
        let interval = runner.target.check.interval;
        let mut rng = crate::rng::Entropy::new();
        let mut first = true;
        loop {
            if !first {
                // Jitter: after the first round, spread probes over the interval, then keep
                // each within ±10% of it.
                let factor = if state.detail.locked().results == 1 {
                    crate::rng::unit(rng.draw())
                } else {
                    0.9 + 0.2 * crate::rng::unit(rng.draw())
                };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(interval.mul_f64(factor)) => {}
                }
            }
            first = false;
            let permit = tokio::select! {
                _ = cancel.cancelled() => return,
                p = self.limit.clone().acquire_owned() => p,
            };
            let report = tokio::select! {
                _ = cancel.cancelled() => return,
                o = runner.run() => o,
            };
            drop(permit);
            self.record(id, &runner.target, &state, report);
        }
    }

    fn record(&self, id: u64, target: &Target, state: &ProbeState, report: Report) {
        let check = &target.check;
        self.metrics.probe(check.kind.as_str(), report.ok, report.latency);
        if report.ok {
            self.guard.success(id, &self.events, target);
        }
        let mut d = state.detail.locked();
        d.results += 1;
        d.last_checked = Some(SystemTime::now());
        d.last_latency = Some(report.latency);
        d.last_ok = Some(report.ok);
        if report.ok {
            d.failing_since = None;
        } else {
            d.last_error = report.error.clone();
            d.failing_since.get_or_insert_with(Instant::now);
        }
        let old = d.counter;
        let mut next = d.counter;
        let Some(new) = observe(&mut next, report.ok, check.rise.get(), check.fall.get()) else {
            d.counter = next;
            return;
        };
        if new == Status::Down && d.failing_since.is_some_and(|since| self.guard.holds(id, since)) {
            // Hold the last known state, counting the failure: the next one tries again. The
            // first hold can be a race with another target's next success; a hold that lasts
            // a second attempt is the alarm.
            d.counter = Counter {
                status: old.status,
                streak: old.streak + 1,
            };
            let second_attempt = old.status == Status::Up && d.counter.streak > check.fall.get();
            if second_attempt && !self.guard.engaged.swap(true, Ordering::Relaxed) {
                self.raise_alarm(&format!("no target answered since {target} began failing"));
            }
            return;
        }
        d.counter = next;
        d.since = SystemTime::now();
        let reason = match (new, &report.error) {
            (Status::Down, Some(e)) => e.clone(),
            (Status::Up, _) if old.status == Status::Unknown => "first probe succeeded".to_string(),
            (Status::Down, None) => "failed".to_string(),
            _ => format!("{} consecutive successes", check.rise),
        };
        drop(d);
        self.transition(target, state, old.status, new, reason);
        self.datacenter_events();
    }

    /// This node's view of `target` changed from `old` to `new`. Alone, that is the verdict; in
    /// a cluster it is one vote, published to the others and counted at once.
    fn transition(&self, target: &Target, state: &ProbeState, old: Status, new: Status, reason: String) {
        let node = self.votes.locked().as_ref().map(|v| v.node.clone());
        let Some(node) = node else {
            state.publish(new);
            self.events
                .emit(format!("target {target}"), old.as_str(), new.as_str(), reason);
            return;
        };
        self.events.emit(
            format!("target {target} seen from {node}"),
            old.as_str(),
            new.as_str(),
            reason,
        );
        self.unpublished.locked().insert(target.key());
        self.to_publish.notify_one();
        self.decide(target, state);
    }

    /// Counts the votes on `target` and publishes the verdict; an event when it changed. In
    /// file mode this node's view is the verdict.
    fn decide(&self, target: &Target, state: &ProbeState) {
        let votes = self.votes.locked();
        let Some(votes) = votes.as_ref() else {
            state.publish(state.detail.locked().counter.status);
            return;
        };
        let own = own_view(&votes.node, &state.detail.locked());
        let alone = votes
            .cut
            .is_some_and(|cut| own.as_ref().is_some_and(|o| o.since > cut));
        let mut views: Vec<View> = own.into_iter().collect();
        if !alone && let Some(peers) = votes.peers.get(&target.key()) {
            views.extend(
                peers
                    .iter()
                    .filter(|(node, _)| votes.live.contains(*node))
                    .map(|(_, v)| v.clone()),
            );
        }
        let tally = tally(votes.rule, &views);
        let decision = Decision {
            node: votes.node.clone(),
            rule: votes.rule,
            tally,
            views,
            alone,
        };
        let old = state.status();
        state.publish(tally.verdict);
        if old != tally.verdict {
            self.events.emit(
                format!("target {target}"),
                old.as_str(),
                tally.verdict.as_str(),
                decision.describe(),
            );
        }
        *state.decision.locked() = Some(decision);
    }

    /// Counts the votes on every target again (the rule, the others' views or the link to
    /// etcd changed).
    fn decide_all(&self) {
        let probes: Vec<(Target, Arc<ProbeState>)> = self
            .running
            .locked()
            .by_target
            .iter()
            .map(|(t, r)| (t.clone(), r.state.clone()))
            .collect();
        for (target, state) in &probes {
            self.decide(target, state);
        }
        self.datacenter_events();
    }

    // === cluster mode: the exchange with the other nodes (driven by `control::cluster`) ===

    /// Makes this node `node` of a cluster deciding by `rule` (at start, and at every reload:
    /// the rule may change).
    pub fn join_cluster(&self, node: &str, rule: Quorum) {
        {
            let mut votes = self.votes.locked();
            match votes.as_mut() {
                Some(v) if v.node == node && v.rule == rule => return,
                Some(v) => {
                    v.node = node.to_string();
                    v.rule = rule;
                }
                None => {
                    *votes = Some(Votes {
                        node: node.to_string(),
                        rule,
                        peers: HashMap::new(),
                        live: BTreeSet::new(),
                        cut: None,
                    })
                }
            }
        }
        self.decide_all();
    }

    /// This node's view of every target it has a result for, by target key: what it publishes
    /// whole when its lease is new.
    pub fn own_views(&self) -> Vec<(String, View)> {
        let Some(node) = self.votes.locked().as_ref().map(|v| v.node.clone()) else {
            return Vec::new();
        };
        let running = self.running.locked();
        running
            .by_key
            .keys()
            .filter_map(|key| {
                let (_, r) = running.by_key(key)?;
                Some((key.clone(), own_view(&node, &r.state.detail.locked())?))
            })
            .collect()
    }

    /// Whether the target named `key` is probed.
    pub fn probes(&self, key: &str) -> bool {
        self.running.locked().by_key.contains_key(key)
    }

    /// This node's view of the target named `key`, when probed and with a result.
    pub fn own_view(&self, key: &str) -> Option<View> {
        let node = self.votes.locked().as_ref()?.node.clone();
        let running = self.running.locked();
        let (_, r) = running.by_key(key)?;
        own_view(&node, &r.state.detail.locked())
    }

    /// Waits until some view is left to publish.
    pub async fn unpublished(&self) {
        let pending = self.to_publish.notified();
        if self.unpublished.locked().is_empty() {
            pending.await;
        }
    }

    /// Takes the targets whose own view changed since the last call, with the view now (`None`:
    /// no longer probed, or no result: its report is removed).
    pub fn take_unpublished(&self) -> Vec<(String, Option<View>)> {
        let keys = std::mem::take(&mut *self.unpublished.locked());
        if keys.is_empty() {
            return Vec::new();
        }
        let mut views: HashMap<String, View> = self.own_views().into_iter().collect();
        keys.into_iter()
            .map(|k| {
                let v = views.remove(&k);
                (k, v)
            })
            .collect()
    }

    /// Puts back views that could not be published, to be tried again.
    pub fn republish(&self, keys: impl IntoIterator<Item = String>) {
        self.unpublished.locked().extend(keys);
    }

    /// Another node's view of a target changed (`None`: withdrawn, or its lease expired).
    pub fn peer_view(&self, node: &str, target: &str, view: Option<View>) {
        {
            let mut votes = self.votes.locked();
            let Some(votes) = votes.as_mut() else { return };
            if node == votes.node {
                return;
            }
            let entry = votes.peers.entry(target.to_string()).or_default();
            let changed = match view {
                Some(v) => entry.insert(node.to_string(), v.clone()).as_ref() != Some(&v),
                None => entry.remove(node).is_some(),
            };
            if entry.is_empty() {
                votes.peers.remove(target);
            }
            if !changed {
                return;
            }
        }
        let probe = self
            .running
            .locked()
            .by_key(target)
            .map(|(t, r)| (t.clone(), r.state.clone()));
        if let Some((t, state)) = probe {
            self.decide(&t, &state);
            self.datacenter_events();
        }
    }

    /// The live nodes: only their views count (a view left without its node, by a tool or a
    /// restored backup, does not).
    pub fn live_nodes(&self, nodes: BTreeSet<String>) {
        {
            let mut votes = self.votes.locked();
            let Some(votes) = votes.as_mut() else { return };
            if votes.live == nodes {
                return;
            }
            votes.live = nodes;
        }
        self.decide_all();
    }

    /// Every other node's views at once (read whole from etcd), replacing those known.
    pub fn peer_views(&self, views: Vec<(String, String, View)>) {
        {
            let mut votes = self.votes.locked();
            let Some(votes) = votes.as_mut() else { return };
            votes.peers.clear();
            for (node, target, view) in views {
                if node != votes.node {
                    votes.peers.entry(target).or_default().insert(node, view);
                }
            }
        }
        self.decide_all();
    }

    /// Whether this node can reach etcd. Cut off, it keeps the others' last views (so the
    /// last verdicts) and decides alone on targets whose own view changes from then on;
    /// reconnected, the views it reads again count.
    pub fn set_cut(&self, cut: bool) {
        {
            let mut votes = self.votes.locked();
            let Some(votes) = votes.as_mut() else { return };
            match (cut, votes.cut) {
                (true, None) => votes.cut = Some(SystemTime::now()),
                (false, Some(_)) => votes.cut = None,
                _ => return,
            }
        }
        self.decide_all();
    }

    /// Emits an event for every data center whose endpoints' health changed its verdict. An
    /// override in force is named: the answers do not change while it holds.
    fn datacenter_events(&self) {
        let mut v = self.view.locked();
        let now = dc_states(&v.dcs, &v.health);
        for (name, state) in &now {
            let Some(was) = v.last.get(name) else { continue };
            if was.checks_up() == state.checks_up() {
                continue;
            }
            let (old, new) = if state.checks_up() {
                ("down", "up")
            } else {
                ("up", "down")
            };
            let mut reason = format!(
                "endpoint health changed: {} endpoints up, min_healthy {}",
                state.healthy, state.min_healthy
            );
            if state.is_forced() {
                reason.push_str(&format!(
                    "; {} by override, so answers do not change",
                    state.reason.as_str()
                ));
            }
            self.events.emit(format!("datacenter {name}"), old, new, reason);
        }
        v.last = now;
    }
}

/// This node's view of a target, when it has a result.
fn own_view(node: &str, d: &super::Detail) -> Option<View> {
    matches!(d.counter.status, Status::Up | Status::Down).then(|| View {
        node: node.to_string(),
        status: d.counter.status,
        since: d.since,
        reason: (d.counter.status == Status::Down)
            .then(|| d.last_error.clone().unwrap_or_else(|| "failing".into())),
        latency: d.last_latency,
    })
}

fn dc_states(dcs: &[Datacenter], view: &HealthView) -> HashMap<Box<str>, DcState> {
    dcs.iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), view.dc_state(DcId(i as u16), d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gslb::{Check, CheckKind, DcLocation, Endpoint, EndpointId};
    use std::num::{NonZeroU32, NonZeroUsize};

    fn check(interval_ms: u64) -> Arc<Check> {
        Arc::new(Check {
            name: "web".into(),
            kind: CheckKind::Tcp,
            port: 9,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(50),
            rise: NonZeroU32::MIN,
            fall: NonZeroU32::MIN,
        })
    }

    fn dcs(check: &Arc<Check>, addrs: &[&str]) -> Vec<Datacenter> {
        let endpoints = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| Endpoint {
                id: EndpointId(i as u32),
                address: a.parse().unwrap(),
                weight: NonZeroU32::MIN,
                configured_up: true,
                check: Some(check.clone()),
                probe_address: None,
            })
            .collect();
        vec![Datacenter {
            name: "eu".into(),
            location: DcLocation::default(),
            endpoints,
            min_healthy: NonZeroUsize::MIN,
        }]
    }

    #[tokio::test]
    async fn probes_are_found_by_key_across_a_change_of_their_check() {
        let stop = CancellationToken::new();
        let s = Scheduler::new(
            Settings {
                max_concurrent: 4,
                partition_guard: false,
            },
            Arc::new(Events::new(16)),
            Arc::new(Metrics::default()),
            stop.clone(),
        );
        s.sync(&dcs(&check(100), &["127.0.0.1", "127.0.0.2"]));
        assert!(s.probes("web/127.0.0.1") && s.probes("web/127.0.0.2"));
        assert!(!s.probes("web/127.0.0.3") && !s.probes("db/127.0.0.1"));

        // The check's settings change: a new target under the same key replaces the old one.
        let before = s.running.locked().by_key.get("web/127.0.0.1").cloned().unwrap();
        s.sync(&dcs(&check(200), &["127.0.0.1"]));
        let running = s.running.locked();
        let now = running.by_key.get("web/127.0.0.1").cloned().unwrap();
        assert_ne!(before, now, "the key names the new target");
        assert_eq!(now.check.interval, Duration::from_millis(200));
        assert_eq!(running.by_target.len(), 1);
        assert_eq!(running.by_key.len(), 1, "a stopped target leaves no key behind");
        drop(running);
        assert!(s.probes("web/127.0.0.1") && !s.probes("web/127.0.0.2"));
        stop.cancel();
    }
}
