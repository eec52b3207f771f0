//! `/metrics` of the real binary counts the queries it answers: over UDP, TCP and with ECS, and
//! on across reloads (one registry for the life of the process).

mod common;

use common::targets::{Target, free_port};
use common::*;
use hickory_proto::rr::RecordType as T;
use std::time::Duration;

const READ: &str = "Bearer read-only-secret-0123456789";

/// The value of the sample `series` (name with labels, as rendered), 0 when absent.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn scrape(server: &Server) -> String {
    let (status, head, body) = http(
        server.admin(),
        "GET",
        "/metrics",
        &[("Authorization", READ)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    // OpenMetrics: Prometheus picks its parser by the content type, and the text must end so.
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    body
}

const STATIC_A: &str = r#"meridian_queries_total{zone="example.test.",qtype="A",rcode="NOERROR"}"#;
const NX_A: &str = r#"meridian_queries_total{zone="example.test.",qtype="A",rcode="NXDOMAIN"}"#;
const REFUSED: &str = r#"meridian_queries_total{zone="",qtype="A",rcode="REFUSED"}"#;
const EU: &str = r#"meridian_answers_total{datacenter="eu"}"#;
const ECS: &str = "meridian_ecs_queries_total";

#[test]
fn query_counters_count_udp_tcp_and_ecs_across_reloads() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let before = scrape(&server);
    for _ in 0..3 {
        query(server.addr, &ask("static.example.test.", T::A));
    }
    query(server.addr, &ask("static.example.test.", T::A).tcp());
    query(server.addr, &ask("nope.example.test.", T::A));
    query(server.addr, &ask("elsewhere.invalid.", T::A));
    query(
        server.addr,
        &ask("www.example.test.", T::A).ecs("198.51.100.0", 24),
    );
    query(server.addr, &ask("www.example.test.", T::A).tcp());
    let m = scrape(&server);
    assert_eq!(sample(&m, STATIC_A) - sample(&before, STATIC_A), 4 + 2, "{m}");
    assert_eq!(sample(&m, NX_A) - sample(&before, NX_A), 1, "{m}");
    assert_eq!(sample(&m, REFUSED) - sample(&before, REFUSED), 1, "{m}");
    assert_eq!(sample(&m, EU) - sample(&before, EU), 2, "{m}");
    assert_eq!(sample(&m, ECS) - sample(&before, ECS), 1, "{m}");

    // A reload publishes a new snapshot; the counters go on from where they were.
    server.signal(libc::SIGHUP);
    server.wait_log("reloaded", Duration::from_secs(5));
    query(server.addr, &ask("static.example.test.", T::A));
    query(
        server.addr,
        &ask("www.example.test.", T::A).ecs("198.51.100.0", 24),
    );
    let after = scrape(&server);
    assert_eq!(sample(&after, STATIC_A), sample(&m, STATIC_A) + 2, "{after}");
    assert_eq!(sample(&after, EU), sample(&m, EU) + 1, "{after}");
    assert_eq!(sample(&after, ECS), sample(&m, ECS) + 1, "{after}");
}

/// Each probe target shows this node's own view, once however many endpoints share it; a single
/// node shows no cluster view and no node count. The whole exposition reads in Prometheus's own
/// parser.
#[test]
fn probe_targets_show_this_nodes_view() {
    let port = free_port();
    let _up = Target::http(format!("127.49.1.1:{port}").parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("zones")).unwrap();
    let cfg = dir.path().join("meridian.yaml");
    std::fs::write(
        &cfg,
        format!(
            "dns: {{ listen: [\"127.0.0.1:0\"] }}\nzones_dir: zones\n\
             checks:\n  web: {{ type: http, port: {port}, path: /, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}\n\
             datacenters:\n\
             \x20 eu: {{ endpoints: [{{ address: 127.49.1.1, check: web }}, {{ address: 127.49.1.2, check: web }}] }}\n\
             \x20 us: {{ endpoints: [{{ address: 192.0.2.9, probe_address: 127.49.1.1, check: web }}] }}\n"
        ),
    )
    .unwrap();
    let server = Server::start(&cfg);
    let up = r#"meridian_target_up{check="web",address="127.49.1.1",view="local"}"#;
    let down = r#"meridian_target_up{check="web",address="127.49.1.2",view="local"}"#;
    let start = std::time::Instant::now();
    let m = loop {
        let (status, _, m) = http(server.admin(), "GET", "/metrics", &[], None);
        assert_eq!(status, 200, "{m}");
        if m.contains(&format!("{up} 1")) && m.contains(&format!("{down} 0")) {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no target series:\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // 127.49.1.1 is probed once for eu and us alike.
    assert_eq!(m.matches("meridian_target_up{").count(), 2, "{m}");
    assert!(!m.contains(r#"view="cluster""#), "{m}");
    assert!(!m.contains("meridian_cluster_nodes"), "{m}");
    promtool_check(&m);
}

const ADMIN: &str = "Bearer admin-secret-0123456789";

/// The value of `series` as a float (timestamps are fractional), `None` when absent.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The state gauge tells a drained data center and a forced one from one whose checks fail; a
/// rejected reload shows until one applies, with the time of the last success; the build and
/// the process show. The whole exposition reads in Prometheus's own parser.
#[test]
fn datacenter_states_reloads_build_and_process() {
    let dir = fixture("admin");
    let cfg = dir.path().join("meridian.yaml");
    let server = Server::start(&cfg);
    let state = |dc: &str, s: &str| format!(r#"meridian_datacenter_state{{datacenter="{dc}",state="{s}"}}"#);
    let m = scrape(&server);
    assert_eq!(value(&m, &state("eu", "up")), Some(1.0), "{m}");
    assert_eq!(value(&m, &state("eu", "drained")), Some(0.0), "{m}");
    assert_eq!(
        value(&m, "meridian_config_last_reload_successful"),
        Some(1.0),
        "{m}"
    );
    let started = value(&m, "meridian_config_last_reload_success_timestamp_seconds").unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        m.contains(&format!("meridian_build_info{{version=\"{version}\"}} 1\n")),
        "{m}"
    );
    let process_start = value(&m, "process_start_time_seconds").unwrap();
    assert!(
        (process_start - started).abs() < 60.0,
        "{process_start} {started}"
    );
    assert!(value(&m, "process_resident_memory_bytes").unwrap() > 1e6, "{m}");
    assert!(value(&m, "process_open_fds").unwrap() >= 3.0, "{m}");
    assert!(m.contains("process_cpu_seconds_total "), "{m}");

    let post = |path: &str, body: Option<&str>| {
        let method = if body.is_some() { "PUT" } else { "POST" };
        let json = ("Content-Type", "application/json");
        let (status, _, body) = http(
            server.admin(),
            method,
            path,
            &[("Authorization", ADMIN), json],
            body,
        );
        assert_eq!(status, 200, "{path}: {body}");
    };
    post("/api/v1/datacenters/eu/drain", None);
    post("/api/v1/datacenters/us/override", Some(r#"{"state":"down"}"#));
    let m = scrape(&server);
    for (dc, s, v) in [
        ("eu", "drained", 1.0),
        ("eu", "up", 0.0),
        ("eu", "down", 0.0),
        ("us", "forced_down", 1.0),
        ("us", "down", 0.0),
    ] {
        assert_eq!(value(&m, &state(dc, s)), Some(v), "{dc} {s}\n{m}");
    }
    // Both out of answers, both checks still pass.
    assert!(m.contains("meridian_datacenter_up{datacenter=\"eu\"} 0\n"), "{m}");
    assert!(
        m.contains("meridian_datacenter_checks_up{datacenter=\"eu\"} 1\n"),
        "{m}"
    );
    promtool_check(&m);

    // A broken file: the reload is refused and says so until a good one applies.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\nnot_a_key: 1\n")).unwrap();
    let (status, _, body) = http(
        server.admin(),
        "POST",
        "/api/v1/reload",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(status, 422, "{body}");
    let m = scrape(&server);
    assert_eq!(
        value(&m, "meridian_config_last_reload_successful"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "meridian_config_last_reload_success_timestamp_seconds"),
        Some(started),
        "{m}"
    );
    std::fs::write(&cfg, good).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    post("/api/v1/reload", None);
    let m = scrape(&server);
    assert_eq!(
        value(&m, "meridian_config_last_reload_successful"),
        Some(1.0),
        "{m}"
    );
    assert!(
        value(&m, "meridian_config_last_reload_success_timestamp_seconds").unwrap() > started,
        "{m}"
    );
}
