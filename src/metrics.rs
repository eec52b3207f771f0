//! Counters for `GET /metrics` (Prometheus text format). The query path only increments
//! atomics it was handed in the snapshot; the registry's mutex is taken when a snapshot is
//! built and when metrics are scraped, never per query.

use crate::lock::LockExt;
use crate::model::RType;
use crate::model::Rcode;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Query types counted by name; the rest count as `other`.
const QTYPES: [(RType, &str); 11] = [
    (RType::A, "A"),
    (RType::AAAA, "AAAA"),
    (RType::CNAME, "CNAME"),
    (RType::MX, "MX"),
    (RType::TXT, "TXT"),
    (RType::SRV, "SRV"),
    (RType::CAA, "CAA"),
    (RType::PTR, "PTR"),
    (RType::NS, "NS"),
    (RType::SOA, "SOA"),
    (RType::ANY, "ANY"),
];
const NQ: usize = QTYPES.len() + 1;
const RCODES: [(Rcode, &str); 8] = [
    (Rcode::NoError, "NOERROR"),
    (Rcode::FormErr, "FORMERR"),
    (Rcode::ServFail, "SERVFAIL"),
    (Rcode::NxDomain, "NXDOMAIN"),
    (Rcode::NotImp, "NOTIMP"),
    (Rcode::Refused, "REFUSED"),
    (Rcode::NotAuth, "NOTAUTH"),
    (Rcode::BadVers, "BADVERS"),
];
const NR: usize = RCODES.len();

/// A label value as the Prometheus text format requires it: `\\`, `"` and line feeds escaped.
/// Zone names may hold any byte (RFC 1035 escapes), so every name goes through here.
pub fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

/// Queries answered for one zone, by type and rcode.
#[derive(Debug)]
pub struct ZoneCounters {
    by: [[AtomicU64; NQ]; NR],
}

impl Default for ZoneCounters {
    fn default() -> Self {
        ZoneCounters {
            by: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl ZoneCounters {
    pub fn count(&self, qtype: RType, rcode: Rcode) {
        let q = QTYPES.iter().position(|(t, _)| *t == qtype).unwrap_or(NQ - 1);
        let r = RCODES.iter().position(|(c, _)| *c == rcode).unwrap_or(0);
        self.by[r][q].fetch_add(1, Ordering::Relaxed);
    }
}

/// Probe latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
struct ProbeHistogram {
    ok: AtomicU64,
    failed: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    zones: Mutex<BTreeMap<String, Arc<ZoneCounters>>>,
    datacenters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    probes: Mutex<BTreeMap<&'static str, Arc<ProbeHistogram>>>,
    /// Queries that carried an EDNS Client Subnet option.
    pub ecs_queries: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub zone_edits: AtomicU64,
}

impl Metrics {
    /// The counters of a zone (`""`: queries for no zone of ours, and unparsable ones).
    pub fn zone(&self, name: &str) -> Arc<ZoneCounters> {
        self.zones.locked().entry(name.to_string()).or_default().clone()
    }

    /// The answer counter of a data center.
    pub fn datacenter(&self, name: &str) -> Arc<AtomicU64> {
        self.datacenters
            .locked()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Records one probe result.
    pub fn probe(&self, kind: &'static str, ok: bool, latency: Duration) {
        let h = self.probes.locked().entry(kind).or_default().clone();
        if ok { &h.ok } else { &h.failed }.fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Renders the counters; `gauges` appends the state gauges computed by the caller.
    pub fn render(&self, gauges: &str) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP meridian_queries_total DNS queries answered, by zone, type and rcode.\n# TYPE meridian_queries_total counter\n");
        for (zone, c) in self.zones.locked().iter() {
            let zone = escape_label(zone);
            for (r, (_, rname)) in RCODES.iter().enumerate() {
                for (q, qname) in QTYPES.iter().map(|(_, n)| *n).chain(["other"]).enumerate() {
                    let v = c.by[r][q].load(Ordering::Relaxed);
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "meridian_queries_total{{zone=\"{zone}\",qtype=\"{qname}\",rcode=\"{rname}\"}} {v}"
                        );
                    }
                }
            }
        }
        out.push_str("# HELP meridian_answers_total Load-balanced answers, by data center.\n# TYPE meridian_answers_total counter\n");
        for (dc, c) in self.datacenters.locked().iter() {
            let _ = writeln!(
                out,
                "meridian_answers_total{{datacenter=\"{}\"}} {}",
                escape_label(dc),
                c.load(Ordering::Relaxed)
            );
        }
        let plain = [
            (
                "meridian_ecs_queries_total",
                "Queries carrying EDNS Client Subnet.",
                &self.ecs_queries,
            ),
            (
                "meridian_reloads_total",
                "Configuration reloads applied.",
                &self.reloads,
            ),
            (
                "meridian_reload_failures_total",
                "Configuration reloads rejected.",
                &self.reload_failures,
            ),
            (
                "meridian_zone_edits_total",
                "Zone edits applied through the admin API.",
                &self.zone_edits,
            ),
        ];
        for (name, help, c) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP meridian_probes_total Health probe results, by check type and result.\n# TYPE meridian_probes_total counter\n");
        let probes = self.probes.locked();
        for (kind, h) in probes.iter() {
            let _ = writeln!(
                out,
                "meridian_probes_total{{type=\"{kind}\",result=\"ok\"}} {}",
                h.ok.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "meridian_probes_total{{type=\"{kind}\",result=\"failed\"}} {}",
                h.failed.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP meridian_probe_duration_seconds Health probe latency.\n# TYPE meridian_probe_duration_seconds histogram\n");
        for (kind, h) in probes.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "meridian_probe_duration_seconds_bucket{{type=\"{kind}\",le=\"{b}\"}} {}",
                    h.buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "meridian_probe_duration_seconds_bucket{{type=\"{kind}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "meridian_probe_duration_seconds_sum{{type=\"{kind}\"}} {}",
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "meridian_probe_duration_seconds_count{{type=\"{kind}\"}} {count}"
            );
        }
        out.push_str(gauges);
        out
    }
}
