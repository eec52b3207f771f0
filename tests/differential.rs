//! Differential check against NSD: the same zone, served by both, asked the same questions.
//! Needs `nsd` (`.ci/run` installs it). One deliberate difference is allowed: NSD adds the
//! apex NS RRset (and its addresses) to positive answers, Meridian sends minimal responses.

mod common;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType as T;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ZONE: &str = r#"$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 1 7200 1800 259200 900
@ NS ns1
@ NS ns2.other.net.
@ MX 10 mail
@ TXT "v=spf1 -all"
ns1 A 192.0.2.1
ns1 AAAA 2001:db8::1
mail A 192.0.2.25
www A 192.0.2.80
www AAAA 2001:db8::80
alias CNAME www
alias2 CNAME alias
ext CNAME www.example.net.
dangling CNAME nothere
*.wild A 192.0.2.90
real.wild TXT "real"
a.b.ent A 192.0.2.100
_sip._tcp SRV 10 5 5060 sip
sip A 192.0.2.50
sub NS ns.sub
sub NS ns.other.net.
ns.sub A 192.0.2.53
caa CAA 0 issue "ca.example.net"
*.wcname CNAME www
"#;

struct Nsd(std::process::Child);
impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (rcode, flags, answer, authority, additional) with NSD's extra NS data on positive answers
/// taken out.
fn normalized(m: &Message) -> (u16, bool, Vec<String>, Vec<String>, Vec<String>) {
    let mut answer = section(&m.answers);
    let mut authority = section(&m.authorities);
    let mut additional = section(&m.additionals);
    if !answer.is_empty() {
        authority.retain(|r| !(r.to_lowercase().starts_with("example.com. ") && r.contains(" NS ")));
        additional.retain(|r| !r.to_lowercase().starts_with("ns1.example.com. "));
    }
    answer.sort();
    authority.sort();
    additional.sort();
    (
        u16::from(m.metadata.response_code),
        m.metadata.authoritative,
        answer,
        authority,
        additional,
    )
}

#[test]
fn meridian_answers_like_nsd() {
    if !have_tool("nsd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = targets::free_port();
    std::fs::write(d.join("example.com.zone"), ZONE).unwrap();
    std::fs::write(
        d.join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  rrl-ratelimit: 0\n  zonesdir: \"{0}\"\n  username: \"\"\n  \
             pidfile: \"{0}/nsd.pid\"\n  database: \"\"\n  zonelistfile: \"{0}/zone.list\"\n  xfrdfile: \"{0}/xfrd.state\"\n\
             remote-control:\n  control-enable: no\nzone:\n  name: example.com\n  zonefile: example.com.zone\n",
            d.display()
        ),
    )
    .unwrap();
    let _nsd = Nsd(Command::new("nsd")
        .arg("-c")
        .arg(d.join("nsd.conf"))
        .arg("-d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nsd"));
    let nsd: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::create_dir_all(d.join("m/zones")).unwrap();
    std::fs::write(d.join("m/zones/example.com.zone"), ZONE).unwrap();
    std::fs::write(
        d.join("m/zones/example.com.yaml"),
        "zone: example.com\nimport: example.com.zone\n",
    )
    .unwrap();
    std::fs::write(d.join("m/meridian.yaml"), "zones_dir: zones\n").unwrap();
    let meridian = Server::start(&d.join("m/meridian.yaml"));

    let deadline = Instant::now() + Duration::from_secs(10);
    while udp_raw(nsd, &ask("www.example.com.", T::A).to_bytes(1)).is_none() {
        assert!(Instant::now() < deadline, "nsd did not start");
    }

    let names = [
        "example.com.",
        "www.example.com.",
        "WwW.Example.COM.",
        "alias.example.com.",
        "alias2.example.com.",
        "ext.example.com.",
        "dangling.example.com.",
        "x.wild.example.com.",
        "a.b.wild.example.com.",
        "real.wild.example.com.",
        "x.real.wild.example.com.",
        "b.ent.example.com.",
        "ent.example.com.",
        "z.b.ent.example.com.",
        "_sip._tcp.example.com.",
        "sub.example.com.",
        "x.sub.example.com.",
        "ns.sub.example.com.",
        "caa.example.com.",
        "nope.example.com.",
        "q.wcname.example.com.",
        "mail.example.com.",
        "ns1.example.com.",
        "*.wild.example.com.",
    ];
    let types = [
        T::A,
        T::AAAA,
        T::MX,
        T::TXT,
        T::NS,
        T::SOA,
        T::CNAME,
        T::SRV,
        T::CAA,
        T::DS,
        T::ANY,
        T::PTR,
    ];
    let mut diffs = Vec::new();
    let mut compared = 0;
    for name in names {
        for &t in &types {
            let a = ask(name, t);
            let (n, m) = (query(nsd, &a), query(meridian.addr, &a));
            let (n, m) = (normalized(&n), normalized(&m));
            // Case: NSD writes owners in the zone's case, Meridian echoes the question's; compare
            // names case-blind.
            let lower =
                |v: &(u16, bool, Vec<String>, Vec<String>, Vec<String>)| format!("{v:?}").to_lowercase();
            if lower(&n) != lower(&m) {
                diffs.push(format!("{name} {t}\n  nsd:      {n:?}\n  meridian: {m:?}"));
            }
            compared += 1;
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {compared} answers differ from NSD:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
