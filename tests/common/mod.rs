//! Test harness: the real `meridian` binary on a free loopback port, and a DNS client built on
//! hickory-proto (an implementation independent of Meridian's own wire code).
#![allow(dead_code)]

pub mod chromium;
pub mod etcd;
pub mod etcd_cluster;
pub mod netns;
pub mod targets;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_meridian");

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    admin: Option<SocketAddr>,
    logs: Arc<Mutex<String>>,
    /// The `--ready-file` the server wrote its addresses to, and the directory holding it.
    pub ready_file: PathBuf,
    _ready_dir: tempfile::TempDir,
}

impl Server {
    /// Starts `meridian serve --config <config>` on 127.0.0.1, ports chosen by the server.
    pub fn start(config: &Path) -> Server {
        Self::start_with(config, &[])
    }

    /// Like `start`, with more arguments. Returns once the server is ready: when the file given
    /// to `--ready-file` appears, holding the addresses the server bound.
    pub fn start_with(config: &Path, extra: &[&str]) -> Server {
        Self::start_under(&[], IpAddr::from([127, 0, 0, 1]), config, extra)
    }

    /// Like `start_with`, the binary run by `wrapper` (a command that runs the rest of its
    /// command line, like `ip netns exec NS`, and must exec it in place: the child's pid is the
    /// server's), with its DNS and admin listeners on `ip`.
    pub fn start_under(wrapper: &[&str], ip: IpAddr, config: &Path, extra: &[&str]) -> Server {
        let ready_dir = tempfile::tempdir().expect("tempdir");
        let ready_file = ready_dir.path().join("listening.json");
        let any_port = SocketAddr::new(ip, 0).to_string();
        let mut command = match wrapper {
            [] => Command::new(BIN),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
        };
        let mut child = command
            .args(["serve", "--config"])
            .arg(config)
            .args([
                "--listen",
                &any_port,
                "--admin-listen",
                &any_port,
                "--log-level",
                "info",
                "--ready-file",
            ])
            .arg(&ready_file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn meridian");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Written atomically: once there, it is whole.
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                let (dns, admin) = listening(&text);
                return Server {
                    child,
                    addr: dns[0],
                    admin,
                    logs,
                    ready_file,
                    _ready_dir: ready_dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("meridian exited with {status}:\n{}", logs.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "meridian did not start:\n{}",
                logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log holds `needle` `count` times.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.logs().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "log never showed `{needle}` x{count}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        self.wait_log_count(needle, 1, timeout)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin API's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("the admin API is off")
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process without warning (SIGKILL) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DNS addresses and the admin address in a `--ready-file`.
pub fn listening(text: &str) -> (Vec<SocketAddr>, Option<SocketAddr>) {
    let v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("ready file `{text}`: {e}"));
    let addr = |a: &serde_json::Value| a.as_str()?.parse::<SocketAddr>().ok();
    let dns: Vec<SocketAddr> = v["dns"]
        .as_array()
        .map(|a| a.iter().filter_map(addr).collect())
        .unwrap_or_default();
    assert!(!dns.is_empty(), "no DNS address in the ready file `{text}`");
    (dns, addr(&v["admin"]))
}

/// A minimal HTTP/1.1 client for the admin API: (status, headers, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a fixture directory into a fresh temp dir (so tests may edit it).
pub fn fixture(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&src, dir.path());
    dir
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What to ask.
#[derive(Clone, Debug)]
pub struct Ask {
    pub name: String,
    pub rtype: RecordType,
    pub class: DNSClass,
    /// EDNS payload size; `None` sends no OPT.
    pub edns: Option<u16>,
    pub edns_version: u8,
    pub ecs: Option<(IpAddr, u8)>,
    pub tcp: bool,
    pub rd: bool,
}

pub fn ask(name: &str, rtype: RecordType) -> Ask {
    Ask {
        name: name.into(),
        rtype,
        class: DNSClass::IN,
        edns: Some(1232),
        edns_version: 0,
        ecs: None,
        tcp: false,
        rd: false,
    }
}

impl Ask {
    pub fn no_edns(mut self) -> Self {
        self.edns = None;
        self
    }
    pub fn payload(mut self, size: u16) -> Self {
        self.edns = Some(size);
        self
    }
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }
    pub fn ecs(mut self, addr: &str, prefix: u8) -> Self {
        self.ecs = Some((addr.parse().unwrap(), prefix));
        self
    }
    pub fn class(mut self, class: DNSClass) -> Self {
        self.class = class;
        self
    }
    pub fn version(mut self, v: u8) -> Self {
        self.edns_version = v;
        self
    }
    pub fn rd(mut self) -> Self {
        self.rd = true;
        self
    }

    pub fn to_bytes(&self, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        let mut q = Query::query(Name::from_ascii(&self.name).unwrap(), self.rtype);
        q.set_query_class(self.class);
        m.add_query(q);
        m.metadata.recursion_desired = self.rd;
        if let Some(size) = self.edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_version(self.edns_version);
            if let Some((addr, prefix)) = self.ecs {
                e.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }
}

/// Sends raw bytes over UDP; `None` when no reply came within a second.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_from("127.0.0.1", addr, bytes)
}

/// Like `udp_raw`, sent from the loopback address `from` (any 127.x.y.z is local on Linux).
pub fn udp_raw_from(from: &str, addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((from, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.send_to(bytes, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends one length-prefixed message over a new TCP connection and reads the reply.
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(bytes).unwrap();
    read_framed(&mut s)
}

pub fn read_framed(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Asks and parses the reply; panics when none comes.
pub fn query(addr: SocketAddr, a: &Ask) -> Message {
    let id = rand_id();
    let bytes = a.to_bytes(id);
    let reply = if a.tcp {
        tcp_raw(addr, &bytes)
    } else {
        udp_raw(addr, &bytes).unwrap_or_else(|| panic!("no reply to {a:?}"))
    };
    let m = Message::from_vec(&reply).unwrap_or_else(|e| panic!("unparsable reply to {a:?}: {e}"));
    assert_eq!(m.metadata.id, id, "reply id");
    m
}

/// Asks over UDP from the loopback address `from`.
pub fn query_from(from: &str, addr: SocketAddr, a: &Ask) -> Message {
    let id = rand_id();
    let reply = udp_raw_from(from, addr, &a.to_bytes(id)).unwrap_or_else(|| panic!("no reply to {a:?}"));
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

/// The ECS option of a reply: (address, source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(IpAddr, u8, u8)> {
    use hickory_proto::rr::rdata::opt::EdnsCode;
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(c) => Some((c.addr(), c.source_prefix(), c.scope_prefix())),
        _ => None,
    }
}

/// The address data of the answer section, sorted.
pub fn answer_data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// Builds `csv` into `out` with the real binary.
pub fn build_geoip(csv: &Path, out: &Path, schema: &str) {
    let st = Command::new(BIN)
        .args(["geoip", "build", "--schema", schema, "--csv"])
        .arg(csv)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "geoip build failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

pub fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u16
}

/// `owner ttl TYPE rdata`, as a test table writes it.
pub fn show(r: &Record) -> String {
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
}

pub fn section(records: &[Record]) -> Vec<String> {
    records.iter().map(show).collect()
}

/// Asks `server` with dig (`args` as on its command line); the output with runs of blanks made
/// one space (dig aligns columns with tabs and spaces).
pub fn dig(server: &Server, args: &str) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &server.addr.port().to_string(),
            "+time=2",
            "+tries=1",
        ])
        .args(args.split_whitespace())
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an external tool is on PATH. When it is missing, the test says so loudly and is
/// skipped, unless MERIDIAN_REQUIRE_TOOLS is set (as `.ci/run` does), where it fails.
pub fn have_tool(tool: &str) -> bool {
    let found = on_path(tool);
    if !found {
        skip(&missing(tool));
    }
    found
}

/// Whether `tool` is on PATH (nothing said when not).
pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why a test that needs `tool` cannot run.
fn missing(tool: &str) -> String {
    format!("`{tool}` is not installed; install it (see .ci/run) to run this test")
}

/// Checks a `/metrics` text with Prometheus's own parser and linter (`promtool check metrics`),
/// when promtool is installed (see `have_tool`).
pub fn promtool_check(metrics: &str) {
    if !have_tool("promtool") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 3 for lint remarks, 1 for text it cannot parse. It reads the classic
    // text format, where an OpenMetrics counter's samples (`x_total`) are not the family its
    // HELP names (`x`): that remark, and no other, is expected.
    assert!(
        !said.contains("error while linting") && out.status.code() != Some(1),
        "promtool: {said}\n{metrics}"
    );
    for remark in said.lines() {
        assert!(
            remark.ends_with("_total no help text"),
            "promtool: {said}\n{metrics}"
        );
    }
}

/// Says loudly that a test is skipped, and why; fails it instead when MERIDIAN_REQUIRE_TOOLS is
/// set (as `.ci/run` does), where every test must run.
pub fn skip(why: &str) {
    if std::env::var_os("MERIDIAN_REQUIRE_TOOLS").is_some() {
        panic!("cannot run (MERIDIAN_REQUIRE_TOOLS is set): {why}");
    }
    // Straight to the process's stderr: `eprintln!` would be captured by the test harness and
    // shown only for failing tests, and a skip must be seen.
    let _ = std::io::stderr().write_all(format!("\n!!! SKIPPED: {why} !!!\n\n").as_bytes());
}
