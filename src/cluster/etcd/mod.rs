//! The etcd v3 client: the one module that speaks gRPC (tonic) and etcd's protobuf types; the
//! rest of Meridian sees keys, values, revisions and changes.
//!
//! `pb/` is generated from etcd's API definitions (`rpc.proto`, `kv.proto`, `auth.proto`, the
//! copies the `etcd-client` crate carries) by `tonic-prost-build` 0.14, client side only, and
//! checked in: building Meridian needs no `protoc`. To regenerate, run tonic-prost-build's
//! `configure().build_server(false).compile_protos(..)` on those files and copy the three
//! outputs here.
//!
//! What is used: `Range` over a prefix, `Txn` with revision conditions (one transaction per
//! change, so a change is whole or absent and two writers never overwrite each other), and a
//! `Watch` from a revision (resumed after a disconnection; a compacted revision is reported so
//! the caller reads everything again).
//!
//! How to reach etcd is `options`. Members are reached over plain HTTP/2 or TLS (`tls`: tonic's
//! rustls with ring; a CA file or the system's roots, a client certificate for an etcd started
//! with `--client-cert-auth`, and a failed handshake said as such), as an etcd user or none
//! (`session`: the token every request carries, renewed once when etcd no longer takes it).

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    rustdoc::all,
    unreachable_pub,
    dead_code
)]
mod pb {
    pub mod authpb {
        include!("pb/authpb.rs");
    }
    pub mod etcdserverpb {
        include!("pb/etcdserverpb.rs");
    }
    pub mod mvccpb {
        include!("pb/mvccpb.rs");
    }
}

mod options;
mod session;
mod tls;

pub use options::{Auth, Options, Tls};

use pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::etcdserverpb::kv_client::KvClient;
use pb::etcdserverpb::lease_client::LeaseClient;
use pb::etcdserverpb::request_op::Request as Op;
use pb::etcdserverpb::watch_client::WatchClient;
use pb::etcdserverpb::watch_request::RequestUnion;
use pb::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use pb::mvccpb::event::EventType;
use session::{Session, Token};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No member answered (down, unreachable, or no quorum): the cluster's state is unknown.
    #[error("etcd is unreachable: {0}")]
    Unavailable(String),
    /// A condition of a transaction failed: `key` is not at the revision expected (another
    /// writer changed it). Nothing was written.
    #[error("`{}` changed since it was read", String::from_utf8_lossy(.key))]
    Conflict { key: Vec<u8> },
    /// A watch asked for history etcd has compacted away: read everything again from `current`.
    #[error("etcd compacted its history up to revision {compacted}")]
    Compacted { compacted: i64 },
    /// An endpoint is not a URL, or etcd answered what the protocol does not allow.
    #[error("etcd: {0}")]
    Protocol(String),
    /// etcd refused who the client is (no such user, a wrong password, no user while etcd
    /// requires one) or what it asked (the user's roles do not allow it). Says what to do.
    #[error("etcd authentication: {0}")]
    Auth(String),
    /// The TLS handshake with a member failed: its certificate is not trusted (or not for its
    /// address), or it wants a client certificate this client does not have or it does not
    /// trust. Says which, as rustls or the member put it.
    #[error("TLS with etcd failed: {0}")]
    Tls(String),
    /// A file the connection needs (CA, client certificate or key, password) cannot be read
    /// or does not hold what it should.
    #[error("`{}`: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// The lease is gone (it expired, or was revoked), and the keys put with it.
    #[error("lease {0:x} has expired or was revoked")]
    LeaseGone(i64),
}

impl From<tonic::Status> for EtcdError {
    fn from(s: tonic::Status) -> Self {
        session::error(s, None)
    }
}

/// What went wrong under a status tonic made of a failed connection: its message and the
/// causes below it (the TLS alert or certificate error is at the bottom of the chain).
fn transport_error(s: &tonic::Status) -> String {
    let mut text = s.message().to_string();
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        let cause = e.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = e.source();
    }
    text
}

/// A key and its value at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The revision of the last change to this key: what a conditional write expects.
    pub mod_revision: i64,
}

/// Every key under a prefix, as of one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// The store's revision the listing was read at: a watch from `revision + 1` misses nothing.
    pub revision: i64,
}

/// What a conditional write expects of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// The key does not exist.
    Absent,
    /// The key was last changed at this revision.
    Revision(i64),
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        expect: Expect,
    },
    Delete {
        key: Vec<u8>,
        expect: Expect,
    },
    /// A put bound to a lease: the key goes when the lease expires or is revoked.
    PutLeased {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseId,
        expect: Expect,
    },
    /// Writes nothing: the transaction only requires `key` to be as `expect` says (a change
    /// validated against another key's content is written only if that key is unchanged).
    Check {
        key: Vec<u8>,
        expect: Expect,
    },
}

impl Write {
    /// A put of `value`, or a delete of `key` when there is none.
    pub fn put_or_delete(key: Vec<u8>, value: Option<Vec<u8>>, expect: Expect) -> Write {
        match value {
            Some(value) => Write::Put { key, value, expect },
            None => Write::Delete { key, expect },
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. }
            | Write::PutLeased { key, .. }
            | Write::Delete { key, .. }
            | Write::Check { key, .. } => key,
        }
    }
    fn expect(&self) -> Expect {
        match self {
            Write::Put { expect, .. }
            | Write::PutLeased { expect, .. }
            | Write::Delete { expect, .. }
            | Write::Check { expect, .. } => *expect,
        }
    }
}

/// A change a watch saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(Entry),
    Delete { key: Vec<u8>, mod_revision: i64 },
}

/// The changes of one revision (or more), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The store's revision after these changes.
    pub revision: i64,
    pub changes: Vec<Change>,
}

/// A lease's id, as etcd granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// A lease granted: keys put with it (`Write::PutLeased`) live while it is kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// The time to live etcd granted (it may round up what was asked).
    pub ttl: Duration,
}

/// A connection to an etcd cluster (any of its members). Clones share the connection and the
/// authentication token.
#[derive(Clone, Debug)]
pub struct Etcd {
    /// One channel per member, in the order configured.
    channels: Arc<[Channel]>,
    /// The member requests go to, until one fails to reach it: then the next one. (tonic's
    /// balanced channel keeps sending some requests to a member that is down.)
    preferred: Arc<AtomicUsize>,
    /// The user this client authenticates as, if any.
    session: Option<Arc<Session>>,
    /// TLS towards the `https://` members, if any: to say why a connection failed.
    tls: Option<Arc<ClientTls>>,
    timeout: Duration,
}

/// Whether a failed request says its member cannot be reached or did not answer in time (etcd
/// says Unavailable too when the member has no leader): another member may do better.
fn unreachable(s: &tonic::Status) -> bool {
    matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        || (s.code() == tonic::Code::Cancelled && transport_error(s).contains("Timeout expired"))
}

/// Whether a failed request never left this side: its connection could not be made. Such a
/// request is safe to send again (to another member), a conditioned write included; one that
/// failed later may have been applied, and is not sent again.
fn not_sent(s: &tonic::Status) -> bool {
    let text = transport_error(s);
    text.contains("tcp connect error") || text.contains("Connection refused")
}

/// The KV service on `channel`.
fn kv(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel).max_decoding_message_size(MAX_RESPONSE)
}

/// The largest response read: a listing of the whole state is one response, and gRPC's default
/// limit (4 MiB) is less than 1,000 zones (etcd's own clients allow 2 GiB).
const MAX_RESPONSE: usize = i32::MAX as usize;

/// One tonic endpoint per member; `https://` members with TLS as `tls` says.
fn endpoints(
    urls: &[String],
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Vec<Endpoint>, EtcdError> {
    if urls.is_empty() {
        return Err(EtcdError::Protocol("no endpoints".into()));
    }
    let config = tls.map(ClientTls::tonic);
    urls.iter()
        .map(|url| {
            let bad = |err: &dyn std::fmt::Display| EtcdError::Protocol(format!("endpoint `{url}`: {err}"));
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| bad(&e))?
                .connect_timeout(timeout)
                .timeout(timeout)
                // A member that stops answering without closing the connection (stopped, or
                // behind a partition) is noticed by HTTP/2 pings: a watch on it ends, and moves.
                .http2_keep_alive_interval(timeout)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
            match (&config, tls) {
                (Some(config), Some(tls)) if tls.covers(url) => {
                    endpoint.tls_config(config.clone()).map_err(|e| bad(&e))
                }
                _ => Ok(endpoint),
            }
        })
        .collect()
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): to the end of the keyspace.
    vec![0]
}

impl Etcd {
    /// A client for the members at `endpoints` (`http://host:port`) without TLS settings or
    /// authentication; calls go to any member that answers, each within `timeout`. Connects
    /// lazily: an unreachable cluster shows as [`EtcdError::Unavailable`] on the first call.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Etcd, EtcdError> {
        Etcd::connect(&Options {
            endpoints: endpoints.to_vec(),
            timeout,
            tls: None,
            auth: None,
        })
    }

    /// A client as `options` say: TLS towards `https://` members, and etcd's authentication
    /// as a user. The TLS files and the password file are read here (an error names a file
    /// that cannot be read); the connection and the first authentication are made on the first
    /// call, like [`Etcd::new`]'s.
    pub fn connect(options: &Options) -> Result<Etcd, EtcdError> {
        let tls = ClientTls::read(&options.endpoints, options.tls.as_ref(), options.timeout)?;
        let endpoints = endpoints(&options.endpoints, tls.as_ref(), options.timeout)?;
        let password = options.auth.as_ref().map(options::password).transpose()?;
        let channels: Arc<[Channel]> = endpoints.iter().map(|e| e.connect_lazy()).collect();
        // Logins go to any member (and are asked again when one cannot be reached).
        let session = options.auth.as_ref().zip(password).map(|(auth, password)| {
            let any = Channel::balance_list(endpoints.into_iter());
            Arc::new(Session::new(auth.username.clone(), password, any))
        });
        Ok(Etcd {
            channels,
            preferred: Arc::new(AtomicUsize::new(0)),
            session,
            tls: tls.map(Arc::new),
            timeout: options.timeout,
        })
    }

    /// The member to send to now.
    fn member(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.channels.len()
    }

    /// Member `i` could not be reached (or did not answer in time): the next one is preferred,
    /// unless another request moved on already.
    fn pass_over(&self, i: usize) {
        let next = (i + 1) % self.channels.len();
        let _ = self
            .preferred
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn watcher(&self, i: usize) -> WatchClient<Channel> {
        WatchClient::new(self.channels[i].clone()).max_decoding_message_size(MAX_RESPONSE)
    }

    /// The token for the next request: none without a user; with one, the current token, or
    /// a new one if `refused` (a token etcd did not take) is still current.
    async fn token(&self, refused: Option<u64>) -> Result<Token, EtcdError> {
        match &self.session {
            Some(session) => match session.token(refused).await {
                Ok(token) => Ok(token),
                Err(s) => Err(self.failure(s).await),
            },
            None => Ok(Token::default()),
        }
    }

    /// The error for a failed request: a refusal names the user when there is one; a
    /// connection to a TLS member that failed in TLS, or closed as it began, says why TLS
    /// failed.
    async fn failure(&self, s: tonic::Status) -> EtcdError {
        if let Some(tls) = &self.tls {
            if let Some(said) = tls::failure_in(&s) {
                return EtcdError::Tls(said);
            }
            // A status with a cause is this side's (etcd's own carry none): the connection
            // failed or closed. Unless it timed out (trying again would too), try TLS alone.
            let text = transport_error(&s);
            let timed_out = text.contains("timed out") || text.contains("Timeout expired");
            if std::error::Error::source(&s).is_some()
                && !timed_out
                && let Some(said) = tls.diagnose().await
            {
                return EtcdError::Tls(said);
            }
        }
        session::error(s, self.session.as_deref().map(Session::username))
    }

    /// Like `token`, asking again (the login goes to any member) when a member could not be
    /// reached, as often as there are members.
    async fn token_from_any(&self, refused: Option<u64>) -> Result<Token, EtcdError> {
        let mut tries = 1;
        loop {
            match self.token(refused).await {
                Err(EtcdError::Unavailable(_)) if tries < self.channels.len() => tries += 1,
                other => return other,
            }
        }
    }

    /// Sends `message` with the token to the preferred member; if etcd no longer takes the
    /// token, authenticates again and sends it once more. A member that cannot be reached is
    /// passed over, and the message sent to the next one when that is safe: always for a
    /// `read`, for a write only when it never left (a write that may have been applied is not
    /// sent twice).
    async fn call<M, R, Fut>(
        &self,
        message: M,
        read: bool,
        send: impl Fn(Channel, tonic::Request<M>) -> Fut,
    ) -> Result<R, EtcdError>
    where
        M: Clone,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut refused = None;
        let mut tries = 0;
        // Another member is tried only within the timeout: with most members gone (quorum
        // lost), a request fails in about one timeout, not one per member.
        let started = std::time::Instant::now();
        loop {
            let token = self.token_from_any(refused).await?;
            tries += 1;
            let member = self.member();
            match send(self.channels[member].clone(), token.request(message.clone())).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if refused.is_none() && self.session.is_some() && session::stale_token(&s) => {
                    refused = Some(token.generation());
                }
                Err(s) if unreachable(&s) => {
                    self.pass_over(member);
                    let in_time = started.elapsed() < self.timeout;
                    if tries >= self.channels.len() || !in_time || !(read || not_sent(&s)) {
                        return Err(self.failure(s).await);
                    }
                }
                Err(s) => return Err(self.failure(s).await),
            }
        }
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, EtcdError> {
        self.call(request, true, |ch, r| async move { kv(ch).range(r).await })
            .await
    }

    /// Every key under `prefix`, with the revision it was read at.
    pub async fn list(&self, prefix: &[u8]) -> Result<Listing, EtcdError> {
        self.listing(prefix, false).await
    }

    /// Every key under `prefix` and its `mod_revision`, without values (cheap to compare with
    /// what a node has seen).
    pub async fn list_keys(&self, prefix: &[u8]) -> Result<Listing, EtcdError> {
        self.listing(prefix, true).await
    }

    async fn listing(&self, prefix: &[u8], keys_only: bool) -> Result<Listing, EtcdError> {
        let request = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            keys_only,
            ..RangeRequest::default()
        };
        let r = self.range(request).await?;
        let revision = r.header.map(|h| h.revision).unwrap_or_default();
        let entries = r
            .kvs
            .into_iter()
            .map(|kv| Entry {
                key: kv.key,
                value: kv.value,
                mod_revision: kv.mod_revision,
            })
            .collect();
        Ok(Listing { entries, revision })
    }

    /// Applies every write in one transaction, if every key is as its write expects; returns
    /// the revision the writes made. When a key is not, nothing is written and the error names
    /// the first such key.
    pub async fn commit(&self, writes: &[Write]) -> Result<i64, EtcdError> {
        let compare = writes
            .iter()
            .filter_map(|w| {
                let (target, union) = match w.expect() {
                    Expect::Any => return None,
                    // A key that does not exist was created at revision 0.
                    Expect::Absent => (CompareTarget::Create, TargetUnion::CreateRevision(0)),
                    Expect::Revision(r) => (CompareTarget::Mod, TargetUnion::ModRevision(r)),
                };
                Some(Compare {
                    result: CompareResult::Equal as i32,
                    target: target as i32,
                    key: w.key().to_vec(),
                    target_union: Some(union),
                    ..Compare::default()
                })
            })
            .collect();
        let success = writes
            .iter()
            .filter_map(|w| {
                let op = match w {
                    Write::Put { key, value, .. } => Op::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..PutRequest::default()
                    }),
                    Write::PutLeased {
                        key, value, lease, ..
                    } => Op::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        lease: lease.0,
                        ..PutRequest::default()
                    }),
                    Write::Delete { key, .. } => Op::RequestDeleteRange(DeleteRangeRequest {
                        key: key.clone(),
                        ..DeleteRangeRequest::default()
                    }),
                    Write::Check { .. } => return None,
                };
                Some(RequestOp { request: Some(op) })
            })
            .collect();
        let request = TxnRequest {
            compare,
            success,
            failure: Vec::new(),
        };
        let r = self
            .call(request, false, |ch, r| async move { kv(ch).txn(r).await })
            .await?;
        if r.succeeded {
            return Ok(r.header.map(|h| h.revision).unwrap_or_default());
        }
        // Which key? Read them again: the first whose state is not as expected.
        for w in writes {
            let now = self.get(w.key()).await?;
            let holds = match (w.expect(), &now) {
                (Expect::Any, _) => true,
                (Expect::Absent, None) => true,
                (Expect::Revision(r), Some(e)) => e.mod_revision == r,
                _ => false,
            };
            if !holds {
                return Err(EtcdError::Conflict {
                    key: w.key().to_vec(),
                });
            }
        }
        // Changed and changed back between the two reads: still a conflict.
        let key = writes.first().map(|w| w.key().to_vec()).unwrap_or_default();
        Err(EtcdError::Conflict { key })
    }

    /// One key, if it exists.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Entry>, EtcdError> {
        let request = RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        };
        let r = self.range(request).await?;
        Ok(r.kvs.into_iter().next().map(|kv| Entry {
            key: kv.key,
            value: kv.value,
            mod_revision: kv.mod_revision,
        }))
    }

    /// A new lease that lives `ttl` (whole seconds, at least one) unless kept alive.
    pub async fn grant(&self, ttl: Duration) -> Result<Lease, EtcdError> {
        let request = LeaseGrantRequest {
            ttl: ttl.as_secs().max(1) as i64,
            id: 0,
        };
        let r = self
            .call(request, false, |ch, r| async move {
                LeaseClient::new(ch).lease_grant(r).await
            })
            .await?;
        if !r.error.is_empty() {
            return Err(EtcdError::Protocol(format!("lease not granted: {}", r.error)));
        }
        Ok(Lease {
            id: LeaseId(r.id),
            ttl: Duration::from_secs(r.ttl.max(0) as u64),
        })
    }

    /// Renews `lease` once; the time it has to live now. A lease etcd no longer has (it
    /// expired, or was revoked) is [`EtcdError::LeaseGone`]: its keys are gone with it.
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, EtcdError> {
        let request = LeaseKeepAliveRequest { id: lease.0 };
        let timeout = self.timeout;
        let ttl = self
            .call(request, true, |ch, r| async move {
                let (meta, extensions, message) = r.into_parts();
                let once = tokio_stream::once(message);
                let request = tonic::Request::from_parts(meta, extensions, once);
                let mut stream = LeaseClient::new(ch).lease_keep_alive(request).await?.into_inner();
                let answer = tokio::time::timeout(timeout, stream.message())
                    .await
                    .map_err(|_| tonic::Status::deadline_exceeded("no keep-alive answer"))??;
                let answer = answer.ok_or_else(|| tonic::Status::unavailable("keep-alive stream ended"))?;
                Ok(tonic::Response::new(answer.ttl))
            })
            .await?;
        if ttl <= 0 {
            return Err(EtcdError::LeaseGone(lease.0));
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    /// Ends `lease` at once: its keys are deleted.
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        let request = LeaseRevokeRequest { id: lease.0 };
        match self
            .call(request, false, |ch, r| async move {
                LeaseClient::new(ch).lease_revoke(r).await
            })
            .await
        {
            Err(EtcdError::Protocol(m)) if m.contains("requested lease not found") => {
                Err(EtcdError::LeaseGone(lease.0))
            }
            other => other.map(drop),
        }
    }

    /// The latest `mod_revision` of any key under `prefix` (`None`: no key): the revision a
    /// watch of the prefix has delivered everything up to once it has delivered this one.
    pub async fn latest_change(&self, prefix: &[u8]) -> Result<Option<i64>, EtcdError> {
        use pb::etcdserverpb::range_request::{SortOrder, SortTarget};
        let request = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Mod as i32,
            keys_only: true,
            ..RangeRequest::default()
        };
        let r = self.range(request).await?;
        Ok(r.kvs.first().map(|kv| kv.mod_revision))
    }

    /// Watches every key under `prefix` from revision `from` (inclusive): changes already
    /// made since `from` come first, then new ones as they happen. Returns once etcd has
    /// created the watch (within the timeout), so a watch etcd refuses fails here.
    pub async fn watch(&self, prefix: &[u8], from: i64) -> Result<Watch, EtcdError> {
        let create = WatchCreateRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            start_revision: from,
            ..WatchCreateRequest::default()
        };
        let mut refused = None;
        let mut tries = 0;
        loop {
            tries += 1;
            // The token goes with the opening of the stream: etcd checks it as it creates the
            // watch, and a running watch does not need it again.
            let token = self.token_from_any(refused).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let request = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create.clone())),
            };
            tx.send(request)
                .await
                .map_err(|_| EtcdError::Protocol("watch request not sent".into()))?;
            let member = self.member();
            let opening = async {
                let requests = token.request(tokio_stream::wrappers::ReceiverStream::new(rx));
                let mut stream = self.watcher(member).watch(requests).await?.into_inner();
                let created = stream.message().await?;
                Ok::<_, tonic::Status>((stream, created))
            };
            let (stream, created) = match tokio::time::timeout(self.timeout, opening).await {
                Err(_) => {
                    self.pass_over(member);
                    if tries < self.channels.len() {
                        continue;
                    }
                    return Err(EtcdError::Unavailable(format!(
                        "etcd did not create the watch within {:?}",
                        self.timeout
                    )));
                }
                Ok(Err(s)) if refused.is_none() && self.session.is_some() && session::stale_token(&s) => {
                    refused = Some(token.generation());
                    continue;
                }
                // Opening a watch changes nothing: a member that cannot be reached is left
                // for another.
                Ok(Err(s)) if unreachable(&s) => {
                    self.pass_over(member);
                    if tries >= self.channels.len() {
                        return Err(self.failure(s).await);
                    }
                    continue;
                }
                Ok(Err(s)) => return Err(self.failure(s).await),
                Ok(Ok(opened)) => opened,
            };
            let Some(created) = created else {
                return Err(EtcdError::Unavailable("the watch stream ended".into()));
            };
            if created.canceled {
                if created.compact_revision > 0 {
                    return Err(EtcdError::Compacted {
                        compacted: created.compact_revision,
                    });
                }
                if let Some(refusal) = session::watch_refusal(&created.cancel_reason) {
                    // Older etcd refuses a stale token and a missing permission alike: a new
                    // token tells them apart.
                    if refused.is_none() && self.session.is_some() {
                        refused = Some(token.generation());
                        continue;
                    }
                    return Err(self.failure(refusal).await);
                }
                return Err(EtcdError::Protocol(format!(
                    "watch canceled: {}",
                    created.cancel_reason
                )));
            }
            if !created.created {
                return Err(EtcdError::Protocol(
                    "etcd answered a watch request without creating the watch".into(),
                ));
            }
            return Ok(Watch {
                stream,
                _requests: tx,
            });
        }
    }
}

/// A running watch. Dropping it cancels it.
pub struct Watch {
    stream: tonic::Streaming<pb::etcdserverpb::WatchResponse>,
    /// Kept open: etcd ends a watch whose request stream closes.
    _requests: tokio::sync::mpsc::Sender<WatchRequest>,
}

impl Watch {
    /// The next changes; `Err(Unavailable)` when the connection is lost (watch again from the
    /// revision after the last one seen), `Err(Compacted)` when that history is gone.
    pub async fn next(&mut self) -> Result<Changes, EtcdError> {
        loop {
            // However the stream broke, the remedy is one: watch again from the next revision.
            let message = self.stream.message().await.map_err(|s| match s.code() {
                tonic::Code::InvalidArgument
                | tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated
                | tonic::Code::FailedPrecondition => EtcdError::from(s),
                _ => EtcdError::Unavailable(s.to_string()),
            })?;
            let Some(r) = message else {
                return Err(EtcdError::Unavailable("the watch stream ended".into()));
            };
            if r.compact_revision > 0 {
                return Err(EtcdError::Compacted {
                    compacted: r.compact_revision,
                });
            }
            if r.canceled {
                return Err(EtcdError::Protocol(format!(
                    "watch canceled: {}",
                    r.cancel_reason
                )));
            }
            if r.events.is_empty() {
                // The creation notice, or a progress notification.
                continue;
            }
            let revision = r.header.map(|h| h.revision).unwrap_or_default();
            let changes = r
                .events
                .into_iter()
                .filter_map(|e| {
                    let kv = e.kv?;
                    Some(if e.r#type == EventType::Delete as i32 {
                        Change::Delete {
                            key: kv.key,
                            mod_revision: kv.mod_revision,
                        }
                    } else {
                        Change::Put(Entry {
                            key: kv.key,
                            value: kv.value,
                            mod_revision: kv.mod_revision,
                        })
                    })
                })
                .collect();
            return Ok(Changes { revision, changes });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_cover_exactly_the_prefix() {
        assert_eq!(prefix_end(b"/meridian/"), b"/meridian0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
