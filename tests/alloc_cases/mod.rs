//! Shared by `bench/allocs.rs` and `tests/no_alloc.rs`: a counting allocator, a configuration
//! with every kind of answer, the queries that ask for each, and the measurement itself, made
//! through the function the UDP and TCP workers call (`meridian::dns::handle`).
#![allow(dead_code)]

use meridian::dns::{Transport, handle};
use meridian::state::Snapshot;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

// === Counting allocator ===

thread_local! {
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}
/// Allocations (alloc, alloc_zeroed, realloc) by every thread.
pub static ALL_ALLOCS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting each allocation per thread and in all.
pub struct Counting;

impl Counting {
    fn count() {
        ALL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        // `try_with`: a thread being torn down may still allocate.
        let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is passed to `System` unchanged; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations made by this thread so far.
pub fn thread_allocs() -> u64 {
    THREAD_ALLOCS.with(Cell::get)
}

// === The configuration ===

pub const MERIDIAN_YAML: &str = r#"
dns:
  listen: ["127.0.0.1:0"]
zones_dir: zones
geoip:
  database: geo.mmdb
datacenters:
  us-east:
    location: { continent: NA, country: US, lat: 39.04, lon: -77.49 }
    endpoints:
      - { address: 192.0.2.10 }
      - { address: 192.0.2.11, weight: 2 }
      - { address: "2001:db8:10::10" }
  eu-west:
    location: { continent: EU, country: IE, lat: 53.35, lon: -6.26 }
    endpoints:
      - { address: 198.51.100.10 }
      - { address: 198.51.100.11 }
      - { address: "2001:db8:20::10" }
  eu-central:
    location: { continent: EU, country: DE, lat: 50.11, lon: 8.68 }
    endpoints:
      - { address: 198.51.100.20 }
  ap-south:
    location: { continent: AS, country: IN, lat: 19.08, lon: 72.88 }
    endpoints:
      - { address: 203.0.113.10 }
  dead:
    location: { continent: EU, country: FR, lat: 48.86, lon: 2.35 }
    endpoints:
      - { address: 192.0.2.66, state: down }
"#;

pub const ZONE_YAML: &str = r#"
zone: example.test
ttl: 300
soa: { mname: ns1.example.test., rname: hostmaster.example.test., minimum: 60 }
ns: [ns1.example.test., ns2.example.test.]
records:
  ns1: { A: [192.0.2.1] }
  ns2: { A: [192.0.2.2], AAAA: ["2001:db8::2"] }
  "@": { MX: ["10 mail.example.test.", "20 mail2.example.test."] }
  mail: { A: [192.0.2.25] }
  mail2: { A: [192.0.2.26] }
  static: { A: [192.0.2.80, 192.0.2.81, 192.0.2.82] }
  c1: { CNAME: c2 }
  c2: { CNAME: c3 }
  c3: { CNAME: static }
  alias: { CNAME: www }
  "*.wild": { A: [192.0.2.83] }
  leaf.ent: { TXT: ["below an empty non-terminal"] }
  sub: { NS: [ns.sub.example.test., ns.elsewhere.test.] }
  ns.sub: { A: [192.0.2.99] }
gslb:
  www:
    policy: geo
    ttl: 30
    degraded_ttl: 10
    datacenters: [us-east, eu-west, eu-central, ap-south]
    sticky: true
    geo:
      "net:10.99.0.0/16": [ap-south]
      "continent:NA": [us-east]
      "continent:EU": [[eu-west, eu-central], us-east]
      "continent:AS": [ap-south, eu-west]
      default: [us-east]
    answer: { datacenters: 2, max_addresses: 4 }
  weighted:
    policy: weighted
    datacenters: [us-east, eu-west, ap-south]
    weights: { us-east: 3, eu-west: 2, ap-south: 1 }
  sticky:
    policy: weighted
    datacenters: [us-east, eu-west, ap-south]
    sticky: true
  near:
    policy: nearest
    datacenters: [us-east, eu-west, eu-central, ap-south]
  fo:
    policy: failover
    datacenters: [dead, eu-west, us-east]
    degraded_ttl: 5
  all:
    policy: all
    datacenters: [us-east, eu-west, eu-central, ap-south, dead]
  fallback:
    policy: failover
    datacenters: [dead]
    when_all_down: [192.0.2.250, 192.0.2.251, "2001:db8::250"]
"#;

/// The zone, with `big`: 40 TXT records of 200 bytes (an 8 KiB answer, for TCP).
pub fn zone_yaml() -> String {
    let txt: Vec<String> = (0..40)
        .map(|i| format!("\"{i:03}{}\"", "x".repeat(197)))
        .collect();
    ZONE_YAML.replace(
        "\ngslb:",
        &format!("\n  big: {{ TXT: [{}] }}\ngslb:", txt.join(", ")),
    )
}

pub const GEO_CSV: &str = "network,continent,country,subdivision,latitude,longitude
127.0.0.0/8,NA,US,VA,38.90,-77.04
10.10.0.0/16,NA,US,CA,37.77,-122.42
10.20.0.0/16,EU,GB,ENG,51.51,-0.13
10.30.0.0/16,AS,JP,13,35.68,139.69
2001:db8:20::/48,EU,DE,HE,50.11,8.68
";

/// The configuration's files in a temporary directory (removed when dropped).
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("zones")).unwrap();
        std::fs::write(root.join("meridian.yaml"), MERIDIAN_YAML).unwrap();
        std::fs::write(root.join("zones/example.test.yaml"), zone_yaml()).unwrap();
        let rows = meridian::geo::build::parse_csv(GEO_CSV, "geo.csv").expect("geo csv");
        let db = meridian::geo::build::build(&rows, meridian::geo::build::Schema::MaxMind, "bench");
        std::fs::write(root.join("geo.mmdb"), db).unwrap();
        Fixture { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("meridian.yaml")
    }

    pub fn config(&self) -> meridian::config::Config {
        load(&self.config_path())
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.config(), Default::default(), 1)
    }
}

pub fn load(path: &Path) -> meridian::config::Config {
    meridian::config::load(path).unwrap_or_else(|p| panic!("bench configuration: {p}"))
}

// === The queries ===

pub const A: u16 = 1;
pub const NS: u16 = 2;
pub const MX: u16 = 15;
pub const AAAA: u16 = 28;

/// A query packet: RD set, one question, and an OPT (with ECS `addr/prefix` when given) when
/// `edns`.
pub fn query(id: u16, name: &str, qtype: u16, edns: bool, ecs: Option<(IpAddr, u8)>) -> Vec<u8> {
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        p.push(0);
        p.extend_from_slice(&41u16.to_be_bytes());
        p.extend_from_slice(&1232u16.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        let mut opts = Vec::new();
        if let Some((addr, prefix)) = ecs {
            let octets = usize::from(prefix).div_ceil(8);
            let (family, bytes) = match addr {
                IpAddr::V4(a) => (1u16, a.octets().to_vec()),
                IpAddr::V6(a) => (2u16, a.octets().to_vec()),
            };
            opts.extend_from_slice(&8u16.to_be_bytes());
            opts.extend_from_slice(&((4 + octets) as u16).to_be_bytes());
            opts.extend_from_slice(&family.to_be_bytes());
            opts.push(prefix);
            opts.push(0);
            opts.extend_from_slice(&bytes[..octets]);
        }
        p.extend_from_slice(&(opts.len() as u16).to_be_bytes());
        p.extend_from_slice(&opts);
    }
    p
}

/// One kind of answer: the query that asks for it and what the reply must look like.
pub struct Kind {
    pub name: &'static str,
    pub packet: Vec<u8>,
    pub peer: IpAddr,
    /// Expected response code (low four bits).
    pub rcode: u8,
    /// Expected number of answer records, at least.
    pub min_answers: u16,
}

fn kind(name: &'static str, packet: Vec<u8>, rcode: u8, min_answers: u16) -> Kind {
    Kind {
        name,
        packet,
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        rcode,
        min_answers,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every kind of answer the benchmark measures.
pub fn kinds() -> Vec<Kind> {
    let eu = Some((ip("10.20.0.0"), 24));
    vec![
        kind("static A", query(1, "static.example.test", A, false, None), 0, 3),
        kind(
            "static A, EDNS",
            query(2, "static.example.test", A, true, None),
            0,
            3,
        ),
        kind(
            "static A, ECS",
            query(3, "static.example.test", A, true, eu),
            0,
            3,
        ),
        kind("NXDOMAIN", query(4, "nope.example.test", A, true, None), 3, 0),
        kind("NODATA", query(5, "static.example.test", AAAA, true, None), 0, 0),
        kind(
            "NODATA (empty non-terminal)",
            query(6, "ent.example.test", A, true, None),
            0,
            0,
        ),
        kind(
            "CNAME chain (3 hops)",
            query(7, "c1.example.test", A, true, None),
            0,
            6,
        ),
        kind(
            "wildcard",
            query(8, "host.wild.example.test", A, true, None),
            0,
            1,
        ),
        kind("MX + additional", query(9, "example.test", MX, true, None), 0, 2),
        kind("NS (apex)", query(10, "example.test", NS, true, None), 0, 2),
        kind(
            "referral + glue",
            query(11, "www.sub.example.test", A, true, None),
            0,
            0,
        ),
        kind("REFUSED (no zone)", query(12, "example.org", A, true, None), 5, 0),
        kind("FORMERR (two questions)", formerr(), 1, 0),
        kind(
            "failover (first down)",
            query(13, "fo.example.test", A, true, None),
            0,
            1,
        ),
        kind(
            "weighted",
            query(14, "weighted.example.test", A, true, None),
            0,
            1,
        ),
        kind(
            "weighted sticky, ECS",
            query(15, "sticky.example.test", A, true, eu),
            0,
            1,
        ),
        kind(
            "geo, ECS (EU, sticky rank)",
            query(16, "www.example.test", A, true, eu),
            0,
            1,
        ),
        kind(
            "geo, ECS (net: rule)",
            query(17, "www.example.test", A, true, Some((ip("10.99.1.0"), 24))),
            0,
            1,
        ),
        kind(
            "geo, no ECS (source)",
            query(18, "www.example.test", A, true, None),
            0,
            1,
        ),
        kind(
            "geo AAAA, ECS v6",
            query(
                19,
                "www.example.test",
                AAAA,
                true,
                Some((ip("2001:db8:20::"), 48)),
            ),
            0,
            1,
        ),
        kind("nearest, ECS", query(20, "near.example.test", A, true, eu), 0, 1),
        kind("all", query(21, "all.example.test", A, true, None), 0, 4),
        kind("CNAME to geo", query(22, "alias.example.test", A, true, eu), 0, 2),
        kind(
            "when_all_down fallback",
            query(23, "fallback.example.test", A, true, None),
            0,
            2,
        ),
    ]
}

/// An 8 KiB answer, larger than any buffer's first size: TCP only.
pub fn kind_tcp_only() -> Kind {
    kind(
        "8 KiB TXT answer",
        query(40, "big.example.test", 16, true, None),
        0,
        40,
    )
}

/// A query with QDCOUNT 2: FORMERR.
fn formerr() -> Vec<u8> {
    let mut p = query(30, "static.example.test", A, false, None);
    p[5] = 2;
    p
}

/// Checks the reply `out` to `k`: the expected response code and enough answers.
pub fn check(k: &Kind, out: &[u8]) {
    assert!(out.len() >= 12, "{}: short reply", k.name);
    assert_eq!(out[3] & 0x0f, k.rcode, "{}: rcode", k.name);
    let an = u16::from_be_bytes([out[6], out[7]]);
    assert!(
        an >= k.min_answers,
        "{}: {an} answers, want ≥ {}",
        k.name,
        k.min_answers
    );
}

/// Answers `k` `warmup` times, then `n` times counting this thread's allocations, through
/// `dns::handle` as the UDP (or TCP) worker calls it. Returns the allocations counted.
pub fn allocations(snap: &Snapshot, k: &Kind, transport: Transport, warmup: usize, n: usize) -> u64 {
    let mut out = Vec::new();
    let mut scratch = meridian::answer::Scratch::default();
    let mut entropy = meridian::rng::Entropy::new();
    for _ in 0..warmup {
        let e = entropy.draw();
        assert!(handle(
            &k.packet,
            transport,
            k.peer,
            snap,
            e,
            &mut scratch,
            &mut out
        ));
        check(k, &out);
    }
    let before = thread_allocs();
    for _ in 0..n {
        handle(
            &k.packet,
            transport,
            k.peer,
            snap,
            entropy.draw(),
            &mut scratch,
            &mut out,
        );
    }
    let counted = thread_allocs() - before;
    check(k, &out);
    counted
}
