//! `meridian explain` and `GET /api/v1/explain`: one question as an operator writes it, answered
//! as the DNS path would answer it, with every step of the decision. The command line prints
//! the [`Report`]; the API sends it as JSON.

use crate::answer::{self, ClientSubnet, Question};
use crate::events::rfc3339;
use crate::health::{Ballot, Decision};
use crate::lock::LockExt;
use crate::model::RType;
use crate::model::gslb::DcId;
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
    /// Cluster mode: how the nodes see each probe target of the data centers the answer read
    /// (empty on a single node).
    pub votes: Vec<TargetVotes>,
}

/// The nodes' views of one endpoint's probe target, and the verdict they reach.
#[derive(Clone, Debug, Serialize)]
pub struct TargetVotes {
    pub datacenter: String,
    /// The endpoint's address.
    pub address: String,
    pub check: String,
    /// The verdict and the views counted.
    #[serde(flatten)]
    pub votes: Votes,
}

/// How the nodes of the cluster decide on one probe target: the rule, the count and the views.
/// The admin API shows the same for every endpoint (`ProbeView::cluster`).
#[derive(Clone, Debug, Serialize)]
pub struct Votes {
    /// The rule counted by (`health.quorum`).
    pub quorum: String,
    /// `up`, `down` or `unknown` (no view yet: treated as up).
    pub verdict: &'static str,
    pub down: usize,
    pub voters: usize,
    pub needed: usize,
    /// This node cannot reach etcd and its own view changed since: it decides alone.
    pub alone: bool,
    /// The views counted: this node's first, then the others by name.
    pub nodes: Vec<Vote>,
}

impl Votes {
    /// `decision` as reported: its count, and every view (see [`Decision::ballots`]: `this`
    /// node's first, and each of the `live` nodes with no view counted as `unknown`).
    pub fn new<'a>(decision: &Decision, this: &str, live: impl IntoIterator<Item = &'a str>) -> Votes {
        Votes {
            quorum: decision.rule.to_string(),
            verdict: decision.tally.verdict.as_str(),
            down: decision.tally.down,
            voters: decision.tally.voters,
            needed: decision.tally.needed,
            alone: decision.alone,
            nodes: decision.ballots(this, live).into_iter().map(Vote::new).collect(),
        }
    }
}

/// One node's view of a target.
#[derive(Clone, Debug, Serialize)]
pub struct Vote {
    pub node: String,
    /// `up`, `down`, or `unknown` (a live node with no view counted).
    pub state: &'static str,
    /// RFC 3339: when that node's view last changed.
    pub since: Option<String>,
    /// The last error when down.
    pub reason: Option<String>,
    /// That node's probe latency when its view changed, in milliseconds.
    pub latency_ms: Option<f64>,
    /// This node's own view.
    #[serde(rename = "self")]
    pub this: bool,
}

impl Vote {
    fn new(b: Ballot) -> Vote {
        Vote {
            node: b.node,
            state: b.status.as_str(),
            since: b.since.map(rfc3339),
            reason: b.reason,
            latency_ms: b.latency.map(|l| l.as_secs_f64() * 1000.0),
            this: b.this,
        }
    }
}

/// Answers `req` from `snap` as a query would be answered (`entropy` as a query's draw). `node`
/// is this node's name in cluster mode: its vote is marked as its own.
pub fn run(req: &Request, snap: &Snapshot, entropy: u64, node: Option<&str>) -> Report {
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
        scope: r.scope,
        steps: e.steps,
        votes: votes(snap, &e.datacenters, node.unwrap_or_default()),
    }
}

/// The votes on the probe targets of `datacenters` (each once) that the cluster decides on.
fn votes(snap: &Snapshot, datacenters: &[DcId], node: &str) -> Vec<TargetVotes> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for &id in datacenters {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let Some(d) = snap.datacenters.get(usize::from(id.0)) else {
            continue;
        };
        for e in &d.endpoints {
            let (Some(check), Some(p)) = (&e.check, snap.health.probe(e)) else {
                continue;
            };
            let Some(decision) = p.decision.locked().clone() else {
                continue;
            };
            out.push(TargetVotes {
                datacenter: d.name.to_string(),
                address: e.address.to_string(),
                check: check.name.to_string(),
                votes: Votes::new(&decision, node, []),
            });
        }
    }
    out
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
        if !self.votes.is_empty() {
            writeln!(f, "votes:")?;
        }
        for t in &self.votes {
            writeln!(
                f,
                "  {}/{} (check {}): {} by quorum {} ({} of {} down, {} needed){}",
                t.datacenter,
                t.address,
                t.check,
                t.votes.verdict,
                t.votes.quorum,
                t.votes.down,
                t.votes.voters,
                t.votes.needed,
                if t.votes.alone {
                    ", decided alone: etcd out of reach"
                } else {
                    ""
                }
            )?;
            for v in &t.votes.nodes {
                let this = if v.this { " (this node)" } else { "" };
                let since = v
                    .since
                    .as_deref()
                    .map(|s| format!(" since {s}"))
                    .unwrap_or_default();
                let reason = v.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                writeln!(f, "    {}{this}: {}{since}{reason}", v.node, v.state)?;
            }
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
    fn the_text_names_each_nodes_vote() {
        let vote = |node: &str, state, reason: Option<&str>, this| Vote {
            node: node.into(),
            state,
            since: Some("2026-11-24T09:40:51.007Z".into()),
            reason: reason.map(String::from),
            latency_ms: None,
            this,
        };
        let report = Report {
            name: "www.example.test.".into(),
            qtype: "A".into(),
            client: "192.0.2.1/32".into(),
            rcode: "NOERROR",
            authoritative: true,
            answer: vec![],
            authority: vec![],
            additional: vec![],
            scope: 0,
            steps: vec![],
            votes: vec![TargetVotes {
                datacenter: "eu".into(),
                address: "192.0.2.10".into(),
                check: "web".into(),
                votes: Votes {
                    quorum: "majority".into(),
                    verdict: "down",
                    down: 2,
                    voters: 3,
                    needed: 2,
                    alone: false,
                    nodes: vec![
                        vote("ns1", "up", None, true),
                        vote("ns2", "down", Some("connection refused"), false),
                        vote("ns3", "down", Some("timed out"), false),
                    ],
                },
            }],
        };
        let text = report.to_string();
        assert!(
            text.ends_with(
                "votes:\n  eu/192.0.2.10 (check web): down by quorum majority (2 of 3 down, 2 needed)\n    \
                 ns1 (this node): up since 2026-11-24T09:40:51.007Z\n    \
                 ns2: down since 2026-11-24T09:40:51.007Z: connection refused\n    \
                 ns3: down since 2026-11-24T09:40:51.007Z: timed out\n"
            ),
            "{text}"
        );
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
