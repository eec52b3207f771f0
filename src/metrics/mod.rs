//! The process's metrics and `GET /metrics`, rendered by the `prometheus-client` crate as
//! OpenMetrics text (`CONTENT_TYPE`). The query path only increments atomics it was handed in
//! the snapshot: one relaxed add per counter, no lock, no allocation. Label sets are created
//! when a snapshot is built (data centers) or when a probe reports, never per query.
//!
//! Sample names are those of the Prometheus text format Meridian served before: a counter
//! registered as `meridian_reloads` is exposed as `meridian_reloads_total` (OpenMetrics names the
//! family without the suffix in `# HELP`/`# TYPE`, and Prometheus stores the same series).

pub mod process;

use crate::lock::LockExt;
use crate::model::RType;
use crate::model::Rcode;
use crate::model::gslb::{DcReason, DcState};
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
struct VersionLabel {
    version: &'static str,
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
    /// 1 while the last reload (or the load at start) applied, 0 after one was rejected.
    last_reload_successful: AtomicU64,
    /// When the configuration last applied (a reload, or the load at start), in Unix
    /// milliseconds.
    last_reload_success_ms: AtomicU64,
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
            last_reload_successful: AtomicU64::new(1),
            last_reload_success_ms: AtomicU64::new(unix_ms(SystemTime::now())),
            zone_edits: AtomicU64::new(0),
            cluster_changes: AtomicU64::new(0),
            cluster_refused: AtomicU64::new(0),
            cluster_health_writes: AtomicU64::new(0),
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    /// A reload applied at `at`: counted, and the last one is a success.
    pub fn reload_applied(&self, at: SystemTime) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.last_reload_success_ms.store(unix_ms(at), Ordering::Relaxed);
        self.last_reload_successful.store(1, Ordering::Relaxed);
    }

    /// A reload rejected: counted, and the last one failed (the time of the last success stays).
    pub fn reload_rejected(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        self.last_reload_successful.store(0, Ordering::Relaxed);
    }

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
            "meridian_config_last_reload_successful",
            "1 if the last reload (or the load at start) applied, 0 if it was rejected and the previous configuration still serves",
            ConstGauge::new(self.last_reload_successful.load(Ordering::Relaxed) as i64),
        );
        r.register_with_unit(
            "meridian_config_last_reload_success_timestamp",
            "When the configuration last applied (a reload, or the load at start), since the Unix epoch",
            Unit::Seconds,
            ConstGauge::new(self.last_reload_success_ms.load(Ordering::Relaxed) as f64 / 1000.0),
        );
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(
            "meridian_build_info",
            "Always 1; the version of the running binary is in its label",
            build,
        );
        r.register_collector(Box::new(process::Process));
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
    /// Whether its checks pass (1) or not (0), overrides left out.
    pub checks_up: u8,
}

/// Whose view of a probe target `meridian_target_up` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetView {
    /// This node's own probe.
    Local,
    /// The cluster's verdict (cluster mode): what answers use.
    Cluster,
}

impl TargetView {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetView::Local => "local",
            TargetView::Cluster => "cluster",
        }
    }
}

/// One probe target for `meridian_target_up`, with a view that is up or down (none while
/// unknown).
#[derive(Clone, Debug)]
pub struct TargetUp {
    pub check: String,
    /// The address probed.
    pub address: IpAddr,
    pub view: TargetView,
    /// 1 up, 0 down.
    pub up: u8,
}

/// The values of the state gauges at one scrape, gathered by the admin handler.
#[derive(Clone, Debug, Default)]
pub struct StateGauges {
    pub endpoints: Vec<EndpointUp>,
    pub targets: Vec<TargetUp>,
    /// Each data center with its state (`select`'s `Health::dc_state`: overrides beat health).
    pub datacenters: Vec<(String, DcState)>,
    pub overrides_active: usize,
    pub partition_guard_alarms: u64,
    /// 1 while the partition guard holds health.
    pub partition_guard_engaged: u8,
    pub probe_targets: usize,
    pub snapshot_generation: u64,
    /// Cluster mode: 1 while the node follows etcd, 0 while it serves its last good state
    /// (`None`: not in cluster mode, no gauge).
    pub cluster_connected: Option<u8>,
    /// Cluster mode: the live nodes this node sees (itself included once it holds its lease).
    pub cluster_nodes: Option<usize>,
    /// Cluster mode: the distinct `health.quorum` rules the live nodes decide by (1 when they
    /// agree; nodes deciding by different rules can give different verdicts).
    pub cluster_quorum_rules: Option<usize>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    check: String,
    address: String,
    view: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatacenterStateLabels {
    datacenter: String,
    state: &'static str,
}

/// The values of `meridian_datacenter_state`'s `state` label; every one shows for every data
/// center (0 or 1), so a query for one state never finds a series missing.
const DC_STATES: [&str; 5] = ["up", "down", "drained", "forced_up", "forced_down"];

/// The `state` label of a data center's reason.
fn dc_state_name(reason: DcReason) -> &'static str {
    match reason {
        DcReason::Healthy => "up",
        DcReason::ChecksFailing => "down",
        DcReason::Drained => "drained",
        DcReason::ForcedUp => "forced_up",
        DcReason::ForcedDown => "forced_down",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    datacenter: String,
    address: String,
}

impl StateGauges {
    fn register(self, r: &mut Registry) {
        let endpoints = Family::<EndpointLabels, Gauge>::default();
        let endpoint_checks = Family::<EndpointLabels, Gauge>::default();
        for e in self.endpoints {
            let labels = EndpointLabels {
                datacenter: e.datacenter,
                address: e.address.to_string(),
            };
            endpoints.get_or_create(&labels).set(i64::from(e.up));
            endpoint_checks.get_or_create(&labels).set(i64::from(e.checks_up));
        }
        r.register(
            "meridian_endpoint_up",
            "Endpoint health (1 up, 0 down), overrides included",
            endpoints,
        );
        r.register(
            "meridian_endpoint_checks_up",
            "Whether the endpoint's checks pass (1) or not (0), overrides and its configured state left out",
            endpoint_checks,
        );
        let targets = Family::<TargetLabels, Gauge>::default();
        for t in self.targets {
            let labels = TargetLabels {
                check: t.check,
                address: t.address.to_string(),
                view: t.view.as_str(),
            };
            targets.get_or_create(&labels).set(i64::from(t.up));
        }
        r.register(
            "meridian_target_up",
            "Probe target health (1 up, 0 down; no series while unknown), by check and address probed: this node's own view (view=local) and, in cluster mode, the cluster's verdict answers use (view=cluster)",
            targets,
        );
        let up = Family::<DatacenterLabel, Gauge>::default();
        let state = Family::<DatacenterStateLabels, Gauge>::default();
        let checks_up = Family::<DatacenterLabel, Gauge>::default();
        let healthy = Family::<DatacenterLabel, Gauge>::default();
        for (datacenter, s) in self.datacenters {
            let label = DatacenterLabel { datacenter };
            up.get_or_create(&label).set(i64::from(s.up));
            for name in DC_STATES {
                let labels = DatacenterStateLabels {
                    datacenter: label.datacenter.clone(),
                    state: name,
                };
                state
                    .get_or_create(&labels)
                    .set(i64::from(dc_state_name(s.reason) == name));
            }
            checks_up.get_or_create(&label).set(i64::from(s.checks_up()));
            healthy.get_or_create(&label).set(s.healthy as i64);
        }
        r.register("meridian_datacenter_up", "Data center state (1 up, 0 down)", up);
        r.register(
            "meridian_datacenter_state",
            "Data center state and why, one series per state, 1 for the current one: up (checks pass), down (checks failing), drained, forced_up, forced_down (operator overrides)",
            state,
        );
        r.register(
            "meridian_datacenter_checks_up",
            "What the data center's health checks alone say (1 at least min_healthy endpoints up, 0 fewer), overrides aside",
            checks_up,
        );
        r.register(
            "meridian_datacenter_healthy_endpoints",
            "Endpoints of the data center up (checks, configured state and endpoint overrides folded in)",
            healthy,
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
        if let Some(nodes) = self.cluster_nodes {
            r.register(
                "meridian_cluster_nodes",
                "Cluster mode: live nodes this node sees (each holding its lease in etcd), itself included",
                gauge(nodes as u64),
            );
        }
        if let Some(rules) = self.cluster_quorum_rules {
            r.register(
                "meridian_cluster_quorum_rules",
                "Cluster mode: distinct health.quorum rules among the live nodes (1 when they agree)",
                gauge(rules as u64),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gslb::Forced;

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
                checks_up: 0,
            }],
            targets: vec![TargetUp {
                check: "web".into(),
                address: "192.0.2.1".parse().unwrap(),
                view: TargetView::Local,
                up: 0,
            }],
            datacenters: vec![
                ("eu".into(), DcState::decide(Forced::Auto, 1, 1)),
                ("us".into(), DcState::decide(Forced::Drained, 0, 1)),
            ],
            ..StateGauges::default()
        });
        let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "# TYPE meridian_answers counter",
                "# TYPE meridian_build_info gauge",
                "# TYPE meridian_cluster_changes counter",
                "# TYPE meridian_cluster_health_writes counter",
                "# TYPE meridian_cluster_refused counter",
                "# TYPE meridian_config_last_reload_success_timestamp_seconds gauge",
                "# TYPE meridian_config_last_reload_successful gauge",
                "# TYPE meridian_datacenter_checks_up gauge",
                "# TYPE meridian_datacenter_healthy_endpoints gauge",
                "# TYPE meridian_datacenter_state gauge",
                "# TYPE meridian_datacenter_up gauge",
                "# TYPE meridian_ecs_queries counter",
                "# TYPE meridian_endpoint_checks_up gauge",
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
                "# TYPE meridian_target_up gauge",
                "# TYPE meridian_zone_edits counter",
                "# TYPE process_cpu_seconds counter",
                "# TYPE process_max_fds gauge",
                "# TYPE process_open_fds gauge",
                "# TYPE process_resident_memory_bytes gauge",
                "# TYPE process_start_time_seconds gauge",
                "# TYPE process_virtual_memory_bytes gauge",
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
            r#"meridian_endpoint_checks_up{datacenter="eu",address="192.0.2.1"} 0"#,
            r#"meridian_target_up{check="web",address="192.0.2.1",view="local"} 0"#,
            "meridian_partition_guard_alarms_total 0",
            r#"meridian_datacenter_up{datacenter="us"} 0"#,
            r#"meridian_datacenter_state{datacenter="eu",state="up"} 1"#,
            r#"meridian_datacenter_state{datacenter="eu",state="down"} 0"#,
            r#"meridian_datacenter_state{datacenter="us",state="drained"} 1"#,
            r#"meridian_datacenter_state{datacenter="us",state="down"} 0"#,
            r#"meridian_datacenter_state{datacenter="us",state="up"} 0"#,
            r#"meridian_datacenter_checks_up{datacenter="us"} 0"#,
            r#"meridian_datacenter_healthy_endpoints{datacenter="eu"} 1"#,
            "meridian_config_last_reload_successful 1",
            concat!(
                r#"meridian_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
            "process_cpu_seconds_total ",
            "# HELP meridian_queries DNS queries answered, by zone, type and rcode.\n",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // Only series that counted something: the quiet zone and the other 94 pairs show none.
        assert_eq!(text.matches("meridian_queries_total").count(), 2, "{text}");
        assert!(!text.contains(".."), "a help text ends with two periods:\n{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    /// A rejected reload shows until the next one applies; the time is that of the last success.
    #[test]
    fn last_reload() {
        let m = Metrics::default();
        let at = UNIX_EPOCH + Duration::from_millis(1_764_000_000_250);
        m.reload_applied(at);
        m.reload_rejected();
        let text = m.render(StateGauges::default());
        for want in [
            "meridian_config_last_reload_successful 0\n",
            "meridian_config_last_reload_success_timestamp_seconds 1764000000.25\n",
            "meridian_reloads_total 1\n",
            "meridian_reload_failures_total 1\n",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        m.reload_applied(at + Duration::from_secs(1));
        let text = m.render(StateGauges::default());
        assert!(
            text.contains("meridian_config_last_reload_successful 1\n"),
            "{text}"
        );
    }

    /// Cluster mode adds the link's gauge and the live nodes'; the target gauge shows both views.
    #[test]
    fn cluster_families() {
        let target = |view, up| TargetUp {
            check: "web".into(),
            address: "2001:db8::1".parse().unwrap(),
            view,
            up,
        };
        let text = Metrics::default().render(StateGauges {
            targets: vec![target(TargetView::Local, 1), target(TargetView::Cluster, 0)],
            cluster_connected: Some(1),
            cluster_nodes: Some(3),
            cluster_quorum_rules: Some(2),
            ..StateGauges::default()
        });
        for want in [
            "# TYPE meridian_cluster_connected gauge",
            "# TYPE meridian_cluster_nodes gauge",
            "meridian_cluster_connected 1",
            "meridian_cluster_nodes 3",
            "# TYPE meridian_cluster_quorum_rules gauge",
            "meridian_cluster_quorum_rules 2",
            r#"meridian_target_up{check="web",address="2001:db8::1",view="local"} 1"#,
            r#"meridian_target_up{check="web",address="2001:db8::1",view="cluster"} 0"#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        let single = Metrics::default().render(StateGauges::default());
        assert!(!single.contains("meridian_cluster_nodes"), "{single}");
        assert!(!single.contains("meridian_cluster_quorum_rules"), "{single}");
    }
}
