//! The status page in headless Chromium through the failover drill of docs/api.md, every
//! operator action done with the real `meridian ctl` (explain, drain, status, undrain, an
//! endpoint forced down and back, a weight, a zone read, edited and written back with its ETag,
//! a reload), while a region fails and, at the end, every probe fails and the partition guard
//! engages. After each step a screenshot is taken (kept under the target directory for people)
//! and what an operator must read is asserted from the page's DOM: where clients go, each data
//! center's state and why, the banners, and the action's event in the events list.

mod common;

use common::chromium::Chromium;
use common::targets::{Target, free_port};
use common::*;
use hickory_proto::rr::RecordType as T;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN: &str = "Bearer admin-secret-0123456789";
const READ: &str = "read-only-secret-0123456789";

/// Three data centers probed over HTTP every 100 ms on 127.<net>.{2,1,3}.1 (eu, us, ap), with
/// names of each policy and each `when_all_down`.
fn config(dir: &Path, net: u8, port: u16) -> PathBuf {
    let text = format!(
        r#"dns: {{ listen: ["127.0.0.1:0"] }}
admin:
  listen: "127.0.0.1:0"
  tokens:
    - {{ name: ops, role: admin, token_file: secrets/admin.token }}
    - {{ name: viewer, role: read, token_file: secrets/read.token }}
zones_dir: zones
state_dir: state
checks:
  web: {{ type: http, port: {port}, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
datacenters:
  eu: {{ endpoints: [{{ address: 127.{net}.2.1, check: web }}] }}
  us: {{ endpoints: [{{ address: 127.{net}.1.1, check: web }}] }}
  ap: {{ endpoints: [{{ address: 192.0.2.30, check: web, probe_address: 127.{net}.3.1 }}] }}
"#
    );
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/admin.token"), "admin-secret-0123456789\n").unwrap();
    std::fs::write(dir.join("secrets/read.token"), format!("{READ}\n")).unwrap();
    std::fs::write(dir.join("meridian.yaml"), text).unwrap();
    std::fs::write(
        dir.join("zones/example.test.yaml"),
        "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\nns: [ns1.example.test.]\n\
         records: { ns1: { A: [192.0.2.1] } }\n\
         gslb:\n\
         \x20 www: { policy: failover, ttl: 30, datacenters: [eu, us, ap] }\n\
         \x20 shop: { policy: weighted, datacenters: [eu, us], weights: { eu: 3, us: 1 }, when_all_down: [192.0.2.250] }\n\
         \x20 app:\n\
         \x20   policy: geo\n\
         \x20   datacenters: [eu, us, ap]\n\
         \x20   geo: { \"net:10.20.0.0/16\": [eu], default: [us, ap] }\n\
         \x20 eu-only: { policy: failover, datacenters: [eu], when_all_down: servfail }\n",
    )
    .unwrap();
    dir.join("meridian.yaml")
}

/// The DOM, and a screenshot named `step` beside the test's other output.
fn look(browser: &Chromium, url: &str, step: &str) -> String {
    let dom = browser.dom(url);
    let png = browser.screenshot(url, &format!("status-page-drill-{step}.png"));
    eprintln!("status page, {step}: {}", png.display());
    dom
}

/// The `<tr>` of the page whose attributes hold `marker`, as text: see [`text`].
fn row(dom: &str, marker: &str) -> String {
    text(dom, "<tr", marker)
}

/// The element opened by `tag` (not nested in one of its kind) that holds `marker`, tags
/// stripped to its text, class names kept as `[class]` so states can be asserted.
fn text(dom: &str, tag: &str, marker: &str) -> String {
    let close = format!("</{}>", &tag[1..]);
    let raw = dom
        .split(tag)
        .map(|r| r.split(&close).next().unwrap_or_default())
        .find(|r| r.contains(marker))
        .unwrap_or_else(|| panic!("no {tag} {marker} in the page:\n{dom}"));
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('>').map_or(rest.len(), |j| i + j + 1);
        if let Some(c) = rest[i..end].split("class=\"").nth(1) {
            out.push_str(&format!("[{}]", c.split('"').next().unwrap_or("")));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ").replace("&amp;", "&")
}

/// Polls the admin API until `path`'s body satisfies `ok`.
fn until(server: &Server, path: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let (status, _, body) = http(server.admin(), "GET", path, &[("Authorization", ADMIN)], None);
        assert_eq!(status, 200, "{body}");
        if ok(&serde_json::from_str(&body).unwrap()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} never happened: {body}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dc_state(v: &serde_json::Value, dc: &str) -> (String, String) {
    let d = v.as_array().unwrap().iter().find(|d| d["name"] == dc).unwrap();
    (
        d["status"].as_str().unwrap().into(),
        d["reason"].as_str().unwrap().into(),
    )
}

fn www(server: &Server) -> Vec<String> {
    answer_data(&query(server.addr, &ask("www.example.test.", T::A)))
}

/// `meridian ctl --admin <server> ARGS`, the admin token in `MERIDIAN_TOKEN` as an operator
/// exports it: the drill's every action goes through the real command-line client. Must succeed;
/// its output.
fn ctl(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("ctl")
        .arg("--admin")
        .arg(format!("http://{}", server.admin()))
        .args(args)
        .env("MERIDIAN_TOKEN", "admin-secret-0123456789")
        .output()
        .expect("run meridian ctl");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "ctl {args:?} failed:\n{stdout}{stderr}");
    stdout
}

/// The events list's row of the newest event about `subject` (the list is newest first), as
/// text.
fn event(dom: &str, subject: &str) -> String {
    row(dom, &format!("<td>{subject}</td>"))
}

/// The `data-seq` of every row of the events list: each event is shown once.
fn event_seqs(dom: &str) -> Vec<u64> {
    dom.split("data-seq=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap().parse().unwrap())
        .collect()
}

fn assert_events_once(dom: &str) {
    let seqs = event_seqs(dom);
    assert!(!seqs.is_empty(), "no events listed");
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "an event listed twice: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
}

#[test]
fn a_drill_watched_on_the_status_page() {
    let Some(browser) = Chromium::find(1280, 1500, 3000) else {
        return;
    };
    let (net, port) = (71, free_port());
    let mut eu = Target::http(format!("127.{net}.2.1:{port}").parse().unwrap());
    let mut us = Target::http(format!("127.{net}.1.1:{port}").parse().unwrap());
    let mut ap = Target::http(format!("127.{net}.3.1:{port}").parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), net, port));
    let url = format!("http://{}/#token={READ}", server.admin());
    until(&server, "/api/v1/datacenters", "every probe up", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .all(|d| d["endpoints"][0]["probe"]["verdict"] == "up")
    });

    // Traffic for the chart: a resolver asking for www all through the drill.
    let asking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let resolver = {
        let (asking, addr) = (asking.clone(), server.addr);
        std::thread::spawn(move || {
            while asking.load(std::sync::atomic::Ordering::Relaxed) {
                query(addr, &ask("www.example.test.", T::A));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    until(&server, "/api/v1/traffic", "answers counted for eu", |v| {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["answers_per_second"]["eu"].as_f64() > Some(5.0))
    });

    // 1. All up: clients go to eu first; the weighted name splits 75/25.
    let dom = look(&browser, &url, "01-all-up");
    let w = row(&dom, "data-name=\"www.example.test.\"");
    assert!(w.contains("[now]eu"), "{w}");
    assert!(w.contains("every candidate, as if up (fail open)"), "{w}");
    let shop = row(&dom, "data-name=\"shop.example.test.\"");
    assert!(shop.contains("eu 75% · us 25%"), "{shop}");
    assert!(shop.contains("fallback addresses 192.0.2.250"), "{shop}");
    let ap_ep = row(&dom, "data-endpoint=\"ap/192.0.2.30\"");
    assert!(ap_ep.contains(&format!("probed at 127.{net}.3.1")), "{ap_ep}");
    assert!(ap_ep.contains(" ms"), "last check latency: {ap_ep}");
    assert!(!dom.contains("id=\"guard-banner\""), "{dom}");

    // 2. `ctl explain`: where do clients in 10.20.0.0/16 go, and why? The page's geo rule says
    // the same.
    let explain = ctl(&server, &["explain", "app.example.test", "--client", "10.20.0.1"]);
    assert!(
        explain.contains("NOERROR") && explain.contains(&format!("A 127.{net}.2.1")),
        "{explain}"
    );
    let dom = look(&browser, &url, "02-explain");
    let app = row(&dom, "data-rule=\"net:10.20.0.0/16\"");
    assert!(
        app.contains("clients in net:10.20.0.0/16") && app.contains("[now]eu"),
        "{app}"
    );

    // 3. eu fails its checks: www moves to us, eu-only answers SERVFAIL, and the page says why.
    eu.stop();
    until(&server, "/api/v1/datacenters", "eu down", |v| {
        dc_state(v, "eu") == ("down".into(), "health checks failing".into())
    });
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")]);
    let dom = look(&browser, &url, "03-eu-failed");
    let w = row(&dom, "data-name=\"www.example.test.\"");
    assert!(w.contains("[now]us"), "{w}");
    assert!(w.contains("[down]eu (checks failing)"), "{w}");
    let only = row(&dom, "data-name=\"eu-only.example.test.\"");
    assert!(
        only.contains("[servfail]SERVFAIL for A: every candidate is down"),
        "{only}"
    );
    assert!(only.contains("SERVFAIL (clients get an error)"), "{only}");
    let shop = row(&dom, "data-name=\"shop.example.test.\"");
    assert!(shop.contains("[now]us"), "{shop}");
    let app = row(&dom, "data-rule=\"net:10.20.0.0/16\"");
    assert!(
        app.contains("clients in net:10.20.0.0/16") && app.contains("[now]us"),
        "{app}"
    );
    let d = row(&dom, "data-dc=\"eu\"");
    assert!(
        d.contains("[down]down") && d.contains("[why down]checks failing"),
        "{d}"
    );
    let ep = row(&dom, &format!("data-endpoint=\"eu/127.{net}.2.1\""));
    assert!(ep.contains("checks failing: web"), "which check: {ep}");
    assert!(
        ep.contains("refused") || ep.contains("timed out"),
        "last error: {ep}"
    );
    assert!(dom.contains("Not taking traffic: eu"), "{dom}");
    let e = event(&dom, "datacenter eu");
    assert!(e.contains("up → down") && e.contains("0 endpoints up"), "{e}");

    // 4. `ctl drain us`: www moves to ap; drained is told apart from failing.
    assert_eq!(ctl(&server, &["drain", "us"]).trim(), "us: auto -> drained");
    assert_eq!(www(&server), vec!["192.0.2.30"]);
    let status = ctl(&server, &["status"]);
    assert!(status.contains("overrides: us drained"), "{status}");
    assert!(status.contains("us (drained)"), "where clients go: {status}");
    let dom = look(&browser, &url, "04-us-drained");
    let w = row(&dom, "data-name=\"www.example.test.\"");
    assert!(w.contains("[now]ap"), "{w}");
    assert!(
        w.contains("[down]eu (checks failing)") && w.contains("[drained]us (drained)"),
        "{w}"
    );
    let d = row(&dom, "data-dc=\"us\"");
    assert!(
        d.contains("[down]down") && d.contains("[why drained]drained"),
        "{d}"
    );
    let shop = row(&dom, "data-name=\"shop.example.test.\"");
    assert!(shop.contains("[fallback]fallback 192.0.2.250"), "{shop}");
    let e = event(&dom, "override datacenter us");
    assert!(
        e.contains("auto → drained") && e.contains("admin API (ops)"),
        "{e}"
    );

    // 5. `ctl undrain us`: back to its checks, www back on us.
    assert_eq!(ctl(&server, &["undrain", "us"]).trim(), "us: drained -> auto");
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")]);
    let dom = look(&browser, &url, "05-us-undrained");
    assert!(row(&dom, "data-name=\"www.example.test.\"").contains("[now]us"));
    let d = row(&dom, "data-dc=\"us\"");
    assert!(d.contains("[up]up") && d.contains("healthy"), "{d}");
    let e = event(&dom, "override datacenter us");
    assert!(e.contains("drained → auto"), "{e}");

    // 6. `ctl override us/ADDRESS down`: its one endpoint forced down takes us out.
    let us_ep = format!("us/127.{net}.1.1");
    assert_eq!(
        ctl(&server, &["override", &us_ep, "down"]).trim(),
        format!("{us_ep}: auto -> down")
    );
    assert_eq!(www(&server), vec!["192.0.2.30"]);
    let dom = look(&browser, &url, "06-endpoint-forced-down");
    // Why us is out: its endpoint was forced down, not its checks failing.
    let w = row(&dom, "data-name=\"www.example.test.\"");
    assert!(
        w.contains("[now]ap") && w.contains("[forced]us (endpoints forced down)"),
        "{w}"
    );
    let d = row(&dom, "data-dc=\"us\"");
    assert!(
        d.contains("[down]down") && d.contains("[why forced]endpoints forced down"),
        "{d}"
    );
    let ep = row(&dom, &format!("data-endpoint=\"{us_ep}\""));
    assert!(
        ep.contains("[down]down") && ep.contains("[why forced]forced down"),
        "{ep}"
    );
    let e = event(&dom, &format!("override endpoint {us_ep}"));
    assert!(e.contains("auto → down"), "{e}");

    // 7. `ctl override us/ADDRESS auto`: back to its checks.
    ctl(&server, &["override", &us_ep, "auto"]);
    assert_eq!(www(&server), vec![format!("127.{net}.1.1")]);
    let dom = look(&browser, &url, "07-endpoint-auto");
    assert!(row(&dom, "data-name=\"www.example.test.\"").contains("[now]us"));
    let ep = row(&dom, &format!("data-endpoint=\"{us_ep}\""));
    assert!(ep.contains("[up]up"), "{ep}");
    assert!(event(&dom, &format!("override endpoint {us_ep}")).contains("down → auto"));

    // 8. `ctl weight us 5`, then back to the configured weights.
    assert_eq!(
        ctl(&server, &["weight", "us", "5"]).trim(),
        "us: weight 5 in every name"
    );
    let dom = look(&browser, &url, "08-weight");
    let d = row(&dom, "data-dc=\"us\"");
    assert!(d.contains("weight 5"), "{d}");
    let e = event(&dom, "weight datacenter us");
    assert!(e.contains("configured → 5"), "{e}");
    assert_eq!(
        ctl(&server, &["weight", "us", "auto"]).trim(),
        "us: configured weights"
    );
    let dom = look(&browser, &url, "09-weight-auto");
    assert!(!row(&dom, "data-dc=\"us\"").contains("weight 5"));
    assert!(event(&dom, "weight datacenter us").contains("5 → configured"));

    // 9. `ctl zone get` (--json: the ETag in the document), edit, `ctl zone put`: shop's
    // fallback changes on the page.
    let zone = ctl(&server, &["--json", "zone", "get", "example.test"]);
    assert!(zone.contains("\"etag\""), "{zone}");
    let file = dir.path().join("zone.json");
    std::fs::write(&file, zone.replace("192.0.2.250", "192.0.2.251")).unwrap();
    let put = ctl(&server, &["zone", "put", "example.test", file.to_str().unwrap()]);
    assert!(put.contains("example.test: written, SOA serial"), "{put}");
    let dom = look(&browser, &url, "10-zone-edited");
    let shop = row(&dom, "data-name=\"shop.example.test.\"");
    assert!(shop.contains("fallback addresses 192.0.2.251"), "{shop}");
    assert!(event(&dom, "zone example.test").contains("admin API (ops)"));

    // 10. `ctl reload`: nothing changed on disk, and the page says so.
    assert!(ctl(&server, &["reload"]).starts_with("reloaded: snapshot generation "));
    let dom = look(&browser, &url, "11-reloaded");
    let e = event(&dom, "reload");
    assert!(e.contains("applied") && e.contains("nothing changed"), "{e}");

    // 11. us drained again, then every probe fails at once: the guard engages and holds ap; a
    // banner says so.
    assert_eq!(ctl(&server, &["drain", "us"]).trim(), "us: auto -> drained");
    us.stop();
    ap.stop();
    until(&server, "/api/v1/status", "the guard", |v| {
        v["partition_guard"] == "engaged"
    });
    let dom = look(&browser, &url, "12-guard-engaged");
    let banner = text(&dom, "<div", "id=\"guard-banner\"");
    assert!(banner.contains("PARTITION GUARD ENGAGED"), "{banner}");
    assert!(
        row(&dom, "data-name=\"www.example.test.\"").contains("[now]ap"),
        "the guard held ap"
    );
    let ap_ep = row(&dom, "data-endpoint=\"ap/192.0.2.30\"");
    assert!(
        ap_ep.contains("[up]up") && ap_ep.contains("held up by the partition guard"),
        "{ap_ep}"
    );
    assert!(event(&dom, "partition-guard").contains("clear → engaged"));

    // The chart: a line per data center; traffic moved from eu to us to ap, and the moves are
    // marked where they happened.
    until(&server, "/api/v1/traffic", "answers counted for ap", |v| {
        let last = &v["points"].as_array().unwrap().last().unwrap()["answers_per_second"];
        last["ap"].as_f64() > Some(5.0) && last["eu"].as_f64() == Some(0.0)
    });
    let dom = look(&browser, &url, "13-chart");
    let svg = text(&dom, "<svg", "id=\"traffic\"");
    for dc in ["eu", "us", "ap"] {
        assert!(
            dom.contains(&format!("<polyline data-series=\"{dc}\"")),
            "{dc}: {svg}"
        );
    }
    assert!(svg.contains("[legend]ap "), "{svg}");
    assert!(
        svg.contains("datacenter eu: down") && svg.contains("datacenter us: drained"),
        "transitions marked: {svg}"
    );
    asking.store(false, std::sync::atomic::Ordering::Relaxed);
    resolver.join().unwrap();
    // Every event of the drill once, however the page's refreshes fell.
    assert_events_once(&dom);

    // Events: a filter by kind, from the page's address too.
    let guard_event = row(&dom, "data-kind=\"health\"");
    assert!(
        guard_event.contains("partition-guard") && guard_event.contains("clear → engaged"),
        "{guard_event}"
    );
    let dom = browser.dom(&format!("{url}&events=overrides"));
    let first = row(&dom, "data-kind=");
    assert!(
        first.contains("override datacenter us") && first.contains("auto → drained"),
        "{first}"
    );
    assert!(!dom.contains("data-kind=\"health\""), "only overrides are shown");

    // Without a token, or with a wrong one, the page says how to give one.
    let bare = format!("http://{}/", server.admin());
    let dom = look(&browser, &bare, "14-no-token");
    assert!(
        dom.contains("This page needs a token") && dom.contains("#token=YOUR_TOKEN"),
        "{dom}"
    );
    let wrong = format!("http://{}/#token=not-a-token-0123456789", server.admin());
    let dom = browser.dom(&wrong);
    assert!(
        dom.contains("The token in this page's address was refused") && dom.contains("#token=YOUR_TOKEN"),
        "{dom}"
    );
    drop((eu, us, ap));
}

/// `GET /events?after=` lists only newer events (the page polls with it), `kind=` one kind, and
/// bad values are refused naming the parameter.
#[test]
fn events_are_listed_after_a_number_and_by_kind() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let get = |path: &str| {
        let (status, _, body) = http(server.admin(), "GET", path, &[("Authorization", ADMIN)], None);
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    for dc in ["eu", "us"] {
        let path = format!("/api/v1/datacenters/{dc}/drain");
        let (status, _, body) = http(server.admin(), "POST", &path, &[("Authorization", ADMIN)], None);
        assert_eq!(status, 200, "{body}");
    }
    let (_, all) = get("/api/v1/events");
    let all = all.as_array().unwrap().clone();
    let drains: Vec<&serde_json::Value> = all.iter().filter(|e| e["kind"] == "overrides").collect();
    assert_eq!(drains.len(), 2, "{all:?}");
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    let (_, newer) = get(&format!("/api/v1/events?after={}", drains[0]["seq"]));
    let newer = newer.as_array().unwrap();
    assert_eq!(newer.len(), 1, "{newer:?}");
    assert_eq!(newer[0]["subject"], "override datacenter us");
    let (_, none) = get(&format!("/api/v1/events?after={}", drains[1]["seq"]));
    assert_eq!(none, serde_json::json!([]));
    let (_, overrides) = get("/api/v1/events?kind=overrides");
    assert_eq!(overrides.as_array().unwrap().len(), 2, "{overrides}");
    let (_, edits) = get("/api/v1/events?kind=edits");
    assert_eq!(edits, serde_json::json!([]));

    for (query, field) in [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("kind=zones", "kind"),
    ] {
        let (status, body) = get(&format!("/api/v1/events?{query}"));
        assert_eq!(
            (status, &body["field"]),
            (400, &serde_json::json!(field)),
            "{query}: {body}"
        );
    }
}
