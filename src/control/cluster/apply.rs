//! Applying what etcd holds: batches of changes, one unit per etcd transaction (or per
//! document, in a whole read), validated with the rest of the configuration and the documents
//! refused before (which a later change can make valid), cached, then published.
//!
//! A unit is applied whole or refused whole. When a batch does not validate, the units whose
//! documents the problems point at are refused and the rest is validated again, so one invalid
//! document never holds back the others.

use super::cache::{Known, Refused, file_in_use, relative};
use super::{Link, reason};
use crate::cluster::etcd::{Change, Changes, Listing};
use crate::cluster::keys::{Audit, DcOverride, EndpointOverride, Key};
use crate::config::{Config, Overlay, Problems};
use crate::control::Control;
use crate::lock::LockExt;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// One key's change, as read from a watch or found by comparing a listing.
#[derive(Clone, Debug)]
pub(super) struct Doc {
    pub(super) key: Key,
    pub(super) mod_revision: i64,
    /// `None`: deleted.
    pub(super) value: Option<Vec<u8>>,
}

/// Changes applied or refused together: one etcd transaction, or one document of a whole read.
#[derive(Debug)]
pub(super) struct Unit {
    pub(super) docs: Vec<Doc>,
    /// Who wrote it, when the writer recorded it.
    pub(super) audit: Option<Audit>,
}

/// What one watch response or one whole read brings.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) units: Vec<Unit>,
    /// The revision this node has followed up to once the batch is applied.
    pub(super) revision: i64,
    /// Read whole (at start or after a compaction), not from the watch.
    pub(super) whole: bool,
}

/// A shared document's change, its text read: what validation works with.
#[derive(Clone, Debug)]
struct Text {
    key: Key,
    mod_revision: i64,
    /// The cache file it becomes (an absolute path, as problems name it).
    file: PathBuf,
    text: Option<String>,
}

/// Shared documents that are applied or refused together.
#[derive(Debug)]
struct Candidate {
    texts: Vec<Text>,
    audit: Option<Audit>,
    /// Refused before and tried again: a second refusal is not news.
    retry: bool,
}

impl Candidate {
    fn keys(&self) -> Vec<String> {
        self.texts.iter().map(|t| t.key.path()).collect()
    }

    /// Where it stands in etcd's order: its transaction's revision.
    fn revision(&self) -> i64 {
        self.texts.iter().map(|t| t.mod_revision).max().unwrap_or(0)
    }

    fn is_datacenters(&self) -> bool {
        self.texts.iter().any(|t| t.key == Key::Datacenters)
    }
}

impl Link {
    /// The batch of one watch response: one unit per revision (etcd sends a transaction's
    /// events together, but a watch catching up sends many transactions in one response), each
    /// with its own audit record. Foreign keys are reported once and left out.
    pub(super) fn batch_of(&self, changes: Changes) -> Batch {
        let mut units: Vec<(i64, Unit)> = Vec::new();
        let mut revision = self.known.locked().revision;
        for change in changes.changes {
            let (key, mod_revision, value) = match change {
                Change::Put(e) => (e.key, e.mod_revision, Some(e.value)),
                Change::Delete { key, mod_revision } => (key, mod_revision, None),
            };
            revision = revision.max(mod_revision);
            if units.last().is_none_or(|(r, _)| *r != mod_revision) {
                units.push((
                    mod_revision,
                    Unit {
                        docs: Vec::new(),
                        audit: None,
                    },
                ));
            }
            let unit = &mut units.last_mut().expect("pushed").1;
            match self.parse(&key) {
                Some(Key::Audit) => unit.audit = value.and_then(|v| serde_json::from_slice(&v).ok()),
                // The nodes' own keys: the health exchange follows them (`health.rs`).
                Some(Key::Node(_) | Key::Health { .. }) => {}
                Some(key) => unit.docs.push(Doc {
                    key,
                    mod_revision,
                    value,
                }),
                None => {}
            }
        }
        Batch {
            units: units
                .into_iter()
                .map(|(_, u)| u)
                .filter(|u| !u.docs.is_empty())
                .collect(),
            revision,
            whole: false,
        }
    }

    /// What differs between `listing` and what this node has: every key not applied or refused
    /// at that revision, and every key this node has (applied, refused, or a zone file in its
    /// cache) that etcd no longer holds. One unit per document.
    pub(super) fn batch_from_listing(&self, listing: Listing) -> Batch {
        let known = self.known.locked().clone();
        let mut present = HashSet::new();
        let mut units = Vec::new();
        let mut unit = |doc: Doc| {
            units.push(Unit {
                docs: vec![doc],
                audit: None,
            })
        };
        for e in listing.entries {
            let Some(key) = self.parse(&e.key) else { continue };
            if matches!(key, Key::Audit | Key::Node(_) | Key::Health { .. }) {
                continue;
            }
            let path = key.path();
            if known.is_news(&path, e.mod_revision) {
                unit(Doc {
                    key,
                    mod_revision: e.mod_revision,
                    value: Some(e.value),
                });
            }
            present.insert(path);
        }
        let cached = self.cache.zone_names().into_iter().map(|z| Key::Zone(z).path());
        let had: HashSet<String> = known
            .keys
            .keys()
            .chain(
                known
                    .refused
                    .iter()
                    .filter(|(_, r)| r.value.is_some())
                    .map(|(p, _)| p),
            )
            .cloned()
            .chain(cached)
            .collect();
        for path in had.iter().filter(|p| !present.contains(*p)) {
            if let Some(Ok(key)) = Key::parse("", path.as_bytes()) {
                unit(Doc {
                    key,
                    mod_revision: listing.revision,
                    value: None,
                });
            }
        }
        Batch {
            units,
            revision: listing.revision,
            whole: true,
        }
    }
}

impl Control {
    /// Applies one batch, holding the change guard throughout (an API write never sees new
    /// documents with old revisions). Overrides first, each on its own; then the shared
    /// documents, validated together with those refused before; then the documents and what
    /// etcd held are cached in one step, published, and the revision followed moves on. On an
    /// error nothing moves on: the batch comes again.
    pub(super) async fn apply_batch(&self, link: &Link, batch: Batch) -> Result<(), String> {
        let _change = self.begin_change().await;
        let mut known = link.known.locked().clone();
        let state_dir = self.running.locked().state_dir.clone();
        let mut candidates = Vec::new();
        for unit in batch.units {
            let reason = reason(unit.audit.as_ref(), batch.whole);
            let news: Vec<Doc> = unit
                .docs
                .into_iter()
                .filter(|d| known.is_news(&d.key.path(), d.mod_revision))
                .collect();
            let (shared, overrides): (Vec<Doc>, Vec<Doc>) =
                news.into_iter().partition(|d| relative(&d.key).is_some());
            for doc in &overrides {
                self.apply_override(link, doc, &reason)?;
                known.applied(doc.key.path(), doc.mod_revision, doc.value.is_some());
            }
            if shared.is_empty() {
                continue;
            }
            match texts(&state_dir, &shared) {
                Ok(texts) => candidates.push(Candidate {
                    texts,
                    audit: unit.audit,
                    retry: false,
                }),
                Err(why) => {
                    let c = Candidate {
                        texts: shared.iter().map(|d| refused_text(&state_dir, d)).collect(),
                        audit: unit.audit,
                        retry: false,
                    };
                    self.refuse(link, &c, &why);
                    // Never tried again: what it holds is not text.
                    record_refused(&mut known, &c, true);
                }
            }
        }
        // Documents refused before are tried again with what changed (unless changed again).
        let touched: HashSet<String> = candidates.iter().flat_map(Candidate::keys).collect();
        for (path, r) in &known.refused {
            if touched.contains(path) || r.unreadable {
                continue;
            }
            let Some(Ok(key)) = Key::parse("", path.as_bytes()) else {
                continue;
            };
            let Some(file) = file_in_use(&state_dir, &key) else {
                continue;
            };
            candidates.push(Candidate {
                texts: vec![Text {
                    file,
                    key,
                    mod_revision: r.mod_revision,
                    text: r.value.clone(),
                }],
                audit: None,
                retry: true,
            });
        }
        // In etcd's order: a transaction is judged on what came before it, as a node that was
        // up when it was written judged it. A whole read has no order of transactions: the
        // data centers go first, as zones name them.
        if batch.whole {
            candidates.sort_by_key(|c| (!c.is_datacenters(), c.revision()));
        } else {
            candidates.sort_by_key(Candidate::revision);
        }
        let fresh = candidates.iter().any(|c| !c.retry);
        let (accepted, config) = if fresh {
            self.settle(link, candidates, &mut known).await?
        } else {
            (Vec::new(), None)
        };
        for t in accepted.iter().flat_map(|c| &c.texts) {
            known.applied(t.key.path(), t.mod_revision, t.text.is_some());
        }
        known.revision = known.revision.max(batch.revision);
        let changes: Vec<(PathBuf, Option<String>)> = accepted
            .iter()
            .flat_map(|c| &c.texts)
            .filter_map(|t| relative(&t.key).map(|rel| (rel, t.text.clone())))
            .collect();
        let cache = link.cache.clone();
        let saved = known.clone();
        let written = tokio::task::spawn_blocking(move || {
            if changes.is_empty() {
                cache.save_known(&saved)
            } else {
                cache.commit(&changes, &saved)
            }
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| format!("the cluster cache cannot be written: {e}")));
        if let Err(why) = written {
            tracing::error!(why, "cluster change not applied; it will be read again");
            return Err(why);
        }
        if let Some(config) = config {
            let generation = self.apply(config);
            self.metrics.cluster_changes.fetch_add(1, Ordering::Relaxed);
            for c in &accepted {
                self.announce(c, batch.whole);
            }
            tracing::info!(generation, revision = known.revision, "cluster change applied");
        }
        link.advance(known);
        Ok(())
    }

    /// Accepts the candidates in order, up to the first whose addition makes the configuration
    /// invalid; refuses that one and goes on with the rest. The whole lot is tried first (one
    /// validation when all is well); the first that breaks is found by halving (a few more).
    /// Returns the candidates accepted and the configuration they make, or an error when this
    /// node's own configuration does not validate (nothing is refused then: it is not the
    /// cluster's fault, and the batch comes again).
    async fn settle(
        &self,
        link: &Link,
        mut pending: Vec<Candidate>,
        known: &mut Known,
    ) -> Result<(Vec<Candidate>, Option<Config>), String> {
        let mut accepted: Vec<Candidate> = Vec::new();
        // The configuration `accepted` makes, once it holds anything.
        let mut config = None;
        while !pending.is_empty() {
            let mut broken = match self.check(accepted.iter().chain(&pending)).await {
                Ok(valid) => {
                    accepted.append(&mut pending);
                    config = Some(valid);
                    break;
                }
                Err(why) => why,
            };
            // `accepted` with the first `good` pending is valid, with the first `bad` is not.
            let (mut good, mut bad) = (0, pending.len());
            while bad - good > 1 {
                let mid = (good + bad) / 2;
                match self.check(accepted.iter().chain(&pending[..mid])).await {
                    Ok(valid) => {
                        good = mid;
                        config = Some(valid);
                    }
                    Err(why) => {
                        bad = mid;
                        broken = why;
                    }
                }
            }
            if good == 0
                && accepted.is_empty()
                && let Err(why) = self.check(std::iter::empty()).await
            {
                let why = format!(
                    "this node's own configuration does not validate ({why}): run `meridian check`; \
                     cluster changes wait until it does"
                );
                tracing::error!(why);
                return Err(why);
            }
            let rest = pending.split_off(bad);
            let culprit = pending.pop().expect("bad >= 1");
            accepted.append(&mut pending);
            self.refuse(link, &culprit, &broken);
            record_refused(known, &culprit, false);
            pending = rest;
        }
        Ok((accepted, config))
    }

    /// Validates the configuration with `candidates` over the documents in use; the first
    /// problem when it is invalid (a zone key holding another zone included).
    async fn check(&self, candidates: impl Iterator<Item = &Candidate>) -> Result<Config, String> {
        let candidates: Vec<&Candidate> = candidates.collect();
        let mut overlay = Overlay {
            admin_tls_unread: true,
            ..Overlay::default()
        };
        for t in candidates.iter().flat_map(|c| &c.texts) {
            overlay.files.insert(t.file.clone(), t.text.clone());
        }
        let config = self.validate(overlay).await.map_err(|p| first(&p))?;
        match misnamed(&config, &candidates).into_iter().next() {
            Some(why) => Err(why),
            None => Ok(config),
        }
    }

    /// Events for an accepted candidate: one per document, naming who changed it.
    fn announce(&self, c: &Candidate, whole: bool) {
        let reason = reason(c.audit.as_ref(), whole && c.audit.is_none());
        let reason = if c.retry {
            "applied now that the rest of the cluster state allows it".to_string()
        } else {
            reason
        };
        let single = c
            .audit
            .as_ref()
            .and_then(|a| a.what.clone())
            .filter(|_| c.texts.len() == 1);
        for t in &c.texts {
            let subject = single.clone().unwrap_or_else(|| subject_of(&t.key));
            let new = if t.text.is_some() { "edited" } else { "deleted" };
            self.events.emit(subject, "", new, reason.clone());
        }
    }

    /// Says that a cluster change was refused (log, event, metric, status), unless it is a
    /// document refused before and refused again.
    fn refuse(&self, link: &Link, c: &Candidate, why: &str) {
        if c.retry {
            return;
        }
        let keys = c.keys();
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

    /// Puts one override key into force as etcd holds it. An unreadable value is refused (and
    /// counts as seen); one that cannot be persisted is an error (the batch comes again).
    fn apply_override(&self, link: &Link, doc: &Doc, reason: &str) -> Result<(), String> {
        let applied = match &doc.key {
            Key::DcOverride(dc) => read_value::<DcOverride>(doc).map(|o| {
                self.overrides
                    .apply_dc(dc, o.state, o.weight, &self.events, reason)
            }),
            Key::EndpointOverride(key) => read_value::<EndpointOverride>(doc)
                .map(|o| self.overrides.apply_endpoint(key, o.state, &self.events, reason)),
            _ => return Ok(()),
        };
        match applied {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("override {} not applied: {e}", doc.key.path())),
            Err(why) => {
                tracing::error!(key = doc.key.path(), why, "override refused");
                self.events
                    .emit(format!("cluster {}", doc.key.path()), "", "refused", why);
                self.metrics.cluster_refused.fetch_add(1, Ordering::Relaxed);
                link.status.locked().refused += 1;
                Ok(())
            }
        }
    }
}

/// The texts of a unit's shared documents, or why they cannot be read.
fn texts(state_dir: &Path, docs: &[Doc]) -> Result<Vec<Text>, String> {
    docs.iter()
        .map(|d| {
            let text = match &d.value {
                None => None,
                Some(v) => Some(
                    String::from_utf8(v.clone())
                        .map_err(|_| format!("{} is not UTF-8 text", d.key.path()))?,
                ),
            };
            Ok(Text {
                file: cache_file(state_dir, &d.key),
                key: d.key.clone(),
                mod_revision: d.mod_revision,
                text,
            })
        })
        .collect()
}

/// A document refused before it could be read as text (kept as lossy text, for the record).
fn refused_text(state_dir: &Path, d: &Doc) -> Text {
    Text {
        file: cache_file(state_dir, &d.key),
        key: d.key.clone(),
        mod_revision: d.mod_revision,
        text: d.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
    }
}

/// Records a refused candidate's documents, to be tried again with later changes unless
/// `unreadable` (not text).
fn record_refused(known: &mut Known, c: &Candidate, unreadable: bool) {
    for t in &c.texts {
        known.refused.insert(
            t.key.path(),
            Refused {
                mod_revision: t.mod_revision,
                value: t.text.clone(),
                unreadable,
            },
        );
    }
}

/// Where the documents in use keep a shared document (the key is one: `relative` said so
/// when the unit was split).
fn cache_file(state_dir: &Path, key: &Key) -> PathBuf {
    file_in_use(state_dir, key).expect("a shared document")
}

/// What is wrong with each zone key of `candidates` that holds another zone.
fn misnamed(config: &Config, candidates: &[&Candidate]) -> Vec<String> {
    let mut wrong = Vec::new();
    for t in candidates.iter().flat_map(|c| &c.texts) {
        let Key::Zone(name) = &t.key else { continue };
        let holds = config.zones.iter().find(|z| z.source == t.file);
        if let Some(z) = holds.filter(|z| !zone_named(z, name)) {
            wrong.push(format!(
                "key {} holds zone {}: a zone's key is its name",
                t.key.path(),
                z.origin
            ));
        }
    }
    wrong
}

fn first(problems: &Problems) -> String {
    problems.0.first().map(|p| p.to_string()).unwrap_or_default()
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

/// An override's value, or why it does not read (a delete reads as no override).
fn read_value<T: DeserializeOwned + Default>(doc: &Doc) -> Result<T, String> {
    match &doc.value {
        None => Ok(T::default()),
        Some(v) => serde_json::from_slice(v).map_err(|e| format!("{} does not read: {e}", doc.key.path())),
    }
}
