//! The OpenAPI 3.1 document served at `/api/openapi.json`, generated with utoipa from the
//! handlers' `#[utoipa::path]` attributes and the types they answer with. Routes are registered
//! through `utoipa_axum::routes!` (see [`super::routes`]), which adds a handler to the router
//! and its operation to the document in one step, so no route can be undocumented.
//!
//! What is said once here instead of on every handler:
//! - the extractors' answers: [`ReadAccess`] 401, [`AdminAccess`] 401 and 403, [`JsonBody`]
//!   400, 413 and 415 (their `IntoResponses` impls; a handler lists the extractors it takes);
//! - the security requirement, read off those answers: 403 documented means an admin token,
//!   401 a read token, neither `security: []`;
//! - 421, from the Host check on every route while no tokens are configured.

use super::auth::{AdminAccess, ReadAccess};
use super::body::JsonBody;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::response::Response;
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// A utoipa value written as the JSON it serializes to (leaf schemas and error answers read
/// better so than through builders).
fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid OpenAPI object")
}

/// An answer with the API's error body.
fn error(description: &str) -> RefOr<Response> {
    from_json(json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    }))
}

fn answers(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter().map(|(s, d)| (s.to_string(), error(d))).collect()
}

impl IntoResponses for ReadAccess {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[(401, "Tokens are configured and none (or an unknown one) was sent")])
    }
}

impl IntoResponses for AdminAccess {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[
            (401, "Tokens are configured and none (or an unknown one) was sent"),
            (
                403,
                "Needs an admin token (a read token was sent, or no tokens are configured)",
            ),
        ])
    }
}

impl<T> IntoResponses for JsonBody<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[
            (
                400,
                "The body is not JSON of the documented shape, or repeats a key (ignoring case)",
            ),
            (413, "The body is over 1 MiB"),
            (415, "The body was not sent as `Content-Type: application/json`"),
        ])
    }
}

/// What every zone edit can meet once its request is understood: 412, 422, 500.
pub struct EditRefused;

impl IntoResponses for EditRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[
            (
                412,
                "The zone changed since it was read (If-Match; in cluster mode, on any node)",
            ),
            (422, "The configuration would be invalid: nothing changed"),
            (500, "The zone file cannot be read or written"),
            (502, "Cluster mode: etcd refused the write"),
            (
                503,
                "Cluster mode: etcd is unreachable; the node serves its last good state",
            ),
        ])
    }
}

/// What a write of a data center's override meets once its request is understood: 404 (no such
/// data center), 500 (not persisted) and, in cluster mode, 412, 502 and 503.
pub struct DcOverrideWrite;

impl IntoResponses for DcOverrideWrite {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        override_write("No such data center")
    }
}

/// What a write of an endpoint's override meets once its request is understood: 404 (no such
/// data center or endpoint), 500 (not persisted) and, in cluster mode, 412, 502 and 503.
pub struct EndpointOverrideWrite;

impl IntoResponses for EndpointOverrideWrite {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        override_write("No such data center, or no such endpoint in it")
    }
}

/// What a write of an override meets, `not_found` the 404's description: 412 (other nodes kept
/// changing the same override), 502 (etcd refused the write), 503 (etcd unreachable) in cluster
/// mode.
fn override_write(not_found: &str) -> BTreeMap<String, RefOr<Response>> {
    answers(&[
        (404, not_found),
        (500, "The override could not be persisted"),
        (
            412,
            "Cluster mode: other nodes kept changing this override; retry",
        ),
        (502, "Cluster mode: etcd refused the write"),
        (
            503,
            "Cluster mode: etcd is unreachable; the node serves its last good state",
        ),
    ])
}

/// A zone file that cannot be read back: 500.
pub struct ReadFailed;

impl IntoResponses for ReadFailed {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[(500, "The zone file cannot be read or no longer parses")])
    }
}

/// A zone and owner name in the path that are no DNS names, or an owner outside the zone: 400.
pub struct BadEntryPath;

impl IntoResponses for BadEntryPath {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        answers(&[(
            400,
            "The zone or name is not a DNS name, or the name is outside the zone",
        )])
    }
}

/// An answer `T` (its schema inline) that carries the zone file's ETag.
fn with_etag<T: ToSchema>(description: &str) -> RefOr<Response> {
    from_json(json!({
        "description": description,
        "headers": { "ETag": { "description": "The zone file's ETag, for If-Match", "schema": { "type": "string" } } },
        "content": { "application/json": { "schema": T::schema() } },
    }))
}

/// A read (or removal) answered with `T` and the zone file's ETag: 200.
pub struct Tagged<T>(std::marker::PhantomData<T>);

impl<T: ToSchema> IntoResponses for Tagged<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([("200".to_string(), with_etag::<T>("OK"))])
    }
}

/// A write's answer `T` with the zone file's new ETag: 200 when it replaced, 201 when it
/// created.
pub struct Written<T>(std::marker::PhantomData<T>);

impl<T: ToSchema> IntoResponses for Written<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            ("200".to_string(), with_etag::<T>("Replaced")),
            ("201".to_string(), with_etag::<T>("Created")),
        ])
    }
}

// === parameters that are parsed, not just strings ===

/// A DNS name as a client writes it: letters, digits, `-` and `_` in labels, any case, an
/// optional trailing dot. U-labels are accepted too (converted to A-labels), which the pattern,
/// written for the A-label form, does not admit: a generator must not take any Unicode text
/// for a name.
pub struct HostName;

/// One label of a name: 1 to 63 characters, no `-` at either end.
const LABEL: &str = "[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";

/// 1 to 8 labels (deeper names work; a generator needs a bound below 255 octets).
fn name_pattern(trailing_dot: bool) -> String {
    let dot = if trailing_dot { "\\.?" } else { "" };
    format!("^{LABEL}(\\.{LABEL}){{0,7}}{dot}$")
}

impl PartialSchema for HostName {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "type": "string",
            "pattern": name_pattern(true),
            "description": "A DNS name, any case, an optional trailing dot; U-labels are accepted \
                            too and converted to A-labels.",
        }))
    }
}
impl ToSchema for HostName {}

/// An owner name inside a zone: `@` for the apex, or a name relative to the zone. An absolute
/// name (trailing dot) is accepted too when it is inside the zone, which a schema cannot say.
pub struct OwnerName;

impl PartialSchema for OwnerName {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "anyOf": [
                { "type": "string", "enum": ["@"] },
                { "type": "string", "pattern": name_pattern(false) },
            ],
            "description": "`@` for the apex, or a name relative to the zone (U-labels are \
                            accepted too); an absolute name (trailing dot) inside the zone works \
                            as well.",
        }))
    }
}
impl ToSchema for OwnerName {}

/// An IPv4 or IPv6 address, in any spelling.
pub struct IpAddress;

impl PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "anyOf": [{ "type": "string", "format": "ipv4" }, { "type": "string", "format": "ipv6" }],
        }))
    }
}
impl ToSchema for IpAddress {}

/// A client: an address, or `address/prefix` (the ECS client subnet).
pub struct ClientNet;

impl PartialSchema for ClientNet {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "anyOf": [
                { "type": "string", "format": "ipv4" },
                { "type": "string", "format": "ipv6" },
                {
                    "type": "string",
                    "pattern": r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$",
                },
            ],
            "description": "An IPv4 or IPv6 address, or address/prefix (IPv6 prefixes work too).",
        }))
    }
}
impl ToSchema for ClientNet {}

// === the document ===

/// Everything the route attributes do not say: title, version, the security scheme, the Error
/// schema, the answers every route can give, and each operation's security requirement.
fn finish(mut api: utoipa::openapi::OpenApi) -> Value {
    api.info.title = "Meridian admin API".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Send `Authorization: Bearer <token>`: a `read` token for reads, an `admin` token for \
         writes. With no tokens configured, reads are open and writes are refused (403), and \
         only loopback names, IP addresses and admin.allowed_hosts are served as Host (421)."
            .into(),
    );
    let mut doc = serde_json::to_value(&api).expect("the document serializes");
    doc["openapi"] = json!("3.1.0");
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token of admin.tokens; the scopes `read` and `admin` name its role.",
        },
    });
    use super::{ErrorBody, ProblemBody};
    // Schemas only parameters or `IntoResponses` name, which `routes!` does not collect.
    for (name, schema) in [
        (ErrorBody::name(), ErrorBody::schema()),
        (ProblemBody::name(), ProblemBody::schema()),
        (HostName::name(), HostName::schema()),
        (OwnerName::name(), OwnerName::schema()),
        (IpAddress::name(), IpAddress::schema()),
        (ClientNet::name(), ClientNet::schema()),
    ] {
        doc["components"]["schemas"][name.as_ref()] = serde_json::to_value(schema).expect("schema");
    }
    let misdirected = serde_json::to_value(error(
        "No tokens are configured and the Host is not a loopback name, an IP address or in \
         admin.allowed_hosts",
    ))
    .expect("response");
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for op in item.as_object_mut().expect("path item").values_mut() {
            let responses = op["responses"].as_object_mut().expect("responses");
            let security = if responses.contains_key("403") {
                json!([{ "bearer": ["admin"] }])
            } else if responses.contains_key("401") {
                json!([{ "bearer": ["read"] }])
            } else {
                json!([])
            };
            responses.insert("421".into(), misdirected.clone());
            op["security"] = security;
        }
    }
    doc
}

/// The document.
pub fn build() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| finish(super::routes().split_for_parts().1))
        .clone()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn document() -> axum::Json<Value> {
    axum::Json(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = build();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema reference");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn security_follows_the_extractors() {
        let doc = build();
        let op = |m: &str, p: &str| doc["paths"][p][m]["security"].clone();
        assert_eq!(op("get", "/healthz"), json!([]));
        assert_eq!(op("get", "/api/openapi.json"), json!([]));
        assert_eq!(op("get", "/api/v1/status"), json!([{ "bearer": ["read"] }]));
        assert_eq!(op("post", "/api/v1/reload"), json!([{ "bearer": ["admin"] }]));
    }
}
