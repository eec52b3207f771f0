//! DNS wire format (RFC 1035 §4): reading queries and writing responses.
//!
//! Queries are read without allocating: the question name is borrowed from the packet.
//! Responses are written into a reused buffer with name compression and truncation by RRset.

use crate::answer::{Owner, Question, Rd, Record, Response};
use crate::model::Rcode;
use crate::model::{RData, RType};
use crate::name::MAX_NAME_LEN;
use std::net::IpAddr;

/// The UDP payload size Meridian advertises and the most it sends over UDP (DNS Flag Day 2020).
pub const EDNS_UDP_PAYLOAD: u16 = 1232;
/// Classic DNS over UDP without EDNS (RFC 1035 §2.3.4).
pub const CLASSIC_UDP_PAYLOAD: usize = 512;
const HEADER_LEN: usize = 12;
const OPT_CODE_ECS: u16 = 8;
const OPT_CODE_NSID: u16 = 3;
/// TSIG (RFC 8945): its class, and its error for a key this server does not hold.
const CLASS_ANY: u16 = 255;
const TSIG_BADKEY: u16 = 17;
/// An EDNS Client Subnet option (RFC 7871 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    pub source_prefix: u8,
    pub scope_prefix: u8,
    /// The address, zero beyond `source_prefix`.
    pub address: IpAddr,
}

/// The OPT pseudo-record of a query (RFC 6891 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub client_subnet: Option<ClientSubnet>,
    /// The query asked for the server's identifier (RFC 5001).
    pub nsid: bool,
}

/// The TSIG record that signs a query (RFC 8945 §4.2): what a reply must copy from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tsig<'p> {
    /// The key name, uncompressed wire form, as sent.
    pub key: &'p [u8],
    /// The algorithm name, uncompressed wire form, as sent.
    pub algorithm: &'p [u8],
    /// Time signed (48 bits) and fudge, as sent.
    pub time_fudge: [u8; 8],
    pub original_id: u16,
}

/// A query that passed parsing.
#[derive(Clone, Copy, Debug)]
pub struct Query<'p> {
    pub id: u16,
    /// RD and CD as received; copied into the response.
    pub rd: bool,
    pub cd: bool,
    pub question: Question<'p>,
    pub edns: Option<Edns>,
    /// The query is signed (the TSIG record was last in the additional section).
    pub tsig: Option<Tsig<'p>>,
}

/// A packet that cannot be answered normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject<'p> {
    /// Not worth a reply: too short to carry an ID, or itself a response (avoids loops).
    Drop,
    /// Reply with only a header (and the question, when it could be read).
    Error {
        id: u16,
        opcode: u8,
        rd: bool,
        rcode: Rcode,
        question: Option<Question<'p>>,
        /// The query carried one well-formed OPT, so the reply carries one (RFC 6891 §6.1.1).
        edns: bool,
    },
}

/// Reads a query. Malformed → FORMERR, other opcodes → NOTIMP, responses → dropped.
/// Records in the authority section are accepted only in IXFR queries (the client's SOA,
/// RFC 1995 §3); a TSIG record must be the last additional record (RFC 8945 §5.1).
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, Reject<'_>> {
    if packet.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let rd = flags & 0x0100 != 0;
    let cd = flags & 0x0010 != 0;
    let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    // Error paths only: whether the query had an OPT the reply must answer with its own.
    let error = |rcode, question| Reject::Error {
        id,
        opcode,
        rd,
        rcode,
        question,
        edns: has_one_opt(packet, qd, an, ns, ar),
    };
    if opcode != 0 {
        return Err(error(Rcode::NotImp, None));
    }
    if qd != 1 || an != 0 {
        return Err(error(Rcode::FormErr, None));
    }
    let mut pos = HEADER_LEN;
    let name_end = skip_name(packet, pos, false).ok_or_else(|| error(Rcode::FormErr, None))?;
    let fixed = packet
        .get(name_end..name_end + 4)
        .ok_or_else(|| error(Rcode::FormErr, None))?;
    let question = Question {
        name: &packet[pos..name_end],
        qtype: RType(u16::from_be_bytes([fixed[0], fixed[1]])),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
    };
    pos = name_end + 4;
    // A closure, not a value: building the error walks the packet for an OPT, which only an
    // error reply needs.
    let formerr = || error(Rcode::FormErr, Some(question));
    if ns != 0 && question.qtype != RType::IXFR {
        return Err(formerr());
    }
    for _ in 0..ns {
        pos = skip_record(packet, pos).ok_or_else(formerr)?.next;
    }
    let mut edns = None;
    let mut tsig = None;
    for i in 0..ar {
        let name_start = pos;
        let rec = skip_record(packet, pos).ok_or_else(formerr)?;
        pos = rec.next;
        let (rtype, class, ttl, rdata) = (rec.rtype, rec.class, rec.ttl, rec.rdata);
        if RType(rtype) == RType::TSIG {
            if i + 1 != ar {
                return Err(formerr());
            }
            tsig = Some(parse_tsig(packet, name_start, rdata).ok_or_else(formerr)?);
            continue;
        }
        if RType(rtype) != RType::OPT {
            // Other additional records (SIG(0), stray data) are not acted on.
            continue;
        }
        // One OPT, owned by the root (RFC 6891 §6.1.1).
        if edns.is_some() || packet[name_start] != 0 {
            return Err(formerr());
        }
        let (client_subnet, nsid) = parse_options(rdata).ok_or_else(formerr)?;
        edns = Some(Edns {
            udp_payload: class,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            client_subnet,
            nsid,
        });
    }
    if pos != packet.len() {
        return Err(formerr());
    }
    Ok(Query {
        id,
        rd,
        cd,
        question,
        edns,
        tsig,
    })
}

/// One resource record's fixed fields, and where the next record starts.
struct RawRecord<'p> {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'p [u8],
    next: usize,
}

fn skip_record(packet: &[u8], pos: usize) -> Option<RawRecord<'_>> {
    let pos = skip_name(packet, pos, true)?;
    let fixed = packet.get(pos..pos + 10)?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    Some(RawRecord {
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata: packet.get(pos + 10..pos + 10 + rdlen)?,
        next: pos + 10 + rdlen,
    })
}

/// Reads a TSIG record whose owner starts at `owner`. Its names must be uncompressed (so a
/// reply can copy them as they are; RFC 8945 §4.2 sends them in canonical, uncompressed form)
/// and its RDATA complete.
fn parse_tsig<'p>(packet: &'p [u8], owner: usize, rdata: &'p [u8]) -> Option<Tsig<'p>> {
    let key = &packet[owner..skip_name(packet, owner, false)?];
    let alg_end = skip_name(rdata, 0, false)?;
    let fixed = rdata.get(alg_end..alg_end + 10)?;
    let mac_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rest = rdata.get(alg_end + 10 + mac_len..)?;
    let tail = rest.get(..6)?;
    let other_len = usize::from(u16::from_be_bytes([tail[4], tail[5]]));
    if rest.len() != 6 + other_len {
        return None;
    }
    Some(Tsig {
        key,
        algorithm: &rdata[..alg_end],
        time_fudge: fixed[..8].try_into().ok()?,
        original_id: u16::from_be_bytes([tail[0], tail[1]]),
    })
}

/// Whether the packet carries exactly one OPT record owned by the root, as far as its
/// records can be read. Used only to answer a rejected query with an OPT of our own.
fn has_one_opt(packet: &[u8], qd: u16, an: u16, ns: u16, ar: u16) -> bool {
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        match skip_name(packet, pos, true) {
            Some(end) if end + 4 <= packet.len() => pos = end + 4,
            _ => return false,
        }
    }
    for _ in 0..u32::from(an) + u32::from(ns) {
        match skip_record(packet, pos) {
            Some(r) => pos = r.next,
            None => return false,
        }
    }
    let mut opts = 0;
    for _ in 0..ar {
        let Some(r) = skip_record(packet, pos) else {
            break;
        };
        if RType(r.rtype) == RType::OPT {
            if packet[pos] != 0 {
                return false;
            }
            opts += 1;
        }
        pos = r.next;
    }
    opts == 1
}

/// Reads OPT options; only ECS is understood, the rest are ignored (RFC 6891 §6.1.2).
fn parse_options(mut rdata: &[u8]) -> Option<(Option<ClientSubnet>, bool)> {
    let mut ecs = None;
    let mut nsid = false;
    while !rdata.is_empty() {
        let head = rdata.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = rdata.get(4..4 + len)?;
        rdata = &rdata[4 + len..];
        if code == OPT_CODE_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(data)?);
        }
        nsid |= code == OPT_CODE_NSID;
    }
    Some((ecs, nsid))
}

/// RFC 7871 §6: family, prefixes, and exactly ceil(source/8) address octets with no bits set
/// past the source prefix; otherwise FORMERR (§7.1.1). Scope must be 0 in queries.
fn parse_ecs(data: &[u8]) -> Option<ClientSubnet> {
    let head = data.get(..4)?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let (source_prefix, scope_prefix) = (head[2], head[3]);
    let addr = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source_prefix > max || scope_prefix != 0 || addr.len() != usize::from(source_prefix).div_ceil(8) {
        return None;
    }
    if source_prefix % 8 != 0 {
        let mask = 0xffu8 >> (source_prefix % 8);
        if addr.last().is_some_and(|b| b & mask != 0) {
            return None;
        }
    }
    let address = if family == 1 {
        let mut a = [0u8; 4];
        a[..addr.len()].copy_from_slice(addr);
        IpAddr::from(a)
    } else {
        let mut a = [0u8; 16];
        a[..addr.len()].copy_from_slice(addr);
        IpAddr::from(a)
    };
    Some(ClientSubnet {
        source_prefix,
        scope_prefix,
        address,
    })
}

/// Skips a name starting at `pos`; returns the position after it. Compression pointers are
/// accepted only where `pointers` is set (never in the question: nothing precedes it).
fn skip_name(packet: &[u8], mut pos: usize, pointers: bool) -> Option<usize> {
    let mut total = 1;
    loop {
        let len = *packet.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=63 => {
                total += 1 + usize::from(len);
                if total > MAX_NAME_LEN {
                    return None;
                }
                packet.get(pos + 1..pos + 1 + usize::from(len))?;
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff if pointers => {
                packet.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

// === writing ===

/// Writes a response into `out` (cleared first), at most `max_len` bytes: when the required
/// sections do not fit, TC is set and only the question (and OPT) are sent.
/// `nsid` is this server's identifier, sent when a query asks for it (RFC 5001).
pub fn write_response(
    query: &Query<'_>,
    resp: &Response<'_>,
    max_len: usize,
    nsid: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let mut w = Writer::new(out);
    let edns = query.edns.as_ref();
    let nsid = nsid.filter(|_| edns.is_some_and(|e| e.nsid));
    let opt_len = edns.map_or(0, |e| opt_size(e, nsid));
    let budget = max_len.saturating_sub(opt_len);
    w.header(query.id, query.rd, query.cd, resp.rcode, resp.authoritative);
    w.question(&query.question);
    let after_question = w.out.len();

    let required = resp.additional.get(..resp.required_additional).unwrap_or(&[]);
    let mut counts = [
        resp.answer.len() as u16,
        resp.authority.len() as u16,
        required.len() as u16,
    ];
    for rec in resp.answer.iter().chain(&resp.authority).chain(required) {
        w.record(rec);
    }
    if w.out.len() > budget {
        w.rollback(Mark {
            len: after_question,
            names: w.question_names,
        });
        counts = [0; 3];
        w.out[2] |= 0x02; // TC
    } else {
        // Optional additional data goes in whole RRsets, while they fit (RFC 2181 §9).
        let rest = &resp.additional[required.len()..];
        let mut i = 0;
        while i < rest.len() {
            let end = i + rest[i..]
                .iter()
                .take_while(|r| r.owner == rest[i].owner && r.rtype == rest[i].rtype)
                .count();
            let mark = w.mark();
            for r in &rest[i..end] {
                w.record(r);
            }
            if w.out.len() > budget {
                w.rollback(mark);
                break;
            }
            counts[2] += (end - i) as u16;
            i = end;
        }
    }
    if let Some(e) = edns {
        let mut e = *e;
        if let Some(c) = &mut e.client_subnet {
            // RFC 7871 §7.2.1: the scope of this answer, never beyond what the client gave.
            c.scope_prefix = resp.scope.min(c.source_prefix);
        }
        w.opt(&e, resp.rcode, nsid);
        counts[2] += 1;
    }
    w.out[6..8].copy_from_slice(&counts[0].to_be_bytes());
    w.out[8..10].copy_from_slice(&counts[1].to_be_bytes());
    w.out[10..12].copy_from_slice(&counts[2].to_be_bytes());
}

fn opt_size(e: &Edns, nsid: Option<&[u8]>) -> usize {
    11 + e
        .client_subnet
        .map_or(0, |c| 8 + usize::from(c.source_prefix).div_ceil(8))
        + nsid.map_or(0, |n| 4 + n.len())
}

/// Our own OPT for replies that do not echo options: payload size, version 0, no flags.
const PLAIN_EDNS: Edns = Edns {
    udp_payload: EDNS_UDP_PAYLOAD,
    version: 0,
    dnssec_ok: false,
    client_subnet: None,
    nsid: false,
};

/// Writes a header-only error response (plus the question when known, and an OPT when the
/// query carried one).
pub fn write_error(
    id: u16,
    opcode: u8,
    rd: bool,
    rcode: Rcode,
    question: Option<&Question<'_>>,
    edns: bool,
    out: &mut Vec<u8>,
) {
    let mut w = Writer::new(out);
    w.header(id, rd, false, rcode, false);
    w.out[2] |= opcode << 3;
    if let Some(q) = question {
        w.question(q);
        w.out[4..6].copy_from_slice(&1u16.to_be_bytes());
    } else {
        w.out[4..6].copy_from_slice(&0u16.to_be_bytes());
    }
    if edns {
        w.opt(&PLAIN_EDNS, rcode, None);
        w.out[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
}

/// Writes NOTAUTH for a signed query while this server holds no keys (RFC 8945 §5.2.1): the
/// question, an OPT when the query had one, and an unsigned TSIG record (§5.3.2) with the
/// request's key and algorithm names, its time signed and fudge, MAC size 0 and error BADKEY.
/// When that does not fit in `max_len` (long names over UDP without EDNS) the TSIG record is left
/// out and TC set, so the client asks again over TCP.
pub fn write_notauth(query: &Query<'_>, tsig: &Tsig<'_>, max_len: usize, out: &mut Vec<u8>) {
    let mut w = Writer::new(out);
    w.header(query.id, query.rd, query.cd, Rcode::NotAuth, false);
    w.question(&query.question);
    let mut additional = 1u16;
    if query.edns.is_some() {
        w.opt(&PLAIN_EDNS, Rcode::NoError, None);
        additional += 1;
    }
    let before_tsig = w.out.len();
    w.out.extend_from_slice(tsig.key);
    w.u16(RType::TSIG.0);
    w.u16(CLASS_ANY);
    w.out.extend_from_slice(&0u32.to_be_bytes());
    w.u16((tsig.algorithm.len() + 16) as u16);
    w.out.extend_from_slice(tsig.algorithm);
    w.out.extend_from_slice(&tsig.time_fudge);
    w.u16(0); // MAC size
    w.u16(tsig.original_id);
    w.u16(TSIG_BADKEY);
    w.u16(0); // other data
    if w.out.len() > max_len {
        w.out.truncate(before_tsig);
        w.out[2] |= 0x02; // TC
        additional -= 1;
    }
    w.out[10..12].copy_from_slice(&additional.to_be_bytes());
}

/// Writes BADVERS (RFC 6891 §6.1.3): question, and an OPT of version 0 with the extended rcode.
pub fn write_badvers(query: &Query<'_>, out: &mut Vec<u8>) {
    let mut w = Writer::new(out);
    w.header(query.id, query.rd, query.cd, Rcode::BadVers, false);
    w.question(&query.question);
    w.opt(&PLAIN_EDNS, Rcode::BadVers, None);
    w.out[10..12].copy_from_slice(&1u16.to_be_bytes());
}

#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    names: usize,
}

/// A response being written, with the positions of names that later names may point at.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    /// Offsets of label starts written uncompressed; suffixes there can be pointed at.
    labels: Vec<u16>,
    question_names: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        Writer {
            out,
            labels: Vec::with_capacity(16),
            question_names: 0,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            names: self.labels.len(),
        }
    }

    fn rollback(&mut self, m: Mark) {
        self.out.truncate(m.len);
        self.labels.truncate(m.names);
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn header(&mut self, id: u16, rd: bool, cd: bool, rcode: Rcode, aa: bool) {
        let mut flags: u16 = 0x8000; // QR; opcode QUERY; RA never (not a resolver)
        if aa {
            flags |= 0x0400;
        }
        if rd {
            flags |= 0x0100;
        }
        if cd {
            flags |= 0x0010;
        }
        flags |= rcode.code() & 0xf;
        self.u16(id);
        self.u16(flags);
        self.out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    }

    fn question(&mut self, q: &Question<'_>) {
        self.name(q.name, true);
        self.question_names = self.labels.len();
        self.u16(q.qtype.0);
        self.u16(q.qclass);
    }

    /// Writes a wire name, pointing at an earlier copy of its longest known suffix.
    fn name(&mut self, wire: &[u8], compress: bool) {
        // Label positions of this name become pointer targets only once the whole name is
        // written: a half-written name must never be matched against its own suffix.
        let mut written = [0u16; 128];
        let mut count = 0;
        let mut pos = 0;
        let mut pointer = None;
        while wire[pos] != 0 {
            if compress && let Some(ptr) = self.find(&wire[pos..]) {
                pointer = Some(ptr);
                break;
            }
            let here = self.out.len();
            if here < 0x4000 {
                written[count] = here as u16;
                count += 1;
            }
            let len = usize::from(wire[pos]);
            self.out.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        match pointer {
            Some(ptr) => self.u16(0xc000 | ptr),
            None => self.out.push(0),
        }
        self.labels.extend_from_slice(&written[..count]);
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.labels
            .iter()
            .copied()
            .find(|&off| name_at_equals(self.out, usize::from(off), suffix))
    }

    fn record(&mut self, rec: &Record<'_>) {
        match rec.owner {
            Owner::Question => self.u16(0xc000 | HEADER_LEN as u16),
            Owner::Name(n) => self.name(n.wire(), true),
        }
        self.u16(rec.rtype.0);
        self.u16(crate::answer::CLASS_IN);
        self.out.extend_from_slice(&rec.ttl.to_be_bytes());
        let len_at = self.out.len();
        self.u16(0);
        match rec.rdata {
            Rd::Data(d) => self.rdata(d),
            Rd::A(a) => self.out.extend_from_slice(&a.octets()),
            Rd::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
        }
        let rdlen = (self.out.len() - len_at - 2) as u16;
        self.out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    fn rdata(&mut self, rdata: &RData) {
        match rdata {
            RData::A(a) => self.out.extend_from_slice(&a.octets()),
            RData::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
            // RFC 3597 §4: compression only in the RDATA of the RFC 1035 types.
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => self.name(n.wire(), true),
            RData::Mx { preference, exchange } => {
                self.u16(*preference);
                self.name(exchange.wire(), true);
            }
            RData::Txt(strings) => {
                for s in strings {
                    self.out.push(s.len() as u8);
                    self.out.extend_from_slice(s);
                }
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                self.name(target.wire(), false); // RFC 2782: never compressed
            }
            RData::Caa { flags, tag, value } => {
                self.out.push(*flags);
                self.out.push(tag.len() as u8);
                self.out.extend_from_slice(tag.as_bytes());
                self.out.extend_from_slice(value);
            }
            RData::Soa(soa) => {
                self.name(soa.mname.wire(), true);
                self.name(soa.rname.wire(), true);
                for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    self.out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
    }

    fn opt(&mut self, e: &Edns, rcode: Rcode, nsid: Option<&[u8]>) {
        self.out.push(0);
        self.u16(RType::OPT.0);
        self.u16(EDNS_UDP_PAYLOAD);
        let ext = u32::from(rcode.code() >> 4) << 24;
        let flags = if e.dnssec_ok { 0x8000 } else { 0 };
        self.out.extend_from_slice(&(ext | flags).to_be_bytes());
        let len_at = self.out.len();
        self.u16(0);
        if let Some(c) = e.client_subnet {
            let octets = usize::from(c.source_prefix).div_ceil(8);
            self.u16(OPT_CODE_ECS);
            self.u16((4 + octets) as u16);
            let (family, bytes): (u16, [u8; 16]) = match c.address {
                IpAddr::V4(a) => {
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&a.octets());
                    (1, b)
                }
                IpAddr::V6(a) => (2, a.octets()),
            };
            self.u16(family);
            self.out.push(c.source_prefix);
            self.out.push(c.scope_prefix);
            self.out.extend_from_slice(&bytes[..octets]);
        }
        if let Some(id) = nsid {
            self.u16(OPT_CODE_NSID);
            self.u16(id.len() as u16);
            self.out.extend_from_slice(id);
        }
        let rdlen = (self.out.len() - len_at - 2) as u16;
        self.out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// Whether the (possibly compressed) name at `off` in `buf` equals the wire name `suffix`,
/// ignoring ASCII case.
fn name_at_equals(buf: &[u8], mut off: usize, suffix: &[u8]) -> bool {
    let mut s = 0;
    // Bounded: a pointer chain in our own output is short, but never trust it to end.
    for _ in 0..128 {
        let Some(&len) = buf.get(off) else { return false };
        if len & 0xc0 == 0xc0 {
            let Some(&low) = buf.get(off + 1) else {
                return false;
            };
            off = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            continue;
        }
        let len = usize::from(len);
        if suffix.get(s).map(|&l| usize::from(l)) != Some(len) {
            return false;
        }
        if len == 0 {
            return true;
        }
        match (buf.get(off + 1..off + 1 + len), suffix.get(s + 1..s + 1 + len)) {
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
            _ => return false,
        }
        off += 1 + len;
        s += 1 + len;
    }
    false
}
