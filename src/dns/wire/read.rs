//! Reading queries (RFC 1035 §4.1, RFC 6891, RFC 7871, RFC 8945 §5.1) without allocating.

use super::*;

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
fn parse_options(mut rdata: &[u8]) -> Option<(Option<EcsOption>, bool)> {
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
fn parse_ecs(data: &[u8]) -> Option<EcsOption> {
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
    Some(EcsOption {
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
