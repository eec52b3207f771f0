//! A lab of network namespaces for cluster tests: each node in a namespace of its own, joined to
//! the root namespace by a veth pair, so that a test can cut one node off from one target (a
//! blackhole route in that node's namespace) while the others still reach it. Targets and etcd
//! listen on addresses the lab adds to the root namespace's `lo`, reachable from every node; the
//! tests reach each node on its own address from the root namespace.
//! Needs root and `ip` (iproute2) with `ip netns`: [`available`] says loudly when not.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544, set aside for benchmarking networks: no real
//! network is shadowed while a lab lives). Lab `x` (0..=255) owns
//! - 198.18.x.0/24 for the addresses in the root namespace ([`Lab::root_ip`]), /32s on `lo`;
//! - 198.19.x.0/24 for its links: node `i` on 198.19.x.(4i+4)/30, the root side .(4i+5), the
//!   node side .(4i+6), and the node's default route via the root side.
//!
//! The namespace and the root side of its veth pair are both named `mrd<x>n<i>` (9 characters at
//! most; interface names allow 15); inside the namespace the other side is `uplink`.
//!
//! Lab numbers are claimed with a `flock` on a file per number, so the labs of tests running in
//! parallel, in one test binary or in several, never share one. The kernel releases the lock when
//! a process dies, so a number a killed run held is claimed again, its leftovers swept first.
#![allow(dead_code)]

use super::Server;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Nodes a lab holds at most: the last one's link is 198.19.x.252/30.
pub const MAX_NODES: usize = 63;

/// Whether labs can be built here: root, and `ip netns add` works (it needs CAP_SYS_ADMIN, which
/// a container may lack even for root). When not, says so loudly and the test is skipped, unless
/// MERIDIAN_REQUIRE_TOOLS is set, where it fails.
pub fn available() -> bool {
    if !super::have_tool("ip") {
        return false;
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        super::skip("network namespace tests need root (for `ip netns add`)");
        return false;
    }
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "mrdprobe{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    let added = run(&["netns", "add", &name]);
    if !added.status.success() {
        super::skip(&format!(
            "`ip netns add` fails here: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
        return false;
    }
    run(&["netns", "del", &name]);
    true
}

/// Namespaces joined to the root namespace, and addresses added to it; all removed on drop,
/// a panicking test's too.
pub struct Lab {
    x: u8,
    nodes: usize,
    /// The root addresses handed out so far: the next one is 198.18.x.(len + 1).
    root: Mutex<Vec<Ipv4Addr>>,
    /// Holds the `flock` on the lab number while the lab lives.
    _claim: std::fs::File,
}

impl Lab {
    /// A lab of `nodes` namespaces, each with `lo` up and its link to the root namespace.
    /// Call [`available`] first.
    pub fn new(nodes: usize) -> Lab {
        assert!(
            (1..=MAX_NODES).contains(&nodes),
            "a lab holds 1 to {MAX_NODES} nodes"
        );
        let (x, claim) = claim();
        // Made before the namespaces, so a setup failing half-way is swept by `drop`.
        let lab = Lab {
            x,
            nodes,
            root: Mutex::new(Vec::new()),
            _claim: claim,
        };
        for i in 0..nodes {
            lab.join(i);
        }
        lab
    }

    /// How many nodes the lab has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Node `i`'s namespace (and the name of its link's root side).
    pub fn ns(&self, i: usize) -> String {
        assert!(i < self.nodes, "the lab has {} nodes, not {}", self.nodes, i + 1);
        format!("mrd{}n{i}", self.x)
    }

    /// Node `i`'s address, in its namespace.
    pub fn node_ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 19, self.x, 4 * i as u8 + 6))
    }

    /// The root side of node `i`'s link: its default gateway.
    pub fn gateway(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 19, self.x, 4 * i as u8 + 5))
    }

    /// A new address in the root namespace (a /32 on `lo`) for a target or etcd to listen on;
    /// every node reaches it through its link.
    pub fn root_ip(&self) -> IpAddr {
        let mut given = self.root.lock().unwrap();
        assert!(given.len() < 254, "the lab's root addresses are used up");
        let ip = Ipv4Addr::new(198, 18, self.x, given.len() as u8 + 1);
        ip_ok(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        given.push(ip);
        IpAddr::V4(ip)
    }

    /// Cuts node `i` off from `target`: a blackhole route in its namespace (connecting fails at
    /// once with EINVAL, as a probe sees a dead network path).
    pub fn block(&self, i: usize, target: IpAddr) {
        ip_ok(&["-n", &self.ns(i), "route", "add", "blackhole", &host(target)]);
    }

    /// Undoes [`Lab::block`].
    pub fn unblock(&self, i: usize, target: IpAddr) {
        ip_ok(&["-n", &self.ns(i), "route", "del", "blackhole", &host(target)]);
    }

    /// Runs `program args` in node `i`'s namespace.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i), program])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// Starts `meridian serve --config <config>` in node `i`'s namespace, its DNS and admin
    /// listeners on the node's address (ports chosen by the server). Killing the returned
    /// [`Server`] kills the server itself: `ip netns exec` execs it in place.
    pub fn serve(&self, i: usize, config: &Path, extra: &[&str]) -> Server {
        let ns = self.ns(i);
        Server::start_under(&["ip", "netns", "exec", &ns], self.node_ip(i), config, extra)
    }

    /// Makes node `i`'s namespace and link.
    fn join(&self, i: usize) {
        let ns = self.ns(i);
        let (gateway, node) = (self.gateway(i), self.node_ip(i));
        ip_ok(&["netns", "add", &ns]);
        ip_ok(&[
            "link", "add", &ns, "type", "veth", "peer", "name", "uplink", "netns", &ns,
        ]);
        ip_ok(&["addr", "add", &format!("{gateway}/30"), "dev", &ns]);
        ip_ok(&["link", "set", &ns, "up"]);
        ip_ok(&["-n", &ns, "addr", "add", &format!("{node}/30"), "dev", "uplink"]);
        ip_ok(&["-n", &ns, "link", "set", "uplink", "up"]);
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ip_ok(&["-n", &ns, "route", "add", "default", "via", &gateway.to_string()]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        sweep(self.x);
    }
}

/// Claims a free lab number: one whose lock file this process could lock, and none of whose
/// addresses the machine routes otherwise.
fn claim() -> (u8, std::fs::File) {
    static ABANDONED: std::sync::Once = std::sync::Once::new();
    ABANDONED.call_once(sweep_abandoned);
    // Processes start at different numbers, threads take the next: few tries collide.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = std::process::id() as usize * 37;
    let mut foreign = Vec::new();
    for _ in 0..256 {
        let x = ((start + NEXT.fetch_add(1, Ordering::Relaxed)) % 256) as u8;
        let Some(file) = lock(x) else {
            continue;
        };
        // Whatever carries this number now was left by a run that died holding it.
        sweep(x);
        match routed_otherwise(x) {
            Some(route) => foreign.push(route),
            None => return (x, file),
        }
    }
    panic!("no free network namespace lab number; routes in the way: {foreign:?}");
}

/// The lock on lab number `x`, when no one holds it.
fn lock(x: u8) -> Option<std::fs::File> {
    let path = std::env::temp_dir().join(format!("meridian-netns-lab-{x}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock(2) on a descriptor this function owns; the lock lives as long as it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (rc == 0).then_some(file)
}

/// Sweeps the labs a killed test run left (namespaces whose number no one holds), with the
/// servers still running in them.
fn sweep_abandoned() {
    let list = run(&["netns", "list"]);
    let mut numbers: Vec<u8> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| {
            let (x, i) = l
                .split_whitespace()
                .next()?
                .strip_prefix("mrd")?
                .split_once('n')?;
            i.parse::<u8>().ok()?;
            x.parse().ok()
        })
        .collect();
    numbers.dedup();
    for x in numbers {
        if let Some(_held) = lock(x) {
            sweep(x);
        }
    }
}

/// A route (or local address) of the root namespace within lab `x`'s ranges, once its own
/// leftovers are swept: the machine uses them, and a lab must not shadow them.
fn routed_otherwise(x: u8) -> Option<String> {
    let ranges = [
        (u32::from(Ipv4Addr::new(198, 18, x, 0)), 24),
        (u32::from(Ipv4Addr::new(198, 19, x, 0)), 24),
    ];
    let table = run(&["-4", "-o", "route", "show", "table", "all"]);
    String::from_utf8_lossy(&table.stdout)
        .lines()
        .find(|line| {
            let mut words = line.split_whitespace().peekable();
            const TYPES: [&str; 10] = [
                "local",
                "broadcast",
                "unicast",
                "blackhole",
                "unreachable",
                "prohibit",
                "multicast",
                "anycast",
                "throw",
                "nat",
            ];
            if words.peek().is_some_and(|w| TYPES.contains(w)) {
                words.next();
            }
            let Some(dest) = words.next() else {
                return false;
            };
            let (addr, len) = dest.split_once('/').unwrap_or((dest, "32"));
            let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
                return false; // `default`: it shadows nothing a lab adds
            };
            ranges.iter().any(|&(net, net_len)| {
                // Two prefixes overlap when the shorter holds the other's first address.
                let shorter = len.min(net_len);
                let mask = if shorter == 0 {
                    0
                } else {
                    u32::MAX << (32 - shorter)
                };
                len > 0 && (u32::from(addr) & mask) == (net & mask)
            })
        })
        .map(str::to_string)
}

/// Removes all of lab `x`: its nodes' processes (by pid), namespaces and links, and its
/// addresses on `lo`. Never panics (it runs in `drop`, maybe while a test unwinds).
fn sweep(x: u8) {
    let ours = |name: &str| {
        name.strip_prefix(&format!("mrd{x}n"))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    };
    let list = run(&["netns", "list"]);
    for ns in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ours(ns))
    {
        let pids = run(&["netns", "pids", ns]);
        for pid in String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid runs in a namespace
            // of this lab, so a test of this lab started it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        run(&["netns", "del", ns]);
    }
    // Deleting a namespace deletes its veth ends only once its last process is gone: the root
    // sides go now, taking their peers with them.
    let links = run(&["-o", "link", "show"]);
    for link in String::from_utf8_lossy(&links.stdout).lines().filter_map(|l| {
        // `12: mrd7n0@if2: <BROADCAST,...`
        let name = l.split(": ").nth(1)?;
        Some(name.split('@').next()?.to_string())
    }) {
        if ours(&link) {
            run(&["link", "del", &link]);
        }
    }
    let addrs = run(&["-4", "-o", "addr", "show", "dev", "lo"]);
    for addr in String::from_utf8_lossy(&addrs.stdout).lines().filter_map(|l| {
        // `1: lo    inet 198.18.7.1/32 scope global lo ...`
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        words.next().map(str::to_string)
    }) {
        let ip = addr.split('/').next().and_then(|a| a.parse::<Ipv4Addr>().ok());
        if ip.is_some_and(|ip| ip.octets()[..3] == [198, 18, x]) {
            run(&["addr", "del", &addr, "dev", "lo"]);
        }
    }
}

/// `ip/32`.
fn host(ip: IpAddr) -> String {
    format!("{ip}/32")
}

/// Runs `ip args`.
fn run(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// Runs `ip args`; panics with its complaint when it fails.
fn ip_ok(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
