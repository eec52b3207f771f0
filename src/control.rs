//! The one place configuration changes are applied: SIGHUP, `POST /reload` and zone edits all
//! come through here, one at a time.

use crate::config::{self, Config, Overlay, Problems};
use crate::events::Events;
use crate::health::HealthView;
use crate::health::scheduler::Scheduler;
use crate::metrics::Metrics;
use crate::overrides::Overrides;
use crate::state::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared runtime state and the operations that change it.
pub struct Control {
    pub store: Arc<Store>,
    pub scheduler: Arc<Scheduler>,
    pub overrides: Arc<Overrides>,
    pub events: Arc<Events>,
    pub metrics: Arc<Metrics>,
    pub config_path: PathBuf,
    /// The configuration last applied (for its paths and server settings).
    pub running: Mutex<Config>,
    /// Held by a reload or an edit from validation to publication, so that two never interleave.
    pub changes: tokio::sync::Mutex<()>,
    /// Set once the listeners are up.
    pub ready: AtomicBool,
}

impl Control {
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
                }]))
            })
    }

    /// Publishes a validated configuration. Returns the snapshot generation.
    pub fn apply(&self, new: Config) -> u64 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if new.dns != running.dns || new.log != running.log || new.admin.listen != running.admin.listen {
            tracing::warn!("dns, log and admin.listen changes take effect at the next restart");
        }
        drop(running);
        let health = self.health_for(&new);
        let generation = self.store.publish(new.clone(), health);
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = new;
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
    pub fn tokens(&self) -> Vec<config::Token> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admin
            .tokens
            .clone()
    }
}
