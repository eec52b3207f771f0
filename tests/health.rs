//! Health checks end to end: real HTTP, HTTPS and TCP servers on 127.0.0.x as the data centers'
//! virtual IPs, the real binary probing them every 100 ms, and DNS answers that follow.

mod common;

use common::targets::{Mode, Target, free_port};
use common::*;
use hickory_proto::rr::RecordType as T;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(100);

/// A config with three data centers whose endpoints are 127.<net>.<1|2|3>.1, probed on `port`.
fn config(dir: &std::path::Path, net: u8, port: u16, check: &str, extra_checks: &str) -> std::path::PathBuf {
    let text = format!(
        r#"dns: {{ listen: ["127.0.0.1:0"] }}
zones_dir: zones
checks:
  web: {{ {check}, port: {port}, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
{extra_checks}
datacenters:
  eu: {{ endpoints: [{{ address: 127.{net}.2.1, check: web }}] }}
  us: {{ endpoints: [{{ address: 127.{net}.1.1, check: web }}] }}
  ap: {{ endpoints: [{{ address: 127.{net}.3.1, check: web }}] }}
"#
    );
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("meridian.yaml"), text).unwrap();
    std::fs::write(
        dir.join("zones/example.test.yaml"),
        "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\nns: [ns1.example.test.]\n\
         records: { ns1: { A: [192.0.2.1] } }\n\
         gslb:\n  www: { policy: failover, ttl: 30, degraded_ttl: 5, datacenters: [eu, us, ap] }\n",
    )
    .unwrap();
    dir.join("meridian.yaml")
}

fn addr(net: u8, dc: u8, port: u16) -> SocketAddr {
    format!("127.{net}.{dc}.1:{port}").parse().unwrap()
}

fn www(server: &Server) -> Vec<String> {
    answer_data(&query(server.addr, &ask("www.example.test.", T::A)))
}

/// Polls until the answer is `want`; returns how long it took.
fn wait_for(server: &Server, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if www(server) == vec![want.to_string()] {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "answer never became {want} within {limit:?}:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_dead_region_is_left_and_rejoined() {
    let (net, port) = (21, free_port());
    let mut eu = Target::http(addr(net, 2, port));
    let _us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), net, port, "type: http, path: /healthz", ""));
    assert_eq!(www(&server), vec![format!("127.{net}.2.1")]);

    eu.stop();
    // fall × interval, plus jitter (±10%) and the probe in flight.
    let took = wait_for(&server, &format!("127.{net}.1.1"), Duration::from_secs(3));
    assert!(
        took < 2 * INTERVAL + Duration::from_millis(400),
        "failover took {took:?}"
    );
    let m = query(server.addr, &ask("www.example.test.", T::A));
    assert_eq!(m.answers[0].ttl, 5, "degraded TTL while a region is down");

    eu.start();
    let took = wait_for(&server, &format!("127.{net}.2.1"), Duration::from_secs(3));
    assert!(
        took < 2 * INTERVAL + Duration::from_millis(400),
        "return took {took:?}"
    );
    server.wait_log("datacenter eu", Duration::from_secs(1));
    let logs = server.logs();
    assert!(
        logs.contains("old=up new=down") && logs.contains("old=down new=up"),
        "transitions are logged:\n{logs}"
    );
}

#[test]
fn first_answers_already_reflect_health() {
    let (net, port) = (22, free_port());
    let _eu = Target::stopped_http(addr(net, 2, port)); // never started
    let _us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), net, port, "type: tcp", ""));
    // The very first query after `ready`.
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")]);
    assert!(server.logs().contains("first round of health checks done"));
}

#[test]
fn flapping_faster_than_the_thresholds_does_not_flap_answers() {
    let (net, port) = (23, free_port());
    let eu = Target::http(addr(net, 2, port));
    let _us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), net, port, "type: http", ""));
    eu.set(Mode::Alternate);
    let start = Instant::now();
    let before = eu.requests.load(std::sync::atomic::Ordering::Relaxed);
    while start.elapsed() < Duration::from_millis(1500) {
        assert_eq!(www(&server), vec![format!("127.{net}.2.1")], "answer flapped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let probes = eu.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(probes >= 8, "the target was probed {probes} times while flapping");
}

#[test]
fn wrong_status_or_missing_body_is_down() {
    let (net, port) = (24, free_port());
    let eu = Target::http(addr(net, 2, port));
    let us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(
        dir.path(),
        net,
        port,
        "type: http, expect_status: [200, 204], body_contains: ok",
        "",
    ));
    eu.set(Mode::Status(503));
    wait_for(&server, &format!("127.{net}.1.1"), Duration::from_secs(3));
    us.set(Mode::Body("degraded".into()));
    wait_for(&server, &format!("127.{net}.3.1"), Duration::from_secs(3));
    eu.set(Mode::Ok);
    wait_for(&server, &format!("127.{net}.2.1"), Duration::from_secs(3));
    let logs = server.logs();
    assert!(logs.contains("status 503, expected [200, 204]"), "{logs}");
    assert!(logs.contains("body does not contain `ok`"), "{logs}");
}

#[test]
fn https_self_signed_is_down_when_verified_and_up_when_not() {
    let (net, port) = (25, free_port());
    let _tls = Target::https(addr(net, 9, port), &["www.example.test"]);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"dns: {{ listen: ["127.0.0.1:0"] }}
zones_dir: zones
checks:
  strict: {{ type: https, port: {port}, host: www.example.test, tls_verify: true, interval: 100ms, timeout: 100ms }}
  lax: {{ type: https, port: {port}, host: www.example.test, tls_verify: false, interval: 100ms, timeout: 100ms }}
datacenters:
  strict: {{ endpoints: [{{ address: 192.0.2.10, check: strict, probe_address: 127.{net}.9.1 }}] }}
  lax: {{ endpoints: [{{ address: 192.0.2.20, check: lax, probe_address: 127.{net}.9.1 }}] }}
  spare: {{ endpoints: [{{ address: 192.0.2.30 }}] }}
"#
    );
    std::fs::create_dir_all(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("meridian.yaml"), text).unwrap();
    std::fs::write(
        dir.path().join("zones/example.test.yaml"),
        "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\nns: [ns1.example.test.]\n\
         gslb:\n  secure: { policy: failover, datacenters: [strict, spare] }\n  insecure: { policy: failover, datacenters: [lax, spare] }\n",
    )
    .unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let secure = answer_data(&query(server.addr, &ask("secure.example.test.", T::A)));
    let insecure = answer_data(&query(server.addr, &ask("insecure.example.test.", T::A)));
    assert_eq!(
        secure,
        vec!["192.0.2.30"],
        "self-signed certificate with tls_verify: the DC is down"
    );
    assert_eq!(
        insecure,
        vec!["192.0.2.20"],
        "tls_verify: false accepts it (probe_address used)"
    );
    assert!(
        server.logs().to_lowercase().contains("certificate"),
        "{}",
        server.logs()
    );
}

#[test]
fn partition_guard_holds_state_when_every_target_vanishes() {
    let (net, port) = (26, free_port());
    let mut eu = Target::http(addr(net, 2, port));
    let mut us = Target::http(addr(net, 1, port));
    let mut ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), net, port, "type: http", ""));
    assert_eq!(www(&server), vec![format!("127.{net}.2.1")]);
    eu.stop();
    us.stop();
    ap.stop();
    server.wait_log("partition guard", Duration::from_secs(3));
    // Ten intervals later, still the last known state: nothing was declared down.
    let start = Instant::now();
    while start.elapsed() < 10 * INTERVAL {
        assert_eq!(www(&server), vec![format!("127.{net}.2.1")], "state was not held");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The admin API says the same: the guard is engaged, every probe is failing, and every
    // endpoint and data center is still up.
    let status = api(&server, "/api/v1/status");
    assert_eq!(status["partition_guard"], "engaged", "{status}");
    assert_eq!(status["datacenters_down"], json!([]), "{status}");
    for dc in api(&server, "/api/v1/datacenters").as_array().unwrap() {
        assert_eq!(dc["status"], "up", "{dc}");
        for e in dc["endpoints"].as_array().unwrap() {
            assert_eq!(
                (&e["up"], &e["probe"]["last_ok"]),
                (&json!(true), &json!(false)),
                "{dc}"
            );
        }
    }
    // One region comes back: the guard clears, and the others are now seen down for real.
    us.start();
    wait_for(&server, &format!("127.{net}.1.1"), Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = api(&server, "/api/v1/status");
        assert_eq!(status["partition_guard"], "clear", "{status}");
        if status["datacenters_down"] == json!(["eu", "ap"]) {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = server.logs();
    assert!(
        logs.contains("subject=partition-guard old=engaged new=clear"),
        "{logs}"
    );
}

/// A read of the admin API (no tokens configured: reads are open).
fn api(server: &Server, path: &str) -> serde_json::Value {
    let (status, _, body) = http(server.admin(), "GET", path, &[], None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
fn explain_shows_why_a_region_is_down() {
    let (net, port) = (27, free_port());
    let _us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), net, port, "type: http", "");
    let out = std::process::Command::new(BIN)
        .args(["explain", "www.example.test", "--client", "192.0.2.1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "eu: down (0 of 1 endpoints up",
        "down since",
        "connect",
        &format!("127.{net}.1.1"),
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}

#[test]
fn reload_stops_removed_probes_and_starts_new_ones_at_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let (net, port) = (28, free_port());
    let eu = Target::http(addr(net, 2, port));
    let us = Target::http(addr(net, 1, port));
    let ap = Target::http(addr(net, 3, port));
    let extra = Target::http(addr(net, 4, port));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), net, port, "type: http", "");
    let server = Server::start(&cfg);
    std::thread::sleep(3 * INTERVAL);
    assert!(eu.requests.load(Relaxed) >= 2);
    assert_eq!(extra.requests.load(Relaxed), 0);

    // eu's endpoint loses its check; a fourth endpoint with a check appears in ap.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace(
            &format!("{{ address: 127.{net}.2.1, check: web }}"),
            &format!("{{ address: 127.{net}.2.1 }}"),
        )
        .replace(
            &format!("{{ address: 127.{net}.3.1, check: web }}"),
            &format!("{{ address: 127.{net}.3.1, check: web }}, {{ address: 127.{net}.4.1, check: web }}"),
        );
    std::fs::write(&cfg, text).unwrap();
    server.signal(1);
    server.wait_log("reloaded", Duration::from_secs(5));
    let deadline = Instant::now() + 5 * INTERVAL;
    while extra.requests.load(Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the new endpoint was not probed at once"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(INTERVAL); // a probe in flight may still land
    let eu_after = eu.requests.load(Relaxed);
    std::thread::sleep(5 * INTERVAL);
    assert_eq!(
        eu.requests.load(Relaxed),
        eu_after,
        "the removed probe kept running"
    );
    assert!(
        us.requests.load(Relaxed) >= 5 && ap.requests.load(Relaxed) >= 5,
        "kept probes go on"
    );
}

/// A drained region whose checks start failing: answers do not move (the drain already took it
/// out), and the event says both what the checks saw and that the override holds.
#[test]
fn a_health_event_under_a_drain_names_the_drain() {
    let (net, port) = (29, free_port());
    let mut eu = Target::http(addr(net, 2, port));
    let _us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), net, port, "type: http, path: /healthz", "");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/overrides.json"),
        r#"{ "datacenters": { "eu": { "state": "drained" } } }"#,
    )
    .unwrap();
    let server = Server::start(&cfg);
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")], "eu is drained");
    eu.stop();
    let deadline = Instant::now() + Duration::from_secs(3);
    let event = loop {
        let events = api(&server, "/api/v1/events");
        let found = events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subject"] == "datacenter eu")
            .cloned();
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "no event for eu: {events}");
        std::thread::sleep(INTERVAL);
    };
    assert_eq!(
        (event["old"].as_str(), event["new"].as_str()),
        (Some("up"), Some("down")),
        "{event}"
    );
    let reason = event["reason"].as_str().unwrap();
    assert!(
        reason.contains("0 endpoints up, min_healthy 1") && reason.contains("drained by override"),
        "{reason}"
    );
    let dc = api(&server, "/api/v1/datacenters/eu");
    assert_eq!(
        (dc["status"].as_str(), dc["reason"].as_str()),
        (Some("down"), Some("drained")),
        "{dc}"
    );
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")]);
}

/// Draining an endpoint is an override event, not a health event: when a probe elsewhere
/// changes later, no data center event blames the drain on its checks.
#[test]
fn an_endpoint_drain_is_no_health_event_later() {
    let (net, port) = (30, free_port());
    let _eu = Target::http(addr(net, 2, port));
    let mut us = Target::http(addr(net, 1, port));
    let _ap = Target::http(addr(net, 3, port));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "admin-secret-0123456789\n").unwrap();
    let admin = "admin:\n  tokens: [{ name: ops, role: admin, token_file: admin.token }]";
    let cfg = config(dir.path(), net, port, "type: http, path: /healthz", admin);
    let server = Server::start(&cfg);
    let auth = [("Authorization", "Bearer admin-secret-0123456789")];
    let path = format!("/api/v1/endpoints/eu/127.{net}.2.1/drain");
    let (status, _, body) = http(server.admin(), "POST", &path, &auth, None);
    assert_eq!(status, 200, "{body}");
    us.stop();
    let deadline = Instant::now() + Duration::from_secs(3);
    let subjects = loop {
        let (_, _, body) = http(server.admin(), "GET", "/api/v1/events", &auth, None);
        let events: serde_json::Value = serde_json::from_str(&body).unwrap();
        let subjects: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["subject"].as_str().map(String::from))
            .collect();
        if subjects.iter().any(|s| s == "datacenter us") {
            break subjects;
        }
        assert!(Instant::now() < deadline, "no event for us: {subjects:?}");
        std::thread::sleep(INTERVAL);
    };
    assert!(
        subjects.contains(&format!("override endpoint eu/127.{net}.2.1")),
        "{subjects:?}"
    );
    assert!(!subjects.contains(&"datacenter eu".to_string()), "{subjects:?}");
}
