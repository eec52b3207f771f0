//! Zone editing: whole zones and single names (static records or load-balanced), as JSON.
//!
//! An edit is one step: check the ETag (If-Match), build the new file, validate the whole
//! configuration as it would be, write the file atomically, publish. An invalid edit changes
//! nothing. Every edit raises the zone's SOA serial. Files stay the source of truth: the file is
//! re-read for every edit, so hand edits (plus SIGHUP or POST /reload) keep working.

use super::auth::{AdminAccess, ReadAccess};
use super::body::JsonBody;
use super::openapi::{BadEntryPath, EditRefused, HostName, OwnerName, ReadFailed, Tagged, Written};
use super::{ApiError, ErrorBody};
use crate::control::Control;
use crate::name::{Name, canonical_hostname};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

mod entries;

pub use entries::*;

type Ctl = State<Arc<Control>>;
type ApiResult = Result<Response, ApiError>;

// === names: every file path comes from a parsed, canonical name, never from URL text ===

/// A zone named by a client: parsed as a DNS name, in canonical text (lowercase, A-labels, no
/// trailing dot). Only this type leads to a zone file, so no request can name a path.
struct ZoneRef {
    name: Name,
    text: String,
}

impl ZoneRef {
    fn parse(text: &str) -> Result<ZoneRef, ApiError> {
        let canonical = canonical_hostname(text, false)
            .map_err(|e| ApiError::bad_request(format!("zone: {e}")).field("zone"))?;
        let name = Name::parse(&format!("{canonical}."), None)
            .map_err(|e| ApiError::bad_request(format!("zone: {e}")).field("zone"))?;
        Ok(ZoneRef {
            name,
            text: canonical,
        })
    }
}

/// An owner name inside a zone, from a URL segment: `@`, relative, or absolute inside the zone;
/// case and spelling do not matter.
struct OwnerRef {
    name: Name,
    /// The key a new entry gets: relative to the zone, lowercase, `@` for the apex.
    key: String,
}

impl OwnerRef {
    fn parse(text: &str, zone: &ZoneRef) -> Result<OwnerRef, ApiError> {
        let bad = |m: String| ApiError::bad_request(m).field("name");
        let name = if text == "@" {
            zone.name.clone()
        } else {
            let canonical = canonical_hostname(text, true).map_err(|e| bad(format!("name: {e}")))?;
            let origin = (!text.ends_with('.')).then_some(&zone.name);
            let full = if origin.is_some() {
                canonical
            } else {
                format!("{canonical}.")
            };
            Name::parse(&full, origin).map_err(|e| bad(format!("name: {e}")))?
        };
        if !name.is_subdomain_of(&zone.name) {
            return Err(bad(format!("name: `{text}` is not inside zone `{}`", zone.text)));
        }
        let key = name.relative_to(&zone.name).to_ascii_lowercase();
        Ok(OwnerRef { name, key })
    }

    /// Whether a key of the zone file's `records:`/`gslb:` names this owner.
    fn is(&self, key: &str, origin: &Name) -> bool {
        Name::parse(key, Some(origin)).is_ok_and(|n| n.same_as(&self.name))
    }
}

/// The file holding `zone`, and whether it exists.
fn zone_file(ctl: &Control, zone: &ZoneRef) -> (PathBuf, bool) {
    ctl.zone_file(&zone.name, &zone.text)
}

fn no_zone(zone: &ZoneRef) -> ApiError {
    ApiError::not_found(format!("no zone `{}`", zone.text)).field("zone")
}

fn no_entry(section: &str, owner: &OwnerRef, zone: &ZoneRef) -> ApiError {
    ApiError::not_found(format!(
        "no {section} entry `{}` in zone `{}`",
        owner.key, zone.text
    ))
    .field("name")
}

/// Runs file reading, parsing and rendering off the async threads: a large zone takes seconds,
/// and those threads also serve DNS over TCP and run the probes.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("zone file task failed: {e}"))))
}

/// The file's ETag, without parsing it (a large zone takes seconds to parse).
/// How often an edit sent without If-Match is made again when another node's edit overtook it.
const OVERTAKEN_ATTEMPTS: usize = 3;

/// Runs `edit`, and in cluster mode runs it again (after catching up with etcd) when another
/// node's edit of the same zone got to etcd first. Without If-Match the client asked for its
/// change on whatever the zone holds, which the new attempt gives; with If-Match, the 412
/// stands (the zone is not what the client read).
async fn retrying<F, Fut>(ctl: &Control, headers: &HeaderMap, mut edit: F) -> ApiResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult>,
{
    let mut attempts = 1;
    loop {
        match edit().await {
            Err(e)
                if e.status == StatusCode::PRECONDITION_FAILED
                    && !headers.contains_key(header::IF_MATCH)
                    && attempts < OVERTAKEN_ATTEMPTS =>
            {
                attempts += 1;
                ctl.catch_up().await;
            }
            result => return result,
        }
    }
}

async fn read_etag(path: &std::path::Path) -> Result<String, ApiError> {
    let path = path.to_path_buf();
    blocking(move || {
        std::fs::read(&path)
            .map(|bytes| crate::files::etag(&bytes))
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
    })
    .await
}

/// The file's text, parsed document and ETag.
async fn read_doc(path: &std::path::Path) -> Result<(Value, String), ApiError> {
    let path = path.to_path_buf();
    blocking(move || {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
        // With the limits the zone was loaded with: a large zone that serves can be edited.
        let options = crate::config::source::yaml_options(text.len());
        let doc: Value = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
            ApiError::internal(format!(
                "{} no longer parses: {}",
                path.display(),
                e.without_snippet()
            ))
        })?;
        Ok((doc, crate::files::etag(text.as_bytes())))
    })
    .await
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

/// 428 unless the request says which version it means to change: for edits that destroy more
/// than they name (a whole zone's removal).
fn require_if_match(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    if headers.contains_key(header::IF_MATCH) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PRECONDITION_REQUIRED,
        format!(
            "{what} needs If-Match with the ETag of a GET (or `*`), so that it removes the version you read"
        ),
    )
    .field("If-Match"))
}

fn with_etag(body: impl Serialize, etag: &str) -> Response {
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `import:` names a file the server reads; through the API it can only be kept as it is (a
/// request must not make the server read, serve or echo any file it names).
fn same_import(new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let before = old.and_then(|d| d.get("import"));
    match new.get("import") {
        None => Ok(()),
        Some(v) if Some(v) == before => Ok(()),
        Some(_) => Err(ApiError::bad_request(match before {
            Some(b) => format!(
                "import: the API keeps a zone's `import:` as it is ({b}); change it in the zone file by hand"
            ),
            None => "import: the API does not set `import:`; name a master file in the zone file by hand"
                .to_string(),
        })
        .field("import")),
    }
}

/// Every API edit raises the SOA serial, which needs the SOA in the YAML: a zone whose SOA comes
/// from its `import:` master file is edited by hand (or its SOA moved into `soa:` first).
fn serial_in_yaml(doc: &Value) -> Result<(), ApiError> {
    match (doc.get("soa"), doc.get("import").and_then(Value::as_str)) {
        (None, Some(file)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "this zone's SOA is in its master file {file}, whose serial the API cannot raise: edit that file by \
                 hand, or move the SOA into the zone file's `soa:` key to edit the zone through the API"
            ),
        )
        .field("soa")),
        _ => Ok(()),
    }
}

/// A JSON value as an SOA serial, if it is one.
fn as_serial(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|s| u32::try_from(s).ok())
}

/// The serial a zone file gives (the default when it gives none), if it is one.
fn serial_of(doc: &Value) -> Option<u32> {
    match doc.get("soa")?.get("serial") {
        None => Some(crate::config::DEFAULT_SOA_SERIAL),
        Some(v) => as_serial(v),
    }
}

/// Whether serial `a` follows `b` in RFC 1982 arithmetic (32-bit serials wrap).
fn serial_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Sets the SOA serial of an edited zone: the one given when it follows the old one (RFC 1982),
/// else the old one plus one (wrapping past 2^32 - 1). A serial that is no serial is left for
/// validation to report.
fn bump_serial(doc: &mut Value, old: Option<u32>) {
    let Some(soa) = doc.get_mut("soa").and_then(Value::as_object_mut) else {
        return;
    };
    let given = match soa.get("serial") {
        None => None,
        Some(v) => match as_serial(v) {
            Some(s) => Some(s),
            None => return,
        },
    };
    let next = match (old, given) {
        (None, g) => g.unwrap_or(crate::config::DEFAULT_SOA_SERIAL),
        (Some(o), Some(g)) if serial_after(g, o) => g,
        (Some(o), _) => o.wrapping_add(1),
    };
    soa.insert("serial".into(), json!(next));
}

/// The document as YAML; hands the document back with the text.
async fn to_yaml(doc: Value) -> Result<(Value, String), ApiError> {
    blocking(move || {
        let text = serde_saphyr::to_string(&doc)
            .map_err(|e| ApiError::internal(format!("cannot write YAML: {e}")))?;
        Ok((doc, text))
    })
    .await
}

// === what the zone routes take and answer ===

/// `{zone}` (for the document; handlers parse a [`ZoneRef`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ZoneParam {
    /// The zone's name, with or without the trailing dot; any case; U-labels or A-labels.
    #[param(value_type = HostName, example = "example.test")]
    zone: String,
}

/// `{zone}/…/{name}` (for the document; handlers parse an [`OwnerRef`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EntryParams {
    /// The zone's name, with or without the trailing dot; any case; U-labels or A-labels.
    #[param(value_type = HostName, example = "example.test")]
    zone: String,
    /// The owner: `@` for the apex, a name relative to the zone, or an absolute name (trailing
    /// dot) inside it.
    #[param(value_type = OwnerName, example = "www")]
    name: String,
}

/// An ETag for optimistic concurrency: the one a GET answered, or `*` (any version).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatch {
    /// Change only this version of the zone file (412 if it changed since).
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// `If-Match` required: deleting a whole zone.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchRequired {
    /// The ETag of a GET of the zone, or `*`: delete only the version read (428 without it).
    #[param(rename = "If-Match")]
    if_match: String,
}

/// A zone file as JSON: the YAML file's keys (`zone`, `ttl`, `soa`, `ns`, `records`, `gslb`,
/// `import`, …) as in the file. Free-form here: the configuration's validation is the schema
/// (an invalid document is answered 422 with every problem, and nothing changes).
#[derive(ToSchema)]
#[schema(as = ZoneDocument, value_type = Object)]
#[allow(dead_code)]
pub struct ZoneDocument(Value);

/// The static records of one name: record type to values in presentation format (a list, or
/// one value), and optionally `ttl`, like `{"A": ["192.0.2.1"], "ttl": 60}`. On GET, records
/// from the zone's `import:` master file appear under `imported` (read-only).
#[derive(ToSchema)]
#[schema(as = RecordsEntry, value_type = Object)]
#[allow(dead_code)]
pub struct RecordsEntry(Value);

/// A load-balanced name's definition as in the zone file: `policy`, `datacenters`, `ttl`,
/// `geo`, `check`, `when_all_down`, ….
#[derive(ToSchema)]
#[schema(as = GslbEntry, value_type = Object)]
#[allow(dead_code)]
pub struct GslbEntry(Value);

/// A zone and its file.
#[derive(Serialize, ToSchema)]
pub struct ZoneFile {
    /// The origin, absolute.
    pub zone: String,
    pub file: String,
    /// The file's ETag; null if it cannot be read now.
    pub etag: Option<String>,
}

/// A zone was written.
#[derive(Serialize, ToSchema)]
pub struct ZoneWritten {
    pub zone: String,
    /// The SOA serial now.
    pub serial: Option<u32>,
    /// The generation now serving.
    pub generation: u64,
}

/// A zone was deleted.
#[derive(Serialize, ToSchema)]
pub struct ZoneDeleted {
    pub deleted: String,
    pub generation: u64,
}

/// One name's entry was written or removed: `records` or `gslb` names it (relative key).
#[derive(Serialize, ToSchema)]
pub struct EntryWritten {
    pub zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gslb: Option<String>,
    pub serial: Option<u32>,
    pub generation: u64,
}

// === the zone routes ===

/// The zones, their files and ETags.
#[utoipa::path(get, path = "/zones", tag = "zones",
    responses((status = 200, body = Vec<ZoneFile>), ReadAccess,
        (status = 500, description = "The files could not be listed", body = ErrorBody)))]
pub async fn list(_: ReadAccess, State(ctl): Ctl) -> ApiResult {
    let zones = ctl.zone_files();
    // Hashing every file reads it whole: off the async threads, and without holding a lock.
    let list = blocking(move || {
        Ok(zones
            .iter()
            .map(|(origin, file)| {
                let etag = std::fs::read(file).map(|b| crate::files::etag(&b)).ok();
                ZoneFile {
                    zone: origin.to_string(),
                    file: file.display().to_string(),
                    etag,
                }
            })
            .collect::<Vec<ZoneFile>>())
    })
    .await?;
    Ok(Json(list).into_response())
}

/// A zone file as JSON, with its ETag.
#[utoipa::path(get, path = "/zones/{zone}", tag = "zones", params(ZoneParam),
    responses(Tagged<ZoneDocument>,
        ReadAccess,
        (status = 400, description = "The zone is not a DNS name", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
        ReadFailed))]
pub async fn get_zone(_: ReadAccess, State(ctl): Ctl, Path(zone): Path<String>) -> ApiResult {
    let zone = ZoneRef::parse(&zone)?;
    let (path, exists) = zone_file(&ctl, &zone);
    if !exists {
        return Err(no_zone(&zone));
    }
    let (doc, etag) = read_doc(&path).await?;
    Ok(with_etag(doc, &etag))
}

/// Replace (or create) a zone; the SOA serial is raised. Optimistic concurrency with If-Match.
#[utoipa::path(put, path = "/zones/{zone}", tag = "zones", params(ZoneParam, IfMatch),
    request_body = ZoneDocument,
    responses(
        Written<ZoneWritten>,
        AdminAccess, JsonBody<ZoneDocument>,
        (status = 409, description = "The SOA is in the import: master file, or the file exists holding another zone",
            body = ErrorBody),
        EditRefused))]
pub async fn put_zone(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(zone): Path<String>,
    JsonBody(doc): JsonBody<Value>,
) -> ApiResult {
    retrying(&ctl, &headers, || {
        put_zone_once(&ctl, &who, &headers, &zone, doc.clone())
    })
    .await
}

/// One attempt of [`put_zone`].
async fn put_zone_once(
    ctl: &Control,
    who: &str,
    headers: &HeaderMap,
    zone: &str,
    mut doc: Value,
) -> ApiResult {
    let zone = ZoneRef::parse(zone)?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body is a zone object (zone, soa, ns, records, gslb)",
        ));
    };
    if let Some(given) = obj.get("zone") {
        let named = given
            .as_str()
            .ok_or_else(|| ApiError::bad_request("zone: a name, as text").field("zone"))
            .and_then(ZoneRef::parse)?;
        if !named.name.same_as(&zone.name) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "zone `{}` in the body is not `{}` of the path",
                    named.text, zone.text
                ),
            )
            .field("zone"));
        }
    }
    obj.insert("zone".into(), json!(zone.text));
    let change = ctl.begin_change().await;
    let (path, exists) = zone_file(ctl, &zone);
    if !exists && std::fs::symlink_metadata(&path).is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} exists but holds no zone `{}` that is being served: it holds another zone or one not yet \
                 loaded; rename or remove that file (or reload), then create the zone",
                path.display(),
                zone.text
            ),
        )
        .field("zone"));
    }
    let old = if exists {
        Some(read_doc(&path).await?)
    } else {
        None
    };
    check_if_match(headers, old.as_ref().map(|o| o.1.as_str()))?;
    same_import(&doc, old.as_ref().map(|o| &o.0))?;
    serial_in_yaml(&doc)?;
    bump_serial(&mut doc, old.as_ref().and_then(|o| serial_of(&o.0)));
    let (doc, text) = to_yaml(doc).await?;
    let subject = format!("zone {}", zone.text);
    let generation = ctl
        .commit(change, &path, Some(text.clone()), &subject, who)
        .await?;
    let etag = crate::files::etag(text.as_bytes());
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let written = ZoneWritten {
        zone: zone.text,
        serial: serial_of(&doc),
        generation,
    };
    let mut r = with_etag(&written, &etag);
    *r.status_mut() = status;
    Ok(r)
}

/// Delete a zone and its file. Needs If-Match (428 without it).
#[utoipa::path(delete, path = "/zones/{zone}", tag = "zones", params(ZoneParam, IfMatchRequired),
    responses((status = 200, body = ZoneDeleted), AdminAccess,
        (status = 400, description = "The zone is not a DNS name", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 412, description = "The zone changed since it was read (If-Match)", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid without it: nothing changed",
            body = ErrorBody),
        (status = 428, description = "No If-Match", body = ErrorBody),
        (status = 500, description = "The zone file cannot be read or removed", body = ErrorBody)))]
pub async fn delete_zone(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(zone): Path<String>,
) -> ApiResult {
    let zone = ZoneRef::parse(&zone)?;
    let change = ctl.begin_change().await;
    let (path, exists) = zone_file(&ctl, &zone);
    if !exists {
        return Err(no_zone(&zone));
    }
    require_if_match(&headers, "deleting a whole zone")?;
    check_if_match(&headers, Some(&read_etag(&path).await?))?;
    let subject = format!("zone {}", zone.text);
    let generation = ctl.commit(change, &path, None, &subject, &who).await?;
    Ok(Json(ZoneDeleted {
        deleted: zone.text,
        generation,
    })
    .into_response())
}
