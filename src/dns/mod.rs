//! The DNS edge: listeners and the wire format. Everything here turns packets into calls of
//! `answer::respond` and its result back into packets.

pub mod tcp;
pub mod udp;
pub mod wire;

use crate::answer;
use crate::state::Snapshot;
use wire::{CLASSIC_UDP_PAYLOAD, EDNS_UDP_PAYLOAD, Reject};

/// How the query arrived; decides the response size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers one packet into `out`. Returns false when nothing should be sent back.
pub fn handle(packet: &[u8], transport: Transport, snap: &Snapshot, out: &mut Vec<u8>) -> bool {
    let query = match wire::parse_query(packet) {
        Ok(q) => q,
        Err(Reject::Drop) => return false,
        Err(Reject::Error {
            id,
            opcode,
            rd,
            rcode,
            question,
        }) => {
            wire::write_error(id, opcode, rd, rcode, question.as_ref(), out);
            return true;
        }
    };
    if query.edns.is_some_and(|e| e.version > 0) {
        wire::write_badvers(&query, out);
        return true;
    }
    let resp = answer::respond(&query.question, snap);
    let max_len = match (transport, query.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => CLASSIC_UDP_PAYLOAD,
        // RFC 6891 §6.2.5: values below 512 are treated as 512.
        (Transport::Udp, Some(e)) => {
            usize::from(e.udp_payload.clamp(CLASSIC_UDP_PAYLOAD as u16, EDNS_UDP_PAYLOAD))
        }
    };
    wire::write_response(&query, &resp, max_len, out);
    true
}
