//! Load-balanced names end to end: the real binary, a GeoIP database the project builds, and a
//! DNS client sending EDNS Client Subnet from around the world.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType as T;
use std::time::{Duration, Instant};

fn start(schema: &str) -> (tempfile::TempDir, Server) {
    let dir = fixture("gslb");
    build_geoip(&dir.path().join("geo.csv"), &dir.path().join("geo.mmdb"), schema);
    let server = Server::start(&dir.path().join("meridian.yaml"));
    (dir, server)
}

const US: &str = "192.0.2.10";
const EU: &str = "198.51.100.10";
const AP: &str = "203.0.113.10";

#[test]
fn ecs_clients_get_their_region_and_the_right_scope() {
    for schema in ["maxmind", "flat"] {
        let (_dir, server) = start(schema);
        // (ECS subnet, expected address, expected scope)
        let cases = [
            ("10.10.1.0", 24, US, 16), // North America; GeoIP network /16
            ("10.20.0.0", 16, EU, 16), // Europe
            ("10.30.5.0", 24, AP, 16), // Asia
            ("10.50.0.0", 20, US, 11), // Oceania: no rule, default, as is all 10.32/11 (nothing else there)
            ("10.99.7.0", 24, AP, 16), // net: rule beats location
            // /12 is not specific enough: its /14s are answered apart (RFC 7871 §7.2.1), so the
            // scope is longer than the source.
            ("10.16.0.0", 12, US, 14),
            ("2001:db8:20::", 56, "2001:db8:20::10", 48),
        ];
        for (addr, prefix, want, scope) in cases {
            let rtype = if want.contains(':') { T::AAAA } else { T::A };
            let m = query(server.addr, &ask("www.example.test.", rtype).ecs(addr, prefix));
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.metadata.authoritative);
            assert_eq!(
                answer_data(&m),
                vec![want.to_string()],
                "{schema}: {addr}/{prefix}"
            );
            let (_, source, got_scope) = ecs_of(&m).expect("ECS echoed");
            assert_eq!(
                (source, got_scope),
                (prefix, scope),
                "{schema}: scope for {addr}/{prefix}"
            );
            assert_eq!(m.answers[0].ttl, 30);
        }
    }
}

#[test]
fn without_ecs_the_source_address_decides() {
    let (_dir, server) = start("maxmind");
    for (from, want) in [("127.0.0.1", US), ("127.0.2.1", EU), ("127.0.3.1", AP)] {
        let m = query_from(from, server.addr, &ask("www.example.test.", T::A));
        assert_eq!(answer_data(&m), vec![want.to_string()], "from {from}");
        assert!(ecs_of(&m).is_none(), "no ECS asked, none answered");
    }
    // ECS with source prefix 0: the resolver asks us not to use client data; scope 0.
    let m = query_from(
        "127.0.2.1",
        server.addr,
        &ask("www.example.test.", T::A).ecs("0.0.0.0", 0),
    );
    assert_eq!(answer_data(&m), vec![EU.to_string()]);
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(0));
}

#[test]
fn aaaa_goes_to_the_next_region_with_ipv6() {
    let (_dir, server) = start("maxmind");
    // Asia: ap-south has no IPv6, the rule's next rank (eu-west) has.
    let m = query(
        server.addr,
        &ask("www.example.test.", T::AAAA).ecs("10.30.0.0", 24),
    );
    assert_eq!(answer_data(&m), vec!["2001:db8:20::10"]);
    let m = query(
        server.addr,
        &ask("www.example.test.", T::AAAA).ecs("10.10.0.0", 24),
    );
    assert_eq!(answer_data(&m), vec!["2001:db8:10::10"]);
    // A CNAME into a balanced name is followed, and the balanced part decides the scope.
    let m = query(
        server.addr,
        &ask("alias.example.test.", T::A).ecs("10.20.0.0", 24),
    );
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[1].data.to_string(), EU);
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(16));
    // Other types at a balanced name: NODATA with the SOA.
    let m = query(server.addr, &ask("www.example.test.", T::TXT));
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
}

#[test]
fn failover_and_when_all_down_modes() {
    let (_dir, server) = start("maxmind");
    let m = query(server.addr, &ask("fo.example.test.", T::A));
    assert_eq!(
        answer_data(&m),
        vec![EU.to_string()],
        "dead is down: next in failover order"
    );
    assert_eq!(m.answers[0].ttl, 5, "degraded_ttl while a candidate is down");

    let m = query(server.addr, &ask("down-all.example.test.", T::A));
    assert_eq!(answer_data(&m), vec!["192.0.2.66"], "all: fail open");
    let m = query(server.addr, &ask("down-none.example.test.", T::A));
    assert_eq!(
        (m.metadata.response_code, m.answers.len(), m.authorities.len()),
        (ResponseCode::NoError, 0, 1)
    );
    let m = query(server.addr, &ask("down-servfail.example.test.", T::A));
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
    let m = query(server.addr, &ask("down-fallback.example.test.", T::A));
    assert_eq!(answer_data(&m), vec!["192.0.2.250"]);
    let m = query(server.addr, &ask("down-fallback.example.test.", T::AAAA));
    assert_eq!(answer_data(&m), vec!["2001:db8::250"]);
}

#[test]
fn sticky_and_nearest() {
    let (_dir, server) = start("maxmind");
    let mut seen = std::collections::BTreeSet::new();
    for net in 0..40 {
        let subnet = format!("10.{}.{net}.0", 100 + net);
        let first = answer_data(&query(
            server.addr,
            &ask("api.example.test.", T::A).ecs(&subnet, 24),
        ));
        for _ in 0..5 {
            let m = query(server.addr, &ask("api.example.test.", T::A).ecs(&subnet, 24));
            assert_eq!(answer_data(&m), first, "{subnet}/24 must stay on one region");
            assert_eq!(ecs_of(&m).map(|e| e.2), Some(24), "sticky scope: the hashed /24");
        }
        seen.insert(first);
    }
    assert_eq!(
        seen.len(),
        3,
        "40 subnets spread over the three regions: {seen:?}"
    );
    let m = query(server.addr, &ask("near.example.test.", T::A).ecs("10.50.0.0", 24));
    assert_eq!(
        answer_data(&m),
        vec![AP.to_string()],
        "Sydney is nearest to Mumbai"
    );
    let m = query(server.addr, &ask("near.example.test.", T::A).ecs("10.20.0.0", 24));
    assert_eq!(
        answer_data(&m),
        vec![EU.to_string()],
        "London is nearest to Dublin"
    );
}

#[test]
fn geoip_database_replaced_on_disk_while_queries_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (dir, server) = start("maxmind");
    let ask_fr = || ask("www.example.test.", T::A).ecs("10.77.0.0", 24);
    assert_eq!(answer_data(&query(server.addr, &ask_fr())), vec![EU.to_string()]);

    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // `query` panics when a query goes unanswered.
                let m = query(addr, &ask("www.example.test.", T::A).ecs("10.20.0.0", 24));
                assert_eq!(answer_data(&m), vec![EU.to_string()]);
                n += 1;
            }
            n
        })
    };

    // A corrupt file is refused and the old database keeps answering.
    std::fs::write(dir.path().join("geo.mmdb.tmp"), b"garbage").unwrap();
    std::fs::rename(dir.path().join("geo.mmdb.tmp"), dir.path().join("geo.mmdb")).unwrap();
    server.wait_log("GeoIP database not reloaded", Duration::from_secs(5));
    assert_eq!(answer_data(&query(server.addr, &ask_fr())), vec![EU.to_string()]);

    // The next good file moves 10.77/16 to Asia.
    let csv = std::fs::read_to_string(dir.path().join("geo.csv"))
        .unwrap()
        .replace(
            "10.77.0.0/16,EU,FR,IDF,48.86,2.35",
            "10.77.0.0/16,AS,JP,13,35.68,139.69",
        );
    std::fs::write(dir.path().join("geo2.csv"), csv).unwrap();
    build_geoip(
        &dir.path().join("geo2.csv"),
        &dir.path().join("geo.mmdb"),
        "maxmind",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while answer_data(&query(server.addr, &ask_fr())) != vec![AP.to_string()] {
        assert!(
            Instant::now() < deadline,
            "new GeoIP database never took effect:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let n = load.join().expect("a query was lost or wrong during the swap");
    assert!(n > 10, "only {n} queries ran during the swap");
    assert!(server.logs().contains("GeoIP database reloaded"));
}

#[test]
fn explain_shows_the_decision() {
    let dir = fixture("gslb");
    build_geoip(
        &dir.path().join("geo.csv"),
        &dir.path().join("geo.mmdb"),
        "maxmind",
    );
    let out = std::process::Command::new(BIN)
        .args([
            "explain",
            "www.example.test",
            "A",
            "--client",
            "10.30.1.0/24",
            "--config",
        ])
        .arg(dir.path().join("meridian.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "www.example.test. 30 A 203.0.113.10",
        "country JP",
        "GeoIP network /16",
        "geo rule continent:AS matched",
        "geo order: ap-south, eu-west",
        "ECS scope: /16",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    let out = std::process::Command::new(BIN)
        .args(["explain", "fo.example.test", "--client", "192.0.2.1", "--config"])
        .arg(dir.path().join("meridian.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "dead: down (0 of 2 endpoints up",
        "state: down in the configuration",
        "degraded_ttl 5",
        "198.51.100.10",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}
