//! Failover drills through the admin API of the real binary: drain a region and watch answers
//! move, restart and find the drain still in force, edit zones and see DNS follow, and kill -9
//! in the middle of edits without losing or tearing anything.

mod common;

use common::*;
use hickory_proto::rr::RecordType as T;
use std::time::{Duration, Instant};

const ADMIN: &str = "Bearer admin-secret-0123456789";

fn www(server: &Server) -> Vec<String> {
    answer_data(&query(server.addr, &ask("www.example.test.", T::A)))
}

#[test]
fn drain_moves_answers_at_once_and_survives_a_restart() {
    let dir = fixture("admin");
    let cfg = dir.path().join("meridian.yaml");
    let mut server = Server::start(&cfg);
    assert_eq!(www(&server), vec!["198.51.100.10", "198.51.100.11"]);
    let (status, _, body) = http(
        server.admin(),
        "POST",
        "/api/v1/datacenters/eu/drain",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The very next query.
    assert_eq!(www(&server), vec!["192.0.2.10"]);
    server.kill9();
    let server = Server::start(&cfg);
    assert_eq!(
        www(&server),
        vec!["192.0.2.10"],
        "the drain persisted across the restart"
    );
    let (status, _, body) = http(
        server.admin(),
        "GET",
        "/api/v1/datacenters/eu",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"override\":\"drained\""), "{body}");
    http(
        server.admin(),
        "POST",
        "/api/v1/datacenters/eu/undrain",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(www(&server), vec!["198.51.100.10", "198.51.100.11"]);
}

#[test]
fn zone_edits_reach_dns_and_invalid_ones_change_nothing() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    let file = dir.path().join("zones/example.test.yaml");
    let (_, head, _) = http(
        admin,
        "GET",
        "/api/v1/zones/example.test",
        &[("Authorization", ADMIN)],
        None,
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag header")
        .trim()
        .to_string();

    let (status, _, body) = http(
        admin,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[("Authorization", ADMIN)],
        Some(r#"{"A": ["192.0.2.123"], "ttl": 42}"#),
    );
    assert_eq!(status, 201, "{body}");
    let m = query(server.addr, &ask("fresh.example.test.", T::A));
    assert_eq!(
        (answer_data(&m), m.answers[0].ttl),
        (vec!["192.0.2.123".to_string()], 42)
    );
    let soa = query(server.addr, &ask("example.test.", T::SOA));
    assert!(
        soa.answers[0].data.to_string().contains(" 11 "),
        "serial raised: {}",
        soa.answers[0].data
    );

    let before = std::fs::read(&file).unwrap();
    let (status, _, body) = http(
        admin,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[("Authorization", ADMIN)],
        Some(r#"{"CNAME": "x", "A": ["192.0.2.1"]}"#),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("\"field\""), "{body}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "an invalid edit leaves the file as it was"
    );
    assert_eq!(
        answer_data(&query(server.addr, &ask("fresh.example.test.", T::A))),
        vec!["192.0.2.123"]
    );

    let stale = format!("If-Match: {etag}");
    let (k, v) = stale.split_once(": ").unwrap();
    let (status, _, _) = http(
        admin,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[("Authorization", ADMIN), (k, v)],
        Some(r#"{"A": ["192.0.2.124"]}"#),
    );
    assert_eq!(status, 412, "an edit based on an old version is refused");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Files stay the source of truth: a hand edit plus POST /reload is served.
    let text = String::from_utf8(before)
        .unwrap()
        .replace("192.0.2.80", "192.0.2.81");
    std::fs::write(&file, text).unwrap();
    let (status, _, _) = http(admin, "POST", "/api/v1/reload", &[("Authorization", ADMIN)], None);
    assert_eq!(status, 200);
    assert_eq!(
        answer_data(&query(server.addr, &ask("static.example.test.", T::A))),
        vec!["192.0.2.81"]
    );
}

#[test]
fn kill_9_during_edits_loses_no_acknowledged_edit_and_tears_no_file() {
    let dir = fixture("admin");
    let cfg = dir.path().join("meridian.yaml");
    let mut server = Server::start(&cfg);
    let admin = server.admin();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0..10_000 {
                let body = format!(r#"{{"A": ["192.0.2.{}"]}}"#, i % 250 + 1);
                let path = format!("/api/v1/zones/example.test/records/edit{i}");
                let r = std::panic::catch_unwind(|| {
                    http(admin, "PUT", &path, &[("Authorization", ADMIN)], Some(&body))
                });
                match r {
                    Ok((201, _, _)) => acked.lock().unwrap().push(i),
                    _ => return, // the server is gone
                }
            }
        })
    };
    let start = Instant::now();
    while acked.lock().unwrap().len() < 15 {
        assert!(start.elapsed() < Duration::from_secs(30), "edits are too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    let _ = writer.join();
    let acked = acked.lock().unwrap().clone();
    // Every zone file still parses, and the whole configuration is valid.
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = std::fs::read_to_string(dir.path().join("zones/example.test.yaml")).unwrap();
    for i in &acked {
        assert!(
            text.contains(&format!("edit{i}:")),
            "acknowledged edit {i} is missing"
        );
    }
    // And the server starts on it and serves the last acknowledged edit.
    let server = Server::start(&cfg);
    let last = acked.last().unwrap();
    assert_eq!(
        answer_data(&query(
            server.addr,
            &ask(&format!("edit{last}.example.test."), T::A)
        ))
        .len(),
        1
    );
}

#[test]
fn status_page_in_chromium_shows_a_drain() {
    let browser = ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if browser.is_none() && !have_tool("chromium") {
        return;
    }
    let browser = browser.unwrap_or("chromium");
    let dir = fixture("admin");
    // The page reads with a token given in its URL fragment.
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    let (status, _, _) = http(
        admin,
        "POST",
        "/api/v1/datacenters/eu/drain",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(status, 200);
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{admin}/#token=read-only-secret-0123456789"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let row = dom
        .split("<tr")
        .find(|r| r.contains("data-dc=\"eu\""))
        .unwrap_or_else(|| {
            panic!(
                "no row for eu in the page:\n{dom}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(row.contains("drained"), "the page does not show the drain: {row}");
    assert!(row.contains("class=\"down\""), "eu is shown down: {row}");
    let us = dom
        .split("<tr")
        .find(|r| r.contains("data-dc=\"us\""))
        .expect("row for us");
    assert!(us.contains("class=\"up\""), "{us}");
}

#[test]
fn cli_explain_sees_a_drain_the_server_persisted() {
    let dir = fixture("admin");
    let cfg = dir.path().join("meridian.yaml");
    let server = Server::start(&cfg);
    let (status, _, _) = http(
        server.admin(),
        "POST",
        "/api/v1/datacenters/eu/drain",
        &[("Authorization", ADMIN)],
        None,
    );
    assert_eq!(status, 200);
    let out = std::process::Command::new(BIN)
        .args(["explain", "www.example.test", "--client", "192.0.2.1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("eu: drained by override") && text.contains("192.0.2.10"),
        "{text}"
    );
}
