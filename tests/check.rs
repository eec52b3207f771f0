//! `meridian check`: one broken fixture per validation rule, each reported at its exact place.

mod common;

use common::{BIN, repo_path};
use std::process::Command;

/// (fixture, file and position the problem is reported at, words the message must hold)
const RULES: &[(&str, &str, &str)] = &[
    (
        "bad-ipv4",
        "zones/example.test.yaml:6:26",
        "`192.0.2.300` is not an IPv4 address",
    ),
    (
        "bad-ipv6-in-master-file",
        "zones/example.test.zone:3:18",
        "`2001:db8::g` is not an IPv6 address",
    ),
    (
        "bad-check-name",
        "meridian.yaml:3:3",
        "checks.web check: the name `web check` may hold only letters, digits",
    ),
    (
        "bad-datacenter-name",
        "meridian.yaml:5:3",
        "the name `eu\"west` may hold only letters, digits",
    ),
    (
        "bad-listen",
        "meridian.yaml:2:12",
        "dns.listen: `127.0.0.1` is not an address:port",
    ),
    (
        "bad-mx",
        "zones/example.test.yaml:6:15",
        "MX takes a preference and an exchange name",
    ),
    (
        "cname-beside-data",
        "zones/example.test.yaml:8:12",
        "CNAME at www.example.test. cannot sit beside other data (A at",
    ),
    (
        "duplicate-owner",
        "zones/example.test.yaml:7:3",
        "records: `WWW.example.test.` names the same owner as `www` (line 6): one entry per name",
    ),
    (
        "duplicate-zone",
        "zones/b.yaml:1:7",
        "zone example.test. is already defined at",
    ),
    (
        "missing-glue",
        "zones/example.test.yaml:6:15",
        "glue missing: NS target ns.sub.example.test.",
    ),
    (
        "missing-ns",
        "zones/example.test.yaml:1:7",
        "has no NS records at its apex",
    ),
    ("missing-soa", "zones/example.test.yaml:1:7", "has no SOA"),
    (
        "occluded-by-delegation",
        "zones/example.test.yaml:7:20",
        "hidden by the delegation at sub.example.test.",
    ),
    (
        "out-of-zone",
        "zones/example.test.yaml:6:27",
        "www.example.org. is outside zone example.test.",
    ),
    (
        "ttl-out-of-range",
        "zones/example.test.yaml:6:32",
        "TTL 4294967296 out of range",
    ),
    (
        "unknown-field",
        "zones/example.test.yaml:4:1",
        "unknown field `tll`, did you mean `ttl`?",
    ),
    (
        "unknown-record-type",
        "zones/example.test.yaml:6:10",
        "`SPF` is not a record type",
    ),
    (
        "yaml-syntax",
        "zones/example.test.yaml:5:13",
        "mismatched bracket",
    ),
];

#[test]
fn each_rule_is_reported_at_its_place() {
    let mut failures = Vec::new();
    for (fixture, place, words) in RULES {
        let dir = repo_path("tests/fixtures/check").join(fixture);
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(dir.join("meridian.yaml"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let want = format!("{}: ", dir.join(place).display());
        let hit = stdout.lines().any(|l| l.starts_with(&want) && l.contains(words));
        if out.status.code() != Some(1) || !hit {
            failures.push(format!(
                "{fixture}: exit {:?}, wanted `{want}… {words}` in:\n{stdout}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (fixture, every line `check` prints, paths relative to the fixture): one mistake, one
/// problem, saying what was expected or what was meant; nothing that follows from it.
const ONE_MISTAKE_ONE_PROBLEM: &[(&str, &str)] = &[
    (
        "ttl-with-unit",
        "zones/example.test.yaml:4:6: ttl: a number of seconds, like 300",
    ),
    (
        "typo-key",
        "meridian.yaml:10:5: unknown field `endponts`, did you mean `endpoints`?",
    ),
    (
        "unknown-field",
        "zones/example.test.yaml:4:1: unknown field `tll`, did you mean `ttl`?",
    ),
    (
        "typo-datacenter",
        "zones/example.test.yaml:9:19: gslb.www.datacenters: no data center `eu-wst` in the \
         configuration, did you mean `eu-west`?",
    ),
    (
        "typo-datacenter-in-rule",
        "zones/example.test.yaml:11:26: gslb.api.geo.net:10.0.0.0/8: `us-est` is not one of this \
         name's datacenters, did you mean `us-east`?",
    ),
    (
        "typo-check-name",
        "meridian.yaml:6:47: datacenters.eu-west.endpoints[0].check: no check `wbe` is defined \
         under `checks`, did you mean `web`?",
    ),
    (
        "typo-check-type",
        "meridian.yaml:3:16: checks.web.type: `htp` is not a check type (http, https, tcp), did \
         you mean `http`?",
    ),
    (
        "typo-policy",
        "zones/example.test.yaml:8:13: gslb.www.policy: `wieghted` is not a policy (failover, \
         weighted, geo, nearest, all), did you mean `weighted`?",
    ),
    (
        "bad-check-named-by-endpoints",
        "meridian.yaml:3:27: checks.web.port: 99999 is not a port",
    ),
    (
        "bad-soa-name",
        "zones/example.test.yaml:2:15: soa.mname: empty label in `ns1..example.test.`",
    ),
    (
        "bad-glue-address",
        "zones/example.test.yaml:7:17: records.ns.sub.A: `192.0.2.256` is not an IPv4 address",
    ),
    (
        "duplicate-owner-cname",
        "zones/example.test.yaml:7:3: records: `WWW` names the same owner as `www` (line 6): one \
         entry per name",
    ),
    (
        "bad-datacenter-named-by-zone",
        "meridian.yaml:4:26: datacenters.eu-west.location.country: `XX` is not an ISO 3166-1 \
         country code",
    ),
];

#[test]
fn one_mistake_is_one_problem_that_says_what_was_meant() {
    let mut failures = Vec::new();
    for (fixture, want) in ONE_MISTAKE_ONE_PROBLEM {
        let dir = repo_path("tests/fixtures/check").join(fixture);
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(dir.join("meridian.yaml"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{}/", dir.display());
        let got: Vec<&str> = stdout
            .lines()
            .map(|l| l.strip_prefix(&prefix).unwrap_or(l))
            .collect();
        if out.status.code() != Some(1) || got != [*want] {
            failures.push(format!(
                "{fixture}: exit {:?}, wanted only\n  {want}\ngot\n  {}",
                out.status.code(),
                got.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_config_is_valid() {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_path("meridian.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
}

/// The compose demo: the node file both nodes run passes `meridian check`; the shared state its
/// `init` service pushes (checks, data centers, zones) validates as `cluster push` validates it
/// (`load_local`), and both files name the same etcd members.
#[test]
fn the_compose_demo_config_is_valid() {
    // The node file names paths inside the container: the certificate the `certs` service
    // makes (made here instead), and files beside it (read from the repository).
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["ns1".to_string()]).unwrap();
    std::fs::write(dir.path().join("admin.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("admin-key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut text = std::fs::read_to_string(repo_path("compose/meridian.yaml")).unwrap();
    for (from, to) in [
        (
            "/etc/meridian/tls/".to_string(),
            format!("{}/", dir.path().display()),
        ),
        (
            "token_file: drill.token".into(),
            format!("token_file: {}", repo_path("compose/drill.token").display()),
        ),
        ("../geoip/".into(), format!("{}/", repo_path("geoip").display())),
    ] {
        assert!(text.contains(&from), "compose/meridian.yaml no longer has {from}");
        text = text.replace(&from, &to);
    }
    let node = dir.path().join("meridian.yaml");
    std::fs::write(&node, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let node = meridian::config::load(&node).unwrap();
    let shared = meridian::config::load_local(&repo_path("compose/shared.yaml"))
        .unwrap_or_else(|problems| panic!("compose/shared.yaml:\n{problems}"));
    assert_eq!(shared.zones.len(), 1, "the demo zone");
    assert_eq!(shared.datacenters.len(), 3, "us-east, eu-west, ap-south");
    let endpoints = |c: &meridian::config::Config| c.cluster.as_ref().map(|c| c.endpoints.clone());
    assert_eq!(
        endpoints(&node).map(|e| e.len()),
        Some(3),
        "the three etcd members"
    );
    assert_eq!(
        endpoints(&node),
        endpoints(&shared),
        "push and the nodes reach the same etcd"
    );
}

#[test]
fn a_missing_config_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/meridian.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/nonexistent/meridian.yaml:1:1: cannot read file")
    );
}

/// Mutated zone files never panic validation: every outcome is a config or positioned problems.
#[test]
fn mutated_zone_files_never_panic_validation() {
    use meridian::config::{Overlay, load_overlay};
    let dir = repo_path("tests/fixtures/gslb");
    let zone = dir.join("zones/example.test.yaml");
    let text = std::fs::read_to_string(&zone).unwrap();
    let cfg = dir.join("meridian.yaml");
    // Without its GeoIP database the fixture fails validation early; use one built from its CSV.
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&dir, tmp.path());
    common::build_geoip(
        &tmp.path().join("geo.csv"),
        &tmp.path().join("geo.mmdb"),
        "maxmind",
    );
    let cfg = tmp.path().join(cfg.file_name().unwrap());
    let zone = tmp.path().join("zones/example.test.yaml");
    let alphabet: &[u8] = b" \n:[]{},\"'-#@*.0123456789abcdefgnprstwy";
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..400 {
        let mut s = text.as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let at = next() % (s.len() + 1);
            match next() % 3 {
                0 if at < s.len() => {
                    s.remove(at);
                }
                1 if at < s.len() => s[at] = alphabet[next() % alphabet.len()],
                _ => s.insert(at, alphabet[next() % alphabet.len()]),
            }
        }
        let mut overlay = Overlay::default();
        overlay
            .files
            .insert(zone.clone(), Some(String::from_utf8_lossy(&s).into_owned()));
        match load_overlay(&cfg, None, &overlay) {
            Ok(_) => ok += 1,
            Err(p) => {
                assert!(!p.0.is_empty() && p.0.iter().all(|p| p.line >= 1 && !p.message.is_empty()));
                bad += 1;
            }
        }
    }
    assert!(
        ok > 0 && bad > 0,
        "mutations both kept and broke the zone ({ok} valid, {bad} invalid)"
    );
}
