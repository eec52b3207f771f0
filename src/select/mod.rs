//! Picking the addresses for a load-balanced name: pure, synchronous, table-tested.
//!
//! The pipeline (docs/configuration.md, "How an answer is chosen"): candidates → drop data
//! centers that are down → order by policy → take `answer.datacenters` that have endpoints of
//! the family asked → their healthy endpoints, weighted and rotated, at most `max_addresses`.
//! Nothing left → `when_all_down`.
//! Randomness comes in as `entropy`; health comes in through [`Health`].
//!
//! Nothing here allocates unless an explanation is asked for: data centers and addresses are
//! kept in fixed-capacity arrays ([`DcList`], [`Addresses`]) sized by the bounds the
//! configuration enforces (`MAX_CANDIDATES` data centers per name, `MAX_ADDRESSES` addresses per
//! answer), and the `Trace` builds its notes only when enabled.

pub mod geo;
pub mod nearest;
pub mod weighted;

use crate::geo::Location;
use crate::model::gslb::{
    Datacenter, DcId, DcReason, DcState, Endpoint, Forced, GeoRule, GslbName, MAX_ADDRESSES, MAX_CANDIDATES,
    Policy, WhenAllDown,
};
use arrayvec::ArrayVec;
use std::fmt::Write as _;
use std::net::IpAddr;

/// What the answer path knows of endpoint and data center health.
pub trait Health {
    /// Whether the endpoint is up (probe state and overrides folded in).
    fn endpoint_up(&self, dc: DcId, endpoint: &Endpoint) -> bool;
    /// Why it is down, for explanations.
    fn endpoint_note(&self, _dc: DcId, _endpoint: &Endpoint) -> Option<String> {
        None
    }
    /// A data-center-wide override.
    fn dc_forced(&self, _dc: DcId) -> Forced {
        Forced::Auto
    }
    /// A runtime weight set by an operator, replacing the names' configured weights.
    fn dc_weight(&self, _dc: DcId) -> Option<u32> {
        None
    }
    /// Whether data center `id` (which is `d`) takes traffic, and why: the one place this is
    /// decided, for answers, the admin API, metrics and events alike.
    fn dc_state(&self, id: DcId, d: &Datacenter) -> DcState {
        let healthy = d.endpoints.iter().filter(|e| self.endpoint_up(id, e)).count();
        DcState::decide(self.dc_forced(id), healthy, d.min_healthy.get())
    }
}

/// Address family asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn has(self, a: IpAddr) -> bool {
        matches!(
            (self, a),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

/// Who asks, as far as we know.
#[derive(Clone, Copy, Debug)]
pub struct Client<'g> {
    /// The ECS address (masked to its source prefix), else the packet source.
    pub addr: IpAddr,
    /// How many leading bits of `addr` are known: the ECS source prefix, else the full length.
    pub source_prefix: u8,
    /// GeoIP location of `addr`, if the database has one.
    pub location: Option<&'g Location>,
    /// Prefix of the GeoIP network `addr` fell in (0 without a database).
    pub geo_prefix: u8,
    /// For `policy: geo`, the name's rule for `addr` and its scope (`geo::RuleTree::decide`).
    pub geo: geo::Decision,
}

/// Subnet lengths hashed for `sticky`: clients in one /24 (IPv4) or /48 (IPv6) stay together.
pub const STICKY_PREFIX_V4: u8 = 24;
pub const STICKY_PREFIX_V6: u8 = 48;

/// Data centers, in answer order: no more than a name's candidates.
pub type DcList = ArrayVec<DcId, MAX_CANDIDATES>;
/// The addresses of one answer.
pub type Addresses = ArrayVec<IpAddr, MAX_ADDRESSES>;

/// What to answer.
// The addresses stay inline (about 1 KiB on the stack): boxing them would allocate per answer.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// These addresses (never empty).
    Addresses(Addresses),
    /// NOERROR, no address of this family.
    NoData,
    ServFail,
}

/// A selection and the facts around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub outcome: Outcome,
    pub ttl: u32,
    /// ECS scope: the widest client prefix for which this answer holds.
    pub scope: u8,
    /// Data centers the addresses came from, in answer order.
    pub datacenters: DcList,
}

impl Selection {
    /// Nothing selected yet (NODATA), to be filled by [`select_into`].
    pub fn empty() -> Selection {
        Selection {
            outcome: Outcome::NoData,
            ttl: 0,
            scope: 0,
            datacenters: DcList::new(),
        }
    }
}

/// Collects explanation steps when enabled; costs nothing otherwise.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    pub steps: Vec<String>,
    /// The candidate data centers whose health the decision read, in the order read (a data
    /// center read twice is listed twice): what an explanation reports the health of.
    pub datacenters: Vec<DcId>,
}

impl Trace {
    pub fn enabled() -> Self {
        Trace {
            enabled: true,
            ..Trace::default()
        }
    }
    pub fn off() -> Self {
        Trace::default()
    }
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    pub fn note(&mut self, f: impl FnOnce() -> String) {
        if self.enabled {
            self.steps.push(f());
        }
    }
    fn read_health(&mut self, dc: DcId) {
        if self.enabled {
            self.datacenters.push(dc);
        }
    }
}

/// Selects the answer for `name` (A when `family` is V4, AAAA when V6).
#[allow(clippy::too_many_arguments)]
pub fn select(
    name: &GslbName,
    dcs: &[Datacenter],
    family: Family,
    client: &Client<'_>,
    health: &impl Health,
    entropy: u64,
    trace: &mut Trace,
) -> Selection {
    let mut sel = Selection::empty();
    select_into(name, dcs, family, client, health, entropy, trace, &mut sel);
    sel
}

/// [`select`], written into `sel` (whatever it held): the answer path's way, which copies no
/// selection (its addresses are about 1 KiB).
#[allow(clippy::too_many_arguments)]
pub fn select_into(
    name: &GslbName,
    dcs: &[Datacenter],
    family: Family,
    client: &Client<'_>,
    health: &impl Health,
    entropy: u64,
    trace: &mut Trace,
    sel: &mut Selection,
) {
    let rule = match name.policy {
        Policy::Geo => client.geo.rule(&name.geo),
        _ => None,
    };
    pipeline(name, dcs, family, client, rule, health, entropy, trace, sel)
}

/// What `select` answers a client that geo rule `rule` matches (for other policies, `None`:
/// any client), as far as it depends on the rule: for views of where clients go now. Sticky
/// and random choices are made as for a client of address 0 and entropy 0.
pub fn select_for_rule(
    name: &GslbName,
    dcs: &[Datacenter],
    family: Family,
    rule: Option<&GeoRule>,
    health: &impl Health,
) -> Selection {
    let addr = match family {
        Family::V4 => IpAddr::from([0u8; 4]),
        Family::V6 => IpAddr::from([0u8; 16]),
    };
    let anyone = Client {
        addr,
        source_prefix: 0,
        location: None,
        geo_prefix: 0,
        geo: geo::Decision::NONE,
    };
    let mut sel = Selection::empty();
    pipeline(
        name,
        dcs,
        family,
        &anyone,
        rule,
        health,
        0,
        &mut Trace::off(),
        &mut sel,
    );
    sel
}

/// The pipeline of `select`, for the geo rule `rule` (already matched, or chosen by a view).
#[allow(clippy::too_many_arguments)]
fn pipeline(
    name: &GslbName,
    dcs: &[Datacenter],
    family: Family,
    client: &Client<'_>,
    rule: Option<&GeoRule>,
    health: &impl Health,
    entropy: u64,
    trace: &mut Trace,
    sel: &mut Selection,
) {
    let dc = |id: DcId| &dcs[usize::from(id.0)];
    trace.note(|| match name.policy {
        Policy::Geo | Policy::Nearest => {
            let loc = client
                .location
                .map_or("no GeoIP location".to_string(), describe_location);
            format!(
                "client {}/{}: {loc} (GeoIP network /{})",
                client.addr, client.source_prefix, client.geo_prefix
            )
        }
        _ => format!("client {}/{}", client.addr, client.source_prefix),
    });

    // 1. Which candidates are up. The configuration lists no more than MAX_CANDIDATES.
    let candidates = &name.candidates[..name.candidates.len().min(MAX_CANDIDATES)];
    let mut up = DcList::new();
    for &id in candidates {
        let d = dc(id);
        let state = health.dc_state(id, d);
        trace.read_health(id);
        if state.up {
            up.push(id);
        }
        match state.reason {
            DcReason::Healthy => {}
            DcReason::ChecksFailing => trace.note(|| {
                let mut why = format!(
                    "{}: down ({} of {} endpoints up, min_healthy {})",
                    d.name,
                    state.healthy,
                    d.endpoints.len(),
                    d.min_healthy
                );
                for e in &d.endpoints {
                    if let Some(n) = health.endpoint_note(id, e) {
                        let _ = write!(why, "; {} {n}", e.address);
                    }
                }
                why
            }),
            reason => trace.note(|| format!("{}: {} by override", d.name, reason.as_str())),
        }
    }
    let degraded = up.len() < name.candidates.len();
    let ttl = if degraded { name.degraded_ttl } else { name.ttl };
    if degraded {
        trace.note(|| format!("a candidate is down: degraded_ttl {ttl}"));
    }

    // The selection is filled in place: its addresses are about 1 KiB, which every move of it
    // would copy.
    sel.outcome = Outcome::NoData;
    sel.ttl = ttl;
    sel.scope = 0;
    sel.datacenters.clear();

    // 2. Order by policy. 3. Take data centers with endpoints of the family.
    if !up.is_empty() {
        let (order, scope) = order(name, dcs, &up, client, rule, health, entropy, trace);
        sel.scope = scope;
        match take(name, dcs, &order, family, health, entropy, true, trace, sel) {
            // A data center passed over for want of healthy endpoints of this family is a
            // failover too: answer with the short TTL so clients come back soon.
            Some(true) if !degraded => {
                trace.note(|| format!("passed over a data center: degraded_ttl {}", name.degraded_ttl));
                sel.ttl = name.degraded_ttl;
            }
            Some(_) => {}
            None => trace.note(|| format!("no data center up has {} endpoints: NODATA", family_name(family))),
        }
        return;
    }

    // Nothing up.
    trace.note(|| {
        format!(
            "every candidate is down: when_all_down {}",
            when_name(&name.when_all_down)
        )
    });
    match &name.when_all_down {
        WhenAllDown::All => {
            let (order, scope) = order(name, dcs, candidates, client, rule, health, entropy, trace);
            if take(name, dcs, &order, family, health, entropy, false, trace, sel).is_some() {
                sel.scope = scope;
            }
        }
        WhenAllDown::None => {}
        WhenAllDown::Servfail => sel.outcome = Outcome::ServFail,
        // Every candidate down is a rare path: the addresses may be built apart and moved.
        WhenAllDown::Fallback(addrs) => {
            let a: Addresses = addrs
                .iter()
                .copied()
                .filter(|a| family.has(*a))
                .take(MAX_ADDRESSES)
                .collect();
            if !a.is_empty() {
                sel.outcome = Outcome::Addresses(a);
            }
        }
    }
}

/// The data centers a client that `rule` matched (no rule: the candidates' order) prefers, before
/// health and weights: the order `select` walks, for views of where clients go.
pub fn preference(name: &GslbName, rule: Option<&GeoRule>) -> Vec<DcId> {
    let mut o: Vec<DcId> = Vec::with_capacity(name.candidates.len());
    for &d in geo::ranks(name, rule).flatten().chain(&name.candidates) {
        if !o.contains(&d) {
            o.push(d);
        }
    }
    o
}

/// The weight data center `d` draws with in `name`: an operator's runtime weight, else the
/// name's configured one.
pub fn weight(name: &GslbName, health: &impl Health, d: DcId) -> u32 {
    health.dc_weight(d).unwrap_or(name.weight(d).get())
}

/// Orders the data centers in `up` (at most `MAX_CANDIDATES`, distinct) by the name's policy;
/// returns the order and the ECS scope the ordering implies. `rule` is the geo rule the client
/// matched.
#[allow(clippy::too_many_arguments)]
fn order(
    name: &GslbName,
    dcs: &[Datacenter],
    up: &[DcId],
    client: &Client<'_>,
    rule: Option<&GeoRule>,
    health: &impl Health,
    entropy: u64,
    trace: &mut Trace,
) -> (DcList, u8) {
    let up = &up[..up.len().min(MAX_CANDIDATES)];
    let weight = |d: DcId| weight(name, health, d);
    let dc_name = |id: DcId| &*dcs[usize::from(id.0)].name;
    let sticky_prefix = if client.addr.is_ipv4() {
        STICKY_PREFIX_V4
    } else {
        STICKY_PREFIX_V6
    };
    let sticky_key = crate::geo::mask(client.addr, sticky_prefix.min(client.source_prefix));
    let weighted = |ids: &[DcId]| -> DcList {
        let items = ids.iter().map(|&d| (d, weight(d)));
        if name.sticky {
            weighted::top(
                items,
                |d| crate::rng::sticky_draw(sticky_key, dc_name(d)),
                MAX_CANDIDATES,
            )
        } else {
            weighted::top(
                items,
                |d| crate::rng::mix(entropy ^ u64::from(d.0).wrapping_mul(0x9e37_79b9)),
                MAX_CANDIDATES,
            )
        }
    };
    let sticky_scope = if name.sticky { sticky_prefix } else { 0 };
    match name.policy {
        Policy::Failover | Policy::All => {
            trace.note(|| format!("{}: candidate order", name.policy.as_str()));
            (up.iter().copied().collect(), 0)
        }
        Policy::Weighted => {
            let o = weighted(up);
            trace.note(|| {
                let w: Vec<String> = up
                    .iter()
                    .map(|&d| format!("{}={}", dc_name(d), weight(d)))
                    .collect();
                format!(
                    "weighted ({}): {} → {}",
                    if name.sticky {
                        format!(
                            "sticky on {sticky_key}/{}",
                            sticky_prefix.min(client.source_prefix)
                        )
                    } else {
                        "random".into()
                    },
                    w.join(" "),
                    names(&o, dc_name)
                )
            });
            (o, sticky_scope)
        }
        Policy::Nearest => {
            let mut o: DcList = up.iter().copied().collect();
            match client.location.and_then(|l| l.coords) {
                Some(here) => {
                    let dist = |d: DcId| {
                        dcs[usize::from(d.0)]
                            .location
                            .coords
                            .map_or(f64::MAX, |c| nearest::distance_km(here, c))
                    };
                    // An unstable sort never allocates; the place in `up` breaks ties, as a
                    // stable sort would.
                    let mut keyed: ArrayVec<(f64, usize, DcId), MAX_CANDIDATES> =
                        o.iter().enumerate().map(|(i, &d)| (dist(d), i, d)).collect();
                    keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    o = keyed.iter().map(|k| k.2).collect();
                    trace.note(|| {
                        let d: Vec<String> = o
                            .iter()
                            .map(|&id| format!("{} {:.0} km", dc_name(id), dist(id)))
                            .collect();
                        format!("nearest: {}", d.join(", "))
                    });
                    (o, client.geo_prefix)
                }
                None => {
                    trace.note(|| "nearest: client has no coordinates; candidate order".to_string());
                    (o, client.geo_prefix)
                }
            }
        }
        Policy::Geo => {
            let mut scope = client.geo.scope;
            let mut o = DcList::new();
            match rule {
                Some(r) => trace.note(|| format!("geo rule {} matched", r.matches)),
                None => trace.note(|| "no geo rule matched".to_string()),
            }
            let ranks = geo::ranks(name, rule);
            for rank in ranks {
                let live = |d: &DcId| up.contains(d) && !o.contains(d);
                match rank.iter().filter(|d| live(d)).count() {
                    0 => {}
                    1 => o.extend(rank.iter().copied().find(|d| live(d))),
                    _ => {
                        scope = scope.max(sticky_scope);
                        // Distinct members of `up`: no more than MAX_CANDIDATES.
                        let mut ids = DcList::new();
                        for &d in rank {
                            if live(&d) && !ids.contains(&d) {
                                ids.push(d);
                            }
                        }
                        o.extend(weighted(&ids));
                    }
                }
            }
            // Anything up that no rule named still beats when_all_down.
            for &d in up {
                if !o.contains(&d) {
                    o.push(d);
                }
            }
            trace.note(|| format!("geo order: {}", names(&o, dc_name)));
            (o, scope)
        }
    }
}

/// Takes the first data centers with endpoints of `family` and picks their addresses, into
/// `sel`'s outcome and data centers (left as they were when none has any). `respect_health` is
/// false when failing open. `None` when none was taken; else whether a data center that has
/// endpoints of the family was passed over because none of them is up.
#[allow(clippy::too_many_arguments)]
fn take(
    name: &GslbName,
    dcs: &[Datacenter],
    order: &[DcId],
    family: Family,
    health: &impl Health,
    entropy: u64,
    respect_health: bool,
    trace: &mut Trace,
    sel: &mut Selection,
) -> Option<bool> {
    let mut skipped = false;
    let want = if name.policy == Policy::All {
        usize::MAX
    } else {
        name.answer_datacenters.get()
    };
    let mut chosen = DcList::new();
    // Weighted rotation: every query draws a fresh order, heavier endpoints first more often.
    // Only the first `max_addresses` places are kept, as the endpoints are offered.
    let mut addrs = weighted::Top::<IpAddr, MAX_ADDRESSES>::new(name.max_addresses.get());
    let draw = |a: IpAddr| {
        let (bytes, len) = crate::rng::addr_bytes(a);
        crate::rng::mix(entropy.rotate_left(17) ^ crate::rng::hash(&[&bytes[..len]]))
    };
    for &id in order {
        if chosen.len() >= want || chosen.is_full() {
            break;
        }
        let d = &dcs[usize::from(id.0)];
        let mut offered = false;
        for e in &d.endpoints {
            // Health is read once per endpoint: what was offered is what was seen up.
            if family.has(e.address) && (!respect_health || health.endpoint_up(id, e)) {
                addrs.offer(e.address, e.weight.get(), draw(e.address));
                offered = true;
            }
        }
        if !offered {
            skipped |= d.endpoints.iter().any(|e| family.has(e.address));
            trace.note(|| format!("{}: no {} endpoint up; next", d.name, family_name(family)));
            continue;
        }
        chosen.push(id);
    }
    if chosen.is_empty() {
        return None;
    }
    sel.outcome = Outcome::Addresses(Addresses::new());
    if let Outcome::Addresses(a) = &mut sel.outcome {
        addrs.items_into(a);
        trace.note(|| {
            let n: Vec<&str> = chosen.iter().map(|&d| &*dcs[usize::from(d.0)].name).collect();
            let a: Vec<String> = a.iter().map(ToString::to_string).collect();
            format!("chose {}: {}", n.join(", "), a.join(" "))
        });
    }
    sel.datacenters = chosen;
    Some(skipped)
}

fn names<'a>(ids: &[DcId], name: impl Fn(DcId) -> &'a str) -> String {
    ids.iter().map(|&d| name(d)).collect::<Vec<_>>().join(", ")
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn when_name(w: &WhenAllDown) -> String {
    match w {
        WhenAllDown::All => "all (fail open)".into(),
        WhenAllDown::None => "none (NODATA)".into(),
        WhenAllDown::Servfail => "servfail".into(),
        WhenAllDown::Fallback(a) => format!("fallback {a:?}"),
    }
}

fn describe_location(l: &Location) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &l.continent {
        parts.push(format!("continent {c}"));
    }
    if let Some(c) = &l.country {
        parts.push(format!("country {c}"));
    }
    if let Some(s) = &l.subdivision {
        parts.push(format!("subdivision {s}"));
    }
    if let Some((lat, lon)) = l.coords {
        parts.push(format!("at {lat:.2},{lon:.2}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
