//! The admin router, request by request (`oneshot`): every route, its status codes and error
//! bodies, and authentication.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use meridian::admin::{openapi, router};
use meridian::control::Control;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN: &str = "admin-secret-0123456789";
const READ: &str = "read-only-secret-0123456789";

struct Api {
    ctl: Arc<Control>,
    _dir: tempfile::TempDir,
}

async fn api_with(tokens: bool) -> Api {
    let dir = common::fixture("admin");
    if !tokens {
        let p = dir.path().join("meridian.yaml");
        let text = std::fs::read_to_string(&p).unwrap();
        let cut = text.replace(
            "  tokens:\n    - { name: ops, role: admin, token_file: secrets/admin.token }\n    - { name: viewer, role: read, token_file: secrets/read.token }\n",
            "",
        );
        std::fs::write(&p, cut).unwrap();
    }
    let config = meridian::config::load(&dir.path().join("meridian.yaml")).unwrap();
    let ctl = Control::new(config, &tokio_util::sync::CancellationToken::new()).unwrap();
    ctl.start(Some(std::time::Duration::from_millis(100))).await;
    Api { ctl, _dir: dir }
}

async fn api() -> Api {
    api_with(true).await
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(m) = if_match {
            req = req.header(header::IF_MATCH, m);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = router(self.ctl.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value, etag)
    }
    async fn get(&self, path: &str) -> (StatusCode, Value, Option<String>) {
        self.call("GET", path, Some(READ), None, None).await
    }
}

#[tokio::test]
async fn health_endpoints_and_status() {
    let a = api().await;
    assert_eq!(
        a.call("GET", "/healthz", None, None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        a.call("GET", "/readyz", None, None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    a.ctl.set_ready(true);
    assert_eq!(a.call("GET", "/readyz", None, None, None).await.0, StatusCode::OK);
    let (s, v, _) = a.get("/api/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["zones"], json!(["example.test."]));
    assert_eq!(v["partition_guard"], "clear");
    let (s, v, _) = a.call("GET", "/nope", Some(READ), None, None).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap().contains("no such route")),
        (StatusCode::NOT_FOUND, true)
    );
}

#[tokio::test]
async fn authentication_and_roles() {
    let a = api().await;
    // (method, path, token, expected)
    let cases = [
        ("GET", "/api/v1/datacenters", None, StatusCode::UNAUTHORIZED),
        (
            "GET",
            "/api/v1/datacenters",
            Some("wrong-token-0123456789"),
            StatusCode::UNAUTHORIZED,
        ),
        ("GET", "/api/v1/datacenters", Some(READ), StatusCode::OK),
        ("GET", "/api/v1/datacenters", Some(ADMIN), StatusCode::OK),
        (
            "POST",
            "/api/v1/datacenters/eu/drain",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "POST",
            "/api/v1/datacenters/eu/drain",
            Some(READ),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/datacenters/eu/drain",
            Some(ADMIN),
            StatusCode::OK,
        ),
        ("GET", "/metrics", None, StatusCode::UNAUTHORIZED),
        ("GET", "/healthz", None, StatusCode::OK),
    ];
    for (m, p, t, want) in cases {
        let (s, v, _) = a.call(m, p, t, None, None).await;
        assert_eq!(s, want, "{m} {p} with {t:?}: {v}");
        if !s.is_success() {
            assert!(v["error"].is_string(), "errors are JSON with a message: {v}");
        }
    }
    let (_, v, _) = a
        .call("POST", "/api/v1/datacenters/eu/drain", Some(READ), None, None)
        .await;
    assert!(v["error"].as_str().unwrap().contains("read-only"));
}

#[tokio::test]
async fn without_tokens_reads_are_open_and_writes_say_how_to_configure() {
    let a = api_with(false).await;
    assert_eq!(
        a.call("GET", "/api/v1/datacenters", None, None, None).await.0,
        StatusCode::OK
    );
    let (s, v, _) = a
        .call("POST", "/api/v1/datacenters/eu/drain", None, None, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["error"].as_str().unwrap().contains("admin.tokens"), "{v}");
}

#[tokio::test]
async fn overrides_and_their_errors() {
    let a = api().await;
    let post = |p: &'static str| (p, "POST", None::<Value>);
    for (path, method, body) in [
        post("/api/v1/datacenters/eu/drain"),
        post("/api/v1/datacenters/eu/undrain"),
        (
            "/api/v1/datacenters/eu/override",
            "PUT",
            Some(json!({ "state": "down" })),
        ),
        (
            "/api/v1/datacenters/eu/override",
            "PUT",
            Some(json!({ "state": "auto" })),
        ),
        (
            "/api/v1/datacenters/eu/weight",
            "PUT",
            Some(json!({ "weight": 5 })),
        ),
        (
            "/api/v1/datacenters/eu/weight",
            "PUT",
            Some(json!({ "weight": null })),
        ),
        post("/api/v1/endpoints/eu/198.51.100.10/drain"),
        post("/api/v1/endpoints/eu/198.51.100.10/undrain"),
        (
            "/api/v1/endpoints/eu/198.51.100.10/override",
            "PUT",
            Some(json!({ "state": "up" })),
        ),
    ] {
        let (s, v, _) = a.call(method, path, Some(ADMIN), body, None).await;
        assert_eq!(s, StatusCode::OK, "{method} {path}: {v}");
    }
    // (method, path, body, status, field)
    let errors = [
        (
            "POST",
            "/api/v1/datacenters/mars/drain",
            None,
            StatusCode::NOT_FOUND,
            "dc",
        ),
        (
            "GET",
            "/api/v1/datacenters/mars",
            None,
            StatusCode::NOT_FOUND,
            "dc",
        ),
        (
            "POST",
            "/api/v1/endpoints/eu/10.9.9.9/drain",
            None,
            StatusCode::NOT_FOUND,
            "address",
        ),
        (
            "PUT",
            "/api/v1/datacenters/eu/override",
            Some(json!({ "state": "sideways" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "state",
        ),
        (
            "PUT",
            "/api/v1/datacenters/eu/override",
            Some(json!({ "nope": 1 })),
            StatusCode::BAD_REQUEST,
            "state",
        ),
        (
            "PUT",
            "/api/v1/datacenters/eu/weight",
            Some(json!({ "weight": 0 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weight",
        ),
    ];
    for (m, p, b, want, field) in errors {
        let (s, v, _) = a.call(m, p, Some(ADMIN), b, None).await;
        assert_eq!((s, v["field"].as_str()), (want, Some(field)), "{m} {p}: {v}");
    }
    // The endpoint override shows; events record every change.
    let (_, v, _) = a.get("/api/v1/datacenters/eu").await;
    assert_eq!(v["endpoints"][0]["override"], "up");
    let (_, events, _) = a.get("/api/v1/events").await;
    let subjects: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert!(
        subjects.contains(&"override datacenter eu") && subjects.contains(&"weight datacenter eu"),
        "{subjects:?}"
    );
    // Persisted.
    let saved = std::fs::read_to_string(a._dir.path().join("state/overrides.json")).unwrap();
    assert!(saved.contains("eu/198.51.100.10"), "{saved}");
}

#[tokio::test]
async fn gslb_view_shows_where_rules_send_clients() {
    let a = api().await;
    a.call("POST", "/api/v1/datacenters/eu/drain", Some(ADMIN), None, None)
        .await;
    let (s, v, _) = a.get("/api/v1/gslb").await;
    assert_eq!(s, StatusCode::OK);
    let www = &v[0];
    assert_eq!(www["name"], "www.example.test.");
    assert_eq!(www["rules"][0]["now"], "us");
    assert_eq!(
        www["rules"][0]["passed_over"][0],
        json!({ "datacenter": "eu", "why": "drained" })
    );
    // What select itself answers: us's address, with the degraded TTL (a candidate is down);
    // no data center has IPv6 endpoints, so AAAA is NODATA.
    assert_eq!(
        www["rules"][0]["answers"]["A"],
        json!({ "outcome": "addresses", "datacenters": ["us"], "addresses": ["192.0.2.10"], "ttl": 30 })
    );
    assert_eq!(www["rules"][0]["answers"]["AAAA"]["outcome"], "nodata");
    // Both down: the name's when_all_down (fail open by default) decides, in the view too.
    a.call("POST", "/api/v1/datacenters/us/drain", Some(ADMIN), None, None)
        .await;
    let (_, v, _) = a.get("/api/v1/gslb").await;
    assert_eq!(v[0]["rules"][0]["now"], json!(null));
    assert_eq!(v[0]["rules"][0]["answers"]["A"]["datacenters"], json!(["eu"]));
}

#[tokio::test]
async fn zone_editing() {
    let a = api().await;
    let file = a._dir.path().join("zones/example.test.yaml");
    let (s, zone, etag) = a.get("/api/v1/zones/example.test").await;
    assert_eq!(s, StatusCode::OK);
    let etag = etag.expect("ETag");
    assert_eq!(zone["soa"]["serial"], 10);
    let (s, list, _) = a.get("/api/v1/zones").await;
    assert_eq!(
        (s, list[0]["etag"].as_str()),
        (StatusCode::OK, Some(etag.as_str()))
    );

    // Invalid: 422 with the field, and the file untouched.
    let before = std::fs::read(&file).unwrap();
    let mut bad = zone.clone();
    bad["gslb"]["www"]["policy"] = json!("roundrobin");
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test",
            Some(ADMIN),
            Some(bad),
            Some(&etag),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("gslb.www.policy")),
        "{v}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Valid: applied, serial raised, new ETag.
    let mut good = zone.clone();
    good["records"]["new"] = json!({ "A": ["192.0.2.99"] });
    let (s, v, new_etag) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test",
            Some(ADMIN),
            Some(good.clone()),
            Some(&etag),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["serial"], 11);
    let new_etag = new_etag.unwrap();
    assert_ne!(new_etag, etag);
    // Stale If-Match: 412, nothing changes.
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test",
            Some(ADMIN),
            Some(good),
            Some(&etag),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("If-Match"))
    );

    // Per-name: records and gslb.
    let (s, v, _) = a.get("/api/v1/zones/example.test/records/new").await;
    assert_eq!((s, v.clone()), (StatusCode::OK, json!({ "A": ["192.0.2.99"] })));
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test/records/mail",
            Some(ADMIN),
            Some(json!({ "A": ["192.0.2.25"], "ttl": 60 })),
            None,
        )
        .await;
    assert_eq!((s, v["serial"].as_u64()), (StatusCode::CREATED, Some(12)), "{v}");
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test/records/mail",
            Some(ADMIN),
            Some(json!({ "A": ["300.1.1.1"] })),
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("records.mail.A")),
        "{v}"
    );
    let (s, _, _) = a
        .call(
            "DELETE",
            "/api/v1/zones/example.test/records/mail",
            Some(ADMIN),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        a.get("/api/v1/zones/example.test/records/mail").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test/gslb/api",
            Some(ADMIN),
            Some(json!({ "policy": "weighted", "datacenters": ["eu", "us"], "sticky": true })),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        a.get("/api/v1/zones/example.test/gslb/api").await.1["policy"],
        "weighted"
    );
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test/gslb/api",
            Some(ADMIN),
            Some(json!({ "policy": "weighted", "datacenters": ["mars"] })),
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("gslb.api.datacenters")),
        "{v}"
    );
    assert_eq!(
        a.call(
            "DELETE",
            "/api/v1/zones/example.test/gslb/api",
            Some(ADMIN),
            None,
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        a.call(
            "DELETE",
            "/api/v1/zones/example.test/gslb/api",
            Some(ADMIN),
            None,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.get("/api/v1/zones/nope.test").await.0, StatusCode::NOT_FOUND);

    // A new zone, then its deletion.
    let new_zone = json!({ "soa": { "mname": "ns1.other.test.", "rname": "h.other.test." }, "ns": ["ns1.other.test."], "records": { "ns1": { "A": ["192.0.2.2"] } } });
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/other.test",
            Some(ADMIN),
            Some(new_zone),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(a._dir.path().join("zones/other.test.yaml").exists());
    assert_eq!(
        a.call("DELETE", "/api/v1/zones/other.test", Some(ADMIN), None, Some("*"))
            .await
            .0,
        StatusCode::OK
    );
    assert!(!a._dir.path().join("zones/other.test.yaml").exists());
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/example.test",
            Some(ADMIN),
            Some(json!({ "zone": "other.test" })),
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("zone"))
    );
}

#[tokio::test]
async fn explain_events_reload_metrics_openapi() {
    let a = api().await;
    let (s, v, _) = a
        .get("/api/v1/explain?name=www.example.test&type=A&client=198.51.100.7/24")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["answer"][0].as_str().unwrap().split(' ').next(),
        Some("www.example.test.")
    );
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("policy failover"))
    );
    let (s, v, _) = a.get("/api/v1/explain?type=A&client=1.2.3.4").await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")));
    let (s, v, _) = a
        .get("/api/v1/explain?name=www.example.test&client=1.2.3.4/40")
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("client"))
    );
    assert_eq!(
        a.call("POST", "/api/v1/reload", Some(ADMIN), None, None).await.0,
        StatusCode::OK
    );
    let (s, v, _) = a.get("/api/v1/events").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.is_array());
    let (s, m, _) = a.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let m = m.as_str().unwrap();
    for want in [
        "meridian_reloads_total 1",
        "meridian_datacenter_up{datacenter=\"eu\"} 1",
        "meridian_endpoint_up{",
        "meridian_overrides_active 0",
        "meridian_partition_guard_alarms_total 0",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
    // The OpenAPI document (generated with the router from the same handlers) names only
    // routes that exist: every operation it lists is routed.
    let doc = openapi::build();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations += 1;
            let concrete = path
                .replace("{dc}", "eu")
                .replace("{address}", "198.51.100.10")
                .replace("{zone}", "example.test")
                .replace("{name}", "static");
            let (s, v, _) = a
                .call(&method.to_uppercase(), &concrete, Some(ADMIN), None, None)
                .await;
            let routed = !(s == StatusCode::METHOD_NOT_ALLOWED
                || (s == StatusCode::NOT_FOUND
                    && v["error"].as_str().is_some_and(|e| e.contains("no such route"))));
            assert!(routed, "{method} {path} is documented but not routed ({s})");
        }
    }
    assert_eq!(operations, 30, "every route is documented");
    let (s, page, _) = a.call("GET", "/", None, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("<h1>Meridian"));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let a = api().await;
    let big = json!({ "records": { "x": { "TXT": ["a".repeat(2 << 20)] } } });
    let (s, _v, _) = a
        .call("PUT", "/api/v1/zones/example.test", Some(ADMIN), Some(big), None)
        .await;
    assert_eq!(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body over the limit is refused: {_v}"
    );
}

/// Found by Schemathesis: `follow=yes` (or any other typo) answered the list with 200 where a
/// stream was asked for; only the four spellings the document names are taken.
#[tokio::test]
async fn events_follow_refuses_unknown_values() {
    let a = api().await;
    for bad in ["yes", "AAA", "2", ""] {
        let (s, v, _) = a.get(&format!("/api/v1/events?follow={bad}")).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("follow")),
            "follow={bad}: {v}"
        );
    }
    for ok in ["0", "false"] {
        let (s, v, _) = a.get(&format!("/api/v1/events?follow={ok}")).await;
        assert_eq!(s, StatusCode::OK, "follow={ok}: {v}");
        assert!(v.is_array());
    }
}

#[tokio::test]
async fn events_follow_streams_transitions() {
    let a = api().await;
    let req = Request::builder()
        .uri("/api/v1/events?follow=1")
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(a.ctl.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    a.call("POST", "/api/v1/datacenters/us/drain", Some(ADMIN), None, None)
        .await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !text.contains("\n\n") {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("an event within 5 s");
        if let Some(Ok(f)) = frame
            && let Ok(data) = f.into_data()
        {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    // The event's `seq` is its SSE id (a reconnecting reader sends it back as Last-Event-ID).
    assert!(text.starts_with("event: transition\nid: "), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect(&text);
    let event: Value = serde_json::from_str(data).unwrap();
    assert!(text.contains(&format!("\nid: {}\n", event["seq"])), "{text}");
    assert!(
        text.contains("\"subject\":\"override datacenter us\"") && text.contains("\"new\":\"drained\""),
        "{text}"
    );
}

/// The fixture with `edit` applied to its meridian.yaml.
async fn api_edited(edit: impl Fn(String) -> String) -> Api {
    let dir = common::fixture("admin");
    let p = dir.path().join("meridian.yaml");
    std::fs::write(&p, edit(std::fs::read_to_string(&p).unwrap())).unwrap();
    let config = meridian::config::load(&p).unwrap();
    let ctl = Control::new(config, &tokio_util::sync::CancellationToken::new()).unwrap();
    ctl.start(Some(std::time::Duration::from_millis(100))).await;
    Api { ctl, _dir: dir }
}

fn without_tokens(text: String) -> String {
    text.replace(
        "  tokens:\n    - { name: ops, role: admin, token_file: secrets/admin.token }\n    - { name: viewer, role: read, token_file: secrets/read.token }\n",
        "",
    )
}

impl Api {
    /// Sends a request with exactly these headers and this raw body.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router(self.ctl.clone())
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }
}

#[tokio::test]
async fn the_token_is_checked_before_the_body() {
    let a = api().await;
    let big = format!("{{\"A\": [\"{}\"]}}", "1".repeat(2 << 20));
    let json = ("Content-Type", "application/json");
    let read = format!("Bearer {READ}");
    // (path, headers, body): each body is bad in its own way (syntax, type, size).
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let bodies: [Case; 4] = [
        ("/api/v1/zones/example.test/records/x", vec![json], "{not json"),
        (
            "/api/v1/zones/example.test/records/x",
            vec![("Content-Type", "text/plain")],
            "{}",
        ),
        ("/api/v1/zones/example.test/records/x", vec![json], &big),
        ("/api/v1/datacenters/eu/override", vec![json], "{not json"),
    ];
    for (path, headers, body) in &bodies {
        let (s, v) = a.raw("PUT", path, headers, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "PUT {path} without a token: {v}");
        assert!(v["error"].is_string(), "{v}");
        let mut with_read = headers.clone();
        with_read.push(("Authorization", &read));
        let (s, v) = a.raw("PUT", path, &with_read, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "PUT {path} with a read token: {v}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let a = api().await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {READ}");
        let (s, v) = a
            .raw("GET", "/api/v1/datacenters", &[("Authorization", &auth)], "")
            .await;
        assert_eq!(s, StatusCode::OK, "{scheme}: {v}");
    }
    let auth = format!("Basic {READ}");
    let (s, _) = a
        .raw("GET", "/api/v1/datacenters", &[("Authorization", &auth)], "")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn endpoint_addresses_are_parsed_as_ips() {
    let a = api_edited(|t| {
        t.replace(
            "{ address: 192.0.2.10 }",
            "{ address: 192.0.2.10 }, { address: \"2001:db8::1\" }",
        )
    })
    .await;
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/endpoints/us/2001:DB8::0:1/override",
            Some(ADMIN),
            Some(json!({ "state": "down" })),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["subject"], "us/2001:db8::1");
    let (_, us, _) = a.get("/api/v1/datacenters/us").await;
    let ep = us["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "2001:db8::1")
        .unwrap();
    assert_eq!(ep["override"], "down", "{us}");
    // Another spelling of the same address drains the same endpoint.
    let (s, v, _) = a
        .call(
            "POST",
            "/api/v1/endpoints/us/2001:0db8:0:0::1/drain",
            Some(ADMIN),
            None,
            None,
        )
        .await;
    assert_eq!((s, v["old"].as_str()), (StatusCode::OK, Some("down")), "{v}");
    for bad in ["not-an-ip", "192.0.2.010", "2001:db8::g", "192.0.2.10%2F24"] {
        let (s, v, _) = a
            .call(
                "POST",
                &format!("/api/v1/endpoints/us/{bad}/drain"),
                Some(ADMIN),
                None,
                None,
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("address")),
            "{bad}: {v}"
        );
    }
}

#[tokio::test]
async fn weight_without_a_weight_is_refused_not_a_reset() {
    let a = api().await;
    let put = |body: Value| {
        a.call(
            "PUT",
            "/api/v1/datacenters/eu/weight",
            Some(ADMIN),
            Some(body),
            None,
        )
    };
    assert_eq!(put(json!({ "weight": 7 })).await.0, StatusCode::OK);
    let (s, v, _) = put(json!({})).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weight")),
        "{v}"
    );
    let (_, eu, _) = a.get("/api/v1/datacenters/eu").await;
    assert_eq!(eu["weight_override"], 7, "the refused body changed nothing: {eu}");
    let (s, v, _) = put(json!({ "weight": "heavy" })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weight")),
        "{v}"
    );
    assert_eq!(put(json!({ "weight": null })).await.0, StatusCode::OK);
    let (_, eu, _) = a.get("/api/v1/datacenters/eu").await;
    assert!(eu["weight_override"].is_null(), "{eu}");
}

#[tokio::test]
async fn duplicate_keys_after_case_folding_are_refused() {
    let a = api().await;
    let file = a._dir.path().join("zones/example.test.yaml");
    let before = std::fs::read(&file).unwrap();
    let admin = format!("Bearer {ADMIN}");
    let hdrs = [
        ("Authorization", admin.as_str()),
        ("Content-Type", "application/json"),
    ];
    for (path, body, field) in [
        (
            "/api/v1/zones/example.test/records/dup",
            r#"{"A": ["192.0.2.1"], "a": ["192.0.2.2"]}"#,
            "a",
        ),
        (
            "/api/v1/zones/example.test/records/dup",
            r#"{"TXT": ["x"], "TXT": ["y"]}"#,
            "TXT",
        ),
        (
            "/api/v1/datacenters/eu/override",
            r#"{"state": "up", "state": "down"}"#,
            "state",
        ),
    ] {
        let (s, v) = a.raw("PUT", path, &hdrs, body).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
        assert!(v["error"].as_str().unwrap().contains("duplicate key"), "{v}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing was written");
}

#[tokio::test]
async fn every_422_names_a_field() {
    let a = api().await;
    // A zone without NS records: the problem concerns no path, but the key to add.
    let (s, v, _) = a
        .call(
            "PUT",
            "/api/v1/zones/other.test",
            Some(ADMIN),
            Some(json!({ "soa": { "mname": "ns1.other.test.", "rname": "h.other.test." } })),
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ns")),
        "{v}"
    );
    // A reload of a broken file: a problem about no single field.
    let zone = a._dir.path().join("zones/example.test.yaml");
    let text = std::fs::read_to_string(&zone).unwrap();
    let broken = text.replace(
        "static: { A: [192.0.2.80] }",
        "static: { A: [192.0.2.80], CNAME: ns1.example.test. }",
    );
    assert_ne!(broken, text);
    std::fs::write(&zone, broken).unwrap();
    let (s, v, _) = a.call("POST", "/api/v1/reload", Some(ADMIN), None, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["field"].is_string(), "422 without a field: {v}");
    // And axum's own refusals speak JSON too.
    let (s, v) = a.raw("DELETE", "/api/v1/datacenters", &[], "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(v["error"].is_string(), "{v}");
}

#[tokio::test]
async fn without_tokens_only_loopback_and_listed_hosts_are_served() {
    let a = api_edited(|t| {
        without_tokens(t).replace(
            "  listen: \"127.0.0.1:0\"\n",
            "  listen: \"127.0.0.1:0\"\n  allowed_hosts: [meridian.internal]\n",
        )
    })
    .await;
    for host in [
        "localhost:8053",
        "app.localhost",
        "127.0.0.1:8053",
        "[::1]:8053",
        "meridian.internal:8053",
    ] {
        let (s, v) = a
            .raw("GET", "/api/v1/zones/example.test", &[("Host", host)], "")
            .await;
        assert_eq!(s, StatusCode::OK, "{host}: {v}");
    }
    for (path, host) in [
        ("/api/v1/zones/example.test", "evil.example:8053"),
        ("/api/v1/status", "127.0.0.1.evil.example"),
        ("/metrics", "rebind.example"),
        ("/", "rebind.example"),
    ] {
        let (s, v) = a.raw("GET", path, &[("Host", host)], "").await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::MISDIRECTED_REQUEST, Some("Host")),
            "{path} for {host}: {v}"
        );
        assert!(
            v["error"].as_str().unwrap().contains("admin.allowed_hosts"),
            "{v}"
        );
    }
    // With tokens, a page without the token reads nothing anyway: any name is served.
    let a = api().await;
    let auth = format!("Bearer {READ}");
    let (s, _) = a
        .raw(
            "GET",
            "/api/v1/status",
            &[("Host", "meridian.example.net"), ("Authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn metrics_label_values_are_escaped() {
    let a = api().await;
    a.ctl
        .metrics()
        .zone("we\"ird\\zone\nname.")
        .count(meridian::model::RType::A, meridian::model::Rcode::NoError);
    a.ctl.metrics().datacenter("d\"c").inc();
    let (s, m, _) = a.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let m = m.as_str().unwrap();
    assert!(!m.contains("we\"ird"), "unescaped label value:\n{m}");
    common::promtool_check(m);
}

/// `GET /events?follow=1` on `path` (with `Last-Event-ID` when given): the body, unread.
async fn follow_body(a: &Api, path: &str, last_event_id: Option<u64>) -> Body {
    let mut req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {READ}"));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = router(a.ctl.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body()
}

/// The next `n` server-sent events of a stream (keep-alive comments left out), each as text.
async fn sse_events(body: &mut Body, n: usize) -> Vec<String> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let blocks: Vec<String> = text
            .split("\n\n")
            .filter(|b| b.lines().any(|l| l.starts_with("event:")))
            .map(str::to_string)
            .collect();
        if blocks.len() >= n && text.ends_with("\n\n") {
            return blocks;
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("{n} events within 5 s: {text}"));
        match frame {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            _ => panic!("the stream ended: {text}"),
        }
    }
}

fn sse_id(block: &str) -> u64 {
    block
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap_or_else(|| panic!("no id: {block}"))
        .trim()
        .parse()
        .unwrap()
}

/// With `after=N` (or `Last-Event-ID: N`, as a browser's EventSource sends on reconnecting) a
/// stream first sends the logged events after N, then live ones: none missed, none twice, each
/// with its `seq` as the SSE `id:`.
#[tokio::test]
async fn events_follow_resumes_after_a_number() {
    let a = api().await;
    let ev = a.ctl.events();
    for i in 0..3 {
        ev.emit(format!("zone t{i}.test"), "", "edited", "test");
    }
    let logged = ev.recent();
    let seq = |subject: &str| logged.iter().find(|e| e.subject == subject).unwrap().seq;
    let mut body = follow_body(
        &a,
        &format!("/api/v1/events?follow=1&after={}", seq("zone t0.test")),
        None,
    )
    .await;
    ev.emit("zone t3.test", "", "edited", "test");
    let got = sse_events(&mut body, 3).await;
    assert!(
        got[0].contains("zone t1.test") && sse_id(&got[0]) == seq("zone t1.test"),
        "{got:?}"
    );
    assert!(got[1].contains("zone t2.test"), "{got:?}");
    assert!(
        got[2].contains("zone t3.test") && sse_id(&got[2]) == sse_id(&got[1]) + 1,
        "{got:?}"
    );

    let mut body = follow_body(&a, "/api/v1/events?follow=1", Some(seq("zone t2.test"))).await;
    ev.emit("zone t4.test", "", "edited", "test");
    let got = sse_events(&mut body, 2).await;
    assert!(got[0].contains("zone t3.test"), "{got:?}");
    assert!(got[1].contains("zone t4.test"), "{got:?}");
}

/// A follower too slow for the stream, or resuming after events the log no longer holds, is
/// told how many it missed (`event: skipped`), then gets the rest in order, none twice.
#[tokio::test]
async fn a_follower_is_told_what_it_missed() {
    let a = api().await;
    let ev = a.ctl.events();
    let mut body = follow_body(&a, "/api/v1/events?follow=1", None).await;
    // Not read while 2100 events pass: more than the stream's buffer and the log hold.
    for i in 0..2100 {
        ev.emit(format!("zone t{i}.test"), "", "edited", "test");
    }
    let got = sse_events(&mut body, 1001).await;
    assert!(got[0].starts_with("event: skipped"), "{:?}", &got[..2]);
    assert!(got[0].contains("\"skipped\":1100"), "{}", got[0]);
    let ids: Vec<u64> = got[1..].iter().map(|b| sse_id(b)).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "in order, none twice");
    assert_eq!(*ids.last().unwrap(), ev.recent().last().unwrap().seq);

    // Resuming from a number older than the log's first: the gap is said first.
    let first = ev.recent()[0].seq;
    let mut body = follow_body(&a, &format!("/api/v1/events?follow=1&after={}", first - 3), None).await;
    let got = sse_events(&mut body, 2).await;
    assert!(
        got[0].starts_with("event: skipped") && got[0].contains("\"skipped\":2"),
        "{got:?}"
    );
    assert_eq!(sse_id(&got[1]), first);
}

/// The list says which is the oldest event it still holds (`Meridian-Events-First`) and how
/// many after `after` it dropped (`Meridian-Events-Missed`); a number this run never gave (a
/// poller from before a restart with the clock set back) lists every event held.
#[tokio::test]
async fn the_list_says_where_the_log_begins() {
    let a = api().await;
    let ev = a.ctl.events();
    for i in 0..1005 {
        ev.emit(format!("zone t{i}.test"), "", "edited", "test");
    }
    let first = ev.recent()[0].seq;
    let last = ev.recent().last().unwrap().seq;
    let req = Request::builder()
        .uri(format!("/api/v1/events?after={}", first - 10))
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(a.ctl.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["meridian-events-first"].to_str().unwrap(),
        first.to_string()
    );
    // Asked after first - 10: the five this run dropped are counted (the numbers below the
    // run's first event were never events).
    assert_eq!(resp.headers()["meridian-events-missed"].to_str().unwrap(), "5");
    let req = Request::builder()
        .uri(format!("/api/v1/events?after={}", first - 3))
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(a.ctl.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["meridian-events-missed"].to_str().unwrap(), "2");
    let (_, all, _) = a.get(&format!("/api/v1/events?after={}", last + 1_000_000)).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1000), "every event held");
}

/// The traffic answer carries the server's time (`now`): the page measures its chart and its
/// "ago" times from it, not from the browser's clock.
#[tokio::test]
async fn traffic_says_the_servers_time() {
    let a = api().await;
    let (s, v, _) = a.get("/api/v1/traffic").await;
    assert_eq!(s, StatusCode::OK);
    let now = meridian::events::parse_rfc3339(v["now"].as_str().unwrap_or_default())
        .unwrap_or_else(|| panic!("no now: {v}"));
    let off = std::time::SystemTime::now()
        .duration_since(now)
        .unwrap_or_default();
    assert!(off < std::time::Duration::from_secs(2), "{v}");
}
