//! The admin listener of the real binary: a connection limit that reclaims idle connections,
//! head and idle timeouts, and a stop that event streams do not hold up.

mod common;

use common::*;
use hickory_proto::rr::RecordType as T;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const READ: &str = "Bearer read-only-secret-0123456789";

/// The admin fixture with `admin:` settings added.
fn fixture_with(admin: &str) -> tempfile::TempDir {
    let dir = fixture("admin");
    let p = dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "  listen: \"127.0.0.1:0\"\n",
        &format!("  listen: \"127.0.0.1:0\"\n{admin}"),
    );
    std::fs::write(&p, text).unwrap();
    dir
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Limits the server's open descriptors to `n` (soft and hard), as a small `ulimit -n` would.
fn limit_fds(pid: u32, n: usize) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn idle_connections_beyond_the_limit_neither_block_the_api_nor_dns_over_tcp() {
    // Long timeouts: what keeps the API answering here is the reclaiming of idle connections.
    let dir = fixture_with("  max_connections: 8\n  header_timeout: 30s\n  idle_timeout: 30s\n");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    // Fewer descriptors than idle clients, as with 1100 clients under `ulimit -n 1024`.
    let spare = 40;
    let base = open_fds(server.pid());
    limit_fds(server.pid(), base + spare);
    let idle: Vec<TcpStream> = (0..3 * spare)
        .filter_map(|_| TcpStream::connect(admin).ok())
        .collect();
    assert_eq!(idle.len(), 3 * spare);
    let started = Instant::now();
    let (status, _, body) = http(admin, "GET", "/api/v1/status", &[("Authorization", READ)], None);
    assert_eq!(
        status,
        200,
        "the API answers beside {} idle connections: {body}",
        idle.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let m = query(server.addr, &ask("static.example.test.", T::A).tcp());
    assert_eq!(answer_data(&m), vec!["192.0.2.80"], "DNS over TCP still answers");
    let held = open_fds(server.pid());
    assert!(
        held <= base + 8 + 1,
        "the server holds at most its limit of admin connections ({held} descriptors, {base} at rest)"
    );
    drop(idle);
}

#[test]
fn silent_clients_and_idle_keep_alive_connections_are_closed() {
    let dir = fixture_with("  header_timeout: 300ms\n  idle_timeout: 600ms\n");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    let closed_within = |mut s: TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit)).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => continue,
                Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
            }
        }
    };
    // Silent: nothing sent.
    let took = closed_within(TcpStream::connect(admin).unwrap(), Duration::from_secs(3));
    assert!(took >= Duration::from_millis(250), "closed too early: {took:?}");
    // Slow head: a few bytes, never the end of the head.
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    closed_within(slow, Duration::from_secs(3));
    // Keep-alive: one request answered, then idle until idle_timeout.
    let mut ka = TcpStream::connect(admin).unwrap();
    ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = ka.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let took = closed_within(ka, Duration::from_secs(3));
    assert!(
        took >= Duration::from_millis(450),
        "a keep-alive connection gets idle_timeout, not header_timeout: {took:?}"
    );
}

#[test]
fn sigterm_ends_an_event_stream_and_the_process() {
    let dir = fixture("admin");
    let mut server = Server::start(&dir.path().join("meridian.yaml"));
    let mut follower = TcpStream::connect(server.admin()).unwrap();
    follower
        .write_all(
            format!(
                "GET /api/v1/events?follow=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {READ}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    follower.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 512];
    let n = follower.read(&mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).contains("text/event-stream"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(4));
    assert!(
        status.is_some_and(|s| s.success()),
        "the process exits promptly and cleanly with a follower connected ({status:?})"
    );
    let mut rest = Vec::new();
    let _ = follower.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.ends_with("0\r\n\r\n"),
        "the stream ends with its last chunk: {rest:?}"
    );
    eprintln!("SIGTERM to exit with an event follower: {:?}", started.elapsed());
}

/// Sends a request for `path` on a connection with a small receive buffer, and never reads.
fn unread_request(admin: std::net::SocketAddr, path: &str) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&admin.into()).unwrap();
    let mut s: TcpStream = sock.into();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: {READ}\r\n\r\n"
    )
    .unwrap();
    s
}

/// The admin fixture plus a zone of `n` records: its JSON is far larger than socket buffers.
fn with_big_zone(dir: &tempfile::TempDir, n: usize) {
    let mut z = String::from(
        "zone: big.test\nsoa: { mname: ns1.big.test., rname: h.big.test. }\nns: [ns1.big.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n",
    );
    for i in 0..n {
        z.push_str(&format!(
            "  host-number-{i}: {{ TXT: [\"{}\"] }}\n",
            "x".repeat(64)
        ));
    }
    std::fs::write(dir.path().join("zones/big.test.yaml"), z).unwrap();
}

#[test]
fn responses_nobody_reads_do_not_hold_connection_slots() {
    let dir = fixture_with("  max_connections: 2\n  header_timeout: 300ms\n  idle_timeout: 300ms\n");
    with_big_zone(&dir, 5_000);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    // Two requests whose large answers are never read: every slot is busy writing.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| unread_request(admin, "/api/v1/zones/big.test"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, _, body) = http(admin, "GET", "/api/v1/status", &[("Authorization", READ)], None);
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered only after {:?}",
        started.elapsed()
    );
    drop(stalled);
}

#[test]
fn event_streams_may_take_half_the_connections_at_most() {
    let dir = fixture_with("  max_connections: 4\n");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    let mut followers = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(admin).unwrap();
        write!(
            s,
            "GET /api/v1/events?follow=1 HTTP/1.1\r\nHost: {admin}\r\nAuthorization: {READ}\r\n\r\n"
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 64];
        let n = s.read(&mut head).unwrap();
        assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
        followers.push(s);
    }
    let (status, _, body) = http(
        admin,
        "GET",
        "/api/v1/events?follow=1",
        &[("Authorization", READ)],
        None,
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("event streams"), "{body}");
    let (status, _, body) = http(admin, "GET", "/api/v1/status", &[("Authorization", READ)], None);
    assert_eq!(status, 200, "{body}");
    drop(followers);
}
