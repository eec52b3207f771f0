//! `meridian ctl` against a real server: the failover drill of docs/api.md done with the
//! command-line client (drain, undrain, overrides, weights, explain, events as they happen,
//! reload, a zone read, edited and written back, a stale copy refused), and the errors an
//! operator meets (no token, a read-only token, nothing listening, a refused edit).

mod common;

use common::*;
use hickory_proto::rr::RecordType as T;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The outcome of one `meridian ctl` run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `meridian ctl ARGS` with the environment given (and no MERIDIAN_TOKEN otherwise).
fn ctl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(BIN);
    c.arg("ctl").args(args).env_remove("MERIDIAN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run meridian ctl");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `meridian ctl --admin <server> --token-file <admin token> ARGS`, which must succeed.
fn ctl(server: &Server, dir: &Path, args: &[&str]) -> String {
    let admin = format!("http://{}", server.admin());
    let token = dir.join("secrets/admin.token");
    let mut all = vec!["--admin", &admin, "--token-file", token.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = ctl_env(&all, &[]);
    assert!(run.ok, "ctl {args:?} failed:\n{}{}", run.stdout, run.stderr);
    run.stdout
}

fn answers(server: &Server, name: &str) -> Vec<String> {
    answer_data(&query(server.addr, &ask(name, T::A)))
}

#[test]
fn the_drill_with_ctl() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let www = "www.example.test.";
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);

    let status = ctl(&server, d, &["status"]);
    assert!(status.contains("data centers: 2, down: none"), "{status}");
    assert!(status.contains("overrides: none"), "{status}");
    assert!(status.contains("www.example.test. (failover)"), "{status}");

    // Watch transitions live while the drill runs.
    let admin = format!("http://{}", server.admin());
    let mut follower = Command::new(BIN)
        .args(["ctl", "--admin", &admin, "--token-file"])
        .arg(d.join("secrets/admin.token"))
        .args(["events", "--follow"])
        .env_remove("MERIDIAN_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ctl events --follow");
    let (tx, events) = mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Drain eu: the very next answer moves. The follower may not have subscribed by the first
    // drain: drain and undrain until it prints a transition (each cycle is two events), within
    // a bound; the loop ends with eu drained.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        assert_eq!(ctl(&server, d, &["drain", "eu"]).trim(), "eu: auto -> drained");
        assert_eq!(answers(&server, www), vec!["192.0.2.10"]);
        if let Ok(line) = events.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "events --follow printed nothing");
        assert_eq!(ctl(&server, d, &["undrain", "eu"]).trim(), "eu: drained -> auto");
    };
    assert!(seen.contains("override datacenter eu: "), "{seen}");
    assert!(seen.starts_with("20"), "a line starts with its time: {seen}");
    // Subscribed now: a change made from here on is streamed as it happens.
    assert_eq!(
        ctl(&server, d, &["weight", "us", "7"]).trim(),
        "us: weight 7 in every name"
    );
    let streamed = loop {
        let line = events
            .recv_timeout(Duration::from_secs(5))
            .expect("the weight change, streamed");
        if line.contains("weight datacenter us") {
            break line;
        }
    };
    assert!(
        streamed.ends_with("weight datacenter us: configured -> 7 (admin API (ops))"),
        "{streamed}"
    );
    ctl(&server, d, &["weight", "us", "auto"]);

    let status = ctl(&server, d, &["status"]);
    assert!(status.contains("down: eu"), "{status}");
    assert!(status.contains("overrides: eu drained"), "{status}");
    assert!(status.contains("eu (drained)"), "where clients go: {status}");
    let gslb = ctl(&server, d, &["gslb"]);
    let www_rule = gslb
        .lines()
        .find(|l| l.starts_with("www.example.test."))
        .expect(&gslb);
    assert!(
        www_rule.contains(" us ") && www_rule.contains("eu (drained)") && www_rule.contains("192.0.2.10"),
        "{gslb}"
    );
    let dcs = ctl(&server, d, &["datacenters"]);
    let eu = dcs.lines().find(|l| l.starts_with("eu ")).expect(&dcs);
    assert!(eu.contains("down") && eu.contains("drained"), "{dcs}");

    let explain = ctl(&server, d, &["explain", www, "--client", "10.20.0.1"]);
    assert!(explain.contains("NOERROR"), "{explain}");
    assert!(explain.contains("eu: drained by override"), "{explain}");
    assert!(explain.contains("A 192.0.2.10"), "{explain}");

    assert_eq!(ctl(&server, d, &["undrain", "eu"]).trim(), "eu: drained -> auto");
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);

    // One endpoint forced down, then back.
    assert_eq!(
        ctl(&server, d, &["override", "eu/198.51.100.10", "down"]).trim(),
        "eu/198.51.100.10: auto -> down"
    );
    assert_eq!(answers(&server, www), vec!["198.51.100.11"]);
    ctl(&server, d, &["override", "eu/198.51.100.10", "auto"]);
    // A whole data center forced down.
    assert_eq!(
        ctl(&server, d, &["override", "eu", "down"]).trim(),
        "eu: auto -> down"
    );
    assert_eq!(answers(&server, www), vec!["192.0.2.10"]);
    assert_eq!(
        ctl(&server, d, &["override", "eu", "auto"]).trim(),
        "eu: down -> auto"
    );
    assert_eq!(answers(&server, www), vec!["198.51.100.10", "198.51.100.11"]);

    // Runtime weights.
    assert_eq!(
        ctl(&server, d, &["weight", "us", "5"]).trim(),
        "us: weight 5 in every name"
    );
    let dcs = ctl(&server, d, &["datacenters", "us"]);
    assert!(dcs.contains("5 (runtime)"), "{dcs}");
    assert_eq!(
        ctl(&server, d, &["weight", "us", "auto"]).trim(),
        "us: configured weights"
    );

    // The list of events, and --json as the API's JSON.
    let list = ctl(&server, d, &["events"]);
    assert!(list.contains("weight datacenter us: configured -> 5"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&ctl(&server, d, &["--json", "datacenters"])).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");

    assert!(ctl(&server, d, &["reload"]).starts_with("reloaded: snapshot generation "));

    // A zone read, edited and written back with its ETag; a stale copy refused.
    let yaml = ctl(&server, d, &["zone", "get", "example.test"]);
    assert!(yaml.starts_with("# etag: \""), "{yaml}");
    assert!(yaml.contains("192.0.2.80"), "{yaml}");
    let copy = d.join("copy.yaml");
    std::fs::write(&copy, yaml.replace("192.0.2.80", "192.0.2.81")).unwrap();
    let put = ctl(
        &server,
        d,
        &["zone", "put", "example.test", copy.to_str().unwrap()],
    );
    assert!(put.contains("example.test: written, SOA serial 11"), "{put}");
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.81"]);

    std::fs::write(&copy, yaml.replace("192.0.2.80", "192.0.2.82")).unwrap();
    let token = d.join("secrets/admin.token");
    let stale = ctl_env(
        &[
            "--admin",
            &admin,
            "--token-file",
            token.to_str().unwrap(),
            "zone",
            "put",
            "example.test",
            copy.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!stale.ok, "a stale copy was written: {}", stale.stdout);
    assert!(stale.stderr.contains("412"), "{}", stale.stderr);
    assert!(stale.stderr.contains("nothing was written"), "{}", stale.stderr);
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.81"]);

    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn errors_say_what_to_do() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let admin = format!("http://{}", server.admin());

    let none = ctl_env(&["--admin", &admin, "status"], &[]);
    assert!(!none.ok);
    assert!(none.stderr.contains("401"), "{}", none.stderr);
    assert!(
        none.stderr.contains("--token-file") && none.stderr.contains("MERIDIAN_TOKEN"),
        "{}",
        none.stderr
    );

    let secret = std::fs::read_to_string(d.join("secrets/read.token")).unwrap();
    let read = [("MERIDIAN_TOKEN", secret.trim())];
    let status = ctl_env(&["--admin", &admin, "status"], &read);
    assert!(status.ok, "a read token reads: {}", status.stderr);
    let write = ctl_env(&["--admin", &admin, "drain", "eu"], &read);
    assert!(!write.ok);
    assert!(write.stderr.contains("403"), "{}", write.stderr);
    assert!(
        write.stderr.contains("read-only: this needs one of role admin"),
        "{}",
        write.stderr
    );

    let wrong = ctl_env(
        &["--admin", &admin, "status"],
        &[("MERIDIAN_TOKEN", "not-the-token-0123456789")],
    );
    assert!(!wrong.ok);
    assert!(
        wrong.stderr.contains("the token in MERIDIAN_TOKEN was refused"),
        "{}",
        wrong.stderr
    );

    // An API error: its message and field, plainly.
    let token = [("MERIDIAN_TOKEN", "admin-secret-0123456789")];
    let missing = ctl_env(&["--admin", &admin, "drain", "nowhere"], &token);
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("404: no data center `nowhere` (field: dc)"),
        "{}",
        missing.stderr
    );
    let invalid = d.join("invalid.yaml");
    std::fs::write(
        &invalid,
        "zone: example.test\nsoa: { mname: ns1.example.test., rname: h.example.test. }\n\
         ns: [ns1.example.test.]\nrecords: { ns1: { A: [192.0.2.1] }, static: { A: [192.0.2.300] } }\n",
    )
    .unwrap();
    let refused = ctl_env(
        &[
            "--admin",
            &admin,
            "zone",
            "put",
            "example.test",
            invalid.to_str().unwrap(),
            // Written by hand, without an ETag: the server's check is what is tested here.
            "--force",
        ],
        &token,
    );
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("422") && refused.stderr.contains("(field: records.static.A)"),
        "{}",
        refused.stderr
    );
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.80"]);

    // Nothing listening at admin.listen: the address tried, and where it came from.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("meridian.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let elsewhere = d.join("elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        text.replace(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let down = ctl_env(&["--config", elsewhere.to_str().unwrap(), "status"], &token);
    assert!(!down.ok);
    let expected = format!(
        "cannot reach the admin API at http://127.0.0.1:{port} (admin.listen in {})",
        elsewhere.display()
    );
    assert!(down.stderr.contains(&expected), "{}", down.stderr);
    // Port 0 in admin.listen: the server's own choice, unknown to the client.
    let zero = ctl_env(&["--config", cfg.to_str().unwrap(), "status"], &token);
    assert!(!zero.ok);
    assert!(
        zero.stderr.contains("port 0") && zero.stderr.contains("--admin"),
        "{}",
        zero.stderr
    );
}

/// A minimal HTTPS server answering every request with `{"version":"tls-test"}`, serving the
/// pair in `cert` and `key` (PEM); the head of each request it read is sent on the channel. A
/// refused handshake (the client did not trust it) sends nothing.
fn tls_server(cert: &Path, key: &Path) -> (std::net::SocketAddr, mpsc::Receiver<String>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                continue;
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let body = r#"{"version":"tls-test"}"#;
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (addr, requests)
}

/// A plain TCP listener on loopback that takes every connection and sends what it read (until
/// the head's end, a close, or 2 s) on the channel, answering `{"version":"plain"}`.
fn plain_listener() -> (std::net::SocketAddr, mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, heads) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tcp.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let body = r#"{"version":"plain"}"#;
            let _ = write!(
                tcp,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, heads)
}

/// `--admin https://…`: the server's certificate is checked, against `--ca-file` when given.
/// The server here is a minimal TLS one (the admin API's own TLS is configured elsewhere):
/// what is tested is the client's side.
#[test]
fn https_is_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::etcd::Pki::generate(dir.path(), "admin");
    let (addr, requests) = tls_server(&pki.server_cert, &pki.server_key);
    let url = format!("https://{addr}");
    let token = [("MERIDIAN_TOKEN", "tls-token-0123456789")];

    let trusted = ctl_env(
        &[
            "--admin",
            &url,
            "--ca-file",
            pki.ca.to_str().unwrap(),
            "--json",
            "status",
        ],
        &token,
    );
    assert!(trusted.ok, "{}", trusted.stderr);
    assert!(
        trusted.stdout.contains("\"version\": \"tls-test\""),
        "{}",
        trusted.stdout
    );
    let head = requests
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("get /api/v1/status "), "{head}");
    assert!(
        head.contains("authorization: bearer tls-token-0123456789"),
        "{head}"
    );

    // Without the CA file, the test CA is not among the system's roots: refused, as a TLS
    // failure (not "cannot reach") that names the cause and what to do.
    let untrusted = ctl_env(&["--admin", &url, "--json", "status"], &token);
    assert!(!untrusted.ok, "an untrusted certificate was accepted");
    assert!(
        untrusted
            .stderr
            .contains(&format!("TLS with the admin API at {url} (--admin) failed")),
        "{}",
        untrusted.stderr
    );
    assert!(
        untrusted.stderr.contains("UnknownIssuer")
            && untrusted
                .stderr
                .contains("not signed by the system's trusted CAs")
            && untrusted.stderr.contains("--ca-file"),
        "{}",
        untrusted.stderr
    );
    assert!(
        requests.try_recv().is_err(),
        "a request went to an untrusted server"
    );
}

/// A self-signed certificate made as `openssl req -x509` makes it (basicConstraints CA:TRUE)
/// and given to `--ca-file` is still refused as the server's own certificate (verification
/// stays strict), and the error says why and points at the commands that make a usable pair.
#[test]
fn a_ca_certificate_served_as_the_servers_own_is_explained() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("self.crt"), dir.path().join("self.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (addr, requests) = tls_server(&cert_file, &key_file);
    let url = format!("https://{addr}");

    let run = ctl_env(
        &[
            "--admin",
            &url,
            "--ca-file",
            cert_file.to_str().unwrap(),
            "status",
        ],
        &[("MERIDIAN_TOKEN", "tls-token-0123456789")],
    );
    assert!(!run.ok, "a CA certificate was accepted as the server's");
    assert!(
        run.stderr
            .contains(&format!("TLS with the admin API at {url} (--admin) failed")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert!(
        run.stderr.contains("CaUsedAsEndEntity")
            && run.stderr.contains("itself a CA certificate")
            && run
                .stderr
                .contains("sign the server's certificate with a small CA")
            && run.stderr.contains("docs/api.md, \"Over TLS\""),
        "{}",
        run.stderr
    );
    assert!(requests.try_recv().is_err(), "a request went to a refused server");
}

/// With `admin.tls` in the configuration, `meridian ctl` (without `--admin`) speaks HTTPS to
/// admin.listen.
#[test]
fn admin_tls_in_the_configuration_means_https() {
    let dir = fixture("admin");
    let d = dir.path();
    let pki = common::etcd::Pki::generate(d, "admin");
    let cfg = d.join("meridian.yaml");
    let tls = format!(
        "  tls: {{ cert_file: {}, key_file: {} }}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "  listen: \"127.0.0.1:0\"\n",
            &format!("  listen: \"127.0.0.1:0\"\n{tls}"),
        ),
    )
    .unwrap();
    let server = Server::start(&cfg);
    // The client's copy of the configuration names the port the server bound.
    let client_cfg = d.join("client.yaml");
    std::fs::write(
        &client_cfg,
        format!("admin:\n  listen: \"{}\"\n{tls}", server.admin()),
    )
    .unwrap();
    let run = ctl_env(
        &[
            "--config",
            client_cfg.to_str().unwrap(),
            "--ca-file",
            pki.ca.to_str().unwrap(),
            "--token-file",
            d.join("secrets/admin.token").to_str().unwrap(),
            "status",
        ],
        &[],
    );
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("data centers: 2"), "{}", run.stdout);
}

/// A token is not sent over plain HTTP to an address that is not loopback, unless
/// `--insecure-http` says so. (0.0.0.0 is not loopback as written, yet Linux connects it to
/// the loopback listener here, so the listener would see a token sent.)
#[test]
fn a_token_is_not_sent_in_cleartext_off_loopback() {
    let (addr, heads) = plain_listener();
    let url = format!("http://0.0.0.0:{}", addr.port());
    let token = [("MERIDIAN_TOKEN", "cleartext-token-0123456789")];
    let refused = ctl_env(&["--admin", &url, "--json", "status"], &token);
    assert!(!refused.ok, "the token was sent: {}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains(&format!("not sending the token in cleartext to {url} (--admin)"))
            && refused.stderr.contains("admin.tls")
            && refused.stderr.contains("--insecure-http"),
        "{}",
        refused.stderr
    );

    // Asked for: sent (which shows the listener is reached at that address).
    let sent = ctl_env(&["--admin", &url, "--insecure-http", "--json", "status"], &token);
    assert!(sent.ok, "{}", sent.stderr);
    let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(head.contains("Bearer cleartext-token-0123456789"), "{head}");
    assert!(
        heads.try_recv().is_err(),
        "the refused run reached the listener too"
    );

    // Without a token nothing secret goes: plain HTTP is fine (open reads).
    let open = ctl_env(&["--admin", &url, "--json", "status"], &[]);
    assert!(open.ok, "{}", open.stderr);
    let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!head.to_ascii_lowercase().contains("authorization"), "{head}");
}

/// `meridian ctl` never goes through a proxy, whatever the environment names: the token goes to
/// the API's address only.
#[test]
fn no_proxy_is_used() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let (proxy, seen) = plain_listener();
    let proxy_url = format!("http://{proxy}");
    let mut c = Command::new(BIN);
    c.args(["ctl", "--admin", &format!("http://{}", server.admin())])
        .arg("--token-file")
        .arg(d.join("secrets/admin.token"))
        .arg("status")
        .env_remove("MERIDIAN_TOKEN")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env(var, &proxy_url);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("data centers: 2"), "{stdout}");
    assert!(seen.try_recv().is_err(), "the proxy was used: it got a request");
}

/// `zone put` of a file without an ETag would overwrite whatever was written since: it is
/// refused (saying to `zone get` first, or `--force`); `--json zone get` carries the ETag in the
/// document (`etag`), which `zone put` sends back as If-Match, so a stale JSON copy is refused.
#[test]
fn a_zone_put_needs_an_etag_or_force() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    let admin = format!("http://{}", server.admin());
    let token = d.join("secrets/admin.token");
    let run = |args: &[&str]| {
        let mut all = vec!["--admin", &admin, "--token-file", token.to_str().unwrap()];
        all.extend_from_slice(args);
        ctl_env(&all, &[])
    };
    let yaml = ctl(&server, d, &["zone", "get", "example.test"]);
    let bare: String = yaml.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(!bare.contains("etag"), "{bare}");
    let copy = d.join("bare.yaml");
    std::fs::write(&copy, bare.replace("192.0.2.80", "192.0.2.81")).unwrap();
    let refused = run(&["zone", "put", "example.test", copy.to_str().unwrap()]);
    assert!(!refused.ok, "written without an ETag: {}", refused.stdout);
    assert!(
        refused.stderr.contains("zone get") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.80"]);
    let forced = run(&["zone", "put", "example.test", copy.to_str().unwrap(), "--force"]);
    assert!(forced.ok, "{}", forced.stderr);
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.81"]);

    // --json: the ETag travels in the document.
    let json = ctl(&server, d, &["--json", "zone", "get", "example.test"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(doc["etag"].as_str().is_some_and(|t| t.starts_with('"')), "{doc}");
    let edit = |from: &str, to: &str| {
        let file = d.join("zone.json");
        std::fs::write(&file, json.replace(from, to)).unwrap();
        run(&["zone", "put", "example.test", file.to_str().unwrap()])
    };
    let put = edit("192.0.2.81", "192.0.2.82");
    assert!(put.ok, "{}", put.stderr);
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.82"]);
    let stale = edit("192.0.2.81", "192.0.2.83");
    assert!(!stale.ok, "a stale JSON copy was written: {}", stale.stdout);
    assert!(stale.stderr.contains("412"), "{}", stale.stderr);
    assert_eq!(answers(&server, "static.example.test."), vec!["192.0.2.82"]);
}

/// Every reload is an event of kind edits, from `ctl reload` (the API) and SIGHUP alike:
/// applied (what changed, or nothing) or rejected (how many problems, and the first).
#[test]
fn reloads_are_events() {
    let dir = fixture("admin");
    let d = dir.path();
    let server = Server::start(&d.join("meridian.yaml"));
    ctl(&server, d, &["reload"]);
    let edits = |n: usize| {
        let start = Instant::now();
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&ctl(&server, d, &["--json", "events"])).unwrap();
            let reloads: Vec<serde_json::Value> = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "edits" && e["subject"] == "reload")
                .cloned()
                .collect();
            if reloads.len() >= n {
                return reloads;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{list}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = edits(1);
    assert_eq!(first[0]["new"], "applied", "{first:?}");
    assert!(
        first[0]["reason"].as_str().unwrap().contains("nothing changed"),
        "{first:?}"
    );

    let zone = d.join("zones/example.test.yaml");
    let text = std::fs::read_to_string(&zone).unwrap();
    std::fs::write(&zone, text.replace("192.0.2.80", "192.0.2.300")).unwrap();
    server.signal(1); // SIGHUP
    let second = edits(2);
    assert_eq!(second[1]["new"], "rejected", "{second:?}");
    let reason = second[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("1 problem") && reason.contains("192.0.2.300"),
        "{reason}"
    );

    std::fs::write(&zone, text.replace("192.0.2.80", "192.0.2.90")).unwrap();
    let list = ctl(&server, d, &["events"]);
    ctl(&server, d, &["reload"]);
    let third = edits(3);
    assert_eq!(third[2]["new"], "applied", "{third:?}");
    assert!(
        third[2]["reason"].as_str().unwrap().contains("example.test"),
        "{third:?} {list}"
    );
}

/// `events --follow` whose connection drops opens it again from the last event printed
/// (`Last-Event-ID`), says so on stderr, and prints no event twice. The server here is a
/// minimal one: the first stream is cut in the middle, the second ends cleanly.
#[test]
fn events_follow_resumes_after_a_dropped_connection() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let event = |seq: u64, subject: &str| {
        let data = serde_json::json!({
            "seq": seq, "kind": "overrides", "time": "2026-11-24T06:00:00.000Z",
            "subject": subject, "old": "auto", "new": "drained", "reason": "test",
        });
        let text = format!("event: transition\nid: {seq}\ndata: {data}\n\n");
        format!("{:x}\r\n{text}\r\n", text.len())
    };
    let server = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for (i, body) in [
            // Cut: no last chunk.
            format!(
                "{}{}",
                event(7, "override datacenter a"),
                event(8, "override datacenter b")
            ),
            format!("{}0\r\n\r\n", event(9, "override datacenter c")),
        ]
        .into_iter()
        .enumerate()
        {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            heads.push(String::from_utf8_lossy(&head).to_lowercase());
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{body}"
                )
                .as_bytes(),
            );
            let _ = s.flush();
            if i == 0 {
                std::thread::sleep(Duration::from_millis(100));
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        heads
    });
    let admin = format!("http://{addr}");
    let run = ctl_env(&["--admin", &admin, "events", "--follow"], &[]);
    let heads = server.join().unwrap();
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    for (line, dc) in lines.iter().zip(["a", "b", "c"]) {
        assert!(
            line.contains(&format!("override datacenter {dc}: auto -> drained")),
            "{line}"
        );
    }
    assert!(!heads[0].contains("last-event-id"), "{}", heads[0]);
    assert!(heads[1].contains("last-event-id: 8\r\n"), "{}", heads[1]);
    assert!(run.stderr.contains("reconnecting from event 8"), "{}", run.stderr);
}
