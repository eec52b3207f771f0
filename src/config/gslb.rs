//! Validation of `datacenters:` (in meridian.yaml) and `gslb:` names (in zone files).

use super::Problem;
use super::raw::{RawCheck, RawDatacenter, RawGslb, RawValue};
use super::source::{Loc, parse_duration, problem_at};
use super::zonefile::check_ttl;
use crate::geo::countries;
use crate::model::gslb::{
    Check, CheckKind, Datacenter, DcId, DcLocation, Endpoint, EndpointId, GeoMatch, GeoRule, GslbName,
    HttpCheck, Policy, WhenAllDown,
};
use crate::name::Name;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Default TTL of a load-balanced answer: short, so failover reaches clients quickly.
pub const DEFAULT_GSLB_TTL: u32 = 30;
/// Default cap on addresses in one answer.
pub const DEFAULT_MAX_ADDRESSES: usize = 8;

/// What zone validation needs to know of the main config.
pub struct GslbContext<'c> {
    pub datacenters: &'c [Datacenter],
    pub has_geoip: bool,
}

impl GslbContext<'_> {
    fn find(&self, name: &str) -> Option<DcId> {
        self.datacenters
            .iter()
            .position(|d| &*d.name == name)
            .map(|i| DcId(i as u16))
    }
}

/// Data center and check names become Prometheus label values, URL path segments and event
/// subjects: they are kept to `[A-Za-z0-9_.-]`, which none of those needs to escape.
fn safe_name(file: &Path, key: &Spanned<String>, section: &str, problems: &mut Vec<Problem>) {
    let name = key.value.as_str();
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        problems.push(problem_at(
            file,
            key,
            format!("{section}.{name}: the name `{name}` may hold only letters, digits, `_`, `.` and `-`"),
        ));
    }
}

/// Validates `checks:`.
pub fn checks(
    file: &Path,
    base: &Path,
    raw: &[(Spanned<String>, Spanned<RawCheck>)],
    problems: &mut Vec<Problem>,
) -> HashMap<String, Arc<Check>> {
    let mut out = HashMap::new();
    for (key, c) in raw {
        let before = problems.len();
        let name = key.value.as_str();
        safe_name(file, key, "checks", problems);
        let at = |s: &str| format!("checks.{name}.{s}");
        let c = &c.value;
        let duration = |v: &Option<Spanned<String>>,
                        field: &str,
                        default: Duration,
                        problems: &mut Vec<Problem>| match v {
            None => default,
            Some(d) => parse_duration(&d.value)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or_else(|| {
                    problems.push(problem_at(
                        file,
                        d,
                        format!(
                            "{}: `{}` is not a duration above zero (like 500ms, 2s)",
                            at(field),
                            d.value
                        ),
                    ));
                    default
                }),
        };
        let interval = duration(&c.interval, "interval", Duration::from_secs(1), problems);
        let timeout = duration(
            &c.timeout,
            "timeout",
            Duration::from_millis(500).min(interval),
            problems,
        );
        if timeout > interval
            && let Some(t) = &c.timeout
        {
            problems.push(problem_at(
                file,
                t,
                format!(
                    "{}: the timeout cannot exceed the interval ({interval:?})",
                    at("timeout")
                ),
            ));
        }
        let threshold = |v: &Option<Spanned<u64>>, field: &str, problems: &mut Vec<Problem>| match v {
            None => NonZeroU32::new(2).expect("nonzero"),
            Some(n) => u32::try_from(n.value)
                .ok()
                .and_then(NonZeroU32::new)
                .filter(|n| n.get() <= 100)
                .unwrap_or_else(|| {
                    problems.push(problem_at(
                        file,
                        n,
                        format!("{}: must be between 1 and 100", at(field)),
                    ));
                    NonZeroU32::MIN
                }),
        };
        let rise = threshold(&c.rise, "rise", problems);
        let fall = threshold(&c.fall, "fall", problems);
        let http = || HttpCheck {
            method: c
                .method
                .as_ref()
                .map_or("GET".into(), |m| m.value.to_ascii_uppercase()),
            path: c.path.as_ref().map_or("/".into(), |p| p.value.clone()),
            host: c.host.as_ref().map(|h| h.value.clone()),
            headers: c
                .headers
                .0
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
            expect_status: c
                .expect_status
                .as_ref()
                .map_or(vec![200], |l| l.value.iter().map(|s| s.value as u16).collect()),
            body_contains: c.body_contains.as_ref().map(|b| b.value.clone()),
            tls_verify: c.tls_verify.as_ref().is_none_or(|t| t.value),
            ca_file: c.ca_file.as_ref().map(|f| base.join(&f.value)),
        };
        let kind = match c.kind.value.as_str() {
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::Http(http()),
            "https" => CheckKind::Https(http()),
            other => {
                problems.push(problem_at(
                    file,
                    &c.kind,
                    format!("{}: `{other}` is not a check type (http, https, tcp)", at("type")),
                ));
                CheckKind::Tcp
            }
        };
        let http_only = [
            ("method", c.method.as_ref().map(|v| Loc::of(file, v))),
            ("path", c.path.as_ref().map(|v| Loc::of(file, v))),
            ("host", c.host.as_ref().map(|v| Loc::of(file, v))),
            (
                "expect_status",
                c.expect_status.as_ref().map(|v| Loc::of(file, v)),
            ),
            (
                "body_contains",
                c.body_contains.as_ref().map(|v| Loc::of(file, v)),
            ),
        ];
        if kind == CheckKind::Tcp {
            for (field, loc) in http_only {
                if let Some(loc) = loc {
                    problems
                        .push(loc.problem(format!("{}: applies to http and https checks only", at(field))));
                }
            }
        }
        if let Some(l) = &c.expect_status {
            for st in &l.value {
                if !(100..=599).contains(&st.value) {
                    problems.push(problem_at(
                        file,
                        st,
                        format!("{}: {} is not an HTTP status", at("expect_status"), st.value),
                    ));
                }
            }
        }
        if let Some(m) = &c.method
            && !matches!(
                m.value.to_ascii_uppercase().as_str(),
                "GET" | "HEAD" | "POST" | "OPTIONS"
            )
        {
            problems.push(problem_at(
                file,
                m,
                format!(
                    "{}: `{}` is not one of GET, HEAD, POST, OPTIONS",
                    at("method"),
                    m.value
                ),
            ));
        }
        if let Some(p) = &c.path
            && !p.value.starts_with('/')
        {
            problems.push(problem_at(
                file,
                p,
                format!("{}: a path starts with /", at("path")),
            ));
        }
        if let Some(f) = &c.ca_file
            && !base.join(&f.value).is_file()
        {
            problems.push(problem_at(
                file,
                f,
                format!("{}: no file {}", at("ca_file"), base.join(&f.value).display()),
            ));
        }
        let default_port = match kind {
            CheckKind::Http(_) => Some(80),
            CheckKind::Https(_) => Some(443),
            CheckKind::Tcp => None,
        };
        let port = match (&c.port, default_port) {
            (Some(p), _) => u16::try_from(p.value).ok().filter(|p| *p > 0).unwrap_or_else(|| {
                problems.push(problem_at(
                    file,
                    p,
                    format!("{}: {} is not a port", at("port"), p.value),
                ));
                1
            }),
            (None, Some(d)) => d,
            (None, None) => {
                problems.push(problem_at(
                    file,
                    key,
                    format!("{}: a tcp check needs a port", at("port")),
                ));
                1
            }
        };
        if problems.len() == before {
            out.insert(
                name.to_string(),
                Arc::new(Check {
                    name: name.into(),
                    kind,
                    port,
                    interval,
                    timeout,
                    rise,
                    fall,
                }),
            );
        }
    }
    out
}

/// Validates the data centers, numbering endpoints across all of them.
pub fn datacenters(
    file: &Path,
    raw: &[(Spanned<String>, Spanned<RawDatacenter>)],
    checks: &HashMap<String, Arc<Check>>,
    problems: &mut Vec<Problem>,
) -> Vec<Datacenter> {
    let mut out = Vec::new();
    let mut next_endpoint = 0u32;
    if raw.len() > usize::from(u16::MAX) {
        problems.push(Problem {
            file: file.into(),
            line: 1,
            col: 1,
            message: "too many data centers".into(),
        });
        return out;
    }
    for (key, dc) in raw {
        let name = key.value.as_str();
        safe_name(file, key, "datacenters", problems);
        let at = |s: &str| format!("datacenters.{name}.{s}");
        let d = &dc.value;
        let mut location = DcLocation::default();
        if let Some(c) = &d.location.continent {
            let up = c.value.to_ascii_uppercase();
            if countries::CONTINENTS.contains(&up.as_str()) {
                location.continent = Some(up.into());
            } else {
                problems.push(problem_at(
                    file,
                    c,
                    format!(
                        "{}: `{}` is not a continent code ({})",
                        at("location.continent"),
                        c.value,
                        countries::CONTINENTS.join(" ")
                    ),
                ));
            }
        }
        if let Some(c) = &d.location.country {
            let up = c.value.to_ascii_uppercase();
            if countries::is_country(&up) {
                if location.continent.is_none() {
                    location.continent = countries::continent_of(&up).map(Into::into);
                }
                location.country = Some(up.into());
            } else {
                problems.push(problem_at(
                    file,
                    c,
                    format!(
                        "{}: `{}` is not an ISO 3166-1 country code",
                        at("location.country"),
                        c.value
                    ),
                ));
            }
        }
        match (&d.location.lat, &d.location.lon) {
            (Some(lat), Some(lon)) => {
                if lat.value.abs() > 90.0 {
                    problems.push(problem_at(
                        file,
                        lat,
                        format!("{}: {} is not within ±90", at("location.lat"), lat.value),
                    ));
                } else if lon.value.abs() > 180.0 {
                    problems.push(problem_at(
                        file,
                        lon,
                        format!("{}: {} is not within ±180", at("location.lon"), lon.value),
                    ));
                } else {
                    location.coords = Some((lat.value, lon.value));
                }
            }
            (None, None) => {}
            (Some(s), None) | (None, Some(s)) => problems.push(problem_at(
                file,
                s,
                format!("{}: lat and lon go together", at("location")),
            )),
        }
        let mut endpoints = Vec::new();
        for (i, ep) in d.endpoints.value.iter().enumerate() {
            let e = &ep.value;
            let Ok(address) = e.address.value.parse::<IpAddr>() else {
                problems.push(problem_at(
                    file,
                    &e.address,
                    format!(
                        "{}: `{}` is not an IP address",
                        at(&format!("endpoints[{i}].address")),
                        e.address.value
                    ),
                ));
                continue;
            };
            if endpoints.iter().any(|x: &Endpoint| x.address == address) {
                problems.push(problem_at(
                    file,
                    &e.address,
                    format!(
                        "{}: {address} is listed twice",
                        at(&format!("endpoints[{i}].address"))
                    ),
                ));
                continue;
            }
            let weight = match &e.weight {
                None => NonZeroU32::MIN,
                Some(w) => match u32::try_from(w.value).ok().and_then(NonZeroU32::new) {
                    Some(w) => w,
                    None => {
                        problems.push(problem_at(
                            file,
                            w,
                            format!(
                                "{}: must be between 1 and 4294967295",
                                at(&format!("endpoints[{i}].weight"))
                            ),
                        ));
                        NonZeroU32::MIN
                    }
                },
            };
            let configured_up = match e.state.as_ref().map(|s| s.value.as_str()) {
                None | Some("up") => true,
                Some("down") => false,
                Some(other) => {
                    let s = e.state.as_ref().expect("matched Some");
                    problems.push(problem_at(
                        file,
                        s,
                        format!(
                            "{}: `{other}` is neither `up` nor `down`",
                            at(&format!("endpoints[{i}].state"))
                        ),
                    ));
                    true
                }
            };
            let check = e.check.as_ref().and_then(|c| {
                let found = checks.get(&c.value).cloned();
                if found.is_none() {
                    problems.push(problem_at(
                        file,
                        c,
                        format!(
                            "{}: no check `{}` under checks:",
                            at(&format!("endpoints[{i}].check")),
                            c.value
                        ),
                    ));
                }
                found
            });
            let probe_address = e.probe_address.as_ref().and_then(|p| {
                let parsed = p.value.parse::<IpAddr>().ok();
                if parsed.is_none() {
                    problems.push(problem_at(
                        file,
                        p,
                        format!(
                            "{}: `{}` is not an IP address",
                            at(&format!("endpoints[{i}].probe_address")),
                            p.value
                        ),
                    ));
                }
                if e.check.is_none() {
                    problems.push(problem_at(
                        file,
                        p,
                        format!(
                            "{}: probe_address needs a check",
                            at(&format!("endpoints[{i}].probe_address"))
                        ),
                    ));
                }
                parsed
            });
            endpoints.push(Endpoint {
                id: EndpointId(next_endpoint),
                address,
                weight,
                configured_up,
                check,
                probe_address,
            });
            next_endpoint += 1;
        }
        if d.endpoints.value.is_empty() {
            problems.push(problem_at(
                file,
                &d.endpoints,
                format!("{}: a data center needs at least one endpoint", at("endpoints")),
            ));
        }
        let min_healthy = match &d.min_healthy {
            None => NonZeroUsize::MIN,
            Some(m) => match NonZeroUsize::new(m.value as usize)
                .filter(|n| n.get() <= d.endpoints.value.len().max(1))
            {
                Some(n) => n,
                None => {
                    problems.push(problem_at(
                        file,
                        m,
                        format!(
                            "{}: must be between 1 and the number of endpoints ({})",
                            at("min_healthy"),
                            d.endpoints.value.len()
                        ),
                    ));
                    NonZeroUsize::MIN
                }
            },
        };
        out.push(Datacenter {
            name: name.into(),
            location,
            endpoints,
            min_healthy,
        });
    }
    out
}

/// Validates one `gslb:` entry of a zone.
pub(crate) fn gslb_name(
    file: &Path,
    origin: &Name,
    key: &Spanned<String>,
    raw: &Spanned<RawGslb>,
    cx: &GslbContext<'_>,
    problems: &mut Vec<Problem>,
) -> Option<(GslbName, Loc)> {
    let before = problems.len();
    let owner = match Name::parse(&key.value, Some(origin)) {
        Ok(n) => n,
        Err(e) => {
            problems.push(problem_at(file, key, e.to_string()));
            return None;
        }
    };
    let label = |field: &str| format!("gslb.{}.{field}", key.value);
    let g = &raw.value;
    let ttl_of = |t: &Option<Spanned<u64>>, field: &str, default: u32, problems: &mut Vec<Problem>| match t {
        None => default,
        Some(t) => check_ttl(t.value).unwrap_or_else(|m| {
            problems.push(problem_at(file, t, format!("{}: {m}", label(field))));
            default
        }),
    };
    let ttl = ttl_of(&g.ttl, "ttl", DEFAULT_GSLB_TTL, problems);
    let degraded_ttl = ttl_of(&g.degraded_ttl, "degraded_ttl", ttl, problems);
    let policy = match g.policy.value.as_str() {
        "failover" => Policy::Failover,
        "weighted" => Policy::Weighted,
        "geo" => Policy::Geo,
        "nearest" => Policy::Nearest,
        "all" => Policy::All,
        other => {
            problems.push(problem_at(
                file,
                &g.policy,
                format!(
                    "{}: `{other}` is not a policy (failover, weighted, geo, nearest, all)",
                    label("policy")
                ),
            ));
            Policy::Failover
        }
    };

    let mut candidates = Vec::new();
    for d in &g.datacenters.value {
        match cx.find(&d.value) {
            Some(_) if candidates.contains(&cx.find(&d.value).expect("found")) => problems.push(problem_at(
                file,
                d,
                format!("{}: `{}` is listed twice", label("datacenters"), d.value),
            )),
            Some(id) => candidates.push(id),
            None => problems.push(problem_at(
                file,
                d,
                format!(
                    "{}: no data center `{}` in the configuration",
                    label("datacenters"),
                    d.value
                ),
            )),
        }
    }
    if g.datacenters.value.is_empty() {
        problems.push(problem_at(
            file,
            &g.datacenters,
            format!("{}: at least one data center is needed", label("datacenters")),
        ));
    }
    let mut weights = vec![NonZeroU32::MIN; candidates.len()];
    for (k, w) in &g.weights.0 {
        let Some(i) = cx
            .find(&k.value)
            .and_then(|id| candidates.iter().position(|&c| c == id))
        else {
            problems.push(problem_at(
                file,
                k,
                format!(
                    "{}: `{}` is not one of this name's datacenters",
                    label("weights"),
                    k.value
                ),
            ));
            continue;
        };
        match u32::try_from(w.value).ok().and_then(NonZeroU32::new) {
            Some(v) => weights[i] = v,
            None => problems.push(problem_at(
                file,
                w,
                format!(
                    "{}: a weight is between 1 and 4294967295",
                    label(&format!("weights.{}", k.value))
                ),
            )),
        }
    }
    let sticky = g.sticky.as_ref().is_some_and(|s| s.value);
    if let Some(s) = &g.sticky
        && s.value
        && !matches!(policy, Policy::Weighted | Policy::Geo)
    {
        problems.push(problem_at(
            file,
            s,
            format!(
                "{}: sticky applies to the weighted and geo policies",
                label("sticky")
            ),
        ));
    }

    let mut geo = Vec::new();
    if !g.geo.0.is_empty() && policy != Policy::Geo {
        problems.push(problem_at(
            file,
            &g.geo.0[0].0,
            format!("{}: geo rules need `policy: geo`", label("geo")),
        ));
    }
    for (k, ranks) in &g.geo.0 {
        let field = label(&format!("geo.{}", k.value));
        let Some(matches) = geo_match(&k.value) else {
            problems.push(problem_at(
                file,
                k,
                format!(
                    "{field}: not a rule (net:CIDR, subdivision:CC-XX, country:CC, continent:XX, default)"
                ),
            ));
            continue;
        };
        if matches!(
            matches,
            GeoMatch::Subdivision(_) | GeoMatch::Country(_) | GeoMatch::Continent(_)
        ) && !cx.has_geoip
        {
            problems.push(problem_at(
                file,
                k,
                format!("{field}: location rules need `geoip.database` in the configuration"),
            ));
        }
        if let GeoMatch::Country(c) = &matches
            && !countries::is_country(c)
        {
            problems.push(problem_at(
                file,
                k,
                format!("{field}: `{c}` is not an ISO 3166-1 country code"),
            ));
        }
        if let GeoMatch::Continent(c) = &matches
            && !countries::CONTINENTS.contains(&&**c)
        {
            problems.push(problem_at(
                file,
                k,
                format!(
                    "{field}: `{c}` is not a continent code ({})",
                    countries::CONTINENTS.join(" ")
                ),
            ));
        }
        let mut out_ranks = Vec::new();
        for item in &ranks.value {
            let names: Vec<(&str, Loc)> = match &item.value {
                RawValue::One(s) => vec![(s.as_str(), Loc::of(file, item))],
                RawValue::Many(list) => list
                    .iter()
                    .map(|s| (s.value.as_str(), Loc::of(file, s)))
                    .collect(),
                RawValue::Number(n) => {
                    problems.push(problem_at(
                        file,
                        item,
                        format!("{field}: `{n}` is not a data center name"),
                    ));
                    continue;
                }
            };
            let mut rank = Vec::new();
            for (n, loc) in names {
                match cx.find(n).filter(|id| candidates.contains(id)) {
                    Some(id) => rank.push(id),
                    None => problems
                        .push(loc.problem(format!("{field}: `{n}` is not one of this name's datacenters"))),
                }
            }
            if !rank.is_empty() {
                out_ranks.push(rank);
            }
        }
        if out_ranks.is_empty() {
            problems.push(problem_at(
                file,
                ranks,
                format!("{field}: a rule names at least one data center"),
            ));
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
    if policy == Policy::Nearest {
        if !cx.has_geoip {
            problems.push(problem_at(
                file,
                &g.policy,
                format!(
                    "{}: nearest needs `geoip.database` in the configuration",
                    label("policy")
                ),
            ));
        }
        for &c in &candidates {
            let d = &cx.datacenters[usize::from(c.0)];
            if d.location.coords.is_none() {
                problems.push(problem_at(
                    file,
                    &g.datacenters,
                    format!(
                        "{}: nearest needs lat/lon for data center `{}`",
                        label("datacenters"),
                        d.name
                    ),
                ));
            }
        }
    }

    let count = |v: &Option<Spanned<u64>>, field: &str, default: usize, problems: &mut Vec<Problem>| match v {
        None => NonZeroUsize::new(default).expect("nonzero default"),
        Some(n) => NonZeroUsize::new(n.value as usize)
            .filter(|n| n.get() <= 64)
            .unwrap_or_else(|| {
                problems.push(problem_at(
                    file,
                    n,
                    format!("{}: must be between 1 and 64", label(field)),
                ));
                NonZeroUsize::MIN
            }),
    };
    let answer_datacenters = count(
        &g.answer.as_ref().and_then(|a| a.datacenters.clone()),
        "answer.datacenters",
        1,
        problems,
    );
    let max_addresses = count(
        &g.answer.as_ref().and_then(|a| a.max_addresses.clone()),
        "answer.max_addresses",
        DEFAULT_MAX_ADDRESSES,
        problems,
    );

    let when_all_down = match &g.when_all_down {
        None => WhenAllDown::All,
        Some(w) => match &w.value {
            RawValue::One(s) if s == "all" => WhenAllDown::All,
            RawValue::One(s) if s == "none" => WhenAllDown::None,
            RawValue::One(s) if s == "servfail" => WhenAllDown::Servfail,
            RawValue::Many(list) if !list.is_empty() => {
                let mut addrs = Vec::new();
                for a in list {
                    match a.value.parse::<IpAddr>() {
                        Ok(ip) => addrs.push(ip),
                        Err(_) => problems.push(problem_at(
                            file,
                            a,
                            format!("{}: `{}` is not an IP address", label("when_all_down"), a.value),
                        )),
                    }
                }
                WhenAllDown::Fallback(addrs)
            }
            _ => {
                problems.push(problem_at(
                    file,
                    w,
                    format!(
                        "{}: one of all, none, servfail, or a list of fallback addresses",
                        label("when_all_down")
                    ),
                ));
                WhenAllDown::All
            }
        },
    };
    if problems.len() > before {
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
    Some((name, Loc::of(file, key)))
}

/// Reads a geo rule key.
fn geo_match(key: &str) -> Option<GeoMatch> {
    if key == "default" {
        return Some(GeoMatch::Default);
    }
    let (kind, value) = key.split_once(':')?;
    Some(match kind {
        "net" => {
            let (addr, len) = crate::geo::build::parse_cidr(value)?;
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
