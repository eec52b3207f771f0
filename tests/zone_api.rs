//! The zone API as an operator (and an attacker with a token) meets it, against the real binary:
//! the zone in the URL is a DNS name, never a path; owner names are canonical; files keep their
//! mode, owner and symlinks; the SOA serial always moves forward.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType as T;
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const ADMIN: &str = "Bearer admin-secret-0123456789";

/// (status, headers, JSON body) of one admin call.
fn call(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, String, Value) {
    call_with(server, method, path, &[], body)
}

fn call_with(
    server: &Server,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut headers = vec![("Authorization", ADMIN)];
    headers.extend_from_slice(extra);
    let (status, head, body) = http(server.admin(), method, path, &headers, body);
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, head, value)
}

fn etag_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag header")
        .trim()
        .to_string()
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn serial(server: &Server) -> u32 {
    let m = query(server.addr, &ask("example.test.", T::SOA));
    let text = m.answers[0].data.to_string();
    text.split_whitespace().nth(2).unwrap().parse().unwrap()
}

const NEW_ZONE: &str = r#"{"soa": {"mname": "ns1.example.test.", "rname": "hostmaster.example.test."},
    "ns": ["ns1.example.test."], "records": {"www": {"A": ["192.0.2.7"]}}}"#;

#[test]
fn a_zone_in_the_url_is_a_dns_name_and_never_a_path() {
    let dir = fixture("admin");
    let root = dir.path();
    let server = Server::start(&root.join("meridian.yaml"));
    let config_before = std::fs::read(root.join("meridian.yaml")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_enc = outside.path().display().to_string().replace('/', "%2F");
    let escapes = [
        "..%2Fmeridian".to_string(),
        format!("{outside_enc}%2Fx"),
        "..%2Fzones%2Fsneaky".to_string(),
        "nosuchdir%2Fz".to_string(),
        "a%00b".to_string(),
        "a..b".to_string(),
        ".".to_string(),
        "..".to_string(),
        "a%5Cb".to_string(),
        "%2E%2E".to_string(),
    ];
    for zone in &escapes {
        for (method, body) in [
            ("PUT", Some("{}")),
            ("PUT", Some(NEW_ZONE)),
            ("GET", None),
            ("DELETE", None),
        ] {
            let (status, _, body) = call(&server, method, &format!("/api/v1/zones/{zone}"), body);
            assert_eq!(status, 400, "{method} {zone}: {body}");
            assert_eq!(body["field"], "zone", "{method} {zone}: {body}");
        }
        let (status, _, body) = call(
            &server,
            "PUT",
            &format!("/api/v1/zones/{zone}/records/x"),
            Some(r#"{"A": ["192.0.2.1"]}"#),
        );
        assert_eq!(status, 400, "records under {zone}: {body}");
    }
    assert_eq!(std::fs::read(root.join("meridian.yaml")).unwrap(), config_before);
    assert_eq!(files(&root.join("zones")), vec!["example.test.yaml"]);
    assert!(
        files(outside.path()).is_empty(),
        "nothing written outside zones_dir"
    );
    assert_eq!(files(root), vec!["meridian.yaml", "secrets", "zones"]);

    // The same zone, however it is spelled.
    for spelled in ["example.test", "example.test.", "EXAMPLE.Test"] {
        let (status, _, body) = call(&server, "GET", &format!("/api/v1/zones/{spelled}"), None);
        assert_eq!(status, 200, "{spelled}: {body}");
    }
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/EXAMPLE.test./records/static",
        Some(r#"{"A": ["192.0.2.90"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(files(&root.join("zones")), vec!["example.test.yaml"]);

    // A new zone gets the file of its canonical name; a U-label becomes its A-label.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/New.Example.",
        Some(NEW_ZONE.replace("example.test", "new.example").as_str()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["zone"], "new.example");
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/b%C3%BCcher.example",
        Some(NEW_ZONE.replace("example.test", "xn--bcher-kva.example").as_str()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["zone"], "xn--bcher-kva.example");
    assert_eq!(
        files(&root.join("zones")),
        vec![
            "example.test.yaml",
            "new.example.yaml",
            "xn--bcher-kva.example.yaml"
        ]
    );
    let m = query(server.addr, &ask("www.xn--bcher-kva.example.", T::A));
    assert_eq!(answer_data(&m), vec!["192.0.2.7"]);
    // The body may name the zone in any spelling of the same name, and no other.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/new.example",
        Some(&NEW_ZONE.replace("example.test", "new.example").replacen(
            '{',
            r#"{"zone": "NEW.example.","#,
            1,
        )),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/new.example",
        Some(&NEW_ZONE.replacen('{', r#"{"zone": "../meridian","#, 1)),
    );
    assert_eq!((status, body["field"].as_str()), (400, Some("zone")), "{body}");
    assert_eq!(std::fs::read(root.join("meridian.yaml")).unwrap(), config_before);

    // The server still starts on what the API left behind.
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(root.join("meridian.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn owner_names_are_canonical_one_owner_one_entry() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let file = dir.path().join("zones/example.test.yaml");
    for (spelled, addr) in [
        ("STATIC", "192.0.2.81"),
        ("static.example.test.", "192.0.2.82"),
        ("Static.EXAMPLE.test.", "192.0.2.83"),
    ] {
        let (status, _, body) = call(
            &server,
            "PUT",
            &format!("/api/v1/zones/example.test/records/{spelled}"),
            Some(&format!(r#"{{"A": ["{addr}"]}}"#)),
        );
        assert_eq!(status, 200, "{spelled} replaces the entry of `static`: {body}");
        assert_eq!(body["records"], "static", "{body}");
        let m = query(server.addr, &ask("static.example.test.", T::A));
        assert_eq!(answer_data(&m), vec![addr]);
        let (status, _, body) = call(&server, "GET", "/api/v1/zones/example.test/records/sTaTiC", None);
        assert_eq!((status, &body["A"][0]), (200, &Value::from(addr)), "{body}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        doc["records"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["ns1", "static"],
        "{text}"
    );
    // The apex, by `@` or by its name.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/example.test.",
        Some(r#"{"TXT": ["hello"]}"#),
    );
    assert_eq!((status, &body["records"]), (201, &Value::from("@")), "{body}");
    let (status, _, _) = call(&server, "GET", "/api/v1/zones/example.test/records/@", None);
    assert_eq!(status, 200);
    // A name outside the zone is refused, not filed.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/static.example.org.",
        Some(r#"{"A": ["192.0.2.1"]}"#),
    );
    assert_eq!((status, body["field"].as_str()), (400, Some("name")), "{body}");
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/a..b",
        Some(r#"{"A": ["192.0.2.1"]}"#),
    );
    assert_eq!((status, body["field"].as_str()), (400, Some("name")), "{body}");

    // A 422 names the entry when the problem names no field of its own.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/Static",
        Some(r#"{"A": ["192.0.2.1"], "CNAME": "ns1"}"#),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("records.static")),
        "{body}"
    );

    // DELETE in any spelling makes DNS stop answering.
    let (status, _, body) = call(
        &server,
        "DELETE",
        "/api/v1/zones/example.test/records/STATIC.example.test.",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let m = query(server.addr, &ask("static.example.test.", T::A));
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    let (status, _, _) = call(
        &server,
        "DELETE",
        "/api/v1/zones/example.test/records/static",
        None,
    );
    assert_eq!(status, 404);

    // gslb names too.
    let (status, _, body) = call(
        &server,
        "GET",
        "/api/v1/zones/example.test/gslb/WWW.example.test.",
        None,
    );
    assert_eq!(
        (status, &body["policy"]),
        (200, &Value::from("failover")),
        "{body}"
    );
    let (status, _, body) = call(&server, "DELETE", "/api/v1/zones/example.test/gslb/Www", None);
    assert_eq!(status, 200, "{body}");
    let m = query(server.addr, &ask("www.example.test.", T::A));
    assert_eq!(m.response_code, ResponseCode::NXDomain);
}

#[test]
fn imported_records_are_visible_and_read_only() {
    let dir = fixture("admin");
    let zones = dir.path().join("zones");
    std::fs::write(
        zones.join("example.test.zone"),
        "$ORIGIN example.test.\nlegacy 600 IN A 192.0.2.44\nlegacy 600 IN TXT \"from the master file\"\n",
    )
    .unwrap();
    let yaml = zones.join("example.test.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}import: example.test.zone\n")).unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    assert_eq!(
        answer_data(&query(server.addr, &ask("legacy.example.test.", T::A))),
        vec!["192.0.2.44"]
    );
    let (status, _, body) = call(&server, "GET", "/api/v1/zones/example.test/records/LEGACY", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"]["file"], "example.test.zone", "{body}");
    assert_eq!(body["imported"]["records"]["A"][0], "192.0.2.44", "{body}");
    assert_eq!(
        body["imported"]["records"]["TXT"][0], "\"from the master file\"",
        "{body}"
    );
    assert!(
        body["imported"]["message"]
            .as_str()
            .unwrap()
            .contains("example.test.zone"),
        "{body}"
    );
    let before = std::fs::read(&yaml).unwrap();
    for (method, body) in [("PUT", Some(r#"{"A": ["192.0.2.45"]}"#)), ("DELETE", None)] {
        let (status, _, resp) = call(&server, method, "/api/v1/zones/example.test/records/legacy", body);
        assert_eq!(status, 409, "{method}: {resp}");
        assert_eq!(resp["field"], "name");
        assert!(
            resp["error"].as_str().unwrap().contains("example.test.zone"),
            "{resp}"
        );
    }
    assert_eq!(std::fs::read(&yaml).unwrap(), before);
    let (status, _, _) = call(&server, "GET", "/api/v1/zones/example.test/records/nothing", None);
    assert_eq!(status, 404);
}

#[test]
fn deleting_a_whole_zone_needs_if_match() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let (status, _, body) = call(&server, "DELETE", "/api/v1/zones/example.test", None);
    assert_eq!(
        (status, body["field"].as_str()),
        (428, Some("If-Match")),
        "{body}"
    );
    assert_eq!(
        answer_data(&query(server.addr, &ask("static.example.test.", T::A))),
        vec!["192.0.2.80"]
    );
    let (_, head, _) = call(&server, "GET", "/api/v1/zones/example.test", None);
    let etag = etag_of(&head);
    let (status, _, body) = call_with(
        &server,
        "DELETE",
        "/api/v1/zones/example.test",
        &[("If-Match", &etag)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let m = query(server.addr, &ask("static.example.test.", T::A));
    assert_eq!(m.response_code, ResponseCode::Refused);
}

#[test]
fn the_soa_serial_always_increases() {
    let dir = fixture("admin");
    let yaml = dir.path().join("zones/example.test.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    // No serial: the zone serves serial 1, and the first edit must move past it.
    std::fs::write(&yaml, text.replace(", serial: 10", "")).unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    assert_eq!(serial(&server), 1);
    let put = |addr: &str| {
        let (status, _, body) = call(
            &server,
            "PUT",
            "/api/v1/zones/example.test/records/static",
            Some(&format!(r#"{{"A": ["{addr}"]}}"#)),
        );
        assert_eq!(status, 200, "{body}");
    };
    put("192.0.2.1");
    assert_eq!(serial(&server), 2);

    // A serial given in the body is taken when it follows the current one (RFC 1982: at most
    // 2^31 - 1 ahead), so two steps reach 2^32 - 1; past it the serial wraps, which secondaries
    // read as an increase.
    let put_serial = |given: u32| {
        let (_, head, mut doc) = call(&server, "GET", "/api/v1/zones/example.test", None);
        doc["soa"]["serial"] = Value::from(given);
        let (status, _, body) = call_with(
            &server,
            "PUT",
            "/api/v1/zones/example.test",
            &[("If-Match", &etag_of(&head))],
            Some(&doc.to_string()),
        );
        assert_eq!(status, 200, "{body}");
    };
    put_serial(u32::MAX);
    assert_eq!(serial(&server), 3, "2^32 - 1 is behind 2 in serial arithmetic");
    put_serial((1 << 31) + 1);
    assert_eq!(serial(&server), (1 << 31) + 1);
    put_serial(u32::MAX);
    assert_eq!(serial(&server), u32::MAX);
    put("192.0.2.2");
    assert_eq!(serial(&server), 0);
    put("192.0.2.3");
    assert_eq!(serial(&server), 1);
    // A serial given below the current one (in serial arithmetic) does not move it back.
    put_serial(u32::MAX - 5);
    assert_eq!(serial(&server), 2);
}

#[test]
fn api_writes_keep_mode_owner_and_symlinks_and_crash_leftovers_are_removed() {
    let dir = fixture("admin");
    let root = dir.path();
    let zones = root.join("zones");
    // The zone file lives elsewhere; zones/ links to it (as configuration management does).
    let real = root.join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::rename(zones.join("example.test.yaml"), real.join("example.test.yaml")).unwrap();
    std::os::unix::fs::symlink("../real/example.test.yaml", zones.join("example.test.yaml")).unwrap();
    let target = real.join("example.test.yaml");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root_user = unsafe { libc::geteuid() } == 0;
    if root_user {
        std::os::unix::fs::chown(&target, Some(4242), Some(4343)).unwrap();
    }
    // Temp files of an edit interrupted by a crash, beside the link and beside its target.
    std::fs::write(zones.join(".example.test.yaml.999.123.tmp"), "half").unwrap();
    std::fs::write(real.join(".example.test.yaml.999.124.tmp"), "half").unwrap();
    std::fs::write(zones.join(".keep-me"), "not ours").unwrap();

    let server = Server::start(&root.join("meridian.yaml"));
    assert_eq!(files(&zones), vec![".keep-me", "example.test.yaml"]);
    assert_eq!(files(&real), vec!["example.test.yaml"]);

    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/static",
        Some(r#"{"A": ["192.0.2.99"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    let link = std::fs::symlink_metadata(zones.join("example.test.yaml")).unwrap();
    assert!(link.file_type().is_symlink(), "the link is still a link");
    let meta = std::fs::metadata(&target).unwrap();
    assert!(std::fs::read_to_string(&target).unwrap().contains("192.0.2.99"));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    if root_user {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    }
    assert_eq!(
        answer_data(&query(server.addr, &ask("static.example.test.", T::A))),
        vec!["192.0.2.99"]
    );
    assert_eq!(files(&real), vec!["example.test.yaml"]);
}

#[test]
fn the_api_never_points_import_at_a_file() {
    let dir = fixture("admin");
    let zones = dir.path().join("zones");
    std::fs::write(zones.join("example.test.zone"), "legacy 600 IN A 192.0.2.44\n").unwrap();
    let yaml = zones.join("example.test.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}import: example.test.zone\n")).unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let before = std::fs::read(&yaml).unwrap();
    let (_, head, doc) = call(&server, "GET", "/api/v1/zones/example.test", None);
    for import in ["/etc/passwd", "../meridian.yaml", "/dev/zero", "other.zone"] {
        let mut changed = doc.clone();
        changed["import"] = Value::from(import);
        let (status, _, body) = call_with(
            &server,
            "PUT",
            "/api/v1/zones/example.test",
            &[("If-Match", &etag_of(&head))],
            Some(&changed.to_string()),
        );
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("import")),
            "{import}: {body}"
        );
        let fresh = NEW_ZONE.replace("example.test", "fresh.test").replacen(
            '{',
            &format!(r#"{{"import": "{import}","#),
            1,
        );
        let (status, _, body) = call(&server, "PUT", "/api/v1/zones/fresh.test", Some(&fresh));
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("import")),
            "{import}: {body}"
        );
    }
    assert_eq!(std::fs::read(&yaml).unwrap(), before);
    assert_eq!(files(&zones), vec!["example.test.yaml", "example.test.zone"]);
    // Writing the document back as read keeps its import, and that is fine.
    let (status, _, body) = call_with(
        &server,
        "PUT",
        "/api/v1/zones/example.test",
        &[("If-Match", &etag_of(&head))],
        Some(&doc.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answer_data(&query(server.addr, &ask("legacy.example.test.", T::A))),
        vec!["192.0.2.44"]
    );
}

#[test]
fn a_new_zone_never_takes_over_another_file() {
    let dir = fixture("admin");
    let zones = dir.path().join("zones");
    // Zone other.test lives in other.yaml: a zone named `other` would want the same file.
    let yaml = "zone: other.test\nsoa: { mname: ns1.other.test., rname: h.other.test. }\nns: [ns1.other.test.]\nrecords:\n  ns1: { A: [192.0.2.7] }\n";
    std::fs::write(zones.join("other.yaml"), yaml).unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let body = NEW_ZONE.replace("example.test", "other");
    let (status, _, resp) = call(&server, "PUT", "/api/v1/zones/other", Some(&body));
    assert_eq!((status, resp["field"].as_str()), (409, Some("zone")), "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("other.yaml"), "{resp}");
    assert_eq!(std::fs::read_to_string(zones.join("other.yaml")).unwrap(), yaml);
    assert_eq!(
        answer_data(&query(server.addr, &ask("ns1.other.test.", T::A))),
        vec!["192.0.2.7"]
    );
}

#[test]
fn a_zone_whose_soa_is_in_its_master_file_is_not_edited_without_its_serial() {
    let dir = fixture("admin");
    let zones = dir.path().join("zones");
    std::fs::write(
        zones.join("example.test.zone"),
        "$ORIGIN example.test.\n@ 300 IN SOA ns1 hostmaster 7 3600 600 1209600 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n",
    )
    .unwrap();
    let yaml = zones.join("example.test.yaml");
    std::fs::write(
        &yaml,
        "zone: example.test\nimport: example.test.zone\nrecords:\n  static: { A: [192.0.2.80] }\n",
    )
    .unwrap();
    let server = Server::start(&dir.path().join("meridian.yaml"));
    assert_eq!(serial(&server), 7);
    let before = std::fs::read(&yaml).unwrap();
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/static",
        Some(r#"{"A": ["192.0.2.81"]}"#),
    );
    assert_eq!((status, body["field"].as_str()), (409, Some("soa")), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("example.test.zone"),
        "{body}"
    );
    assert_eq!(std::fs::read(&yaml).unwrap(), before);
    assert_eq!(
        answer_data(&query(server.addr, &ask("static.example.test.", T::A))),
        vec!["192.0.2.80"]
    );
}

#[test]
fn a_422_names_the_field_of_each_problem() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        Some(r#"{"A": ["192.0.2.300"], "SPF": "v=spf1 -all"}"#),
    );
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().expect("a problems list");
    let fields: Vec<Option<&str>> = problems.iter().map(|p| p["field"].as_str()).collect();
    assert_eq!(
        fields,
        [Some("records.fresh.A"), Some("records.fresh.SPF")],
        "{body}"
    );
    assert_eq!(body["field"], "records.fresh.A", "{body}");

    // A problem of the zone as a whole names no field of its own: `null` in the list, while
    // the answer's field names the entry edited.
    let (status, _, body) = call(
        &server,
        "PUT",
        "/api/v1/zones/example.test/records/fresh",
        Some(r#"{"A": ["192.0.2.1"], "CNAME": "ns1"}"#),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["problems"][0]["field"].is_null(), "{body}");
    assert_eq!(body["field"], "records.fresh", "{body}");
}

/// An edit reads again only the zone it changes (the others serve on, not parsed again), but
/// what spans zones is judged against all of them as before: with a second file naming a zone
/// being served, an edit of another zone is refused with exactly the problems `meridian check`
/// reports for the same files.
#[test]
fn an_edit_is_judged_against_every_zone_read_again_or_not() {
    let dir = fixture("admin");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let other = r#"{"soa": {"mname": "ns1.other.test.", "rname": "hostmaster.other.test."},
        "ns": ["ns1.other.test."], "records": {"ns1": {"A": ["192.0.2.1"]}}}"#;
    let (status, _, body) = call(&server, "PUT", "/api/v1/zones/other.test", Some(other));
    assert_eq!(status, 201, "{body}");
    // Written by hand and not loaded; it sorts before example.test.yaml, so the file of the zone
    // being served, which the edit does not read again, is the second to name example.test.
    let text = std::fs::read_to_string(dir.path().join("zones/example.test.yaml")).unwrap();
    std::fs::write(dir.path().join("zones/aaa.yaml"), &text).unwrap();
    let edit = r#"{"A": ["192.0.2.8"]}"#;
    let (status, _, body) = call(&server, "PUT", "/api/v1/zones/other.test/records/www", Some(edit));
    assert_eq!(status, 422, "{body}");
    let refused: Vec<String> = body["problems"]
        .as_array()
        .expect("a problems list")
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap().to_string();
            format!("{}:{}:{}: {}", text("file"), p["line"], p["col"], text("message"))
        })
        .collect();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("meridian.yaml"))
        .output()
        .unwrap();
    let checked: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(refused, checked);
    assert_eq!(refused.len(), 1, "{refused:?}");
    let zones = dir.path().join("zones");
    assert_eq!(
        refused[0],
        format!(
            "{}:1:7: zone example.test. is already defined at {}:1:7",
            zones.join("example.test.yaml").display(),
            zones.join("aaa.yaml").display()
        )
    );
    assert!(
        answer_data(&query(server.addr, &ask("www.other.test.", T::A))).is_empty(),
        "nothing applied"
    );

    std::fs::remove_file(dir.path().join("zones/aaa.yaml")).unwrap();
    let (status, _, body) = call(&server, "PUT", "/api/v1/zones/other.test/records/www", Some(edit));
    assert_eq!(status, 201, "a new name: {body}");
    assert_eq!(
        answer_data(&query(server.addr, &ask("www.other.test.", T::A))),
        vec!["192.0.2.8"]
    );
    let m = query(server.addr, &ask("static.example.test.", T::A));
    assert_eq!(
        answer_data(&m),
        vec!["192.0.2.80"],
        "the zone not read again serves on"
    );
}
