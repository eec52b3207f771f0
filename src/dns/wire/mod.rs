//! DNS wire format (RFC 1035 §4): reading queries and writing responses.
//!
//! Queries are read without allocating (`read`): the question name is borrowed from the packet.
//! Responses are written into a reused buffer with name compression and truncation by RRset
//! (`write`).

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
pub struct EcsOption {
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
    pub client_subnet: Option<EcsOption>,
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

mod read;
mod write;

pub use read::parse_query;
pub use write::{write_badvers, write_error, write_notauth, write_response};
