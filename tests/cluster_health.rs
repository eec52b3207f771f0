//! The health exchange of cluster mode on loopback: a node publishes its own view of each target
//! under its lease, and counts the views other nodes publish. The other nodes here are votes
//! written with etcdctl under a lease of their own, so that each count is chosen by the test
//! (tests/quorum.rs runs three real nodes in network namespaces).
//! Needs `etcd` and `etcdctl` (Debian's etcd-server and etcd-client), and for the status page
//! headless Chromium; `.ci/run` installs them. The page's screenshot is left in Cargo's
//! `target/tmp/status-page-cluster.png`.

mod common;

use common::chromium::Chromium;
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

/// eu's and us's targets, up on 127.<net>.2.1 and 127.<net>.1.1 (one free port), and an etcd
/// seeded with the data centers probing them.
fn lab(net: u8) -> (Target, Target, EtcdServer) {
    let port = free_port();
    let eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    (eu, us, seeded(net, port))
}

/// The node whose directory is `dir` (see [`node`]), started.
fn serve(dir: &tempfile::TempDir) -> Server {
    Server::start(&dir.path().join("meridian.yaml"))
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
    if get_prefix(etcd, &format!("nodes/{node}")).is_empty() {
        live(etcd, lease, node, "majority");
    }
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
    let net = 41;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
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
    let net = 42;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "any", &etcd);
    let server = serve(&dir);
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
fn a_stopped_nodes_views_go_with_its_lease_and_a_second_node_with_its_name_is_refused() {
    if !tools() {
        return;
    }
    let net = 43;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let mut server = serve(&dir);
    poll(Duration::from_secs(3), "the node's views in etcd", || {
        get_prefix(&etcd, "health/a/").matches(r#""state":"up""#).count() == 2
    });

    // Another process with the same name: refused, and the first one's views stay.
    let twin_dir = node("a", "majority", &etcd);
    let twin = serve(&twin_dir);
    poll(Duration::from_secs(3), "the twin's refusal", || {
        events(&twin)
            .iter()
            .any(|e| e["subject"] == "node a" && e["new"] == "refused")
    });
    drop(twin);

    // A stop leaves the lease to expire (a restart would take it back): the views count until
    // then, and go with it.
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(5)).expect("stops");
    assert!(!get_prefix(&etcd, "health/a/").is_empty());
    poll(Duration::from_secs(4), "the views gone with the lease", || {
        get_prefix(&etcd, "health/a/").is_empty() && get_prefix(&etcd, "nodes/a").is_empty()
    });
}

#[test]
fn a_starting_node_counts_the_others_views_in_its_first_answers() {
    if !tools() {
        return;
    }
    let net = 44;
    let (_eu, _us, etcd) = lab(net);
    let others = lease(&etcd);
    let target = format!("web/127.{net}.2.1");
    vote(&etcd, &others, "b", &target, "down");
    vote(&etcd, &others, "c", &target, "down");
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
    // Ready means the first answers count them: eu is out from the first query on.
    assert_eq!(www(&server), [format!("127.{net}.1.1")], "{}", server.logs());
}

#[test]
fn cut_off_from_etcd_a_node_keeps_the_last_verdicts_and_decides_alone_on_what_changes() {
    if !tools() {
        return;
    }
    let net = 45;
    let (_eu, mut us, mut etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
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
    let net = 46;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "any", &etcd);
    let server = serve(&dir);
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
    let net = 47;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
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
    let net = 48;
    let (mut eu_target, _us, mut etcd) = lab(net);
    // A long lease: the one in the backup is still alive when it is restored.
    let dir = node_ttl("a", "majority", &etcd, "30s");
    let server = serve(&dir);
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
    let net = 49;
    let (_eu, _us, mut etcd) = lab(net);
    let snapshot = etcd.dir.path().join("snap.db");
    etcd.etcdctl(&["snapshot", "save", snapshot.to_str().unwrap()])
        .expect("snapshot");
    let dir_a = node_ttl("a", "majority", &etcd, "30s");
    let mut a = serve(&dir_a);
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
    let b = serve(&dir_b);
    assert_eq!(ns1(&b), ["192.0.2.1"]);
    let c = lease(&etcd);
    for state in ["up", "down", "up", "down"] {
        vote(&etcd, &c, "c", &format!("web/127.{net}.2.1"), state);
    }
    let a = serve(&dir_a);
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
    let net = 50;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
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

/// Another node's presence under `lease`, deciding by `quorum`.
fn live(etcd: &EtcdServer, lease: &str, node: &str, quorum: &str) {
    let value = format!(r#"{{"started":"2026-11-24T00:00:00.000Z","lease":1,"quorum":"{quorum}"}}"#);
    etcd.etcdctl(&["put", "--lease", lease, &format!("{PREFIX}nodes/{node}"), &value])
        .expect("etcdctl put node");
}

fn get_json(server: &Server, path: &str) -> serde_json::Value {
    let (code, _, body) = http(server.admin(), "GET", path, &[], None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The endpoint `address` of data center `dc` in `GET /api/v1/datacenters`.
fn endpoint(server: &Server, dc: &str, address: &str) -> serde_json::Value {
    let dcs = get_json(server, "/api/v1/datacenters");
    dcs.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dc)
        .and_then(|d| {
            d["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["address"] == address)
        })
        .unwrap_or_else(|| panic!("no endpoint {dc}/{address} in {dcs:#}"))
        .clone()
}

/// A drill scene: node `a` (majority) sees eu and us up; nodes `b` and `c` are live (c decides
/// by `any`), both see eu down, b sees us up and c has no view of us yet. eu is taken out by
/// 2 of 3 although `a` sees it up.
struct Scene {
    // Fields drop in order: the node stops before its etcd.
    server: Server,
    _etcd: EtcdServer,
    eu: String,
    us: String,
    _dir: tempfile::TempDir,
    _targets: (Target, Target),
}

fn scene(net: u8) -> Scene {
    let eu = format!("127.{net}.2.1");
    let us = format!("127.{net}.1.1");
    let (eu_target, us_target, etcd) = lab(net);
    let targets = (eu_target, us_target);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
    until_www(&server, &eu, Duration::from_secs(3));
    let others = lease(&etcd);
    live(&etcd, &others, "b", "majority");
    live(&etcd, &others, "c", "any");
    vote(&etcd, &others, "b", &format!("web/{eu}"), "down");
    vote(&etcd, &others, "c", &format!("web/{eu}"), "down");
    vote(&etcd, &others, "b", &format!("web/{us}"), "up");
    until_www(&server, &us, Duration::from_secs(2));
    poll(Duration::from_secs(2), "three live nodes", || {
        get_json(&server, "/api/v1/status")["cluster"]["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 3)
    });
    Scene {
        _etcd: etcd,
        server,
        eu,
        us,
        _dir: dir,
        _targets: targets,
    }
}

#[test]
fn the_api_metrics_and_explain_show_every_nodes_view_beside_the_verdict() {
    if !tools() {
        return;
    }
    let s = scene(47);
    let server = &s.server;

    // This node's own view apart from the verdict answers use, and how the verdict was reached.
    let eu = endpoint(server, "eu", &s.eu);
    assert_eq!(eu["up"], false, "{eu:#}");
    let probe = &eu["probe"];
    assert_eq!(
        (&probe["status"], &probe["verdict"]),
        (&"up".into(), &"down".into()),
        "{probe:#}"
    );
    let c = &probe["cluster"];
    assert_eq!(
        (
            &c["quorum"],
            &c["verdict"],
            &c["down"],
            &c["voters"],
            &c["needed"],
            &c["alone"]
        ),
        (
            &"majority".into(),
            &"down".into(),
            &2.into(),
            &3.into(),
            &2.into(),
            &false.into()
        ),
        "{c:#}"
    );
    let nodes: Vec<(&str, &str, bool)> = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap(),
                n["state"].as_str().unwrap(),
                n["self"] == true,
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [("a", "up", true), ("b", "down", false), ("c", "down", false)]
    );
    assert_eq!(c["nodes"][1]["reason"], "seen down by b", "{c:#}");
    assert_eq!(c["nodes"][1]["since"], "2026-11-24T00:00:00.000Z", "{c:#}");
    assert!(c["nodes"][0]["since"].is_string(), "{c:#}");

    // A live node with no view of us yet is named, without a vote.
    let us = endpoint(server, "us", &s.us);
    let c = &us["probe"]["cluster"];
    assert_eq!((&c["verdict"], &c["voters"]), (&"up".into(), &2.into()), "{c:#}");
    assert_eq!(c["nodes"][2]["node"], "c", "{c:#}");
    assert_eq!(c["nodes"][2]["state"], "unknown", "{c:#}");
    assert!(c["nodes"][2]["since"].is_null(), "{c:#}");

    // The live nodes and their rules; c's differs from this node's.
    let cluster = get_json(server, "/api/v1/status")["cluster"].clone();
    assert_eq!(cluster["quorum"], "majority", "{cluster:#}");
    let nodes: Vec<(&str, &str, bool, bool)> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap(),
                n["quorum"].as_str().unwrap(),
                n["quorum_differs"] == true,
                n["self"] == true,
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("a", "majority", false, true),
            ("b", "majority", false, false),
            ("c", "any", true, false),
        ]
    );

    // Both views as gauges, and the live nodes.
    let (code, _, m) = http(server.admin(), "GET", "/metrics", &[], None);
    assert_eq!(code, 200, "{m}");
    for want in [
        format!(
            r#"meridian_target_up{{check="web",address="{}",view="local"}} 1"#,
            s.eu
        ),
        format!(
            r#"meridian_target_up{{check="web",address="{}",view="cluster"}} 0"#,
            s.eu
        ),
        format!(
            r#"meridian_target_up{{check="web",address="{}",view="cluster"}} 1"#,
            s.us
        ),
        "meridian_cluster_nodes 3".to_string(),
        // majority on a and b, any on c.
        "meridian_cluster_quorum_rules 2".to_string(),
        "meridian_cluster_connected 1".to_string(),
    ] {
        assert!(m.contains(&want), "missing {want} in\n{m}");
    }
    promtool_check(&m);

    // The explanation names the votes in its steps and carries them as data.
    let report = get_json(
        server,
        "/api/v1/explain?name=www.example.test&type=A&client=192.0.2.9",
    );
    let steps = report["steps"].to_string();
    assert!(
        steps.contains(&format!(
            "eu: down (0 of 1 endpoints up, min_healthy 1); {} down by quorum majority (2 of 3 down, 2 needed): down on b (seen down by b), c (seen down by c), up on a (this node)",
            s.eu
        )),
        "{report:#}"
    );
    let votes = report["votes"].as_array().unwrap();
    let eu_votes = votes
        .iter()
        .find(|v| v["datacenter"] == "eu")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(
        (
            &eu_votes["address"],
            &eu_votes["verdict"],
            &eu_votes["down"],
            &eu_votes["voters"]
        ),
        (&s.eu.as_str().into(), &"down".into(), &2.into(), &3.into()),
        "{report:#}"
    );
    assert_eq!(eu_votes["nodes"][0]["node"], "a");
    assert_eq!(eu_votes["nodes"][0]["self"], true);
    assert!(votes.iter().any(|v| v["datacenter"] == "us"), "{report:#}");
}

/// The `<tr>` of the page whose attributes hold `marker`.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    dom.split("<tr")
        .find(|r| r.contains(marker))
        .unwrap_or_else(|| panic!("no row {marker} in the page:\n{dom}"))
}

/// The `<td>` of `row` for `node`.
fn cell<'a>(row: &'a str, node: &str) -> &'a str {
    let marker = format!("data-node=\"{node}\"");
    row.split("<td")
        .find(|c| c.contains(&marker))
        .unwrap_or_else(|| panic!("no cell for {node} in {row}"))
}

#[test]
fn the_status_page_shows_every_nodes_view_beside_the_verdict() {
    if !tools() {
        return;
    }
    let Some(browser) = Chromium::find(1280, 900, 5000) else {
        return;
    };
    let s = scene(48);
    let url = format!("http://{}/", s.server.admin());
    let dom = browser.dom(&url);

    // eu: taken out by 2 of 3 although this node sees it up; each node's view in its column.
    let eu = row(&dom, &format!("data-target=\"eu/{}\"", s.eu));
    assert!(eu.contains("class=\"verdict down\""), "{eu}");
    assert!(
        eu.contains("2 of 3 down") && eu.contains("2 needed (quorum majority)"),
        "{eu}"
    );
    assert!(eu.contains("this node sees it up"), "{eu}");
    assert!(cell(eu, "a").contains("vote up self"), "{eu}");
    for (node, why) in [("b", "seen down by b"), ("c", "seen down by c")] {
        let c = cell(eu, node);
        assert!(c.contains("vote down") && c.contains(why), "{c}");
    }
    // us: up; c has no view of it yet.
    let us = row(&dom, &format!("data-target=\"us/{}\"", s.us));
    assert!(us.contains("class=\"verdict up\""), "{us}");
    assert!(!us.contains("this node sees it"), "{us}");
    assert!(cell(us, "c").contains("no view"), "{us}");
    // The live nodes with their rules, c's flagged.
    assert!(
        row(&dom, "data-node=\"a\"><td>a").contains("(this node)"),
        "{dom}"
    );
    assert!(!row(&dom, "data-node=\"b\"><td>b").contains("differs"), "{dom}");
    assert!(
        row(&dom, "data-node=\"c\"><td>c").contains("differs from this node's (majority)"),
        "{dom}"
    );
    assert!(dom.contains("3 live nodes · quorum majority"), "{dom}");
    // The data centers table agrees: eu down.
    assert!(row(&dom, "data-dc=\"eu\"").contains("class=\"down\""), "{dom}");

    // A screenshot for people: where CI keeps test output.
    let png = browser.screenshot(&url, "status-page-cluster.png");
    eprintln!("status page screenshot: {}", png.display());
}

/// a reload that changes health.quorum must write the new rule to nodes/<node>.
#[test]
fn a_reload_writes_the_new_rule_to_the_nodes_record() {
    if !tools() {
        return;
    }
    let net = 60;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
    let eu = format!("127.{net}.2.1");
    until_www(&server, &eu, Duration::from_secs(3));
    assert!(get_prefix(&etcd, "nodes/a").contains(r#""quorum":"majority""#));
    let path = dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("quorum: majority", "quorum: any");
    std::fs::write(&path, text).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("reloaded", Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(1500));
    let record = get_prefix(&etcd, "nodes/a");
    let status = get_json(&server, "/api/v1/status");
    assert!(
        record.contains(r#""quorum":"any""#),
        "record after reload: {record}\nstatus: {:#}",
        status["cluster"]
    );
}

/// an etcd restored from a backup taken during this node's previous run holds its old
/// `nodes/` key under the old lease (restored alive): the node is refused as a duplicate of
/// itself, and its old views from the backup count meanwhile.
#[test]
fn a_restore_from_a_previous_run_is_not_taken_for_a_second_node() {
    if !tools() {
        return;
    }
    let net = 61;
    let (_eu, _us, mut etcd) = lab(net);
    let dir = node_ttl("a", "majority", &etcd, "5s");
    let mut a = serve(&dir);
    let eu = format!("127.{net}.2.1");
    until_www(&a, &eu, Duration::from_secs(3));
    poll(Duration::from_secs(3), "a's view in etcd", || {
        !get_prefix(&etcd, &format!("health/a/web/{eu}")).is_empty()
    });
    let snapshot = etcd.dir.path().join("snap.db");
    etcd.etcdctl(&["snapshot", "save", snapshot.to_str().unwrap()])
        .expect("snapshot");
    // The node restarts (taking its lease back).
    a.signal(libc::SIGTERM);
    a.wait_exit(Duration::from_secs(5)).unwrap();
    let a = serve(&dir);
    until_www(&a, &eu, Duration::from_secs(3));
    etcd.restore(&snapshot);
    std::thread::sleep(Duration::from_secs(4));
    let logs = a.logs();
    assert!(
        !logs.contains("another live node is named a"),
        "refused as a duplicate of itself:\n{logs}"
    );
}

/// A node restarting (same name) takes its lease back: its views count throughout, and a
/// target a majority sees dead never comes back into the others' answers meanwhile.
#[test]
fn a_peer_restart_does_not_flip_a_verdict() {
    if !tools() {
        return;
    }
    let net = 62;
    let (mut eu_target, _us, etcd) = lab(net);
    let dir_a = node("a", "majority", &etcd);
    let dir_b = node("b", "majority", &etcd);
    let a = serve(&dir_a);
    let mut b = serve(&dir_b);
    let (eu, us) = (format!("127.{net}.2.1"), format!("127.{net}.1.1"));
    until_www(&a, &eu, Duration::from_secs(3));
    // c still reaches eu; a and b do not: 2 of 3 down.
    let others = lease(&etcd);
    vote(&etcd, &others, "c", &format!("web/{eu}"), "up");
    eu_target.stop();
    until_www(&a, &us, Duration::from_secs(3));
    until_www(&b, &us, Duration::from_secs(3));
    // b restarts.
    b.signal(libc::SIGTERM);
    b.wait_exit(Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let mut flipped = None;
    let mut last = None;
    let _b = std::thread::spawn({
        let path = dir_b.path().join("meridian.yaml");
        move || Server::start(&path)
    });
    while start.elapsed() < Duration::from_secs(3) {
        if www(&a) == [eu.clone()] {
            flipped.get_or_insert(start.elapsed());
            last = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = _b.join().unwrap();
    let flips: Vec<_> = events(&a)
        .into_iter()
        .filter(|e| e["subject"] == format!("target http://{eu}:{}/ (check web)", eu_target.addr.port()))
        .map(|e| format!("{} -> {}: {}", e["old"], e["new"], e["reason"]))
        .collect();
    drop(b);
    assert!(
        flipped.is_none(),
        "a answered the dead eu from {flipped:?} to {last:?} into b's restart; a's verdict events:\n{}",
        flips.join("\n")
    );
}

/// This node's `nodes/` key deleted by a hand: put back (only live nodes' views count).
#[test]
fn a_deleted_node_record_is_put_back() {
    if !tools() {
        return;
    }
    let net = 63;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
    until_www(&server, &format!("127.{net}.2.1"), Duration::from_secs(3));
    assert!(!get_prefix(&etcd, "nodes/a").is_empty());
    etcd.etcdctl(&["del", &format!("{PREFIX}nodes/a")]).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !get_prefix(&etcd, "nodes/a").is_empty(),
        "nodes/a not put back; status: {:#}",
        get_json(&server, "/api/v1/status")["cluster"]
    );
}

/// a node restarted after etcd compacted the history since its cache (the cache keeps
/// the revision of the last shared change only: the health traffic since is passed in memory)
/// must still count the others' views in its first answers.
#[test]
fn a_restart_after_a_compaction_counts_the_others_views_first() {
    if !tools() {
        return;
    }
    let net = 64;
    let (_eu, _us, etcd) = lab(net);
    let dir = node("a", "majority", &etcd);
    let server = serve(&dir);
    let (eu, us) = (format!("127.{net}.2.1"), format!("127.{net}.1.1"));
    until_www(&server, &eu, Duration::from_secs(3));
    let others = lease(&etcd);
    let target = format!("web/{eu}");
    vote(&etcd, &others, "b", &target, "down");
    vote(&etcd, &others, "c", &target, "down");
    until_www(&server, &us, Duration::from_secs(2));
    drop(server);
    let status = etcd.etcdctl(&["endpoint", "status", "--write-out=json"]).unwrap();
    let revision =
        serde_json::from_str::<serde_json::Value>(&status).unwrap()[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap();
    etcd.etcdctl(&["compact", &revision.to_string()]).unwrap();
    let started = Instant::now();
    let server = serve(&dir);
    let took = started.elapsed();
    assert_eq!(
        www(&server),
        [us],
        "first answer after a restart ({took:?} to start) ignores b and c:\n{}",
        server.logs()
    );
}
