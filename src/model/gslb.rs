//! Load-balanced names: data centers, their endpoints, and the policy that picks among them.

use crate::name::Name;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP(S) health check's request and what counts as healthy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub method: String,
    pub path: String,
    /// Host header, and SNI for https. Default: none (the address).
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Status codes that mean healthy. Default [200].
    pub expect_status: Vec<u16>,
    /// When set, the body must contain this text.
    pub body_contains: Option<String>,
    /// Verify the certificate (https). Default true.
    pub tls_verify: bool,
    /// Trust only this CA bundle (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// A TCP connection opens.
    Tcp,
    Http(HttpCheck),
    Https(HttpCheck),
}

impl CheckKind {
    /// The name of the kind as `type:` in the configuration spells it (also the URL scheme
    /// shown for a probe target and the `type` label of the probe metrics).
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(_) => "http",
            CheckKind::Https(_) => "https",
        }
    }
}

/// A named health check from `checks:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    pub name: Box<str>,
    pub kind: CheckKind,
    pub port: u16,
    /// Default 1 s.
    pub interval: Duration,
    /// Default 500 ms; never above the interval.
    pub timeout: Duration,
    /// Consecutive successes to become up. Default 2.
    pub rise: NonZeroU32,
    /// Consecutive failures to become down. Default 2.
    pub fall: NonZeroU32,
}

/// Index of a data center in the configuration's `datacenters` (and the snapshot's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DcId(pub u16);

/// Index of an endpoint across all data centers (the health table's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u32);

/// Where a data center is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DcLocation {
    pub continent: Option<Box<str>>,
    pub country: Option<Box<str>>,
    /// (latitude, longitude) in degrees.
    pub coords: Option<(f64, f64)>,
}

/// One address a data center answers with.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub address: IpAddr,
    /// Share among the data center's endpoints of the same family. Default 1.
    pub weight: NonZeroU32,
    /// `state: down` in the config takes the endpoint out by hand; default up.
    pub configured_up: bool,
    /// The health check; none means always up (unless `configured_up` is false).
    pub check: Option<Arc<Check>>,
    /// Probe this address instead of `address`.
    pub probe_address: Option<IpAddr>,
}

impl Endpoint {
    /// The address the check connects to.
    pub fn probe_target(&self) -> IpAddr {
        self.probe_address.unwrap_or(self.address)
    }
}

/// An endpoint named across boundaries (overrides, events, the admin API): its data center's
/// name and its address. Written `dc/address`, the address in canonical text, so every
/// spelling of an address names one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub dc: Box<str>,
    pub address: IpAddr,
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dc, self.address)
    }
}

impl std::str::FromStr for EndpointKey {
    type Err = String;
    /// `dc/address`: the data center is everything before the last `/`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (dc, addr) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("`{s}` is not `datacenter/address`"))?;
        let address = addr
            .parse()
            .map_err(|_| format!("`{addr}` in `{s}` is not an IPv4 or IPv6 address"))?;
        Ok(EndpointKey {
            dc: dc.into(),
            address,
        })
    }
}

impl serde::Serialize for EndpointKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EndpointKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An operator's override of a data center or endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Forced {
    /// Probes decide.
    #[default]
    Auto,
    /// Up whatever probes say.
    Up,
    /// Down whatever probes say.
    Down,
    /// Taken out of answers for maintenance.
    Drained,
}

impl Forced {
    pub fn as_str(self) -> &'static str {
        match self {
            Forced::Auto => "auto",
            Forced::Up => "up",
            Forced::Down => "down",
            Forced::Drained => "drained",
        }
    }
    /// `Some(up)` when forced, `None` when probes decide.
    pub fn verdict(self) -> Option<bool> {
        match self {
            Forced::Auto => None,
            Forced::Up => Some(true),
            Forced::Down | Forced::Drained => Some(false),
        }
    }
}

/// Whether a data center takes traffic, and why: the one decision the answer path, the admin
/// API, the metrics and the health events all read (made by [`DcState::decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DcState {
    /// Takes traffic.
    pub up: bool,
    pub reason: DcReason,
    /// Endpoints up (checks, configured state and endpoint overrides folded in).
    pub healthy: usize,
    pub min_healthy: usize,
}

/// Why a data center is up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcReason {
    /// At least `min_healthy` endpoints are up.
    Healthy,
    /// Fewer than `min_healthy` endpoints are up.
    ChecksFailing,
    /// An operator forced it up.
    ForcedUp,
    /// An operator forced it down.
    ForcedDown,
    /// An operator drained it.
    Drained,
}

impl DcReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DcReason::Healthy => "healthy",
            DcReason::ChecksFailing => "health checks failing",
            DcReason::ForcedUp => "forced up",
            DcReason::ForcedDown => "forced down",
            DcReason::Drained => "drained",
        }
    }
}

impl DcState {
    /// Overrides beat health; without one, the data center is up while `min_healthy` of its
    /// endpoints are.
    pub fn decide(forced: Forced, healthy: usize, min_healthy: usize) -> DcState {
        let checks_up = healthy >= min_healthy;
        let (up, reason) = match forced {
            Forced::Up => (true, DcReason::ForcedUp),
            Forced::Down => (false, DcReason::ForcedDown),
            Forced::Drained => (false, DcReason::Drained),
            Forced::Auto if checks_up => (true, DcReason::Healthy),
            Forced::Auto => (false, DcReason::ChecksFailing),
        };
        DcState {
            up,
            reason,
            healthy,
            min_healthy,
        }
    }

    /// What the endpoints' health alone says, overrides aside.
    pub fn checks_up(&self) -> bool {
        self.healthy >= self.min_healthy
    }

    /// Forced by an operator either way.
    pub fn is_forced(&self) -> bool {
        matches!(
            self.reason,
            DcReason::ForcedUp | DcReason::ForcedDown | DcReason::Drained
        )
    }
}

/// A data center: a location and the endpoints (virtual IPs) it serves on.
#[derive(Clone, Debug, PartialEq)]
pub struct Datacenter {
    pub name: Box<str>,
    pub location: DcLocation,
    pub endpoints: Vec<Endpoint>,
    /// The data center is up while at least this many endpoints are. Default 1.
    pub min_healthy: NonZeroUsize,
}

impl Datacenter {
    /// How `e`, one of this data center's endpoints, is named across boundaries.
    pub fn endpoint_key(&self, e: &Endpoint) -> EndpointKey {
        EndpointKey {
            dc: self.name.clone(),
            address: e.address,
        }
    }
}

/// How a name orders its candidate data centers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Candidate order.
    Failover,
    /// Weighted random (sticky: rendezvous hash of the client subnet).
    Weighted,
    /// Most specific geo rule for the client.
    Geo,
    /// Great-circle distance from the client.
    Nearest,
    /// Every healthy data center.
    All,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Weighted => "weighted",
            Policy::Geo => "geo",
            Policy::Nearest => "nearest",
            Policy::All => "all",
        }
    }
}

/// Ordered ranks of data centers; the DCs of one rank share its traffic by weight.
pub type Ranks = Vec<Vec<DcId>>;

/// A geo rule's condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeoMatch {
    Net { addr: IpAddr, len: u8 },
    Subdivision(Box<str>),
    Country(Box<str>),
    Continent(Box<str>),
    Default,
}

impl std::fmt::Display for GeoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GeoMatch::Net { addr, len } => write!(f, "net:{addr}/{len}"),
            GeoMatch::Subdivision(s) => write!(f, "subdivision:{s}"),
            GeoMatch::Country(c) => write!(f, "country:{c}"),
            GeoMatch::Continent(c) => write!(f, "continent:{c}"),
            GeoMatch::Default => f.write_str("default"),
        }
    }
}

/// One geo rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeoRule {
    pub matches: GeoMatch,
    pub ranks: Ranks,
}

/// What to answer when no candidate data center is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Fail open: answer as if every data center were up.
    All,
    /// NOERROR with no addresses.
    None,
    Servfail,
    /// These addresses (of the family asked); at most [`MAX_ADDRESSES`].
    Fallback(Vec<IpAddr>),
}

/// Most candidate data centers one load-balanced name may list. The answer path orders them in
/// fixed-capacity arrays on the stack, so that a query allocates nothing; the configuration is
/// refused beyond it (`config::gslb`).
pub const MAX_CANDIDATES: usize = 64;
/// Most addresses one answer carries: the bound of `answer.max_addresses` and of a
/// `when_all_down` list, for the same reason.
pub const MAX_ADDRESSES: usize = 64;

/// A load-balanced name.
#[derive(Clone, Debug, PartialEq)]
pub struct GslbName {
    pub owner: Name,
    pub ttl: u32,
    /// TTL while any candidate is down. Default: `ttl`.
    pub degraded_ttl: u32,
    pub policy: Policy,
    /// The data centers this name may answer with; this order is the failover order. At most
    /// [`MAX_CANDIDATES`] (the answer path reads no further).
    pub candidates: Vec<DcId>,
    /// Weight per candidate, in `candidates` order.
    pub weights: Vec<NonZeroU32>,
    pub sticky: bool,
    /// Geo rules, most specific first (net by prefix length, subdivision, country, continent,
    /// default).
    pub geo: Vec<GeoRule>,
    /// How many data centers one answer draws from (`all` uses every healthy one). Default 1.
    pub answer_datacenters: NonZeroUsize,
    /// At most this many addresses in one answer (at most [`MAX_ADDRESSES`]). Default 8.
    pub max_addresses: NonZeroUsize,
    pub when_all_down: WhenAllDown,
}

impl GslbName {
    /// The weight of a candidate data center (1 when not a candidate).
    pub fn weight(&self, dc: DcId) -> NonZeroU32 {
        self.candidates
            .iter()
            .position(|&c| c == dc)
            .map_or(NonZeroU32::MIN, |i| self.weights[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_health_and_say_why() {
        use DcReason::*;
        // (override, healthy, min_healthy) → (up, reason, checks_up)
        let cases = [
            (Forced::Auto, 2, 2, true, Healthy, true),
            (Forced::Auto, 1, 2, false, ChecksFailing, false),
            (Forced::Auto, 0, 1, false, ChecksFailing, false),
            (Forced::Up, 0, 1, true, ForcedUp, false),
            (Forced::Down, 3, 1, false, ForcedDown, true),
            (Forced::Drained, 3, 1, false, Drained, true),
            (Forced::Drained, 0, 1, false, Drained, false),
        ];
        for (forced, healthy, min, up, reason, checks_up) in cases {
            let s = DcState::decide(forced, healthy, min);
            assert_eq!(
                (s.up, s.reason, s.checks_up(), s.is_forced()),
                (up, reason, checks_up, forced != Forced::Auto),
                "{forced:?} {healthy}/{min}"
            );
        }
    }

    #[test]
    fn endpoint_keys_round_trip_in_canonical_text() {
        let k: EndpointKey = "eu/2001:0db8::0001".parse().unwrap();
        assert_eq!(k.to_string(), "eu/2001:db8::1");
        let json = serde_json::to_string(&std::collections::BTreeMap::from([(k.clone(), 1)])).unwrap();
        assert_eq!(json, r#"{"eu/2001:db8::1":1}"#);
        let back: std::collections::BTreeMap<EndpointKey, u8> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.keys().next(), Some(&k));
        assert!("eu".parse::<EndpointKey>().is_err());
        assert!("eu/not-an-ip".parse::<EndpointKey>().is_err());
    }
}
