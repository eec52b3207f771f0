//! The DNS edge: listeners and the wire format. Everything here turns packets into calls of
//! `answer::respond` and its result back into packets.

pub mod socket;
pub mod tcp;
pub mod udp;
pub mod wire;

use crate::answer::{self, ClientSubnet, Scratch};
use crate::model::RType;
use crate::state::Snapshot;
use std::net::IpAddr;
use wire::{CLASSIC_UDP_PAYLOAD, EDNS_UDP_PAYLOAD, Reject};

/// How the query arrived; decides the response size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers one packet from `peer` into `out`. Returns false when nothing should be sent back.
/// `entropy` seeds the random choices of load-balanced answers. `scratch` and `out` belong to
/// the worker and are reused by every packet it answers: once they have grown to the largest
/// answer seen, answering allocates nothing.
pub fn handle(
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    snap: &Snapshot,
    entropy: u64,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> bool {
    let query = match wire::parse_query(packet) {
        Ok(q) => q,
        Err(Reject::Drop) => return false,
        Err(Reject::Error {
            id,
            opcode,
            rd,
            rcode,
            question,
            edns,
        }) => {
            snap.no_zone.count(question.map_or(RType(0), |q| q.qtype), rcode);
            wire::write_error(id, opcode, rd, rcode, question.as_ref(), edns, out);
            return true;
        }
    };
    let max_len = match (transport, query.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => CLASSIC_UDP_PAYLOAD,
        // RFC 6891 §6.2.5: values below 512 are treated as 512.
        (Transport::Udp, Some(e)) => {
            usize::from(e.udp_payload.clamp(CLASSIC_UDP_PAYLOAD as u16, EDNS_UDP_PAYLOAD))
        }
    };
    // A signed query: no keys are configured, so it cannot be verified (RFC 8945 §5.2).
    // Counted with the queries answered from no zone: no zone's data was used.
    if let Some(tsig) = &query.tsig {
        snap.no_zone
            .count(query.question.qtype, crate::model::Rcode::NotAuth);
        wire::write_notauth(&query, tsig, max_len, out);
        return true;
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        snap.no_zone
            .count(query.question.qtype, crate::model::Rcode::BadVers);
        wire::write_badvers(&query, out);
        return true;
    }
    // RFC 7871 §7.1.2: a source prefix of 0 asks that no client address be used.
    let client = match query.edns.and_then(|e| e.client_subnet) {
        Some(ecs) if ecs.source_prefix > 0 => ClientSubnet {
            addr: ecs.address,
            source_prefix: ecs.source_prefix,
        },
        _ => ClientSubnet::from_source(peer),
    };
    let resp = answer::respond_with(&query.question, &client, snap, entropy, scratch);
    resp.zone
        .map_or(&*snap.no_zone, |z| &*z.counters)
        .count(query.question.qtype, resp.rcode);
    if query.edns.is_some_and(|e| e.client_subnet.is_some()) {
        snap.metrics
            .ecs_queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    wire::write_response(&query, &resp, max_len, snap.nsid.as_deref(), out);
    scratch.recycle(resp);
    true
}
