//! Table tests for the selection pipeline: (name, client, health) → answer. No I/O.

use super::*;
use crate::geo::Location;
use crate::model::gslb::{DcLocation, EndpointId, GeoMatch, GeoRule};
use crate::name::Name;
use std::num::{NonZeroU32, NonZeroUsize};

const US: DcId = DcId(0);
const EU: DcId = DcId(1);
const AP: DcId = DcId(2);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dcs() -> Vec<Datacenter> {
    let mut next = 0;
    let mut dc = |name: &str, coords: (f64, f64), addrs: &[&str], min: usize| {
        let endpoints = addrs
            .iter()
            .map(|a| {
                next += 1;
                Endpoint {
                    id: EndpointId(next),
                    address: ip(a),
                    weight: NonZeroU32::MIN,
                    configured_up: true,
                    check: None,
                    probe_address: None,
                }
            })
            .collect();
        Datacenter {
            name: name.into(),
            location: DcLocation {
                continent: None,
                country: None,
                coords: Some(coords),
            },
            endpoints,
            min_healthy: NonZeroUsize::new(min).unwrap(),
        }
    };
    vec![
        dc(
            "us",
            (39.0, -77.5),
            &["192.0.2.10", "192.0.2.11", "2001:db8:10::10"],
            1,
        ),
        dc("eu", (53.3, -6.3), &["198.51.100.10", "2001:db8:20::10"], 1),
        dc("ap", (19.1, 72.9), &["203.0.113.10", "203.0.113.11"], 2),
    ]
}

fn name(policy: Policy) -> GslbName {
    GslbName {
        owner: Name::parse("www.example.test.", None).unwrap(),
        ttl: 30,
        degraded_ttl: 10,
        policy,
        candidates: vec![US, EU, AP],
        weights: vec![NonZeroU32::MIN; 3],
        sticky: false,
        geo: vec![],
        answer_datacenters: NonZeroUsize::MIN,
        max_addresses: NonZeroUsize::new(8).unwrap(),
        when_all_down: WhenAllDown::All,
    }
}

/// Health as a list of endpoints that are down.
struct Down(Vec<&'static str>);

impl Health for Down {
    fn endpoint_up(&self, _dc: DcId, e: &Endpoint) -> bool {
        !self.0.iter().any(|d| ip(d) == e.address)
    }
}

fn client(addr: &str, prefix: u8) -> Client<'static> {
    Client {
        addr: ip(addr),
        source_prefix: prefix,
        location: None,
        geo_prefix: 0,
        geo: geo::Decision::NONE,
    }
}

fn run(n: &GslbName, fam: Family, c: &Client<'_>, down: &[&'static str], entropy: u64) -> Selection {
    select(
        n,
        &dcs(),
        fam,
        c,
        &Down(down.to_vec()),
        entropy,
        &mut Trace::off(),
    )
}

fn addrs(s: &Selection) -> Vec<String> {
    let mut v: Vec<String> = match &s.outcome {
        Outcome::Addresses(a) => a.iter().map(ToString::to_string).collect(),
        other => vec![format!("{other:?}")],
    };
    v.sort();
    v
}

const US4: [&str; 2] = ["192.0.2.10", "192.0.2.11"];
const AP_DOWN: [&str; 1] = ["203.0.113.10"]; // ap needs 2 healthy endpoints

#[test]
fn failover_table() {
    let n = name(Policy::Failover);
    let any = client("192.0.2.1", 32);
    // (down endpoints, family, expected addresses, expected ttl)
    let cases: Vec<(Vec<&'static str>, Family, Vec<&str>, u32)> = vec![
        (vec![], Family::V4, US4.to_vec(), 30),
        (
            vec!["192.0.2.10", "192.0.2.11", "2001:db8:10::10"],
            Family::V4,
            vec!["198.51.100.10"],
            10,
        ),
        (US4.to_vec(), Family::V4, vec!["198.51.100.10"], 10), // us up on IPv6 only: IPv4 moves, TTL degraded
        (vec!["192.0.2.10"], Family::V4, vec!["192.0.2.11"], 30), // DC still up: healthy endpoints only
        (vec![], Family::V6, vec!["2001:db8:10::10"], 30),
        (vec!["2001:db8:10::10"], Family::V6, vec!["2001:db8:20::10"], 10), // us has no v6 up: next with v6
        (
            vec![
                "192.0.2.10",
                "192.0.2.11",
                "2001:db8:10::10",
                "198.51.100.10",
                "2001:db8:20::10",
            ],
            Family::V4,
            vec!["203.0.113.10", "203.0.113.11"],
            10,
        ),
    ];
    for (down, fam, want, ttl) in cases {
        let s = run(&n, fam, &any, &down, 1);
        assert_eq!(addrs(&s), want, "down {down:?} {fam:?}");
        assert_eq!(s.ttl, ttl, "down {down:?}");
        assert_eq!(s.scope, 0, "failover ignores the client");
    }
}

#[test]
fn min_healthy_takes_a_datacenter_down() {
    let mut n = name(Policy::Failover);
    n.candidates = vec![AP, US];
    let s = run(&n, Family::V4, &client("192.0.2.1", 32), &AP_DOWN, 1);
    assert_eq!(addrs(&s), US4.to_vec(), "ap has 1 of 2 up with min_healthy 2");
}

#[test]
fn when_all_down_modes() {
    let everything: Vec<&'static str> = vec![
        "192.0.2.10",
        "192.0.2.11",
        "2001:db8:10::10",
        "198.51.100.10",
        "2001:db8:20::10",
        "203.0.113.10",
        "203.0.113.11",
    ];
    let c = client("192.0.2.1", 32);
    let mut n = name(Policy::Failover);
    // (mode, family, expected)
    let cases: Vec<(WhenAllDown, Family, Vec<&str>)> = vec![
        (WhenAllDown::All, Family::V4, US4.to_vec()),
        (WhenAllDown::None, Family::V4, vec!["NoData"]),
        (WhenAllDown::Servfail, Family::V4, vec!["ServFail"]),
        (
            WhenAllDown::Fallback(vec![ip("192.0.2.99"), ip("2001:db8::99")]),
            Family::V4,
            vec!["192.0.2.99"],
        ),
        (
            WhenAllDown::Fallback(vec![ip("192.0.2.99"), ip("2001:db8::99")]),
            Family::V6,
            vec!["2001:db8::99"],
        ),
        (
            WhenAllDown::Fallback(vec![ip("192.0.2.99")]),
            Family::V6,
            vec!["NoData"],
        ),
    ];
    for (mode, fam, want) in cases {
        n.when_all_down = mode.clone();
        let s = run(&n, fam, &c, &everything, 1);
        assert_eq!(addrs(&s), want, "{mode:?} {fam:?}");
        assert_eq!(s.ttl, 10, "degraded TTL while down");
    }
}

#[test]
fn weighted_follows_weights() {
    let mut n = name(Policy::Weighted);
    n.candidates = vec![US, EU];
    n.weights = vec![NonZeroU32::new(3).unwrap(), NonZeroU32::MIN];
    let mut us = 0;
    for e in 0..4000u64 {
        let s = run(&n, Family::V4, &client("192.0.2.1", 32), &[], crate::rng::mix(e));
        assert_eq!(s.scope, 0, "random choice does not depend on the client");
        if s.datacenters[..] == [US] {
            us += 1;
        }
    }
    assert!((2800..3200).contains(&us), "us chosen {us} of 4000 at weight 3:1");
}

#[test]
fn sticky_is_stable_per_subnet_and_scoped() {
    let mut n = name(Policy::Weighted);
    n.sticky = true;
    let mut spread = std::collections::BTreeSet::new();
    for net in 0..64u8 {
        let c = client(&format!("10.{net}.7.0"), 24);
        let first = run(&n, Family::V4, &c, &[], 1).datacenters;
        for e in 2..20 {
            assert_eq!(
                run(&n, Family::V4, &c, &[], e).datacenters,
                first,
                "subnet 10.{net}.7.0/24 moved"
            );
        }
        spread.insert(first[0]);
        // Another address in the same /24 is the same client for stickiness.
        let same = client(&format!("10.{net}.7.200"), 32);
        assert_eq!(run(&n, Family::V4, &same, &[], 99).datacenters, first);
    }
    assert_eq!(spread.len(), 3, "64 subnets use every data center");
    assert_eq!(run(&n, Family::V4, &client("10.1.2.0", 24), &[], 1).scope, 24);
    // A /16 source is not specific enough: its /24s are answered apart (RFC 7871 §7.2.1).
    assert_eq!(
        run(&n, Family::V4, &client("10.1.0.0", 16), &[], 1).scope,
        24,
        "the sticky prefix, beyond the source prefix"
    );
    assert_eq!(
        run(&n, Family::V6, &client("2001:db8:1:2::", 56), &[], 1).scope,
        48
    );
}

#[test]
fn sticky_removal_moves_only_that_datacenters_clients() {
    let mut n = name(Policy::Weighted);
    n.sticky = true;
    let eu_down = ["198.51.100.10", "2001:db8:20::10"];
    for net in 0..200u8 {
        let c = client(&format!("10.{net}.0.0"), 24);
        let before = run(&n, Family::V4, &c, &[], 1).datacenters[0];
        let after = run(&n, Family::V4, &c, &eu_down, 1).datacenters[0];
        if before != EU {
            assert_eq!(
                before, after,
                "10.{net}.0.0/24 moved though its data center stayed up"
            );
        } else {
            assert_ne!(after, EU);
        }
    }
}

fn geo_name() -> GslbName {
    let mut n = name(Policy::Geo);
    let rule = |m: GeoMatch, ranks: Vec<Vec<DcId>>| GeoRule { matches: m, ranks };
    n.geo = vec![
        rule(
            GeoMatch::Net {
                addr: ip("10.99.0.0"),
                len: 16,
            },
            vec![vec![AP]],
        ),
        rule(GeoMatch::Country("JP".into()), vec![vec![AP, US]]),
        rule(GeoMatch::Continent("EU".into()), vec![vec![EU], vec![US]]),
        rule(GeoMatch::Default, vec![vec![US], vec![EU]]),
    ];
    n
}

fn located(addr: &str, prefix: u8, loc: &'static Location, geo_prefix: u8) -> Client<'static> {
    Client {
        addr: ip(addr),
        source_prefix: prefix,
        location: Some(loc),
        geo_prefix,
        geo: geo::Decision::NONE,
    }
}

/// A database of `(network, country)` rows.
fn geo_db(rows: &[(&str, &str)]) -> crate::geo::GeoDb {
    crate::geo::build::country_db(rows)
}

/// `c` with `n`'s geo rules decided over `db`, as the answer path does.
fn decided(n: &GslbName, db: Option<&crate::geo::GeoDb>, c: Client<'static>) -> Client<'static> {
    Client {
        geo: geo::RuleTree::compile(&n.geo, db).decide(c.addr),
        ..c
    }
}

#[test]
fn geo_table() {
    static DE: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        continent: Some("EU".into()),
        country: Some("DE".into()),
        ..Default::default()
    });
    static BR: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        continent: Some("SA".into()),
        country: Some("BR".into()),
        ..Default::default()
    });
    let n = geo_name();
    let db = geo_db(&[
        ("192.0.0.0/20", "DE"),
        ("192.0.32.0/26", "DE"),
        ("10.0.0.0/8", "DE"),
        ("198.51.100.0/24", "BR"),
    ]);
    let eu_down = vec!["198.51.100.10", "2001:db8:20::10"];
    // (client, down, expected first DC, expected scope); the location is what the database
    // says, for the trace.
    let cases: Vec<(Client<'static>, Vec<&'static str>, DcId, u8)> = vec![
        (located("192.0.2.0", 24, &DE, 20), vec![], EU, 20), // continent rule; GeoIP network /20
        (located("192.0.32.0", 24, &DE, 26), vec![], EU, 26), // GeoIP narrower than the source: the rest of the /24 is not DE
        (located("192.0.2.0", 24, &DE, 20), eu_down.clone(), US, 20), // next rank of the same rule
        (located("10.99.3.0", 24, &DE, 8), vec![], AP, 16),   // net rule beats location
        (located("10.98.0.0", 24, &DE, 8), vec![], EU, 16),   // location, but 10.99/16 must be excluded
        (located("198.51.100.0", 24, &BR, 24), vec![], US, 6), // no rule for SA: default, over 196/6
        (client("203.0.113.0", 24), vec![], US, 5),           // not in the database: default, over 200/5
        (
            located("192.0.2.0", 24, &DE, 20),
            [eu_down.clone(), US4.to_vec(), vec!["2001:db8:10::10"]].concat(),
            AP,
            20,
        ), // rule and default down: any other up DC
    ];
    for (c, down, want, scope) in cases {
        let c = decided(&n, Some(&db), c);
        let s = run(&n, Family::V4, &c, &down, 1);
        assert_eq!(
            s.datacenters.first(),
            Some(&want),
            "{} {:?} down {down:?}",
            c.addr,
            c.location
        );
        assert_eq!(s.scope, scope, "scope for {} (geo /{})", c.addr, c.geo_prefix);
    }
    // Without a database only the net rule shapes the scope: 10.99/16 excluded at /1.
    let s = run(
        &n,
        Family::V4,
        &decided(&n, None, client("192.0.2.0", 24)),
        &[],
        1,
    );
    assert_eq!((s.datacenters.first(), s.scope), (Some(&US), 1));
}

#[test]
fn geo_rank_splits_by_weight() {
    static JP: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        continent: Some("AS".into()),
        country: Some("JP".into()),
        ..Default::default()
    });
    let mut n = geo_name();
    n.weights = vec![NonZeroU32::MIN, NonZeroU32::MIN, NonZeroU32::new(4).unwrap()]; // us 1, ap 4
    let db = geo_db(&[("10.30.0.0/16", "JP")]);
    let jp = decided(&n, Some(&db), located("10.30.0.0", 24, &JP, 16));
    let mut ap = 0;
    for e in 0..2000u64 {
        let s = run(&n, Family::V4, &jp, &[], crate::rng::mix(e));
        if s.datacenters[..] == [AP] {
            ap += 1;
        }
    }
    assert!((1500..1700).contains(&ap), "ap chosen {ap} of 2000 at 4:1");
}

#[test]
fn nearest_orders_by_distance() {
    static SYDNEY: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        coords: Some((-33.9, 151.2)),
        ..Default::default()
    });
    static LONDON: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        coords: Some((51.5, -0.1)),
        ..Default::default()
    });
    let n = name(Policy::Nearest);
    assert_eq!(
        run(&n, Family::V4, &located("10.50.0.0", 16, &SYDNEY, 16), &[], 1).datacenters[..],
        [AP]
    );
    let s = run(&n, Family::V4, &located("10.20.0.0", 24, &LONDON, 16), &[], 1);
    assert_eq!((&s.datacenters[..], s.scope), (&[EU][..], 16));
    let s = run(
        &n,
        Family::V4,
        &located("10.20.0.0", 24, &LONDON, 16),
        &["198.51.100.10", "2001:db8:20::10"],
        1,
    );
    assert_eq!(s.datacenters[..], [US], "next nearest when the nearest is down");
    assert_eq!(
        run(&n, Family::V4, &client("10.0.0.0", 8), &[], 1).datacenters[..],
        [US],
        "no coordinates: candidate order"
    );
}

#[test]
fn all_answers_every_healthy_datacenter_within_max_addresses() {
    let mut n = name(Policy::All);
    let s = run(&n, Family::V4, &client("192.0.2.1", 32), &[], 1);
    assert_eq!(s.datacenters[..], [US, EU, AP]);
    assert_eq!(addrs(&s).len(), 5);
    n.max_addresses = NonZeroUsize::new(3).unwrap();
    let s = run(&n, Family::V4, &client("192.0.2.1", 32), &US4, 1);
    assert_eq!(s.datacenters[..], [EU, AP]);
    assert_eq!(addrs(&s).len(), 3);
    let s = run(&n, Family::V6, &client("192.0.2.1", 32), &[], 1);
    assert_eq!(addrs(&s), vec!["2001:db8:10::10", "2001:db8:20::10"]);
}

#[test]
fn addresses_rotate_and_follow_endpoint_weights() {
    let mut n = name(Policy::Failover);
    n.max_addresses = NonZeroUsize::MIN;
    let mut d = dcs();
    d[0].endpoints[0].weight = NonZeroU32::new(3).unwrap(); // 192.0.2.10 weight 3, .11 weight 1
    let mut heavy = 0;
    for e in 0..4000u64 {
        let s = select(
            &n,
            &d,
            Family::V4,
            &client("192.0.2.1", 32),
            &Down(vec![]),
            crate::rng::mix(e),
            &mut Trace::off(),
        );
        if addrs(&s) == vec!["192.0.2.10"] {
            heavy += 1;
        }
    }
    assert!(
        (2800..3200).contains(&heavy),
        "weight-3 endpoint first {heavy} of 4000"
    );
}

#[test]
fn aaaa_without_v6_anywhere_is_nodata() {
    let mut n = name(Policy::Failover);
    n.candidates = vec![AP];
    let s = run(&n, Family::V6, &client("192.0.2.1", 32), &[], 1);
    assert_eq!(s.outcome, Outcome::NoData);
}

#[test]
fn explain_trace_names_the_reasons() {
    let n = geo_name();
    static DE: std::sync::LazyLock<Location> = std::sync::LazyLock::new(|| Location {
        continent: Some("EU".into()),
        country: Some("DE".into()),
        ..Default::default()
    });
    let mut t = Trace::enabled();
    let db = geo_db(&[("192.0.0.0/20", "DE")]);
    select(
        &n,
        &dcs(),
        Family::V4,
        &decided(&n, Some(&db), located("192.0.2.0", 24, &DE, 20)),
        &Down(vec!["198.51.100.10", "2001:db8:20::10"]),
        1,
        &mut t,
    );
    let all = t.steps.join("\n");
    for want in [
        "country DE",
        "eu: down (0 of 2 endpoints up",
        "geo rule continent:EU matched",
        "chose us",
        "degraded_ttl 10",
    ] {
        assert!(all.contains(want), "missing `{want}` in\n{all}");
    }
}

/// RFC 7871 §7.2.1: where the client's source prefix holds addresses answered differently (a
/// /25 `net:` rule inside a /24 ECS prefix), the scope is longer than the source, so that no
/// resolver caches the answer for the whole /24.
#[test]
fn a_scope_longer_than_the_source_prefix_is_said() {
    let mut n = name(Policy::Geo);
    n.geo = vec![
        GeoRule {
            matches: GeoMatch::Net {
                addr: ip("10.0.0.128"),
                len: 25,
            },
            ranks: vec![vec![AP]],
        },
        GeoRule {
            matches: GeoMatch::Default,
            ranks: vec![vec![US]],
        },
    ];
    // As the answer path asks: the ECS address masked to its source prefix.
    let masked = crate::geo::mask(ip("10.0.0.200"), 24);
    let ecs = run(
        &n,
        Family::V4,
        &decided(&n, None, client(&masked.to_string(), 24)),
        &[],
        1,
    );
    let inside = run(
        &n,
        Family::V4,
        &decided(&n, None, client("10.0.0.130", 32)),
        &[],
        1,
    );
    assert_ne!(
        addrs(&ecs),
        addrs(&inside),
        "the two /25s are answered differently"
    );
    assert_eq!(ecs.scope, 25, "the answer holds for 10.0.0.0/25 alone");
}
