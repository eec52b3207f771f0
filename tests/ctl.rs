//! `meridian ctl` against a real server: the failover drill of docs/api.md done with the
//! command-line client (drain, undrain, overrides, weights, explain, events as they happen,
//! reload, a zone read, edited and written back, a stale copy refused), and the errors an
//! operator meets (no token, a read-only token, nothing listening, a refused edit).

mod common;

use common::*;
use hickory_proto::rr::RecordType as T;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The outcome of one `meridian ctl` run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `meridian ctl ARGS` with the environment given (and no MERIDIAN_TOKEN otherwise).
fn ctl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(BIN);
    c.arg("ctl").args(args).env_remove("MERIDIAN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run meridian ctl");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `meridian ctl --admin <server> --token-file <admin token> ARGS`, which must succeed.
fn ctl(server: &Server, dir: &Path, args: &[&str]) -> String {
    let admin = format!("http://{}", server.admin());
    let token = dir.join("secrets/admin.token");
    let mut all = vec!["--admin", &admin, "--token-file", token.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = ctl_env(&all, &[]);
    assert!(run.ok, "ctl {args:?} failed:\n{}{}", run.stdout, run.stderr);
    run.stdout
}

fn answers(server: &Server, name: &str) -> Vec<String> {
    answer_data(&query(server.addr, &ask(name, T::A)))
}

#[test]
fn the_drill_with_ctl() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let www = "www.example.test.";
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);

    let status = ctl(&server, d, &["status"]);
    assert!(status.contains("data centers: 2, down: none"), "{status}");
    assert!(status.contains("overrides: none"), "{status}");
    assert!(status.contains("www.example.test. (failover)"), "{status}");

    // Watch transitions live while the drill runs.
    let admin = format!("http://{}", server.admin());
    let mut follower = Command::new(BIN)
        .args(["ctl", "--admin", &admin, "--token-file"])
        .arg(d.join("secrets/admin.token"))
        .args(["events", "--follow"])
        .env_remove("MERIDIAN_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ctl events --follow");
    let (tx, events) = mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Drain eu: the very next answer moves, and the follower prints the transition. The
    // follower may not have subscribed by the first drain: drain and undrain until it shows one
    // (each cycle is two events), within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        assert_eq!(ctl(&server, d, &["drain", "eu"]).trim(), "eu: auto -> drained");
        assert_eq!(answers(&server, www), vec!["192.0.2.10"]);
        if let Ok(line) = events.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "events --follow printed nothing");
        assert_eq!(ctl(&server, d, &["undrain", "eu"]).trim(), "eu: drained -> auto");
    };
    assert!(seen.contains("override datacenter eu: auto -> drained"), "{seen}");
    assert!(seen.starts_with("20"), "a line starts with its time: {seen}");

    let status = ctl(&server, d, &["status"]);
    assert!(status.contains("down: eu"), "{status}");
    assert!(status.contains("overrides: eu drained"), "{status}");
    assert!(status.contains("eu (drained)"), "where clients go: {status}");
    let dcs = ctl(&server, d, &["datacenters"]);
    let eu = dcs.lines().find(|l| l.starts_with("eu ")).expect(&dcs);
    assert!(eu.contains("down") && eu.contains("drained"), "{dcs}");

    let explain = ctl(&server, d, &["explain", www, "--client", "10.20.0.1"]);
    assert!(explain.contains("NOERROR"), "{explain}");
    assert!(explain.contains("eu: drained by override"), "{explain}");
    assert!(explain.contains("A 192.0.2.10"), "{explain}");

    assert_eq!(ctl(&server, d, &["undrain", "eu"]).trim(), "eu: drained -> auto");
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);
    let next = events
        .recv_timeout(Duration::from_secs(5))
        .expect("the undrain, streamed");
    assert!(next.contains("override datacenter eu: drained -> auto"), "{next}");

    // One endpoint forced down, then back.
    assert_eq!(
        ctl(&server, d, &["override", "eu/198.51.100.10", "down"]).trim(),
        "eu/198.51.100.10: auto -> down"
    );
    assert_eq!(answers(&server, www), vec!["198.51.100.11"]);
    ctl(&server, d, &["override", "eu/198.51.100.10", "auto"]);
    // A whole data center forced down.
    assert_eq!(
        ctl(&server, d, &["override", "eu", "down"]).trim(),
        "eu: auto -> down"
    );
    assert_eq!(answers(&server, www), vec!["192.0.2.10"]);
    assert_eq!(
        ctl(&server, d, &["override", "eu", "auto"]).trim(),
        "eu: down -> auto"
    );
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);

    // Runtime weights.
    assert_eq!(
        ctl(&server, d, &["weight", "us", "5"]).trim(),
        "us: weight 5 in every name"
    );
    let dcs = ctl(&server, d, &["datacenters", "us"]);
    assert!(dcs.contains("5 (runtime)"), "{dcs}");
    assert_eq!(
        ctl(&server, d, &["weight", "us", "auto"]).trim(),
        "us: configured weights"
    );

    // The list of events, and --json as the API's JSON.
    let list = ctl(&server, d, &["events"]);
    assert!(list.contains("weight datacenter us: configured -> 5"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&ctl(&server, d, &["--json", "datacenters"])).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");

    assert!(ctl(&server, d, &["reload"]).starts_with("reloaded: snapshot generation "));

    // A zone read, edited and written back with its ETag; a stale copy refused.
    let yaml = ctl(&server, d, &["zone", "get", "example.test"]);
    assert!(yaml.starts_with("# etag: \""), "{yaml}");
    assert!(yaml.contains("192.0.2.80"), "{yaml}");
    let copy = d.join("copy.yaml");
    std::fs::write(&copy, yaml.replace("192.0.2.80", "192.0.2.81")).unwrap();
    let put = ctl(
        &server,
        d,
        &["zone", "put", "example.test", copy.to_str().unwrap()],
    );
    assert!(put.contains("example.test: written, SOA serial 11"), "{put}");
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.81"]);

    std::fs::write(&copy, yaml.replace("192.0.2.80", "192.0.2.82")).unwrap();
    let token = d.join("secrets/admin.token");
    let stale = ctl_env(
        &[
            "--admin",
            &admin,
            "--token-file",
            token.to_str().unwrap(),
            "zone",
            "put",
            "example.test",
            copy.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!stale.ok, "a stale copy was written: {}", stale.stdout);
    assert!(stale.stderr.contains("412"), "{}", stale.stderr);
    assert!(stale.stderr.contains("nothing was written"), "{}", stale.stderr);
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.81"]);

    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn errors_say_what_to_do() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let admin = format!("http://{}", server.admin());

    let none = ctl_env(&["--admin", &admin, "status"], &[]);
    assert!(!none.ok);
    assert!(none.stderr.contains("401"), "{}", none.stderr);
    assert!(
        none.stderr.contains("--token-file") && none.stderr.contains("MERIDIAN_TOKEN"),
        "{}",
        none.stderr
    );

    let secret = std::fs::read_to_string(d.join("secrets/read.token")).unwrap();
    let read = [("MERIDIAN_TOKEN", secret.trim())];
    let status = ctl_env(&["--admin", &admin, "status"], &read);
    assert!(status.ok, "a read token reads: {}", status.stderr);
    let write = ctl_env(&["--admin", &admin, "drain", "eu"], &read);
    assert!(!write.ok);
    assert!(write.stderr.contains("403"), "{}", write.stderr);
    assert!(
        write.stderr.contains("read-only: this needs one of role admin"),
        "{}",
        write.stderr
    );

    let wrong = ctl_env(
        &["--admin", &admin, "status"],
        &[("MERIDIAN_TOKEN", "not-the-token-0123456789")],
    );
    assert!(!wrong.ok);
    assert!(
        wrong.stderr.contains("the token in MERIDIAN_TOKEN was refused"),
        "{}",
        wrong.stderr
    );

    // An API error: its message and field, plainly.
    let token = [("MERIDIAN_TOKEN", "admin-secret-0123456789")];
    let missing = ctl_env(&["--admin", &admin, "drain", "nowhere"], &token);
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("404: no data center `nowhere` (field: dc)"),
        "{}",
        missing.stderr
    );
    let invalid = d.join("invalid.yaml");
    std::fs::write(
        &invalid,
        "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\n\
         ns: [ns1.example.test.]\nrecords: { ns1: { A: [192.0.2.1] }, static: { A: [192.0.2.300] } }\n",
    )
    .unwrap();
    let refused = ctl_env(
        &[
            "--admin",
            &admin,
            "zone",
            "put",
            "example.test",
            invalid.to_str().unwrap(),
        ],
        &token,
    );
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("422") && refused.stderr.contains("(field: records.static.A)"),
        "{}",
        refused.stderr
    );
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.80"]);

    // Nothing listening at admin.listen: the address tried, and where it came from.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("meridian.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let elsewhere = d.join("elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        text.replace(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let down = ctl_env(&["--config", elsewhere.to_str().unwrap(), "status"], &token);
    assert!(!down.ok);
    let expected = format!(
        "cannot reach the admin API at http://127.0.0.1:{port} (admin.listen in {})",
        elsewhere.display()
    );
    assert!(down.stderr.contains(&expected), "{}", down.stderr);
    // Port 0 in admin.listen: the server's own choice, unknown to the client.
    let zero = ctl_env(&["--config", cfg.to_str().unwrap(), "status"], &token);
    assert!(!zero.ok);
    assert!(
        zero.stderr.contains("port 0") && zero.stderr.contains("--admin"),
        "{}",
        zero.stderr
    );
}
