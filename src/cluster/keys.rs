//! Where each part of the shared state lives in etcd, under the configured prefix:
//!
//! | key | value |
//! |---|---|
//! | `datacenters` | YAML: the `checks:` and `datacenters:` sections, validated as one |
//! | `zones/<zone>` | YAML: one zone file, as in `zones_dir` (`<zone>` lowercase, no final dot) |
//! | `overrides/datacenters/<dc>` | JSON: `{"state": "drained", "weight": 50}` (either may be absent) |
//! | `overrides/endpoints/<dc>/<address>` | JSON: `{"state": "down"}` |
//! | `audit` | JSON: who made the change written in the same transaction (`Audit`) |
//! | `nodes/<node>` | JSON: a live node (`NodeRecord`), bound to its lease |
//! | `health/<node>/<check>/<address>` | JSON: what that node's probe sees (`HealthReport`), bound to its lease |
//!
//! The shared state (data centers, zones, overrides) is written by operators; `nodes/` and
//! `health/` are each node's own, written only by it and gone when its lease expires.
//!
//! Anything else under the prefix is left alone (and reported once).

use super::etcd::{Expect, Write};
use crate::model::gslb::{EndpointKey, Forced};
use crate::name::canonical_hostname;
use serde::{Deserialize, Serialize};

/// A key of the shared state, parsed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Datacenters,
    /// A zone, by its canonical name (lowercase, A-labels, no final dot).
    Zone(String),
    DcOverride(String),
    EndpointOverride(EndpointKey),
    Audit,
    /// A live node, by its name.
    Node(String),
    /// One node's view of one probe target. `target` is `<check>/<address>`, the address
    /// canonical (as `health::probe::Target::key` writes it).
    Health {
        node: String,
        target: String,
    },
}

/// The prefix of every health key (all nodes').
pub fn health_prefix(prefix: &str) -> String {
    format!("{prefix}health/")
}

/// The prefix of one node's health keys.
pub fn node_health_prefix(prefix: &str, node: &str) -> String {
    format!("{prefix}health/{node}/")
}

/// A key under the prefix that is none of Meridian's, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key {key} is not one of Meridian's: {reason}")]
pub struct ForeignKey {
    pub key: String,
    pub reason: String,
}

impl Key {
    /// Part of the state operators write (documents and overrides), not a node's own key nor
    /// the audit record.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Key::Audit | Key::Node(_) | Key::Health { .. })
    }

    /// The key's text after the prefix.
    pub fn path(&self) -> String {
        match self {
            Key::Datacenters => "datacenters".into(),
            Key::Zone(z) => format!("zones/{z}"),
            Key::DcOverride(dc) => format!("overrides/datacenters/{dc}"),
            Key::EndpointOverride(k) => format!("overrides/endpoints/{}/{}", k.dc, k.address),
            Key::Audit => "audit".into(),
            Key::Node(n) => format!("nodes/{n}"),
            Key::Health { node, target } => format!("health/{node}/{target}"),
        }
    }

    /// The full key under `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<u8> {
        format!("{prefix}{}", self.path()).into_bytes()
    }

    /// Parses a full key read from etcd. `None` when it is not under `prefix` at all.
    pub fn parse(prefix: &str, key: &[u8]) -> Option<Result<Key, ForeignKey>> {
        let rest = key.strip_prefix(prefix.as_bytes())?;
        let text = String::from_utf8_lossy(key).into_owned();
        let foreign = |reason: &str| {
            Err(ForeignKey {
                key: text.clone(),
                reason: reason.to_string(),
            })
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            return Some(foreign("not UTF-8"));
        };
        Some(match rest {
            "datacenters" => Ok(Key::Datacenters),
            "audit" => Ok(Key::Audit),
            _ => {
                if let Some(zone) = rest.strip_prefix("zones/") {
                    match canonical_hostname(zone, false) {
                        Ok(c) if c == zone => Ok(Key::Zone(c)),
                        Ok(c) => foreign(&format!("zone keys are canonical names: zones/{c}")),
                        Err(e) => foreign(&e.to_string()),
                    }
                } else if let Some(dc) = rest.strip_prefix("overrides/datacenters/") {
                    if is_safe_name(dc) {
                        Ok(Key::DcOverride(dc.to_string()))
                    } else {
                        foreign("not a data center name")
                    }
                } else if let Some(ep) = rest.strip_prefix("overrides/endpoints/") {
                    match ep.parse::<EndpointKey>() {
                        Ok(k) if is_safe_name(&k.dc) && k.to_string() == ep => Ok(Key::EndpointOverride(k)),
                        Ok(k) => foreign(&format!(
                            "endpoint keys are `<dc>/<address>` with the address canonical: {k}"
                        )),
                        Err(e) => foreign(&e),
                    }
                } else if let Some(node) = rest.strip_prefix("nodes/") {
                    if is_safe_name(node) {
                        Ok(Key::Node(node.to_string()))
                    } else {
                        foreign("not a node name")
                    }
                } else if let Some(health) = rest.strip_prefix("health/") {
                    match parse_health(health) {
                        Some((node, target)) => Ok(Key::Health { node, target }),
                        None => foreign(
                            "health keys are `health/<node>/<check>/<address>`, the address canonical",
                        ),
                    }
                } else {
                    foreign("unknown key")
                }
            }
        })
    }
}

/// `<node>/<check>/<address>` of a health key.
fn parse_health(rest: &str) -> Option<(String, String)> {
    let (node, target) = rest.split_once('/')?;
    let (check, address) = target.split_once('/')?;
    let ip: std::net::IpAddr = address.parse().ok()?;
    (is_safe_name(node) && is_safe_name(check) && ip.to_string() == address)
        .then(|| (node.to_string(), target.to_string()))
}

/// Data center names as the configuration allows them (`[A-Za-z0-9_.-]`, not empty).
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The value of a data center's override key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcOverride {
    #[serde(default, skip_serializing_if = "is_auto")]
    pub state: Forced,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// The value of an endpoint's override key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointOverride {
    pub state: Forced,
}

fn is_auto(f: &Forced) -> bool {
    *f == Forced::Auto
}

/// Who made the change written in the same transaction. etcd keeps no author, so every
/// transaction Meridian writes carries one, and every node's event names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// The node whose API took the change (or `meridian cluster push` and the host it ran on).
    pub node: String,
    /// The admin token's name, or the user running `push`.
    pub by: String,
    /// What changed, in the words of the event (`zone example.com name www`), when one thing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
}

impl Audit {
    /// The put of this record under `prefix`, to go in the transaction it describes.
    pub fn write(&self, prefix: &str) -> Write {
        Write::Put {
            key: Key::Audit.under(prefix),
            value: serde_json::to_vec(self).expect("audit serializes"),
            expect: Expect::Any,
        }
    }
}

/// The value of `nodes/<node>`: the node is live while its lease is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// When this node's lease was granted (RFC 3339).
    pub started: String,
    /// The lease its keys are bound to.
    pub lease: i64,
    /// Its `health.quorum` (nodes deciding by different rules can disagree).
    pub quorum: String,
}

/// The value of `health/<node>/<check>/<address>`: one node's view of one target, written when
/// it changes (not per probe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `up` or `down`.
    pub state: String,
    /// When the node's view last changed (RFC 3339).
    pub since: String,
    /// Why: the last error when down, what brought it up otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The probe's latency when the view changed, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written() {
        let keys = [
            Key::Datacenters,
            Key::Zone("gslb.example.com".into()),
            Key::DcOverride("eu-west".into()),
            Key::EndpointOverride("eu/2001:db8::1".parse().unwrap()),
            Key::Audit,
            Key::Node("ns1".into()),
            Key::Health {
                node: "ns1".into(),
                target: "web/2001:db8::1".into(),
            },
            Key::Health {
                node: "ns-2".into(),
                target: "web/192.0.2.1".into(),
            },
        ];
        for k in keys {
            assert_eq!(Key::parse("/m/", &k.under("/m/")), Some(Ok(k.clone())), "{k:?}");
        }
    }

    #[test]
    fn foreign_keys_say_why() {
        let parse = |k: &str| Key::parse("/m/", k.as_bytes());
        assert_eq!(parse("/other/zones/a.test"), None);
        for bad in [
            "/m/zones/A.test",
            "/m/zones/../x",
            "/m/zones/a.test.",
            "/m/overrides/datacenters/a/b",
            "/m/overrides/endpoints/eu/2001:DB8::1",
            "/m/overrides/endpoints/eu/300.1.1.1",
            "/m/health/x",
            "/m/health/ns1/web",
            "/m/health/ns1/web/2001:DB8::1",
            "/m/health/ns1/w b/192.0.2.1",
            "/m/health/ns/1/web/192.0.2.1",
            "/m/nodes/a/b",
            "/m/nodes/",
        ] {
            assert!(matches!(parse(bad), Some(Err(_))), "{bad}");
        }
    }
}
