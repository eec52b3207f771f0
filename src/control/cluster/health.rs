//! The health exchange of cluster mode. Each node publishes its own view of every probe target
//! under `health/<node>/`, and says it is live under `nodes/<node>`, all bound to one lease of
//! its own: only changes of view are written, plus one keep-alive per third of the lease's TTL,
//! so etcd's load does not grow with the probe rate. A node that stops, or loses etcd, drops
//! out of every quorum when its lease expires (etcd deletes its keys); a node started again
//! before that takes its lease back, so that a restart changes no verdict. Each node follows
//! the others' views with a watch and hands them to the scheduler, which counts the votes.
//!
//! Cut off from etcd, the node keeps the others' last views and decides alone on the targets
//! whose own view changes from then on (`Scheduler::set_cut`).

use super::Link;
use crate::cluster::etcd::{Change, EtcdError, Expect, LeaseId, Write};
use crate::cluster::keys::{HealthReport, Key, NodeRecord, health_prefix};
use crate::control::Control;
use crate::events::{parse_rfc3339, rfc3339};
use crate::health::Status;
use crate::health::quorum::View;
use crate::lock::LockExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Writes per transaction when publishing many views at once (etcd allows 128 by default).
const WRITES_PER_TXN: usize = 64;

/// The health exchange's part of the link.
#[derive(Default)]
pub(super) struct Exchange {
    /// The lease this node's keys are bound to, while it has one.
    lease: std::sync::Mutex<Option<LeaseId>>,
    /// The live nodes, as their `nodes/` keys say (this one included).
    nodes: std::sync::Mutex<BTreeMap<String, NodeRecord>>,
    /// Set once the others' views have been read whole (the first verdicts count them).
    read: tokio::sync::watch::Sender<bool>,
    /// Woken when this node's `nodes/` record must be written again (its rule changed, or
    /// someone deleted it).
    record: tokio::sync::Notify,
    /// When this node joined (its record says so), kept across rewrites of the record.
    started: std::sync::Mutex<Option<String>>,
    /// Set once the probes of the configuration served are started: what this node publishes
    /// is compared with etcd only then (before, every target looks unprobed).
    probing: tokio::sync::watch::Sender<bool>,
}

/// Why serving a lease stopped.
enum Stopped {
    Etcd(EtcdError),
    /// Another live node has this node's name.
    NameTaken,
}

impl From<EtcdError> for Stopped {
    fn from(e: EtcdError) -> Self {
        Stopped::Etcd(e)
    }
}

impl Link {
    /// `state_dir/cluster/lease`: the lease of this node's last run, revoked at the next start
    /// so that its views go at once rather than when it expires.
    fn lease_file(&self) -> PathBuf {
        self.cache.dir().join("lease")
    }

    pub(in crate::control) fn node(&self) -> &str {
        &self.settings.node
    }

    fn health_key(&self, target: &str) -> Vec<u8> {
        Key::Health {
            node: self.node().to_string(),
            target: target.to_string(),
        }
        .under(self.prefix())
    }
}

impl Control {
    /// After a reload: the votes are counted by `quorum` (the node keeps the name it started
    /// with).
    pub(in crate::control) fn count_by(&self, quorum: crate::config::Quorum) {
        let Some(link) = self.link() else { return };
        self.scheduler.join_cluster(link.node(), quorum);
    }

    /// The probes of the configuration served are started (see `Exchange::probing`).
    pub(in crate::control) fn probes_started(&self) {
        if let Some(link) = self.link() {
            link.exchange.probing.send_replace(true);
        }
    }

    /// After a reload that changed the rule: this node's record says the new one.
    pub(in crate::control) fn rule_changed(&self) {
        if let Some(link) = self.link() {
            link.exchange.record.notify_one();
        }
    }

    /// The live nodes of the cluster (their names and records), in cluster mode.
    pub fn cluster_nodes(&self) -> BTreeMap<String, NodeRecord> {
        self.link()
            .map(|l| l.exchange.nodes.locked().clone())
            .unwrap_or_default()
    }

    /// Waits (at most `wait`) until the other nodes' views have been read once.
    pub(in crate::control) async fn views_read(&self, wait: Duration) {
        let Some(link) = self.link() else { return };
        let mut read = link.exchange.read.subscribe();
        if tokio::time::timeout(wait, read.wait_for(|r| *r)).await.is_err() {
            tracing::warn!(
                "the other nodes' health views are not read yet: this node's own views decide until they are"
            );
        }
    }

    /// Publishes this node's views and follows the others' until `stop`. The lease is left to
    /// expire: a node started again within `lease_ttl` takes it back, and its views count
    /// throughout (`etcdctl lease revoke` withdraws a node retired for good at once).
    pub async fn exchange_health(self: Arc<Self>, stop: CancellationToken) {
        let Some(link) = self.link() else { return };
        let mut backoff = Duration::from_millis(100);
        let mut name_taken_said = false;
        loop {
            // Only while the watch of the shared state is up (see `Link::watching`).
            let mut watching = link.watching.subscribe();
            let ready = watching.wait_for(|n| n % 2 == 1);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ready => {}
            }
            let stopped = tokio::select! {
                _ = stop.cancelled() => break,
                s = self.serve_lease(link) => s,
            };
            match stopped {
                Stopped::NameTaken => {
                    if !name_taken_said {
                        let why = format!(
                            "another live node is named {}: this node's health views are not shared until it goes (give each node its own cluster.node)",
                            link.node()
                        );
                        tracing::error!("{why}");
                        self.events
                            .emit(format!("node {}", link.node()), "", "refused", why);
                        name_taken_said = true;
                    }
                    backoff = link.settings.lease_ttl;
                }
                Stopped::Etcd(EtcdError::LeaseGone(_)) => {
                    tracing::warn!(
                        "this node's lease expired (etcd was out of reach longer than cluster.etcd.lease_ttl): granting a new one and publishing every view again"
                    );
                    *link.exchange.lease.locked() = None;
                    continue;
                }
                // The history the watch needs is gone: read the views whole again.
                Stopped::Etcd(EtcdError::Compacted { .. }) => continue,
                Stopped::Etcd(e) => {
                    tracing::warn!(error = %e, "health exchange with etcd interrupted: the others' last views and this node's own changes decide meanwhile");
                    self.scheduler.set_cut(true);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Holds a lease: takes (or keeps) one, reads the others' views whole, publishes this
    /// node's, then keeps the lease alive, publishes changes and follows the others' until
    /// something fails.
    async fn serve_lease(&self, link: &Link) -> Stopped {
        match self.hold_lease(link).await {
            Ok(never) => match never {},
            Err(stopped) => stopped,
        }
    }

    async fn hold_lease(&self, link: &Link) -> Result<std::convert::Infallible, Stopped> {
        let lease = self.lease(link).await?;
        let health = link.etcd.list(health_prefix(link.prefix()).as_bytes()).await?;
        let nodes_prefix = Key::Node(String::new()).under(link.prefix());
        let nodes = link.etcd.list(&nodes_prefix).await?;
        {
            let mut known = link.exchange.nodes.locked();
            known.clear();
            for e in &nodes.entries {
                if let Some(Ok(Key::Node(name))) = Key::parse(link.prefix(), &e.key)
                    && let Ok(record) = serde_json::from_slice::<NodeRecord>(&e.value)
                {
                    known.insert(name, record);
                }
            }
            self.scheduler.live_nodes(known.keys().cloned().collect());
        }
        let mut peers = Vec::new();
        let mut published = HashMap::new();
        for e in &health.entries {
            match link.health_entry(&e.key, Some(&e.value)) {
                Some(Entry::Peer { node, target, view }) => peers.extend(view.map(|v| (node, target, v))),
                Some(Entry::Own { target, view }) => {
                    published.insert(target, view);
                }
                None => {}
            }
        }
        self.scheduler.peer_views(peers);
        self.scheduler.set_cut(false);
        link.exchange.read.send_replace(true);
        // What etcd holds of this node's views is put right where it differs from them (a new
        // lease holds none; a restored etcd holds old ones; a hand may have deleted some):
        // once the probes of the configuration served run, not before.
        let _ = link.exchange.probing.subscribe().wait_for(|p| *p).await;
        let stale: Vec<String> = published
            .iter()
            .filter(|(target, view)| self.out_of_date(target, view.as_ref()))
            .map(|(t, _)| t.clone())
            .chain(
                self.scheduler
                    .own_views()
                    .into_iter()
                    .map(|(t, _)| t)
                    .filter(|t| !published.contains_key(t)),
            )
            .collect();
        self.scheduler.republish(stale);
        let mut health_watch = link
            .etcd
            .watch(health_prefix(link.prefix()).as_bytes(), health.revision + 1)
            .await?;
        let mut nodes_watch = link.etcd.watch(&nodes_prefix, nodes.revision + 1).await?;
        let watch_down = until_even(link.watching.subscribe());
        tokio::pin!(watch_down);
        let every = link.settings.lease_ttl / 3;
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.publish(link, lease).await?;
            tokio::select! {
                _ = self.scheduler.unpublished() => {}
                _ = keep_alive.tick() => {
                    link.etcd.keep_alive(lease).await?;
                }
                _ = link.exchange.record.notified() => self.put_record(link, lease, Expect::Any).await?,
                // Writes stop with the watch of the shared state (see `Link::watching`).
                _ = &mut watch_down => {
                    return Err(EtcdError::Unavailable("the watch of the shared state is down".into()).into());
                }
                changes = health_watch.next() => {
                    for change in changes?.changes {
                        let (key, value) = match &change {
                            Change::Put(e) => (&e.key, Some(e.value.as_slice())),
                            Change::Delete { key, .. } => (key, None),
                        };
                        match link.health_entry(key, value) {
                            Some(Entry::Peer { node, target, view }) => {
                                self.scheduler.peer_view(&node, &target, view);
                            }
                            // This node's own key changed: put right if it is not its view
                            // (its own writes read back the same).
                            Some(Entry::Own { target, view }) if self.out_of_date(&target, view.as_ref()) => {
                                self.scheduler.republish([target]);
                            }
                            Some(Entry::Own { .. }) | None => {}
                        }
                    }
                }
                changes = nodes_watch.next() => {
                    for change in changes?.changes {
                        self.node_change(link, change);
                    }
                }
            }
        }
    }

    /// Writes this node's `nodes/` record, bound to `lease`.
    async fn put_record(&self, link: &Link, lease: LeaseId, expect: Expect) -> Result<(), EtcdError> {
        let started = link
            .exchange
            .started
            .locked()
            .get_or_insert_with(|| rfc3339(SystemTime::now()))
            .clone();
        let record = NodeRecord {
            started,
            lease: lease.0,
            quorum: self.running.locked().health.quorum.to_string(),
        };
        let put = Write::PutLeased {
            key: Key::Node(link.node().to_string()).under(link.prefix()),
            value: serde_json::to_vec(&record).expect("node record serializes"),
            lease,
            expect,
        };
        link.etcd.commit(&[put]).await.map(drop)
    }

    /// This node's lease: the one it holds, or held in its last run, if etcd still has it;
    /// else a new one, with this node's `nodes/` record.
    async fn lease(&self, link: &Link) -> Result<LeaseId, Stopped> {
        let held = *link.exchange.lease.locked();
        let history = read_leases(&link.lease_file());
        // At start, the last run's: taken back while alive, so a restart changes no verdict.
        if let Some(lease) = held.or_else(|| history.last().copied()) {
            match link.etcd.keep_alive(lease).await {
                Ok(_) => {
                    if held.is_none() {
                        tracing::info!(
                            lease = lease.0,
                            "the last run's lease taken back: its views count until this run's replace them"
                        );
                        *link.exchange.lease.locked() = Some(lease);
                        self.put_record(link, lease, Expect::Any).await?;
                    }
                    return Ok(lease);
                }
                Err(EtcdError::LeaseGone(_)) => *link.exchange.lease.locked() = None,
                Err(e) => return Err(e.into()),
            }
        }
        let lease = link.etcd.grant(link.settings.lease_ttl).await?;
        let file = link.lease_file();
        if let Err(e) = write_leases(&file, &history, lease.id) {
            tracing::warn!(file = %file.display(), error = %e, "cannot record the lease: a restart will not take it back");
        }
        if let Err(e) = self.claim_record(link, lease.id, &history).await {
            // The new lease is no use without the record: given back at once.
            let _ = link.etcd.revoke(lease.id).await;
            return Err(e);
        }
        if lease.ttl != link.settings.lease_ttl {
            tracing::info!(asked = ?link.settings.lease_ttl, granted = ?lease.ttl, "etcd granted another lease TTL than asked");
        }
        tracing::info!(lease = lease.id.0, ttl = ?lease.ttl, "joined the cluster's health exchange");
        *link.exchange.lease.locked() = Some(lease.id);
        Ok(lease.id)
    }

    /// Writes this node's record under the new `lease`, where no record of the node exists. A
    /// record under a lease of an earlier run of this node (`history`; an etcd restored from a
    /// backup brings one back) is this node's own: that lease is revoked and the write tried
    /// once more. Any other record means a second node runs under this name.
    async fn claim_record(&self, link: &Link, lease: LeaseId, history: &[LeaseId]) -> Result<(), Stopped> {
        let mut taken_back = false;
        loop {
            match self.put_record(link, lease, Expect::Absent).await {
                Ok(()) => return Ok(()),
                Err(EtcdError::Conflict { .. }) if !taken_back => {
                    let key = Key::Node(link.node().to_string()).under(link.prefix());
                    let theirs = link
                        .etcd
                        .get(&key)
                        .await?
                        .and_then(|e| serde_json::from_slice::<NodeRecord>(&e.value).ok());
                    let Some(r) = theirs.filter(|r| history.contains(&LeaseId(r.lease))) else {
                        return Err(Stopped::NameTaken);
                    };
                    tracing::info!(
                        lease = r.lease,
                        "a record of this node under a lease of an earlier run (a restored etcd): revoked"
                    );
                    match link.etcd.revoke(LeaseId(r.lease)).await {
                        Ok(()) | Err(EtcdError::LeaseGone(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                    taken_back = true;
                }
                Err(EtcdError::Conflict { .. }) => return Err(Stopped::NameTaken),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether what etcd holds of this node's view of `target` (`published`) must be written
    /// again: it differs from the view, or the target is no longer probed. A target probed but
    /// without a result yet is left as it is: its first result is published.
    fn out_of_date(&self, target: &str, published: Option<&View>) -> bool {
        if !self.scheduler.probes(target) {
            return published.is_some();
        }
        match self.scheduler.own_view(target) {
            Some(now) => !same(published, Some(&now)),
            None => false,
        }
    }

    /// Writes the views that changed since the last call, bound to `lease` (a removed one is
    /// deleted). What could not be written is written again next time.
    async fn publish(&self, link: &Link, lease: LeaseId) -> Result<(), EtcdError> {
        let changed = self.scheduler.take_unpublished();
        for (i, chunk) in changed.chunks(WRITES_PER_TXN).enumerate() {
            let writes: Vec<Write> = chunk
                .iter()
                .map(|(target, view)| {
                    let key = link.health_key(target);
                    match view {
                        Some(v) => Write::PutLeased {
                            key,
                            value: serde_json::to_vec(&report(v)).expect("report serializes"),
                            lease,
                            expect: Expect::Any,
                        },
                        None => Write::Delete {
                            key,
                            expect: Expect::Any,
                        },
                    }
                })
                .collect();
            if let Err(e) = link.etcd.commit(&writes).await {
                let unwritten = &changed[i * WRITES_PER_TXN..];
                self.scheduler.republish(unwritten.iter().map(|(k, _)| k.clone()));
                return Err(e);
            }
            self.metrics
                .cluster_health_writes
                .fetch_add(writes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// A node joined or left (its lease expired, or it stopped).
    fn node_change(&self, link: &Link, change: Change) {
        let (key, record) = match change {
            Change::Put(e) => (e.key, serde_json::from_slice::<NodeRecord>(&e.value).ok()),
            Change::Delete { key, .. } => (key, None),
        };
        let Some(Ok(Key::Node(name))) = Key::parse(link.prefix(), &key) else {
            return;
        };
        if name == link.node() && record.is_none() {
            // Deleted by a hand while the lease lives (or with it: then writing it fails, and
            // a new lease is taken): put back, or the others stop counting this node.
            link.exchange.record.notify_one();
        }
        let mut nodes = link.exchange.nodes.locked();
        let before = nodes.len();
        self.record_node(&mut nodes, name, record);
        if nodes.len() != before {
            self.scheduler.live_nodes(nodes.keys().cloned().collect());
        }
    }

    fn record_node(
        &self,
        nodes: &mut BTreeMap<String, NodeRecord>,
        name: String,
        record: Option<NodeRecord>,
    ) {
        match record {
            Some(record) => {
                let ours = self.running.locked().health.quorum.to_string();
                if record.quorum != ours {
                    tracing::warn!(
                        node = name,
                        theirs = record.quorum,
                        ours,
                        "nodes decide by different health.quorum rules: their verdicts can differ"
                    );
                }
                if nodes.insert(name.clone(), record.clone()).is_none() {
                    self.events.emit(
                        format!("node {name}"),
                        "",
                        "live",
                        format!("joined the cluster (health.quorum {})", record.quorum),
                    );
                }
            }
            None => {
                if nodes.remove(&name).is_some() {
                    self.events.emit(
                        format!("node {name}"),
                        "live",
                        "gone",
                        "its lease ended (stopped, or out of reach of etcd): its views no longer count",
                    );
                }
            }
        }
    }
}

/// A health key read from etcd.
enum Entry {
    /// Another node's view (`None`: withdrawn, or a value that does not read).
    Peer {
        node: String,
        target: String,
        view: Option<View>,
    },
    /// What etcd holds of this node's own view (not counted: its fresh view is).
    Own { target: String, view: Option<View> },
}

impl Link {
    /// A health key and its value (`None`: deleted); `None` for any other key.
    fn health_entry(&self, key: &[u8], value: Option<&[u8]>) -> Option<Entry> {
        let Some(Ok(Key::Health { node, target })) = Key::parse(self.prefix(), key) else {
            return None;
        };
        let view = value.and_then(|v| {
            let read = serde_json::from_slice::<HealthReport>(v)
                .ok()
                .and_then(|r| view(&node, r));
            if read.is_none() {
                tracing::warn!(
                    node,
                    target,
                    "a health report that does not read: its vote is left out"
                );
            }
            read
        });
        Some(if node == self.node() {
            Entry::Own { target, view }
        } else {
            Entry::Peer { node, target, view }
        })
    }
}

/// Whether what etcd holds of this node's view says what the view says (the latency at the
/// time aside: it is not a change).
fn same(published: Option<&View>, now: Option<&View>) -> bool {
    match (published, now) {
        (Some(p), Some(n)) => p.status == n.status && p.reason == n.reason && same_instant(p.since, n.since),
        (None, None) => true,
        _ => false,
    }
}

/// Equal to the millisecond, as RFC 3339 in reports keeps them.
fn same_instant(a: SystemTime, b: SystemTime) -> bool {
    rfc3339(a) == rfc3339(b)
}

/// Returns once the count is even (the watch of the shared state is down).
async fn until_even(mut count: tokio::sync::watch::Receiver<u64>) {
    loop {
        let down = (*count.borrow_and_update()).is_multiple_of(2);
        if down || count.changed().await.is_err() {
            return;
        }
    }
}

/// The leases this node's `state_dir` held, oldest first (the last is the current run's).
fn read_leases(file: &std::path::Path) -> Vec<LeaseId> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok().map(LeaseId))
        .collect()
}

/// Records `lease` after the last few of `history`.
fn write_leases(file: &std::path::Path, history: &[LeaseId], lease: LeaseId) -> std::io::Result<()> {
    const KEPT: usize = 8;
    let mut text: String = history
        .iter()
        .skip(history.len().saturating_sub(KEPT - 1))
        .map(|l| format!("{}\n", l.0))
        .collect();
    text.push_str(&format!("{}\n", lease.0));
    crate::files::write_atomic(file, text.as_bytes())
}

/// The value published for a view.
fn report(v: &View) -> HealthReport {
    HealthReport {
        state: v.status.as_str().to_string(),
        since: rfc3339(v.since),
        reason: v.reason.clone(),
        latency_ms: v.latency.map(|l| l.as_secs_f64() * 1000.0),
    }
}

/// The view a report says, when it reads.
fn view(node: &str, r: HealthReport) -> Option<View> {
    let status = match r.state.as_str() {
        "up" => Status::Up,
        "down" => Status::Down,
        _ => return None,
    };
    Some(View {
        node: node.to_string(),
        status,
        since: parse_rfc3339(&r.since)?,
        reason: r.reason,
        latency: r
            .latency_ms
            .filter(|l| l.is_finite() && *l >= 0.0)
            .and_then(|l| Duration::try_from_secs_f64(l / 1000.0).ok()),
    })
}
