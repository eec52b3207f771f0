//! Probe targets for health tests: real HTTP(S) and TCP servers on 127.0.0.x that a test can
//! stop, restart and make misbehave.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a target answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 with body "ok".
    Ok,
    /// This status, body "ok".
    Status(u16),
    /// 200 with this body.
    Body(String),
    /// Every other request fails (503): flapping faster than any threshold above 1.
    Alternate,
}

/// A server that can be stopped (connections refused) and started again on the same address.
pub struct Target {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    pub requests: Arc<AtomicU64>,
}

impl Target {
    pub fn http(addr: SocketAddr) -> Target {
        let mut t = Target::new(addr, None);
        t.start();
        t
    }

    /// HTTPS with a self-signed certificate for `names`.
    pub fn https(addr: SocketAddr, names: &[&str]) -> Target {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert =
            rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        let mut t = Target::new(addr, Some(Arc::new(cfg)));
        t.start();
        t
    }

    /// A target not listening yet.
    pub fn stopped_http(addr: SocketAddr) -> Target {
        Target::new(addr, None)
    }

    fn new(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Target {
        Target {
            addr,
            mode: Arc::new(Mutex::new(Mode::Ok)),
            tls,
            running: None,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Listens on `addr`; with port 0 the kernel chooses one, which `addr` names from then on.
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = bind(self.addr);
        self.addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (mode, tls, requests, flag) = (
            self.mode.clone(),
            self.tls.clone(),
            self.requests.clone(),
            stop.clone(),
        );
        let handle = std::thread::spawn(move || {
            let mut count = 0u64;
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count += 1;
                        requests.fetch_add(1, Ordering::Relaxed);
                        let m = mode.lock().unwrap().clone();
                        let tls = tls.clone();
                        // A thread per connection, as a real server serves them side by side: a
                        // client that connects and never sends its request (a prober whose route
                        // was cut mid-probe) would otherwise hold up every other prober until
                        // its read times out.
                        std::thread::spawn(move || serve(stream, &m, count, tls));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        self.running = Some((stop, handle));
    }

    /// Stops listening: new connections are refused.
    pub fn stop(&mut self) {
        if let Some((flag, handle)) = self.running.take() {
            flag.store(true, Ordering::Relaxed);
            handle.join().unwrap();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr`, again for a while when it is in use: a listener closed here lives on in a child
/// that another test thread forked meanwhile, until that child execs.
fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

fn serve(
    stream: TcpStream,
    mode: &Mode,
    n: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let (status, body) = match mode {
        Mode::Ok => (200, "ok".to_string()),
        Mode::Status(s) => (*s, "ok".to_string()),
        Mode::Body(b) => (200, b.clone()),
        Mode::Alternate => (if n.is_multiple_of(2) { 503 } else { 200 }, "ok".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    match tls {
        None => exchange(stream, &reply),
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
            exchange(rustls::StreamOwned::new(conn, stream), &reply)
        }
    }
}

/// Reads the request head, writes the reply.
fn exchange(mut s: impl Read + Write, reply: &str) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    s.write_all(reply.as_bytes())?;
    s.flush()
}

/// A port free on 127.0.0.1 (the tests use it on other 127.x addresses too).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
