//! The API's answers as text an operator reads during a drill: aligned tables and one line per
//! event. Pure functions of the JSON the API answers (`--json` prints that JSON as is).

use serde_json::Value;
use std::fmt::Write;

/// The text of a field: a string as is, a number or bool as written, absent or null as `-`.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn field(v: &Value, key: &str) -> String {
    text(v.get(key))
}

fn list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| text(Some(x))).collect())
        .unwrap_or_default()
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Rows as columns padded to their widest cell (the last column unpadded).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `GET /status`, then where each balanced name sends clients now (`GET /gslb`).
pub fn status(status: &Value, gslb: &Value) -> String {
    let mut out = String::new();
    let ready = if status.get("ready") == Some(&Value::Bool(true)) {
        "ready"
    } else {
        "NOT READY (listeners or first probes pending)"
    };
    let _ = writeln!(
        out,
        "meridian {}, snapshot generation {}, {ready}",
        field(status, "version"),
        field(status, "generation")
    );
    let _ = writeln!(out, "zones: {}", list(status, "zones").join(" "));
    let down = list(status, "datacenters_down");
    let _ = writeln!(
        out,
        "data centers: {}, down: {}",
        field(status, "datacenters"),
        if down.is_empty() {
            "none".to_string()
        } else {
            down.join(" ")
        }
    );
    let guard = field(status, "partition_guard");
    let guard = if guard == "engaged" {
        "ENGAGED (health changes are held: most probes failed at once)".to_string()
    } else {
        guard
    };
    let _ = writeln!(
        out,
        "probes: {}, partition guard: {guard}",
        field(status, "probes")
    );
    let _ = writeln!(out, "overrides: {}", overrides(status.get("overrides")));
    if let Some(g) = status.get("geoip").filter(|g| !g.is_null()) {
        let _ = writeln!(
            out,
            "geoip: {} ({}, {} locations)",
            field(g, "path"),
            field(g, "type"),
            field(g, "locations")
        );
    }
    if let Some(c) = status.get("cluster").filter(|c| !c.is_null()) {
        let _ = write!(
            out,
            "cluster: node {}, etcd {} since {}, revision {}, quorum {}",
            field(c, "node"),
            field(c, "state"),
            field(c, "since"),
            field(c, "revision"),
            field(c, "quorum")
        );
        if let Some(e) = c.get("error").and_then(Value::as_str) {
            let _ = write!(out, ", error: {e}");
        }
        out.push('\n');
        let nodes: Vec<String> = items(c.get("nodes").unwrap_or(&Value::Null))
            .iter()
            .map(|n| field(n, "name"))
            .collect();
        let _ = writeln!(out, "live nodes: {}", nodes.join(" "));
    }
    let names = items(gslb);
    if !names.is_empty() {
        out.push_str("\nwhere clients go now:\n");
        out.push_str(&gslb_table(gslb));
    }
    out
}

fn overrides(o: Option<&Value>) -> String {
    let mut parts = Vec::new();
    if let Some(dcs) = o.and_then(|o| o.get("datacenters")).and_then(Value::as_object) {
        for (dc, v) in dcs {
            let state = field(v, "state");
            if state != "auto" {
                parts.push(format!("{dc} {}", forced_words(&state)));
            }
            if let Some(w) = v.get("weight").filter(|w| !w.is_null()) {
                parts.push(format!("{dc} weight {w}"));
            }
        }
    }
    if let Some(eps) = o.and_then(|o| o.get("endpoints")).and_then(Value::as_object) {
        for (ep, state) in eps {
            parts.push(format!("{ep} {}", forced_words(&text(Some(state)))));
        }
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn forced_words(state: &str) -> &str {
    match state {
        "up" => "forced up",
        "down" => "forced down",
        other => other,
    }
}

/// `GET /gslb`: one row per balanced name and rule.
pub fn gslb_table(gslb: &Value) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "RULE".to_string(),
        "NOW".to_string(),
        "PASSED OVER".to_string(),
        "A ANSWER".to_string(),
    ]];
    for name in items(gslb) {
        for rule in items(name.get("rules").unwrap_or(&Value::Null)) {
            let passed: Vec<String> = items(rule.get("passed_over").unwrap_or(&Value::Null))
                .iter()
                .map(|p| format!("{} ({})", field(p, "datacenter"), field(p, "why")))
                .collect();
            let a = rule.get("answers").and_then(|a| a.get("A"));
            let answer = match a {
                Some(a) => {
                    let addrs = list(a, "addresses");
                    if addrs.is_empty() {
                        field(a, "outcome")
                    } else {
                        format!("{} {}", field(a, "outcome"), addrs.join(" "))
                    }
                }
                None => "-".to_string(),
            };
            rows.push(vec![
                format!("{} ({})", field(name, "name"), field(name, "policy")),
                field(rule, "rule"),
                field(rule, "now"),
                if passed.is_empty() {
                    "-".to_string()
                } else {
                    passed.join(", ")
                },
                answer,
            ]);
        }
    }
    table(&rows)
}

/// `GET /datacenters`: one row per data center, its endpoints under it.
pub fn datacenters(dcs: &Value) -> String {
    let mut rows = vec![vec![
        "DATACENTER".to_string(),
        "STATE".to_string(),
        "WHY".to_string(),
        "OVERRIDE".to_string(),
        "WEIGHT".to_string(),
        "HEALTHY".to_string(),
    ]];
    for dc in items(dcs) {
        rows.push(vec![
            field(dc, "name"),
            field(dc, "status"),
            field(dc, "reason"),
            field(dc, "override"),
            match dc.get("weight_override") {
                Some(Value::Number(n)) => format!("{n} (runtime)"),
                _ => "configured".to_string(),
            },
            format!(
                "{}/{} (min {})",
                field(dc, "healthy_endpoints"),
                dc.get("endpoints").and_then(Value::as_array).map_or(0, Vec::len),
                field(dc, "min_healthy")
            ),
        ]);
        for ep in items(dc.get("endpoints").unwrap_or(&Value::Null)) {
            rows.push(endpoint_row(ep));
        }
    }
    table(&rows)
}

fn endpoint_row(ep: &Value) -> Vec<String> {
    let up = if ep.get("up") == Some(&Value::Bool(true)) {
        "up"
    } else {
        "down"
    };
    let forced = field(ep, "override");
    let why = if forced != "auto" {
        forced_words(&forced).to_string()
    } else if field(ep, "configured") == "down" {
        "configured down".to_string()
    } else {
        match ep.get("probe").filter(|p| !p.is_null()) {
            None => "no check".to_string(),
            Some(p) => {
                let mut s = format!(
                    "check {}: {} since {}",
                    field(ep, "check"),
                    field(p, "verdict"),
                    field(p, "since")
                );
                if let Some(ms) = p.get("last_latency_ms").and_then(Value::as_f64) {
                    let _ = write!(s, ", {ms:.1} ms");
                }
                if let Some(e) = p.get("last_error").and_then(Value::as_str) {
                    let _ = write!(s, ", last error: {e}");
                }
                if let Some(c) = p.get("cluster").filter(|c| !c.is_null()) {
                    let _ = write!(
                        s,
                        ", cluster: {} down of {} ({} needed, quorum {}){}",
                        field(c, "down"),
                        field(c, "voters"),
                        field(c, "needed"),
                        field(c, "quorum"),
                        if c.get("alone") == Some(&Value::Bool(true)) {
                            ", this node deciding alone"
                        } else {
                            ""
                        }
                    );
                    if field(p, "status") != field(p, "verdict") {
                        let _ = write!(s, ", this node sees it {}", field(p, "status"));
                    }
                }
                if let Some(a) = ep.get("probe_address").and_then(Value::as_str) {
                    let _ = write!(s, ", probed at {a}");
                }
                s
            }
        }
    };
    vec![
        format!("  {}", field(ep, "address")),
        up.to_string(),
        why,
        forced,
        field(ep, "weight"),
        String::new(),
    ]
}

/// One event as one line: time, subject, old → new, reason.
pub fn event(e: &Value) -> String {
    let reason = field(e, "reason");
    let mut line = format!(
        "{}  {}: {} -> {}",
        field(e, "time"),
        field(e, "subject"),
        field(e, "old"),
        field(e, "new")
    );
    if !reason.is_empty() && reason != "-" {
        let _ = write!(line, " ({reason})");
    }
    line
}

/// `GET /events`.
pub fn events(list: &Value) -> String {
    items(list).iter().map(|e| event(e) + "\n").collect()
}

/// `GET /explain`: the answer, then every step of the decision.
pub fn explain(r: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} from {}: {}{}, ECS scope /{}",
        field(r, "name"),
        field(r, "type"),
        field(r, "client"),
        field(r, "rcode"),
        if r.get("authoritative") == Some(&Value::Bool(true)) {
            " (authoritative)"
        } else {
            ""
        },
        field(r, "scope")
    );
    for (section, key) in [
        ("answer", "answer"),
        ("authority", "authority"),
        ("additional", "additional"),
    ] {
        let records = list(r, key);
        if !records.is_empty() {
            let _ = writeln!(out, "{section}:");
            for rec in records {
                let _ = writeln!(out, "  {rec}");
            }
        }
    }
    out.push_str("steps:\n");
    for (i, step) in list(r, "steps").iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", i + 1);
    }
    for v in items(r.get("votes").unwrap_or(&Value::Null)) {
        let _ = writeln!(
            out,
            "votes on {}/{} (check {}): {} by {} ({} of {} down, {} needed)",
            field(v, "datacenter"),
            field(v, "address"),
            field(v, "check"),
            field(v, "verdict"),
            field(v, "quorum"),
            field(v, "down"),
            field(v, "voters"),
            field(v, "needed")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_columns() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "x".into()],
            vec!["long".into(), "b".into(), "y".into()],
        ]);
        assert_eq!(t, "A     BB  x\nlong  b   y\n");
    }

    #[test]
    fn an_event_is_one_line() {
        let e = json!({"time": "2026-11-24T09:00:00Z", "subject": "override datacenter eu",
            "old": "auto", "new": "drained", "reason": "by ops"});
        assert_eq!(
            event(&e),
            "2026-11-24T09:00:00Z  override datacenter eu: auto -> drained (by ops)"
        );
    }

    #[test]
    fn an_endpoint_says_why_and_in_cluster_mode_how_the_verdict_was_reached() {
        let ep = json!({"address": "198.51.100.10", "up": false, "weight": 1, "configured": "up",
            "override": "auto", "check": "web", "probe_address": null,
            "probe": {"status": "up", "verdict": "down", "since": "2026-11-24T09:12:03.120Z",
                "last_ok": true, "last_error": null, "last_checked": null, "last_latency_ms": 0.42,
                "cluster": {"quorum": "majority", "verdict": "down", "down": 2, "voters": 3,
                    "needed": 2, "alone": false, "nodes": []}}});
        assert_eq!(
            endpoint_row(&ep)[..3],
            [
                "  198.51.100.10".to_string(),
                "down".to_string(),
                "check web: down since 2026-11-24T09:12:03.120Z, 0.4 ms, cluster: 2 down of 3 \
                 (2 needed, quorum majority), this node sees it up"
                    .to_string()
            ]
        );
        let drained = json!({"address": "192.0.2.1", "up": false, "weight": 1,
            "configured": "up", "override": "drained", "probe": null});
        assert_eq!(endpoint_row(&drained)[2], "drained");
    }

    #[test]
    fn overrides_in_words() {
        let o = json!({"datacenters": {"eu": {"state": "drained"}, "us": {"state": "auto", "weight": 5}},
            "endpoints": {"eu/192.0.2.1": "down"}});
        assert_eq!(
            overrides(Some(&o)),
            "eu drained, us weight 5, eu/192.0.2.1 forced down"
        );
        assert_eq!(
            overrides(Some(&json!({"datacenters": {}, "endpoints": {}}))),
            "none"
        );
    }
}
