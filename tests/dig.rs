//! The shipped configuration, queried with dig as an operator would. Needs `dig`
//! (bind9-dnsutils); `.ci/run` installs it.

mod common;

use common::*;

#[test]
fn dig_against_the_shipped_zone() {
    if !have_tool("dig") {
        return;
    }
    let server = Server::start(&repo_path("meridian.yaml"));
    let checks: &[(&str, &[&str])] = &[
        (
            "static.gslb.example.com A +norec",
            &[
                "status: NOERROR",
                "flags: qr aa;",
                "192.0.2.80",
                "192.0.2.81",
                "udp: 1232",
            ],
        ),
        (
            "alias.gslb.example.com A",
            &[
                "alias.gslb.example.com. 300 IN CNAME docs.gslb.example.com.",
                "192.0.2.80",
            ],
        ),
        (
            "nope.gslb.example.com A",
            &["status: NXDOMAIN", "flags: qr aa", "SOA ns1.gslb.example.com."],
        ),
        (
            "ent.gslb.example.com A",
            &["status: NOERROR", "ANSWER: 0, AUTHORITY: 1"],
        ),
        (
            "host.sub.gslb.example.com A +norec",
            &[
                "status: NOERROR",
                "flags: qr;",
                "ns.sub.gslb.example.com. 300 IN A 192.0.2.99",
            ],
        ),
        (
            "x.cdn.gslb.example.com A",
            &["x.cdn.gslb.example.com. 300 IN A 192.0.2.90"],
        ),
        (
            "gslb.example.com MX",
            &[
                "10 mail.gslb.example.com.",
                "mail.gslb.example.com. 300 IN A 192.0.2.25",
            ],
        ),
        (
            "legacy.gslb.example.com AAAA",
            &["legacy.gslb.example.com. 600 IN AAAA 2001:db8::70"],
        ),
        ("static.gslb.example.com A +tcp", &["status: NOERROR", "(TCP)"]),
        (
            "static.gslb.example.com A +subnet=198.51.100.0/24",
            &["CLIENT-SUBNET: 198.51.100.0/24/0"],
        ),
        ("example.org A", &["status: REFUSED"]),
        (
            "static.gslb.example.com A +edns=1 +noednsneg",
            &["status: BADVERS"],
        ),
        ("gslb.example.com ANY", &["ANSWER: 1,"]),
        (
            "www.gslb.example.com A +subnet=10.20.0.0/16",
            &[
                // London (10.20/16) and Paris (10.21/16) are both EU: one /15 for the
                // continent rule.
                "CLIENT-SUBNET: 10.20.0.0/16/15",
                "IN A 198.51.100.1",
                "flags: qr aa",
            ],
        ),
        (
            "www.gslb.example.com A +subnet=100.64.0.0/10",
            &["CLIENT-SUBNET: 100.64.0.0/10/10", "IN A 203.0.113.1"],
        ),
        (
            "www.gslb.example.com A +subnet=10.10.0.0/24",
            // San Francisco (10.10/16) and Toronto (10.11/16) are both NA: one /15.
            &["CLIENT-SUBNET: 10.10.0.0/24/15", "IN A 192.0.2.1"],
        ),
        (
            "www.gslb.example.com AAAA +subnet=100.64.0.0/10",
            &["IN AAAA 2001:db8:20::10"],
        ),
        ("www.gslb.example.com A", &["IN A 192.0.2.1"]),
        (
            "api.gslb.example.com A +subnet=10.1.2.0/24",
            &["CLIENT-SUBNET: 10.1.2.0/24/24", "api.gslb.example.com. 60 IN A"],
        ),
        (
            "failover.gslb.example.com A",
            &["failover.gslb.example.com. 30 IN A 192.0.2.1"],
        ),
        ("pool.gslb.example.com A", &["ANSWER: 4,"]),
        ("static.gslb.example.com A +nsid", &["; NSID:"]),
    ];
    let mut failures = Vec::new();
    for (args, wants) in checks {
        let out = dig(&server, args);
        for w in *wants {
            if !out.contains(w) {
                failures.push(format!("dig {args}: missing `{w}` in\n{out}"));
            }
        }
        assert!(
            !out.contains(" ra;") && !out.contains(" ra "),
            "RA set for {args}"
        );
        assert!(out.contains("Got answer"), "no answer to dig {args}: {out}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
