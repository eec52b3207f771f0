//! One name inside a zone: its static records (`records/`) or its load-balanced definition
//! (`gslb/`), read and written through the zone's file like every zone edit.

use super::*;

/// Records of `owner` that the zone's `import:` master file holds, by type, in presentation
/// format; with the file's name as the zone file gives it. The API shows them and never edits
/// them.
async fn imported(
    path: &std::path::Path,
    doc: &Value,
    zone: &ZoneRef,
    owner: &OwnerRef,
) -> Option<(String, Map<String, Value>)> {
    let file = doc.get("import")?.as_str()?.to_string();
    let full = path.parent().unwrap_or(std::path::Path::new(".")).join(&file);
    let (origin, owner_name) = (zone.name.clone(), owner.name.clone());
    let by_type = blocking(move || {
        let text = std::fs::read_to_string(full).map_err(|e| ApiError::internal(e.to_string()))?;
        let records = crate::config::zonefile::parse_master(&text, &origin)
            .map_err(|e| ApiError::internal(e.message))?;
        let mut by_type = Map::new();
        for r in records.iter().filter(|r| r.owner.same_as(&owner_name)) {
            let list = by_type
                .entry(r.rdata.rtype().to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::String(r.rdata.to_string()));
            }
        }
        Ok(by_type)
    })
    .await
    .ok()?;
    (!by_type.is_empty()).then_some((file, by_type))
}

fn read_only_message(owner: &OwnerRef, file: &str) -> String {
    format!(
        "records of `{}` come from the master file {file} (the zone's `import:`), which the API does not edit: \
         change that file and reload",
        owner.key
    )
}

/// The key of `section` in `doc` that names `owner`, if any.
fn entry_key(doc: &Value, section: &str, zone: &ZoneRef, owner: &OwnerRef) -> Option<String> {
    doc.get(section)?
        .as_object()?
        .keys()
        .find(|k| owner.is(k, &zone.name))
        .cloned()
}

async fn get_entry(ctl: &Control, zone: &str, section: &str, name: &str) -> ApiResult {
    let zone = ZoneRef::parse(zone)?;
    let owner = OwnerRef::parse(name, &zone)?;
    let (path, exists) = zone_file(ctl, &zone);
    if !exists {
        return Err(no_zone(&zone));
    }
    let (doc, etag) = read_doc(&path).await?;
    let entry = entry_key(&doc, section, &zone, &owner).and_then(|k| doc[section].get(&k).cloned());
    let from_master = if section == "records" {
        imported(&path, &doc, &zone, &owner).await
    } else {
        None
    };
    match (entry, from_master) {
        (None, None) => Err(no_entry(section, &owner, &zone)),
        (entry, None) => Ok(with_etag(entry.unwrap_or_default(), &etag)),
        (entry, Some((file, records))) => {
            let mut body = match entry {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            body.insert(
                "imported".into(),
                json!({ "file": file, "records": records, "read_only": true,
                        "message": read_only_message(&owner, &file) }),
            );
            Ok(with_etag(Value::Object(body), &etag))
        }
    }
}

/// Sets (`Some`) or removes (`None`) the entry of one owner; `who` is the caller, for the event.
async fn put_entry(
    ctl: &Control,
    who: &str,
    headers: &HeaderMap,
    zone: &str,
    section: &str,
    name: &str,
    value: Option<Value>,
) -> ApiResult {
    super::retrying(ctl, headers, || {
        put_entry_once(ctl, who, headers, zone, section, name, value.clone())
    })
    .await
}

/// One attempt of [`put_entry`].
async fn put_entry_once(
    ctl: &Control,
    who: &str,
    headers: &HeaderMap,
    zone: &str,
    section: &str,
    name: &str,
    value: Option<Value>,
) -> ApiResult {
    let zone = ZoneRef::parse(zone)?;
    let owner = OwnerRef::parse(name, &zone)?;
    if let Some(v) = &value
        && !v.is_object()
    {
        return Err(ApiError::bad_request(format!(
            "the body is one {section} entry, an object"
        )));
    }
    let change = ctl.begin_change().await;
    let (path, exists) = zone_file(ctl, &zone);
    if !exists {
        return Err(no_zone(&zone));
    }
    let (mut doc, etag) = read_doc(&path).await?;
    check_if_match(headers, Some(&etag))?;
    if section == "records"
        && let Some((file, _)) = imported(&path, &doc, &zone, &owner).await
    {
        return Err(ApiError::new(StatusCode::CONFLICT, read_only_message(&owner, &file)).field("name"));
    }
    serial_in_yaml(&doc)?;
    let old_serial = serial_of(&doc);
    let existing = entry_key(&doc, section, &zone, &owner);
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
    match (value, &existing) {
        // An existing entry keeps its place and its spelling.
        (Some(v), Some(key)) => {
            map.insert(key.clone(), v);
        }
        (Some(v), None) => {
            map.insert(owner.key.clone(), v);
        }
        (None, Some(key)) => {
            map.shift_remove(key);
        }
        (None, None) => return Err(no_entry(section, &owner, &zone)),
    }
    bump_serial(&mut doc, old_serial);
    let (doc, text) = to_yaml(doc).await?;
    let subject = format!("zone {} {section} {}", zone.text, owner.key);
    let generation = ctl
        .commit(change, &path, Some(text.clone()), &subject, who)
        .await
        .map_err(ApiError::from)
        .map_err(|e| e.or_field(format!("{section}.{}", owner.key)))?;
    let new_etag = crate::files::etag(text.as_bytes());
    let (records, gslb) = match section {
        "records" => (Some(owner.key), None),
        _ => (None, Some(owner.key)),
    };
    let written = EntryWritten {
        zone: zone.text,
        records,
        gslb,
        serial: serial_of(&doc),
        generation,
    };
    let mut r = with_etag(&written, &new_etag);
    if existing.is_none() {
        *r.status_mut() = StatusCode::CREATED;
    }
    Ok(r)
}

type EntryPath = Path<(String, String)>;

/// The static records of one name; records from the zone's `import:` master file appear under
/// `imported` (read-only).
#[utoipa::path(get, path = "/zones/{zone}/records/{name}", tag = "zones", params(EntryParams),
    responses(Tagged<RecordsEntry>,
        ReadAccess,
        BadEntryPath,
        (status = 404, description = "No such zone, or no records for the name", body = ErrorBody),
        ReadFailed))]
pub async fn get_records(_: ReadAccess, State(ctl): Ctl, Path((zone, name)): EntryPath) -> ApiResult {
    get_entry(&ctl, &zone, "records", &name).await
}

/// Replace (or create) the static records of one name, like `{"A": ["192.0.2.1"], "ttl": 60}`.
#[utoipa::path(put, path = "/zones/{zone}/records/{name}", tag = "zones", params(EntryParams, IfMatch),
    request_body = RecordsEntry,
    responses(
        Written<EntryWritten>,
        AdminAccess, JsonBody<RecordsEntry>,
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 409, description = "The name's records come from the import: master file, or the zone's SOA does",
            body = ErrorBody),
        EditRefused))]
pub async fn put_records(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, name)): EntryPath,
    JsonBody(v): JsonBody<Value>,
) -> ApiResult {
    put_entry(&ctl, &who, &headers, &zone, "records", &name, Some(v)).await
}

/// Remove the static records of one name.
#[utoipa::path(delete, path = "/zones/{zone}/records/{name}", tag = "zones", params(EntryParams, IfMatch),
    responses(
        Tagged<EntryWritten>,
        AdminAccess,
        BadEntryPath,
        (status = 404, description = "No such zone, or no records for the name", body = ErrorBody),
        (status = 409, description = "The name's records come from the import: master file, or the zone's SOA does",
            body = ErrorBody),
        EditRefused))]
pub async fn delete_records(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, name)): EntryPath,
) -> ApiResult {
    put_entry(&ctl, &who, &headers, &zone, "records", &name, None).await
}

/// A load-balanced name's definition.
#[utoipa::path(get, path = "/zones/{zone}/gslb/{name}", tag = "zones", params(EntryParams),
    responses(Tagged<GslbEntry>,
        ReadAccess,
        BadEntryPath,
        (status = 404, description = "No such zone, or no load-balanced name", body = ErrorBody),
        ReadFailed))]
pub async fn get_gslb(_: ReadAccess, State(ctl): Ctl, Path((zone, name)): EntryPath) -> ApiResult {
    get_entry(&ctl, &zone, "gslb", &name).await
}

/// Replace (or create) a load-balanced name.
#[utoipa::path(put, path = "/zones/{zone}/gslb/{name}", tag = "zones", params(EntryParams, IfMatch),
    request_body = GslbEntry,
    responses(
        Written<EntryWritten>,
        AdminAccess, JsonBody<GslbEntry>,
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 409, description = "The zone's SOA is in its import: master file", body = ErrorBody),
        EditRefused))]
pub async fn put_gslb(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, name)): EntryPath,
    JsonBody(v): JsonBody<Value>,
) -> ApiResult {
    put_entry(&ctl, &who, &headers, &zone, "gslb", &name, Some(v)).await
}

/// Remove a load-balanced name.
#[utoipa::path(delete, path = "/zones/{zone}/gslb/{name}", tag = "zones", params(EntryParams, IfMatch),
    responses(
        Tagged<EntryWritten>,
        AdminAccess,
        BadEntryPath,
        (status = 404, description = "No such zone, or no load-balanced name", body = ErrorBody),
        (status = 409, description = "The zone's SOA is in its import: master file", body = ErrorBody),
        EditRefused))]
pub async fn delete_gslb(
    AdminAccess(who): AdminAccess,
    State(ctl): Ctl,
    headers: HeaderMap,
    Path((zone, name)): EntryPath,
) -> ApiResult {
    put_entry(&ctl, &who, &headers, &zone, "gslb", &name, None).await
}
