//! Listen addresses: clear bind errors, dual stack, and wildcard UDP answering from the
//! address each query was sent to.

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;

/// Runs `meridian serve` expecting it to fail at start; returns its stderr.
fn failed_start(config: &std::path::Path, listen: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(config);
    for l in listen {
        cmd.args(["--listen", l]);
    }
    let out = cmd
        .args(["--admin-listen", "off", "--log-level", "warn"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started anyway");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bind_error_names_the_address_once_and_suggests_listen() {
    let dir = fixture("conformance");
    let config = dir.path().join("meridian.yaml");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = failed_start(&config, &[&addr]);
    assert_eq!(err.matches(&addr).count(), 1, "the address, once:\n{err}");
    assert_eq!(err.matches("in use").count(), 1, "the cause, once:\n{err}");
    assert!(err.contains("UDP"), "which protocol:\n{err}");
    assert!(err.contains("--listen"), "what to do:\n{err}");
    assert!(!err.contains("mDNS"), "{err}");

    // TCP taken, UDP free on the same port.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let err = failed_start(&config, &[&addr]);
    assert_eq!(err.matches(&addr).count(), 1, "{err}");
    assert!(err.contains("TCP"), "{err}");
}

#[test]
fn a_bind_error_on_5353_mentions_mdns() {
    let dir = fixture("conformance");
    let config = dir.path().join("meridian.yaml");
    // An address of our own in 127/8, so nothing else on this host uses it.
    let addr: SocketAddr = "127.83.53.1:5353".parse().unwrap();
    let _taken = UdpSocket::bind(addr).unwrap();
    let err = failed_start(&config, &["127.83.53.1:5353"]);
    assert!(err.contains("mDNS"), "{err}");
    assert!(err.contains("--listen"), "{err}");
}

/// A server started on the listen addresses of its configuration file (not `--listen`).
struct Running {
    child: std::process::Child,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(dir: &std::path::Path, listen: &[String]) -> Running {
        use std::io::BufRead;
        let list: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
        let config = dir.join("meridian.yaml");
        std::fs::write(
            &config,
            format!("dns:\n  listen: [{}]\nzones_dir: zones\n", list.join(", ")),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--admin-listen", "off", "--log-level", "info"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !logs.lock().unwrap().contains(" ready") {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("meridian exited with {status}:\n{}", logs.lock().unwrap());
            }
            assert!(std::time::Instant::now() < deadline, "not ready");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Running { child, logs }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on both UDP and TCP, on the wildcard addresses of both families.
fn free_port() -> u16 {
    use socket2::{Domain, Socket, Type};
    let bind = |domain: Domain, ty: Type, addr: SocketAddr| -> Option<Socket> {
        let s = Socket::new(domain, ty, None).ok()?;
        if domain == Domain::IPV6 {
            s.set_only_v6(true).ok()?;
        }
        s.bind(&addr.into()).ok()?;
        Some(s)
    };
    for _ in 0..100 {
        let first = bind(Domain::IPV4, Type::DGRAM, "0.0.0.0:0".parse().unwrap()).unwrap();
        let port = first.local_addr().unwrap().as_socket().unwrap().port();
        let v4: SocketAddr = ([0, 0, 0, 0], port).into();
        let v6: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
        let others = [
            bind(Domain::IPV4, Type::STREAM, v4),
            bind(Domain::IPV6, Type::DGRAM, v6),
            bind(Domain::IPV6, Type::STREAM, v6),
        ];
        if others.iter().all(Option::is_some) {
            return port;
        }
    }
    panic!("no free port");
}

fn query_bytes(id: u16) -> Vec<u8> {
    ask("www.example.test.", hickory_proto::rr::RecordType::A).to_bytes(id)
}

/// Asks over UDP from a socket connected to `to`, so only a reply from exactly `to` is
/// received; also checks the source recv_from reports. `None` when no reply came.
fn udp_reply_from(to: SocketAddr) -> Option<hickory_proto::op::Message> {
    let local = if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
    let sock = UdpSocket::bind(local).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    sock.send_to(&query_bytes(11), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    assert_eq!(from, to, "the reply must come from the address asked");
    Some(hickory_proto::op::Message::from_vec(&buf[..n]).unwrap())
}

fn tcp_answers(to: SocketAddr) -> bool {
    match std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(500)) {
        Ok(_) => {
            let m = hickory_proto::op::Message::from_vec(&tcp_raw(to, &query_bytes(12))).unwrap();
            assert_eq!(m.answers.len(), 1);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn a_wildcard_udp_listener_replies_from_the_address_asked() {
    let dir = fixture("conformance");
    let port = free_port();
    let _server = Running::start(dir.path(), &[format!("0.0.0.0:{port}"), format!("[::]:{port}")]);
    for to in ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.1.2.3", "::1"] {
        let to = SocketAddr::new(to.parse().unwrap(), port);
        let m = udp_reply_from(to).unwrap_or_else(|| panic!("no reply from {to}"));
        assert_eq!(m.answers.len(), 1, "{to}");
    }
}

#[test]
fn dual_stack_with_both_wildcards() {
    let dir = fixture("conformance");
    let port = free_port();
    let server = Running::start(dir.path(), &[format!("0.0.0.0:{port}"), format!("[::]:{port}")]);
    for to in ["127.0.0.1", "::1"] {
        let to = SocketAddr::new(to.parse().unwrap(), port);
        assert!(udp_reply_from(to).is_some(), "UDP {to}");
        assert!(tcp_answers(to), "TCP {to}");
    }
    assert_eq!(server.logs.lock().unwrap().matches("serving DNS").count(), 2);
}

#[test]
fn the_ipv6_wildcard_alone_is_ipv6_only_on_udp_and_tcp() {
    let dir = fixture("conformance");
    let port = free_port();
    let _server = Running::start(dir.path(), &[format!("[::]:{port}")]);
    let v6 = SocketAddr::new("::1".parse().unwrap(), port);
    assert!(udp_reply_from(v6).is_some(), "UDP ::1");
    assert!(tcp_answers(v6), "TCP ::1");
    let v4 = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert!(
        udp_reply_from(v4).is_none(),
        "UDP over IPv4 is not served by [::]"
    );
    assert!(!tcp_answers(v4), "TCP over IPv4 is not served by [::]");
}

#[test]
fn check_catches_listen_lists_that_cannot_bind() {
    let dir = fixture("conformance");
    let config = dir.path().join("meridian.yaml");
    let check = |listen: &str| {
        std::fs::write(&config, format!("dns:\n  listen: {listen}\nzones_dir: zones\n")).unwrap();
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for (listen, words) in [
        (
            r#"["127.0.0.1:5300", "127.0.0.1:5300"]"#,
            "127.0.0.1:5300 is listed twice",
        ),
        (
            r#"["0.0.0.0:5300", "127.0.0.1:5300"]"#,
            "127.0.0.1:5300 overlaps 0.0.0.0:5300",
        ),
        (r#"["[::1]:5300", "[::]:5300"]"#, "[::]:5300 overlaps [::1]:5300"),
        (
            r#"["[::ffff:127.0.0.1]:5300"]"#,
            "an IPv4-mapped address: list it as 127.0.0.1:5300",
        ),
    ] {
        let (ok, out) = check(listen);
        assert!(!ok, "{listen} passed check");
        assert!(
            out.contains("meridian.yaml:2:") && out.contains(words),
            "{listen}:\n{out}"
        );
    }
    for listen in [
        r#"["0.0.0.0:5300", "[::]:5300"]"#,
        r#"["127.0.0.1:5300", "127.0.0.2:5300", "[::1]:5300"]"#,
        r#"["127.0.0.1:0", "127.0.0.1:0"]"#,
        r#"["0.0.0.0:5300", "127.0.0.1:5301"]"#,
    ] {
        let (ok, out) = check(listen);
        assert!(ok, "{listen} refused:\n{out}");
    }
}

#[test]
fn listen_on_the_command_line_is_checked_too() {
    let dir = fixture("conformance");
    let err = failed_start(
        &dir.path().join("meridian.yaml"),
        &["0.0.0.0:5300", "127.0.0.1:5300"],
    );
    assert!(err.contains("--listen") && err.contains("overlaps"), "{err}");
}
