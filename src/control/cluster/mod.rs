//! Cluster mode: the node follows the shared state in etcd (watch, validate, cache, publish) and
//! writes its API's changes there as transactions conditioned on what it has seen.
//!
//! Every change reaches the answer path the same way, whichever node or tool made it: through
//! the watch. A node that writes waits until its own watch has applied the write before it
//! answers, so its API reads what it wrote. What the node has applied is cached in
//! `state_dir/cluster/` (the documents as files, the overrides, and `revisions.json`), so a node
//! restarted while etcd is down serves its last good state, and one restarted after an outage
//! resumes the watch where it stopped.

mod apply;
mod cache;
mod health;

use super::{ChangeGuard, Control};
use crate::cluster::etcd::{Etcd, EtcdError, Expect, Options, Write};
use crate::cluster::keys::{Audit, DcOverride, EndpointOverride, ForeignKey, Key};
use crate::config::{self, ClusterConfig, Overlay};
use crate::lock::LockExt;
use crate::model::gslb::{EndpointKey, Forced};
use cache::{Cache, Known};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// How long a write waits for this node's watch to apply it before answering anyway (the
/// change is in etcd: it is applied when the watch catches up).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How often a read-modify-write of an override is tried when other nodes keep changing it.
const UPDATE_ATTEMPTS: usize = 5;

/// Why a change could not be written to the cluster. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd cannot be reached: the node keeps serving its last good state.
    #[error(
        "etcd is unreachable ({0}): this node keeps serving its last good state, but changes can \
         be made only when etcd is back"
    )]
    Unavailable(String),
    /// The key changed since this node read it (another node or tool wrote it).
    #[error("{key} was changed meanwhile (by another node or tool): read it again and retry")]
    Conflict { key: String },
    #[error("etcd: {0}")]
    Etcd(String),
}

impl From<EtcdError> for ClusterError {
    fn from(e: EtcdError) -> Self {
        match e {
            EtcdError::Unavailable(m) => ClusterError::Unavailable(m),
            EtcdError::Conflict { key } => ClusterError::Conflict {
                key: String::from_utf8_lossy(&key).into_owned(),
            },
            other => ClusterError::Etcd(other.to_string()),
        }
    }
}

/// The link between this node and etcd, as the API and the status page show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    pub connected: bool,
    /// When the link last came up or went down.
    pub since: SystemTime,
    /// Why it is down.
    pub error: Option<String>,
    /// The etcd revision this node has followed up to.
    pub revision: i64,
    /// Changes refused since the start (invalid documents).
    pub refused: u64,
}

/// This node's link to etcd.
pub(super) struct Link {
    etcd: Etcd,
    settings: ClusterConfig,
    /// `state_dir/cluster`.
    cache: Cache,
    known: Mutex<Known>,
    status: Mutex<ClusterStatus>,
    /// The revision applied so far, for writers waiting on their own change.
    applied: tokio::sync::watch::Sender<i64>,
    /// Foreign keys already reported (once each).
    reported: Mutex<HashSet<String>>,
    /// The health exchange (`health.rs`).
    exchange: health::Exchange,
    /// Counts the watch of the shared state coming up (odd: watching) and going down (even).
    /// The health exchange writes only while it is up: this node's own writes would move
    /// etcd's revision past the one it has applied, and hide an etcd that is behind it (new,
    /// or restored from a backup), which the watch detects by comparing the two.
    watching: tokio::sync::watch::Sender<u64>,
    /// Set once the node has a state to serve (its cache, or the first whole read).
    synced: tokio::sync::watch::Sender<bool>,
}

impl Link {
    /// The link for `settings`, with what the cache in `state_dir` says was applied.
    pub(super) fn open(settings: &ClusterConfig, state_dir: &Path) -> Result<Link, super::SetupError> {
        let etcd =
            Etcd::connect(&Options::from(settings)).map_err(|e| super::SetupError::Cluster(e.to_string()))?;
        let dir = config::cluster::cache_dir(state_dir);
        let (cache, known) = Cache::open(&dir).map_err(|e| {
            super::SetupError::Cluster(format!("cannot open the cluster cache {}: {e}", dir.display()))
        })?;
        let status = ClusterStatus {
            node: settings.node.clone(),
            connected: false,
            since: SystemTime::now(),
            error: Some("not connected yet".into()),
            revision: known.revision,
            refused: 0,
        };
        Ok(Link {
            etcd,
            settings: settings.clone(),
            cache,
            applied: tokio::sync::watch::channel(known.revision).0,
            known: Mutex::new(known),
            status: Mutex::new(status),
            reported: Mutex::default(),
            exchange: health::Exchange::default(),
            watching: tokio::sync::watch::channel(0).0,
            synced: tokio::sync::watch::channel(false).0,
        })
    }

    fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    /// Whether this node has ever applied the cluster's state (its cache has a revision).
    fn has_cache(&self) -> bool {
        self.known.locked().revision > 0
    }

    pub(super) fn status(&self) -> ClusterStatus {
        self.status.locked().clone()
    }

    fn set_connected(&self) {
        let mut s = self.status.locked();
        if !s.connected {
            tracing::info!(endpoints = ?self.settings.endpoints, "connected to etcd");
            s.connected = true;
            s.since = SystemTime::now();
            s.error = None;
        }
    }

    /// Marks the link down (the first time only: `since` is when it went down).
    fn set_disconnected(&self, error: &EtcdError) {
        let has_cache = self.has_cache();
        let mut s = self.status.locked();
        if s.connected || s.error.as_deref() == Some("not connected yet") {
            // Before the first state is read, `first_sync` says what the node waits for.
            if has_cache {
                tracing::warn!(error = %error, "etcd unreachable: serving the last good cluster state");
            }
            s.connected = false;
            s.since = SystemTime::now();
        }
        s.error = Some(error.to_string());
    }

    /// How a write is conditioned on what this node has seen of `key`.
    fn expect(&self, key: &Key) -> Expect {
        self.known
            .locked()
            .revision_of(&key.path())
            .map_or(Expect::Absent, Expect::Revision)
    }

    /// The audit record written beside a change made on behalf of `by`.
    fn audit(&self, by: String, what: Option<String>) -> Write {
        Audit {
            node: self.settings.node.clone(),
            by,
            what,
        }
        .write(self.prefix())
    }

    /// Writes `writes` in one transaction; the revision it made.
    async fn commit(&self, writes: &[Write]) -> Result<i64, ClusterError> {
        self.etcd.commit(writes).await.map_err(ClusterError::from)
    }

    /// Waits until this node has applied `revision` (at most [`APPLY_WAIT`]).
    async fn wait_applied(&self, revision: i64) {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|r| *r >= revision)).await;
        if reached.is_err() {
            tracing::warn!(
                revision,
                "a change written to etcd is not applied here yet: answering anyway (it is stored; the watch will apply it)"
            );
        }
    }

    /// Changes the override at `key` on behalf of `who` (see [`Link::update`]) and waits
    /// until this node has applied it.
    async fn set<T, R>(&self, key: Key, change: impl Fn(&mut T) -> R, who: &str) -> Result<R, ClusterError>
    where
        T: Serialize + DeserializeOwned + Default + PartialEq,
    {
        let audit = self.audit(format!("admin API ({who})"), None);
        let (result, revision) = self.update(&key, change, audit).await?;
        self.wait_applied(revision).await;
        Ok(result)
    }

    /// Reads a JSON key, changes it with `change`, and writes it back conditioned on the
    /// revision read (or deletes it when it is back to its default), with an audit record.
    /// Retried when another writer got there first. Returns what `change` returned and the
    /// revision written.
    async fn update<T, R>(
        &self,
        key: &Key,
        change: impl Fn(&mut T) -> R,
        audit: Write,
    ) -> Result<(R, i64), ClusterError>
    where
        T: Serialize + DeserializeOwned + Default + PartialEq,
    {
        let full = key.under(self.prefix());
        for _ in 0..UPDATE_ATTEMPTS {
            let entry = self.etcd.get(&full).await?;
            let (mut value, expect) = match &entry {
                // A value that does not read is replaced (it was refused everywhere).
                Some(e) => (
                    serde_json::from_slice(&e.value).unwrap_or_default(),
                    Expect::Revision(e.mod_revision),
                ),
                None => (T::default(), Expect::Absent),
            };
            let result = change(&mut value);
            let json =
                (value != T::default()).then(|| serde_json::to_vec(&value).expect("override serializes"));
            let write = Write::put_or_delete(full.clone(), json, expect);
            match self.commit(&[write, audit.clone()]).await {
                Ok(revision) => return Ok((result, revision)),
                Err(ClusterError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ClusterError::Conflict {
            key: String::from_utf8_lossy(&full).into_owned(),
        })
    }

    fn parse(&self, key: &[u8]) -> Option<Key> {
        match Key::parse(self.prefix(), key)? {
            Ok(k) => Some(k),
            Err(ForeignKey { key, reason }) => {
                if self.reported.locked().insert(key.clone()) {
                    tracing::warn!(key, reason, "key under the cluster prefix ignored");
                }
                None
            }
        }
    }

    /// Forgets the revisions seen (keeping which keys were seen, so that those now absent are
    /// deleted): etcd's revisions no longer match them, and a whole read must compare by
    /// presence alone.
    fn forget_revisions(&self) {
        let mut known = self.known.locked();
        known.revision = 0;
        known.keys.values_mut().for_each(|r| *r = 0);
        known.refused.values_mut().for_each(|r| r.mod_revision = 0);
    }

    /// Moves past changes with nothing to apply (the nodes' own health keys, followed by
    /// `health.rs`): in memory only; the cache records the revision with the next change it
    /// writes (a restart sees these changes again, and again applies nothing).
    fn pass(&self, revision: i64) {
        let mut known = self.known.locked().clone();
        if revision > known.revision {
            known.revision = revision;
            self.advance(known);
        }
    }

    /// Takes `known` as what this node has applied (it is cached already); wakes writers
    /// waiting on it.
    fn advance(&self, known: Known) {
        let revision = known.revision;
        *self.known.locked() = known;
        self.status.locked().revision = revision;
        self.applied.send_replace(revision);
    }
}

/// The watch of the shared state is up while this lives.
struct Watching<'a>(&'a Link);

impl<'a> Watching<'a> {
    fn up(link: &'a Link) -> Watching<'a> {
        link.watching.send_modify(|n| *n += 1);
        Watching(link)
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.watching.send_modify(|n| *n += 1);
    }
}

/// Why following etcd stopped for a moment.
enum Interrupted {
    Etcd(EtcdError),
    /// etcd's history is not the one this node followed (said why): the whole state is read.
    Diverged(String),
    /// The cluster cache could not be written (logged where it happened): the change is read
    /// again.
    Cache,
}

impl From<EtcdError> for Interrupted {
    fn from(e: EtcdError) -> Self {
        Interrupted::Etcd(e)
    }
}

/// The words of an event's reason for a change written by `audit`.
fn reason(audit: Option<&Audit>, whole: bool) -> String {
    match audit {
        Some(a) => format!("{} on {}", a.by, a.node),
        None if whole => "cluster state read whole from etcd".into(),
        None => "etcd (no author recorded: written by another client)".into(),
    }
}

impl Control {
    /// The cluster link, in cluster mode.
    fn link(&self) -> Option<&Link> {
        self.cluster.as_ref()
    }

    /// The link to etcd as it stands, in cluster mode.
    pub fn cluster_status(&self) -> Option<ClusterStatus> {
        self.link().map(Link::status)
    }

    /// In cluster mode, waits (bounded) until this node has applied every change etcd holds
    /// under the prefix now: before an edit overtaken by another node's is made again on the
    /// newer state. (The latest change under the prefix, not etcd's revision, which other
    /// users of the same etcd move too.)
    pub async fn catch_up(&self) {
        let Some(link) = self.link() else { return };
        if let Ok(Some(latest)) = link.etcd.latest_change(link.prefix().as_bytes()).await {
            link.wait_applied(latest).await;
        }
    }

    /// Waits until this node has a state to serve: its cache, or, for a node that has none,
    /// the first whole read (see [`Control::follow_cluster`]).
    pub(super) async fn synced(&self) {
        let Some(link) = self.link() else { return };
        let _ = link.synced.subscribe().wait_for(|s| *s).await;
    }

    /// At start in cluster mode: a node that has never applied the cluster's state reads it
    /// whole from etcd, trying until it can (a node with a cache serves that meanwhile, and
    /// catches up in [`Control::follow_cluster`]).
    async fn first_sync(&self, link: &Link) {
        if link.has_cache() {
            tracing::info!(
                revision = link.known.locked().revision,
                "serving the cached cluster state until etcd is read"
            );
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.read_whole(link).await {
                Ok(()) => return,
                // A whole read does not compare histories: not met here.
                Err(Interrupted::Cache | Interrupted::Diverged(_)) => tokio::time::sleep(backoff).await,
                Err(Interrupted::Etcd(e)) => {
                    tracing::warn!(error = %e, endpoints = ?link.settings.endpoints, "waiting for etcd: this node has no cached cluster state to serve");
                    link.set_disconnected(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Reads the whole state and applies what differs from what this node has.
    async fn read_whole(&self, link: &Link) -> Result<(), Interrupted> {
        let listing = link.etcd.list(link.prefix().as_bytes()).await?;
        link.set_connected();
        let batch = link.batch_from_listing(listing);
        self.apply_batch(link, batch)
            .await
            .map_err(|_| Interrupted::Cache)
    }

    /// Follows etcd until `stop`: the watch from the last revision applied, a whole read after
    /// a compaction, reconnection with backoff, and a ping (one read per `cluster.etcd.timeout`)
    /// so that a member that stops answering without closing the connection is noticed.
    /// It begins with the first state to serve ([`Control::first_sync`]); `start` waits for it.
    pub async fn follow_cluster(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(link) = self.link() else { return };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = self.first_sync(link) => link.synced.send_replace(true),
        };
        let prefix = link.prefix().as_bytes().to_vec();
        let ping_key = Key::Audit.under(link.prefix());
        let mut backoff = Duration::from_millis(100);
        // Set until a whole read succeeds: the watch cannot bring what is missing.
        let mut read_whole = false;
        loop {
            let interrupted = if read_whole {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = self.read_whole(link) => r.err(),
                }
            } else {
                let from = link.known.locked().revision + 1;
                let interrupted = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = self.watch_from(link, &prefix, &ping_key, from) => r,
                };
                Some(interrupted)
            };
            match interrupted {
                None => {
                    read_whole = false;
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Some(Interrupted::Etcd(EtcdError::Compacted { compacted })) => {
                    let from = link.known.locked().revision + 1;
                    if compacted >= from {
                        // Compacted history: what this node missed is gone from the watch.
                        tracing::warn!(
                            compacted,
                            from,
                            "etcd compacted the history this node missed: reading the whole state"
                        );
                    } else {
                        // etcd is behind this node: its revisions are not the ones it knows.
                        tracing::warn!(
                            etcd = compacted,
                            node = from - 1,
                            "etcd's revision is behind the one this node applied (a new or restored etcd): reading the whole state"
                        );
                        link.forget_revisions();
                    }
                    read_whole = true;
                    continue;
                }
                Some(Interrupted::Diverged(why)) => {
                    tracing::warn!(
                        why,
                        "etcd's history is not the one this node followed (restored from a backup, or a new etcd written to since): reading the whole state"
                    );
                    link.forget_revisions();
                    read_whole = true;
                    continue;
                }
                Some(Interrupted::Etcd(e)) => link.set_disconnected(&e),
                // Logged where it happened; the same changes come again.
                Some(Interrupted::Cache) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One watch, applied as it comes, until it fails; returns why. An etcd whose revision is
    /// behind `from` (a new cluster, or one restored from an older backup) would never send
    /// what this node lacks: that is reported as a compaction at etcd's revision, so that the
    /// whole state is read.
    async fn watch_from(&self, link: &Link, prefix: &[u8], ping_key: &[u8], from: i64) -> Interrupted {
        match link.etcd.list_keys(prefix).await {
            Ok(now) if now.revision < from - 1 => {
                // Told apart from a real compaction by being below `from`.
                return Interrupted::Etcd(EtcdError::Compacted {
                    compacted: now.revision,
                });
            }
            Ok(now) => {
                // Other nodes' writes move etcd's revision past this node's even when etcd's
                // history is not the one it followed: the keys' revisions tell.
                let shared = now.entries.iter().filter_map(|e| {
                    let key = link.parse(&e.key)?;
                    key.is_shared().then(|| (key.path(), e.mod_revision))
                });
                let shared: Vec<(String, i64)> = shared.collect();
                let diverges = link
                    .known
                    .locked()
                    .diverges(shared.iter().map(|(p, m)| (p.as_str(), *m)));
                if let Some(why) = diverges {
                    return Interrupted::Diverged(why);
                }
            }
            Err(e) => return e.into(),
        }
        let mut watch = match link.etcd.watch(prefix, from).await {
            Ok(w) => w,
            Err(e) => return e.into(),
        };
        let _watching = Watching::up(link);
        let mut ping = tokio::time::interval(link.settings.timeout);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = watch.next() => match next {
                    Ok(changes) => {
                        link.set_connected();
                        let batch = link.batch_of(changes);
                        if batch.units.is_empty() {
                            link.pass(batch.revision);
                        } else if self.apply_batch(link, batch).await.is_err() {
                            return Interrupted::Cache;
                        }
                    }
                    Err(e) => return e.into(),
                },
                _ = ping.tick() => match link.etcd.get(ping_key).await {
                    Ok(_) => link.set_connected(),
                    Err(e) => return e.into(),
                },
            }
        }
    }

    /// Writes a zone file's new text (`None`: removes the zone) to etcd, conditioned on the
    /// revision this node has of it (and of the data centers), once the whole configuration
    /// with it validates here. Answers once this node's watch has applied it.
    pub(super) async fn commit_to_cluster(
        &self,
        link: &Link,
        change: ChangeGuard<'_>,
        path: &Path,
        text: Option<String>,
        subject: &str,
        who: &str,
    ) -> Result<u64, super::CommitError> {
        let Some(name) = zone_of_cache_file(path, &self.running.locked().state_dir) else {
            return Err(super::CommitError::Cluster(ClusterError::Etcd(format!(
                "{} is not a zone file of the cluster cache",
                path.display()
            ))));
        };
        let mut overlay = Overlay {
            admin_tls_unread: true,
            ..Overlay::default()
        };
        overlay.files.insert(path.to_path_buf(), text.clone());
        self.validate(overlay)
            .await
            .map_err(super::CommitError::Invalid)?;
        let key = Key::Zone(name);
        let write = Write::put_or_delete(
            key.under(link.prefix()),
            text.map(String::into_bytes),
            link.expect(&key),
        );
        // Validated against these data centers: written only if they are still the ones.
        let datacenters = Write::Check {
            key: Key::Datacenters.under(link.prefix()),
            expect: link.expect(&Key::Datacenters),
        };
        let audit = link.audit(format!("admin API ({who})"), Some(subject.to_string()));
        let revision = link
            .commit(&[write, datacenters, audit])
            .await
            .map_err(super::CommitError::Cluster)?;
        drop(change);
        self.metrics.zone_edits.fetch_add(1, Ordering::Relaxed);
        link.wait_applied(revision).await;
        Ok(self.store.load().generation)
    }

    /// Sets a data center's state in the cluster; the previous state.
    pub(super) async fn set_dc_in_cluster(
        &self,
        link: &Link,
        dc: &str,
        state: Forced,
        who: &str,
    ) -> Result<Forced, super::SetError> {
        self.overrides.check_dc(dc)?;
        let set = |o: &mut DcOverride| std::mem::replace(&mut o.state, state);
        Ok(link.set(Key::DcOverride(dc.into()), set, who).await?)
    }

    /// Sets a data center's runtime weight in the cluster.
    pub(super) async fn set_weight_in_cluster(
        &self,
        link: &Link,
        dc: &str,
        weight: Option<u32>,
        who: &str,
    ) -> Result<(), super::SetError> {
        self.overrides.check_dc(dc)?;
        let set = |o: &mut DcOverride| o.weight = weight;
        Ok(link.set(Key::DcOverride(dc.into()), set, who).await?)
    }

    /// Sets an endpoint's state in the cluster; the previous state.
    pub(super) async fn set_endpoint_in_cluster(
        &self,
        link: &Link,
        endpoint: &EndpointKey,
        state: Forced,
        who: &str,
    ) -> Result<Forced, super::SetError> {
        self.overrides.check_endpoint(endpoint)?;
        let set = |o: &mut EndpointOverride| std::mem::replace(&mut o.state, state);
        Ok(link
            .set(Key::EndpointOverride(endpoint.clone()), set, who)
            .await?)
    }
}

/// The zone a cache file holds, by its name (`None` for any other file).
fn zone_of_cache_file(path: &Path, state_dir: &Path) -> Option<String> {
    if path.parent()? != config::shared_zones_dir(state_dir) {
        return None;
    }
    let stem = path.file_name()?.to_str()?.strip_suffix(".yaml")?;
    crate::name::canonical_hostname(stem, false)
        .ok()
        .filter(|c| c == stem)
}
