//! Geo rules: which rule a client matches, and the widest client prefix that keeps the same
//! match (the ECS scope).

use crate::geo::Location;
use crate::model::gslb::{DcId, GeoMatch, GeoRule, GslbName};
use std::net::IpAddr;

/// The ranks a client that `rule` matched is offered, most preferred first: the rule's own, then
/// the `default` rule's (a data center may appear twice; the first place counts).
pub fn ranks<'a>(name: &'a GslbName, rule: Option<&'a GeoRule>) -> impl Iterator<Item = &'a [DcId]> {
    let default = name.geo.iter().find(|r| r.matches == GeoMatch::Default);
    rule.into_iter()
        .chain(default)
        .flat_map(|r| r.ranks.iter().map(Vec::as_slice))
}

/// The rule that applies: the first (most specific) whose condition holds.
pub fn matching<'r>(
    rules: &'r [GeoRule],
    addr: Option<IpAddr>,
    location: Option<&Location>,
) -> Option<&'r GeoRule> {
    rules.iter().find(|r| holds(&r.matches, addr, location))
}

fn holds(m: &GeoMatch, addr: Option<IpAddr>, loc: Option<&Location>) -> bool {
    match m {
        GeoMatch::Net { addr: net, len } => addr.is_some_and(|a| contains(*net, *len, a)),
        GeoMatch::Subdivision(s) => loc.and_then(|l| l.subdivision.as_deref()) == Some(&**s),
        GeoMatch::Country(c) => loc.and_then(|l| l.country.as_deref()) == Some(&**c),
        GeoMatch::Continent(c) => loc.and_then(|l| l.continent.as_deref()) == Some(&**c),
        GeoMatch::Default => true,
    }
}

/// Whether `net/len` contains `addr` (same family only).
pub fn contains(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    net.is_ipv4() == addr.is_ipv4() && crate::geo::mask(addr, len) == net
}

fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

/// Length of the common prefix of two addresses of one family.
fn common_prefix(a: IpAddr, b: IpAddr) -> u8 {
    let ((x, max), (y, _)) = (bits(a), bits(b));
    ((x ^ y).leading_zeros() as u8).min(max)
}

/// The widest prefix of `addr` within which every address matches the same rule.
///
/// `base` is where the matched condition itself is constant: the `net:` rule's length, or the
/// GeoIP network's prefix for location rules (0 when only `default` could match). Any `net:`
/// rule that overlaps that block without containing `addr` must be excluded, which takes one
/// bit more than the prefix the two share.
pub fn scope(rules: &[GeoRule], addr: IpAddr, matched: Option<&GeoRule>, geo_prefix: u8) -> u8 {
    let uses_location = rules.iter().any(|r| {
        matches!(
            r.matches,
            GeoMatch::Subdivision(_) | GeoMatch::Country(_) | GeoMatch::Continent(_)
        )
    });
    let mut base = match matched.map(|r| &r.matches) {
        Some(GeoMatch::Net { len, .. }) => *len,
        _ if uses_location => geo_prefix,
        _ => 0,
    };
    for r in rules {
        let GeoMatch::Net { addr: net, len } = r.matches else {
            continue;
        };
        if net.is_ipv4() != addr.is_ipv4() || contains(net, len, addr) {
            continue;
        }
        // Overlaps addr/base without containing addr: it lies inside that block.
        if len > base && contains(crate::geo::mask(addr, base), base, net) {
            base = base.max(common_prefix(addr, net) + 1);
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gslb::DcId;

    fn net(s: &str) -> GeoRule {
        let (a, l) = s.split_once('/').unwrap();
        GeoRule {
            matches: GeoMatch::Net {
                addr: a.parse().unwrap(),
                len: l.parse().unwrap(),
            },
            ranks: vec![vec![DcId(0)]],
        }
    }
    fn country(c: &str) -> GeoRule {
        GeoRule {
            matches: GeoMatch::Country(c.into()),
            ranks: vec![vec![DcId(1)]],
        }
    }
    fn default() -> GeoRule {
        GeoRule {
            matches: GeoMatch::Default,
            ranks: vec![vec![DcId(2)]],
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn scope_table() {
        // (rules, client, GeoIP prefix of the client's network, expected scope)
        let rules = vec![net("10.20.0.0/16"), net("10.0.0.0/8"), country("DE"), default()];
        let only_nets = vec![net("10.20.0.0/16"), default()];
        let cases: Vec<(&Vec<GeoRule>, &str, u8, u8)> = vec![
            (&rules, "10.20.1.1", 12, 16),      // a net rule decides: its own prefix
            (&rules, "10.1.1.1", 12, 12),       // /8 matched, but 10.20/16 inside it: split at bit 11
            (&rules, "10.30.1.1", 12, 13),      // 10.30 shares 12 bits with 10.20 → /13 excludes it
            (&rules, "192.0.2.1", 24, 24),      // a location rule: the GeoIP network's prefix
            (&rules, "192.0.2.1", 0, 1),        // GeoIP knows nothing narrower: still exclude 10/8 at /1
            (&only_nets, "192.0.2.1", 24, 1),   // location unused: only the net rule shapes it
            (&only_nets, "2001:db8::1", 48, 0), // other family: nothing applies
        ];
        for (rules, client, geo_prefix, want) in cases {
            let m = matching(rules, Some(ip(client)), None);
            assert_eq!(
                scope(rules, ip(client), m, geo_prefix),
                want,
                "{client} /{geo_prefix}"
            );
        }
    }

    #[test]
    fn most_specific_rule_wins() {
        let rules = vec![net("10.20.0.0/16"), country("DE"), default()];
        let de = Location {
            country: Some("DE".into()),
            ..Default::default()
        };
        assert_eq!(
            matching(&rules, Some(ip("10.20.0.1")), Some(&de))
                .unwrap()
                .matches,
            rules[0].matches
        );
        assert_eq!(
            matching(&rules, Some(ip("10.21.0.1")), Some(&de))
                .unwrap()
                .matches,
            rules[1].matches
        );
        assert_eq!(
            matching(&rules, Some(ip("10.21.0.1")), None).unwrap().matches,
            GeoMatch::Default
        );
    }
}
