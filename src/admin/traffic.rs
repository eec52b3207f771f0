//! A short history of answers per data center, for the status page's chart: the per-data-center
//! answer counters (`meridian_answers_total`) read once a second, the last 15 minutes kept in
//! memory. Only the admin API reads it; it is lost on restart (Prometheus keeps the long view).

use crate::control::Control;
use crate::lock::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the counters are read.
pub const STEP: Duration = Duration::from_secs(1);
/// How many readings are kept: 15 minutes.
pub const KEEP: usize = 900;

/// One reading: every data center's answer count so far (counters outlive reloads).
#[derive(Clone, Debug)]
pub struct Reading {
    pub time: SystemTime,
    pub totals: BTreeMap<String, u64>,
}

/// The readings, oldest first. The mutex guards a push or a copy, never held across an await.
#[derive(Debug, Default)]
pub struct Traffic {
    readings: Mutex<VecDeque<Reading>>,
}

impl Traffic {
    /// Records a reading, dropping the oldest beyond [`KEEP`].
    pub fn record(&self, reading: Reading) {
        let mut r = self.readings.locked();
        if r.len() == KEEP {
            r.pop_front();
        }
        r.push_back(reading);
    }

    /// The readings, oldest first.
    pub fn readings(&self) -> Vec<Reading> {
        self.readings.locked().iter().cloned().collect()
    }

    /// Reads the counters of `ctl`'s data centers every [`STEP`] until `stop`.
    pub async fn sample(self: Arc<Self>, ctl: Arc<Control>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let snap = ctl.snapshot();
            let totals = snap
                .datacenters
                .iter()
                .zip(&snap.dc_answers)
                .map(|(d, c)| (d.name.to_string(), c.get()))
                .collect();
            self.record(Reading {
                time: SystemTime::now(),
                totals,
            });
        }
    }
}

/// Answers per second between consecutive readings, per data center: `(time of the later
/// reading, rates)`. A data center missing from either reading (added or removed by a
/// reload) has no rate for that step; a counter that went back counts as 0.
pub fn rates(readings: &[Reading]) -> Vec<(SystemTime, BTreeMap<String, f64>)> {
    readings
        .windows(2)
        .map(|w| {
            let secs = w[1]
                .time
                .duration_since(w[0].time)
                .unwrap_or(STEP)
                .as_secs_f64()
                .max(0.001);
            let rates = w[1]
                .totals
                .iter()
                .filter_map(|(dc, &now)| {
                    let before = *w[0].totals.get(dc)?;
                    Some((dc.clone(), now.saturating_sub(before) as f64 / secs))
                })
                .collect();
            (w[1].time, rates)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(secs: u64, totals: &[(&str, u64)]) -> Reading {
        Reading {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            totals: totals.iter().map(|(d, n)| (d.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn rates_are_differences_over_time_and_skip_new_data_centers() {
        let r = [
            reading(10, &[("eu", 100), ("us", 0)]),
            reading(11, &[("eu", 150), ("us", 0)]),
            reading(13, &[("eu", 150), ("us", 40), ("ap", 5)]),
        ];
        let out = rates(&r);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].1["eu"], 50.0);
        assert_eq!(out[1].1["us"], 20.0);
        assert_eq!(out[1].1["eu"], 0.0);
        assert!(!out[1].1.contains_key("ap"));
    }

    #[test]
    fn keeps_fifteen_minutes() {
        let t = Traffic::default();
        for i in 0..(KEEP as u64 + 10) {
            t.record(reading(i, &[("eu", i)]));
        }
        let r = t.readings();
        assert_eq!(r.len(), KEEP);
        assert_eq!(r[0].totals["eu"], 10);
    }
}
