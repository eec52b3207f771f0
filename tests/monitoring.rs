//! The monitoring the repository ships: the Prometheus alert rules (`deploy/prometheus`), checked
//! and unit-tested by promtool, and the Grafana dashboard (`deploy/grafana`). Every metric either
//! names is one a running Meridian exports, single node or cluster node: a renamed family fails
//! here, not on an operator's silent panel.

mod common;

use common::etcd::EtcdServer;
use common::targets::{Target, free_port};
use common::*;
use hickory_proto::rr::RecordType as T;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// Runs promtool with `args` in `deploy/prometheus`; its output, after asserting it succeeded.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    said
}

#[test]
fn alert_rules_are_valid_and_pass_their_unit_tests() {
    if !have_tool("promtool") {
        return;
    }
    let said = promtool(&["check", "rules", "meridian.rules.yml"]);
    assert!(said.contains("SUCCESS: 14 rules found"), "{said}");
    let said = promtool(&["test", "rules", "meridian.rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
    // Every alert is unit-tested firing, with its summary and description as rendered.
    let rules = std::fs::read_to_string(deploy("prometheus/meridian.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/meridian.rules.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let fired = tests
            .split("alertname: ")
            .skip(1)
            .any(|t| t.starts_with(&format!("{alert}\n")) && t.contains("exp_labels"));
        assert!(fired, "{alert} is never tested firing");
    }
}

/// The metric names in `text`: words starting `meridian_` or `process_`.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("meridian_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// The sample names of an exposition.
fn exported_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Scrapes `server` until `ready` holds of the text (at most 5 s).
fn scrape_until(server: &Server, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (status, _, m) = http(server.admin(), "GET", "/metrics", &[], None);
        assert_eq!(status, 200, "{m}");
        if ready(&m) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "not ready:\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every family a single node with a check, a load-balanced name and traffic exports, and those
/// a cluster node adds.
fn exported() -> BTreeSet<String> {
    let port = free_port();
    let _web = Target::http(format!("127.49.2.1:{port}").parse().unwrap());
    let dir = fixture("admin");
    std::fs::write(
        dir.path().join("meridian.yaml"),
        format!(
            "dns: {{ listen: [\"127.0.0.1:0\"] }}\nadmin: {{ listen: \"127.0.0.1:0\" }}\n\
             zones_dir: zones\nstate_dir: state\n\
             checks:\n  web: {{ type: http, port: {port}, path: /, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}\n\
             datacenters:\n\
             \x20 eu: {{ endpoints: [{{ address: 127.49.2.1, check: web }}] }}\n\
             \x20 us: {{ endpoints: [{{ address: 192.0.2.10 }}] }}\n"
        ),
    )
    .unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let up = r#"meridian_target_up{check="web",address="127.49.2.1",view="local"} 1"#;
    scrape_until(&server, |m| m.contains(up));
    query(server.addr, &ask("www.example.test.", T::A));
    query(
        server.addr,
        &ask("www.example.test.", T::A).ecs("198.51.100.0", 24),
    );
    let single = scrape_until(&server, |m| m.contains("meridian_queries_total{"));
    let mut names = exported_names(&single);

    let etcd = EtcdServer::start();
    let node = tempfile::tempdir().unwrap();
    std::fs::write(
        node.path().join("meridian.yaml"),
        format!(
            "dns: {{ listen: [\"127.0.0.1:0\"] }}\nadmin: {{ listen: \"127.0.0.1:0\" }}\nstate_dir: state\n\
             cluster:\n  node: a\n  etcd: {{ endpoints: [\"{}\"], prefix: /mon/, timeout: 500ms, lease_ttl: 2s }}\n",
            etcd.endpoint
        ),
    )
    .unwrap();
    let server = Server::start(&node.path().join("meridian.yaml"));
    let cluster = scrape_until(&server, |m| m.contains("meridian_cluster_nodes 1"));
    names.extend(exported_names(&cluster));
    names
}

#[test]
fn rules_and_dashboard_name_only_metrics_meridian_exports() {
    if !(have_tool("etcd") && have_tool("etcdctl")) {
        return;
    }
    let exported = exported();
    // The families a dashboard is for, in a real scrape (not just whatever the files name).
    for family in [
        "meridian_answers_total",
        "meridian_datacenter_state",
        "meridian_probe_duration_seconds_bucket",
        "meridian_config_last_reload_successful",
        "meridian_build_info",
        "meridian_cluster_connected",
        "meridian_cluster_quorum_rules",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(exported.contains(family), "{family} not in {exported:?}");
    }

    let text = std::fs::read_to_string(deploy("grafana/meridian.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    let mut ids = BTreeSet::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    let mut panels = 0;
    while let Some(p) = stack.pop() {
        let title = p["title"].as_str().unwrap();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id twice: {title}");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title} has no place");
        if p["type"] == "row" {
            stack.extend(p["panels"].as_array().unwrap());
            continue;
        }
        panels += 1;
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} queries nothing");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(!metric_names(expr).is_empty(), "{title}: {expr} names no metric");
            exprs.push((title.to_string(), expr.to_string()));
        }
    }
    assert!(panels >= 15, "{panels} panels");
    for a in dashboard["annotations"]["list"].as_array().unwrap() {
        exprs.push(("annotation".into(), a["expr"].as_str().unwrap().to_string()));
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(("variable".into(), q.to_string()));
        }
    }
    for (title, expr) in &exprs {
        for name in metric_names(expr) {
            assert!(
                exported.contains(&name),
                "{title}: {name} is not exported ({expr})"
            );
        }
    }

    let rules = std::fs::read_to_string(deploy("prometheus/meridian.rules.yml")).unwrap();
    let named = metric_names(&rules);
    assert!(named.len() >= 12, "{named:?}");
    for name in named {
        assert!(
            exported.contains(&name),
            "meridian.rules.yml: {name} is not exported"
        );
    }
}
