//! Stalled TCP clients cannot hold the server: a write that makes no progress closes the
//! connection, and shutdown is bounded by `dns.shutdown_grace` whatever clients do.

mod common;

use common::*;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A zone whose TXT answer is large (about 7.7 KB), so a few hundred unread answers fill the
/// socket buffers quickly, even against a debug build.
fn write_config(dir: &Path, dns_settings: &str) {
    let strings: Vec<String> = (0..30)
        .map(|i| format!("\"{i:02}{}\"", "x".repeat(250)))
        .collect();
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/big.test.yaml"),
        format!(
            "zone: big.test\nsoa: {{ mname: ns1.big.test., rname: h.big.test., serial: 1 }}\n\
             ns: [ns1.big.test.]\nrecords:\n  ns1: {{ A: [192.0.2.1] }}\n  big: {{ TXT: [{}] }}\n",
            strings.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("meridian.yaml"),
        format!("dns:\n  listen: [\"127.0.0.1:0\"]\n{dns_settings}zones_dir: zones\n"),
    )
    .unwrap();
}

/// Connects with a small receive buffer and pipelines queries without reading until the
/// server stops taking them (its answers fill both buffers, so its write is stalled).
fn stalled_client(addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_nonblocking(true).unwrap();
    let q = ask("big.big.test.", hickory_proto::rr::RecordType::TXT)
        .no_edns()
        .to_bytes(7);
    let mut burst = Vec::new();
    for _ in 0..64 {
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut blocked, mut offset) = (0, 0);
    // Stalled: no progress for 400 ms (a busy server only slows down, a stalled one stops).
    while blocked < 20 {
        assert!(Instant::now() < deadline, "the server kept reading");
        match s.write(&burst[offset..]) {
            Ok(n) => {
                blocked = 0;
                offset = (offset + n) % burst.len();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            // Already closed by a short write timeout: as stalled as it gets.
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    s
}

#[test]
fn sigterm_exits_within_the_grace_period_with_50_stalled_tcp_clients() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "  tcp_idle_timeout: 60s\n  shutdown_grace: 1s\n");
    let mut server = Server::start(&dir.path().join("meridian.yaml"));
    let addr = server.addr;
    let clients: Vec<TcpStream> = (0..50)
        .map(|_| std::thread::spawn(move || stalled_client(addr)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    let took = start.elapsed();
    eprintln!(
        "SIGTERM to exit with {} stalled TCP clients: {took:?}",
        clients.len()
    );
    let status = status.unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", server.logs()));
    assert!(status.success(), "exit status {status}:\n{}", server.logs());
    // Grace 1 s, plus a margin for a loaded machine.
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "the grace period was not given: {took:?}"
    );
    assert!(
        server.logs().contains("grace period over"),
        "says why it cut connections:\n{}",
        server.logs()
    );
}

#[test]
fn a_stalled_write_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "  tcp_idle_timeout: 300ms\n");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let mut s = stalled_client(server.addr);
    // Once the write timeout has passed, the server closes; its receive buffer still holds
    // queries, so the close resets the connection and the client's next write fails. While
    // the connection is held open, the write only ever blocks.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match s.write(b"\0") {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the stalled connection stayed open");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "{e}"
                );
                break;
            }
            // The server was still catching up; it stalls soon.
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    // The server still answers others.
    let m = query(
        server.addr,
        &ask("ns1.big.test.", hickory_proto::rr::RecordType::A).tcp(),
    );
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn an_open_event_stream_does_not_hold_shutdown_past_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "  shutdown_grace: 300ms\n");
    let mut server = Server::start(&dir.path().join("meridian.yaml"));
    let admin = server.admin();
    let mut sse = TcpStream::connect(admin).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        sse,
        "GET /api/v1/events?follow=1 HTTP/1.1\r\nHost: {admin}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut sse, &mut head).unwrap();
    assert_eq!(&head[9..12], b"200", "{}", String::from_utf8_lossy(&head));
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    let took = start.elapsed();
    assert!(
        status.is_some(),
        "still running 10 s after SIGTERM:\n{}",
        server.logs()
    );
    assert!(took < Duration::from_millis(1800), "took {took:?}");
}
