//! The health exchange of cluster mode on loopback: a node publishes its own view of each target
//! under its lease, and counts the views other nodes publish. The other nodes here are votes
//! written with etcdctl under a lease of their own, so that each count is chosen by the test
//! (tests/quorum.rs runs three real nodes in network namespaces).
//! Needs `etcd` and `etcdctl` (Debian's etcd-server and etcd-client); `.ci/run` installs them.

mod common;

use common::etcd::EtcdServer;
use common::targets::{Target, free_port};
use common::*;
use hickory_proto::rr::RecordType as T;
use std::time::{Duration, Instant};

const PREFIX: &str = "/h/";

fn tools() -> bool {
    have_tool("etcd") && have_tool("etcdctl")
}

/// The shared data centers: eu first, us second, each one endpoint probed over HTTP every 100 ms.
fn shared(net: u8, port: u16) -> String {
    format!(
        "checks:\n  web: {{ type: http, port: {port}, path: /, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}\n\
         datacenters:\n  eu: {{ endpoints: [{{ address: 127.{net}.2.1, check: web }}] }}\n  us: {{ endpoints: [{{ address: 127.{net}.1.1, check: web }}] }}\n"
    )
}

const ZONE: &str = "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\n\
ns: [ns1.example.test.]\nrecords: { ns1: { A: [192.0.2.1] } }\n\
gslb:\n  www: { policy: failover, ttl: 30, datacenters: [eu, us] }\n";

/// A node named `name` deciding by `quorum`.
fn node(name: &str, quorum: &str, etcd: &EtcdServer) -> tempfile::TempDir {
    node_ttl(name, quorum, etcd, "2s")
}

/// A node like [`node`] with a lease of `ttl`.
fn node_ttl(name: &str, quorum: &str, etcd: &EtcdServer, ttl: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("meridian.yaml"),
        format!(
            "dns: {{ listen: [\"127.0.0.1:0\"] }}\nstate_dir: state\nhealth: {{ quorum: {quorum} }}\n\
             cluster:\n  node: {name}\n  etcd: {{ endpoints: [\"{}\"], prefix: {PREFIX}, timeout: 500ms, lease_ttl: {ttl} }}\n",
            etcd.endpoint
        ),
    )
    .unwrap();
    dir
}

fn seeded(net: u8, port: u16) -> EtcdServer {
    let etcd = EtcdServer::start();
    etcd.etcdctl(&["put", &format!("{PREFIX}datacenters"), &shared(net, port)])
        .unwrap();
    etcd.etcdctl(&["put", &format!("{PREFIX}zones/example.test"), ZONE])
        .unwrap();
    etcd
}

fn www(server: &Server) -> Vec<String> {
    answer_data(&query(server.addr, &ask("www.example.test.", T::A)))
}

fn until_www(server: &Server, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if www(server) == [want] {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "www still answers {:?}, not {want}, after {limit:?}\n{}",
            www(server),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts `www` answers `want` throughout `window`.
fn stays(server: &Server, want: &str, window: Duration) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert_eq!(
            www(server),
            [want],
            "after {:?}\n{}",
            start.elapsed(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lease for votes written by the test (TTL 30 s: revoked by the test).
fn lease(etcd: &EtcdServer) -> String {
    let out = etcd.etcdctl(&["lease", "grant", "30"]).expect("lease grant");
    // "lease 694d7b6a1e5a0a0b granted with TTL(30s)"
    out.split_whitespace().nth(1).expect("lease id").to_string()
}

/// Another node's vote on `target`, bound to `lease`, with the node's `nodes/` key (only live
/// nodes' votes count).
fn vote(etcd: &EtcdServer, lease: &str, node: &str, target: &str, state: &str) {
    let record = r#"{"started":"2026-11-24T00:00:00.000Z","lease":1,"quorum":"majority"}"#;
    etcd.etcdctl(&["put", "--lease", lease, &format!("{PREFIX}nodes/{node}"), record])
        .expect("etcdctl put node");
    let value = format!(
        r#"{{"state":"{state}","since":"2026-11-24T00:00:00.000Z","reason":"seen {state} by {node}"}}"#
    );
    etcd.etcdctl(&[
        "put",
        "--lease",
        lease,
        &format!("{PREFIX}health/{node}/{target}"),
        &value,
    ])
    .expect("etcdctl put vote");
}

fn get_prefix(etcd: &EtcdServer, key: &str) -> String {
    etcd.etcdctl(&["get", "--prefix", &format!("{PREFIX}{key}")])
        .unwrap_or_default()
}

fn events(server: &Server) -> Vec<serde_json::Value> {
    let (code, _, body) = http(server.admin(), "GET", "/api/v1/events", &[], None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn poll(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_publishes_its_view_and_is_outvoted_by_a_majority() {
    if !tools() {
        return;
    }
    let (net, port) = (41, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "majority", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let eu = format!("127.{net}.2.1");
    let target = format!("web/{eu}");
    until_www(&server, &eu, Duration::from_secs(3));

    // Its own view, bound to its lease, and its presence.
    poll(Duration::from_secs(3), "the node's view in etcd", || {
        get_prefix(&etcd, &format!("health/a/{target}")).contains(r#""state":"up""#)
    });
    assert!(get_prefix(&etcd, "nodes/a").contains(r#""quorum":"majority""#));

    // One other node sees eu down: 1 of 2 is not more than half.
    let others = lease(&etcd);
    vote(&etcd, &others, "b", &target, "down");
    stays(&server, &eu, Duration::from_millis(600));
    // A second: 2 of 3 down, eu is taken out although this node sees it up.
    vote(&etcd, &others, "c", &target, "down");
    until_www(&server, &format!("127.{net}.1.1"), Duration::from_secs(1));
    let ev = events(&server);
    let verdict = ev
        .iter()
        .rev()
        .find(|e| {
            e["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("target ") && !s.contains("seen from"))
                && e["new"] == "down"
        })
        .unwrap_or_else(|| panic!("a verdict event: {ev:#?}"));
    let reason = verdict["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("quorum majority (2 of 3 down, 2 needed)")
            && reason.contains("down on b (seen down by b), c (seen down by c)")
            && reason.contains("up on a"),
        "{reason}"
    );
    // The explanation says who voted how.
    let (code, _, body) = http(
        server.admin(),
        "GET",
        "/api/v1/explain?name=www.example.test&type=A&client=192.0.2.9",
        &[],
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("down by quorum majority (2 of 3 down"), "{body}");

    // Their lease ends: their votes go, and this node's own view decides again.
    etcd.etcdctl(&["lease", "revoke", &others]).unwrap();
    until_www(&server, &eu, Duration::from_secs(1));
}

#[test]
fn with_quorum_any_one_node_seeing_a_target_down_takes_it_out() {
    if !tools() {
        return;
    }
    let (net, port) = (42, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "any", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let eu = format!("127.{net}.2.1");
    until_www(&server, &eu, Duration::from_secs(3));
    let others = lease(&etcd);
    vote(&etcd, &others, "b", &format!("web/{eu}"), "up");
    vote(&etcd, &others, "c", &format!("web/{eu}"), "down");
    until_www(&server, &format!("127.{net}.1.1"), Duration::from_secs(1));
    vote(&etcd, &others, "c", &format!("web/{eu}"), "up");
    until_www(&server, &eu, Duration::from_secs(1));
}

#[test]
fn a_stopped_node_withdraws_its_views_and_a_second_node_with_its_name_is_refused() {
    if !tools() {
        return;
    }
    let (net, port) = (43, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "majority", &etcd);
    let mut server = Server::start(&dir.path().join("meridian.yaml"));
    poll(Duration::from_secs(3), "the node's views in etcd", || {
        get_prefix(&etcd, "health/a/").matches(r#""state":"up""#).count() == 2
    });

    // Another process with the same name: refused, and the first one's views stay.
    let twin_dir = node("a", "majority", &etcd);
    let twin = Server::start(&twin_dir.path().join("meridian.yaml"));
    poll(Duration::from_secs(3), "the twin's refusal", || {
        events(&twin)
            .iter()
            .any(|e| e["subject"] == "node a" && e["new"] == "refused")
    });
    drop(twin);

    // A stop revokes the lease: the views go at once, not a lease TTL later.
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(5)).expect("stops");
    poll(Duration::from_millis(500), "the views withdrawn", || {
        get_prefix(&etcd, "health/a/").is_empty() && get_prefix(&etcd, "nodes/a").is_empty()
    });
}

#[test]
fn a_starting_node_counts_the_others_views_in_its_first_answers() {
    if !tools() {
        return;
    }
    let (net, port) = (44, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let others = lease(&etcd);
    let target = format!("web/127.{net}.2.1");
    vote(&etcd, &others, "b", &target, "down");
    vote(&etcd, &others, "c", &target, "down");
    let dir = node("a", "majority", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    // Ready means the first answers count them: eu is out from the first query on.
    assert_eq!(www(&server), [format!("127.{net}.1.1")], "{}", server.logs());
}

#[test]
fn cut_off_from_etcd_a_node_keeps_the_last_verdicts_and_decides_alone_on_what_changes() {
    if !tools() {
        return;
    }
    let (net, port) = (45, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let mut us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let mut etcd = seeded(net, port);
    let dir = node("a", "majority", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let (eu_ip, us_ip) = (format!("127.{net}.2.1"), format!("127.{net}.1.1"));
    until_www(&server, &eu_ip, Duration::from_secs(3));
    // The others see eu down: out by quorum, although this node sees it up.
    let others = lease(&etcd);
    vote(&etcd, &others, "b", &format!("web/{eu_ip}"), "down");
    vote(&etcd, &others, "c", &format!("web/{eu_ip}"), "down");
    until_www(&server, &us_ip, Duration::from_secs(1));

    etcd.stop();
    server.wait_log("health exchange with etcd interrupted", Duration::from_secs(5));
    // The last verdict holds: eu stays out.
    stays(&server, &us_ip, Duration::from_millis(500));
    // us dies meanwhile: this node's own view changed since the cut, so it decides alone.
    us.stop();
    poll(Duration::from_secs(2), "us out by this node's own view", || {
        events(&server).iter().any(|e| {
            e["subject"]
                .as_str()
                .is_some_and(|s| s.contains(&us_ip) && !s.contains("seen from"))
                && e["new"] == "down"
                && e["reason"].as_str().is_some_and(|r| r.contains("decides alone"))
        })
    });
    // Back with etcd: the others' views count again (eu stays out by quorum), and this node's
    // view of us is published and counted (1 of 1 down).
    etcd.restart();
    poll(Duration::from_secs(5), "this node's view of us published", || {
        get_prefix(&etcd, &format!("health/a/web/{us_ip}")).contains(r#""state":"down""#)
    });
    us.start();
    until_www(&server, &us_ip, Duration::from_secs(3));
}

#[test]
fn a_vote_without_a_live_node_does_not_count() {
    if !tools() {
        return;
    }
    let (net, port) = (46, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "any", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let eu = format!("127.{net}.2.1");
    until_www(&server, &eu, Duration::from_secs(3));
    // A view written without its node (a tool, a restored backup): left out.
    let value = r#"{"state":"down","since":"2026-11-24T00:00:00.000Z"}"#;
    etcd.etcdctl(&["put", &format!("{PREFIX}health/ghost/web/{eu}"), value])
        .unwrap();
    stays(&server, &eu, Duration::from_millis(500));
    // Its node appears: it counts.
    let others = lease(&etcd);
    vote(&etcd, &others, "ghost", &format!("web/{eu}"), "down");
    until_www(&server, &format!("127.{net}.1.1"), Duration::from_secs(1));
}

#[test]
fn a_report_that_does_not_read_is_left_out_and_the_exchange_goes_on() {
    if !tools() {
        return;
    }
    let (net, port) = (47, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "majority", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let eu = format!("127.{net}.2.1");
    let target = format!("web/{eu}");
    until_www(&server, &eu, Duration::from_secs(3));
    let others = lease(&etcd);
    // A latency no duration holds, and a value that is not a report.
    vote(&etcd, &others, "x", &target, "up");
    etcd.etcdctl(&[
        "put",
        "--lease",
        &others,
        &format!("{PREFIX}health/x/{target}"),
        r#"{"state":"up","since":"2026-11-24T00:00:00.000Z","latency_ms":1e300}"#,
    ])
    .unwrap();
    vote(&etcd, &others, "y", &target, "up");
    etcd.etcdctl(&[
        "put",
        "--lease",
        &others,
        &format!("{PREFIX}health/y/{target}"),
        "not json",
    ])
    .unwrap();
    // The exchange still follows: three more nodes see eu down, 3 of 4 voters.
    for n in ["b", "c", "d"] {
        vote(&etcd, &others, n, &target, "down");
    }
    until_www(&server, &format!("127.{net}.1.1"), Duration::from_secs(1));
    // And still keeps its lease alive, past its TTL.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!get_prefix(&etcd, "nodes/a").is_empty(), "{}", server.logs());
}

#[test]
fn a_restored_etcd_gets_this_nodes_views_put_right() {
    if !tools() {
        return;
    }
    let (net, port) = (48, free_port());
    let mut eu_target = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let mut etcd = seeded(net, port);
    // A long lease: the one in the backup is still alive when it is restored.
    let dir = node_ttl("a", "majority", &etcd, "30s");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let eu = format!("127.{net}.2.1");
    let key = format!("health/a/web/{eu}");
    until_www(&server, &eu, Duration::from_secs(3));
    eu_target.stop();
    poll(Duration::from_secs(5), "the view down in etcd", || {
        get_prefix(&etcd, &key).contains(r#""state":"down""#)
    });
    let snapshot = etcd.dir.path().join("snap.db");
    etcd.etcdctl(&["snapshot", "save", snapshot.to_str().unwrap()])
        .expect("snapshot");
    eu_target.start();
    poll(Duration::from_secs(5), "the view up in etcd", || {
        get_prefix(&etcd, &key).contains(r#""state":"up""#)
    });
    etcd.restore(&snapshot);
    // The backup says down; the node sees up, and says so again.
    poll(Duration::from_secs(10), "the view put right", || {
        get_prefix(&etcd, &key).contains(r#""state":"up""#)
    });
    // A hand deleting it: put back too.
    etcd.etcdctl(&["del", &format!("{PREFIX}{key}")]).unwrap();
    poll(Duration::from_secs(3), "the view put back", || {
        get_prefix(&etcd, &key).contains(r#""state":"up""#)
    });
}

#[test]
fn other_nodes_writes_do_not_hide_a_restored_etcd() {
    if !tools() {
        return;
    }
    let ns1 = |s: &Server| answer_data(&query(s.addr, &ask("ns1.example.test.", T::A)));
    let (net, port) = (49, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let mut etcd = seeded(net, port);
    let snapshot = etcd.dir.path().join("snap.db");
    etcd.etcdctl(&["snapshot", "save", snapshot.to_str().unwrap()])
        .expect("snapshot");
    let dir_a = node_ttl("a", "majority", &etcd, "30s");
    let mut a = Server::start(&dir_a.path().join("meridian.yaml"));
    // An edit after the backup, applied by a.
    etcd.etcdctl(&[
        "put",
        &format!("{PREFIX}zones/example.test"),
        &ZONE.replace("192.0.2.1", "192.0.2.99"),
    ])
    .unwrap();
    poll(Duration::from_secs(3), "a applies the edit", || {
        ns1(&a) == ["192.0.2.99"]
    });
    a.signal(libc::SIGTERM);
    a.wait_exit(Duration::from_secs(5)).unwrap();

    etcd.restore(&snapshot);
    // Another node joins the restored etcd, and a third one's views change a few times: etcd's
    // revision passes the one a followed up to.
    let dir_b = node_ttl("b", "majority", &etcd, "30s");
    let b = Server::start(&dir_b.path().join("meridian.yaml"));
    assert_eq!(ns1(&b), ["192.0.2.1"]);
    let c = lease(&etcd);
    for state in ["up", "down", "up", "down"] {
        vote(&etcd, &c, "c", &format!("web/127.{net}.2.1"), state);
    }
    let a = Server::start(&dir_a.path().join("meridian.yaml"));
    poll(Duration::from_secs(3), "a serves etcd's zone", || {
        ns1(&a) == ["192.0.2.1"]
    });
    assert!(
        a.logs()
            .contains("etcd's history is not the one this node followed"),
        "{}",
        a.logs()
    );
}

#[test]
fn a_reload_keeps_the_name_the_node_started_with() {
    if !tools() {
        return;
    }
    let (net, port) = (50, free_port());
    let _eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let _us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let etcd = seeded(net, port);
    let dir = node("a", "majority", &etcd);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let (eu, us) = (format!("127.{net}.2.1"), format!("127.{net}.1.1"));
    let target = format!("web/{eu}");
    until_www(&server, &eu, Duration::from_secs(3));
    let others = lease(&etcd);
    vote(&etcd, &others, "b", &target, "down");
    vote(&etcd, &others, "c", &target, "down");
    until_www(&server, &us, Duration::from_secs(2));
    // Renamed "b" in its file (a new host name would do the same), and reloaded.
    let path = dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("node: a", "node: b");
    std::fs::write(&path, text).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log(
        "cluster changes take effect at the next restart",
        Duration::from_secs(3),
    );
    // Still "a": the real b's vote counts. b now sees eu up: 1 of 3 down.
    vote(&etcd, &others, "b", &target, "up");
    until_www(&server, &eu, Duration::from_secs(1));
}
