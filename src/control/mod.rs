//! The one place configuration changes are applied: SIGHUP, `POST /reload` and zone edits all
//! come through here, one at a time.

mod cluster;

pub use cluster::{ClusterError, ClusterStatus};

use crate::config::{self, CommandLine, Config, Overlay, Problems};
use crate::events::Events;
use crate::health::HealthView;
use crate::health::scheduler::Scheduler;
use crate::lock::LockExt;
use crate::metrics::Metrics;
use crate::model::gslb::{EndpointKey, Forced};
use crate::name::Name;
use crate::overrides::{OverrideError, Overrides, Saved};
use crate::state::{Snapshot, Store};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Changes the log filter at run time (for `log.level` at reload).
pub type LogReload = Arc<dyn Fn(&str) -> Result<(), LogLevelError> + Send + Sync>;

/// Why a new log level was not applied.
#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    /// Not a filter `tracing` understands (validation checks this first).
    #[error("`{level}` is not a log filter: {reason}")]
    Invalid { level: String, reason: String },
    /// The logger is gone (the process is stopping).
    #[error("the log filter cannot be changed: {0}")]
    Reload(String),
}

/// Shared runtime state and the operations that change it. Its parts are private: the admin
/// API and the wiring in `app` go through the methods, which say what each may do.
pub struct Control {
    store: Arc<Store>,
    scheduler: Arc<Scheduler>,
    overrides: Overrides,
    events: Arc<Events>,
    metrics: Arc<Metrics>,
    config_path: PathBuf,
    /// The configuration last applied (for its paths and server settings). Its zones keep their
    /// origin and file, not their records: those are in the snapshot.
    running: Mutex<Config>,
    /// Held by a reload or an edit from validation to publication, so that two never interleave.
    changes: tokio::sync::Mutex<()>,
    /// Set once the listeners are up.
    ready: AtomicBool,
    /// Applies `log.level` at reload; `None` when the level is fixed by the command line.
    log_reload: Mutex<Option<LogReload>>,
    /// What the command line set, applied to every configuration loaded.
    command_line: CommandLine,
    /// In cluster mode, the link to etcd.
    cluster: Option<cluster::Link>,
    /// The files last applied, by what they hold (see [`Fingerprint`]): what a reload changed.
    fingerprint: Mutex<Fingerprint>,
    /// Digests of the zone files (and imports) read so far, so that those not modified since
    /// are not read again by the next change.
    file_digests: Arc<config::FileDigests>,
    /// Told of every change applied: what it freed is handed back to the system once changes
    /// are quiet (`release_memory_after_changes`).
    changed: tokio::sync::Notify,
}

/// How long changes must be quiet before the memory they freed is handed back: the request
/// that made an edit frees its copy of the zone file after it answers, and the last reader of
/// the snapshot replaced lets go of it after its query.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A hash of the configuration file and of each zone as it was read (by zone: the digests of
/// its file and of the master files it imports, from its stamp), to tell in a reload's event
/// what changed on disk.
type Fingerprint = std::collections::BTreeMap<String, u64>;

fn fingerprint(config: &Config) -> Fingerprint {
    let mut fp = Fingerprint::new();
    let file = std::fs::read(&config.path).map_or(0, |bytes| crate::rng::hash(&[&bytes]));
    fp.insert(String::new(), file);
    for zone in &config.zones {
        let stamp = &zone.stamp;
        let mut parts: Vec<&[u8]> = vec![&stamp.text];
        parts.extend(stamp.imports.iter().map(|(_, d)| &d[..]));
        fp.insert(zone.origin.to_string(), crate::rng::hash(&parts));
    }
    fp
}

/// What differs between two fingerprints, in a few words: `zones changed: a., b.; zones added:
/// c.; meridian.yaml changed`, or `nothing changed`.
fn what_changed(old: &Fingerprint, new: &Fingerprint, config_file: &std::path::Path) -> String {
    let names = |pick: &dyn Fn(&String) -> bool, map: &Fingerprint| -> Vec<String> {
        map.keys().filter(|k| !k.is_empty() && pick(k)).cloned().collect()
    };
    let mut parts = Vec::new();
    if old.get("") != new.get("") {
        parts.push(format!("{} changed", config_file.display()));
    }
    for (label, list) in [
        (
            "zones changed",
            names(&|k| old.get(k).is_some_and(|h| Some(h) != new.get(k)), new),
        ),
        ("zones added", names(&|k| !old.contains_key(k), new)),
        ("zones removed", names(&|k| !new.contains_key(k), old)),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}: {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "nothing changed".to_string()
    } else {
        parts.join("; ")
    }
}

/// Why `Control` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Overrides(#[from] OverrideError),
    #[error("cluster: {0}")]
    Cluster(String),
}

/// Why an override was not set. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(transparent)]
    Override(#[from] OverrideError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Why a file change was not applied. Nothing was written unless the error says so.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The configuration with the change would be invalid: nothing was written.
    #[error("invalid: {0}")]
    Invalid(Problems),
    /// Writing the file failed: the old file and the old configuration stay.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// In cluster mode, etcd did not take the change.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Held while one change is prepared and applied (see [`Control::begin_change`]).
pub struct ChangeGuard<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
    /// Whose changes it holds.
    of: &'a Control,
}

impl Control {
    /// Everything but the listeners, for `config`: overrides loaded from its state_dir, a probe
    /// scheduler, a store (not yet publishing health: call `start`).
    pub fn new(
        config: Config,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Control>, SetupError> {
        Self::with_command_line(config, CommandLine::default(), stop)
    }

    /// Like [`Control::new`], for a server whose command line set some settings (`config` has
    /// them applied already; every later configuration gets them too).
    pub fn with_command_line(
        config: Config,
        command_line: CommandLine,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Control>, SetupError> {
        remove_leftovers(&config);
        let events = Arc::new(Events::default());
        let metrics = Arc::new(Metrics::default());
        let cluster = match &config.cluster {
            Some(settings) => Some(cluster::Link::open(settings, &config.state_dir)?),
            None => None,
        };
        let overrides = Overrides::load(Some(config.overrides_dir()))?;
        let scheduler = Scheduler::new(
            crate::health::scheduler::Settings {
                max_concurrent: config.health.max_concurrent.get(),
                partition_guard: config.health.partition_guard,
            },
            events.clone(),
            metrics.clone(),
            stop.child_token(),
        );
        if let Some(link) = &cluster {
            scheduler.join_cluster(link.node(), config.health.quorum);
        }
        let mut config = config;
        let fingerprint = Mutex::new(fingerprint(&config));
        let running = without_zone_data(&mut config);
        let store = Arc::new(Store::new(config, Arc::default(), metrics.clone()));
        Ok(Arc::new(Control {
            store,
            scheduler,
            overrides,
            events,
            metrics,
            config_path: running.path.clone(),
            running: Mutex::new(running),
            changes: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            log_reload: Mutex::new(None),
            command_line,
            fingerprint,
            cluster,
            file_digests: Arc::default(),
            changed: tokio::sync::Notify::new(),
        }))
    }

    /// Starts the probes, waits for their first round (at most `wait`; by default as long as a
    /// full round can take), and publishes the snapshot again with real health.
    pub async fn start(&self, wait: Option<std::time::Duration>) {
        self.synced().await;
        // Changes read from etcd meanwhile wait: they would publish health this start then
        // replaces.
        let _change = self.begin_change().await;
        let config = self.running.locked().clone();
        let health = self.health_for(&config);
        self.probes_started();
        if self.scheduler.probe_count() > 0 {
            let wait = wait.unwrap_or_else(|| config.first_round_bound(self.scheduler.probe_count()));
            let started = std::time::Instant::now();
            self.scheduler.first_round(wait).await;
            tracing::info!(probes = self.scheduler.probe_count(), took = ?started.elapsed(), "first round of health checks done");
        }
        if let Some(settings) = &config.cluster {
            // The first answers count the other nodes' views, when etcd answers in time.
            self.views_read(settings.timeout).await;
        }
        self.store.replace_health(health);
        // The parsed files of a large zone are several times the size of the compiled zone.
        crate::memory::release_freed();
    }

    /// The answer path's health view for `config`'s data centers: probes (started or stopped as
    /// needed) and overrides.
    fn health_for(&self, config: &Config) -> Arc<HealthView> {
        let probes = self.scheduler.sync(&config.datacenters);
        let health = Arc::new(HealthView::new(probes, &self.overrides, &config.datacenters));
        let events_view = Arc::new(health.without_endpoint_overrides());
        self.scheduler.watch(&config.datacenters, events_view);
        health
    }

    /// Validates the configuration on disk with `overlay` on top, off the async threads. Zone
    /// files that read as the zones serving are not parsed again (`config::load_known`): the
    /// caller holds the change guard until it applies the result, so those zones are still
    /// serving then, and the new snapshot shares them.
    async fn validate(&self, overlay: Overlay) -> Result<Config, Problems> {
        let path = self.config_path.clone();
        let geo = self.store.load().geo.clone();
        let known = config::Known {
            files: self.file_digests.clone(),
            ..self.store.known()
        };
        tokio::task::spawn_blocking(move || config::load_known(&path, geo.as_ref(), &overlay, &known))
            .await
            .unwrap_or_else(|e| {
                Err(Problems(vec![config::Problem {
                    file: PathBuf::new(),
                    line: 1,
                    col: 1,
                    message: format!("validation task failed: {e}"),
                    field: None,
                }]))
            })
    }

    /// Publishes a validated configuration. Returns the snapshot generation.
    fn apply(&self, mut new: Config) -> u64 {
        self.command_line.apply(&mut new);
        let running = self.running.locked();
        if new.dns != running.dns
            || new.log.format != running.log.format
            || new.admin.listen != running.admin.listen
        {
            tracing::warn!("dns, log.format and admin.listen changes take effect at the next restart");
        }
        if new.log.level != running.log.level {
            match self.log_reload.locked().as_ref() {
                Some(reload) => match reload(&new.log.level) {
                    Ok(()) => tracing::info!(level = %new.log.level, "log level changed"),
                    Err(e) => tracing::error!(error = %e, "log level not changed"),
                },
                None => tracing::warn!("log.level changed, but --log-level or RUST_LOG fixes the level"),
            }
        }
        if new.cluster != running.cluster {
            tracing::warn!("cluster changes take effect at the next restart");
        }
        let quorum_changed = new.health.quorum != running.health.quorum;
        drop(running);
        self.count_by(new.health.quorum);
        let health = self.health_for(&new);
        let running = without_zone_data(&mut new);
        let generation = self.store.publish(new, health);
        *self.running.locked() = running;
        if quorum_changed {
            self.rule_changed();
        }
        self.changed.notify_one();
        generation
    }

    /// Hands the memory freed by changes back to the system, `RELEASE_AFTER` after the last
    /// change. glibc keeps freed memory in its arenas (one per thread that allocated: an edit
    /// parses and compiles on other threads than the one before); trimming at the end of
    /// `apply` came before the edit's own copies of the file and the old snapshot were freed,
    /// and the resident size grew by a zone's load with every few edits.
    pub async fn release_memory_after_changes(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.changed.notified() => {}
            }
            // A change meanwhile restarts the wait.
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.changed.notified() => continue,
                    _ = tokio::time::sleep(RELEASE_AFTER) => break,
                }
            }
            let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
        }
    }

    /// Re-reads everything from disk and publishes it, or keeps the old on any problem. Either
    /// way an event says so (`reload`, kind edits): applied with what changed on disk, or
    /// rejected with the number of problems and the first.
    pub async fn reload(&self) -> Result<u64, Problems> {
        let _one_at_a_time = self.begin_change().await;
        match self.validate(Overlay::default()).await {
            Ok(new) => {
                let zones = new.zones.len();
                let changed = self.refingerprint(&new);
                let generation = self.apply(new);
                self.metrics.reload_applied(std::time::SystemTime::now());
                tracing::info!(zones, generation, "reloaded");
                self.events.emit(
                    "reload",
                    "",
                    "applied",
                    format!("{changed} (snapshot generation {generation})"),
                );
                Ok(generation)
            }
            Err(problems) => {
                self.metrics.reload_rejected();
                for p in &problems.0 {
                    tracing::error!(problem = %p, "reload rejected; still serving the previous config");
                }
                let n = problems.0.len();
                let first = problems.0.first().map(|p| p.to_string()).unwrap_or_default();
                self.events.emit(
                    "reload",
                    "",
                    "rejected",
                    format!(
                        "{n} problem{}, still serving the previous configuration; first: {first}",
                        if n == 1 { "" } else { "s" }
                    ),
                );
                Err(problems)
            }
        }
    }

    /// Records the files of `config` as the ones applied; what changed since the last, in words.
    fn refingerprint(&self, config: &Config) -> String {
        let new = fingerprint(config);
        let old = std::mem::replace(&mut *self.fingerprint.locked(), new.clone());
        let file = config.path.file_name().map_or(config.path.clone(), PathBuf::from);
        what_changed(&old, &new, &file)
    }

    /// Watches the GeoIP database file and swaps in a replacement (as `geoipupdate` writes it)
    /// without a reload. A file that cannot be read keeps the old database serving.
    pub async fn watch_geoip(
        self: Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_at = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Without a database now (geoip: removed, or not configured yet), wait for one.
            let Some(current) = self.store.load().geo.clone() else {
                continue;
            };
            let identity = crate::file_id::FileId::of(&current.path);
            if identity.is_none() || identity == current.identity || identity == failed_at {
                continue;
            }
            let path = current.path.clone();
            match tokio::task::spawn_blocking(move || crate::geo::GeoDb::open(&path)).await {
                Ok(Ok(db)) => {
                    let records = db.len();
                    failed_at = None;
                    match self.replace_geo(&current, db).await {
                        Some(generation) => {
                            tracing::info!(path = %current.path.display(), records, generation, "GeoIP database reloaded")
                        }
                        None => {
                            tracing::info!(path = %current.path.display(), "GeoIP file changed, but a reload replaced the database meanwhile: kept the reload's")
                        }
                    }
                }
                Ok(Err(e)) => {
                    failed_at = identity;
                    tracing::error!(error = %e, "GeoIP database not reloaded; still using the previous one");
                }
                Err(e) => tracing::error!(error = %e, "GeoIP reload task failed"),
            }
        }
    }

    /// Swaps `db` in for `current`, the database it was read to replace, as a change like any
    /// other (never in the middle of a reload or an edit). When a reload has replaced or removed
    /// `current` meanwhile, the reload's choice stands: nothing is swapped (`None`).
    async fn replace_geo(&self, current: &Arc<crate::geo::GeoDb>, db: crate::geo::GeoDb) -> Option<u64> {
        let _one_at_a_time = self.begin_change().await;
        let now = self.store.load().geo.clone();
        now.is_some_and(|now| Arc::ptr_eq(&now, current))
            .then(|| self.store.replace_geo(Arc::new(db)))
    }

    /// The configuration as running: every setting, and each zone's origin and file without
    /// its records (those are in the snapshot).
    pub fn settings(&self) -> Config {
        self.running.locked().clone()
    }

    /// Admin tokens of the running configuration.
    pub fn tokens(&self) -> Vec<config::AdminToken> {
        self.running.locked().admin.tokens.clone()
    }

    /// The admin API's settings as running (they change at restart only, but for tokens).
    pub fn admin_settings(&self) -> config::AdminConfig {
        self.running.locked().admin.clone()
    }

    /// How this node counts the cluster's views of a target (`health.quorum`, as running).
    pub fn quorum(&self) -> config::Quorum {
        self.running.locked().health.quorum
    }

    /// How long a stop waits for work in flight (`dns.shutdown_grace`).
    pub fn shutdown_grace(&self) -> std::time::Duration {
        self.running.locked().dns.shutdown_grace
    }

    /// The snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        arc_swap::Guard::into_inner(self.store.load())
    }

    /// Whether the listeners are up and the first health round is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the server ready (listeners up) or not (stopping).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Applies `log.level` at reload from now on.
    pub fn set_log_reload(&self, reload: LogReload) {
        *self.log_reload.locked() = Some(reload);
    }

    /// The snapshot store, for the DNS listeners.
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The probe scheduler, for shutdown.
    pub fn scheduler(&self) -> Arc<Scheduler> {
        self.scheduler.clone()
    }

    /// Distinct probes running.
    pub fn probe_count(&self) -> usize {
        self.scheduler.probe_count()
    }

    /// Whether the partition guard holds health now, and how often it has engaged.
    pub fn partition_guard(&self) -> GuardStatus {
        GuardStatus {
            engaged: self.scheduler.guard().is_engaged(),
            alarms: self.scheduler.guard().alarms(),
        }
    }

    /// The event log.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The process's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The overrides in force, as persisted.
    pub fn overrides(&self) -> Saved {
        self.overrides.saved()
    }

    /// Sets a data center's override on behalf of `who` (in cluster mode, on every node);
    /// returns the previous state.
    pub async fn set_dc_override(&self, dc: &str, state: Forced, who: &str) -> Result<Forced, SetError> {
        match &self.cluster {
            Some(link) => self.set_dc_in_cluster(link, dc, state, who).await,
            None => Ok(self.overrides.set_dc(dc, state, &self.events, who)?),
        }
    }

    /// Sets an endpoint's override on behalf of `who`; returns the previous state.
    pub async fn set_endpoint_override(
        &self,
        key: &EndpointKey,
        state: Forced,
        who: &str,
    ) -> Result<Forced, SetError> {
        match &self.cluster {
            Some(link) => self.set_endpoint_in_cluster(link, key, state, who).await,
            None => Ok(self.overrides.set_endpoint(key, state, &self.events, who)?),
        }
    }

    /// Sets a data center's runtime weight on behalf of `who` (`None`: the configured weights).
    pub async fn set_dc_weight(&self, dc: &str, weight: Option<u32>, who: &str) -> Result<(), SetError> {
        match &self.cluster {
            Some(link) => self.set_weight_in_cluster(link, dc, weight, who).await,
            None => Ok(self.overrides.set_weight(dc, weight, &self.events, who)?),
        }
    }

    /// Every zone served, with the file it was loaded from.
    pub fn zone_files(&self) -> Vec<(Name, PathBuf)> {
        self.running
            .locked()
            .zones
            .iter()
            .map(|z| (z.origin.clone(), z.source.clone()))
            .collect()
    }

    /// The file of zone `zone`, and whether it is being served: an existing zone's file is the
    /// one it was loaded from; a new one's is `<stem>.yaml` in `zones_dir`.
    pub fn zone_file(&self, zone: &Name, stem: &str) -> (PathBuf, bool) {
        let running = self.running.locked();
        if let Some(z) = running.zones.iter().find(|z| z.origin.same_as(zone)) {
            return (z.source.clone(), true);
        }
        (running.zones_dir.join(format!("{stem}.yaml")), false)
    }

    /// Waits for any other change (reload or edit) to finish; the change holding the guard is
    /// the only one until the guard is dropped.
    pub async fn begin_change(&self) -> ChangeGuard<'_> {
        ChangeGuard {
            _held: self.changes.lock().await,
            of: self,
        }
    }

    /// Validates the configuration with `path` replaced by `text` (or removed, for `None`),
    /// then writes the file and publishes the result. Counted and logged as an event on behalf
    /// of `who`; `subject` names what changed. Returns the snapshot generation. In cluster
    /// mode the file is a zone of the cluster cache, and the change is written to etcd,
    /// conditioned on the revision this node read (`CommitError::Cluster` when another node
    /// changed it meanwhile); it is applied here, as on every node, by the watch.
    pub async fn commit(
        &self,
        change: ChangeGuard<'_>,
        path: &std::path::Path,
        text: Option<String>,
        subject: &str,
        who: &str,
    ) -> Result<u64, CommitError> {
        assert!(std::ptr::eq(change.of, self), "a change guard of another Control");
        if let Some(link) = &self.cluster {
            return self
                .commit_to_cluster(link, change, path, text, subject, who)
                .await;
        }
        let mut overlay = Overlay {
            admin_tls_unread: true,
            ..Overlay::default()
        };
        overlay.files.insert(path.to_path_buf(), text.clone());
        let config = self.validate(overlay).await.map_err(CommitError::Invalid)?;
        let io = match &text {
            Some(t) => crate::files::write_atomic(path, t.as_bytes()),
            None => crate::files::remove_durable(path),
        };
        io.map_err(|source| CommitError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        self.refingerprint(&config);
        let generation = self.apply(config);
        self.metrics.zone_edits.fetch_add(1, Ordering::Relaxed);
        self.events.emit(
            subject.to_string(),
            "",
            if text.is_some() { "edited" } else { "deleted" },
            format!("admin API ({who})"),
        );
        Ok(generation)
    }
}

/// The partition guard as the API shows it.
#[derive(Clone, Copy, Debug)]
pub struct GuardStatus {
    pub engaged: bool,
    pub alarms: u64,
}

/// Removes temp files that writes cut short by a crash left where Meridian writes: `zones_dir`,
/// `state_dir`, and the directories that symlinked zone files point into.
fn remove_leftovers(config: &Config) {
    let mut dirs = vec![config.zones_dir.clone(), config.state_dir.clone()];
    for zone in &config.zones {
        if let Some(dir) = std::fs::canonicalize(&zone.source)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
        {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        crate::files::remove_leftovers(&dir);
    }
}

/// A copy of `config` for `running`: everything but the zones' records, which live in the
/// published snapshot alone (a second copy doubled the memory of a large zone).
fn without_zone_data(config: &mut Config) -> Config {
    let nodes: Vec<_> = config
        .zones
        .iter_mut()
        .map(|z| std::mem::take(&mut z.nodes))
        .collect();
    let copy = config.clone();
    for (zone, nodes) in config.zones.iter_mut().zip(nodes) {
        zone.nodes = nodes;
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::build::{Row, Schema, build};

    /// A reload's "what changed" comes from the zones as they were read, imports included,
    /// and reads no zone file again (with 1,000 zones, that was every file at every change).
    #[test]
    fn what_changed_is_what_was_read_imports_included() {
        let dir = tempfile::tempdir().unwrap();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        let config = write_config(dir.path(), false);
        std::fs::write(zones.join("a.test.yaml"), "zone: a.test\nimport: a.test.zone\n").unwrap();
        let master = |serial: u32, addr: &str| {
            format!("$TTL 300\n@ SOA ns1 h {serial} 7200 1800 259200 900\n@ NS ns1\nns1 A {addr}\n")
        };
        std::fs::write(zones.join("a.test.zone"), master(1, "192.0.2.1")).unwrap();
        std::fs::write(
            zones.join("b.test.yaml"),
            "zone: b.test\nsoa: { mname: ns1.b.test., rname: h.b.test. }\nns: [ns1.b.test.]\n\
             records: { ns1: { A: [192.0.2.2] } }\n",
        )
        .unwrap();
        let before = fingerprint(&crate::config::load(&config).unwrap());
        std::fs::write(zones.join("a.test.zone"), master(2, "192.0.2.9")).unwrap();
        let after = crate::config::load(&config).unwrap();
        // What was read counts, not what the disk holds by the time the event is written.
        std::fs::remove_file(zones.join("b.test.yaml")).unwrap();
        assert_eq!(
            what_changed(&before, &fingerprint(&after), &config),
            "zones changed: a.test."
        );
    }

    fn write_config(dir: &std::path::Path, geoip: bool) -> PathBuf {
        let path = dir.join("meridian.yaml");
        let geo = if geoip {
            "geoip: { database: geo.mmdb }\n"
        } else {
            ""
        };
        std::fs::write(&path, format!("zones_dir: zones\n{geo}")).unwrap();
        path
    }

    /// The GeoIP watcher read the file to replace the database it saw; a reload that removed
    /// or replaced that database meanwhile wins.
    #[tokio::test]
    async fn a_geoip_swap_never_undoes_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        let row = Row {
            network: crate::geo::parse_cidr("10.0.0.0/8").unwrap(),
            continent: Some("EU".into()),
            country: Some("DE".into()),
            subdivision: None,
            coords: None,
            city: None,
            asn: None,
            as_org: None,
        };
        let db = dir.path().join("geo.mmdb");
        std::fs::write(&db, build(&[row], Schema::MaxMind, "test")).unwrap();
        let open = || crate::geo::GeoDb::open(&db).unwrap();
        let path = write_config(dir.path(), true);
        let stop = tokio_util::sync::CancellationToken::new();
        let ctl = Control::new(config::load(&path).unwrap(), &stop).unwrap();
        let seen = ctl.snapshot().geo.clone().expect("a database");

        // A reload drops geoip: while the watcher was reading the file.
        write_config(dir.path(), false);
        ctl.reload().await.unwrap();
        assert_eq!(ctl.replace_geo(&seen, open()).await, None);
        assert!(ctl.snapshot().geo.is_none(), "the reload's choice stands");

        // Configured again: the watcher's swap of what it saw goes through.
        write_config(dir.path(), true);
        ctl.reload().await.unwrap();
        let seen = ctl.snapshot().geo.clone().expect("a database");
        assert!(ctl.replace_geo(&seen, open()).await.is_some());
        let now = ctl.snapshot().geo.clone().expect("a database");
        assert!(!Arc::ptr_eq(&now, &seen), "swapped");
        stop.cancel();
    }
}
