//! Serde mirror of the YAML files. No logic: shapes, spans and unknown-field rejection only.
//! Everything is checked and turned into model types by the file named after its section
//! (`settings`, `checks`, `datacenters`, `gslb`, `zones`).

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

/// `meridian.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub log: RawLog,
    pub zones_dir: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub admin: RawAdmin,
    pub geoip: Option<RawGeoip>,
    #[serde(default)]
    pub checks: Entries<Spanned<RawCheck>>,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub datacenters: Entries<Spanned<RawDatacenter>>,
    pub cluster: Option<Spanned<RawCluster>>,
}

/// What every node of a cluster shares besides its zones: the document kept in etcd under
/// `<prefix>datacenters` (and in `state_dir/cluster/datacenters.yaml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    #[serde(default)]
    pub checks: Entries<Spanned<RawCheck>>,
    #[serde(default)]
    pub datacenters: Entries<Spanned<RawDatacenter>>,
}

/// `cluster:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub node: Option<Spanned<String>>,
    pub etcd: Spanned<RawEtcd>,
}

/// `cluster.etcd:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub prefix: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub port: Option<Spanned<u64>>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: Entries<Spanned<String>>,
    pub expect_status: Option<Spanned<Vec<Spanned<u64>>>>,
    pub body_contains: Option<Spanned<String>>,
    pub tls_verify: Option<Spanned<bool>>,
    pub ca_file: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<u64>>,
    pub fall: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub max_concurrent: Option<Spanned<u64>>,
    pub partition_guard: Option<Spanned<bool>>,
    pub startup_wait: Option<Spanned<String>>,
    /// `majority`, `any`, `all`, or a number of nodes (read as text either way).
    pub quorum: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `host:port`, or `off`.
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub tokens: Vec<Spanned<RawToken>>,
    pub max_connections: Option<Spanned<u64>>,
    pub header_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub allowed_hosts: Vec<Spanned<String>>,
    pub tls: Option<Spanned<RawAdminTls>>,
}

/// `admin.tls`: the admin API over HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminTls {
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: Spanned<String>,
    pub role: Spanned<String>,
    pub token_file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    pub database: Spanned<String>,
    /// How often the file is checked for replacement, like `5s`.
    pub check_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatacenter {
    #[serde(default)]
    pub location: RawDcLocation,
    pub endpoints: Spanned<Vec<Spanned<RawEndpoint>>>,
    pub min_healthy: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDcLocation {
    pub continent: Option<Spanned<String>>,
    pub country: Option<Spanned<String>>,
    pub lat: Option<Spanned<f64>>,
    pub lon: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<u64>>,
    /// `up` (default) or `down`.
    pub state: Option<Spanned<String>>,
    pub check: Option<Spanned<String>>,
    pub probe_address: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub listen: Option<Vec<Spanned<String>>>,
    pub udp_workers: Option<Spanned<u64>>,
    pub udp_reuseport: Option<Spanned<bool>>,
    pub tcp_idle_timeout: Option<Spanned<String>>,
    pub tcp_max_connections: Option<Spanned<u64>>,
    /// After SIGTERM, how long open TCP connections (and the admin API) may take to finish.
    pub shutdown_grace: Option<Spanned<String>>,
    /// Server identifier for NSID; `hostname` uses the host's name.
    pub nsid: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<Spanned<String>>,
    pub level: Option<Spanned<String>>,
}

/// One `zones/<zone>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub zone: Spanned<String>,
    pub ttl: Option<Spanned<u64>>,
    pub soa: Option<Spanned<RawSoa>>,
    pub ns: Option<Spanned<Vec<Spanned<String>>>>,
    pub import: Option<Spanned<String>>,
    #[serde(default)]
    pub records: Entries<Entries<Spanned<RawValue>>>,
    #[serde(default)]
    pub gslb: Entries<Spanned<RawGslb>>,
}

/// A load-balanced name under `gslb:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGslb {
    pub ttl: Option<Spanned<u64>>,
    pub degraded_ttl: Option<Spanned<u64>>,
    pub policy: Spanned<String>,
    pub datacenters: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub weights: Entries<Spanned<u64>>,
    pub sticky: Option<Spanned<bool>>,
    #[serde(default)]
    pub geo: Entries<Spanned<Vec<Spanned<RawValue>>>>,
    pub answer: Option<RawAnswer>,
    pub when_all_down: Option<Spanned<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswer {
    pub datacenters: Option<Spanned<u64>>,
    pub max_addresses: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoa {
    pub mname: Spanned<String>,
    pub rname: Spanned<String>,
    pub serial: Option<Spanned<u32>>,
    pub refresh: Option<Spanned<u32>>,
    pub retry: Option<Spanned<u32>>,
    pub expire: Option<Spanned<u32>>,
    pub minimum: Option<Spanned<u32>>,
}

/// A value under a record name: `ttl: 60`, `CNAME: target.` or `A: [addr, addr]`.
#[derive(Debug)]
pub enum RawValue {
    Number(u64),
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawValue {
    // Hand-written rather than `#[serde(untagged)]`: untagged buffering loses the spans of the
    // list items, and each item's position is what a bad address is reported at.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
                Ok(RawValue::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
                Err(E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::One(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::One(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<RawValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = s.next_element()? {
                    items.push(item);
                }
                Ok(RawValue::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A YAML mapping kept in file order with the span of every key. (Spanned keys are not `Ord`,
/// and order matters for messages.) Duplicate keys are already refused by the parser.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    READING.with_borrow_mut(|keys| {
                        if let Some(keys) = keys {
                            keys.push(k.value.clone());
                        }
                    });
                    let value = m.next_value()?;
                    // Left in place on an error: the key names where it happened.
                    READING.with_borrow_mut(|keys| keys.as_mut().map(Vec::pop));
                    v.push((k, value));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

thread_local! {
    /// While tracked, the keys of the [`Entries`] being read, outermost first. A serde path
    /// cannot name them (they are read with their spans, which hides their text from it), so
    /// the key is kept here while its value is read, and left when the value fails, for the
    /// problem to name. `None`: not tracked (a first reading, which usually succeeds).
    static READING: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Starts tracking the keys of the entries being read, from none.
pub(crate) fn track_entry_keys() {
    READING.set(Some(Vec::new()));
}

/// Stops tracking; the keys of the entries a failed read was in, outermost first.
pub(crate) fn take_entry_keys() -> Vec<String> {
    READING.take().unwrap_or_default()
}
