//! Zone editing: whole zones and single names (static records or load-balanced), as JSON.
//!
//! An edit is one step: check the ETag (If-Match), build the new file, validate the whole
//! configuration as it would be, write the file atomically, publish. An invalid edit changes
//! nothing. Every edit raises the zone's SOA serial. Files stay the source of truth: the file is
//! re-read for every edit, so hand edits (plus SIGHUP or POST /reload) keep working.

use super::{ApiError, auth};
use crate::config::{Overlay, Role};
use crate::control::Control;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type Ctl = State<Arc<Control>>;
type ApiResult = Result<Response, ApiError>;
type Body = Result<Json<Value>, JsonRejection>;

fn normalize(zone: &str) -> String {
    zone.trim_end_matches('.').to_ascii_lowercase()
}

/// The file holding `zone`, and whether it exists.
fn zone_file(ctl: &Control, zone: &str) -> (PathBuf, bool) {
    let running = ctl.running.lock().unwrap_or_else(|p| p.into_inner());
    let want = normalize(zone);
    for z in &running.zones {
        if normalize(&z.origin.to_string()) == want {
            return (z.source.clone(), true);
        }
    }
    (running.zones_dir.join(format!("{want}.yaml")), false)
}

/// The file's text, parsed document and ETag.
fn read_doc(path: &std::path::Path) -> Result<(Value, String), ApiError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| {
        ApiError::internal(format!(
            "{} no longer parses: {}",
            path.display(),
            e.without_snippet()
        ))
    })?;
    Ok((doc, crate::store::etag(text.as_bytes())))
}

/// 412 when If-Match names another version than the current one (or any version when there is
/// none).
fn check_if_match(headers: &HeaderMap, current: Option<&str>) -> Result<(), ApiError> {
    let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = match current {
        Some(cur) => want.trim() == "*" || want.split(',').any(|t| t.trim() == cur),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "the zone changed since you read it (If-Match {want}, now {}): read it again",
                current.unwrap_or("absent")
            ),
        )
        .field("If-Match"))
    }
}

fn with_etag(body: Value, etag: &str) -> Response {
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn body_of(body: Body) -> Result<Value, ApiError> {
    body.map(|Json(v)| v).map_err(|e| {
        // A body over the limit surfaces as a buffering error whose cause is the limit.
        let status = if e.body_text().contains("length limit exceeded") {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            e.status()
        };
        ApiError::new(status, format!("body: {}", e.body_text()))
    })
}

fn serial_of(doc: &Value) -> Option<u64> {
    doc.get("soa")?.get("serial")?.as_u64()
}

/// Sets the SOA serial above both the old one and the one given.
fn bump_serial(doc: &mut Value, old: Option<u64>) {
    let Some(soa) = doc.get_mut("soa").and_then(Value::as_object_mut) else {
        return;
    };
    let given = soa.get("serial").and_then(Value::as_u64).unwrap_or(0);
    let next = given.max(old.map_or(1, |o| o + 1)).min(u64::from(u32::MAX));
    soa.insert("serial".into(), json!(next));
}

/// Validates, writes and publishes `path` as `text` (or its removal). The caller holds
/// `ctl.changes`.
async fn commit(
    ctl: &Control,
    path: &std::path::Path,
    text: Option<String>,
    what: &str,
    who: &str,
) -> Result<u64, ApiError> {
    let mut overlay = Overlay::default();
    overlay.files.insert(path.to_path_buf(), text.clone());
    let config = ctl.validate(overlay).await.map_err(ApiError::invalid)?;
    let io = match &text {
        Some(t) => crate::store::write_atomic(path, t.as_bytes()),
        None => crate::store::remove_durable(path),
    };
    io.map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))?;
    let generation = ctl.apply(config);
    ctl.metrics.zone_edits.fetch_add(1, Ordering::Relaxed);
    ctl.events.emit(
        format!("zone {what}"),
        "",
        if text.is_some() { "edited" } else { "deleted" },
        format!("admin API ({who})"),
    );
    Ok(generation)
}

fn to_yaml(doc: &Value) -> Result<String, ApiError> {
    serde_saphyr::to_string(doc).map_err(|e| ApiError::internal(format!("cannot write YAML: {e}")))
}

pub async fn list(State(ctl): Ctl, headers: HeaderMap) -> ApiResult {
    auth::check(&headers, &ctl.tokens(), Role::Read)?;
    let running = ctl.running.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<Value> = running
        .zones
        .iter()
        .map(|z| {
            let etag = std::fs::read(&z.source).map(|b| crate::store::etag(&b)).ok();
            json!({ "zone": z.origin.to_string(), "file": z.source.display().to_string(), "etag": etag })
        })
        .collect();
    Ok(Json(list).into_response())
}

pub async fn get_zone(State(ctl): Ctl, headers: HeaderMap, Path(zone): Path<String>) -> ApiResult {
    auth::check(&headers, &ctl.tokens(), Role::Read)?;
    let (path, exists) = zone_file(&ctl, &zone);
    if !exists {
        return Err(ApiError::not_found(format!("no zone `{zone}`")).field("zone"));
    }
    let (doc, etag) = read_doc(&path)?;
    Ok(with_etag(doc, &etag))
}

pub async fn put_zone(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(zone): Path<String>,
    body: Body,
) -> ApiResult {
    let who = auth::check(&headers, &ctl.tokens(), Role::Admin)?;
    let mut doc = body_of(body)?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body is a zone object (zone, soa, ns, records, gslb)",
        ));
    };
    match obj.get("zone").and_then(Value::as_str) {
        Some(z) if normalize(z) != normalize(&zone) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("zone `{z}` in the body is not `{zone}` of the path"),
            )
            .field("zone"));
        }
        Some(_) => {}
        None => {
            obj.insert("zone".into(), json!(normalize(&zone)));
        }
    }
    let _one = ctl.changes.lock().await;
    let (path, exists) = zone_file(&ctl, &zone);
    let old = if exists { Some(read_doc(&path)?) } else { None };
    check_if_match(&headers, old.as_ref().map(|o| o.1.as_str()))?;
    bump_serial(&mut doc, old.as_ref().and_then(|o| serial_of(&o.0)));
    let text = to_yaml(&doc)?;
    let generation = commit(&ctl, &path, Some(text.clone()), &normalize(&zone), &who).await?;
    let etag = crate::store::etag(text.as_bytes());
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut r = with_etag(
        json!({ "zone": normalize(&zone), "serial": serial_of(&doc), "generation": generation }),
        &etag,
    );
    *r.status_mut() = status;
    Ok(r)
}

pub async fn delete_zone(State(ctl): Ctl, headers: HeaderMap, Path(zone): Path<String>) -> ApiResult {
    let who = auth::check(&headers, &ctl.tokens(), Role::Admin)?;
    let _one = ctl.changes.lock().await;
    let (path, exists) = zone_file(&ctl, &zone);
    if !exists {
        return Err(ApiError::not_found(format!("no zone `{zone}`")).field("zone"));
    }
    let (_, etag) = read_doc(&path)?;
    check_if_match(&headers, Some(&etag))?;
    let generation = commit(&ctl, &path, None, &normalize(&zone), &who).await?;
    Ok(Json(json!({ "deleted": normalize(&zone), "generation": generation })).into_response())
}

// === one name inside a zone: `records` (static RRsets) or `gslb` (load-balanced) ===

async fn get_entry(ctl: &Control, headers: &HeaderMap, zone: &str, section: &str, name: &str) -> ApiResult {
    auth::check(headers, &ctl.tokens(), Role::Read)?;
    let (path, exists) = zone_file(ctl, zone);
    if !exists {
        return Err(ApiError::not_found(format!("no zone `{zone}`")).field("zone"));
    }
    let (doc, etag) = read_doc(&path)?;
    let entry = doc.get(section).and_then(|s| s.get(name)).cloned();
    match entry {
        Some(e) => Ok(with_etag(e, &etag)),
        None => {
            Err(ApiError::not_found(format!("no {section} entry `{name}` in zone `{zone}`")).field("name"))
        }
    }
}

async fn put_entry(
    ctl: &Control,
    headers: &HeaderMap,
    zone: &str,
    section: &str,
    name: &str,
    value: Option<Value>,
) -> ApiResult {
    let who = auth::check(headers, &ctl.tokens(), Role::Admin)?;
    if let Some(v) = &value
        && !v.is_object()
    {
        return Err(ApiError::bad_request(format!(
            "the body is one {section} entry, an object"
        )));
    }
    let _one = ctl.changes.lock().await;
    let (path, exists) = zone_file(ctl, zone);
    if !exists {
        return Err(ApiError::not_found(format!("no zone `{zone}`")).field("zone"));
    }
    let (mut doc, etag) = read_doc(&path)?;
    check_if_match(headers, Some(&etag))?;
    let old_serial = serial_of(&doc);
    let Some(root) = doc.as_object_mut() else {
        return Err(ApiError::internal("the zone file is not a mapping"));
    };
    let sec = root
        .entry(section.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if sec.is_null() {
        *sec = Value::Object(Map::new());
    }
    let Some(map) = sec.as_object_mut() else {
        return Err(ApiError::internal(format!(
            "`{section}` in the zone file is not a mapping"
        )));
    };
    let existed = map.contains_key(name);
    match value {
        Some(v) => {
            map.insert(name.to_string(), v);
        }
        None if !existed => {
            return Err(
                ApiError::not_found(format!("no {section} entry `{name}` in zone `{zone}`")).field("name"),
            );
        }
        None => {
            map.remove(name);
        }
    }
    bump_serial(&mut doc, old_serial);
    let text = to_yaml(&doc)?;
    let generation = commit(
        ctl,
        &path,
        Some(text.clone()),
        &format!("{} {section} {name}", normalize(zone)),
        &who,
    )
    .await?;
    let new_etag = crate::store::etag(text.as_bytes());
    let mut r = with_etag(
        json!({ "zone": normalize(zone), section: name, "serial": serial_of(&doc), "generation": generation }),
        &new_etag,
    );
    if !existed {
        *r.status_mut() = StatusCode::CREATED;
    }
    Ok(r)
}

/// `records` or `gslb`: the two kinds of per-name entries a zone file holds.
fn section(name: &str) -> Result<&'static str, ApiError> {
    match name {
        "records" => Ok("records"),
        "gslb" => Ok("gslb"),
        other => {
            Err(ApiError::not_found(format!("no section `{other}`: use records or gslb")).field("section"))
        }
    }
}

type EntryPath = Path<(String, String, String)>;

pub async fn get_named(State(ctl): Ctl, headers: HeaderMap, Path((zone, sec, name)): EntryPath) -> ApiResult {
    get_entry(&ctl, &headers, &zone, section(&sec)?, &name).await
}

pub async fn put_named(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, sec, name)): EntryPath,
    body: Body,
) -> ApiResult {
    let sec = section(&sec)?;
    let v = body_of(body)?;
    put_entry(&ctl, &headers, &zone, sec, &name, Some(v)).await
}

pub async fn delete_named(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, sec, name)): EntryPath,
) -> ApiResult {
    put_entry(&ctl, &headers, &zone, section(&sec)?, &name, None).await
}
