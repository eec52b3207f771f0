//! Writing responses: name compression (RFC 1035 §4.1.4), truncation by whole RRsets, OPT,
//! and the error replies.

use super::*;
use arrayvec::ArrayVec;

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
            // RFC 7871 §7.2.1: the scope of this answer. Longer than the source prefix when
            // addresses inside it are answered differently ("not specific enough"), so that a
            // resolver does not cache this answer for all of them.
            // A source prefix of 0 asks for an answer that uses no client data: scope 0
            // (§7.1.2), whatever the query's source address chose.
            c.scope_prefix = match c.source_prefix {
                0 => 0,
                _ => resp.scope.min(if c.address.is_ipv4() { 32 } else { 128 }),
            };
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

/// How many label positions a response remembers as compression targets. A name written once
/// the table is full is still correct, only not pointed at later; 512 labels is far more than
/// a UDP response holds (each takes at least two bytes, and UDP answers are at most 1232).
const MAX_LABELS: usize = 512;

/// A response being written, with the positions of names that later names may point at.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    /// Offsets of label starts written uncompressed; suffixes there can be pointed at. A
    /// fixed array on the stack, so that writing allocates nothing.
    labels: ArrayVec<u16, MAX_LABELS>,
    question_names: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.clear();
        Writer {
            out,
            labels: ArrayVec::new(),
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
        let room = self.labels.remaining_capacity().min(count);
        self.labels.extend(written[..room].iter().copied());
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
