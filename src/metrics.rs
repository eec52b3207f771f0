//! The process's metrics and `GET /metrics`, rendered by the `prometheus-client` crate as
//! OpenMetrics text (`CONTENT_TYPE`). The query path only increments atomics it was handed in
//! the snapshot: one relaxed add per counter, no lock, no allocation. Label sets are created
//! when a snapshot is built (data centers) or when a probe reports, never per query.
//!
//! Sample names are those of the Prometheus text format Meridian served before: a counter
//! registered as `meridian_reloads` is exposed as `meridian_reloads_total` (OpenMetrics names the
//! family without the suffix in `# HELP`/`# TYPE`, and Prometheus stores the same series).

use crate::lock::LockExt;
use crate::model::RType;
use crate::model::Rcode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The content type of `Metrics::render`'s text. Prometheus picks its parser by it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Query types counted by name (their mnemonics): every type a zone may hold, and ANY; the rest
/// count as `other`.
const QTYPES: [RType; RType::ZONE_TYPES.len() + 1] = {
    let mut types = [RType::ANY; RType::ZONE_TYPES.len() + 1];
    let mut i = 0;
    while i < RType::ZONE_TYPES.len() {
        types[i] = RType::ZONE_TYPES[i];
        i += 1;
    }
    types
};
const NQ: usize = QTYPES.len() + 1;
/// Every response code, counted by its mnemonic.
const RCODES: [Rcode; 8] = [
    Rcode::NoError,
    Rcode::FormErr,
    Rcode::ServFail,
    Rcode::NxDomain,
    Rcode::NotImp,
    Rcode::Refused,
    Rcode::NotAuth,
    Rcode::BadVers,
];
const NR: usize = RCODES.len();

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
        let q = QTYPES.iter().position(|t| *t == qtype).unwrap_or(NQ - 1);
        let r = RCODES.iter().position(|c| *c == rcode).unwrap_or(0);
        self.by[r][q].fetch_add(1, Ordering::Relaxed);
    }
}

/// Probe latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatacenterLabel {
    datacenter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    r#type: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    r#type: &'static str,
}

/// `meridian_queries_total`, read from the zones' counter arrays at scrape time. Not a
/// `Family` of counters: a family shows every series it holds, and holding a handle for each
/// (type, rcode) of each zone (so the query path never creates one) would expose 96 series
/// per zone from the start, most of them zeros; this shows the ones that counted something.
#[derive(Debug, Default)]
struct QueryCounters {
    zones: Mutex<BTreeMap<String, Arc<ZoneCounters>>>,
}

impl Collector for QueryCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "meridian_queries",
            "DNS queries answered, by zone, type and rcode.",
            None,
            MetricType::Counter,
        )?;
        for (zone, c) in self.zones.locked().iter() {
            for (r, rcode) in RCODES.iter().map(|c| c.as_str()).enumerate() {
                let qtypes = QTYPES.iter().map(|t| t.mnemonic().unwrap_or("other"));
                for (q, qtype) in qtypes.chain(["other"]).enumerate() {
                    let v = c.by[r][q].load(Ordering::Relaxed);
                    if v > 0 {
                        let labels = [("zone", zone.as_str()), ("qtype", qtype), ("rcode", rcode)];
                        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The process's metrics; counters go on across reloads.
#[derive(Debug)]
pub struct Metrics {
    queries: Arc<QueryCounters>,
    answers: Family<DatacenterLabel, Counter>,
    probes: Family<ProbeLabels, Counter>,
    probe_duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// Queries that carried an EDNS Client Subnet option.
    pub ecs_queries: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub zone_edits: AtomicU64,
    /// Cluster mode: changes read from etcd and applied, and those refused (invalid).
    pub cluster_changes: AtomicU64,
    pub cluster_refused: AtomicU64,
    pub cluster_health_writes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            queries: Arc::default(),
            answers: Family::default(),
            probes: Family::default(),
            probe_duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            ecs_queries: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            zone_edits: AtomicU64::new(0),
            cluster_changes: AtomicU64::new(0),
            cluster_refused: AtomicU64::new(0),
            cluster_health_writes: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The counters of a zone (`""`: queries for no zone of ours, and unparsable ones).
    pub fn zone(&self, name: &str) -> Arc<ZoneCounters> {
        self.queries
            .zones
            .locked()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The answer counter of a data center (its series shows from now on, at 0).
    pub fn datacenter(&self, name: &str) -> Counter {
        self.answers
            .get_or_create(&DatacenterLabel {
                datacenter: name.to_string(),
            })
            .clone()
    }

    /// Records one probe result. Both results of a check type show once it has probed.
    pub fn probe(&self, kind: &'static str, ok: bool, latency: Duration) {
        for (result, this) in [("ok", ok), ("failed", !ok)] {
            let c = self.probes.get_or_create(&ProbeLabels { r#type: kind, result });
            if this {
                c.inc();
            }
        }
        self.probe_duration
            .get_or_create(&KindLabel { r#type: kind })
            .observe(latency.as_secs_f64());
    }

    /// The exposition (OpenMetrics text, `CONTENT_TYPE`): the process's counters and `state`'s
    /// values, through a registry made for this scrape (it holds handles and values, so building
    /// it takes no lock the query path could wait on).
    pub fn render(&self, state: StateGauges) -> String {
        let mut r = Registry::default();
        // `register` ends each help text with a period itself.
        r.register_collector(Box::new(self.queries.clone()));
        r.register(
            "meridian_answers",
            "Load-balanced answers, by data center",
            self.answers.clone(),
        );
        for (name, help, c) in [
            (
                "meridian_ecs_queries",
                "Queries carrying EDNS Client Subnet",
                &self.ecs_queries,
            ),
            ("meridian_reloads", "Configuration reloads applied", &self.reloads),
            (
                "meridian_reload_failures",
                "Configuration reloads rejected",
                &self.reload_failures,
            ),
            (
                "meridian_zone_edits",
                "Zone edits applied through the admin API",
                &self.zone_edits,
            ),
            (
                "meridian_cluster_changes",
                "Cluster mode: changes to zones, data centers or checks read from etcd and applied",
                &self.cluster_changes,
            ),
            (
                "meridian_cluster_refused",
                "Cluster mode: changes read from etcd and refused (invalid; the last good state kept serving)",
                &self.cluster_refused,
            ),
            (
                "meridian_cluster_health_writes",
                "Cluster mode: this node's health views written to etcd (changes of view only)",
                &self.cluster_health_writes,
            ),
        ] {
            r.register(name, help, ConstCounter::new(c.load(Ordering::Relaxed)));
        }
        r.register(
            "meridian_probes",
            "Health probe results, by check type and result",
            self.probes.clone(),
        );
        r.register_with_unit(
            "meridian_probe_duration",
            "Health probe latency",
            Unit::Seconds,
            self.probe_duration.clone(),
        );
        state.register(&mut r);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail, and no metric here returns an error of its own.
        let _ = text::encode(&mut out, &r);
        out
    }
}

/// One endpoint for `meridian_endpoint_up`.
#[derive(Clone, Debug)]
pub struct EndpointUp {
    pub datacenter: String,
    pub address: IpAddr,
    /// 1 up, 0 down.
    pub up: u8,
}

/// The values of the state gauges at one scrape, gathered by the admin handler.
#[derive(Clone, Debug, Default)]
pub struct StateGauges {
    pub endpoints: Vec<EndpointUp>,
    /// (data center, 1 up or 0 down).
    pub datacenters: Vec<(String, u8)>,
    pub overrides_active: usize,
    pub partition_guard_alarms: u64,
    /// 1 while the partition guard holds health.
    pub partition_guard_engaged: u8,
    pub probe_targets: usize,
    pub snapshot_generation: u64,
    /// Cluster mode: 1 while the node follows etcd, 0 while it serves its last good state
    /// (`None`: not in cluster mode, no gauge).
    pub cluster_connected: Option<u8>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    datacenter: String,
    address: String,
}

impl StateGauges {
    fn register(self, r: &mut Registry) {
        let endpoints = Family::<EndpointLabels, Gauge>::default();
        for e in self.endpoints {
            let labels = EndpointLabels {
                datacenter: e.datacenter,
                address: e.address.to_string(),
            };
            endpoints.get_or_create(&labels).set(i64::from(e.up));
        }
        r.register(
            "meridian_endpoint_up",
            "Endpoint health (1 up, 0 down), overrides included",
            endpoints,
        );
        let datacenters = Family::<DatacenterLabel, Gauge>::default();
        for (datacenter, up) in self.datacenters {
            datacenters
                .get_or_create(&DatacenterLabel { datacenter })
                .set(i64::from(up));
        }
        r.register(
            "meridian_datacenter_up",
            "Data center state (1 up, 0 down)",
            datacenters,
        );
        let gauge = |v: u64| ConstGauge::new(v);
        r.register(
            "meridian_overrides_active",
            "Operator overrides in force",
            gauge(self.overrides_active as u64),
        );
        r.register(
            "meridian_partition_guard_alarms",
            "Times the partition guard engaged",
            ConstCounter::new(self.partition_guard_alarms),
        );
        r.register(
            "meridian_partition_guard_engaged",
            "1 while the partition guard holds health",
            gauge(u64::from(self.partition_guard_engaged)),
        );
        r.register(
            "meridian_probe_targets",
            "Distinct probes running",
            gauge(self.probe_targets as u64),
        );
        r.register(
            "meridian_snapshot_generation",
            "Generation of the serving snapshot",
            gauge(self.snapshot_generation),
        );
        if let Some(connected) = self.cluster_connected {
            r.register(
                "meridian_cluster_connected",
                "Cluster mode: 1 while this node follows etcd, 0 while it serves its last good state",
                gauge(u64::from(connected)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The families, their types and what dashboards query: pinned.
    #[test]
    fn families_names_and_types() {
        let m = Metrics::default();
        m.zone("example.").count(RType::A, Rcode::NoError);
        m.zone("example.").count(RType(65280), Rcode::NxDomain);
        m.zone("quiet.");
        m.datacenter("eu").inc();
        m.probe("http", true, Duration::from_millis(3));
        let text = m.render(StateGauges {
            endpoints: vec![EndpointUp {
                datacenter: "eu".into(),
                address: "192.0.2.1".parse().unwrap(),
                up: 1,
            }],
            datacenters: vec![("eu".into(), 1)],
            ..StateGauges::default()
        });
        let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "# TYPE meridian_answers counter",
                "# TYPE meridian_cluster_changes counter",
                "# TYPE meridian_cluster_health_writes counter",
                "# TYPE meridian_cluster_refused counter",
                "# TYPE meridian_datacenter_up gauge",
                "# TYPE meridian_ecs_queries counter",
                "# TYPE meridian_endpoint_up gauge",
                "# TYPE meridian_overrides_active gauge",
                "# TYPE meridian_partition_guard_alarms counter",
                "# TYPE meridian_partition_guard_engaged gauge",
                "# TYPE meridian_probe_duration_seconds histogram",
                "# TYPE meridian_probe_targets gauge",
                "# TYPE meridian_probes counter",
                "# TYPE meridian_queries counter",
                "# TYPE meridian_reload_failures counter",
                "# TYPE meridian_reloads counter",
                "# TYPE meridian_snapshot_generation gauge",
                "# TYPE meridian_zone_edits counter",
            ]
        );
        for want in [
            r#"meridian_queries_total{zone="example.",qtype="A",rcode="NOERROR"} 1"#,
            r#"meridian_queries_total{zone="example.",qtype="other",rcode="NXDOMAIN"} 1"#,
            r#"meridian_answers_total{datacenter="eu"} 1"#,
            r#"meridian_probes_total{type="http",result="ok"} 1"#,
            r#"meridian_probes_total{type="http",result="failed"} 0"#,
            r#"meridian_probe_duration_seconds_bucket{le="0.005",type="http"} 1"#,
            r#"meridian_probe_duration_seconds_count{type="http"} 1"#,
            r#"meridian_endpoint_up{datacenter="eu",address="192.0.2.1"} 1"#,
            "meridian_partition_guard_alarms_total 0",
            "# HELP meridian_queries DNS queries answered, by zone, type and rcode.\n",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // Only series that counted something: the quiet zone and the other 94 pairs show none.
        assert_eq!(text.matches("meridian_queries_total").count(), 2, "{text}");
        assert!(!text.contains(".."), "a help text ends with two periods:\n{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
