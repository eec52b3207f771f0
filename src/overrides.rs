//! Operator overrides from the admin API: drain, force up or down, runtime weights. They beat
//! probes, take effect on the next query (the answer path reads atomics), survive restarts
//! (persisted in `state_dir/overrides.json`), and each change is an event.

use crate::events::Events;
use crate::lock::LockExt;
use crate::model::gslb::{Datacenter, EndpointKey, Forced};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// How an override state is kept in a slot's atomic.
fn to_u8(f: Forced) -> u8 {
    match f {
        Forced::Auto => 0,
        Forced::Up => 1,
        Forced::Down => 2,
        Forced::Drained => 3,
    }
}

fn from_u8(v: u8) -> Forced {
    match v {
        1 => Forced::Up,
        2 => Forced::Down,
        3 => Forced::Drained,
        _ => Forced::Auto,
    }
}

/// One live override slot, shared with the answer path.
#[derive(Debug, Default)]
pub struct Slot {
    state: AtomicU8,
    /// Runtime weight; 0 = the configured one.
    weight: AtomicU32,
}

impl Slot {
    pub fn get(&self) -> Forced {
        from_u8(self.state.load(Ordering::Relaxed))
    }
    pub fn weight(&self) -> Option<u32> {
        Some(self.weight.load(Ordering::Relaxed)).filter(|w| *w > 0)
    }
}

/// What is persisted: the overrides in force.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq, Clone)]
pub struct Saved {
    #[serde(default)]
    pub datacenters: BTreeMap<String, SavedDc>,
    /// Keyed `dc/address`.
    #[serde(default)]
    pub endpoints: BTreeMap<EndpointKey, Forced>,
}

impl Saved {
    /// How many overrides are in force.
    pub fn len(&self) -> usize {
        self.datacenters.len() + self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq, Clone)]
pub struct SavedDc {
    #[serde(default)]
    pub state: Forced,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Why an override could not be set.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("no data center `{0}`")]
    NoDatacenter(String),
    #[error("no endpoint {} in data center `{}`", .0.address, .0.dc)]
    NoEndpoint(EndpointKey),
    #[error("cannot persist overrides in {path}: {source}")]
    Persist { path: String, source: std::io::Error },
    #[error("cannot read overrides from {path}: {reason}")]
    Load { path: String, reason: String },
}

/// All overrides. Slots are keyed by name so they outlive reloads; `slots_for` hands the
/// answer path the slots of the current data centers, by id.
#[derive(Debug)]
pub struct Overrides {
    path: Option<PathBuf>,
    dcs: Mutex<BTreeMap<String, Arc<Slot>>>,
    endpoints: Mutex<BTreeMap<EndpointKey, Arc<Slot>>>,
    /// Known names, for 404s: data center → endpoint addresses.
    known: Mutex<BTreeMap<String, BTreeSet<IpAddr>>>,
    /// Held from a change to its persistence, so that the file always holds every change made
    /// (two writers could otherwise rename their files in the wrong order).
    changes: Mutex<()>,
}

impl Overrides {
    /// Loads persisted overrides from `state_dir` (none when the file is absent).
    pub fn load(state_dir: Option<PathBuf>) -> Result<Overrides, OverrideError> {
        let path = state_dir.map(|d| d.join("overrides.json"));
        let saved: Saved = match &path {
            Some(p) if p.exists() => {
                let err = |reason: String| OverrideError::Load {
                    path: p.display().to_string(),
                    reason,
                };
                let text = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
            }
            _ => Saved::default(),
        };
        let o = Overrides {
            path,
            dcs: Mutex::default(),
            endpoints: Mutex::default(),
            known: Mutex::default(),
            changes: Mutex::default(),
        };
        for (name, dc) in saved.datacenters {
            let slot = o.dc_slot(&name);
            slot.state.store(to_u8(dc.state), Ordering::Relaxed);
            slot.weight.store(dc.weight.unwrap_or(0), Ordering::Relaxed);
        }
        for (key, state) in saved.endpoints {
            o.endpoint_slot(&key).state.store(to_u8(state), Ordering::Relaxed);
        }
        Ok(o)
    }

    fn dc_slot(&self, name: &str) -> Arc<Slot> {
        self.dcs.locked().entry(name.to_string()).or_default().clone()
    }

    fn endpoint_slot(&self, key: &EndpointKey) -> Arc<Slot> {
        self.endpoints.locked().entry(key.clone()).or_default().clone()
    }

    /// Slots for the configured data centers (by `DcId`) and endpoints (by `EndpointId`).
    pub fn slots_for(&self, dcs: &[Datacenter]) -> (Vec<Arc<Slot>>, Vec<Option<Arc<Slot>>>) {
        let mut known = BTreeMap::new();
        let dc_slots = dcs.iter().map(|d| self.dc_slot(&d.name)).collect();
        let max = dcs
            .iter()
            .flat_map(|d| &d.endpoints)
            .map(|e| e.id.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut ep_slots = vec![None; max];
        for d in dcs {
            known.insert(
                d.name.to_string(),
                d.endpoints.iter().map(|e| e.address).collect(),
            );
            for e in &d.endpoints {
                ep_slots[e.id.0 as usize] = Some(self.endpoint_slot(&d.endpoint_key(e)));
            }
        }
        *self.known.locked() = known;
        (dc_slots, ep_slots)
    }

    /// Whether `dc` is a configured data center (`NoDatacenter` if not).
    pub fn check_dc(&self, dc: &str) -> Result<(), OverrideError> {
        if self.known.locked().contains_key(dc) {
            Ok(())
        } else {
            Err(OverrideError::NoDatacenter(dc.to_string()))
        }
    }

    /// Sets a data center's state; returns the previous one.
    pub fn set_dc(
        &self,
        dc: &str,
        state: Forced,
        events: &Events,
        who: &str,
    ) -> Result<Forced, OverrideError> {
        self.check_dc(dc)?;
        self.change_state(&self.dc_slot(dc), state, dc_subject(dc), events, &by_api(who))
    }

    /// Sets a data center's runtime weight (`None`: back to the configured weights).
    pub fn set_weight(
        &self,
        dc: &str,
        weight: Option<u32>,
        events: &Events,
        who: &str,
    ) -> Result<(), OverrideError> {
        self.check_dc(dc)?;
        self.change_weight(dc, weight, events, &by_api(who))
    }

    /// Sets `dc`'s runtime weight and persists it (or puts the old one back); a change is an
    /// event with `reason`.
    fn change_weight(
        &self,
        dc: &str,
        weight: Option<u32>,
        events: &Events,
        reason: &str,
    ) -> Result<(), OverrideError> {
        let slot = self.dc_slot(dc);
        let _one = self.changes.locked();
        let old = slot.weight.swap(weight.unwrap_or(0), Ordering::Relaxed);
        if let Err(e) = self.persist() {
            slot.weight.store(old, Ordering::Relaxed);
            return Err(e);
        }
        weight_event(events, dc, old, weight.unwrap_or(0), reason);
        Ok(())
    }

    /// Sets an endpoint's state.
    pub fn set_endpoint(
        &self,
        key: &EndpointKey,
        state: Forced,
        events: &Events,
        who: &str,
    ) -> Result<Forced, OverrideError> {
        self.check_endpoint(key)?;
        self.change_endpoint(key, state, events, &by_api(who))
    }

    /// Puts a data center's state and weight as the cluster holds them. The name is not
    /// checked (etcd may hold overrides of data centers this node has not seen yet: they apply
    /// once it has); an actual change is an event with `reason`.
    pub fn apply_dc(
        &self,
        dc: &str,
        state: Forced,
        weight: Option<u32>,
        events: &Events,
        reason: &str,
    ) -> Result<(), OverrideError> {
        // Both at once, persisted once: never the state without the weight.
        let slot = self.dc_slot(dc);
        let _one = self.changes.locked();
        let old_state = from_u8(slot.state.swap(to_u8(state), Ordering::Relaxed));
        let old_weight = slot.weight.swap(weight.unwrap_or(0), Ordering::Relaxed);
        if let Err(e) = self.persist() {
            slot.state.store(to_u8(old_state), Ordering::Relaxed);
            slot.weight.store(old_weight, Ordering::Relaxed);
            return Err(e);
        }
        if old_state != state {
            events.emit(dc_subject(dc), old_state.as_str(), state.as_str(), reason);
        }
        weight_event(events, dc, old_weight, weight.unwrap_or(0), reason);
        Ok(())
    }

    /// Puts an endpoint's state as the cluster holds it (see [`Overrides::apply_dc`]).
    pub fn apply_endpoint(
        &self,
        key: &EndpointKey,
        state: Forced,
        events: &Events,
        reason: &str,
    ) -> Result<(), OverrideError> {
        self.change_endpoint(key, state, events, reason).map(drop)
    }

    /// Sets an endpoint's state (see [`Overrides::change_state`]); returns the previous one.
    fn change_endpoint(
        &self,
        key: &EndpointKey,
        state: Forced,
        events: &Events,
        reason: &str,
    ) -> Result<Forced, OverrideError> {
        let subject = format!("override endpoint {key}");
        self.change_state(&self.endpoint_slot(key), state, subject, events, reason)
    }

    /// Whether `key` is a configured endpoint (`NoDatacenter` or `NoEndpoint` if not).
    pub fn check_endpoint(&self, key: &EndpointKey) -> Result<(), OverrideError> {
        let exists = self
            .known
            .locked()
            .get(&*key.dc)
            .map(|eps| eps.contains(&key.address));
        match exists {
            None => Err(OverrideError::NoDatacenter(key.dc.to_string())),
            Some(false) => Err(OverrideError::NoEndpoint(key.clone())),
            Some(true) => Ok(()),
        }
    }

    /// Sets `slot` to `state` and persists it, or puts the old state back when it cannot be
    /// written (not on disk, so not in force either). An actual change is an event.
    fn change_state(
        &self,
        slot: &Slot,
        state: Forced,
        subject: String,
        events: &Events,
        reason: &str,
    ) -> Result<Forced, OverrideError> {
        let _one = self.changes.locked();
        let old = from_u8(slot.state.swap(to_u8(state), Ordering::Relaxed));
        if let Err(e) = self.persist() {
            slot.state.store(to_u8(old), Ordering::Relaxed);
            return Err(e);
        }
        if old != state {
            events.emit(subject, old.as_str(), state.as_str(), reason);
        }
        Ok(old)
    }

    /// The current overrides, as persisted.
    pub fn saved(&self) -> Saved {
        let dcs = self.dcs.locked();
        let eps = self.endpoints.locked();
        Saved {
            datacenters: dcs
                .iter()
                .filter(|(_, s)| s.get() != Forced::Auto || s.weight().is_some())
                .map(|(k, s)| {
                    (
                        k.clone(),
                        SavedDc {
                            state: s.get(),
                            weight: s.weight(),
                        },
                    )
                })
                .collect(),
            endpoints: eps
                .iter()
                .filter(|(_, s)| s.get() != Forced::Auto)
                .map(|(k, s)| (k.clone(), s.get()))
                .collect(),
        }
    }

    fn persist(&self) -> Result<(), OverrideError> {
        let Some(path) = &self.path else { return Ok(()) };
        let err = |source| OverrideError::Persist {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = serde_json::to_vec_pretty(&self.saved()).expect("overrides serialize");
        crate::files::write_atomic(path, &text).map_err(err)
    }
}

/// The subject of a data center's override events.
fn dc_subject(dc: &str) -> String {
    format!("override datacenter {dc}")
}

/// The reason of a change made through the admin API by `who` (a token's name).
fn by_api(who: &str) -> String {
    format!("admin API ({who})")
}

/// The event of a runtime weight that changed from `old` to `new` (0: the configured ones).
fn weight_event(events: &Events, dc: &str, old: u32, new: u32, reason: &str) {
    let show = |w: u32| {
        if w == 0 {
            "configured".to_string()
        } else {
            w.to_string()
        }
    };
    if old != new {
        events.emit(format!("weight datacenter {dc}"), show(old), show(new), reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gslb::{DcLocation, Endpoint, EndpointId};
    use std::num::{NonZeroU32, NonZeroUsize};

    fn dcs() -> Vec<Datacenter> {
        vec![Datacenter {
            name: "eu".into(),
            location: DcLocation::default(),
            endpoints: vec![Endpoint {
                id: EndpointId(0),
                address: "192.0.2.1".parse().unwrap(),
                weight: NonZeroU32::MIN,
                configured_up: true,
                check: None,
                probe_address: None,
            }],
            min_healthy: NonZeroUsize::MIN,
        }]
    }

    fn key(text: &str) -> EndpointKey {
        text.parse().unwrap()
    }

    #[test]
    fn changes_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(8);
        let o = Overrides::load(Some(dir.path().to_path_buf())).unwrap();
        let (dc_slots, ep_slots) = o.slots_for(&dcs());
        o.set_dc("eu", Forced::Drained, &events, "t").unwrap();
        o.set_weight("eu", Some(7), &events, "t").unwrap();
        o.set_endpoint(&key("eu/192.0.2.1"), Forced::Down, &events, "t")
            .unwrap();
        assert_eq!(
            dc_slots[0].get(),
            Forced::Drained,
            "the answer path's slot changed at once"
        );
        assert_eq!(ep_slots[0].as_ref().unwrap().get(), Forced::Down);
        let again = Overrides::load(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(again.saved(), o.saved());
        assert_eq!(events.recent().len(), 3);
        assert!(matches!(
            o.set_dc("mars", Forced::Up, &events, "t"),
            Err(OverrideError::NoDatacenter(_))
        ));
        assert!(matches!(
            o.set_endpoint(&key("eu/10.0.0.1"), Forced::Up, &events, "t"),
            Err(OverrideError::NoEndpoint(..))
        ));
    }

    /// The cluster's state and weight of a data center go in together, or not at all.
    #[test]
    fn a_data_centers_state_and_weight_apply_together() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(8);
        let o = Overrides::load(Some(dir.path().to_path_buf())).unwrap();
        let (dc_slots, _) = o.slots_for(&dcs());
        o.apply_dc("eu", Forced::Drained, Some(7), &events, "etcd")
            .unwrap();
        assert_eq!(
            (dc_slots[0].get(), dc_slots[0].weight()),
            (Forced::Drained, Some(7))
        );
        assert_eq!(events.recent().len(), 2, "one event each");
        let again = Overrides::load(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(again.saved(), o.saved());

        let blocker = dir.path().join("blocked");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let o = Overrides::load(Some(blocker)).unwrap();
        let (dc_slots, _) = o.slots_for(&dcs());
        assert!(
            o.apply_dc("eu", Forced::Drained, Some(7), &events, "etcd")
                .is_err()
        );
        assert_eq!((dc_slots[0].get(), dc_slots[0].weight()), (Forced::Auto, None));
    }

    #[test]
    fn a_change_that_cannot_be_persisted_is_not_in_force() {
        let dir = tempfile::tempdir().unwrap();
        // state_dir is a file: nothing can be written under it.
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let events = Events::new(8);
        let o = Overrides::load(Some(blocker)).unwrap();
        let (dc_slots, _) = o.slots_for(&dcs());
        assert!(matches!(
            o.set_dc("eu", Forced::Drained, &events, "t"),
            Err(OverrideError::Persist { .. })
        ));
        assert_eq!(dc_slots[0].get(), Forced::Auto, "rolled back");
        assert!(
            events.recent().is_empty(),
            "no event for a change that did not happen"
        );
    }
}
