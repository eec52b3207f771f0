//! `datacenters:` in `meridian.yaml`: where each data center is, and its endpoints (address,
//! weight, configured state, check).

use super::diagnostics::{Diagnostics, Loc, did_you_mean};
use super::raw::RawDatacenter;
use super::source::safe_name;
use crate::geo::countries;
use crate::model::gslb::{Check, Datacenter, DcLocation, Endpoint, EndpointId};
use serde_saphyr::Spanned;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

/// Validates the data centers, numbering endpoints across all of them. `checks` are the
/// `checks:` endpoints may name (`None`: refused, already reported; an endpoint naming it is
/// not reported again). The names of data centers whose `location` was refused go to
/// `refused_locations`, so that what needs the location does not report its absence again.
pub(crate) fn datacenters(
    d: &mut Diagnostics,
    raw: &[(Spanned<String>, Spanned<RawDatacenter>)],
    checks: &HashMap<String, Option<Arc<Check>>>,
    refused_locations: &mut HashSet<String>,
) -> Vec<Datacenter> {
    let mut out = Vec::new();
    let mut next_endpoint = 0u32;
    // A `DcId` is a u16 index.
    if raw.len() > usize::from(u16::MAX) {
        let start = Loc::start(d.file());
        d.say(&start, Some("datacenters"), "too many data centers");
        return out;
    }
    for (key, dc) in raw {
        let name = key.value.as_str();
        safe_name(d, key, "datacenters");
        let at = |s: &str| format!("datacenters.{name}.{s}");
        let dc = &dc.value;
        let before_location = d.count();
        let mut location = DcLocation::default();
        if let Some(c) = &dc.location.continent {
            let up = c.value.to_ascii_uppercase();
            if countries::CONTINENTS.contains(&up.as_str()) {
                location.continent = Some(up.into());
            } else {
                d.at(
                    c,
                    &at("location.continent"),
                    format_args!(
                        "`{}` is not a continent code ({})",
                        c.value,
                        countries::CONTINENTS.join(" ")
                    ),
                );
            }
        }
        if let Some(c) = &dc.location.country {
            let up = c.value.to_ascii_uppercase();
            if countries::is_country(&up) {
                if location.continent.is_none() {
                    location.continent = countries::continent_of(&up).map(Into::into);
                }
                location.country = Some(up.into());
            } else {
                d.at(
                    c,
                    &at("location.country"),
                    format_args!("`{}` is not an ISO 3166-1 country code", c.value),
                );
            }
        }
        match (&dc.location.lat, &dc.location.lon) {
            (Some(lat), Some(_)) if lat.value.abs() > 90.0 => d.at(
                lat,
                &at("location.lat"),
                format_args!("{} is not within ±90", lat.value),
            ),
            (Some(_), Some(lon)) if lon.value.abs() > 180.0 => d.at(
                lon,
                &at("location.lon"),
                format_args!("{} is not within ±180", lon.value),
            ),
            (Some(lat), Some(lon)) => location.coords = Some((lat.value, lon.value)),
            (None, None) => {}
            (Some(s), None) | (None, Some(s)) => d.at(s, &at("location"), "lat and lon go together"),
        }
        if d.count() > before_location {
            refused_locations.insert(name.to_string());
        }
        let mut endpoints = Vec::new();
        for (i, ep) in dc.endpoints.value.iter().enumerate() {
            let e = &ep.value;
            let at = |s: &str| at(&format!("endpoints[{i}].{s}"));
            let Ok(address) = e.address.value.parse::<IpAddr>() else {
                d.at(
                    &e.address,
                    &at("address"),
                    format_args!("`{}` is not an IP address", e.address.value),
                );
                continue;
            };
            if endpoints.iter().any(|x: &Endpoint| x.address == address) {
                d.at(
                    &e.address,
                    &at("address"),
                    format_args!("{address} is listed twice"),
                );
                continue;
            }
            let weight = match &e.weight {
                None => NonZeroU32::MIN,
                Some(w) => u32::try_from(w.value)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .unwrap_or_else(|| {
                        d.at(w, &at("weight"), "must be between 1 and 4294967295");
                        NonZeroU32::MIN
                    }),
            };
            let configured_up = match &e.state {
                None => true,
                Some(s) if s.value == "up" => true,
                Some(s) if s.value == "down" => false,
                Some(s) => {
                    d.at(
                        s,
                        &at("state"),
                        format_args!(
                            "`{}` is neither `up` nor `down`{}",
                            s.value,
                            did_you_mean(&s.value, ["up", "down"])
                        ),
                    );
                    true
                }
            };
            let check = e.check.as_ref().and_then(|c| match checks.get(&c.value) {
                Some(found) => found.clone(),
                None => {
                    d.at(
                        c,
                        &at("check"),
                        format_args!(
                            "no check `{}` is defined under `checks`{}",
                            c.value,
                            did_you_mean(&c.value, checks.keys().map(String::as_str))
                        ),
                    );
                    None
                }
            });
            let probe_address = e.probe_address.as_ref().and_then(|p| {
                let parsed = p.value.parse::<IpAddr>().ok();
                if parsed.is_none() {
                    d.at(
                        p,
                        &at("probe_address"),
                        format_args!("`{}` is not an IP address", p.value),
                    );
                }
                if e.check.is_none() {
                    d.at(p, &at("probe_address"), "probe_address needs a check");
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
        if dc.endpoints.value.is_empty() {
            d.at(
                &dc.endpoints,
                &at("endpoints"),
                "a data center needs at least one endpoint",
            );
        }
        let min_healthy = match &dc.min_healthy {
            None => NonZeroUsize::MIN,
            Some(m) => NonZeroUsize::new(m.value as usize)
                .filter(|n| n.get() <= dc.endpoints.value.len().max(1))
                .unwrap_or_else(|| {
                    d.at(
                        m,
                        &at("min_healthy"),
                        format_args!(
                            "must be between 1 and the number of endpoints ({})",
                            dc.endpoints.value.len()
                        ),
                    );
                    NonZeroUsize::MIN
                }),
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
