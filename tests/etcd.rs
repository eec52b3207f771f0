//! The etcd client against a real etcd on loopback: conditional transactions (whole or
//! nothing, no lost update), listings with their revision, watches from a revision (replayed,
//! resumed, told of compaction), and an unreachable cluster said as such. Needs `etcd` and
//! `etcdctl` (Debian's etcd-server and etcd-client); `.ci/run` installs them.

mod common;

use common::etcd::EtcdServer;
use common::have_tool;
use meridian::cluster::etcd::{Change, Etcd, EtcdError, Expect, Write};
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
