//! SIGHUP reload while queries run: none lost, none answered from a half-built state, and an
//! invalid config leaves the last good one serving.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType as T;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SIGHUP: i32 = 1;

/// Writes the zone with www at `addr`, atomically (a reader never sees half a file).
fn write_zone(dir: &Path, body: &str) {
    let path = dir.join("zones/example.test.yaml");
    let tmp = dir.join("zones/.example.test.yaml.tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

#[test]
fn reload_under_load_loses_nothing() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let original = std::fs::read_to_string(dir.path().join("zones/example.test.yaml")).unwrap();
    let with_www =
        |last: u8| original.replace("www: { A: [192.0.2.80]", &format!("www: {{ A: [192.0.2.{last}]"));

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let mut clients = Vec::new();
    for tcp in [false, false, true] {
        let (stop, seen, addr) = (stop.clone(), seen.clone(), server.addr);
        clients.push(std::thread::spawn(move || {
            let mut asked = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut a = ask("www.example.test.", T::A);
                a.tcp = tcp;
                // `query` panics on a lost query (no reply within a second).
                let m = query(addr, &a);
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
                assert_eq!(m.answers.len(), 1, "exactly one address, never a mix or nothing");
                seen.lock().unwrap().insert(m.answers[0].data.to_string());
                asked += 1;
            }
            asked
        }));
    }

    let mut reloads = 0;
    for i in 1..=20u8 {
        write_zone(dir.path(), &with_www(100 + i));
        server.signal(SIGHUP);
        reloads += 1;
        server.wait_log_count("reloaded", reloads, Duration::from_secs(10));
        if i == 10 {
            // An invalid zone: rejected, and the previous one keeps serving.
            write_zone(dir.path(), &original.replace("192.0.2.80", "192.0.2.999"));
            server.signal(SIGHUP);
            server.wait_log("reload rejected", Duration::from_secs(10));
            assert!(server.logs().contains("192.0.2.999"), "the log names the problem");
            let m = query(server.addr, &ask("www.example.test.", T::A));
            assert_eq!(m.answers[0].data.to_string(), "192.0.2.110");
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let asked: u32 = clients
        .into_iter()
        .map(|c| c.join().expect("a client saw a lost or bad answer"))
        .sum();
    assert!(asked > 100, "only {asked} queries ran during the reloads");

    let m = query(server.addr, &ask("www.example.test.", T::A));
    assert_eq!(m.answers[0].data.to_string(), "192.0.2.120");
    let seen = seen.lock().unwrap();
    let allowed: BTreeSet<String> = std::iter::once(80)
        .chain(101..=120)
        .map(|n| format!("192.0.2.{n}"))
        .collect();
    assert!(
        seen.is_subset(&allowed),
        "answers outside the written zones: {seen:?}"
    );
    assert!(seen.len() > 2, "the clients saw the reloads happen: {seen:?}");
}

#[test]
fn tcp_pipelines_in_order_and_closes_idle_connections() {
    use std::io::Write;
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let names = ["www", "mail", "nope", "sip", "ns1"];
    let mut burst = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let q = ask(&format!("{n}.example.test."), T::A).to_bytes(i as u16 + 100);
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    s.write_all(&burst).unwrap(); // all queries before reading any answer
    for (i, n) in names.iter().enumerate() {
        let m = hickory_proto::op::Message::from_vec(&read_framed(&mut s)).unwrap();
        assert_eq!(m.metadata.id, i as u16 + 100, "answers come in query order");
        assert_eq!(m.queries[0].name().to_string(), format!("{n}.example.test."));
    }
    // Idle for longer than tcp_idle_timeout (500ms): the server closes the connection.
    let start = std::time::Instant::now();
    let mut buf = [0u8; 1];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "connection closed");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closed after the idle timeout, not later"
    );
}

/// A connection quiet past half its idle timeout (500ms) gives its buffers back; its next
/// queries are answered all the same (the buffers grow again), and
/// the connection stays open until the idle timeout itself.
#[test]
fn tcp_connections_answer_after_a_quiet_spell() {
    use std::io::Write;
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let questions = [
        ("www.example.test.", T::A),
        ("example.test.", T::NS),
        ("www.example.test.", T::AAAA),
    ];
    for (i, (name, rtype)) in questions.into_iter().enumerate() {
        let q = ask(name, rtype).to_bytes(i as u16 + 7);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).unwrap();
        let m = hickory_proto::op::Message::from_vec(&read_framed(&mut s)).unwrap();
        assert_eq!(m.metadata.id, i as u16 + 7);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name} {rtype}");
        assert_eq!(m.queries[0].query_type(), rtype);
        assert!(!m.answers.is_empty(), "{name} {rtype}: answered");
        // Past the release (250ms), before the idle timeout (500ms).
        std::thread::sleep(Duration::from_millis(350));
    }
}

/// The conformance fixture with its `dns:` section's `tcp_idle_timeout: 500ms` line replaced
/// by `settings`: the directory (removed when dropped) and the configuration file.
fn conformance_with_dns(settings: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = fixture("conformance");
    let config = dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("tcp_idle_timeout: 500ms", settings)).unwrap();
    (dir, config)
}

#[test]
fn tcp_connections_beyond_the_limit_are_refused() {
    use std::io::Read;
    let (_dir, config) = conformance_with_dns("tcp_idle_timeout: 5s\n  tcp_max_connections: 2");
    let server = Server::start(&config);
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    // Both held connections are served...
    std::thread::sleep(Duration::from_millis(100));
    let mut third = std::net::TcpStream::connect(server.addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        third.read(&mut buf).unwrap_or(0),
        0,
        "the third connection is closed at once"
    );
    drop(held);
    // ...and once they are gone, new ones are accepted again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = std::panic::catch_unwind(|| query(server.addr, &ask("www.example.test.", T::A).tcp()));
        if m.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "TCP never recovered after the limit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn command_line_listen_addresses_are_not_a_change_at_reload() {
    // Started with --listen and --admin-listen (as Server::start does), the file's addresses are
    // not what runs; a reload that changes nothing must not claim a restart is needed.
    let dir = fixture("admin");
    let cfg = dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace(
            r#"dns: { listen: ["127.0.0.1:0"] }"#,
            r#"dns: { listen: ["127.0.0.1:53999"] }"#,
        )
        .replace(r#"listen: "127.0.0.1:0""#, r#"listen: "127.0.0.1:53998""#);
    assert!(text.contains("53999") && text.contains("53998"), "{text}");
    std::fs::write(&cfg, &text).unwrap();
    let server = Server::start(&cfg);
    server.signal(SIGHUP);
    server.wait_log_count("reloaded", 1, Duration::from_secs(5));
    assert!(
        !server.logs().contains("next restart"),
        "spurious restart warning:\n{}",
        server.logs()
    );
    // A real change of a restart-only setting still says so.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("dns: { listen:", "dns: { tcp_idle_timeout: 7s, listen:"),
    )
    .unwrap();
    server.signal(SIGHUP);
    server.wait_log_count("reloaded", 2, Duration::from_secs(5));
    assert!(server.logs().contains("next restart"), "{}", server.logs());
}

/// A server still starting: its one check target accepts connections and never answers, so
/// the first round of probes takes the check's whole timeout (1.5 s).
struct SlowStart {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
    _dir: tempfile::TempDir,
    _silent: std::net::TcpListener,
}

impl SlowStart {
    /// Spawns the server and waits until it is starting: its first log line is written after
    /// the signal handlers are installed and before the first round of probes.
    fn spawn() -> SlowStart {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("zones")).unwrap();
        let cfg = dir.path().join("meridian.yaml");
        std::fs::write(
            &cfg,
            format!(
                "dns: {{ listen: [\"127.0.0.1:0\"] }}\nadmin: {{ listen: off }}\nzones_dir: zones\n\
                 checks:\n  slow: {{ type: http, port: {port}, interval: 2s, timeout: 1500ms }}\n\
                 datacenters:\n  eu: {{ endpoints: [{{ address: 127.0.0.1, check: slow }}] }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zones/example.test.yaml"),
            "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\nns: [ns1.example.test.]\n\
             records: { ns1: { A: [192.0.2.1] } }\ngslb:\n  www: { policy: failover, datacenters: [eu] }\n",
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["serve", "--log-level", "info", "--config"])
            .arg(&cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut s = SlowStart {
            child,
            lines,
            seen: String::new(),
            _dir: dir,
            _silent: silent,
        };
        s.wait_for("open files limit");
        s
    }

    fn wait_for(&mut self, needle: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(_) => panic!("no log line with `{needle}`:\n{}", self.seen),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill sends a signal to our own child; it has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for SlowStart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SIGHUP (logrotate, an operator's reload) that arrives while the server is still starting
/// must not kill it: it is a reload once the server is up.
#[test]
fn a_sighup_during_startup_is_a_reload_not_a_kill() {
    let mut s = SlowStart::spawn();
    s.signal(SIGHUP);
    s.wait_for("ready");
    s.wait_for("reloaded");
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the server died of a SIGHUP sent while it started"
    );
}

/// A SIGTERM while the server starts stops it at once and cleanly: it does not wait for the
/// first round of probes to end first.
#[test]
fn a_sigterm_during_startup_stops_at_once() {
    let mut s = SlowStart::spawn();
    let sent = std::time::Instant::now();
    s.signal(15);
    s.wait_for("stopped before ready");
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "still running:\n{}",
            s.seen
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}:\n{}", s.seen);
    assert!(
        sent.elapsed() < Duration::from_millis(1000),
        "took {:?}: waited for the probes (1.5 s)",
        sent.elapsed()
    );
    assert!(!s.seen.contains("app: ready"), "never ready:\n{}", s.seen);
}

/// `udp_reuseport: false`: the workers share one socket, and every query is answered.
#[test]
fn udp_workers_can_share_one_socket() {
    let (_dir, config) =
        conformance_with_dns("tcp_idle_timeout: 500ms\n  udp_workers: 3\n  udp_reuseport: false");
    let server = Server::start(&config);
    for _ in 0..50 {
        let m = query(server.addr, &ask("www.example.test.", T::A));
        assert!(!m.answers.is_empty(), "{m:?}");
    }
}
