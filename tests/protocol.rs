//! Protocol details at the edge: IXFR is treated like AXFR, replies to EDNS queries carry OPT
//! whatever their rcode (RFC 6891 §6.1.1), and a TSIG-signed query is answered NOTAUTH/BADKEY
//! while no keys are configured (RFC 8945 §5.2). Checked with hickory-proto and, where it is
//! installed, with dig.

mod common;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType as T;

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn question(qname: &str, qtype: u16) -> Vec<u8> {
    let mut q = name(qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// An OPT record (payload 1232, DO clear) with `options`.
fn opt(options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

/// The client's SOA, as an IXFR query carries it in the authority section (RFC 1995 §3).
fn soa(owner: &str, serial: u32) -> Vec<u8> {
    let mut rdata = name("ns1.example.test");
    rdata.extend(name("hostmaster.example.test"));
    for v in [serial, 3600, 600, 86400, 60] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    let mut r = name(owner);
    r.extend_from_slice(&6u16.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&0u32.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend(rdata);
    r
}

/// A TSIG record (RFC 8945 §4.2) with a 32-byte MAC, as a client holding key `key` sends it.
fn tsig(key: &str, algorithm: &str, time_signed: u64, fudge: u16, original_id: u16) -> Vec<u8> {
    let mut rdata = name(algorithm);
    rdata.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    rdata.extend_from_slice(&fudge.to_be_bytes());
    rdata.extend_from_slice(&32u16.to_be_bytes());
    rdata.extend_from_slice(&[0xab; 32]);
    rdata.extend_from_slice(&original_id.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes()); // error
    rdata.extend_from_slice(&0u16.to_be_bytes()); // other len
    let mut r = name(key);
    r.extend_from_slice(&250u16.to_be_bytes());
    r.extend_from_slice(&255u16.to_be_bytes()); // class ANY
    r.extend_from_slice(&0u32.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend(rdata);
    r
}

fn rcode(reply: &[u8]) -> u8 {
    reply[3] & 0x0f
}

#[test]
fn ixfr_gets_the_same_answer_as_axfr() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let axfr = tcp_raw(
        server.addr,
        &[header(1, 0, 1, 0, 0, 0), question("example.test", 252)].concat(),
    );
    assert_eq!(rcode(&axfr), 5, "AXFR is refused");
    let ixfr = [
        header(2, 0, 1, 0, 1, 0),
        question("example.test", 251),
        soa("example.test", 2020010101),
    ]
    .concat();
    let over_tcp = tcp_raw(server.addr, &ixfr);
    assert_eq!(rcode(&over_tcp), rcode(&axfr), "IXFR over TCP");
    let over_udp = udp_raw(server.addr, &ixfr).expect("a reply over UDP");
    assert_eq!(rcode(&over_udp), rcode(&axfr), "IXFR over UDP");
    let m = Message::from_vec(&over_udp).expect("hickory reads the reply");
    assert_eq!(m.queries.len(), 1, "the question is echoed");
    assert_eq!(m.queries[0].query_type(), T::IXFR);
    // Authority records in other queries stay malformed.
    let other = [
        header(3, 0, 1, 0, 1, 0),
        question("www.example.test", 1),
        soa("example.test", 1),
    ]
    .concat();
    assert_eq!(rcode(&udp_raw(server.addr, &other).unwrap()), 1);
}

#[test]
fn error_replies_to_edns_queries_carry_opt() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let q = question("www.example.test", 1);
    // ECS family 1, source /24, no address octets: malformed (RFC 7871 §7.1.1).
    let bad_ecs = [0, 8, 0, 4, 0, 1, 24, 0];
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        (
            "malformed ECS option",
            [header(1, 0, 1, 0, 0, 1), q.clone(), opt(&bad_ecs)].concat(),
            1,
        ),
        ("no question", [header(2, 0, 0, 0, 0, 1), opt(&[])].concat(), 1),
        (
            "trailing garbage",
            [header(3, 0, 1, 0, 0, 1), q.clone(), opt(&[]), b"junk".to_vec()].concat(),
            1,
        ),
        (
            "opcode NOTIFY",
            [header(4, 4 << 11, 1, 0, 0, 1), q.clone(), opt(&[])].concat(),
            4,
        ),
        (
            "opcode UPDATE",
            [header(5, 5 << 11, 1, 0, 0, 1), q.clone(), opt(&[])].concat(),
            4,
        ),
        (
            "a name in no zone",
            [
                header(6, 0, 1, 0, 0, 1),
                question("www.nowhere.invalid", 1),
                opt(&[]),
            ]
            .concat(),
            5,
        ),
        (
            "AXFR",
            [header(7, 0, 1, 0, 0, 1), question("example.test", 252), opt(&[])].concat(),
            5,
        ),
    ];
    let mut failures = Vec::new();
    for (what, pkt, want) in cases {
        for (transport, reply) in [
            ("udp", udp_raw(server.addr, &pkt).expect("a reply")),
            ("tcp", tcp_raw(server.addr, &pkt)),
        ] {
            if rcode(&reply) != want {
                failures.push(format!(
                    "{what} ({transport}): rcode {}, want {want}",
                    rcode(&reply)
                ));
                continue;
            }
            match Message::from_vec(&reply) {
                Ok(m) if m.edns.is_some() => {
                    let e = m.edns.as_ref().unwrap();
                    assert_eq!(e.max_payload(), 1232, "{what}: our payload size");
                    assert_eq!(e.version(), 0, "{what}");
                }
                Ok(_) => failures.push(format!("{what} ({transport}): no OPT in the reply")),
                Err(e) => failures.push(format!("{what} ({transport}): unreadable reply: {e}")),
            }
        }
    }
    // Without OPT in the query, none in the reply.
    let plain = udp_raw(server.addr, &[header(8, 4 << 11, 1, 0, 0, 0), q].concat()).unwrap();
    assert_eq!(&plain[10..12], &[0, 0], "no additional records without EDNS");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    if !have_tool("dig") {
        return;
    }
    for (args, status) in [
        ("www.example.test A +ednsopt=8:00011800", "FORMERR"),
        ("www.nowhere.invalid A", "REFUSED"),
        ("www.example.test A +opcode=notify", "NOTIMP"),
    ] {
        let out = dig(&server, args);
        assert!(
            out.contains(&format!("status: {status}")) && out.contains("OPT PSEUDOSECTION"),
            "dig {args}:\n{out}"
        );
    }
}

#[test]
fn a_tsig_signed_query_without_keys_gets_notauth_badkey() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let time_signed: u64 = 0x0000_6543_2101;
    for with_opt in [false, true] {
        let mut pkt = [
            header(0x1234, 0x0100, 1, 0, 0, 1 + u16::from(with_opt)),
            question("www.example.test", 1),
        ]
        .concat();
        if with_opt {
            pkt.extend(opt(&[]));
        }
        pkt.extend(tsig("Key.Name", "hmac-sha256", time_signed, 300, 0x1234));
        for reply in [
            udp_raw(server.addr, &pkt).expect("a reply"),
            tcp_raw(server.addr, &pkt),
        ] {
            assert_eq!(rcode(&reply), 9, "NOTAUTH");
            let m = Message::from_vec(&reply).expect("hickory reads the reply");
            assert!(m.answers.is_empty(), "no data in an unauthenticated reply");
            assert_eq!(m.edns.is_some(), with_opt, "OPT only when the query had one");
            // hickory-proto decodes TSIG RDATA only with its DNSSEC features: here it checks
            // the framing, the owner and the type; the fields are checked on the bytes below.
            let sig = m.additionals.last().expect("a TSIG record in the reply");
            assert_eq!(sig.record_type(), T::TSIG, "TSIG is the last additional record");
            assert_eq!(sig.name.to_ascii(), "Key.Name.", "key name from the request");
            assert_eq!(u16::from(sig.dns_class), 255, "class ANY");
        }
        // The raw TSIG: last record, algorithm copied, error 17, MAC size 0, time signed copied.
        let reply = udp_raw(server.addr, &pkt).unwrap();
        let algorithm = name("hmac-sha256");
        let tail = &reply[reply.len() - 16..];
        let alg_at = reply.len() - 16 - algorithm.len();
        assert_eq!(
            &reply[alg_at..reply.len() - 16],
            &algorithm[..],
            "algorithm copied"
        );
        assert_eq!(&tail[..6], &time_signed.to_be_bytes()[2..], "time signed copied");
        assert_eq!(&tail[6..8], &300u16.to_be_bytes(), "fudge copied");
        assert_eq!(&tail[8..10], &[0, 0], "MAC size 0");
        assert_eq!(&tail[10..12], &0x1234u16.to_be_bytes(), "original id");
        assert_eq!(&tail[12..14], &17u16.to_be_bytes(), "BADKEY");
        assert_eq!(&tail[14..16], &[0, 0], "no other data");
    }
    // Counted as what they are: 3 replies for each of the two queries.
    let (status, _, metrics) = http(server.admin(), "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains(r#"meridian_queries_total{zone="",qtype="A",rcode="NOTAUTH"} 6"#),
        "{metrics}"
    );

    if !have_tool("dig") {
        return;
    }
    let out = dig(&server, "www.example.test A -y hmac-sha256:name:c2VjcmV0");
    assert!(
        out.contains("status: NOTAUTH") && out.contains("BADKEY"),
        "dig -y:\n{out}"
    );
}

#[test]
fn a_tsig_record_not_last_is_formerr() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let pkt = [
        header(9, 0, 1, 0, 0, 2),
        question("www.example.test", 1),
        tsig("key", "hmac-sha256", 1, 300, 9),
        opt(&[]),
    ]
    .concat();
    assert_eq!(rcode(&udp_raw(server.addr, &pkt).unwrap()), 1);
}

#[test]
fn a_notauth_reply_too_long_for_udp_is_truncated() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    // Names of about 190 octets each: question, key and algorithm would make ~620 octets.
    let long = |tail: &str| format!("{}.{tail}", vec!["a".repeat(60); 3].join("."));
    let pkt = [
        header(0x4321, 0x0100, 1, 0, 0, 1),
        question(&long("example.test"), 1),
        tsig(&long("key"), &long("alg"), 1, 300, 0x4321),
    ]
    .concat();
    let reply = udp_raw(server.addr, &pkt).expect("a reply");
    assert!(reply.len() <= 512, "{} octets over UDP without EDNS", reply.len());
    assert_eq!(rcode(&reply), 9, "NOTAUTH");
    assert_ne!(reply[2] & 0x02, 0, "TC set");
    let m = Message::from_vec(&reply).expect("hickory reads the reply");
    assert!(m.additionals.is_empty(), "{m:?}");
    // Over TCP it all fits.
    let reply = tcp_raw(server.addr, &pkt);
    assert_eq!(reply[2] & 0x02, 0, "no TC over TCP");
    let m = Message::from_vec(&reply).expect("hickory reads the reply");
    assert_eq!(m.additionals.last().map(|r| r.record_type()), Some(T::TSIG));
}
