//! The conformance battery: one table of query → expected rcode, flags and sections, run against
//! the real binary with a DNS client independent of Meridian's wire code.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, RecordType as T};

struct Case {
    what: &'static str,
    ask: Ask,
    rcode: ResponseCode,
    /// Header flags that are set, among aa, tc, rd (ra must never be).
    flags: &'static str,
    answer: &'static [&'static str],
    authority: &'static [&'static str],
    additional: &'static [&'static str],
}

const SOA: &str = "example.test. 60 SOA ns1.example.test. hostmaster.example.test. 7 3600 600 1209600 60";

fn case(what: &'static str, ask: Ask, rcode: ResponseCode, flags: &'static str) -> Case {
    Case {
        what,
        ask,
        rcode,
        flags,
        answer: &[],
        authority: &[],
        additional: &[],
    }
}

impl Case {
    fn answer(mut self, a: &'static [&'static str]) -> Self {
        self.answer = a;
        self
    }
    fn authority(mut self, a: &'static [&'static str]) -> Self {
        self.authority = a;
        self
    }
    fn additional(mut self, a: &'static [&'static str]) -> Self {
        self.additional = a;
        self
    }
}

fn battery() -> Vec<Case> {
    use ResponseCode::*;
    vec![
        case("positive answer", ask("www.example.test.", T::A), NoError, "aa")
            .answer(&["www.example.test. 120 A 192.0.2.80"]),
        case("AAAA", ask("www.example.test.", T::AAAA), NoError, "aa")
            .answer(&["www.example.test. 120 AAAA 2001:db8::80"]),
        case(
            "NODATA carries the SOA with the negative TTL",
            ask("mail.example.test.", T::AAAA),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "NXDOMAIN carries the SOA",
            ask("nope.example.test.", T::A),
            NXDomain,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "REFUSED outside our zones, never recursion",
            ask("www.example.org.", T::A).rd(),
            Refused,
            "rd",
        ),
        case(
            "REFUSED for a parent of our zone",
            ask("test.", T::SOA),
            Refused,
            "",
        ),
        case("SOA at the apex", ask("example.test.", T::SOA), NoError, "aa").answer(&[
            "example.test. 300 SOA ns1.example.test. hostmaster.example.test. 7 3600 600 1209600 60",
        ]),
        case(
            "apex NS with addresses",
            ask("example.test.", T::NS),
            NoError,
            "aa",
        )
        .answer(&[
            "example.test. 300 NS ns1.example.test.",
            "example.test. 300 NS ns2.example.test.",
        ])
        .additional(&[
            "ns1.example.test. 300 A 192.0.2.1",
            "ns1.example.test. 300 AAAA 2001:db8::1",
            "ns2.example.test. 300 A 192.0.2.2",
        ]),
        case(
            "MX with the exchange's address",
            ask("example.test.", T::MX),
            NoError,
            "aa",
        )
        .answer(&["example.test. 300 MX 10 mail.example.test."])
        .additional(&["mail.example.test. 300 A 192.0.2.25"]),
        case(
            "SRV with the target's addresses",
            ask("_sip._tcp.example.test.", T::SRV),
            NoError,
            "aa",
        )
        .answer(&["_sip._tcp.example.test. 300 SRV 10 5 5060 sip.example.test."])
        .additional(&[
            "sip.example.test. 300 A 192.0.2.50",
            "sip.example.test. 300 AAAA 2001:db8::50",
        ]),
        case("TXT", ask("example.test.", T::TXT), NoError, "aa").answer(&["example.test. 300 TXT apex text"]),
        case("CAA", ask("caa.example.test.", T::CAA), NoError, "aa")
            .answer(&["caa.example.test. 300 CAA 0 issue \"ca.example.net\""]),
        case("PTR", ask("ptr.example.test.", T::PTR), NoError, "aa")
            .answer(&["ptr.example.test. 300 PTR www.example.test."]),
        case(
            "CNAME followed inside the zone",
            ask("alias2.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&[
            "alias2.example.test. 300 CNAME alias.example.test.",
            "alias.example.test. 300 CNAME www.example.test.",
            "www.example.test. 120 A 192.0.2.80",
        ]),
        case(
            "CNAME asked for itself is not followed",
            ask("alias.example.test.", T::CNAME),
            NoError,
            "aa",
        )
        .answer(&["alias.example.test. 300 CNAME www.example.test."]),
        case(
            "CNAME leaving our zones stops there",
            ask("external.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&["external.example.test. 300 CNAME www.example.net."]),
        case(
            "CNAME into another zone we serve is followed",
            ask("cross.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&[
            "cross.example.test. 300 CNAME www.other.test.",
            "www.other.test. 600 A 198.51.100.80",
        ]),
        case(
            "CNAME to a missing name: NXDOMAIN of the target (RFC 6604)",
            ask("dangling.example.test.", T::A),
            NXDomain,
            "aa",
        )
        .answer(&["dangling.example.test. 300 CNAME missing.example.test."])
        .authority(&[SOA]),
        case(
            "CNAME target without the type: NODATA",
            ask("alias.example.test.", T::MX),
            NoError,
            "aa",
        )
        .answer(&["alias.example.test. 300 CNAME www.example.test."])
        .authority(&[SOA]),
        case("CNAME loop ends", ask("loop1.example.test.", T::A), NoError, "aa").answer(&[
            "loop1.example.test. 300 CNAME loop2.example.test.",
            "loop2.example.test. 300 CNAME loop1.example.test.",
        ]),
        case(
            "wildcard synthesis carries the question name",
            ask("host.wild.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&["host.wild.example.test. 300 A 192.0.2.90"]),
        case(
            "wildcard covers deeper names",
            ask("a.b.c.wild.example.test.", T::TXT),
            NoError,
            "aa",
        )
        .answer(&["a.b.c.wild.example.test. 300 TXT wild"]),
        case(
            "wildcard NODATA",
            ask("host.wild.example.test.", T::AAAA),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "existing name is not wildcarded",
            ask("real.wild.example.test.", T::TXT),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "closest encloser blocks the wildcard (RFC 4592)",
            ask("x.real.wild.example.test.", T::A),
            NXDomain,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "the wildcard name itself",
            ask("*.wild.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&["*.wild.example.test. 300 A 192.0.2.90"]),
        case(
            "wildcard CNAME",
            ask("x.wcname.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&[
            "x.wcname.example.test. 300 CNAME www.example.test.",
            "www.example.test. 120 A 192.0.2.80",
        ]),
        case(
            "empty non-terminal is NODATA",
            ask("b.ent.example.test.", T::A),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "empty non-terminal two up",
            ask("ent.example.test.", T::TXT),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "below an empty non-terminal: NXDOMAIN",
            ask("z.b.ent.example.test.", T::A),
            NXDomain,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "referral at a zone cut, with glue, no AA",
            ask("www.child.example.test.", T::A),
            NoError,
            "",
        )
        .authority(&[
            "child.example.test. 300 NS ns.child.example.test.",
            "child.example.test. 300 NS ns.example.net.",
        ])
        .additional(&["ns.child.example.test. 300 A 192.0.2.53"]),
        case(
            "referral for the cut itself",
            ask("child.example.test.", T::A),
            NoError,
            "",
        )
        .authority(&[
            "child.example.test. 300 NS ns.child.example.test.",
            "child.example.test. 300 NS ns.example.net.",
        ])
        .additional(&["ns.child.example.test. 300 A 192.0.2.53"]),
        case(
            "glue is not answered authoritatively",
            ask("ns.child.example.test.", T::A),
            NoError,
            "",
        )
        .authority(&[
            "child.example.test. 300 NS ns.child.example.test.",
            "child.example.test. 300 NS ns.example.net.",
        ])
        .additional(&["ns.child.example.test. 300 A 192.0.2.53"]),
        case(
            "DS at the cut is the parent's: NODATA",
            ask("child.example.test.", T::DS),
            NoError,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "ANY gets one RRset (RFC 8482)",
            ask("www.example.test.", T::ANY),
            NoError,
            "aa",
        )
        .answer(&["www.example.test. 120 A 192.0.2.80"]),
        case(
            "repeated labels compress correctly",
            ask("a.a.wild.example.test.", T::A),
            NoError,
            "aa",
        )
        .answer(&["a.a.wild.example.test. 300 A 192.0.2.90"]),
        case(
            "a name repeating the zone's labels",
            ask("example.example.test.", T::A),
            NXDomain,
            "aa",
        )
        .authority(&[SOA]),
        case(
            "ANY at an alias is the CNAME, not chased",
            ask("alias2.example.test.", T::ANY),
            NoError,
            "aa",
        )
        .answer(&["alias2.example.test. 300 CNAME alias.example.test."]),
        case(
            "ANY at a dangling alias is not NXDOMAIN",
            ask("dangling.example.test.", T::ANY),
            NoError,
            "aa",
        )
        .answer(&["dangling.example.test. 300 CNAME missing.example.test."]),
        case("AXFR refused", ask("example.test.", T::AXFR).tcp(), Refused, ""),
        case(
            "class CH refused",
            ask("example.test.", T::SOA).class(DNSClass::CH),
            Refused,
            "",
        ),
        case(
            "RD is echoed, RA never set",
            ask("www.example.test.", T::A).rd(),
            NoError,
            "aa rd",
        )
        .answer(&["www.example.test. 120 A 192.0.2.80"]),
        case(
            "same answer over TCP",
            ask("www.example.test.", T::A).tcp(),
            NoError,
            "aa",
        )
        .answer(&["www.example.test. 120 A 192.0.2.80"]),
        case(
            "no EDNS: still answered",
            ask("www.example.test.", T::A).no_edns(),
            NoError,
            "aa",
        )
        .answer(&["www.example.test. 120 A 192.0.2.80"]),
        case(
            "over 512 octets without EDNS: TC",
            ask("medium.example.test.", T::TXT).no_edns(),
            NoError,
            "aa tc",
        ),
        case(
            "over 1232 octets with EDNS: TC",
            ask("big.example.test.", T::TXT).payload(4096),
            NoError,
            "aa tc",
        ),
        case(
            "EDNS version 1: BADVERS",
            ask("www.example.test.", T::A).version(1),
            BADVERS,
            "",
        ),
    ]
}

fn flags_of(m: &Message) -> String {
    let h = &m.metadata;
    let mut f = Vec::new();
    if h.authoritative {
        f.push("aa");
    }
    if h.truncation {
        f.push("tc");
    }
    if h.recursion_desired {
        f.push("rd");
    }
    assert!(!h.recursion_available, "RA must never be set");
    assert!(!h.authentic_data, "AD must never be set");
    f.join(" ")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn battery_against_the_real_binary() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let mut failures = Vec::new();
    for c in battery() {
        let m = query(server.addr, &c.ask);
        // Compared by number: 16 is both BADVERS and BADSIG, and decoders pick one name.
        let got = (
            u16::from(m.metadata.response_code),
            flags_of(&m),
            sorted(section(&m.answers)),
            sorted(section(&m.authorities)),
            sorted(section(&m.additionals)),
        );
        let want = (
            u16::from(c.rcode),
            c.flags.to_string(),
            sorted(c.answer.iter().map(|s| s.to_string()).collect()),
            sorted(c.authority.iter().map(|s| s.to_string()).collect()),
            sorted(c.additional.iter().map(|s| s.to_string()).collect()),
        );
        if got != want {
            failures.push(format!(
                "{}: {:?}\n   got  {got:?}\n   want {want:?}",
                c.what, c.ask.name
            ));
        }
        // The question is echoed; EDNS is answered with EDNS (payload 1232, version 0).
        assert_eq!(m.queries.len(), 1, "{}", c.what);
        match (&c.ask.edns, &m.edns) {
            (Some(_), Some(e)) => {
                assert_eq!(e.max_payload(), 1232, "{}", c.what);
                assert_eq!(e.version(), 0, "{}", c.what);
            }
            (None, None) => {}
            (a, b) => failures.push(format!("{}: EDNS asked {a:?}, answered {b:?}", c.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the battery failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn truncated_answers_are_complete_over_tcp() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let udp = query(server.addr, &ask("big.example.test.", T::TXT));
    assert!(udp.metadata.truncation);
    assert!(udp.answers.is_empty());
    let tcp = query(server.addr, &ask("big.example.test.", T::TXT).tcp());
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 30);
    let fits = query(server.addr, &ask("medium.example.test.", T::TXT));
    assert!(!fits.metadata.truncation, "900 octets fit the 1232 EDNS payload");
    assert_eq!(fits.answers.len(), 8);
}

#[test]
fn question_case_is_preserved() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let m = query(server.addr, &ask("WwW.ExAmPlE.TeSt.", T::A));
    assert_eq!(m.queries[0].name().to_string(), "WwW.ExAmPlE.TeSt.");
    assert_eq!(m.answers[0].name.to_string(), "WwW.ExAmPlE.TeSt.");
    let m = query(server.addr, &ask("Host.WILD.example.test.", T::A));
    assert_eq!(m.answers[0].name.to_string(), "Host.WILD.example.test.");
}

#[test]
fn client_subnet_is_echoed_with_scope_zero_for_static_data() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    for (addr, prefix) in [("198.51.100.0", 24), ("2001:db8:1200::", 40), ("0.0.0.0", 0)] {
        let m = query(server.addr, &ask("www.example.test.", T::A).ecs(addr, prefix));
        let edns = m.edns.as_ref().expect("OPT in reply");
        let Some(EdnsOption::Subnet(ecs)) = edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
        else {
            panic!("ECS not echoed for {addr}/{prefix}: {edns:?}");
        };
        assert_eq!(ecs.addr(), addr.parse::<std::net::IpAddr>().unwrap());
        assert_eq!(ecs.source_prefix(), prefix);
        assert_eq!(ecs.scope_prefix(), 0);
        assert_eq!(m.answers.len(), 1);
    }
}

#[test]
fn nsid_is_sent_when_asked() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    // A query with an empty NSID option (RFC 5001 §2.1), built by hand.
    let mut q = ask("www.example.test.", T::A).to_bytes(77);
    // The OPT record is last; append the option and fix its RDLENGTH.
    let rdlen_at = q.len() - 2;
    q.extend_from_slice(&[0, 3, 0, 0]);
    q[rdlen_at..rdlen_at + 2].copy_from_slice(&4u16.to_be_bytes());
    let m = Message::from_vec(&udp_raw(server.addr, &q).expect("reply")).unwrap();
    let opt = m.edns.as_ref().expect("OPT");
    let nsid = opt
        .option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
        .expect("NSID in the reply");
    assert!(
        format!("{nsid:?}").contains(&format!("{:?}", b"test-node".to_vec()))
            || format!("{nsid:?}").contains("test-node"),
        "{nsid:?}"
    );
    // Not asked, not sent.
    let m = query(server.addr, &ask("www.example.test.", T::A));
    assert!(
        m.edns
            .unwrap()
            .option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
            .is_none()
    );
}
