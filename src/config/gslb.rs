//! `gslb:` in zone files: load-balanced names (policy, candidate data centers, weights, geo
//! rules, answer limits, what to answer when all are down). Builds on the data centers of
//! `meridian.yaml`, given as a [`GslbContext`].

use super::diagnostics::{Diagnostics, Loc, did_you_mean, nearest};
use super::raw::{RawGslb, RawValue};
use super::zonefile::check_ttl;
use crate::geo::countries;
use crate::model::Digest;
use crate::model::gslb::{
    Datacenter, DcId, GeoMatch, GeoRule, GslbName, MAX_ADDRESSES, MAX_CANDIDATES, Policy, WhenAllDown,
};
use crate::name::Name;
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};

/// Default TTL of a load-balanced answer: short, so failover reaches clients quickly.
pub const DEFAULT_GSLB_TTL: u32 = 30;
/// Default cap on addresses in one answer.
pub const DEFAULT_MAX_ADDRESSES: usize = 8;

/// What zone validation needs to know of the main config.
pub struct GslbContext<'c> {
    pub datacenters: &'c [Datacenter],
    pub has_geoip: bool,
    /// Data centers whose `location` was refused (and reported): a policy needing their
    /// coordinates does not report them missing.
    pub refused_locations: &'c HashSet<String>,
    /// The digest of what `gslb_name` reads of the above: a zone validated against the same
    /// digest validates the same (see `ZoneStamp::context`).
    pub digest: Digest,
}

impl<'c> GslbContext<'c> {
    pub fn new(
        datacenters: &'c [Datacenter],
        has_geoip: bool,
        refused_locations: &'c HashSet<String>,
    ) -> GslbContext<'c> {
        // Everything `gslb_name` reads of the context, and nothing else (an endpoint's address
        // or check changes no zone): the data centers' names in order (a `DcId` is a position),
        // whether each has coordinates, the refused locations, whether there is a GeoIP database.
        // A new read of the context must join this text.
        let mut text = format!("geoip {has_geoip}\n");
        for dc in datacenters {
            text.push_str(&format!("dc {} {}\n", dc.name, dc.location.coords.is_some()));
        }
        let mut refused: Vec<&String> = refused_locations.iter().collect();
        refused.sort();
        for name in refused {
            text.push_str(&format!("refused {name}\n"));
        }
        GslbContext {
            datacenters,
            has_geoip,
            refused_locations,
            digest: super::source::digest(text.as_bytes()),
        }
    }

    fn find(&self, name: &str) -> Option<DcId> {
        self.datacenters
            .iter()
            .position(|d| &*d.name == name)
            .map(|i| DcId(i as u16))
    }

    /// `, did you mean `x`?` for a data center name that is not in the configuration.
    fn suggest(&self, name: &str) -> String {
        did_you_mean(name, self.datacenters.iter().map(|d| &*d.name))
    }
}

/// Validates one `gslb:` entry of a zone whose origin is `origin`.
pub(crate) fn gslb_name(
    d: &mut Diagnostics,
    origin: &Name,
    key: &Spanned<String>,
    raw: &Spanned<RawGslb>,
    cx: &GslbContext<'_>,
) -> Option<(GslbName, Loc)> {
    let before = d.count();
    let label = |field: &str| format!("gslb.{}.{field}", key.value);
    let owner = match Name::parse(&key.value, Some(origin)) {
        Ok(n) => n,
        Err(e) => {
            d.say(key, Some(&format!("gslb.{}", key.value)), e);
            return None;
        }
    };
    let g = &raw.value;
    let ttl_of = |d: &mut Diagnostics, t: &Option<Spanned<u64>>, field: &str, default: u32| match t {
        None => default,
        Some(t) => check_ttl(t.value).unwrap_or_else(|e| {
            d.at(t, &label(field), e);
            default
        }),
    };
    let ttl = ttl_of(d, &g.ttl, "ttl", DEFAULT_GSLB_TTL);
    let degraded_ttl = ttl_of(d, &g.degraded_ttl, "degraded_ttl", ttl);
    const POLICIES: [&str; 5] = ["failover", "weighted", "geo", "nearest", "all"];
    let policy = match g.policy.value.as_str() {
        "failover" => Some(Policy::Failover),
        "weighted" => Some(Policy::Weighted),
        "geo" => Some(Policy::Geo),
        "nearest" => Some(Policy::Nearest),
        "all" => Some(Policy::All),
        other => {
            d.at(
                &g.policy,
                &label("policy"),
                format_args!(
                    "`{other}` is not a policy (failover, weighted, geo, nearest, all){}",
                    did_you_mean(other, POLICIES)
                ),
            );
            None
        }
    };

    let mut candidates = Vec::new();
    for dc in &g.datacenters.value {
        match cx.find(&dc.value) {
            Some(id) if candidates.contains(&id) => d.at(
                dc,
                &label("datacenters"),
                format_args!("`{}` is listed twice", dc.value),
            ),
            Some(id) => candidates.push(id),
            None => d.at(
                dc,
                &label("datacenters"),
                format_args!(
                    "no data center `{}` in the configuration{}",
                    dc.value,
                    cx.suggest(&dc.value)
                ),
            ),
        }
    }
    // A name listed under `datacenters:` but unknown is reported there, once: the weights and
    // rules naming it again are not.
    let listed = |n: &str| g.datacenters.value.iter().any(|dc| dc.value == n);
    if g.datacenters.value.is_empty() {
        d.at(
            &g.datacenters,
            &label("datacenters"),
            "at least one data center is needed",
        );
    }
    if g.datacenters.value.len() > MAX_CANDIDATES {
        d.at(
            &g.datacenters,
            &label("datacenters"),
            format_args!(
                "{} data centers; a name lists at most {MAX_CANDIDATES} (answers are chosen in \
                 arrays of that size, without allocating)",
                g.datacenters.value.len()
            ),
        );
    }
    let mut weights = vec![NonZeroU32::MIN; candidates.len()];
    for (k, w) in &g.weights.0 {
        let Some(i) = cx
            .find(&k.value)
            .and_then(|id| candidates.iter().position(|&c| c == id))
        else {
            if !listed(&k.value) {
                d.at(
                    k,
                    &label("weights"),
                    format_args!(
                        "`{}` is not one of this name's datacenters{}",
                        k.value,
                        candidate_suggestion(&k.value, &candidates, cx)
                    ),
                );
            }
            continue;
        };
        match u32::try_from(w.value).ok().and_then(NonZeroU32::new) {
            Some(v) => weights[i] = v,
            None => d.at(
                w,
                &label(&format!("weights.{}", k.value)),
                "a weight is between 1 and 4294967295",
            ),
        }
    }
    let sticky = g.sticky.as_ref().is_some_and(|s| s.value);
    if let Some(s) = &g.sticky
        && s.value
        && policy.is_some_and(|p| !matches!(p, Policy::Weighted | Policy::Geo))
    {
        d.at(
            s,
            &label("sticky"),
            "sticky applies to the weighted and geo policies",
        );
    }

    let geo = geo_rules(d, g, policy, &candidates, cx, &label);
    // Of a name whose policy is unknown, what depends on the policy is not judged: the typo
    // is reported once, above.
    let policy = policy.unwrap_or(Policy::Failover);
    if policy == Policy::Nearest {
        if !cx.has_geoip {
            d.at(
                &g.policy,
                &label("policy"),
                "nearest needs `geoip.database` in the configuration",
            );
        }
        for &c in &candidates {
            let dc = &cx.datacenters[usize::from(c.0)];
            if dc.location.coords.is_none() && !cx.refused_locations.contains(&*dc.name) {
                d.at(
                    &g.datacenters,
                    &label("datacenters"),
                    format_args!("nearest needs lat/lon for data center `{}`", dc.name),
                );
            }
        }
    }

    let count = |d: &mut Diagnostics, v: Option<&Spanned<u64>>, field: &str, default: usize| match v {
        None => NonZeroUsize::new(default).expect("nonzero default"),
        Some(n) => NonZeroUsize::new(n.value as usize)
            .filter(|n| n.get() <= 64)
            .unwrap_or_else(|| {
                d.at(n, &label(field), "must be between 1 and 64");
                NonZeroUsize::MIN
            }),
    };
    let answer = g.answer.as_ref();
    let answer_datacenters = count(
        d,
        answer.and_then(|a| a.datacenters.as_ref()),
        "answer.datacenters",
        1,
    );
    let max_addresses = count(
        d,
        answer.and_then(|a| a.max_addresses.as_ref()),
        "answer.max_addresses",
        DEFAULT_MAX_ADDRESSES,
    );

    let when_all_down = match &g.when_all_down {
        None => WhenAllDown::All,
        Some(w) => match &w.value {
            RawValue::One(s) if s == "all" => WhenAllDown::All,
            RawValue::One(s) if s == "none" => WhenAllDown::None,
            RawValue::One(s) if s == "servfail" => WhenAllDown::Servfail,
            RawValue::Many(list) if !list.is_empty() => {
                if list.len() > MAX_ADDRESSES {
                    d.at(
                        w,
                        &label("when_all_down"),
                        format_args!(
                            "{} fallback addresses; at most {MAX_ADDRESSES} (as many as one answer carries)",
                            list.len()
                        ),
                    );
                }
                let mut addrs = Vec::new();
                for a in list {
                    match a.value.parse::<IpAddr>() {
                        Ok(ip) => addrs.push(ip),
                        Err(_) => d.at(
                            a,
                            &label("when_all_down"),
                            format_args!("`{}` is not an IP address", a.value),
                        ),
                    }
                }
                WhenAllDown::Fallback(addrs)
            }
            _ => {
                d.at(
                    w,
                    &label("when_all_down"),
                    "one of all, none, servfail, or a list of fallback addresses",
                );
                WhenAllDown::All
            }
        },
    };
    if d.count() > before {
        return None;
    }
    let name = GslbName {
        owner,
        ttl,
        degraded_ttl,
        policy,
        candidates,
        weights,
        sticky,
        geo,
        answer_datacenters,
        max_addresses,
        when_all_down,
    };
    Some((name, Loc::of(d.file(), key)))
}

/// The `geo:` rules of a name, most specific first.
fn geo_rules(
    d: &mut Diagnostics,
    g: &RawGslb,
    policy: Option<Policy>,
    candidates: &[DcId],
    cx: &GslbContext<'_>,
    label: &dyn Fn(&str) -> String,
) -> Vec<GeoRule> {
    let mut geo = Vec::new();
    if let Some((first, _)) = g.geo.0.first()
        && policy.is_some_and(|p| p != Policy::Geo)
    {
        d.at(first, &label("geo"), "geo rules need `policy: geo`");
    }
    for (k, ranks) in &g.geo.0 {
        let field = label(&format!("geo.{}", k.value));
        let Some(matches) = geo_match(&k.value) else {
            d.at(
                k,
                &field,
                format_args!(
                    "not a rule (net:CIDR, subdivision:CC-XX, country:CC, continent:XX, default){}",
                    rule_suggestion(&k.value)
                ),
            );
            continue;
        };
        if matches!(
            matches,
            GeoMatch::Subdivision(_) | GeoMatch::Country(_) | GeoMatch::Continent(_)
        ) && !cx.has_geoip
        {
            d.at(
                k,
                &field,
                "location rules need `geoip.database` in the configuration",
            );
        }
        if let GeoMatch::Country(c) = &matches
            && !countries::is_country(c)
        {
            d.at(k, &field, format_args!("`{c}` is not an ISO 3166-1 country code"));
        }
        if let GeoMatch::Continent(c) = &matches
            && !countries::CONTINENTS.contains(&&**c)
        {
            d.at(
                k,
                &field,
                format_args!(
                    "`{c}` is not a continent code ({})",
                    countries::CONTINENTS.join(" ")
                ),
            );
        }
        let mut out_ranks = Vec::new();
        for item in &ranks.value {
            let names: Vec<(&str, Loc)> = match &item.value {
                RawValue::One(s) => vec![(s.as_str(), Loc::of(d.file(), item))],
                RawValue::Many(list) => list
                    .iter()
                    .map(|s| (s.value.as_str(), Loc::of(d.file(), s)))
                    .collect(),
                RawValue::Number(n) => {
                    d.at(item, &field, format_args!("`{n}` is not a data center name"));
                    continue;
                }
            };
            let mut rank = Vec::new();
            for (n, loc) in names {
                match cx.find(n).filter(|id| candidates.contains(id)) {
                    Some(id) => rank.push(id),
                    // Listed but unknown: reported under `datacenters:`.
                    None if g.datacenters.value.iter().any(|dc| dc.value == n) => {}
                    None => d.at(
                        &loc,
                        &field,
                        format_args!(
                            "`{n}` is not one of this name's datacenters{}",
                            candidate_suggestion(n, candidates, cx)
                        ),
                    ),
                }
            }
            if !rank.is_empty() {
                out_ranks.push(rank);
            }
        }
        if out_ranks.is_empty() && ranks.value.is_empty() {
            d.at(ranks, &field, "a rule names at least one data center");
        }
        geo.push(GeoRule {
            matches,
            ranks: out_ranks,
        });
    }
    // Most specific first: longer nets, then subdivision, country, continent, default.
    geo.sort_by_key(|r| match &r.matches {
        GeoMatch::Net { len, .. } => (0, 255 - *len),
        GeoMatch::Subdivision(_) => (1, 0),
        GeoMatch::Country(_) => (2, 0),
        GeoMatch::Continent(_) => (3, 0),
        GeoMatch::Default => (4, 0),
    });
    geo
}

/// `, did you mean `x`?` for a name that is not among `candidates`, the data centers of one
/// load-balanced name.
fn candidate_suggestion(name: &str, candidates: &[DcId], cx: &GslbContext<'_>) -> String {
    did_you_mean(
        name,
        candidates.iter().map(|c| &*cx.datacenters[usize::from(c.0)].name),
    )
}

/// `, did you mean `country:FR`?` for a rule key whose kind is misspelt (`contry:FR`,
/// `defualt`), else nothing.
fn rule_suggestion(key: &str) -> String {
    const KINDS: [&str; 4] = ["net", "subdivision", "country", "continent"];
    match key.split_once(':') {
        Some((kind, value)) => nearest(kind, KINDS)
            .map(|k| format!(", did you mean `{k}:{value}`?"))
            .unwrap_or_default(),
        None => did_you_mean(key, ["default"]),
    }
}

/// Reads a geo rule key.
fn geo_match(key: &str) -> Option<GeoMatch> {
    if key == "default" {
        return Some(GeoMatch::Default);
    }
    let (kind, value) = key.split_once(':')?;
    Some(match kind {
        "net" => {
            let (addr, len) = crate::geo::parse_cidr(value)?;
            GeoMatch::Net { addr, len }
        }
        "subdivision" => {
            let v = value.to_ascii_uppercase();
            let (c, s) = v.split_once('-')?;
            if !countries::is_country(c) || s.is_empty() {
                return None;
            }
            GeoMatch::Subdivision(v.into())
        }
        "country" => GeoMatch::Country(value.to_ascii_uppercase().into()),
        "continent" => GeoMatch::Continent(value.to_ascii_uppercase().into()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{GslbContext, gslb_name};
    use crate::config::diagnostics::Diagnostics;
    use crate::config::raw::RawZone;
    use crate::config::source::parse_yaml;
    use crate::model::gslb::{Datacenter, DcLocation};
    use crate::name::Name;
    use std::collections::HashSet;
    use std::num::NonZeroUsize;
    use std::path::Path;

    fn dc(name: &str, coords: Option<(f64, f64)>) -> Datacenter {
        Datacenter {
            name: name.into(),
            location: DcLocation {
                coords,
                ..DcLocation::default()
            },
            endpoints: Vec::new(),
            min_healthy: NonZeroUsize::MIN,
        }
    }

    /// (the entry under `gslb: www:`, every problem it gives): a misspelt name gets the nearest
    /// one; one mistake gives one problem, not one more for each place that depends on it.
    #[test]
    fn a_mistake_is_reported_once_with_what_was_meant() {
        let cases: &[(&str, &[&str])] = &[
            (
                "{ policy: weighted, datacenters: [eu-wst, us-east], weights: { eu-wst: 3 } }",
                &[
                    "gslb.www.datacenters: no data center `eu-wst` in the configuration, did you mean `eu-west`?",
                ],
            ),
            (
                "{ policy: weighted, datacenters: [eu-west], weights: { eu-wset: 3 } }",
                &[
                    "gslb.www.weights: `eu-wset` is not one of this name's datacenters, did you mean `eu-west`?",
                ],
            ),
            (
                "{ policy: weighted, datacenters: [eu-west], weights: { us-east: 3 } }",
                &["gslb.www.weights: `us-east` is not one of this name's datacenters"],
            ),
            (
                "{ policy: geo, datacenters: [eu-west, us-east], geo: { default: [eu-wst] } }",
                &[
                    "gslb.www.geo.default: `eu-wst` is not one of this name's datacenters, did you mean `eu-west`?",
                ],
            ),
            (
                "{ policy: geo, datacenters: [eu-wst], geo: { default: [eu-wst] } }",
                &[
                    "gslb.www.datacenters: no data center `eu-wst` in the configuration, did you mean `eu-west`?",
                ],
            ),
            (
                "{ policy: geo, datacenters: [eu-west], geo: { \"contry:FR\": [eu-west] } }",
                &[
                    "gslb.www.geo.contry:FR: not a rule (net:CIDR, subdivision:CC-XX, country:CC, \
                   continent:XX, default), did you mean `country:FR`?",
                ],
            ),
            (
                "{ policy: geo, datacenters: [eu-west], geo: { defualt: [eu-west] } }",
                &[
                    "gslb.www.geo.defualt: not a rule (net:CIDR, subdivision:CC-XX, country:CC, \
                   continent:XX, default), did you mean `default`?",
                ],
            ),
            (
                "{ policy: wieghted, sticky: true, datacenters: [eu-west], geo: { default: [eu-west] } }",
                &[
                    "gslb.www.policy: `wieghted` is not a policy (failover, weighted, geo, nearest, all), \
                   did you mean `weighted`?",
                ],
            ),
            (
                "{ policy: nearest, datacenters: [eu-west, us-east] }",
                &["gslb.www.datacenters: nearest needs lat/lon for data center `us-east`"],
            ),
            // ap-south's location was refused where it is defined.
            ("{ policy: nearest, datacenters: [eu-west, ap-south] }", &[]),
        ];
        let datacenters = [
            dc("eu-west", Some((48.85, 2.35))),
            dc("us-east", None),
            dc("ap-south", None),
        ];
        let refused: HashSet<String> = ["ap-south".to_string()].into();
        let cx = GslbContext::new(&datacenters, true, &refused);
        let origin = Name::parse("example.test.", None).unwrap();
        let mut wrong = Vec::new();
        for (entry, want) in cases {
            let text = format!("zone: example.test\ngslb:\n  www: {entry}\n");
            let raw: RawZone = parse_yaml(Path::new("z.yaml"), &text).unwrap();
            let (key, g) = &raw.gslb.0[0];
            let mut d = Diagnostics::new(Path::new("z.yaml"));
            let built = gslb_name(&mut d, &origin, key, g, &cx);
            let got: Vec<String> = d.into_problems().into_iter().map(|p| p.message).collect();
            if got != *want || built.is_some() != want.is_empty() {
                wrong.push(format!("{entry}\n  got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The bounds the answer path's fixed-size arrays rely on, refused where they are written.
    #[test]
    fn too_many_candidates_or_fallback_addresses_are_refused_where_written() {
        let datacenters: Vec<Datacenter> = (0..65).map(|i| dc(&format!("dc{i}"), None)).collect();
        let refused = HashSet::new();
        let cx = GslbContext::new(&datacenters, false, &refused);
        let origin = Name::parse("example.test.", None).unwrap();
        let names = |n: usize| (0..n).map(|i| format!("dc{i}")).collect::<Vec<_>>().join(", ");
        let addrs = |n: usize| {
            (0..n)
                .map(|i| format!("10.0.0.{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let problems = |entry: String| -> Vec<String> {
            let text = format!("zone: example.test\ngslb:\n  www:\n{entry}");
            let raw: RawZone = parse_yaml(Path::new("z.yaml"), &text).unwrap();
            let (key, g) = &raw.gslb.0[0];
            let mut d = Diagnostics::new(Path::new("z.yaml"));
            let built = gslb_name(&mut d, &origin, key, g, &cx);
            let got: Vec<String> = d.into_problems().into_iter().map(|p| p.to_string()).collect();
            assert_eq!(built.is_some(), got.is_empty(), "{got:?}");
            got
        };
        let at_most = |dcs: usize, fallback: usize| {
            format!(
                "    policy: failover\n    datacenters: [{}]\n    when_all_down: [{}]\n",
                names(dcs),
                addrs(fallback)
            )
        };
        assert_eq!(problems(at_most(64, 64)), Vec::<String>::new());
        assert_eq!(
            problems(at_most(65, 1)),
            [
                "z.yaml:5:18: gslb.www.datacenters: 65 data centers; a name lists at most 64 \
              (answers are chosen in arrays of that size, without allocating)"
            ]
        );
        assert_eq!(
            problems(at_most(1, 65)),
            [
                "z.yaml:6:20: gslb.www.when_all_down: 65 fallback addresses; at most 64 (as many as \
              one answer carries)"
            ]
        );
    }
}
