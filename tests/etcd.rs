//! The etcd client against a real etcd on loopback: conditional transactions (whole or
//! nothing, no lost update), listings with their revision, watches from a revision (replayed,
//! resumed, told of compaction), an unreachable cluster said as such; TLS with a client
//! certificate, and etcd's own authentication with its token renewed when etcd no longer takes
//! it; leases (kept alive, expired, revoked). Needs `etcd` and `etcdctl` (Debian's etcd-server and etcd-client); `.ci/run` installs
//! them.

mod common;

use common::etcd::{EtcdServer, Pki};
use common::have_tool;
use meridian::cluster::etcd::{Auth, Change, Etcd, EtcdError, Expect, Options, Tls, Write};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn put(key: &str, value: &str, expect: Expect) -> Write {
    Write::Put {
        key: key.into(),
        value: value.into(),
        expect,
    }
}

fn client(server: &EtcdServer) -> Etcd {
    Etcd::new(std::slice::from_ref(&server.endpoint), TIMEOUT).unwrap()
}

fn have_etcd() -> bool {
    have_tool("etcd") && have_tool("etcdctl")
}

#[tokio::test]
async fn conditional_transactions_are_whole_or_nothing() {
    if !have_etcd() {
        return;
    }
    let server = EtcdServer::start();
    let etcd = client(&server);
    let r1 = etcd
        .commit(&[
            put("/m/zones/a", "1", Expect::Absent),
            put("/m/zones/b", "1", Expect::Absent),
        ])
        .await
        .unwrap();
    // Creating again: somebody else's key now.
    let e = etcd
        .commit(&[put("/m/zones/a", "2", Expect::Absent)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EtcdError::Conflict { key } if key == b"/m/zones/a"),
        "{e}"
    );
    // An update at the revision read goes through; the same update again (a stale revision)
    // does not, and takes the other key of its transaction down with it.
    let r2 = etcd
        .commit(&[put("/m/zones/a", "2", Expect::Revision(r1))])
        .await
        .unwrap();
    assert!(r2 > r1);
    let e = etcd
        .commit(&[
            put("/m/zones/b", "3", Expect::Revision(r1)),
            put("/m/zones/a", "3", Expect::Revision(r1)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EtcdError::Conflict { key } if key == b"/m/zones/a"),
        "{e}"
    );
    let listing = etcd.list(b"/m/").await.unwrap();
    let values: Vec<(&[u8], &[u8])> = listing
        .entries
        .iter()
        .map(|e| (e.key.as_slice(), e.value.as_slice()))
        .collect();
    assert_eq!(
        values,
        vec![(&b"/m/zones/a"[..], &b"2"[..]), (&b"/m/zones/b"[..], &b"1"[..])]
    );
    assert_eq!(listing.revision, r2);
    // A delete at the right revision; keys outside the prefix are not listed.
    etcd.commit(&[Write::Delete {
        key: "/m/zones/b".into(),
        expect: Expect::Revision(r1),
    }])
    .await
    .unwrap();
    etcd.commit(&[put("/other", "x", Expect::Any)]).await.unwrap();
    let keys: Vec<Vec<u8>> = etcd
        .list(b"/m/")
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, vec![b"/m/zones/a".to_vec()]);
}

#[tokio::test]
async fn watches_replay_from_a_revision_and_follow() {
    if !have_etcd() {
        return;
    }
    let server = EtcdServer::start();
    let etcd = client(&server);
    let first = etcd.commit(&[put("/m/a", "1", Expect::Any)]).await.unwrap();
    etcd.commit(&[put("/m/b", "1", Expect::Any)]).await.unwrap();
    // From the first revision: both changes already made come first, in order.
    let mut w = etcd.watch(b"/m/", first).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let c = tokio::time::timeout(TIMEOUT, w.next()).await.unwrap().unwrap();
        seen.extend(c.changes);
    }
    assert!(matches!(&seen[0], Change::Put(e) if e.key == b"/m/a" && e.mod_revision == first));
    assert!(matches!(&seen[1], Change::Put(e) if e.key == b"/m/b"));
    // Then new changes as they happen, deletes included; other prefixes are not seen.
    etcd.commit(&[put("/n/x", "1", Expect::Any)]).await.unwrap();
    let r = etcd
        .commit(&[Write::Delete {
            key: "/m/a".into(),
            expect: Expect::Any,
        }])
        .await
        .unwrap();
    let c = tokio::time::timeout(TIMEOUT, w.next()).await.unwrap().unwrap();
    assert_eq!(c.revision, r);
    assert_eq!(
        c.changes,
        vec![Change::Delete {
            key: b"/m/a".to_vec(),
            mod_revision: r
        }]
    );
}

#[tokio::test]
async fn an_outage_is_unavailable_and_a_watch_resumes_without_a_gap() {
    if !have_etcd() {
        return;
    }
    let mut server = EtcdServer::start();
    let etcd = client(&server);
    let r1 = etcd.commit(&[put("/m/a", "1", Expect::Any)]).await.unwrap();
    let mut w = etcd.watch(b"/m/", r1 + 1).await.unwrap();
    server.stop();
    // The watch says the connection is gone; calls say etcd is unreachable, within the timeout.
    let e = tokio::time::timeout(3 * TIMEOUT, w.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, EtcdError::Unavailable(_)), "{e}");
    let started = std::time::Instant::now();
    let e = etcd.list(b"/m/").await.unwrap_err();
    assert!(matches!(e, EtcdError::Unavailable(_)), "{e}");
    assert!(started.elapsed() < 2 * TIMEOUT, "took {:?}", started.elapsed());
    // Back: a change made by another client is not missed by a watch resumed from the
    // revision after the last one seen.
    server.restart();
    let other = client(&server);
    let r2 = other.commit(&[put("/m/b", "2", Expect::Any)]).await.unwrap();
    let mut w = etcd.watch(b"/m/", r1 + 1).await.unwrap();
    let c = tokio::time::timeout(TIMEOUT, w.next()).await.unwrap().unwrap();
    assert!(matches!(&c.changes[..], [Change::Put(e)] if e.key == b"/m/b" && e.mod_revision == r2));
}

#[tokio::test]
async fn a_watch_from_compacted_history_says_so() {
    if !have_etcd() {
        return;
    }
    let server = EtcdServer::start();
    let etcd = client(&server);
    let r1 = etcd.commit(&[put("/m/a", "1", Expect::Any)]).await.unwrap();
    let r2 = etcd.commit(&[put("/m/a", "2", Expect::Any)]).await.unwrap();
    server
        .etcdctl(&["compact", &r2.to_string()])
        .expect("etcdctl compact");
    let mut w = etcd.watch(b"/m/", r1).await.unwrap();
    let e = tokio::time::timeout(TIMEOUT, w.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, EtcdError::Compacted { compacted } if compacted == r2),
        "{e}"
    );
}

fn tls_options(server: &EtcdServer, tls: Tls) -> Options {
    Options {
        endpoints: vec![server.endpoint.clone()],
        timeout: TIMEOUT,
        tls: Some(tls),
        auth: None,
    }
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    if !have_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "etcd");
    let server = EtcdServer::builder().tls(&pki).start();
    assert!(server.endpoint.starts_with("https://"));
    let etcd = Etcd::connect(&tls_options(
        &server,
        Tls {
            ca: Some(pki.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.client_key.clone()),
        },
    ))
    .unwrap();
    let r = etcd.commit(&[put("/m/a", "1", Expect::Absent)]).await.unwrap();
    let listing = etcd.list(b"/m/").await.unwrap();
    assert_eq!(listing.revision, r);
    assert_eq!(listing.entries[0].value, b"1");
    let mut w = etcd.watch(b"/m/", r + 1).await.unwrap();
    let r2 = etcd
        .commit(&[put("/m/a", "2", Expect::Revision(r))])
        .await
        .unwrap();
    let c = tokio::time::timeout(TIMEOUT, w.next()).await.unwrap().unwrap();
    assert!(matches!(&c.changes[..], [Change::Put(e)] if e.mod_revision == r2));

    // Without a client certificate, etcd ends the handshake: said as a TLS failure.
    let no_cert = Etcd::connect(&tls_options(
        &server,
        Tls {
            ca: Some(pki.ca.clone()),
            cert: None,
            key: None,
        },
    ))
    .unwrap();
    let e = no_cert.list(b"/m/").await.unwrap_err();
    assert!(
        matches!(&e, EtcdError::Tls(m) if m.contains("certificate")),
        "{e}"
    );
    // Trusting another CA: the member's certificate is not trusted, and that is said.
    let other = Pki::generate(dir.path(), "other");
    let untrusted = Etcd::connect(&tls_options(
        &server,
        Tls {
            ca: Some(other.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.client_key.clone()),
        },
    ))
    .unwrap();
    let e = untrusted.list(b"/m/").await.unwrap_err();
    assert!(
        matches!(&e, EtcdError::Tls(m) if m.contains("certificate")),
        "{e}"
    );
    let e = untrusted.watch(b"/m/", 0).await.err().unwrap();
    assert!(matches!(&e, EtcdError::Tls(_)), "{e}");
    // A file that is not there is named.
    let missing = dir.path().join("missing.pem");
    let e = Etcd::connect(&tls_options(
        &server,
        Tls {
            ca: Some(missing.clone()),
            cert: None,
            key: None,
        },
    ))
    .unwrap_err();
    assert!(
        matches!(&e, EtcdError::File { path, .. } if *path == missing),
        "{e}"
    );
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

const ROOT: &str = "root:r00t-pw";

/// etcd's authentication as Meridian's docs set it up: a root user, and a user `meridian`
/// whose role may read and write under `/m/` only. `etcdctl` runs as root from then on.
fn enable_auth(server: &mut EtcdServer, password: &str) {
    let (root, root_password) = ROOT.split_once(':').unwrap();
    let steps: [&[&str]; 6] = [
        &[
            "--interactive=false",
            "user",
            "add",
            root,
            &format!("--new-user-password={root_password}"),
        ],
        &["role", "add", "meridian"],
        &[
            "role",
            "grant-permission",
            "meridian",
            "--prefix=true",
            "readwrite",
            "/m/",
        ],
        &[
            "--interactive=false",
            "user",
            "add",
            "meridian",
            &format!("--new-user-password={password}"),
        ],
        &["user", "grant-role", "meridian", "meridian"],
        &["auth", "enable"],
    ];
    for step in steps {
        server.etcdctl(step).unwrap_or_else(|| panic!("etcdctl {step:?}"));
    }
    server.etcdctl_as(ROOT);
}

/// Options for user `username` with `password` in a file (with the line break an editor
/// leaves).
fn auth_options(server: &EtcdServer, dir: &Path, username: &str, password: &str) -> Options {
    let password_file = dir.join(format!("{username}-{}.password", password.len()));
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    Options {
        endpoints: vec![server.endpoint.clone()],
        timeout: TIMEOUT,
        tls: None,
        auth: Some(Auth {
            username: username.into(),
            password_file,
        }),
    }
}

/// etcd forgets every token when its authentication is turned off and on again.
fn forget_tokens(server: &EtcdServer) {
    server.etcdctl(&["auth", "disable"]).expect("auth disable");
    server.etcdctl(&["auth", "enable"]).expect("auth enable");
}

#[tokio::test]
async fn a_user_with_a_password_file_and_a_token_renewed() {
    if !have_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = EtcdServer::builder().flag("--bcrypt-cost=4").start();
    // Configured with a user while etcd has authentication off: works without a token, and
    // authenticates once etcd turns it on (etcd then says "user name is empty").
    let etcd = Etcd::connect(&auth_options(&server, dir.path(), "meridian", "m-pw")).unwrap();
    let r = etcd.commit(&[put("/m/a", "1", Expect::Absent)]).await.unwrap();
    enable_auth(&mut server, "m-pw");
    assert!(server.etcdctl(&["get", "/m/a"]).is_some(), "etcdctl runs as root");
    assert_eq!(etcd.list(b"/m/").await.unwrap().revision, r);

    // A token etcd forgot is renewed, for reads, writes and watches alike, and for every
    // clone of the client at once.
    forget_tokens(&server);
    let r = etcd
        .commit(&[put("/m/a", "2", Expect::Revision(r))])
        .await
        .unwrap();
    forget_tokens(&server);
    let mut w = etcd.watch(b"/m/", r).await.unwrap();
    let c = tokio::time::timeout(TIMEOUT, w.next()).await.unwrap().unwrap();
    assert!(matches!(&c.changes[..], [Change::Put(e)] if e.value == b"2"));
    forget_tokens(&server);
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let etcd = etcd.clone();
            tokio::spawn(async move { etcd.list(b"/m/").await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().entries.len(), 1);
    }

    // What the role does not allow is refused as such, and says what to do.
    let e = etcd
        .commit(&[put("/elsewhere", "x", Expect::Any)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EtcdError::Auth(m) if m.contains("`meridian`") && m.contains("grant")),
        "{e}"
    );
    let e = etcd.watch(b"/elsewhere/", 0).await.err().unwrap();
    assert!(matches!(&e, EtcdError::Auth(m) if m.contains("grant")), "{e}");

    // A wrong password, or a user etcd does not know: an authentication error naming the user.
    let wrong = Etcd::connect(&auth_options(&server, dir.path(), "meridian", "not-it")).unwrap();
    let e = wrong.list(b"/m/").await.unwrap_err();
    assert!(
        matches!(&e, EtcdError::Auth(m) if m.contains("`meridian`") && m.contains("password")),
        "{e}"
    );
    let e = wrong.watch(b"/m/", 0).await.err().unwrap();
    assert!(matches!(&e, EtcdError::Auth(_)), "{e}");
    let nobody = Etcd::connect(&auth_options(&server, dir.path(), "nobody", "m-pw")).unwrap();
    let e = nobody.list(b"/m/").await.unwrap_err();
    assert!(matches!(&e, EtcdError::Auth(m) if m.contains("`nobody`")), "{e}");
    assert!(!e.to_string().contains("m-pw"), "{e}");
    // No user at all, to an etcd that wants one.
    let e = client(&server).list(b"/m/").await.unwrap_err();
    assert!(
        matches!(&e, EtcdError::Auth(m) if m.contains("configure a user")),
        "{e}"
    );

    // The password file is read when connecting; one that is not there is named.
    let mut options = auth_options(&server, dir.path(), "meridian", "m-pw");
    let missing = dir.path().join("missing.password");
    options.auth.as_mut().unwrap().password_file = missing.clone();
    let e = Etcd::connect(&options).unwrap_err();
    assert!(
        matches!(&e, EtcdError::File { path, .. } if *path == missing),
        "{e}"
    );
}

#[tokio::test]
async fn tls_and_a_user_together() {
    if !have_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "etcd");
    let mut server = EtcdServer::builder().tls(&pki).flag("--bcrypt-cost=4").start();
    enable_auth(&mut server, "m-pw");
    let tls = Tls {
        ca: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };
    let mut options = auth_options(&server, dir.path(), "meridian", "m-pw");
    options.tls = Some(tls.clone());
    let etcd = Etcd::connect(&options).unwrap();
    let r = etcd.commit(&[put("/m/a", "1", Expect::Absent)]).await.unwrap();
    forget_tokens(&server);
    assert_eq!(etcd.list(b"/m/").await.unwrap().revision, r);
    // The first call authenticates: without the client certificate, that is where the TLS
    // failure shows, and it is said as one.
    options.tls = Some(Tls {
        cert: None,
        key: None,
        ..tls
    });
    let e = Etcd::connect(&options).unwrap().list(b"/m/").await.unwrap_err();
    assert!(
        matches!(&e, EtcdError::Tls(m) if m.contains("client certificate")),
        "{e}"
    );
}

/// A listing larger than gRPC's default 4 MiB message limit reads whole (a node with 1,000
/// zones holds more than that).
#[tokio::test]
async fn a_listing_larger_than_four_mebibytes_reads_whole() {
    if !have_etcd() {
        return;
    }
    let server = EtcdServer::start();
    let etcd = client(&server);
    // etcd takes at most 1.5 MiB per request: five values of 1 MiB, one transaction each.
    let value = "x".repeat(1 << 20);
    for i in 0..5 {
        etcd.commit(&[put(&format!("/big/{i}"), &value, Expect::Any)])
            .await
            .unwrap();
    }
    let listing = etcd.list(b"/big/").await.unwrap();
    assert_eq!(listing.entries.len(), 5);
    let mut watch = etcd.watch(b"/big/", 1).await.unwrap();
    let mut seen = 0;
    while seen < 5 {
        seen += watch.next().await.unwrap().changes.len();
    }
}

/// A key put with a lease lives while the lease is kept alive, and goes when it is revoked or
/// left to expire; a lease that is gone says so.
#[tokio::test]
async fn leased_keys_live_while_their_lease_is_kept_alive() {
    if !have_etcd() {
        return;
    }
    let server = EtcdServer::start();
    let etcd = client(&server);
    let leased = |key: &str, lease| Write::PutLeased {
        key: key.as_bytes().to_vec(),
        value: b"up".to_vec(),
        lease,
        expect: Expect::Any,
    };
    let present = |key: &'static str| {
        let etcd = etcd.clone();
        async move { etcd.get(key.as_bytes()).await.unwrap().is_some() }
    };

    // Kept alive past its time to live: the key stays.
    let lease = etcd.grant(Duration::from_secs(1)).await.unwrap();
    assert!(lease.ttl >= Duration::from_secs(1), "{lease:?}");
    etcd.commit(&[leased("/l/kept", lease.id)]).await.unwrap();
    let until = std::time::Instant::now() + lease.ttl + Duration::from_millis(500);
    while std::time::Instant::now() < until {
        assert!(etcd.keep_alive(lease.id).await.unwrap() > Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(present("/l/kept").await, "kept alive");

    // Left alone: gone once the lease expires (bounded wait), and keep-alive says so.
    let deadline = std::time::Instant::now() + lease.ttl + Duration::from_secs(5);
    while present("/l/kept").await {
        assert!(std::time::Instant::now() < deadline, "the key outlived its lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        etcd.keep_alive(lease.id).await,
        Err(EtcdError::LeaseGone(_))
    ));

    // Revoked: gone at once.
    let lease = etcd.grant(Duration::from_secs(30)).await.unwrap();
    etcd.commit(&[leased("/l/revoked", lease.id)]).await.unwrap();
    assert!(present("/l/revoked").await);
    etcd.revoke(lease.id).await.unwrap();
    assert!(!present("/l/revoked").await);
    assert!(matches!(
        etcd.revoke(lease.id).await,
        Err(EtcdError::LeaseGone(_))
    ));
}
