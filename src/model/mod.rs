//! The validated, immutable zone model. Everything here was checked by `config`; nothing
//! downstream re-validates it.

pub mod gslb;

use crate::name::Name;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A resource record type code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RType(pub u16);

impl RType {
    pub const A: RType = RType(1);
    pub const NS: RType = RType(2);
    pub const CNAME: RType = RType(5);
    pub const SOA: RType = RType(6);
    pub const PTR: RType = RType(12);
    pub const MX: RType = RType(15);
    pub const TXT: RType = RType(16);
    pub const AAAA: RType = RType(28);
    pub const SRV: RType = RType(33);
    pub const OPT: RType = RType(41);
    pub const DS: RType = RType(43);
    pub const TSIG: RType = RType(250);
    pub const IXFR: RType = RType(251);
    pub const AXFR: RType = RType(252);
    pub const MAILB: RType = RType(253);
    pub const MAILA: RType = RType(254);
    pub const ANY: RType = RType(255);
    pub const CAA: RType = RType(257);

    /// Types an operator may write in a zone.
    pub const ZONE_TYPES: [RType; 10] = [
        RType::A,
        RType::AAAA,
        RType::CNAME,
        RType::MX,
        RType::TXT,
        RType::SRV,
        RType::CAA,
        RType::PTR,
        RType::NS,
        RType::SOA,
    ];

    /// The mnemonic, for the types Meridian knows.
    pub fn mnemonic(self) -> Option<&'static str> {
        Some(match self {
            RType::A => "A",
            RType::NS => "NS",
            RType::CNAME => "CNAME",
            RType::SOA => "SOA",
            RType::PTR => "PTR",
            RType::MX => "MX",
            RType::TXT => "TXT",
            RType::AAAA => "AAAA",
            RType::SRV => "SRV",
            RType::OPT => "OPT",
            RType::DS => "DS",
            RType::IXFR => "IXFR",
            RType::AXFR => "AXFR",
            RType::ANY => "ANY",
            RType::CAA => "CAA",
            _ => return None,
        })
    }

    /// Reads a mnemonic (any case) or the generic `TYPEnnn` form.
    pub fn from_mnemonic(text: &str) -> Option<RType> {
        let upper = text.to_ascii_uppercase();
        if let Some(num) = upper.strip_prefix("TYPE") {
            return num.parse().ok().map(RType);
        }
        (1..=300u16)
            .map(RType)
            .find(|t| t.mnemonic() == Some(upper.as_str()))
    }
}

/// Response codes Meridian sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    /// A signed query this server cannot verify (RFC 8945 §5.2).
    NotAuth,
    /// Extended rcode 16 (RFC 6891 §6.1.3), sent through OPT.
    BadVers,
}

impl Rcode {
    /// The mnemonic of RFC 6895 (`NOERROR`, `NXDOMAIN`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::NotAuth => "NOTAUTH",
            Rcode::BadVers => "BADVERS",
        }
    }

    /// The full 12-bit code.
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::NotAuth => 9,
            Rcode::BadVers => 16,
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

impl fmt::Debug for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The SOA fields (RFC 1035 §3.3.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// Record data of the types Meridian serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(Name),
    Cname(Name),
    Ptr(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    /// Character strings, each at most 255 octets.
    Txt(Vec<Box<[u8]>>),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Caa {
        flags: u8,
        tag: Box<str>,
        value: Box<[u8]>,
    },
    Soa(Box<Soa>),
}

impl RData {
    pub fn rtype(&self) -> RType {
        match self {
            RData::A(_) => RType::A,
            RData::Aaaa(_) => RType::AAAA,
            RData::Ns(_) => RType::NS,
            RData::Cname(_) => RType::CNAME,
            RData::Ptr(_) => RType::PTR,
            RData::Mx { .. } => RType::MX,
            RData::Txt(_) => RType::TXT,
            RData::Srv { .. } => RType::SRV,
            RData::Caa { .. } => RType::CAA,
            RData::Soa(_) => RType::SOA,
        }
    }

    /// The host name whose addresses belong in the additional section (RFC 1035 §3.3).
    pub fn additional_target(&self) -> Option<&Name> {
        match self {
            RData::Ns(n) => Some(n),
            RData::Mx { exchange, .. } => Some(exchange),
            RData::Srv { target, .. } => Some(target),
            _ => None,
        }
    }
}

impl fmt::Display for RData {
    /// Master-file presentation of the data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |f: &mut fmt::Formatter<'_>, bytes: &[u8]| -> fmt::Result {
            f.write_str("\"")?;
            for &b in bytes {
                match b {
                    b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x20..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str("\"")
        };
        match self {
            RData::A(a) => write!(f, "{a}"),
            RData::Aaaa(a) => write!(f, "{a}"),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => write!(f, "{n}"),
            RData::Mx { preference, exchange } => write!(f, "{preference} {exchange}"),
            RData::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    text(f, s)?;
                }
                Ok(())
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Caa { flags, tag, value } => {
                write!(f, "{flags} {tag} ")?;
                text(f, value)
            }
            RData::Soa(s) => write!(
                f,
                "{} {} {} {} {} {} {}",
                s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
            ),
        }
    }
}

/// All records of one type at one owner, sharing one TTL (RFC 2181 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RRset {
    pub rtype: RType,
    pub ttl: u32,
    pub rdatas: Vec<RData>,
}

/// One owner name in a zone: its RRsets, and the load-balanced A/AAAA answer if it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The owner as the operator spelled it.
    pub name: Name,
    pub rrsets: Vec<RRset>,
    pub gslb: Option<Arc<gslb::GslbName>>,
}

impl Node {
    pub fn get(&self, rtype: RType) -> Option<&RRset> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }
}

/// A validated zone: apex SOA and NS present, every owner inside the zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub origin: Name,
    /// The YAML file the zone was read from.
    pub source: std::path::PathBuf,
    /// What it was read from, to tell at the next load that it would read the same.
    pub stamp: ZoneStamp,
    /// Nodes in canonical-ish (file) order; the apex is among them. Empty when `unchanged`.
    pub nodes: Vec<Node>,
    /// Loaded against zones validated before (`config::Known`), with the same stamp as one of
    /// them: not read again, so `nodes` is empty, and the compiled zone serving is reused.
    pub unchanged: bool,
}

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// What a zone was validated from: its file's text, the master files it imports, and what its
/// load-balanced names were checked against. The same stamp validates to the same zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneStamp {
    /// The zone file's text.
    pub text: Digest,
    /// Each imported master file, with the digest of its text.
    pub imports: Vec<(std::path::PathBuf, Digest)>,
    /// What the `gslb:` names read of the rest of the configuration (the data centers, whether
    /// there is a GeoIP database); `None` for a zone with no `gslb:` entries.
    pub context: Option<Digest>,
    /// Where its `zone:` key is (line, column), for a second file naming the same zone.
    pub zone_at: (u32, u32),
}
