//! The one place configuration changes are applied: SIGHUP, `POST /reload` and zone edits all
//! come through here, one at a time.

use crate::config::{self, CommandLine, Config, Overlay, Problems};
use crate::events::Events;
use crate::health::HealthView;
use crate::health::scheduler::Scheduler;
use crate::lock::LockExt;
use crate::metrics::Metrics;
use crate::overrides::Overrides;
use crate::state::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Changes the log filter at run time (for `log.level` at reload).
pub type LogReload = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Shared runtime state and the operations that change it.
pub struct Control {
    pub store: Arc<Store>,
    pub scheduler: Arc<Scheduler>,
    pub overrides: Arc<Overrides>,
    pub events: Arc<Events>,
    pub metrics: Arc<Metrics>,
    pub config_path: PathBuf,
    /// The configuration last applied (for its paths and server settings). Its zones keep their
    /// origin and file, not their records: those are in the snapshot.
    pub running: Mutex<Config>,
    /// Held by a reload or an edit from validation to publication, so that two never interleave.
    pub changes: tokio::sync::Mutex<()>,
    /// Set once the listeners are up.
    pub ready: AtomicBool,
    /// Applies `log.level` at reload; `None` when the level is fixed by the command line.
    pub log_reload: Mutex<Option<LogReload>>,
    /// What the command line set, applied to every configuration loaded.
    command_line: CommandLine,
}

impl Control {
    /// Everything but the listeners, for `config`: overrides loaded from its state_dir, a probe
    /// scheduler, a store (not yet publishing health: call `start`).
    pub fn new(config: Config, stop: &tokio_util::sync::CancellationToken) -> Result<Arc<Control>, String> {
        Self::with_command_line(config, CommandLine::default(), stop)
    }

    /// Like [`Control::new`], for a server whose command line set some settings (`config` has
    /// them applied already; every later configuration gets them too).
    pub fn with_command_line(
        config: Config,
        command_line: CommandLine,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Control>, String> {
        remove_leftovers(&config);
        let events = Arc::new(Events::default());
        let metrics = Arc::new(Metrics::default());
        let overrides = Overrides::load(Some(config.state_dir.clone()))?;
        let scheduler = Scheduler::new(
            crate::health::scheduler::Settings {
                max_concurrent: config.health.max_concurrent.get(),
                partition_guard: config.health.partition_guard,
            },
            events.clone(),
            metrics.clone(),
            stop.child_token(),
        );
        let mut config = config;
        let running = without_zone_data(&mut config);
        let store = Arc::new(Store::new(config, Arc::default(), metrics.clone()));
        Ok(Arc::new(Control {
            store,
            scheduler,
            overrides: Arc::new(overrides),
            events,
            metrics,
            config_path: running.path.clone(),
            running: Mutex::new(running),
            changes: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            log_reload: Mutex::new(None),
            command_line,
        }))
    }

    /// Starts the probes, waits for their first round (at most `wait`; by default as long as a
    /// full round can take), and publishes the snapshot again with real health.
    pub async fn start(&self, wait: Option<std::time::Duration>) {
        let config = self.running.locked().clone();
        let health = self.health_for(&config);
        if self.scheduler.probe_count() > 0 {
            let wait = wait.unwrap_or_else(|| config.first_round_bound(self.scheduler.probe_count()));
            let started = std::time::Instant::now();
            self.scheduler.first_round(wait).await;
            tracing::info!(probes = self.scheduler.probe_count(), took = ?started.elapsed(), "first round of health checks done");
        }
        self.store.replace_health(health);
        release_freed_memory();
    }

    /// The answer path's health view for `config`'s data centers: probes (started or stopped as
    /// needed) and overrides.
    pub fn health_for(&self, config: &Config) -> Arc<HealthView> {
        let probes = self.scheduler.sync(&config.datacenters);
        let (dc_overrides, endpoint_overrides) = self.overrides.slots_for(&config.datacenters);
        Arc::new(HealthView {
            probes: probes.probes.clone(),
            dc_overrides,
            endpoint_overrides,
        })
    }

    /// Validates the configuration on disk with `overlay` on top, off the async threads.
    pub async fn validate(&self, overlay: Overlay) -> Result<Config, Problems> {
        let path = self.config_path.clone();
        let geo = self.store.load().geo.clone();
        tokio::task::spawn_blocking(move || config::load_overlay(&path, geo.as_ref(), &overlay))
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
    pub fn apply(&self, mut new: Config) -> u64 {
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
        drop(running);
        let health = self.health_for(&new);
        let running = without_zone_data(&mut new);
        let generation = self.store.publish(new, health);
        *self.running.locked() = running;
        release_freed_memory();
        generation
    }

    /// Re-reads everything from disk and publishes it, or keeps the old on any problem.
    pub async fn reload(&self) -> Result<u64, Problems> {
        let _one_at_a_time = self.changes.lock().await;
        match self.validate(Overlay::default()).await {
            Ok(new) => {
                let zones = new.zones.len();
                let generation = self.apply(new);
                self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(zones, generation, "reloaded");
                Ok(generation)
            }
            Err(problems) => {
                self.metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
                for p in &problems.0 {
                    tracing::error!(problem = %p, "reload rejected; still serving the previous config");
                }
                Err(problems)
            }
        }
    }

    /// Admin tokens of the running configuration.
    pub fn tokens(&self) -> Vec<config::AdminToken> {
        self.running.locked().admin.tokens.clone()
    }
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
        crate::store::remove_leftovers(&dir);
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

/// Hands memory freed by loading (the parsed YAML of a large zone is several times the size of
/// the compiled zone) back to the system, so the resident size is what is being served.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
