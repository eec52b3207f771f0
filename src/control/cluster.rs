//! Cluster mode: the node follows the shared state in etcd (watch, validate, cache, publish) and
//! writes its API's changes there as transactions conditioned on what it has seen.
//!
//! Every change reaches the answer path the same way, whichever node or tool made it: through
//! the watch. A node that writes waits until its own watch has applied the write before it
//! answers, so its API reads what it wrote. What the node has applied is cached in
//! `state_dir/cluster/` (the documents as files, the overrides, and `revisions.json`), so a node
//! restarted while etcd is down serves its last good state, and one restarted after an outage
//! resumes the watch where it stopped.

use super::{ChangeGuard, Control};
use crate::cluster::etcd::{Change, Changes, Etcd, EtcdError, Expect, Listing, Options, Write};
use crate::cluster::keys::{Audit, DcOverride, EndpointOverride, ForeignKey, Key};
use crate::config::{self, ClusterConfig, Overlay};
use crate::lock::LockExt;
use crate::model::gslb::{EndpointKey, Forced};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
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

/// What this node knows of etcd: the store revision it has followed up to, and the
/// `mod_revision` of each key as last seen. A refused document counts as seen: a write that
/// fixes it is conditioned on the refused revision. Cached as `revisions.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    revision: i64,
    keys: BTreeMap<String, i64>,
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
    cache: PathBuf,
    known: Mutex<Known>,
    status: Mutex<ClusterStatus>,
    /// The revision applied so far, for writers waiting on their own change.
    applied: tokio::sync::watch::Sender<i64>,
    /// Foreign keys already reported (once each).
    reported: Mutex<HashSet<String>>,
}

/// One key's change, as read from a watch or found by comparing a listing.
#[derive(Debug)]
struct Doc {
    key: Key,
    mod_revision: i64,
    /// `None`: deleted.
    value: Option<Vec<u8>>,
}

/// Changes to apply together: one etcd transaction (from the watch) or the difference between
/// the cache and a whole listing.
#[derive(Debug)]
struct Batch {
    revision: i64,
    docs: Vec<Doc>,
    /// Who wrote it, when the writer recorded it.
    audit: Option<Audit>,
    /// Read whole (at start or after a compaction), not from the watch.
    whole: bool,
}

impl Link {
    /// The link for `settings`, with what the cache in `state_dir` says was applied.
    pub(super) fn open(settings: &ClusterConfig, state_dir: &Path) -> Result<Link, super::SetupError> {
        let etcd =
            Etcd::connect(&Options::from(settings)).map_err(|e| super::SetupError::Cluster(e.to_string()))?;
        let cache = config::cluster::cache_dir(state_dir);
        std::fs::create_dir_all(config::shared_zones_dir(state_dir))
            .map_err(|e| super::SetupError::Cluster(format!("cannot create {}: {e}", cache.display())))?;
        let known = match std::fs::read(cache.join("revisions.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cluster cache revisions.json unreadable: reading the whole state from etcd");
                Known::default()
            }),
            Err(_) => Known::default(),
        };
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
        let mut s = self.status.locked();
        if s.connected || s.error.as_deref() == Some("not connected yet") {
            tracing::warn!(error = %error, "etcd unreachable: serving the last good cluster state");
            s.connected = false;
            s.since = SystemTime::now();
        }
        s.error = Some(error.to_string());
    }

    /// How a write is conditioned on what this node has seen of `key`.
    fn expect(&self, key: &Key) -> Expect {
        self.known
            .locked()
            .keys
            .get(&key.path())
            .map_or(Expect::Absent, |r| Expect::Revision(*r))
    }

    /// The audit record written beside a change made on behalf of `by`.
    fn audit(&self, by: String, what: Option<String>) -> Write {
        let audit = Audit {
            node: self.settings.node.clone(),
            by,
            what,
        };
        Write::Put {
            key: Key::Audit.under(self.prefix()),
            value: serde_json::to_vec(&audit).expect("audit serializes"),
            expect: Expect::Any,
        }
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
            let write = if value == T::default() {
                Write::Delete {
                    key: full.clone(),
                    expect,
                }
            } else {
                Write::Put {
                    key: full.clone(),
                    value: serde_json::to_vec(&value).expect("override serializes"),
                    expect,
                }
            };
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

    /// The batch of one watch response; foreign keys are reported once and left out.
    fn batch_of(&self, changes: Changes) -> Batch {
        let mut docs = Vec::new();
        let mut audit = None;
        for change in changes.changes {
            let (key, mod_revision, value) = match change {
                Change::Put(e) => (e.key, e.mod_revision, Some(e.value)),
                Change::Delete { key, mod_revision } => (key, mod_revision, None),
            };
            match self.parse(&key) {
                Some(Key::Audit) => audit = value.and_then(|v| serde_json::from_slice(&v).ok()),
                Some(key) => docs.push(Doc {
                    key,
                    mod_revision,
                    value,
                }),
                None => {}
            }
        }
        Batch {
            revision: changes.revision,
            docs,
            audit,
            whole: false,
        }
    }

    /// What differs between `listing` and what this node has seen: every key it has not seen
    /// at that revision, and every key it has seen that is gone.
    fn batch_from_listing(&self, listing: Listing) -> Batch {
        let known = self.known.locked().clone();
        let mut present = HashSet::new();
        let mut docs = Vec::new();
        for e in listing.entries {
            let Some(key) = self.parse(&e.key) else { continue };
            if key == Key::Audit {
                continue;
            }
            let path = key.path();
            if known.keys.get(&path) != Some(&e.mod_revision) {
                docs.push(Doc {
                    key,
                    mod_revision: e.mod_revision,
                    value: Some(e.value),
                });
            }
            present.insert(path);
        }
        for path in known.keys.keys().filter(|p| !present.contains(*p)) {
            if let Some(Ok(key)) = Key::parse("", path.as_bytes()) {
                docs.push(Doc {
                    key,
                    mod_revision: listing.revision,
                    value: None,
                });
            }
        }
        Batch {
            revision: listing.revision,
            docs,
            audit: None,
            whole: true,
        }
    }

    /// A key of ours, or `None` (a foreign key is reported the first time it is seen).
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
    }

    /// Records `batch` as seen and caches the record; wakes writers waiting on it.
    fn advance(&self, batch: &Batch, unseen: &[String]) {
        let known = {
            let mut known = self.known.locked();
            for d in &batch.docs {
                let path = d.key.path();
                if unseen.contains(&path) {
                    continue;
                }
                match d.value {
                    Some(_) => known.keys.insert(path, d.mod_revision),
                    None => known.keys.remove(&path),
                };
            }
            known.revision = known.revision.max(batch.revision);
            known.clone()
        };
        let text = serde_json::to_vec_pretty(&known).expect("revisions serialize");
        if let Err(e) = crate::files::write_atomic(&self.cache.join("revisions.json"), &text) {
            tracing::error!(error = %e, "cannot write the cluster cache's revisions.json");
        }
        self.status.locked().revision = known.revision;
        self.applied.send_replace(known.revision);
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

    /// In cluster mode, waits (bounded) until this node has applied everything etcd holds now:
    /// before an edit overtaken by another node's is made again on the newer state.
    pub async fn catch_up(&self) {
        let Some(link) = self.link() else { return };
        if let Ok(now) = link.etcd.list(&Key::Audit.under(link.prefix())).await {
            link.wait_applied(now.revision).await;
        }
    }

    /// At start in cluster mode: a node that has never applied the cluster's state reads it
    /// whole from etcd, trying until it can (a node with a cache serves that meanwhile, and
    /// catches up in [`Control::follow_cluster`]).
    pub(super) async fn first_sync(&self) {
        let Some(link) = self.link() else { return };
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
                Err(e) => {
                    tracing::warn!(error = %e, endpoints = ?link.settings.endpoints, "waiting for etcd: this node has no cached cluster state to serve");
                    link.set_disconnected(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Reads the whole state and applies what differs from what this node has.
    async fn read_whole(&self, link: &Link) -> Result<(), EtcdError> {
        let listing = link.etcd.list(link.prefix().as_bytes()).await?;
        link.set_connected();
        let batch = link.batch_from_listing(listing);
        self.apply_batch(link, batch).await;
        Ok(())
    }

    /// Follows etcd until `stop`: the watch from the last revision applied, a whole read after
    /// a compaction, reconnection with backoff, and a ping (one read per `cluster.etcd.timeout`)
    /// so that a member that stops answering without closing the connection is noticed.
    pub async fn follow_cluster(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(link) = self.link() else { return };
        let prefix = link.prefix().as_bytes().to_vec();
        let ping_key = Key::Audit.under(link.prefix());
        let mut backoff = Duration::from_millis(100);
        loop {
            let from = link.known.locked().revision + 1;
            let failed = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.watch_from(link, &prefix, &ping_key, from) => r,
            };
            let read_whole = match failed {
                // Compacted history: what this node missed is gone from the watch.
                EtcdError::Compacted { compacted } if compacted >= from => {
                    tracing::warn!(
                        compacted,
                        from,
                        "etcd compacted the history this node missed: reading the whole state"
                    );
                    true
                }
                // etcd is behind this node: its revisions are not the ones this node knows.
                EtcdError::Compacted { compacted } => {
                    tracing::warn!(
                        etcd = compacted,
                        node = from - 1,
                        "etcd's revision is behind the one this node applied (a new or restored etcd): reading the whole state"
                    );
                    link.forget_revisions();
                    true
                }
                e => {
                    link.set_disconnected(&e);
                    false
                }
            };
            if read_whole {
                let read = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = self.read_whole(link) => r,
                };
                match read {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    Err(e) => link.set_disconnected(&e),
                }
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
    async fn watch_from(&self, link: &Link, prefix: &[u8], ping_key: &[u8], from: i64) -> EtcdError {
        match link.etcd.list(ping_key).await {
            Ok(now) if now.revision < from - 1 => {
                // Told apart from a real compaction by being below `from`.
                return EtcdError::Compacted {
                    compacted: now.revision,
                };
            }
            Ok(_) => {}
            Err(e) => return e,
        }
        let mut watch = match link.etcd.watch(prefix, from).await {
            Ok(w) => w,
            Err(e) => return e,
        };
        let mut ping = tokio::time::interval(link.settings.timeout);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = watch.next() => match next {
                    Ok(changes) => {
                        link.set_connected();
                        let batch = link.batch_of(changes);
                        self.apply_batch(link, batch).await;
                    }
                    Err(e) => return e,
                },
                _ = ping.tick() => match link.etcd.get(ping_key).await {
                    Ok(_) => link.set_connected(),
                    Err(e) => return e,
                },
            }
        }
    }

    /// Applies one batch: the shared documents validated and published together (or all
    /// refused), each override on its own; then records the batch as seen.
    async fn apply_batch(&self, link: &Link, mut batch: Batch) {
        let change = self.begin_change().await;
        {
            let known = link.known.locked();
            batch.docs.retain(|d| {
                let seen = known.keys.get(&d.key.path());
                match d.value {
                    Some(_) => seen.is_none_or(|r| *r < d.mod_revision),
                    None => seen.is_some(),
                }
            });
        }
        let reason = reason(batch.audit.as_ref(), batch.whole);
        let (shared, overrides): (Vec<&Doc>, Vec<&Doc>) = batch
            .docs
            .iter()
            .partition(|d| matches!(d.key, Key::Datacenters | Key::Zone(_)));
        let mut unseen = Vec::new();
        if !shared.is_empty() {
            unseen = self
                .apply_shared(&change, link, &shared, batch.audit.as_ref(), &reason)
                .await;
        }
        drop(change);
        for doc in overrides {
            self.apply_override(doc, &reason);
        }
        link.advance(&batch, &unseen);
    }

    /// Validates the shared documents of a batch with the rest of the configuration, caches
    /// and publishes them, or refuses them all (the last good state keeps serving). Returns the
    /// keys that could not be cached (to be read again, not counted as seen).
    async fn apply_shared(
        &self,
        _change: &ChangeGuard<'_>,
        link: &Link,
        docs: &[&Doc],
        audit: Option<&Audit>,
        reason: &str,
    ) -> Vec<String> {
        let state_dir = self.running.locked().state_dir.clone();
        let keys: Vec<String> = docs.iter().map(|d| d.key.path()).collect();
        let mut overlay = Overlay::default();
        let mut files = Vec::new();
        for d in docs {
            let file = cache_file(&state_dir, &d.key);
            let text = match &d.value {
                None => None,
                Some(v) => match String::from_utf8(v.clone()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.refuse(link, &keys, &format!("{} is not UTF-8 text", d.key.path()));
                        return Vec::new();
                    }
                },
            };
            overlay.files.insert(file.clone(), text.clone());
            files.push((d, file, text));
        }
        let config = match self.validate(overlay).await {
            Ok(c) => c,
            Err(problems) => {
                for p in &problems.0 {
                    tracing::error!(problem = %p, keys = ?keys, "cluster change refused; still serving the last good state");
                }
                let first = problems.0.first().map(|p| p.to_string()).unwrap_or_default();
                self.refuse(link, &keys, &first);
                return Vec::new();
            }
        };
        for (d, file, text) in &files {
            if let (Key::Zone(name), Some(_)) = (&d.key, text) {
                let holds = config.zones.iter().find(|z| &z.source == file);
                if let Some(z) = holds.filter(|z| !zone_named(z, name)) {
                    let message = format!(
                        "key {} holds zone {}: a zone's key is its name",
                        d.key.path(),
                        z.origin
                    );
                    self.refuse(link, &keys, &message);
                    return Vec::new();
                }
            }
        }
        let mut unseen = Vec::new();
        for (d, file, text) in &files {
            let written = match text {
                Some(t) => crate::files::write_atomic(file, t.as_bytes()),
                None => crate::files::remove_durable(file).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }),
            };
            if let Err(e) = written {
                tracing::error!(file = %file.display(), error = %e, "cannot write the cluster cache");
                unseen.push(d.key.path());
            }
        }
        if !unseen.is_empty() {
            // What is on disk is partly new: publishing from it would serve a mix.
            self.refuse(link, &keys, "the cluster cache cannot be written");
            return unseen;
        }
        let generation = self.apply(config);
        self.metrics.cluster_changes.fetch_add(1, Ordering::Relaxed);
        let single = audit.and_then(|a| a.what.clone()).filter(|_| docs.len() == 1);
        for (d, _, text) in &files {
            let subject = single.clone().unwrap_or_else(|| subject_of(&d.key));
            let new = if text.is_some() { "edited" } else { "deleted" };
            self.events.emit(subject, "", new, reason);
        }
        tracing::info!(keys = ?keys, generation, "cluster change applied");
        unseen
    }

    /// Says that a cluster change was refused: log, event, metric, status.
    fn refuse(&self, link: &Link, keys: &[String], why: &str) {
        tracing::error!(keys = ?keys, why, "cluster change refused; still serving the last good state");
        self.events.emit(
            format!("cluster {}", keys.join(", ")),
            "",
            "refused",
            why.to_string(),
        );
        self.metrics.cluster_refused.fetch_add(1, Ordering::Relaxed);
        link.status.locked().refused += 1;
    }

    /// Puts one override key into force as etcd holds it; an unreadable value is refused.
    fn apply_override(&self, doc: &Doc, reason: &str) {
        let result = match &doc.key {
            Key::DcOverride(dc) => read_value::<DcOverride>(doc).map(|o| {
                self.overrides
                    .apply_dc(dc, o.state, o.weight, &self.events, reason)
            }),
            Key::EndpointOverride(key) => read_value::<EndpointOverride>(doc)
                .map(|o| self.overrides.apply_endpoint(key, o.state, &self.events, reason)),
            _ => return,
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "override applied but not cached"),
            Err(why) => {
                tracing::error!(key = doc.key.path(), why, "override refused");
                self.events
                    .emit(format!("cluster {}", doc.key.path()), "", "refused", why);
                self.metrics.cluster_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(link) = self.link() {
                    link.status.locked().refused += 1;
                }
            }
        }
    }

    /// Writes a zone file's new text (`None`: removes the zone) to etcd, conditioned on the
    /// revision this node has of it, once the whole configuration with it validates here.
    /// Answers once this node's watch has applied it.
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
        let mut overlay = Overlay::default();
        overlay.files.insert(path.to_path_buf(), text.clone());
        self.validate(overlay)
            .await
            .map_err(super::CommitError::Invalid)?;
        let key = Key::Zone(name);
        let full = key.under(link.prefix());
        let expect = link.expect(&key);
        let write = match text {
            Some(t) => Write::Put {
                key: full,
                value: t.into_bytes(),
                expect,
            },
            None => Write::Delete { key: full, expect },
        };
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
        let audit = link.audit(format!("admin API ({who})"), None);
        let key = Key::DcOverride(dc.to_string());
        let (old, revision) = link
            .update(
                &key,
                |o: &mut DcOverride| std::mem::replace(&mut o.state, state),
                audit,
            )
            .await?;
        link.wait_applied(revision).await;
        Ok(old)
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
        let audit = link.audit(format!("admin API ({who})"), None);
        let key = Key::DcOverride(dc.to_string());
        let ((), revision) = link
            .update(&key, |o: &mut DcOverride| o.weight = weight, audit)
            .await?;
        link.wait_applied(revision).await;
        Ok(())
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
        let audit = link.audit(format!("admin API ({who})"), None);
        let key = Key::EndpointOverride(endpoint.clone());
        let (old, revision) = link
            .update(
                &key,
                |o: &mut EndpointOverride| std::mem::replace(&mut o.state, state),
                audit,
            )
            .await?;
        link.wait_applied(revision).await;
        Ok(old)
    }
}

/// An override's value, or why it does not read (a delete reads as no override).
fn read_value<T: DeserializeOwned + Default>(doc: &Doc) -> Result<T, String> {
    match &doc.value {
        None => Ok(T::default()),
        Some(v) => serde_json::from_slice(v).map_err(|e| format!("{} does not read: {e}", doc.key.path())),
    }
}

/// Where the cache keeps a shared document.
fn cache_file(state_dir: &Path, key: &Key) -> PathBuf {
    match key {
        Key::Zone(name) => config::shared_zones_dir(state_dir).join(format!("{name}.yaml")),
        _ => config::shared_file(state_dir),
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

/// Whether zone `z` is the one named `name` (canonical text).
fn zone_named(z: &crate::model::Zone, name: &str) -> bool {
    crate::name::canonical_hostname(&z.origin.to_string(), false).is_ok_and(|c| c == name)
}

/// An event's subject for a shared document.
fn subject_of(key: &Key) -> String {
    match key {
        Key::Zone(name) => format!("zone {name}"),
        Key::Datacenters => "datacenters and checks".into(),
        other => other.path(),
    }
}
