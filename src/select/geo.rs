//! Geo rules: which rule a client matches, and the widest client prefix that keeps the same
//! match (the ECS scope), compiled into a prefix tree over the GeoIP database ([`RuleTree`]).

use crate::geo::tree::{PrefixTree, RankedNet};
use crate::geo::{GeoDb, Location};
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

/// No rule matched (a name without `default`, a client no rule covers).
const NO_RULE: u32 = crate::geo::tree::MAX_VALUE;

/// What a name's geo rules decide for a client: the rule that matches it and the ECS scope,
/// the widest prefix of the client's address over which the same rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index into the name's rules, or `NO_RULE`.
    rule: u32,
    pub scope: u8,
}

impl Decision {
    /// For clients of names without geo rules: no rule, scope 0.
    pub const NONE: Decision = Decision {
        rule: NO_RULE,
        scope: 0,
    };

    /// The rule [`matching`] finds for `addr` itself, scope the whole address: for rules no
    /// tree was compiled from.
    pub fn exact(rules: &[GeoRule], addr: IpAddr, location: Option<&Location>) -> Decision {
        let rule = rules
            .iter()
            .position(|r| holds(&r.matches, Some(addr), location))
            .map_or(NO_RULE, |i| i as u32);
        let scope = if addr.is_ipv4() { 32 } else { 128 };
        Decision { rule, scope }
    }

    /// The rule decided, out of the rules the tree was compiled from.
    pub fn rule<'r>(&self, rules: &'r [GeoRule]) -> Option<&'r GeoRule> {
        rules.get(self.rule as usize)
    }
}

/// A name's geo rules compiled over a GeoIP database: a prefix tree whose leaves are the rule
/// each address matches, equal neighbours merged. `decide` is one walk down it.
///
/// Built from every network of the database (`GeoDb::tree`): each location gets the first
/// location rule (or `default`) that holds for it, then every `net:` rule takes the addresses
/// it contains where it comes before that rule in the list, as in [`matching`]. Only the rules'
/// conditions and order count, so names with the same conditions share one tree.
#[derive(Debug)]
pub struct RuleTree {
    tree: PrefixTree,
}

impl RuleTree {
    /// Compiles `rules` (in the order [`matching`] tries them) over `db`.
    pub fn compile(rules: &[GeoRule], db: Option<&GeoDb>) -> RuleTree {
        let first = |loc: Option<&Location>| {
            rules
                .iter()
                .position(|r| holds(&r.matches, None, loc))
                .map_or(NO_RULE, |i| i as u32)
        };
        let nowhere = first(None);
        // No leaf ranks before the first rule that is not a net.
        let floor = rules
            .iter()
            .position(|r| !matches!(r.matches, GeoMatch::Net { .. }))
            .map_or(NO_RULE, |i| i as u32);
        let nets: Vec<RankedNet> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r.matches {
                GeoMatch::Net { addr, len } => Some(RankedNet {
                    addr,
                    len,
                    rank: i as u32,
                }),
                _ => None,
            })
            .collect();
        let uses_location = rules.iter().any(|r| {
            matches!(
                r.matches,
                GeoMatch::Subdivision(_) | GeoMatch::Country(_) | GeoMatch::Continent(_)
            )
        });
        let tree = match db.filter(|_| uses_location) {
            Some(db) => {
                let by_location: Vec<u32> = db.locations().iter().map(|l| first(Some(l))).collect();
                let rank = |v: u32| by_location.get(v as usize).copied().unwrap_or(nowhere);
                db.tree().ranked(rank, floor, &nets)
            }
            None => PrefixTree::uniform(0).ranked(|_| nowhere, floor, &nets),
        };
        RuleTree { tree }
    }

    /// The rule `addr` matches and the widest prefix of `addr` that matches it throughout.
    /// One walk down the tree: no allocation, no lock.
    pub fn decide(&self, addr: IpAddr) -> Decision {
        let (rule, scope) = self.tree.lookup(addr);
        Decision { rule, scope }
    }

    /// The tree, for its size.
    pub fn tree(&self) -> &PrefixTree {
        &self.tree
    }
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

    fn loc_rule(m: GeoMatch) -> GeoRule {
        GeoRule {
            matches: m,
            ranks: vec![vec![DcId(1)]],
        }
    }

    /// A database of `(network, country)` rows (continents from the country).
    fn db(rows: &[(&str, &str)]) -> GeoDb {
        crate::geo::build::country_db(rows)
    }

    /// The rule's place in `rules`, for messages and comparisons.
    fn index(rules: &[GeoRule], r: Option<&GeoRule>) -> Option<usize> {
        r.map(|r| rules.iter().position(|x| std::ptr::eq(x, r)).unwrap())
    }

    #[test]
    fn scope_table() {
        let db = db(&[
            ("192.0.2.0/24", "DE"),
            ("192.0.3.0/24", "DE"),
            ("198.51.100.0/24", "FR"),
            ("2001:db8:10::/48", "DE"),
            ("2001:db8:11::/48", "DE"),
        ]);
        let rules = vec![net("10.20.0.0/16"), net("10.0.0.0/8"), country("DE"), default()];
        let only_nets = vec![net("10.20.0.0/16"), default()];
        let v6_net = vec![net("2001:db8:10:5::/64"), country("DE"), default()];
        // (rules, client, expected rule index, expected scope)
        let cases: Vec<(&Vec<GeoRule>, &str, Option<usize>, u8)> = vec![
            (&rules, "10.20.1.1", Some(0), 16),    // a net rule decides: its own prefix
            (&rules, "10.1.1.1", Some(1), 12),     // /8 matched, but 10.20/16 inside it: 10.0/12
            (&rules, "10.30.1.1", Some(1), 13),    // 10.30 shares 12 bits with 10.20 → /13
            (&rules, "192.0.2.1", Some(2), 23),    // two DE /24s side by side: one /23
            (&rules, "198.51.100.1", Some(3), 6),  // FR has no rule: default, as wide as 192.0.2/23 allows
            (&rules, "203.0.113.1", Some(3), 5),   // outside the database: default, widest correct
            (&only_nets, "192.0.2.1", Some(1), 1), // location unused: only the net shapes it
            (&only_nets, "2001:db8::1", Some(1), 0), // other family: nothing applies
            (&rules, "2001:db8:10::1", Some(2), 47), // IPv6 networks merge too
            (&rules, "::ffff:192.0.2.1", Some(2), 119), // IPv4-mapped: the IPv4 tree, 96 bits down
            (&rules, "::ffff:10.20.1.1", Some(3), 97), // IPv4 net rules hold for IPv4 clients only
            (&v6_net, "2001:db8:10:5::1", Some(0), 64),
            (&v6_net, "2001:db8:10:6::1", Some(1), 63), // DE, but 2001:db8:10:5::/64 excluded
        ];
        for (rules, client, want, scope) in cases {
            let tree = RuleTree::compile(rules, Some(&db));
            let d = tree.decide(ip(client));
            assert_eq!((index(rules, d.rule(rules)), d.scope), (want, scope), "{client}");
            let old = matching(rules, Some(ip(client)), db.lookup(ip(client)).location);
            assert_eq!(index(rules, old), want, "{client}: the same rule as matching()");
        }
    }

    #[test]
    fn the_first_rule_in_the_list_wins_whatever_the_order() {
        let db = db(&[("192.0.2.0/24", "DE"), ("10.0.0.0/8", "FR")]);
        // Not in the configuration's order: a location rule before overlapping nets.
        let rules = vec![
            country("DE"),
            net("192.0.2.0/25"),
            net("10.0.0.0/9"),
            net("10.0.0.0/16"),
            default(),
        ];
        let tree = RuleTree::compile(&rules, Some(&db));
        let cases = [
            ("192.0.2.1", Some(0), 24), // DE comes before the net inside it
            ("10.0.0.1", Some(2), 9),   // the /9 comes first: the /16 inside it never wins
            ("10.200.0.1", Some(4), 9),
        ];
        for (client, want, scope) in cases {
            let d = tree.decide(ip(client));
            assert_eq!(
                (index(&rules, d.rule(&rules)), d.scope),
                (want, scope),
                "{client}"
            );
        }
    }

    #[test]
    fn without_default_an_uncovered_client_matches_nothing() {
        let db = db(&[("192.0.2.0/24", "DE")]);
        let rules = vec![country("DE")];
        let tree = RuleTree::compile(&rules, Some(&db));
        assert_eq!(tree.decide(ip("192.0.2.1")).rule(&rules), Some(&rules[0]));
        let d = tree.decide(ip("192.0.3.1"));
        assert_eq!((d.rule(&rules), d.scope), (None, 24));
    }

    /// The tree against `matching()` over random databases, rule sets and clients: the same
    /// rule for every client, and every address inside the scope matches that rule too.
    #[test]
    fn the_tree_agrees_with_matching_for_random_clients() {
        let mut seed = 0u64;
        let mut next = move || {
            seed += 1;
            crate::rng::mix(seed)
        };
        const COUNTRIES: [&str; 6] = ["DE", "FR", "US", "JP", "BR", "CA"];
        for round in 0..12 {
            // Networks (overlapping ones too: the more specific wins) in two /8s, IPv6 and
            // IPv4, so that neighbours and nesting are common.
            let mut rows: Vec<(String, &str)> = Vec::new();
            for _ in 0..150 {
                let r = next();
                let len = 8 + (r % 21) as u8;
                let a = u32::from_be_bytes([
                    10 + (r >> 8) as u8 % 2 * 182,
                    (r >> 16) as u8,
                    (r >> 24) as u8,
                    (r >> 32) as u8,
                ]);
                let addr = crate::geo::mask(IpAddr::from(a.to_be_bytes()), len);
                rows.push((
                    format!("{addr}/{len}"),
                    COUNTRIES[(r >> 40) as usize % COUNTRIES.len()],
                ));
            }
            for _ in 0..60 {
                let r = next();
                let len = 32 + (r % 33) as u8;
                let a = (0x2001_0db8u128 << 96) | (u128::from(r >> 8) << 64);
                let addr = crate::geo::mask(IpAddr::from(a.to_be_bytes()), len);
                rows.push((
                    format!("{addr}/{len}"),
                    COUNTRIES[(r >> 56) as usize % COUNTRIES.len()],
                ));
            }
            let rows: Vec<(&str, &str)> = rows.iter().map(|(n, c)| (n.as_str(), *c)).collect();
            let db = db(&rows);
            // Rules: some nets (nested and overlapping the networks), some locations, a default
            // most of the time; in the configuration's order, or shuffled.
            let mut rules = Vec::new();
            for _ in 0..(next() % 6) {
                let r = next();
                let len = 8 + (r % 17) as u8;
                let a =
                    u32::from_be_bytes([10 + (r >> 8) as u8 % 2 * 182, (r >> 16) as u8, (r >> 24) as u8, 0]);
                let addr = crate::geo::mask(IpAddr::from(a.to_be_bytes()), len);
                rules.push(net(&format!("{addr}/{len}")));
            }
            if next() % 2 == 0 {
                rules.push(net("2001:db8::/33"));
            }
            for c in COUNTRIES.iter().filter(|_| next() % 3 == 0) {
                rules.push(country(c));
            }
            if next() % 2 == 0 {
                rules.push(loc_rule(GeoMatch::Continent("EU".into())));
            }
            if round % 4 != 3 {
                rules.push(default());
            }
            if round % 3 == 2 {
                rules.sort_by_key(|_| next());
            }
            let tree = RuleTree::compile(&rules, Some(&db));
            let rule_of = |a: IpAddr| index(&rules, matching(&rules, Some(a), db.lookup(a).location));
            for _ in 0..2000 {
                let r = next();
                let v4 = u32::from_be_bytes([
                    10 + (r >> 8) as u8 % 2 * 182,
                    (r >> 16) as u8,
                    (r >> 24) as u8,
                    (r >> 32) as u8,
                ]);
                let client: IpAddr = match r % 6 {
                    0 => IpAddr::from((r as u32).to_be_bytes()),
                    1 | 2 => IpAddr::from(v4.to_be_bytes()),
                    3 => IpAddr::from(((0x2001_0db8u128 << 96) | u128::from(next()) << 32).to_be_bytes()),
                    4 => IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
                    _ => IpAddr::from((u128::from(next()) << 64 | u128::from(next())).to_be_bytes()),
                };
                let d = tree.decide(client);
                let want = rule_of(client);
                assert_eq!(
                    index(&rules, d.rule(&rules)),
                    want,
                    "round {round}: {client} with {rules:?}"
                );
                let width = if client.is_ipv4() { 32 } else { 128 };
                for _ in 0..4 {
                    // An address in the scope: the client's first `scope` bits, the rest random.
                    let noise = u128::from(next()) << 64 | u128::from(next());
                    let other = match client {
                        IpAddr::V4(a) => {
                            let keep = if d.scope == 0 {
                                0
                            } else {
                                u32::MAX << (32 - u32::from(d.scope))
                            };
                            IpAddr::from(((u32::from(a) & keep) | (noise as u32 & !keep)).to_be_bytes())
                        }
                        IpAddr::V6(a) => {
                            let keep = if d.scope == 0 {
                                0
                            } else {
                                u128::MAX << (128 - u32::from(d.scope))
                            };
                            IpAddr::from(((u128::from(a) & keep) | (noise & !keep)).to_be_bytes())
                        }
                    };
                    assert!(d.scope <= width);
                    assert_eq!(
                        rule_of(other),
                        want,
                        "round {round}: {other} is inside {client}/{} but matches another rule",
                        d.scope
                    );
                }
            }
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
