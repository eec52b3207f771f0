//! Authoritative answers (RFC 1034 §4.3.2, RFC 2308, RFC 4592, RFC 6604, RFC 8482).
//!
//! `respond` is synchronous and transport-free: a question in, a response model out, read from
//! one immutable snapshot. No lock, no I/O, no await. `dns::wire` turns the model into bytes.
//! No allocation either, in steady state: the response's record vectors are lent by the
//! worker's [`Scratch`] (`respond_with`) and given back after the response is written, and
//! load-balanced names are chosen in fixed-capacity arrays (`select`). `bench/allocs.rs` and
//! `tests/no_alloc.rs` count.

use crate::model::gslb::{DcId, GslbName, Policy};
use crate::model::{Node, RData, RRset, RType, Rcode};
use crate::name::{MAX_NAME_LEN, Name, parent_wire};
use crate::select::{self, Client, Family, Outcome, Trace};
use crate::state::{CompiledZone, Entry, Snapshot};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class Meridian serves.
pub const CLASS_IN: u16 = 1;

/// A parsed question. `name` is the wire name exactly as asked (its case is echoed back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question<'q> {
    pub name: &'q [u8],
    pub qtype: RType,
    pub qclass: u16,
}

/// Whose name a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The question name, as asked (wildcard answers also carry it).
    Question,
    Name(&'a Name),
}

/// Record data: from the zone, or an address chosen for a load-balanced name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rd<'a> {
    Data(&'a RData),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
}

/// One record to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub owner: Owner<'a>,
    pub rtype: RType,
    pub ttl: u32,
    pub rdata: Rd<'a>,
}

impl std::fmt::Display for Rd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rd::Data(d) => write!(f, "{d}"),
            Rd::A(a) => write!(f, "{a}"),
            Rd::Aaaa(a) => write!(f, "{a}"),
        }
    }
}

impl Record<'_> {
    /// `owner TTL TYPE data`, the question name standing for `Owner::Question`.
    pub fn present(&self, question: &Name) -> String {
        let owner = match self.owner {
            Owner::Question => question.to_string(),
            Owner::Name(n) => n.to_string(),
        };
        format!("{owner} {} {} {}", self.ttl, self.rtype, self.rdata)
    }
}

/// Who asked: the address answers are chosen for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The EDNS Client Subnet address when one came (source prefix > 0), else the packet source.
    pub addr: IpAddr,
    /// Known leading bits of `addr`: the ECS source prefix, else 32 or 128.
    pub source_prefix: u8,
}

impl ClientSubnet {
    /// A client known by its full address (no ECS).
    pub fn from_source(addr: IpAddr) -> Self {
        ClientSubnet {
            addr,
            source_prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

/// What to answer, before it becomes wire bytes.
#[derive(Debug)]
pub struct Response<'a> {
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answer: Vec<Record<'a>>,
    pub authority: Vec<Record<'a>>,
    pub additional: Vec<Record<'a>>,
    /// The first `required_additional` additional records are referral glue that must fit,
    /// or the response is truncated (RFC 9471).
    pub required_additional: usize,
    /// ECS scope: the widest client prefix this answer holds for (0: it does not depend on
    /// the client).
    pub scope: u8,
    /// The zone that answered, for per-zone counters.
    pub zone: Option<&'a CompiledZone>,
}

impl<'a> Response<'a> {
    /// A response whose sections are the vectors `scratch` keeps (emptied).
    fn from_scratch(rcode: Rcode, scratch: &mut Scratch) -> Self {
        Response {
            answer: relabel(std::mem::take(&mut scratch.answer)),
            authority: relabel(std::mem::take(&mut scratch.authority)),
            additional: relabel(std::mem::take(&mut scratch.additional)),
            ..Response::empty(rcode)
        }
    }

    fn empty(rcode: Rcode) -> Self {
        Response {
            rcode,
            authoritative: false,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            required_additional: 0,
            scope: 0,
            zone: None,
        }
    }
}

/// Room for the records of responses, kept by a worker and lent to each response it builds
/// ([`respond_with`], then [`Scratch::recycle`]): once the vectors have grown to the largest
/// response seen, answering allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    answer: Vec<Record<'static>>,
    authority: Vec<Record<'static>>,
    additional: Vec<Record<'static>>,
}

impl Scratch {
    /// Takes back the section vectors of `resp` (emptied), keeping the larger of each.
    pub fn recycle(&mut self, resp: Response<'_>) {
        let keep = |mine: &mut Vec<Record<'static>>, theirs: Vec<Record<'_>>| {
            if theirs.capacity() > mine.capacity() {
                *mine = relabel(theirs);
            }
        };
        keep(&mut self.answer, resp.answer);
        keep(&mut self.authority, resp.authority);
        keep(&mut self.additional, resp.additional);
    }
}

/// `v` emptied, as a vector of records borrowing for any lifetime, in the same allocation:
/// collecting a vector's own iterator into elements of the same layout reuses its buffer (the
/// standard library's in-place collection), and no element is left to outlive its borrow.
/// `tests/no_alloc.rs` fails if that ever allocates.
fn relabel<'b>(mut v: Vec<Record<'_>>) -> Vec<Record<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| -> Record<'b> { unreachable!("the vector was emptied") })
        .collect()
}

/// Longest CNAME chain followed inside our zones.
const MAX_CHAIN: usize = 8;

/// Answers one question from `snap`. `entropy` seeds the random choices of load-balanced
/// names (weighted picks, address rotation). Allocates the response's vectors: a worker
/// answering many questions calls [`respond_with`] instead.
pub fn respond<'a>(
    q: &Question<'_>,
    client: &ClientSubnet,
    snap: &'a Snapshot,
    entropy: u64,
) -> Response<'a> {
    respond_with(q, client, snap, entropy, &mut Scratch::default())
}

/// Answers like [`respond`], the response's records in vectors lent by `scratch`; give them
/// back with [`Scratch::recycle`] once the response is written.
pub fn respond_with<'a>(
    q: &Question<'_>,
    client: &ClientSubnet,
    snap: &'a Snapshot,
    entropy: u64,
    scratch: &mut Scratch,
) -> Response<'a> {
    answer(q, client, snap, entropy, &RefCell::new(Trace::off()), scratch)
}

/// An answer and the steps that led to it, for `meridian explain` and the admin API.
#[derive(Debug)]
pub struct Explanation<'a> {
    pub response: Response<'a>,
    pub steps: Vec<String>,
    /// The data centers whose health the answer read, in order (see `select::Trace`).
    pub datacenters: Vec<DcId>,
}

/// Answers like [`respond`] and records why.
pub fn explain<'a>(
    q: &Question<'_>,
    client: &ClientSubnet,
    snap: &'a Snapshot,
    entropy: u64,
) -> Explanation<'a> {
    let trace = RefCell::new(Trace::enabled());
    let response = answer(q, client, snap, entropy, &trace, &mut Scratch::default());
    let trace = trace.into_inner();
    Explanation {
        response,
        steps: trace.steps,
        datacenters: trace.datacenters,
    }
}

fn answer<'a>(
    q: &Question<'_>,
    client: &ClientSubnet,
    snap: &'a Snapshot,
    entropy: u64,
    trace: &RefCell<Trace>,
    scratch: &mut Scratch,
) -> Response<'a> {
    if q.qclass != CLASS_IN {
        return Response::empty(Rcode::Refused);
    }
    match q.qtype {
        // Zone transfers are not offered; like any authority that does not allow them, refuse.
        RType::AXFR | RType::IXFR => return Response::empty(Rcode::Refused),
        RType::MAILA | RType::MAILB => return Response::empty(Rcode::NotImp),
        RType::OPT => return Response::empty(Rcode::FormErr),
        _ => {}
    }
    let mut buf = [0u8; MAX_NAME_LEN];
    let key = lowercase(q.name, &mut buf);
    let Some(zone) = snap.zone_for(key) else {
        return Response::empty(Rcode::Refused);
    };
    let mut resp = Response::from_scratch(Rcode::NoError, scratch);
    resp.authoritative = true;
    resp.zone = Some(zone);
    let cx = Lookup {
        snap,
        qkey: key,
        qtype: q.qtype,
        client,
        entropy,
        trace,
    };
    cx.note(|| format!("zone {}", zone.origin));
    resolve(&cx, zone, Owner::Question, key, &mut resp, 0);
    resp
}

/// What stays fixed while one question is answered, CNAME hops included.
struct Lookup<'a, 'q> {
    snap: &'a Snapshot,
    /// The question name, lowercased.
    qkey: &'q [u8],
    qtype: RType,
    client: &'q ClientSubnet,
    entropy: u64,
    trace: &'q RefCell<Trace>,
}

impl Lookup<'_, '_> {
    fn note(&self, f: impl FnOnce() -> String) {
        self.trace.borrow_mut().note(f);
    }
}

fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME_LEN]) -> &'b [u8] {
    let n = name.len().min(MAX_NAME_LEN);
    for (d, s) in buf[..n].iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..n]
}

/// Looks `key` up in `zone`, appending to `resp`. `chain` counts CNAME hops so far.
fn resolve<'a>(
    cx: &Lookup<'a, '_>,
    zone: &'a CompiledZone,
    owner: Owner<'a>,
    key: &[u8],
    resp: &mut Response<'a>,
    chain: usize,
) {
    let qtype = cx.qtype;
    let apex_len = zone.origin.wire().len();
    if let Some((cut_len, cut)) = topmost_cut(zone, key, apex_len) {
        // The parent side answers DS at the cut itself (RFC 4035 §3.1.4.1); everything else
        // at or below the cut is referred.
        if !(qtype == RType::DS && cut_len == key.len()) {
            referral(cx.snap, zone, cut, resp, chain);
            return;
        }
    }
    match zone.entries.get(key) {
        Some(Entry { node: Some(node), .. }) => answer_node(cx, zone, owner, node, resp, chain),
        Some(Entry { node: None, .. }) => nodata(zone, resp),
        None => {
            // RFC 4592 §4.1: the source of synthesis is `*.` + the closest encloser.
            let mut encloser = parent_wire(key);
            while let Some(e) = encloser {
                if zone.entries.contains_key(e) {
                    break;
                }
                encloser = parent_wire(e);
            }
            let mut wild = [0u8; MAX_NAME_LEN + 2];
            let wild_key = encloser.and_then(|e| {
                let w = wild.get_mut(..e.len() + 2)?;
                w[..2].copy_from_slice(&[1, b'*']);
                w[2..].copy_from_slice(e);
                Some(&*w)
            });
            match wild_key.and_then(|w| zone.entries.get(w)) {
                Some(Entry { node: Some(node), .. }) => answer_node(cx, zone, owner, node, resp, chain),
                _ => {
                    resp.rcode = Rcode::NxDomain;
                    negative_soa(zone, resp);
                }
            }
        }
    }
}

/// The cut closest to the apex on the way down to `key`, if any.
fn topmost_cut<'z>(zone: &'z CompiledZone, key: &[u8], apex_len: usize) -> Option<(usize, &'z Node)> {
    if !zone.has_cuts {
        return None;
    }
    let mut found = None;
    let mut cur = Some(key);
    while let Some(k) = cur.filter(|k| k.len() > apex_len) {
        if let Some(Entry {
            node: Some(node),
            is_cut: true,
        }) = zone.entries.get(k)
        {
            found = Some((k.len(), node));
        }
        cur = parent_wire(k);
    }
    found
}

fn answer_node<'a>(
    cx: &Lookup<'a, '_>,
    zone: &'a CompiledZone,
    owner: Owner<'a>,
    node: &'a Node,
    resp: &mut Response<'a>,
    chain: usize,
) {
    let (snap, qtype) = (cx.snap, cx.qtype);
    // A CNAME (or ANY) question at an alias is answered by the CNAME itself, not chased.
    if let Some(cname) = node.get(RType::CNAME)
        && qtype != RType::CNAME
        && qtype != RType::ANY
    {
        let rdata = &cname.rdatas[0];
        resp.answer.push(Record {
            owner,
            rtype: RType::CNAME,
            ttl: cname.ttl,
            rdata: Rd::Data(rdata),
        });
        let RData::Cname(target) = rdata else { return };
        cx.note(|| format!("CNAME to {target}"));
        if chain + 1 >= MAX_CHAIN {
            return;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let key = lowercase(target.wire(), &mut buf);
        // A loop ends where a name already answered comes again.
        if key == cx.qkey || resp.answer.iter().any(|r| owner_is(r.owner, key)) {
            return;
        }
        if let Some(next) = snap.zone_for(key) {
            resolve(cx, next, Owner::Name(target), key, resp, chain + 1);
        }
        return;
    }
    if let Some(g) = &node.gslb {
        let family = match qtype {
            RType::A => Some(Family::V4),
            RType::AAAA => Some(Family::V6),
            RType::ANY if node.rrsets.is_empty() => Some(Family::V4),
            _ => None,
        };
        if let Some(family) = family {
            gslb_answer(cx, zone, owner, g, family, resp);
            return;
        }
    }
    let set = if qtype == RType::ANY {
        // RFC 8482 §4.2: one RRset is a complete answer to ANY.
        node.rrsets.first()
    } else {
        node.get(qtype)
    };
    match set {
        Some(set) => {
            push_set(&mut resp.answer, owner, set);
            for rdata in &set.rdatas {
                if let Some(target) = rdata.additional_target() {
                    add_addresses(snap, target, &mut resp.additional);
                }
            }
        }
        None => nodata(zone, resp),
    }
}

/// Whether a record's owner is the name `key`.
fn owner_is(owner: Owner<'_>, key: &[u8]) -> bool {
    matches!(owner, Owner::Name(n) if n.wire().eq_ignore_ascii_case(key))
}

/// Answers a load-balanced name: the selection pipeline over the snapshot's data centers.
fn gslb_answer<'a>(
    cx: &Lookup<'a, '_>,
    zone: &'a CompiledZone,
    owner: Owner<'a>,
    g: &'a GslbName,
    family: Family,
    resp: &mut Response<'a>,
) {
    let snap = cx.snap;
    let addr = crate::geo::mask(cx.client.addr, cx.client.source_prefix);
    // Only nearest pays for a GeoIP lookup per query: geo's rule tree already holds what its
    // rules need, so for geo the location only serves an explanation's notes.
    let explaining = cx.trace.borrow().is_enabled();
    let found = match (g.policy, &snap.geo) {
        (Policy::Nearest, Some(db)) => Some(db.lookup(addr)),
        (Policy::Geo, Some(db)) if explaining => Some(db.lookup(addr)),
        _ => None,
    };
    let client = Client {
        addr,
        source_prefix: cx.client.source_prefix,
        location: found.as_ref().and_then(|f| f.location),
        geo_prefix: found.as_ref().map_or(0, |f| f.prefix),
        geo: match g.policy {
            Policy::Geo => snap.geo_rules.decide(g, addr),
            _ => select::geo::Decision::NONE,
        },
    };
    cx.note(|| format!("{} is load-balanced: policy {}", g.owner, g.policy.as_str()));
    let mut sel = select::Selection::empty();
    select::select_into(
        g,
        &snap.datacenters,
        family,
        &client,
        &*snap.health,
        cx.entropy,
        &mut cx.trace.borrow_mut(),
        &mut sel,
    );
    resp.scope = resp.scope.max(sel.scope);
    for dc in &sel.datacenters {
        if let Some(c) = snap.dc_answers.get(usize::from(dc.0)) {
            c.inc();
        }
    }
    cx.note(|| format!("TTL {}, ECS scope /{}", sel.ttl, sel.scope));
    match &sel.outcome {
        Outcome::Addresses(addrs) => {
            for &a in addrs {
                let (rtype, rdata) = match a {
                    IpAddr::V4(v4) => (RType::A, Rd::A(v4)),
                    IpAddr::V6(v6) => (RType::AAAA, Rd::Aaaa(v6)),
                };
                resp.answer.push(Record {
                    owner,
                    rtype,
                    ttl: sel.ttl,
                    rdata,
                });
            }
        }
        Outcome::NoData => nodata(zone, resp),
        Outcome::ServFail => {
            resp.rcode = Rcode::ServFail;
            resp.authoritative = false;
            resp.answer.clear();
        }
    }
}

fn push_set<'a>(out: &mut Vec<Record<'a>>, owner: Owner<'a>, set: &'a RRset) {
    out.extend(set.rdatas.iter().map(|rdata| Record {
        owner,
        rtype: set.rtype,
        ttl: set.ttl,
        rdata: Rd::Data(rdata),
    }));
}

fn nodata<'a>(zone: &'a CompiledZone, resp: &mut Response<'a>) {
    negative_soa(zone, resp);
}

fn negative_soa<'a>(zone: &'a CompiledZone, resp: &mut Response<'a>) {
    resp.authority.push(Record {
        owner: Owner::Name(&zone.origin),
        rtype: RType::SOA,
        ttl: zone.negative_ttl(),
        rdata: Rd::Data(&zone.soa.rdatas[0]),
    });
}

/// A referral to the child zone at `cut`: NS in authority, glue in additional, no AA.
fn referral<'a>(
    snap: &'a Snapshot,
    zone: &'a CompiledZone,
    cut: &'a Node,
    resp: &mut Response<'a>,
    chain: usize,
) {
    if chain == 0 {
        resp.authoritative = false;
    }
    let Some(ns) = cut.get(RType::NS) else { return };
    push_set(&mut resp.authority, Owner::Name(&cut.name), ns);
    // Glue for in-bailiwick targets first: without it the child is unreachable.
    let targets = || ns.rdatas.iter().filter_map(RData::additional_target);
    for target in targets().filter(|t| t.is_subdomain_of(&cut.name)) {
        add_zone_addresses(zone, target, &mut resp.additional);
    }
    resp.required_additional = resp.additional.len();
    for target in targets().filter(|t| !t.is_subdomain_of(&cut.name)) {
        add_addresses(snap, target, &mut resp.additional);
    }
}

/// A and AAAA of `target` from whichever of our zones holds it (not below a cut).
fn add_addresses<'a>(snap: &'a Snapshot, target: &'a Name, out: &mut Vec<Record<'a>>) {
    let mut buf = [0u8; MAX_NAME_LEN];
    let key = lowercase(target.wire(), &mut buf);
    let Some(zone) = snap.zone_for(key) else {
        return;
    };
    if topmost_cut(zone, key, zone.origin.wire().len()).is_some() {
        // Glue is not authoritative data; it is only sent with referrals.
        return;
    }
    add_zone_addresses(zone, target, out);
}

fn add_zone_addresses<'a>(zone: &'a CompiledZone, target: &'a Name, out: &mut Vec<Record<'a>>) {
    let mut buf = [0u8; MAX_NAME_LEN];
    let key = lowercase(target.wire(), &mut buf);
    let Some(Entry { node: Some(node), .. }) = zone.entries.get(key) else {
        return;
    };
    for rtype in [RType::A, RType::AAAA] {
        if let Some(set) = node.get(rtype) {
            let owner = Owner::Name(&node.name);
            if !out.iter().any(|r| r.owner == owner && r.rtype == rtype) {
                push_set(out, owner, set);
            }
        }
    }
}
