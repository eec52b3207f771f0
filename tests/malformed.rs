//! Bad packets get FORMERR or NOTIMP (or, for responses and runts, silence), never a crash.

mod common;

use common::*;
use hickory_proto::rr::RecordType as T;

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// `www.example.test. A IN`
fn question() -> Vec<u8> {
    let mut q = b"\x03www\x07example\x04test\x00".to_vec();
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

fn opt(options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

fn ecs(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 8];
    o.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
    o.extend_from_slice(&family.to_be_bytes());
    o.extend_from_slice(&[source, scope]);
    o.extend_from_slice(addr);
    o
}

fn packet(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// (what, packet, expected rcode; None = no reply at all)
fn cases() -> Vec<(&'static str, Vec<u8>, Option<u8>)> {
    let q = question();
    vec![
        ("no question", header(1, 0, 0, 0, 0, 0), Some(1)),
        (
            "two questions",
            packet(&[&header(2, 0, 2, 0, 0, 0), &q, &q]),
            Some(1),
        ),
        (
            "question cut short",
            packet(&[&header(3, 0, 1, 0, 0, 0), &q[..10]]),
            Some(1),
        ),
        (
            "type and class missing",
            packet(&[&header(4, 0, 1, 0, 0, 0), &q[..18]]),
            Some(1),
        ),
        (
            "answer records in a query",
            packet(&[&header(5, 0, 1, 1, 0, 0), &q]),
            Some(1),
        ),
        (
            "label longer than 63",
            packet(&[&header(6, 0, 1, 0, 0, 0), &[64], &[b'a'; 64], &[0, 0, 1, 0, 1]]),
            Some(1),
        ),
        (
            "compression pointer in the question",
            packet(&[&header(7, 0, 1, 0, 0, 0), &[0xc0, 0x0c, 0, 1, 0, 1]]),
            Some(1),
        ),
        (
            "trailing garbage",
            packet(&[&header(8, 0, 1, 0, 0, 0), &q, b"junk"]),
            Some(1),
        ),
        (
            "additional count larger than the records",
            packet(&[&header(9, 0, 1, 0, 0, 1), &q]),
            Some(1),
        ),
        (
            "two OPT records",
            packet(&[&header(10, 0, 1, 0, 0, 2), &q, &opt(&[]), &opt(&[])]),
            Some(1),
        ),
        (
            "OPT not owned by the root",
            packet(&[&header(11, 0, 1, 0, 0, 1), &q, &[1, b'x'], &opt(&[])[..]]),
            Some(1),
        ),
        (
            "ECS address longer than its prefix",
            packet(&[&header(12, 0, 1, 0, 0, 1), &q, &opt(&ecs(1, 8, 0, &[10, 0]))]),
            Some(1),
        ),
        (
            "ECS bits set beyond the prefix",
            packet(&[
                &header(13, 0, 1, 0, 0, 1),
                &q,
                &opt(&ecs(1, 20, 0, &[10, 1, 0xff])),
            ]),
            Some(1),
        ),
        (
            "ECS scope set in a query",
            packet(&[&header(14, 0, 1, 0, 0, 1), &q, &opt(&ecs(1, 24, 8, &[10, 1, 2]))]),
            Some(1),
        ),
        (
            "ECS unknown family",
            packet(&[&header(15, 0, 1, 0, 0, 1), &q, &opt(&ecs(3, 0, 0, &[]))]),
            Some(1),
        ),
        (
            "ECS prefix longer than the family",
            packet(&[
                &header(16, 0, 1, 0, 0, 1),
                &q,
                &opt(&ecs(1, 33, 0, &[1, 2, 3, 4, 5])),
            ]),
            Some(1),
        ),
        (
            "option cut short",
            packet(&[&header(17, 0, 1, 0, 0, 1), &q, &opt(&[0, 8, 0, 9, 0])]),
            Some(1),
        ),
        (
            "opcode NOTIFY",
            packet(&[&header(18, 4 << 11, 1, 0, 0, 0), &q]),
            Some(4),
        ),
        (
            "opcode UPDATE",
            packet(&[&header(19, 5 << 11, 1, 0, 0, 0), &q]),
            Some(4),
        ),
        ("opcode 15", packet(&[&header(20, 15 << 11, 0, 0, 0, 0)]), Some(4)),
        (
            "a response is not answered",
            packet(&[&header(21, 0x8000, 1, 0, 0, 0), &q]),
            None,
        ),
        ("shorter than a header", vec![0, 22, 0, 0, 0], None),
        (
            "unknown options are ignored",
            packet(&[&header(23, 0, 1, 0, 0, 1), &q, &opt(&[0, 99, 0, 2, 7, 7])]),
            Some(0),
        ),
    ]
}

#[test]
fn malformed_packets_get_formerr_or_notimp() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let mut failures = Vec::new();
    for (what, pkt, want) in cases() {
        let reply = udp_raw(server.addr, &pkt);
        let got = reply.as_ref().map(|r| r[3] & 0x0f);
        if got != want {
            failures.push(format!("{what}: rcode {got:?}, want {want:?}"));
            continue;
        }
        if let Some(r) = reply {
            assert_eq!(&r[..2], &pkt[..2], "{what}: id echoed");
            assert_ne!(r[2] & 0x80, 0, "{what}: QR set");
            assert_eq!(r[3] & 0x80, 0, "{what}: RA never set");
            assert_eq!(r[2] & 0x78, pkt[2] & 0x78, "{what}: opcode echoed");
        }
        // The same packet over TCP gets the same treatment.
        if want.is_some() {
            let r = tcp_raw(server.addr, &pkt);
            if Some(r[3] & 0x0f) != want {
                failures.push(format!("{what} over TCP: rcode {}, want {want:?}", r[3] & 0x0f));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u8
    }
}

#[test]
fn random_and_mutated_packets_never_stop_the_server() {
    let dir = fixture("conformance");
    let server = Server::start(&dir.path().join("meridian.yaml"));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = Lcg(7);
    let valid = ask("www.example.test.", T::A).ecs("192.0.2.0", 24).to_bytes(1);
    for i in 0..20_000 {
        let pkt: Vec<u8> = if i % 2 == 0 {
            let len = usize::from(rng.next()) % 80;
            (0..len).map(|_| rng.next()).collect()
        } else {
            // Flip a few bytes of a valid query: reaches deeper parsing paths.
            let mut p = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = usize::from(rng.next()) % p.len();
                p[at] = rng.next();
            }
            p.truncate(p.len() - usize::from(rng.next()) % 4);
            p
        };
        sock.send_to(&pkt, server.addr).unwrap();
        if i % 50 == 0 {
            // Stay in step so the socket buffers never overflow.
            let m = query(server.addr, &ask("www.example.test.", T::A));
            assert_eq!(m.answers.len(), 1);
        }
    }
    // Random bytes over TCP: the connection may close, the server stays.
    for seed in 0..50 {
        let mut rng = Lcg(seed);
        if let Ok(mut s) = std::net::TcpStream::connect(server.addr) {
            use std::io::Write;
            let junk: Vec<u8> = (0..usize::from(rng.next()) + 2).map(|_| rng.next()).collect();
            let _ = s.write_all(&junk);
        }
    }
    let m = query(server.addr, &ask("www.example.test.", T::A));
    assert_eq!(m.answers.len(), 1, "still answering after the noise");
    let m = query(server.addr, &ask("www.example.test.", T::A).tcp());
    assert_eq!(m.answers.len(), 1, "still answering over TCP after the noise");
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}
