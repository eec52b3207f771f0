//! The command line: version, help, JSON logs, and a clear error for a bad start.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("meridian {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check", "explain", "geoip", "ctl"] {
        assert!(help.contains(cmd), "--help does not list {cmd}:\n{help}");
    }
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--admin-listen",
        "--log-format",
        "--log-level",
    ] {
        assert!(help.contains(flag), "serve --help does not list {flag}");
    }
    let out = Command::new(BIN).args(["ctl", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "status",
        "datacenters",
        "drain",
        "override",
        "weight",
        "explain",
        "events",
        "reload",
        "zone",
        "--admin",
        "--token-file",
        "MERIDIAN_TOKEN",
        "--json",
    ] {
        assert!(help.contains(word), "ctl --help does not mention {word}:\n{help}");
    }
}

#[test]
fn geoip_lookup_prints_a_location_to_read_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("geo.csv");
    std::fs::write(
        &csv,
        "network,country,subdivision,latitude,longitude,asn,as_org\n\
         192.0.2.0/24,DE,BE,52.52,13.4,AS64500,Example Net\n\
         10.0.0.0/8,US,,,,,\n",
    )
    .unwrap();
    let db = dir.path().join("geo.mmdb");
    build_geoip(&csv, &db, "maxmind");
    let lookup = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["geoip", "lookup", "--db"])
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = lookup(&["192.0.2.7"]);
    assert_eq!(
        text,
        "192.0.2.7: in 192.0.2.0/24\n  continent   EU\n  country     DE\n  subdivision DE-BE\n  \
         location    52.52, 13.4 (latitude, longitude)\n  asn         AS64500 Example Net\n"
    );
    let text = lookup(&["10.1.2.3"]);
    assert!(
        text.contains("in 10.0.0.0/8") && text.contains("country     US"),
        "{text}"
    );
    assert!(text.contains("asn         -"), "{text}");
    let text = lookup(&["203.0.113.1"]);
    assert!(text.starts_with("203.0.113.1: not in "), "{text}");

    let json: serde_json::Value = serde_json::from_str(&lookup(&["--json", "192.0.2.7"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"address": "192.0.2.7", "network": "192.0.2.0/24", "continent": "EU",
            "country": "DE", "subdivision": "DE-BE", "latitude": 52.52, "longitude": 13.4,
            "asn": 64500, "as_org": "Example Net"})
    );
    let json: serde_json::Value = serde_json::from_str(&lookup(&["--json", "203.0.113.1"])).unwrap();
    assert_eq!(json["network"], serde_json::Value::Null, "{json}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = fixture("conformance");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--config",
        ])
        .arg(dir.path().join("meridian.yaml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen_ready = false;
    for _ in 0..10 {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{v}"
        );
        if v["fields"]["message"] == "ready" {
            seen_ready = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen_ready, "no `ready` line");
}

#[test]
fn an_invalid_config_stops_the_start_with_its_problems() {
    let dir = repo_path("tests/fixtures/check/bad-ipv4");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--config",
        ])
        .arg(dir.join("meridian.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zones/example.test.yaml:6:26") && err.contains("is not an IPv4 address"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_cleanly_and_promptly() {
    let dir = fixture("conformance");
    let mut server = Server::start(&dir.path().join("meridian.yaml"));
    assert!(server.ready_file.exists());
    let start = std::time::Instant::now();
    server.signal(15);
    let status = server
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("exited after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(server.logs().contains("stopping"));
    assert!(!server.ready_file.exists(), "the ready file outlived the server");
}

#[test]
fn sighup_applies_a_new_log_level() {
    let dir = fixture("conformance");
    let cfg = dir.path().join("meridian.yaml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "log: { level: info }\n",
    )
    .unwrap();
    // No --log-level: the configured level rules, and follows reloads.
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--ready-file",
        ])
        .arg(dir.path().join("listening.json"))
        .arg("--config")
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with `{needle}`"),
            }
        }
    };
    // Ready when the ready file appears (the log's own `ready` line is a poor signal: `already`
    // in an earlier line holds it too).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ready = loop {
        if let Ok(text) = std::fs::read_to_string(dir.path().join("listening.json")) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let (dns, admin) = listening(&ready);
    let addr = dns[0];
    assert_eq!(admin, None, "--admin-listen off");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("level: info", "level: debug"),
    )
    .unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, 1) };
    wait_for("log level changed");
    // Debug lines now appear: a TCP connection that ends logs at debug level.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut s, &[0, 5, 1, 2, 3]).unwrap();
    drop(s);
    wait_for("DEBUG");
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs only inside the next test's child process: a test whose tool is missing.
#[test]
fn skip_notice_probe() {
    if std::env::var_os("MERIDIAN_SKIP_PROBE").is_some() {
        assert!(!have_tool("meridian-no-such-tool"));
    }
}

#[test]
fn skip_notices_reach_the_terminal_without_nocapture() {
    // `cargo test` captures what tests print; a skipped test must be seen all the same.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "skip_notice_probe", "--test-threads=1"])
        .env("MERIDIAN_SKIP_PROBE", "1")
        .env_remove("MERIDIAN_REQUIRE_TOOLS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SKIPPED: `meridian-no-such-tool` is not installed"),
        "the notice is on the terminal: stderr was {stderr:?}"
    );
}
