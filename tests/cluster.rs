//! Several Meridian nodes sharing one etcd (started by the test on loopback ports): changes made
//! through any node's API, or written into etcd by another tool, reach every node; stale writes
//! are refused across nodes; an etcd outage changes nothing for clients.
//! Needs `etcd` and `etcdctl` (Debian's etcd-server and etcd-client); `.ci/run` installs them.

mod common;

use common::etcd::EtcdServer;
use common::etcd_cluster::EtcdCluster;
use common::*;
use hickory_proto::rr::RecordType as T;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "cluster-admin-secret-0123456789";
const PREFIX: &str = "/t/";

const DATACENTERS: &str = "\
# Shared by every node.
datacenters:
  eu: { location: { continent: EU, country: DE }, endpoints: [{ address: 198.51.100.10 }] }
  us: { location: { continent: NA, country: US }, endpoints: [{ address: 192.0.2.10 }] }
";

const ZONE: &str = "\
zone: example.test
ttl: 300
soa: { mname: ns1.example.test., rname: hostmaster.example.test., serial: 10 }
ns: [ns1.example.test.]
records:
  ns1: { A: [192.0.2.1] }
  static: { A: [192.0.2.80] }
gslb:
  www: { policy: failover, ttl: 30, datacenters: [eu, us] }
";

fn tools() -> bool {
    have_tool("etcd") && have_tool("etcdctl")
}

/// A node's directory: its own meridian.yaml (cluster mode), token and state_dir.
fn node_dir(name: &str, etcd: &EtcdServer) -> tempfile::TempDir {
    node_dir_for(name, std::slice::from_ref(&etcd.endpoint))
}

/// A node's directory, for a node reaching etcd at `endpoints`.
fn node_dir_for(name: &str, endpoints: &[String]) -> tempfile::TempDir {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    std::fs::write(
        dir.path().join("meridian.yaml"),
        format!(
            "admin:\n  tokens: [{{ name: ops-{name}, role: admin, token_file: admin.token }}]\n\
             state_dir: state\n\
             cluster:\n  node: {name}\n  etcd: {{ endpoints: [{endpoints}], prefix: {PREFIX}, timeout: 500ms }}\n",
        ),
    )
    .unwrap();
    dir
}

fn config(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("meridian.yaml")
}

/// An etcd holding the data centers and one zone, as `etcdctl put` writes them.
fn seeded_etcd() -> EtcdServer {
    let etcd = EtcdServer::start();
    put(&etcd, "datacenters", DATACENTERS);
    put(&etcd, "zones/example.test", ZONE);
    etcd
}

fn put(etcd: &EtcdServer, key: &str, value: &str) {
    etcd.etcdctl(&["put", &format!("{PREFIX}{key}"), value])
        .unwrap_or_else(|| panic!("etcdctl put {key}"));
}

/// `second.test`, a copy of `example.test`, put beside it.
fn put_second_zone(etcd: &EtcdServer) {
    put(
        etcd,
        "zones/second.test",
        &ZONE.replace("zone: example.test", "zone: second.test"),
    );
}

/// Replaces `etcd` with a new, empty one on the same address (its revisions start over), seeded
/// again with the data centers and `example.test`, its `static` record changed to 192.0.2.84.
fn reseed_empty(etcd: &mut EtcdServer) {
    etcd.stop();
    std::fs::remove_dir_all(etcd.dir.path().join("data")).unwrap();
    etcd.restart();
    put(etcd, "datacenters", DATACENTERS);
    put(
        etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.84"),
    );
}

/// Node `a` of `etcd`, started and serving `zone` (its `static` record is 192.0.2.80): its
/// directory and server.
fn node_a(etcd: &EtcdServer, zone: &str) -> (tempfile::TempDir, Server) {
    let dir = node_dir("a", etcd);
    let node = Server::start(&config(&dir));
    assert_eq!(a(&node, &format!("static.{zone}.")), ["192.0.2.80"]);
    (dir, node)
}

fn a(server: &Server, name: &str) -> Vec<String> {
    answer_data(&query(server.addr, &ask(name, T::A)))
}

/// Polls until `name` answers `want` on `server` (at most `limit`); how long it took.
fn until_answers(server: &Server, name: &str, want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = a(server, name);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} still answers {got:?}, not {want:?}, after {limit:?}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn api(
    server: &Server,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http(server.admin(), method, path, &headers, body)
}

fn etag_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag header")
        .trim()
        .to_string()
}

fn status_json(server: &Server) -> serde_json::Value {
    let (code, _, body) = api(server, "GET", "/api/v1/status", &[], None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_drain_and_an_edit_through_one_node_reach_the_others() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (da, db, dc) = (node_dir("a", &etcd), node_dir("b", &etcd), node_dir("c", &etcd));
    let nodes = [
        Server::start(&config(&da)),
        Server::start(&config(&db)),
        Server::start(&config(&dc)),
    ];
    for n in &nodes {
        assert_eq!(a(n, "www.example.test."), ["198.51.100.10"], "{}", n.logs());
    }

    // A drain through a: every other node follows within a second.
    let (code, _, body) = api(&nodes[0], "POST", "/api/v1/datacenters/eu/drain", &[], None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        a(&nodes[0], "www.example.test."),
        ["192.0.2.10"],
        "the node that took it answers at once"
    );
    for n in &nodes[1..] {
        until_answers(n, "www.example.test.", &["192.0.2.10"], Duration::from_secs(1));
    }
    // The event on b names the node and the token that made it.
    let (_, _, events) = api(&nodes[1], "GET", "/api/v1/events", &[], None);
    assert!(
        events.contains("override datacenter eu") && events.contains("admin API (ops-a) on a"),
        "{events}"
    );

    // An edit through b is answered by a and c.
    let (code, _, body) = api(
        &nodes[1],
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[],
        Some(r#"{"A": ["192.0.2.123"]}"#),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(a(&nodes[1], "fresh.example.test."), ["192.0.2.123"]);
    for n in [&nodes[0], &nodes[2]] {
        until_answers(n, "fresh.example.test.", &["192.0.2.123"], Duration::from_secs(1));
    }

    // A stale If-Match on a, after an edit on b, is refused: the two edits never overwrite
    // each other.
    let (_, head, _) = api(&nodes[0], "GET", "/api/v1/zones/example.test", &[], None);
    let etag = etag_of(&head);
    let (code, _, body) = api(
        &nodes[1],
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[],
        Some(r#"{"A": ["192.0.2.124"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = api(
        &nodes[0],
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[("If-Match", &etag)],
        Some(r#"{"A": ["192.0.2.125"]}"#),
    );
    assert_eq!(code, 412, "{body}");
    for n in &nodes {
        until_answers(n, "fresh.example.test.", &["192.0.2.124"], Duration::from_secs(1));
    }
    let status = status_json(&nodes[2]);
    assert_eq!(status["cluster"]["node"], "c", "{status}");
    assert_eq!(status["cluster"]["state"], "connected", "{status}");
}

/// A write that races another node's is refused by etcd itself, even before the node has seen
/// the other write: the condition is on the key's revision in etcd.
#[test]
fn a_write_conditioned_on_an_old_revision_is_refused_by_etcd() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (_dir, node) = node_a(&etcd, "example.test");
    // Another tool rewrites the zone, and the node edits it at once: the node's edit either
    // comes after it has applied the rewrite (and builds on it) or is conditioned on the old
    // revision and refused with 412. Whichever wins the race, the rewrite is never erased.
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.81"),
    );
    let (code, _, body) = api(
        &node,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        &[],
        Some(r#"{"A": ["192.0.2.9"]}"#),
    );
    assert!(code == 201 || code == 412, "{code} {body}");
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.81"],
        Duration::from_secs(1),
    );
    let stored = etcd
        .etcdctl(&[
            "get",
            "--print-value-only",
            &format!("{PREFIX}zones/example.test"),
        ])
        .unwrap();
    assert!(
        stored.contains("192.0.2.81"),
        "the other write survives: {stored}"
    );
}

#[test]
fn an_invalid_document_written_with_etcdctl_is_refused_on_every_node() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (da, db) = (node_dir("a", &etcd), node_dir("b", &etcd));
    let nodes = [Server::start(&config(&da)), Server::start(&config(&db))];
    // A CNAME beside other data, and a gslb name pointing at a data center that does not exist.
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace(
            "static: { A: [192.0.2.80] }",
            "static: { A: [192.0.2.99], CNAME: x }",
        ),
    );
    for n in &nodes {
        n.wait_log("cluster change refused", Duration::from_secs(2));
        assert_eq!(
            a(n, "static.example.test."),
            ["192.0.2.80"],
            "the last good zone serves"
        );
        let s = status_json(n);
        assert_eq!(s["cluster"]["refused"], 1, "{s}");
        let (_, _, metrics) = api(n, "GET", "/metrics", &[], None);
        assert!(metrics.contains("meridian_cluster_refused_total 1"), "{metrics}");
    }
    // Fixed in etcd: applied everywhere.
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.82"),
    );
    for n in &nodes {
        until_answers(n, "static.example.test.", &["192.0.2.82"], Duration::from_secs(1));
    }
    // A zone key that holds another zone is refused too.
    put(
        &etcd,
        "zones/other.test",
        &ZONE.replace("zone: example.test", "zone: third.test"),
    );
    for n in &nodes {
        n.wait_log("a zone's key is its name", Duration::from_secs(2));
    }
}

#[test]
fn an_etcd_outage_changes_nothing_for_clients_and_loses_nothing() {
    if !tools() {
        return;
    }
    let mut etcd = seeded_etcd();
    let (da, db) = (node_dir("a", &etcd), node_dir("b", &etcd));
    let a_node = Server::start(&config(&da));
    let mut b_node = Server::start(&config(&db));
    let (code, _, body) = api(&a_node, "POST", "/api/v1/datacenters/eu/drain", &[], None);
    assert_eq!(code, 200, "{body}");
    until_answers(
        &b_node,
        "www.example.test.",
        &["192.0.2.10"],
        Duration::from_secs(1),
    );

    etcd.stop();
    // Both keep answering, the drain included; writes get 503 saying why; status says since when.
    let deadline = Instant::now() + Duration::from_secs(3);
    while status_json(&a_node)["cluster"]["state"] != "disconnected" {
        assert!(Instant::now() < deadline, "{}", a_node.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in [&a_node, &b_node] {
        assert_eq!(a(n, "www.example.test."), ["192.0.2.10"]);
        assert_eq!(a(n, "static.example.test."), ["192.0.2.80"]);
    }
    let (code, _, body) = api(&a_node, "POST", "/api/v1/datacenters/us/drain", &[], None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("etcd is unreachable"), "{body}");
    let s = status_json(&a_node);
    assert!(
        s["cluster"]["since"].is_string() && s["cluster"]["error"].is_string(),
        "{s}"
    );
    let (_, _, metrics) = api(&a_node, "GET", "/metrics", &[], None);
    assert!(metrics.contains("meridian_cluster_connected 0"), "{metrics}");

    // b restarted during the outage serves its cache.
    drop(std::mem::replace(&mut b_node, Server::start(&config(&db))));
    assert_eq!(
        a(&b_node, "www.example.test."),
        ["192.0.2.10"],
        "{}",
        b_node.logs()
    );
    assert_eq!(a(&b_node, "static.example.test."), ["192.0.2.80"]);

    // etcd back: nothing acknowledged is lost, and a change made after the outage reaches both.
    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _, _) = api(&b_node, "POST", "/api/v1/datacenters/eu/undrain", &[], None);
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume\n{}",
            b_node.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in [&a_node, &b_node] {
        until_answers(n, "www.example.test.", &["198.51.100.10"], Duration::from_secs(2));
    }
    assert_eq!(status_json(&a_node)["cluster"]["state"], "connected");
    let (_, _, metrics) = api(&a_node, "GET", "/metrics", &[], None);
    assert!(metrics.contains("meridian_cluster_connected 1"), "{metrics}");
}

#[test]
fn every_acknowledged_edit_survives_the_loss_of_the_etcd_leader() {
    if !tools() {
        return;
    }
    let mut etcd = EtcdCluster::start();
    for (key, value) in [("datacenters", DATACENTERS), ("zones/example.test", ZONE)] {
        etcd.etcdctl(&["put", &format!("{PREFIX}{key}"), value])
            .expect("etcdctl put");
    }
    let endpoints = etcd.endpoints();
    let (da, db) = (node_dir_for("a", &endpoints), node_dir_for("b", &endpoints));
    let nodes = [Server::start(&config(&da)), Server::start(&config(&db))];

    // Edits flow through both nodes while the leader is killed; each is acknowledged (2xx) or
    // refused, and those acknowledged must be everywhere afterwards.
    // First a follower is lost: no write may fail (requests that cannot reach it go to the
    // others). Then it is back, and the leader is lost.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut leader = etcd.wait_for_leader();
    let follower = (leader + 1) % 3;
    etcd.kill(follower);
    for i in 0..60 {
        if i == 10 {
            assert_eq!(refused, 0, "a write failed with only a follower down");
            etcd.restart(follower);
            leader = etcd.wait_for_leader();
        }
        if i == 20 {
            etcd.kill(leader);
        }
        let node = &nodes[i % 2];
        let (code, _, body) = api(
            node,
            "PUT",
            &format!("/api/v1/zones/example.test/records/edit{i}"),
            &[],
            Some(&format!(r#"{{"A": ["192.0.2.{}"]}}"#, i + 1)),
        );
        match code {
            201 => acknowledged.push(i),
            503 | 412 => refused += 1,
            other => panic!("edit {i}: {other} {body}"),
        }
    }
    eprintln!(
        "follower down for edits 0-9, leader killed at edit 20: {} of 60 edits acknowledged, {refused} refused",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 40,
        "most edits went through: {acknowledged:?}, {refused} refused"
    );
    assert!(
        acknowledged.iter().any(|i| *i >= 30),
        "edits resumed after the election: {acknowledged:?}"
    );
    for n in &nodes {
        for i in &acknowledged {
            let ip = format!("192.0.2.{}", i + 1);
            until_answers(
                n,
                &format!("edit{i}.example.test."),
                &[ip.as_str()],
                Duration::from_secs(2),
            );
        }
    }
    // The nodes follow the surviving members (requests that cannot reach the dead one go to
    // another), and stay connected when it comes back.
    let connected = |n: &Server| {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let s = status_json(n);
            if s["cluster"]["state"] == "connected" {
                return;
            }
            assert!(Instant::now() < deadline, "{s}\n{}", n.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    nodes.iter().for_each(connected);
    etcd.restart(leader);
    etcd.wait_for_leader();
    nodes.iter().for_each(connected);
}

/// A node that was down while etcd compacted the history it missed reads the whole state again
/// (deletions included) instead of resuming its watch.
#[test]
fn a_node_back_after_a_compaction_reads_the_whole_state() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    put_second_zone(&etcd);
    let (dir, node) = node_a(&etcd, "second.test");
    drop(node);

    // While it is down: an edit, a deletion, a drain, then the history is compacted away.
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.83"),
    );
    etcd.etcdctl(&["del", &format!("{PREFIX}zones/second.test")])
        .expect("etcdctl del");
    put(&etcd, "overrides/datacenters/eu", r#"{"state": "drained"}"#);
    let status = etcd.etcdctl(&["endpoint", "status", "--write-out=json"]).unwrap();
    let revision =
        serde_json::from_str::<serde_json::Value>(&status).unwrap()[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap();
    etcd.etcdctl(&["compact", &revision.to_string()])
        .expect("etcdctl compact");

    let node = Server::start(&config(&dir));
    node.wait_log("reading the whole state", Duration::from_secs(3));
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.83"],
        Duration::from_secs(2),
    );
    until_answers(
        &node,
        "www.example.test.",
        &["192.0.2.10"],
        Duration::from_secs(2),
    );
    let m = query(node.addr, &ask("static.second.test.", T::A));
    assert_eq!(
        m.response_code,
        hickory_proto::op::ResponseCode::Refused,
        "the deleted zone is gone: {m:?}"
    );
}

/// A node whose cache is ahead of etcd (etcd replaced by a new cluster, or restored from an
/// older backup) does not wait for revisions that will never come: it reads the whole state.
#[test]
fn a_node_ahead_of_a_new_etcd_reads_the_whole_state() {
    if !tools() {
        return;
    }
    let mut etcd = seeded_etcd();
    let dir = node_dir("a", &etcd);
    let node = Server::start(&config(&dir));
    for i in 0..20 {
        put(
            &etcd,
            "zones/example.test",
            &ZONE.replace("serial: 10", &format!("serial: {}", 11 + i)),
        );
    }
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(1),
    );
    drop(node);

    // A new, empty etcd on the same address, seeded again: its revisions start over.
    reseed_empty(&mut etcd);

    let node = Server::start(&config(&dir));
    node.wait_log("reading the whole state", Duration::from_secs(3));
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.84"],
        Duration::from_secs(2),
    );
}

/// `cluster push` is a change like any other: every running node applies it, and its event
/// names the push, who ran it and from which node's configuration.
#[test]
fn a_push_reaches_every_running_node() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (da, db) = (node_dir("a", &etcd), node_dir("b", &etcd));
    let nodes = [Server::start(&config(&da)), Server::start(&config(&db))];

    // The operator's files: the same data centers, the zone with one record changed, a new zone.
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir(files.path().join("zones")).unwrap();
    std::fs::write(
        files.path().join("meridian.yaml"),
        format!("{DATACENTERS}zones_dir: zones\n"),
    )
    .unwrap();
    std::fs::write(
        files.path().join("zones/example.test.yaml"),
        ZONE.replace("192.0.2.80", "192.0.2.85"),
    )
    .unwrap();
    std::fs::write(
        files.path().join("zones/pushed.test.yaml"),
        ZONE.replace("zone: example.test", "zone: pushed.test"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["cluster", "push", "--config"])
        .arg(config(&da))
        .arg("--from")
        .arg(files.path().join("meridian.yaml"))
        .env("USER", "alice")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for n in &nodes {
        until_answers(n, "static.example.test.", &["192.0.2.85"], Duration::from_secs(1));
        until_answers(n, "static.pushed.test.", &["192.0.2.80"], Duration::from_secs(1));
    }
    let (_, _, events) = api(&nodes[1], "GET", "/api/v1/events", &[], None);
    assert!(events.contains("cluster push (alice) on a"), "{events}");
}

/// A zone that names data center `dc`.
fn zone_using(zone: &str, dc: &str) -> String {
    ZONE.replace("zone: example.test", &format!("zone: {zone}"))
        .replace("datacenters: [eu, us]", &format!("datacenters: [{dc}]"))
}

/// One invalid document in etcd does not keep a new node from serving all the valid ones.
#[test]
fn a_new_node_serves_the_valid_state_despite_one_refused_document() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    put(&etcd, "zones/bad.test", &zone_using("bad.test", "nowhere"));
    let dir = node_dir("b", &etcd);
    let node = Server::start(&config(&dir));
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(2),
    );
    assert_eq!(status_json(&node)["cluster"]["refused"], 1);
    // Fixed later: applied.
    put(&etcd, "zones/bad.test", &zone_using("bad.test", "eu"));
    until_answers(&node, "www.bad.test.", &["198.51.100.10"], Duration::from_secs(2));
}

/// A document refused because of what it refers to is applied once the cluster holds it.
#[test]
fn a_refused_zone_made_valid_by_a_later_change_is_applied() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let dir = node_dir("a", &etcd);
    let node = Server::start(&config(&dir));
    put(&etcd, "zones/new.test", &zone_using("new.test", "ap"));
    node.wait_log("cluster change refused", Duration::from_secs(2));
    put(
        &etcd,
        "datacenters",
        &format!(
            "{DATACENTERS}  ap: {{ location: {{ continent: AS, country: JP }}, endpoints: [{{ address: 203.0.113.10 }}] }}\n"
        ),
    );
    until_answers(&node, "www.new.test.", &["203.0.113.10"], Duration::from_secs(2));
}

/// A node catching up on several transactions refuses only the invalid one.
#[test]
fn catching_up_refuses_only_the_invalid_transaction() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (dir, node) = node_a(&etcd, "example.test");
    drop(node);
    put(&etcd, "zones/bad.test", &zone_using("bad.test", "nowhere"));
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.85"),
    );
    let node = Server::start(&config(&dir));
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.85"],
        Duration::from_secs(3),
    );
}

fn datacenters_without_eu() -> String {
    DATACENTERS
        .lines()
        .filter(|l| !l.starts_with("  eu:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A refused data-center document sitting in etcd does not make the node refuse a valid API
/// edit of a zone that uses the data center it would remove.
#[test]
fn a_valid_edit_is_not_refused_because_of_a_refused_datacenters_document() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (_dir, node) = node_a(&etcd, "example.test");
    put(&etcd, "datacenters", &datacenters_without_eu());
    node.wait_log("cluster change refused", Duration::from_secs(2));
    let (code, _, body) = api(
        &node,
        "PUT",
        "/api/v1/zones/example.test/records/added",
        &[],
        Some(r#"{"A": ["192.0.2.99"]}"#),
    );
    assert_eq!(code, 201, "{body}");
    until_answers(
        &node,
        "added.example.test.",
        &["192.0.2.99"],
        Duration::from_secs(3),
    );
}

/// A node catching up on [valid zone edit, invalid data centers] judges each transaction on
/// what came before it, as the node that was up did: the edit is applied, the data centers
/// refused, and the two nodes agree.
#[test]
fn catching_up_judges_each_transaction_in_etcds_order() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    put(&etcd, "zones/other.test", &zone_using("other.test", "eu"));
    let (da, db) = (node_dir("a", &etcd), node_dir("b", &etcd));
    let live = Server::start(&config(&da));
    let late = Server::start(&config(&db));
    assert_eq!(a(&late, "static.other.test."), ["192.0.2.80"]);
    drop(late);
    put(
        &etcd,
        "zones/other.test",
        &zone_using("other.test", "eu").replace("192.0.2.80", "192.0.2.81"),
    );
    put(&etcd, "datacenters", &datacenters_without_eu());
    until_answers(
        &live,
        "static.other.test.",
        &["192.0.2.81"],
        Duration::from_secs(2),
    );
    let late = Server::start(&config(&db));
    // A later, unrelated change: the edit is still not applied.
    put(&etcd, "zones/third.test", &zone_using("third.test", "us"));
    until_answers(
        &late,
        "static.third.test.",
        &["192.0.2.80"],
        Duration::from_secs(3),
    );
    until_answers(
        &late,
        "static.other.test.",
        &["192.0.2.81"],
        Duration::from_secs(3),
    );
}

/// A member that stops answering without closing its connections (SIGSTOP; a partition):
/// the watch on it is noticed and moves to another member.
#[test]
fn a_watch_on_a_stopped_member_is_noticed() {
    if !tools() {
        return;
    }
    let etcd = EtcdCluster::start();
    for (key, value) in [("datacenters", DATACENTERS), ("zones/example.test", ZONE)] {
        etcd.etcdctl(&["put", &format!("{PREFIX}{key}"), value])
            .expect("etcdctl put");
    }
    let endpoints = etcd.endpoints();
    let da = node_dir_for("a", &endpoints);
    let node = Server::start(&config(&da));
    assert_eq!(a(&node, "static.example.test."), ["192.0.2.80"]);
    etcd.signal(0, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(2));
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={},{}", endpoints[1], endpoints[2]))
        .arg("--command-timeout=5s")
        .args([
            "put",
            &format!("{PREFIX}zones/example.test"),
            &ZONE.replace("192.0.2.80", "192.0.2.86"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        until_answers(
            &node,
            "static.example.test.",
            &["192.0.2.86"],
            Duration::from_secs(10),
        )
    }));
    let status = status_json(&node);
    etcd.signal(0, libc::SIGCONT);
    assert!(result.is_ok(), "status while stalled: {status}");
}

/// A document refused as not UTF-8 stays refused (it is not tried again as lossy text).
#[test]
fn a_non_utf8_document_stays_refused() {
    if !tools() {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let etcd = seeded_etcd();
    let dir = node_dir("a", &etcd);
    let node = Server::start(&config(&dir));
    let mut value = b"# caf\xe9\n".to_vec();
    value.extend_from_slice(ZONE.replace("zone: example.test", "zone: bin.test").as_bytes());
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint))
        .arg("put")
        .arg(format!("{PREFIX}zones/bin.test"))
        .arg(std::ffi::OsStr::from_bytes(&value))
        .output()
        .unwrap();
    assert!(out.status.success());
    node.wait_log("not UTF-8", Duration::from_secs(2));
    put(
        &etcd,
        "zones/example.test",
        &ZONE.replace("192.0.2.80", "192.0.2.87"),
    );
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.87"],
        Duration::from_secs(2),
    );
    let m = query(node.addr, &ask("static.bin.test.", T::A));
    assert_eq!(
        m.response_code,
        hickory_proto::op::ResponseCode::Refused,
        "applied: {:?}",
        answer_data(&m)
    );
}

/// A node ahead of a new etcd forgets its revisions; when the whole read that follows fails
/// (here: the cache cannot be written once), it reads whole again: a zone the new etcd does
/// not hold is deleted.
#[test]
fn a_failed_whole_read_after_forgetting_revisions_is_read_whole_again() {
    if !tools() {
        return;
    }
    let mut etcd = seeded_etcd();
    put_second_zone(&etcd);
    let (dir, node) = node_a(&etcd, "second.test");
    drop(node);
    reseed_empty(&mut etcd);
    // The next docs.<n> is a file: the first commit fails.
    let cache = dir.path().join("state/cluster");
    let current = std::fs::read_link(cache.join("current")).unwrap();
    let n: u64 = current
        .to_str()
        .unwrap()
        .strip_prefix("docs.")
        .unwrap()
        .parse()
        .unwrap();
    let blocker = cache.join(format!("docs.{}", n + 1));
    std::fs::write(&blocker, "").unwrap();
    let node = Server::start(&config(&dir));
    node.wait_log("cluster cache cannot be written", Duration::from_secs(3));
    std::fs::remove_file(&blocker).unwrap();
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.84"],
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_secs(1));
    let m = query(node.addr, &ask("static.second.test.", T::A));
    assert_eq!(
        m.response_code,
        hickory_proto::op::ResponseCode::Refused,
        "second.test, absent from etcd, still served: {:?}\n{}",
        answer_data(&m),
        node.logs()
    );
}

/// `current` left pointing at a set of documents that is gone: the cache starts afresh and the
/// node reads the whole state.
#[test]
fn a_dangling_current_link_is_recovered() {
    if !tools() {
        return;
    }
    let etcd = seeded_etcd();
    let (dir, node) = node_a(&etcd, "example.test");
    drop(node);
    let cache = dir.path().join("state/cluster");
    let docs = cache.join(std::fs::read_link(cache.join("current")).unwrap());
    std::fs::remove_dir_all(&docs).unwrap();
    let node = Server::start(&config(&dir));
    until_answers(
        &node,
        "static.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(3),
    );
}
