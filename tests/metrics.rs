//! `/metrics` of the real binary counts the queries it answers: over UDP, TCP and with ECS, and
//! on across reloads (one registry for the life of the process).

mod common;

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
