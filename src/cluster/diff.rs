//! What a push would change, said in the configuration's terms: data centers and checks by
//! name, and inside a zone the names and records added and removed (`+ www A 192.0.2.1`) and
//! the load-balanced names whose settings changed. Both sides are validated [`Config`]s, so
//! spelling, key order and comments never show up as changes.

use crate::config::Config;
use crate::model::gslb::{Check, CheckKind, Datacenter, DcId, GslbName, WhenAllDown};
use crate::model::{Node, RRset, RType, Zone};
use crate::name::NameKey;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// An item's properties as labelled text, in a fixed order: what two versions of one data
/// center, check or load-balanced name are compared by.
#[derive(Debug, Default, PartialEq)]
struct Facts(Vec<(String, String)>);

impl Facts {
    fn add(&mut self, label: impl Into<String>, value: impl ToString) {
        self.0.push((label.into(), value.to_string()));
    }

    fn get(&self, label: &str) -> Option<&str> {
        self.0.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_str())
    }

    /// Every fact on one line, for an item that is new.
    fn summary(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(l, v)| join_fact(l, v)).collect();
        parts.join("; ")
    }

    /// What differs from `old`, on one line (empty when nothing does).
    fn changes_from(&self, old: &Facts) -> String {
        let mut parts = Vec::new();
        for (label, new) in &self.0 {
            match old.get(label) {
                Some(o) if o == new => {}
                Some(o) => parts.push(format!("{label} {o} -> {new}")),
                None if new.is_empty() => parts.push(format!("{label} added")),
                None => parts.push(format!("{label} added ({new})")),
            }
        }
        for (label, _) in &old.0 {
            if self.get(label).is_none() {
                parts.push(format!("{label} removed"));
            }
        }
        parts.join("; ")
    }
}

fn join_fact(label: &str, value: &str) -> String {
    if value.is_empty() {
        label.to_string()
    } else {
        format!("{label} {value}")
    }
}

/// Lines for what changed between two sets of items compared by name: `+ kind name: facts`,
/// `- kind name`, `~ kind name: what changed`.
fn by_name(kind: &str, old: &BTreeMap<String, Facts>, new: &BTreeMap<String, Facts>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, facts) in new {
        match old.get(name) {
            None => out.push(format!("+ {kind} {name}: {}", facts.summary())),
            Some(o) if o == facts => {}
            Some(o) => out.push(format!("~ {kind} {name}: {}", facts.changes_from(o))),
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("- {kind} {name}"));
    }
    out
}

// === data centers and checks ===

/// The data centers and the checks they use, added, removed and changed by name. A check no
/// endpoint names is not part of what a configuration serves, so it is not compared.
pub fn datacenters(old: &Config, new: &Config) -> Vec<String> {
    let mut out = by_name("datacenter", &dc_facts(old), &dc_facts(new));
    out.extend(by_name("check", &check_facts(old), &check_facts(new)));
    out
}

fn dc_facts(config: &Config) -> BTreeMap<String, Facts> {
    config
        .datacenters
        .iter()
        .map(|dc| (dc.name.to_string(), datacenter(dc)))
        .collect()
}

fn datacenter(dc: &Datacenter) -> Facts {
    let mut f = Facts::default();
    let loc = &dc.location;
    let mut place = Vec::new();
    place.extend(loc.continent.as_deref().map(|c| format!("continent {c}")));
    place.extend(loc.country.as_deref().map(|c| format!("country {c}")));
    place.extend(loc.coords.map(|(lat, lon)| format!("lat {lat} lon {lon}")));
    if !place.is_empty() {
        f.add("location", place.join(" "));
    }
    f.add("min_healthy", dc.min_healthy);
    for e in &dc.endpoints {
        let mut about = vec![format!("weight {}", e.weight)];
        about.push(match &e.check {
            Some(c) => format!("check {}", c.name),
            None => "no check".to_string(),
        });
        about.extend(e.probe_address.map(|p| format!("probe_address {p}")));
        if !e.configured_up {
            about.push("state down".into());
        }
        f.add(format!("endpoint {}", e.address), about.join(", "));
    }
    f
}

/// Every check an endpoint names, by name.
fn check_facts(config: &Config) -> BTreeMap<String, Facts> {
    let base = config.path.parent().unwrap_or(Path::new(""));
    config
        .datacenters
        .iter()
        .flat_map(|dc| &dc.endpoints)
        .filter_map(|e| e.check.as_deref())
        .map(|c| (c.name.to_string(), check(c, base)))
        .collect()
}

/// A check's settings; a CA file relative to its configuration's directory, so that the same
/// file text read from two places compares equal.
fn check(c: &Check, base: &Path) -> Facts {
    let mut f = Facts::default();
    f.add("type", c.kind.as_str());
    f.add("port", c.port);
    if let CheckKind::Http(h) | CheckKind::Https(h) = &c.kind {
        f.add("method", &h.method);
        f.add("path", &h.path);
        f.add("host", h.host.as_deref().unwrap_or("(the address)"));
        let headers: Vec<String> = h.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        f.add("headers", format!("[{}]", headers.join(", ")));
        f.add("expect_status", format!("{:?}", h.expect_status));
        f.add("body_contains", h.body_contains.as_deref().unwrap_or("(any)"));
        f.add("tls_verify", h.tls_verify);
        let ca = h.ca_file.as_deref().map(|p| p.strip_prefix(base).unwrap_or(p));
        f.add(
            "ca_file",
            ca.map_or("(system roots)".into(), |p| p.display().to_string()),
        );
    }
    f.add("interval", format!("{:?}", c.interval));
    f.add("timeout", format!("{:?}", c.timeout));
    f.add("rise", c.rise);
    f.add("fall", c.fall);
    f
}

// === zones ===

/// One line for a zone that is new: how much it holds.
pub fn zone_summary(zone: &Zone) -> String {
    let records: usize = zone
        .nodes
        .iter()
        .flat_map(|n| &n.rrsets)
        .map(|s| s.rdatas.len())
        .sum();
    let gslb = zone.nodes.iter().filter(|n| n.gslb.is_some()).count();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}, {}",
        count(zone.nodes.len(), "name"),
        count(records, "record"),
        count(gslb, "load-balanced name")
    )
}

/// The names of a zone added, removed and changed, each with its records; `old_dcs` and
/// `new_dcs` are the data centers each side's load-balanced names point into.
pub fn zone(old: &Zone, old_dcs: &[Datacenter], new: &Zone, new_dcs: &[Datacenter]) -> Vec<String> {
    let old_nodes: HashMap<NameKey, &Node> = old.nodes.iter().map(|n| (n.name.key(), n)).collect();
    let new_keys: HashMap<NameKey, ()> = new.nodes.iter().map(|n| (n.name.key(), ())).collect();
    let mut out = Vec::new();
    for n in &new.nodes {
        let owner = n.name.relative_to(&new.origin);
        let before = old_nodes.get(&n.name.key()).copied();
        if before.is_none() {
            out.push(format!("+ name {owner}"));
        }
        out.extend(records(&owner, before, Some(n)));
        out.extend(gslb(&owner, before, old_dcs, Some(n), new_dcs));
    }
    for n in old.nodes.iter().filter(|n| !new_keys.contains_key(&n.name.key())) {
        let owner = n.name.relative_to(&old.origin);
        out.push(format!("- name {owner}"));
        out.extend(records(&owner, Some(n), None));
        out.extend(gslb(&owner, Some(n), old_dcs, None, new_dcs));
    }
    out
}

/// `- owner TYPE data` and `+ owner TYPE data` for the records of one name, in presentation
/// form (the data as `model::RData` prints it); a TTL that changed as `~ owner TYPE ttl a -> b`.
fn records(owner: &str, old: Option<&Node>, new: Option<&Node>) -> Vec<String> {
    let types = |n: Option<&Node>| -> Vec<RType> {
        n.map(|n| n.rrsets.iter().map(|s| s.rtype).collect())
            .unwrap_or_default()
    };
    let mut all = types(new);
    for t in types(old) {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    let mut out = Vec::new();
    for t in all {
        let (o, n) = (old.and_then(|x| x.get(t)), new.and_then(|x| x.get(t)));
        let data = |s: Option<&RRset>| -> Vec<String> {
            s.map(|s| s.rdatas.iter().map(ToString::to_string).collect())
                .unwrap_or_default()
        };
        let (od, nd) = (data(o), data(n));
        for d in od.iter().filter(|d| !nd.contains(d)) {
            out.push(format!("- {owner} {t} {d}"));
        }
        for d in nd.iter().filter(|d| !od.contains(d)) {
            out.push(format!("+ {owner} {t} {d}"));
        }
        if let (Some(o), Some(n)) = (o, n)
            && o.ttl != n.ttl
        {
            out.push(format!("~ {owner} {t} ttl {} -> {}", o.ttl, n.ttl));
        }
    }
    out
}

/// The load-balanced answer of one name: added, removed, or what of it changed.
fn gslb(
    owner: &str,
    old: Option<&Node>,
    old_dcs: &[Datacenter],
    new: Option<&Node>,
    new_dcs: &[Datacenter],
) -> Option<String> {
    let o = old
        .and_then(|n| n.gslb.as_deref())
        .map(|g| gslb_facts(g, old_dcs));
    let n = new
        .and_then(|n| n.gslb.as_deref())
        .map(|g| gslb_facts(g, new_dcs));
    match (o, n) {
        (None, None) => None,
        (None, Some(n)) => Some(format!("+ gslb name {owner}: {}", n.summary())),
        (Some(_), None) => Some(format!("- gslb name {owner}")),
        (Some(o), Some(n)) if o == n => None,
        (Some(o), Some(n)) => Some(format!("~ gslb name {owner}: {}", n.changes_from(&o))),
    }
}

/// A load-balanced name's settings, its data centers by name (ids differ between two
/// configurations).
fn gslb_facts(g: &GslbName, dcs: &[Datacenter]) -> Facts {
    let name = |id: &DcId| {
        dcs.get(usize::from(id.0))
            .map_or_else(|| format!("#{}", id.0), |d| d.name.to_string())
    };
    let mut f = Facts::default();
    f.add("policy", g.policy.as_str());
    let candidates: Vec<String> = g
        .candidates
        .iter()
        .zip(&g.weights)
        .map(|(c, w)| format!("{} (weight {w})", name(c)))
        .collect();
    f.add("datacenters", candidates.join(", "));
    f.add("ttl", g.ttl);
    f.add("degraded_ttl", g.degraded_ttl);
    f.add("sticky", g.sticky);
    for rule in &g.geo {
        let ranks: Vec<String> = rule
            .ranks
            .iter()
            .map(|r| r.iter().map(name).collect::<Vec<_>>().join(" "))
            .collect();
        f.add(format!("geo {}", rule.matches), ranks.join(", then "));
    }
    f.add("answer.datacenters", g.answer_datacenters);
    f.add("answer.max_addresses", g.max_addresses);
    let down = match &g.when_all_down {
        WhenAllDown::All => "all".to_string(),
        WhenAllDown::None => "none".to_string(),
        WhenAllDown::Servfail => "servfail".to_string(),
        WhenAllDown::Fallback(addrs) => {
            let a: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            a.join(" ")
        }
    };
    f.add("when_all_down", down);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        let mut f = Facts::default();
        for (l, v) in pairs {
            f.add(*l, v);
        }
        f
    }

    #[test]
    fn changes_name_each_fact_that_differs() {
        let old = facts(&[
            ("ttl", "30"),
            ("endpoint 192.0.2.1", "weight 1"),
            ("sticky", "false"),
        ]);
        let new = facts(&[
            ("ttl", "60"),
            ("sticky", "false"),
            ("endpoint 192.0.2.2", "weight 2"),
        ]);
        assert_eq!(
            new.changes_from(&old),
            "ttl 30 -> 60; endpoint 192.0.2.2 added (weight 2); endpoint 192.0.2.1 removed"
        );
        assert_eq!(new.changes_from(&new), "");
    }

    #[test]
    fn items_compare_by_name() {
        let old = BTreeMap::from([
            ("eu".to_string(), facts(&[("min_healthy", "1")])),
            ("us".to_string(), facts(&[("min_healthy", "1")])),
        ]);
        let new = BTreeMap::from([
            ("ap".to_string(), facts(&[("min_healthy", "1")])),
            ("eu".to_string(), facts(&[("min_healthy", "2")])),
        ]);
        assert_eq!(
            by_name("datacenter", &old, &new),
            [
                "+ datacenter ap: min_healthy 1",
                "~ datacenter eu: min_healthy 1 -> 2",
                "- datacenter us",
            ]
        );
    }
}
