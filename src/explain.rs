//! `meridian explain` and `GET /api/v1/explain`: one question as an operator writes it, answered
//! as the DNS path would answer it, with every step of the decision. The command line prints
//! the [`Report`]; the API sends it as JSON.

use crate::answer::{self, ClientSubnet, Question};
use crate::model::RType;
use crate::name::Name;
use crate::state::Snapshot;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// A question to explain.
#[derive(Clone, Debug)]
pub struct Request {
    pub name: Name,
    pub qtype: RType,
    pub client: ClientSubnet,
}

/// What is wrong with a request; [`ExplainError::field`] names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("name: {0}")]
    Name(String),
    #[error("type `{0}` is not a record type")]
    Type(String),
    #[error("{0}")]
    Client(String),
}

impl ExplainError {
    /// `name`, `type` or `client`.
    pub fn field(&self) -> &'static str {
        match self {
            ExplainError::Name(_) => "name",
            ExplainError::Type(_) => "type",
            ExplainError::Client(_) => "client",
        }
    }
}

impl Request {
    /// `name` with or without its final dot, `qtype` a mnemonic (`A`, `AAAA`, …), `client` an
    /// address (a resolver's own) or `address/prefix` (an ECS subnet).
    pub fn parse(name: &str, qtype: &str, client: &str) -> Result<Request, ExplainError> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let name = Name::parse(&fqdn, None).map_err(|e| ExplainError::Name(e.to_string()))?;
        let qtype = RType::from_mnemonic(qtype).ok_or_else(|| ExplainError::Type(qtype.to_string()))?;
        let client = client.parse().map_err(ExplainError::Client)?;
        Ok(Request { name, qtype, client })
    }
}

impl std::str::FromStr for ClientSubnet {
    type Err = String;
    /// `IP` (known whole) or `IP/PREFIX` (an ECS subnet: the address is masked to the prefix).
    fn from_str(text: &str) -> Result<ClientSubnet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`/{p}` is not a prefix length for {addr}"))?,
        };
        Ok(ClientSubnet {
            addr: crate::geo::mask(addr, prefix),
            source_prefix: prefix,
        })
    }
}

/// The answer and how it was reached.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    /// `address/prefix`.
    pub client: String,
    /// `NOERROR`, `NXDOMAIN`, …
    pub rcode: &'static str,
    pub authoritative: bool,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// The ECS scope prefix the answer would carry.
    pub scope: u8,
    /// The decision, one step a line.
    pub steps: Vec<String>,
}

/// Answers `req` from `snap` as a query would be answered (`entropy` as a query's draw).
pub fn run(req: &Request, snap: &Snapshot, entropy: u64) -> Report {
    let question = Question {
        name: req.name.wire(),
        qtype: req.qtype,
        qclass: answer::CLASS_IN,
    };
    let e = answer::explain(&question, &req.client, snap, entropy);
    let r = &e.response;
    let show = |s: &[answer::Record<'_>]| s.iter().map(|x| x.present(&req.name)).collect();
    Report {
        name: req.name.to_string(),
        qtype: req.qtype.to_string(),
        client: format!("{}/{}", req.client.addr, req.client.source_prefix),
        rcode: r.rcode.as_str(),
        authoritative: r.authoritative,
        answer: show(&r.answer),
        authority: show(&r.authority),
        additional: show(&r.additional),
        scope: r.scope.min(req.client.source_prefix),
        steps: e.steps,
    }
}

/// The command line's text.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} for client {}", self.name, self.qtype, self.client)?;
        let auth = if self.authoritative {
            "authoritative"
        } else {
            "not authoritative"
        };
        writeln!(f, "rcode {}, {auth}", self.rcode)?;
        for (title, section) in [
            ("answer", &self.answer),
            ("authority", &self.authority),
            ("additional", &self.additional),
        ] {
            if !section.is_empty() {
                writeln!(f, "{title}:")?;
                for rec in section {
                    writeln!(f, "  {rec}")?;
                }
            }
        }
        writeln!(f, "ECS scope: /{}", self.scope)?;
        writeln!(f, "steps:")?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {s}", i + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_parse_and_mask() {
        let c: ClientSubnet = "198.51.100.7/24".parse().unwrap();
        assert_eq!((c.addr.to_string(), c.source_prefix), ("198.51.100.0".into(), 24));
        let c: ClientSubnet = "2001:db8::1".parse().unwrap();
        assert_eq!(c.source_prefix, 128);
        for bad in ["1.2.3.4/33", "nonsense", "1.2.3.4/x", "::1/129"] {
            assert!(bad.parse::<ClientSubnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_their_field() {
        let e = Request::parse("www.example", "BOGUS", "1.2.3.4").unwrap_err();
        assert_eq!(e.field(), "type");
        let e = Request::parse("www.example", "A", "1.2.3.4/40").unwrap_err();
        assert_eq!(
            (e.field(), e.to_string().as_str()),
            ("client", "`/40` is not a prefix length for 1.2.3.4")
        );
        let e = Request::parse("a..b", "A", "1.2.3.4").unwrap_err();
        assert_eq!(e.field(), "name");
    }
}
