//! Shared health decided by quorum, end to end: three nodes, each in a network namespace of its
//! own, probing real HTTP targets in the root namespace every 100 ms and sharing what they see
//! through one etcd; a blackhole route cuts one node off from one target while the others still
//! reach it. Every node is asked over DNS, on its own address, what it answers.
//! Needs root, `ip netns`, `etcd` and `etcdctl`; `.ci/run` has them.

mod common;

use common::etcd::EtcdServer;
use common::netns::{self, Lab};
use common::targets::Target;
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType as T;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(100);
const RISE: u32 = 2;
const FALL: u32 = 2;
const LEASE_TTL: Duration = Duration::from_secs(2);
const ETCD_TIMEOUT: Duration = Duration::from_millis(500);
const ALL: [usize; 3] = [0, 1, 2];

/// How long a node takes to see a target fall, and a second for the others' reports to arrive
/// and for the polling.
fn fall_limit() -> Duration {
    FALL * INTERVAL + Duration::from_secs(1)
}

fn rise_limit() -> Duration {
    RISE * INTERVAL + Duration::from_secs(1)
}

/// How long a verdict must hold once a view that must not change it is there: long enough for
/// a second node to have seen the target fall too, had it been cut off as well.
fn hold_window() -> Duration {
    2 * FALL * INTERVAL + Duration::from_millis(500)
}

/// Three nodes in their namespaces, the etcd they share, and the two targets, one per data
/// center: `www.example.test` fails over from `eu` (the target `t`) to `us` (`spare`).
/// Fields drop in order: the nodes before etcd and the targets, the lab last.
struct Cluster {
    nodes: Vec<Server>,
    etcd: EtcdServer,
    t: Target,
    spare: Target,
    lab: Lab,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// A cluster whose nodes decide with `quorum` (`majority`, `any`, `all` or a number), once
    /// every node answers with `t`; `None` (the test skipped, loudly) without the tools.
    fn start(quorum: &str) -> Option<Cluster> {
        if !(netns::available() && have_tool("etcd") && have_tool("etcdctl")) {
            return None;
        }
        let lab = Lab::new(3);
        let (t_ip, spare_ip, etcd_ip) = (lab.root_ip(), lab.root_ip(), lab.root_ip());
        // Both fresh addresses: the port chosen on one is free on the other (the check names
        // one port).
        let t = Target::http(SocketAddr::new(t_ip, 0));
        let port = t.addr.port();
        let spare = Target::http(SocketAddr::new(spare_ip, port));
        let etcd = EtcdServer::builder().listen(etcd_ip).start();
        let shared = format!(
            "checks:\n  web: {{ type: http, path: /healthz, port: {port}, interval: 100ms, \
             timeout: 100ms, rise: {RISE}, fall: {FALL} }}\n\
             datacenters:\n  eu: {{ endpoints: [{{ address: {t_ip}, check: web }}] }}\n  \
             us: {{ endpoints: [{{ address: {spare_ip}, check: web }}] }}\n"
        );
        let zone = "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\n\
                    ns: [ns1.example.test.]\nrecords: { ns1: { A: [192.0.2.1] } }\n\
                    gslb:\n  www: { policy: failover, ttl: 30, datacenters: [eu, us] }\n";
        for (key, value) in [("datacenters", shared.as_str()), ("zones/example.test", zone)] {
            etcd.etcdctl(&["put", &format!("/meridian/{key}"), value])
                .unwrap_or_else(|| panic!("etcdctl put {key}"));
        }
        let mut dirs = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("meridian.yaml");
            std::fs::write(
                &config,
                format!(
                    "state_dir: state\nhealth: {{ quorum: {quorum} }}\n\
                     cluster:\n  node: n{}\n  etcd: {{ endpoints: [\"{}\"], timeout: 500ms, \
                     lease_ttl: 2s }}\n",
                    i + 1,
                    etcd.endpoint
                ),
            )
            .unwrap();
            nodes.push(lab.serve(i, &config, &[]));
            dirs.push(dir);
        }
        let c = Cluster {
            nodes,
            etcd,
            t,
            spare,
            lab,
            _dirs: dirs,
        };
        c.wait_all(&ALL, c.t_ip(), Duration::from_secs(5));
        Some(c)
    }

    fn t_ip(&self) -> IpAddr {
        self.t.addr.ip()
    }

    fn spare_ip(&self) -> IpAddr {
        self.spare.addr.ip()
    }

    /// The subject of the cluster's verdict on `t` in events.
    fn subject(&self) -> String {
        format!("target http://{}/ (check web)", self.t.addr)
    }

    /// The addresses node `i` answers for `www.example.test`, asked from the root namespace.
    fn answer(&self, i: usize) -> Vec<String> {
        let id = rand_id();
        let bytes = ask("www.example.test.", T::A).to_bytes(id);
        let reply = udp_raw_from("0.0.0.0", self.nodes[i].addr, &bytes)
            .unwrap_or_else(|| panic!("n{} did not answer\n{}", i + 1, self.report()));
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, id);
        answer_data(&m)
    }

    /// Polls until each of `nodes` answers `want` alone (at most `limit`); how long it took.
    fn wait_all(&self, nodes: &[usize], want: IpAddr, limit: Duration) -> Duration {
        let start = Instant::now();
        let want = vec![want.to_string()];
        let mut pending = nodes.to_vec();
        loop {
            pending.retain(|&i| self.answer(i) != want);
            if pending.is_empty() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "after {limit:?}, {} still do not answer {want:?}\n{}",
                names(&pending),
                self.report()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that each of `nodes` keeps answering `want` alone for `window`.
    fn hold(&self, nodes: &[usize], want: IpAddr, window: Duration) {
        let start = Instant::now();
        let want = vec![want.to_string()];
        while start.elapsed() < window {
            for &i in nodes {
                let got = self.answer(i);
                assert_eq!(
                    got,
                    want,
                    "n{} changed its answer {:?} into a window of {window:?}\n{}",
                    i + 1,
                    start.elapsed(),
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Node `i`'s events, oldest first.
    fn events(&self, i: usize) -> Vec<serde_json::Value> {
        let (code, _, body) = http(self.nodes[i].admin(), "GET", "/api/v1/events", &[], None);
        assert_eq!(code, 200, "events of n{}: {body}", i + 1);
        serde_json::from_str(&body).unwrap()
    }

    /// Polls node `i`'s events until one about `subject` goes to `to` (at most `limit`).
    fn wait_event(&self, i: usize, subject: &str, to: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(e) = self
                .events(i)
                .into_iter()
                .find(|e| e["subject"] == subject && e["new"] == to)
            {
                return e;
            }
            assert!(
                start.elapsed() < limit,
                "n{} had no event `{subject}` to {to} within {limit:?}\n{}",
                i + 1,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `fall_limit`) until node `i`'s own probes see `t` down.
    fn wait_own_view_down(&self, i: usize) {
        let subject = format!("{} seen from n{}", self.subject(), i + 1);
        self.wait_event(i, &subject, "down", fall_limit());
    }

    /// The keys under `/meridian/<under>` in etcd.
    fn keys(&self, under: &str) -> Vec<String> {
        let out = self
            .etcd
            .etcdctl(&["get", "--prefix", "--keys-only", &format!("/meridian/{under}")])
            .unwrap_or_else(|| panic!("etcdctl get {under}\n{}", self.report()));
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Polls until the keys under `/meridian/<under>` are `want` (at most `limit`).
    fn wait_keys(&self, under: &str, want: &[&str], limit: Duration) {
        let start = Instant::now();
        loop {
            let keys = self.keys(under);
            if keys == want {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "after {limit:?}, the keys under /meridian/{under} are {keys:?}, not {want:?}\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every node's log, and the shared health in etcd when it answers: what a failure shows.
    fn report(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let (s, ms) = (now.as_secs() % 86_400, now.subsec_millis());
        let mut text = format!("(at {:02}:{:02}:{:02}.{ms:03}Z)\n", s / 3600, s / 60 % 60, s % 60);
        for (i, n) in self.nodes.iter().enumerate() {
            text.push_str(&format!("--- n{} log:\n{}", i + 1, n.logs()));
        }
        let health = self
            .etcd
            // From `health/` up to `nodes/` and all below it ('/' sorts before '0').
            .etcdctl(&["get", "/meridian/health/", "/meridian/nodes0"])
            .unwrap_or_else(|| "(etcd does not answer)".into());
        text.push_str(&format!("--- etcd /meridian/nodes/ and health/:\n{health}"));
        text
    }
}

fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|i| format!("n{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn majority_keeps_a_target_one_node_cannot_reach_and_drops_it_when_two_cannot() {
    let Some(c) = Cluster::start("majority") else {
        return;
    };
    let (t, spare) = (c.t_ip(), c.spare_ip());

    // n1 alone is cut off: it sees t down, the cluster does not.
    c.lab.block(0, t);
    c.wait_own_view_down(0);
    c.hold(&ALL, t, hold_window());

    // n2 too: two of three, a majority.
    c.lab.block(1, t);
    c.wait_all(&ALL, spare, fall_limit());
    let verdict = c.wait_event(2, &c.subject(), "down", Duration::from_secs(1));
    let reason = verdict["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("majority") && reason.contains("2 of 3"),
        "the verdict says how it was reached: {verdict}"
    );

    c.lab.unblock(0, t);
    c.lab.unblock(1, t);
    c.wait_all(&ALL, t, rise_limit());
}

#[test]
fn quorum_any_drops_a_target_one_node_cannot_reach() {
    let Some(c) = Cluster::start("any") else {
        return;
    };
    let (t, spare) = (c.t_ip(), c.spare_ip());
    c.lab.block(0, t);
    c.wait_all(&ALL, spare, fall_limit());
    c.lab.unblock(0, t);
    c.wait_all(&ALL, t, rise_limit());
}

#[test]
fn quorum_all_keeps_a_target_until_every_node_sees_it_down() {
    let Some(c) = Cluster::start("all") else {
        return;
    };
    let (t, spare) = (c.t_ip(), c.spare_ip());
    c.lab.block(0, t);
    c.lab.block(1, t);
    c.wait_own_view_down(0);
    c.wait_own_view_down(1);
    c.hold(&ALL, t, hold_window());

    c.lab.block(2, t);
    c.wait_all(&ALL, spare, fall_limit());
}

#[test]
fn a_killed_node_drops_out_of_the_quorum_when_its_lease_expires() {
    let Some(mut c) = Cluster::start("all") else {
        return;
    };
    let (t, spare) = (c.t_ip(), c.spare_ip());
    let live = ["/meridian/nodes/n1", "/meridian/nodes/n2", "/meridian/nodes/n3"];
    c.wait_keys("nodes/", &live, Duration::from_secs(2));

    // n1 and n2 see t down, n3 up: with `all`, t stays.
    c.lab.block(0, t);
    c.lab.block(1, t);
    c.wait_own_view_down(0);
    c.wait_own_view_down(1);
    c.hold(&ALL, t, hold_window());

    // n3 dies without a word: its report counts until its lease expires, then its keys go and
    // the two left decide alone.
    let n3_reports = [
        format!("/meridian/health/n3/web/{t}"),
        format!("/meridian/health/n3/web/{spare}"),
    ];
    c.wait_keys(
        "health/n3/",
        &n3_reports.each_ref().map(String::as_str),
        Duration::ZERO,
    );
    c.nodes[2].kill9();
    let killed = Instant::now();
    // Its last keep-alive was at most a third of the TTL before: the lease lives that much less.
    c.hold(&[0, 1], t, LEASE_TTL - LEASE_TTL / 3 - Duration::from_millis(300));
    let limit = LEASE_TTL + Duration::from_secs(1) - killed.elapsed();
    c.wait_keys("nodes/", &live[..2], limit);
    c.wait_keys("health/n3/", &[], Duration::ZERO);
    c.wait_all(&[0, 1], spare, fall_limit());
}

#[test]
fn cut_off_from_etcd_each_node_takes_its_own_view_of_a_target_that_dies() {
    let Some(mut c) = Cluster::start("majority") else {
        return;
    };
    let (t, spare) = (c.t_ip(), c.spare_ip());
    c.etcd.stop();
    c.t.stop();
    c.wait_all(&ALL, spare, fall_limit() + ETCD_TIMEOUT);
    c.t.start();
    c.wait_all(&ALL, t, rise_limit() + ETCD_TIMEOUT);
}
