//! `meridian cluster push` and `meridian cluster pull` against a real etcd on loopback: what
//! push writes (and when it writes nothing), what a dry run says, pull's tree and its round
//! trip, overrides left alone, and a change made between read and commit refused. Needs `etcd`
//! and `etcdctl` (Debian's etcd-server and etcd-client); `.ci/run` installs them.

mod common;

use common::BIN;
use common::etcd::EtcdServer;
use common::have_tool;
use meridian::cluster::documents::{Documents, plan};
use meridian::cluster::files::{ClusterFile, FilesError};
use meridian::cluster::keys::{Audit, Key};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have_etcd() -> bool {
    have_tool("etcd") && have_tool("etcdctl")
}

const ZONE: &str = "\
zone: example.test
soa: { mname: ns1, rname: hostmaster }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  www: { A: [192.0.2.1, 192.0.2.2] }
  old: { A: 192.0.2.9 }
gslb:
  lb: { policy: failover, datacenters: [eu, us] }
";

/// A node's configuration naming `server` as its cluster, with one zone.
/// An etcd and a node's files for it (see [`Node::new`]); `None` (said loudly) without etcd.
fn etcd_and_node() -> Option<(EtcdServer, Node)> {
    if !have_etcd() {
        return None;
    }
    let server = EtcdServer::start();
    let node = Node::new(&server);
    Some((server, node))
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new(server: &EtcdServer) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        let node = Node { dir };
        node.write(
            "meridian.yaml",
            &config(
                server,
                "eu:\n    endpoints:\n      - { address: 192.0.2.10, check: web }\n",
            ),
        );
        node.write("zones/example.test.yaml", ZONE);
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no `{from}`");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `meridian cluster <args> --config <this node's meridian.yaml>`.
    fn cluster(&self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .arg("cluster")
            .args(args)
            .arg("--config")
            .arg(self.path("meridian.yaml"))
            .env("USER", "tester")
            .output()
            .unwrap();
        Run(out)
    }
}

/// `meridian.yaml` with the data center `eu` given as `eu` (its text below `eu:`), `us`, one
/// check, and a `cluster:` section.
fn config(server: &EtcdServer, eu: &str) -> String {
    format!(
        "dns:\n  listen: [\"127.0.0.1:5353\"]\n\
         checks:\n  web: {{ type: tcp, port: 80 }}\n\
         # where the traffic goes\n\
         datacenters:\n  {eu}  us:\n    endpoints:\n      - {{ address: 192.0.2.20 }}\n\
         zones_dir: zones\n\
         cluster:\n  node: node-1\n  etcd:\n    endpoints: [\"{}\"]\n",
        server.endpoint
    )
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success; its stdout.
    fn ok(&self) -> String {
        assert!(
            self.0.status.success(),
            "failed:\n{}{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
    /// Asserts failure (exit 1); stdout and stderr together.
    fn failed(&self) -> String {
        assert_eq!(
            self.0.status.code(),
            Some(1),
            "{}{}",
            self.stdout(),
            self.stderr()
        );
        format!("{}{}", self.stdout(), self.stderr())
    }
}

/// The store's revision.
fn revision(server: &EtcdServer) -> i64 {
    let json = server.etcdctl(&["get", "/", "-w", "json"]).expect("etcdctl get");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

/// The keys under /meridian/.
fn keys(server: &EtcdServer) -> Vec<String> {
    let out = server
        .etcdctl(&["get", "--prefix", "/meridian/", "--keys-only"])
        .expect("etcdctl get");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn value(server: &EtcdServer, key: &str) -> String {
    server
        .etcdctl(&["get", key, "--print-value-only"])
        .expect("etcdctl get")
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn push_writes_the_documents_and_who_pushed_them() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    let out = node.cluster(&["push"]).ok();
    assert!(
        out.contains("+ datacenters") && out.contains("+ zones/example.test"),
        "{out}"
    );
    assert_eq!(
        keys(&server),
        [
            "/meridian/audit",
            "/meridian/datacenters",
            "/meridian/zones/example.test"
        ]
    );
    // The documents are the file's text: the zone whole, and the two sections with their
    // comments, nothing else of meridian.yaml.
    assert_eq!(value(&server, "/meridian/zones/example.test"), ZONE.trim_end());
    let dcs = value(&server, "/meridian/datacenters");
    assert!(dcs.starts_with("checks:\n  web:") && dcs.contains("# where the traffic goes\ndatacenters:"));
    assert!(
        !dcs.contains("dns:") && !dcs.contains("cluster:") && !dcs.contains("zones_dir"),
        "{dcs}"
    );
    let audit: Audit = serde_json::from_str(&value(&server, "/meridian/audit")).unwrap();
    assert_eq!(
        (audit.node.as_str(), audit.by.as_str()),
        ("node-1", "cluster push (tester)")
    );
    // Again: nothing to do, nothing written.
    let before = revision(&server);
    let out = node.cluster(&["push"]).ok();
    assert!(out.contains("the cluster already has this state"), "{out}");
    assert_eq!(revision(&server), before);
}

#[test]
fn a_dry_run_says_what_changes_and_writes_nothing() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.cluster(&["push"]).ok();
    node.edit("zones/example.test.yaml", "192.0.2.2]", "192.0.2.3]");
    node.edit("zones/example.test.yaml", "  old: { A: 192.0.2.9 }\n", "");
    node.edit("zones/example.test.yaml", "policy: failover", "policy: weighted");
    node.edit(
        "meridian.yaml",
        "check: web }\n",
        "check: web }\n      - { address: 192.0.2.11 }\n",
    );
    node.write(
        "zones/new.test.yaml",
        "zone: new.test\nsoa: { mname: ns1.example.test., rname: hostmaster }\nns: [ns1.example.test.]\n",
    );
    let before = revision(&server);
    let out = node.cluster(&["push", "--dry-run"]).ok();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    for expected in [
        "~ datacenters",
        "~ datacenter eu: endpoint 192.0.2.11 added (weight 1, no check)",
        "~ zone example.test",
        "- www A 192.0.2.2",
        "+ www A 192.0.2.3",
        "~ gslb name lb: policy failover -> weighted",
        "- name old",
        "- old A 192.0.2.9",
        "+ zone new.test: 1 name, 2 records, 0 load-balanced names",
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{out}");
    }
    assert!(out.starts_with("dry run, nothing written"), "{out}");
    assert_eq!(revision(&server), before);
    // What the dry run showed is what push then writes.
    let out = node.cluster(&["push"]).ok();
    assert!(
        out.contains("~ zones/example.test") && out.contains("+ zones/new.test"),
        "{out}"
    );
}

#[test]
fn a_dry_run_against_an_invalid_cluster_state_lists_keys_and_says_why() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    let bad =
        "zone: bad.test\nsoa: { mname: ns1, rname: h }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.300 }\n";
    server.etcdctl(&["put", "/meridian/zones/bad.test", bad]).unwrap();
    let out = node.cluster(&["push", "--dry-run"]).ok();
    for expected in [
        "+ datacenters",
        "+ zones/example.test",
        "- zones/bad.test",
        "the cluster's current state is invalid",
        "/meridian/zones/bad.test:5:13: records.ns1.A: `192.0.2.300` is not an IPv4 address",
    ] {
        assert!(out.contains(expected), "no `{expected}` in:\n{out}");
    }
    assert_eq!(keys(&server), ["/meridian/zones/bad.test"]);
}

#[test]
fn an_invalid_configuration_writes_nothing() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.edit("zones/example.test.yaml", "192.0.2.9", "192.0.2.900");
    node.edit("meridian.yaml", "port: 80", "port: 0");
    let before = revision(&server);
    let out = node.cluster(&["push"]).failed();
    // Every problem, as `meridian check` prints them.
    assert!(
        out.contains("meridian.yaml:4:27: checks.web.port: 0 is not a port"),
        "{out}"
    );
    assert!(
        out.contains("zones/example.test.yaml:7:13: records.old.A: `192.0.2.900`"),
        "{out}"
    );
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(revision(&server), before);
    assert!(keys(&server).is_empty());
}

#[test]
fn a_zone_that_imports_a_master_file_is_refused() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.write(
        "zones/imported.test.yaml",
        "zone: imported.test\nimport: imported.test.zone\n",
    );
    node.write(
        "zones/imported.test.zone",
        "$ORIGIN imported.test.\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    );
    let out = node.cluster(&["push"]).failed();
    assert!(
        out.contains("zones/imported.test.yaml: zone imported.test. imports a master file")
            && out.contains("one self-contained document"),
        "{out}"
    );
    assert!(keys(&server).is_empty());
    let help = Command::new(BIN)
        .args(["cluster", "push", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("a zone with `import:` is refused"));
}

#[test]
fn a_zone_removed_here_is_deleted_from_the_cluster() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.write(
        "zones/second.test.yaml",
        "zone: Second.Test.\nsoa: { mname: ns1.example.test., rname: h }\nns: [ns1.example.test.]\n",
    );
    node.cluster(&["push"]).ok();
    // The key is the zone's canonical name, whatever the file's spelling.
    assert!(keys(&server).contains(&"/meridian/zones/second.test".to_string()));
    std::fs::remove_file(node.path("zones/second.test.yaml")).unwrap();
    let out = node.cluster(&["push"]).ok();
    assert!(out.contains("- zones/second.test"), "{out}");
    assert_eq!(
        keys(&server),
        [
            "/meridian/audit",
            "/meridian/datacenters",
            "/meridian/zones/example.test"
        ]
    );
}

#[test]
fn pull_writes_a_tree_that_checks_and_pushes_back_unchanged() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.cluster(&["push"]).ok();
    let out = node.path("pulled");
    let report = node.cluster(&["pull", "--out", out.to_str().unwrap()]).ok();
    assert!(report.contains("(1 zones, 0 overrides)"), "{report}");
    assert_eq!(
        std::fs::read_to_string(out.join("zones/example.test.yaml")).unwrap(),
        ZONE
    );
    // A configuration that stands on its own: `meridian check` validates these very files.
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(out.join("meridian.yaml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("ok (1 zones, 6 records)"),
        "{said}"
    );
    // Pushed back: the same documents, byte for byte.
    let before = revision(&server);
    let from = out.join("meridian.yaml");
    let again = node.cluster(&["push", "--from", from.to_str().unwrap()]).ok();
    assert!(again.contains("the cluster already has this state"), "{again}");
    assert_eq!(revision(&server), before);
    // Into a directory that holds something: refused, untouched.
    let refused = node.cluster(&["pull", "--out", out.to_str().unwrap()]).failed();
    assert!(refused.contains("the directory is not empty"), "{refused}");
}

#[test]
fn overrides_survive_push_and_come_out_in_pull() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.cluster(&["push"]).ok();
    let dc = r#"{"state":"drained","weight":50}"#;
    let ep = r#"{"state":"down"}"#;
    server
        .etcdctl(&["put", "/meridian/overrides/datacenters/eu", dc])
        .unwrap();
    server
        .etcdctl(&["put", "/meridian/overrides/endpoints/us/192.0.2.20", ep])
        .unwrap();
    server.etcdctl(&["put", "/meridian/someone-elses", "x"]).unwrap();
    node.edit("zones/example.test.yaml", "192.0.2.2]", "192.0.2.3]");
    let out = node.cluster(&["push"]).ok();
    assert!(out.contains("left alone: key /meridian/someone-elses"), "{out}");
    assert_eq!(value(&server, "/meridian/overrides/datacenters/eu"), dc);
    assert_eq!(value(&server, "/meridian/overrides/endpoints/us/192.0.2.20"), ep);
    assert_eq!(value(&server, "/meridian/someone-elses"), "x");

    let out = node.path("pulled");
    node.cluster(&["pull", "--out", out.to_str().unwrap()]).ok();
    let saved: meridian::overrides::Saved =
        serde_json::from_str(&std::fs::read_to_string(out.join("state/overrides.json")).unwrap()).unwrap();
    let expected: meridian::overrides::Saved = serde_json::from_str(
        r#"{"datacenters": {"eu": {"state": "drained", "weight": 50}},
            "endpoints": {"us/192.0.2.20": "down"}}"#,
    )
    .unwrap();
    assert_eq!(saved, expected);
    // What a file-mode server started from the tree reads.
    let loaded = meridian::overrides::Overrides::load(Some(out.join("state"))).unwrap();
    assert_eq!(loaded.saved(), expected);
}

#[tokio::test]
async fn a_change_made_between_read_and_commit_is_refused_whole() {
    let Some((server, node)) = etcd_and_node() else {
        return;
    };
    node.cluster(&["push"]).ok();
    node.edit("zones/example.test.yaml", "192.0.2.2]", "192.0.2.3]");
    node.write(
        "zones/new.test.yaml",
        "zone: new.test\nsoa: { mname: ns1.example.test., rname: h }\nns: [ns1.example.test.]\n",
    );
    let file = node.path("meridian.yaml");
    let local = meridian::config::load_local(&file).unwrap();
    let cluster = ClusterFile::read(&file).unwrap().connect().unwrap();
    let read = cluster.read().await.unwrap();
    let changes = plan(&Documents::of_local(&local).unwrap(), &read);
    assert_eq!(changes.len(), 2);
    // Someone else changes the zone meanwhile.
    server
        .etcdctl(&["put", "/meridian/zones/example.test", "zone: example.test\n"])
        .unwrap();
    let audit = Audit {
        node: "node-1".into(),
        by: "test".into(),
        what: None,
    };
    let e = cluster.commit(&changes, &read, &audit).await.unwrap_err();
    assert!(
        matches!(&e, FilesError::Conflict { key } if key == "/meridian/zones/example.test"),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was written"), "{e}");
    // Nothing of the transaction went in: not the new zone, not the audit record.
    assert_eq!(
        value(&server, "/meridian/zones/example.test"),
        "zone: example.test"
    );
    assert!(!keys(&server).contains(&"/meridian/zones/new.test".to_string()));
    let audit: Audit = serde_json::from_str(&value(&server, "/meridian/audit")).unwrap();
    assert_eq!(audit.by, "cluster push (tester)");

    // A document the push does not change but validated against (the data centers) changes
    // meanwhile: refused too, so what was validated as a whole is what the cluster holds.
    let read = cluster.read().await.unwrap();
    let changes = plan(&Documents::of_local(&local).unwrap(), &read);
    assert!(changes.iter().all(|c| c.key != Key::Datacenters), "{changes:?}");
    let datacenters = value(&server, "/meridian/datacenters");
    server
        .etcdctl(&[
            "put",
            "/meridian/datacenters",
            &format!("{datacenters}\n# edited elsewhere\n"),
        ])
        .unwrap();
    let e = cluster.commit(&changes, &read, &audit).await.unwrap_err();
    assert!(
        matches!(&e, FilesError::Conflict { key } if key == "/meridian/datacenters"),
        "{e}"
    );
    assert!(!keys(&server).contains(&"/meridian/zones/new.test".to_string()));
}

#[test]
fn without_a_cluster_section_push_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    let file: &Path = &dir.path().join("meridian.yaml");
    std::fs::write(file, "zones_dir: zones\n").unwrap();
    let out = Command::new(BIN)
        .args(["cluster", "push", "--config"])
        .arg(file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("no `cluster:` section") && err.contains("cluster.etcd.endpoints"),
        "{err}"
    );
}

/// `geoip:` is each node's own: the pulled tree names the node's database (absolute), so zones
/// with location rules validate there, and a dry run compares them.
#[test]
fn location_rules_validate_with_the_nodes_geoip_database() {
    let Some((_server, node)) = etcd_and_node() else {
        return;
    };
    let db = common::repo_path("geoip/demo-city.mmdb");
    std::fs::copy(&db, node.path("city.mmdb")).unwrap();
    node.edit(
        "meridian.yaml",
        "zones_dir: zones\n",
        "zones_dir: zones\ngeoip: { database: city.mmdb }\n",
    );
    let geo = "policy: geo, datacenters: [eu, us], geo: { \"continent:EU\": [eu], default: [us, eu] }";
    node.edit(
        "zones/example.test.yaml",
        "policy: failover, datacenters: [eu, us]",
        geo,
    );
    node.cluster(&["push"]).ok();
    let out = node.path("pulled");
    node.cluster(&["pull", "--out", out.to_str().unwrap()]).ok();
    let text = std::fs::read_to_string(out.join("meridian.yaml")).unwrap();
    let named = format!("database: {:?}", node.path("city.mmdb").display().to_string());
    assert!(text.contains(&named), "{text}");
    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(out.join("meridian.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    node.edit(
        "zones/example.test.yaml",
        "\"continent:EU\": [eu]",
        "\"continent:EU\": [eu, us]",
    );
    let dry = node.cluster(&["push", "--dry-run"]).ok();
    assert!(
        dry.contains("~ gslb name lb: geo continent:EU eu -> eu, then us"),
        "{dry}"
    );
}

/// A push larger than etcd takes in one transaction (by default 128 operations) says which
/// etcd settings to raise, and goes through once they are.
#[test]
fn a_push_beyond_etcds_transaction_limit_says_what_to_raise() {
    if !have_etcd() {
        return;
    }
    let zones = |node: &Node| {
        for i in 0..150 {
            node.write(
                &format!("zones/z{i}.test.yaml"),
                &format!("zone: z{i}.test\nsoa: {{ mname: ns1.z{i}.test., rname: h }}\nns: [ns1.z{i}.test.]\nrecords:\n  ns1: {{ A: [192.0.2.1] }}\n"),
            );
        }
    };
    let server = EtcdServer::start();
    let node = Node::new(&server);
    zones(&node);
    let out = node.cluster(&["push"]).failed();
    assert!(
        out.contains("--max-txn-ops") && out.contains("153 writes"),
        "{out}"
    );
    assert!(keys(&server).is_empty(), "nothing written");

    let server = EtcdServer::builder().flag("--max-txn-ops=1000").start();
    let node = Node::new(&server);
    zones(&node);
    node.cluster(&["push"]).ok();
    assert_eq!(
        keys(&server).iter().filter(|k| k.contains("/zones/")).count(),
        151
    );
}
