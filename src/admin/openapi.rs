//! The OpenAPI 3.1 document served at `/api/openapi.json`, generated from one route table.
//! `tests` requests every route listed here against the real router, so the document cannot
//! name a route that does not exist.

use axum::Json;
use serde_json::{Map, Value, json};

/// (method, path, summary, request body schema name, parameters)
pub const ROUTES: &[(&str, &str, &str)] = &[
    (
        "get",
        "/api/v1/status",
        "Version, snapshot generation, zones, data centers down, probes, partition guard, overrides.",
    ),
    (
        "get",
        "/api/v1/datacenters",
        "Every data center: state, override, weight, endpoints with probe state, since, last result and error.",
    ),
    ("get", "/api/v1/datacenters/{dc}", "One data center."),
    (
        "post",
        "/api/v1/datacenters/{dc}/drain",
        "Take a data center out of every answer (admin). Persisted; an event.",
    ),
    (
        "post",
        "/api/v1/datacenters/{dc}/undrain",
        "Give a data center back to its health checks (admin).",
    ),
    (
        "put",
        "/api/v1/datacenters/{dc}/override",
        "Force a data center up, down, or back to auto: {\"state\": \"up\"|\"down\"|\"auto\"} (admin).",
    ),
    (
        "put",
        "/api/v1/datacenters/{dc}/weight",
        "Set a runtime weight for a data center in every name, or null for the configured ones (admin).",
    ),
    (
        "post",
        "/api/v1/endpoints/{dc}/{address}/drain",
        "Take one endpoint out of answers (admin).",
    ),
    (
        "post",
        "/api/v1/endpoints/{dc}/{address}/undrain",
        "Give an endpoint back to its health check (admin).",
    ),
    (
        "put",
        "/api/v1/endpoints/{dc}/{address}/override",
        "Force an endpoint up, down or auto (admin).",
    ),
    (
        "get",
        "/api/v1/gslb",
        "For every load-balanced name and geo rule: the data center clients are sent to now, and why others are passed over.",
    ),
    ("get", "/api/v1/zones", "The zones, their files and ETags."),
    (
        "get",
        "/api/v1/zones/{zone}",
        "A zone file as JSON, with its ETag.",
    ),
    (
        "put",
        "/api/v1/zones/{zone}",
        "Replace (or create) a zone; If-Match for optimistic concurrency; the SOA serial is raised (admin).",
    ),
    (
        "delete",
        "/api/v1/zones/{zone}",
        "Delete a zone and its file (admin); needs If-Match (428 without it).",
    ),
    (
        "get",
        "/api/v1/zones/{zone}/records/{name}",
        "The static records of one name; records from the zone's import: master file appear under `imported` (read-only).",
    ),
    (
        "put",
        "/api/v1/zones/{zone}/records/{name}",
        "Replace the static records of one name, like {\"A\": [\"192.0.2.1\"], \"ttl\": 60} (admin).",
    ),
    (
        "delete",
        "/api/v1/zones/{zone}/records/{name}",
        "Remove the static records of one name (admin).",
    ),
    (
        "get",
        "/api/v1/zones/{zone}/gslb/{name}",
        "A load-balanced name's definition.",
    ),
    (
        "put",
        "/api/v1/zones/{zone}/gslb/{name}",
        "Replace or create a load-balanced name (admin).",
    ),
    (
        "delete",
        "/api/v1/zones/{zone}/gslb/{name}",
        "Remove a load-balanced name (admin).",
    ),
    (
        "get",
        "/api/v1/explain",
        "The answer a client gets and every step of the decision: ?name=&type=&client=IP[/prefix].",
    ),
    (
        "get",
        "/api/v1/events",
        "Recent transitions; ?follow=1 streams them as server-sent events.",
    ),
    (
        "post",
        "/api/v1/reload",
        "Re-read the configuration and zones from disk (admin).",
    ),
    ("get", "/metrics", "Prometheus metrics."),
    ("get", "/healthz", "Liveness: 200 while the process runs."),
    ("get", "/readyz", "Readiness: 200 once serving DNS, 503 before."),
    ("get", "/api/openapi.json", "This document."),
    ("get", "/", "The status page."),
];

fn params(path: &str) -> Vec<Value> {
    let mut out: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if path == "/api/v1/explain" {
        for (name, required) in [("name", true), ("type", false), ("client", true)] {
            out.push(
                json!({ "name": name, "in": "query", "required": required, "schema": { "type": "string" } }),
            );
        }
    }
    if path == "/api/v1/events" {
        out.push(json!({ "name": "follow", "in": "query", "required": false, "schema": { "type": "string", "enum": ["1"] } }));
    }
    out
}

/// The document.
pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary) in ROUTES {
        let write = matches!(*method, "post" | "put" | "delete");
        let mut op = json!({
            "summary": summary,
            "parameters": params(path),
            "responses": {
                "200": { "description": "OK" },
                "400": { "description": "Bad request", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "401": { "description": "Missing or invalid token", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "404": { "description": "Not found", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "421": { "description": "With no tokens configured: a Host that is not loopback, an IP address or in admin.allowed_hosts", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        if write {
            op["responses"]["403"] = json!({ "description": "Needs an admin token", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            op["responses"]["422"] = json!({ "description": "Invalid: nothing changed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        }
        if *path == "/api/v1/events" {
            op["responses"]["503"] = json!({ "description": "follow=1 while half of admin.max_connections are event streams already", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        }
        if write && path.starts_with("/api/v1/zones/") {
            if *method == "delete" {
                op["parameters"].as_array_mut().expect("array").push(
                    json!({ "name": "If-Match", "in": "header", "required": !path.contains("{name}"), "schema": { "type": "string" } }),
                );
                op["responses"]["412"] = json!({ "description": "The zone changed since it was read", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            }
            if !path.contains("{name}") && *method == "delete" {
                op["responses"]["428"] = json!({ "description": "Deleting a whole zone needs If-Match", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            }
            if path.contains("/records/") {
                op["responses"]["409"] = json!({ "description": "The name's records come from the zone's import: master file (read-only)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            }
        }
        if *method == "put" {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } });
            op["responses"]["413"] = json!({ "description": "Body over 1 MiB", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            op["responses"]["415"] = json!({ "description": "Body not sent as application/json", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            if path.contains("/zones/") {
                op["parameters"].as_array_mut().expect("array").push(
                    json!({ "name": "If-Match", "in": "header", "required": false, "schema": { "type": "string" } }),
                );
                op["responses"]["412"] = json!({ "description": "The zone changed since it was read", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
            }
        }
        paths.entry(path.to_string()).or_insert_with(|| json!({}))[method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Meridian admin API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": { "type": "string" },
                        "field": { "type": ["string", "null"] },
                        "problems": { "type": "array", "items": { "type": "object" } },
                    },
                },
            },
        },
        "security": [{ "bearer": [] }],
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
