//! The admin API over HTTPS (`admin.tls`): answered to a client that verifies the certificate,
//! refused to plain HTTP, and a certificate replaced on disk served without a restart (a bad
//! replacement keeps the previous one serving).

mod common;

use common::etcd::Pki;
use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const READ: &str = "Bearer read-only-secret-0123456789";
const ADMIN: &str = "Bearer admin-secret-0123456789";

/// A client trusting only the CA in `ca`, opening a new connection for every request (so each
/// one sees the certificate the server serves now).
fn client(ca: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `GET path` with the read token: the status and body, or the client's error.
async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let resp = client
        .get(url)
        .header("Authorization", READ)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.map_err(|e| format!("{e:?}"))?))
}

/// Copies `pki`'s server pair over the files the server reads.
fn install(dir: &Path, pki: &Pki) {
    // Written aside and renamed, as certificate tools do.
    for (from, to) in [
        (&pki.server_cert, "admin.pem"),
        (&pki.server_key, "admin-key.pem"),
    ] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(to)).unwrap();
    }
}

/// The `admin` fixture in `dir` serving `pki`'s pair over HTTPS (`admin.tls`), with `settings`
/// (lines of `admin:`) added; its meridian.yaml.
fn serve_tls(dir: &Path, pki: &Pki, settings: &str) -> PathBuf {
    install(dir, pki);
    let config = dir.join("meridian.yaml");
    let listen = "  listen: \"127.0.0.1:0\"\n";
    let tls = "  tls: { cert_file: admin.pem, key_file: admin-key.pem }\n";
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(listen, &format!("{listen}{settings}{tls}"));
    std::fs::write(&config, text).unwrap();
    config
}

/// Polls `url` through `client` until it answers 200 (at most 5 s): `what` never served.
async fn until_served(client: &reqwest::Client, url: &str, what: &str, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match get(client, url).await {
            Ok((200, _)) => break,
            other => assert!(
                Instant::now() < deadline,
                "{what} never served: {other:?}\n{}",
                server.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 5 s) until the server's log satisfies `done`: `what` never logged.
async fn until_logged(server: &Server, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&server.logs()) {
        assert!(Instant::now() < deadline, "{what}:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_https_and_a_renewed_certificate_without_a_restart() {
    let dir = fixture("admin");
    let (a, b) = (Pki::generate(dir.path(), "a"), Pki::generate(dir.path(), "b"));
    let config = serve_tls(dir.path(), &a, "");
    let server = Server::start(&config);
    let admin = server.admin();
    let base = format!("https://{admin}");
    let status_url = format!("{base}/api/v1/status");
    let (trusts_a, trusts_b) = (client(&a.ca), client(&b.ca));

    // The API, the status page and the metrics answer over TLS, verified against CA a.
    let (status, body) = get(&trusts_a, &status_url).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"zones\""), "{body}");
    let (status, page) = get(&trusts_a, &format!("{base}/")).await.unwrap();
    assert!(status == 200 && page.contains("<html"), "{status} {page}");
    let (status, metrics) = get(&trusts_a, &format!("{base}/metrics")).await.unwrap();
    assert!(status == 200 && metrics.contains("# EOF"), "{status}");
    // A client trusting another CA refuses the certificate.
    let refused = get(&trusts_b, &status_url).await;
    assert!(
        refused.is_err(),
        "CA b must not verify a's certificate: {refused:?}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(admin).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // An event stream over TLS, open across the replacement: it is told of the new certificate.
    let mut follow = trusts_a
        .get(format!("{base}/api/v1/events?follow=1"))
        .header("Authorization", READ)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status().as_u16(), 200);

    // Replaced on disk: the next connection gets b's certificate, without a restart.
    install(dir.path(), &b);
    until_served(&trusts_b, &status_url, "b's certificate", &server).await;
    let old = get(&trusts_a, &status_url).await;
    assert!(old.is_err(), "a's certificate still served: {old:?}");
    let mut streamed = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !streamed.contains("admin tls") {
        assert!(
            Instant::now() < deadline,
            "no event of the new certificate: {streamed}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), follow.chunk())
            .await
            .expect("a chunk within 5 s")
            .unwrap()
            .expect("the stream stays open");
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(streamed.contains("certificate files changed"), "{streamed}");

    // A bad replacement (no certificate in the file) keeps b's serving, and says why.
    std::fs::write(dir.path().join("admin.pem"), "not a certificate\n").unwrap();
    let (status, _) = get(&trusts_b, &status_url).await.unwrap();
    assert_eq!(status, 200);
    let (_, events) = get(&trusts_b, &format!("{base}/api/v1/events")).await.unwrap();
    assert!(
        events.contains("not replaced") && events.contains("no PEM certificate"),
        "{events}"
    );
    assert!(
        server.logs().contains("still serving the previous one"),
        "{}",
        server.logs()
    );
    // Said once for that change, not at every connection.
    for _ in 0..3 {
        assert_eq!(get(&trusts_b, &format!("{base}/healthz")).await.unwrap().0, 200);
    }
    assert_eq!(server.logs().matches("still serving the previous one").count(), 1);
    // A zone edit is not refused over the certificate being renewed…
    let edit = trusts_b
        .put(format!("{base}/api/v1/zones/example.test/records/renewal"))
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/json")
        .body(r#"{"A": ["192.0.2.77"]}"#)
        .send()
        .await
        .unwrap();
    let status = edit.status();
    assert!(status.is_success(), "{status}: {}", edit.text().await.unwrap());
    // …but a reload is, naming the file at fault.
    server.signal(libc::SIGHUP);
    until_logged(&server, "no reload verdict", |l| l.contains("reload rejected")).await;
    let logs = server.logs();
    let rejected = logs.lines().find(|l| l.contains("reload rejected")).unwrap();
    assert!(rejected.contains("admin.tls.cert_file"), "{rejected}");

    // Put right again: served again.
    install(dir.path(), &a);
    let (status, _) = get(&trusts_a, &status_url).await.unwrap();
    assert_eq!(status, 200);

    // A reload that names other files serves them from the next connection.
    std::fs::copy(&b.server_cert, dir.path().join("other.pem")).unwrap();
    std::fs::copy(&b.server_key, dir.path().join("other-key.pem")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "cert_file: admin.pem, key_file: admin-key.pem",
        "cert_file: other.pem, key_file: other-key.pem",
    );
    std::fs::write(&config, text).unwrap();
    server.signal(libc::SIGHUP);
    // (Not "admin API certificate reloaded": the configuration's reload, with its generation.)
    until_logged(&server, "no reload", |logs| {
        logs.lines()
            .any(|l| l.contains("reloaded") && l.contains("generation"))
    })
    .await;
    let (status, _) = get(&trusts_b, &status_url).await.unwrap();
    assert_eq!(status, 200);
    let old = get(&trusts_a, &status_url).await;
    assert!(
        old.is_err(),
        "the files of before the reload still served: {old:?}"
    );
}

/// A client that opens a connection and never starts the handshake is closed within the head
/// timeout, like a silent plain HTTP client.
#[test]
fn a_silent_client_is_closed_within_the_head_timeout() {
    let dir = fixture("admin");
    let pki = Pki::generate(dir.path(), "a");
    let server = Server::start(&serve_tls(dir.path(), &pki, "  header_timeout: 300ms\n"));
    let mut silent = std::net::TcpStream::connect(server.admin()).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(
        matches!(read, Ok(0)),
        "closed, not {read:?} after {:?}",
        started.elapsed()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "closed after {took:?}"
    );
}

/// A renewal that the server first fails to read (here a key not yet written whole; in life, a
/// key written root-only and then handed to its user with `chown`) is served once the file is
/// right, though its modification time, length and inode are those of the failed read: only
/// its change time (and owner or mode, for `chown`/`chmod`) tells it apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_failed_once_is_read_again_when_put_right_in_place() {
    let dir = fixture("admin");
    let (a, b) = (Pki::generate(dir.path(), "a"), Pki::generate(dir.path(), "b"));
    let config = serve_tls(dir.path(), &a, "");
    let server = Server::start(&config);
    let url = format!("https://{}/api/v1/status", server.admin());
    let (trusts_a, trusts_b) = (client(&a.ca), client(&b.ca));
    assert_eq!(get(&trusts_a, &url).await.unwrap().0, 200);

    // b's certificate, with a key file of the right length that cannot be read as a key.
    let key_path = dir.path().join("admin-key.pem");
    let key = std::fs::read(&b.server_key).unwrap();
    std::fs::copy(&b.server_cert, dir.path().join("admin.pem")).unwrap();
    std::fs::write(&key_path, vec![b'x'; key.len()]).unwrap();
    let modified = std::fs::metadata(&key_path).unwrap().modified().unwrap();
    // The failed read, on the next connection: a's certificate still served.
    assert_eq!(get(&trusts_a, &url).await.unwrap().0, 200);
    assert!(
        server.logs().contains("still serving the previous one"),
        "{}",
        server.logs()
    );

    // Put right in place: same inode, same length, the modification time set back.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut file = std::fs::OpenOptions::new().write(true).open(&key_path).unwrap();
    file.write_all(&key).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().modified().unwrap(),
        modified
    );
    until_served(&trusts_b, &url, "the renewed certificate", &server).await;
}
