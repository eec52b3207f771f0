//! The admin listener: an accept loop that bounds connections, times out slow request heads and
//! idle keep-alive connections, and stops on the stop token within a grace period.
//!
//! `axum::serve` has none of this, and every idle client holds a descriptor: 1100 of them under
//! the common limit of 1024 stopped DNS over TCP, the API and zone edits. Here a connection is
//! *idle* while it has no request in flight (it is waiting for a head, or between keep-alive
//! requests). At the limit, a new client takes the place of the connection idle the longest, so
//! the API keeps answering however many clients sit idle; only when every connection is busy
//! does the loop stop accepting (new clients wait in the kernel's backlog) until one frees.

use crate::lock::LockExt;
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (out of descriptors, say), so the loop waits instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How a new connection is served.
#[derive(Clone, Debug)]
pub enum Scheme {
    Http,
    /// HTTPS: a TLS handshake first, within the head timeout.
    Https(Arc<rustls::ServerConfig>),
    /// HTTPS is configured but no certificate could ever be read: closed at once (never served
    /// as plain HTTP instead).
    Refuse,
}

/// The listener's bounds and scheme, read from the running configuration at each accept (so a
/// reload changes them for new connections).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// A request head must be complete within this of the connection opening, or of the first
    /// byte of a later head.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// After the stop token, requests in flight get this long before their connections are
    /// dropped (`dns.shutdown_grace`, the bound of the whole stop). Event streams end on the
    /// token themselves, so this only bounds slow requests and misbehaving clients.
    pub shutdown_grace: Duration,
    pub scheme: Scheme,
}

/// Serves `router` on `listener` until `stop`, within `limits()`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: impl Fn() -> Limits,
    stop: CancellationToken,
) -> io::Result<()> {
    let table = Arc::new(Table::default());
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin API cannot accept a connection; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let limits = limits();
        if matches!(limits.scheme, Scheme::Refuse) {
            tracing::debug!(%peer, "admin connection closed: no certificate to serve");
            continue;
        }
        if !table.make_room(limits.max_connections, &stop).await {
            break;
        }
        let conn = table.insert();
        tracing::debug!(%peer, open = table.len(), "admin connection");
        tasks.spawn(connection(
            stream,
            conn,
            table.clone(),
            router.clone(),
            limits,
            stop.clone(),
        ));
    }
    drop(listener);
    // Idle connections close at once on the token; busy ones finish within the grace period.
    let drained = tokio::time::timeout(limits().shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "admin connections still busy after the grace period; closing them"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

// === the connection table ===

/// One open connection, as the accept loop and its own task see it.
struct Conn {
    id: u64,
    /// Requests whose response is not yet fully sent.
    in_flight: AtomicUsize,
    /// Milliseconds (on the table's clock) since which no request has been in flight.
    idle_since: AtomicU64,
    /// Milliseconds + 1 at which the first byte of a head not yet complete arrived; 0: none.
    head_started: AtomicU64,
    /// Whether a request was ever answered here (keep-alive idleness vs. a silent new client).
    served: AtomicBool,
    /// Asked to close to make room for a new client.
    evict: Notify,
    evicting: AtomicBool,
}

#[derive(Default)]
struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Signalled whenever a connection ends.
    freed: Notify,
    epoch: Clock,
}

/// Milliseconds since the table was made.
struct Clock(Instant);

impl Default for Clock {
    fn default() -> Self {
        Clock(Instant::now())
    }
}

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

impl Table {
    fn len(&self) -> usize {
        self.conns.locked().len()
    }

    fn insert(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.epoch.now()),
            head_started: AtomicU64::new(0),
            served: AtomicBool::new(false),
            evict: Notify::new(),
            evicting: AtomicBool::new(false),
        });
        self.conns.locked().insert(conn.id, conn.clone());
        conn
    }

    fn remove(&self, id: u64) {
        self.conns.locked().remove(&id);
        self.freed.notify_one();
    }

    /// Waits until fewer than `max` connections are open, evicting the connection idle the
    /// longest when there is one. `false` when `stop` came first.
    async fn make_room(&self, max: usize, stop: &CancellationToken) -> bool {
        loop {
            {
                let conns = self.conns.locked();
                if conns.len() < max {
                    return true;
                }
                // One eviction at a time: the next look comes after that connection ended.
                if !conns.values().any(|c| c.evicting.load(Ordering::Relaxed))
                    && let Some(victim) = conns
                        .values()
                        .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0)
                        .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
                {
                    victim.evicting.store(true, Ordering::Relaxed);
                    victim.evict.notify_one();
                }
            }
            // Every connection busy: accept nothing until one ends or turns idle (polled, as
            // turning idle signals nothing).
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = self.freed.notified() => {}
                _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
            }
        }
    }
}

impl Conn {
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// Why this connection should close now, if it should.
    fn expired(&self, now: u64, limits: &Limits) -> Option<&'static str> {
        if !self.idle() {
            return None;
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let head = self.head_started.load(Ordering::Relaxed);
        let since = self.idle_since.load(Ordering::Relaxed);
        if head != 0 {
            (now + 1 >= head + ms(limits.header_timeout)).then_some("request head too slow")
        } else if self.served.load(Ordering::Relaxed) {
            (now >= since + ms(limits.idle_timeout)).then_some("idle keep-alive")
        } else {
            (now >= since + ms(limits.header_timeout)).then_some("no request")
        }
    }
}

// === one connection ===

async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    table: Arc<Table>,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    match limits.scheme.clone() {
        Scheme::Https(config) => {
            // The handshake counts as the start of the first head: bounded by its timeout, and
            // given up for a stop or to make room.
            let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            let handshake = tokio::select! {
                done = tokio::time::timeout(limits.header_timeout, accept) => done,
                _ = stop.cancelled() => { table.remove(conn.id); return; }
                _ = conn.evict.notified() => { table.remove(conn.id); return; }
            };
            match handshake {
                Ok(Ok(tls)) => serve_connection(tls, conn, table, router, limits, stop).await,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "admin TLS handshake failed");
                    table.remove(conn.id);
                }
                Err(_) => {
                    tracing::debug!("admin TLS handshake too slow");
                    table.remove(conn.id);
                }
            }
        }
        Scheme::Http | Scheme::Refuse => serve_connection(stream, conn, table, router, limits, stop).await,
    }
}

async fn serve_connection<S>(
    stream: S,
    conn: Arc<Conn>,
    table: Arc<Table>,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
        table: table.clone(),
    });
    let service = {
        let (conn, table) = (conn.clone(), table.clone());
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::start(conn.clone(), table.clone());
            let router = router.clone();
            async move {
                let resp = tower::ServiceExt::oneshot(router, req)
                    .await
                    .unwrap_or_else(|e: Infallible| match e {});
                // The request counts as in flight until its body is sent (or dropped): an event
                // stream keeps its connection busy, never idle.
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _guard: guard }))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // Head and idle timeouts are kept here (`expired`), with their own clocks.
    http.header_read_timeout(None).keep_alive(true);
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    // Checked often enough that a timeout is overrun by at most a quarter.
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = served.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "admin connection ended");
                }
                break;
            }
            // The connection is not being polled here, so no request can start meanwhile.
            _ = conn.evict.notified() => {
                if conn.idle() {
                    tracing::debug!("idle admin connection closed to make room");
                    break;
                }
                conn.evicting.store(false, Ordering::Relaxed);
            }
            _ = stop.cancelled(), if !stopping => {
                if conn.idle() {
                    break;
                }
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                if let Some(why) = conn.expired(table.epoch.now(), &limits) {
                    tracing::debug!(why, "admin connection closed");
                    break;
                }
            }
        }
    }
    table.remove(conn.id);
}

/// Counts a request in flight from its head until its response body is done.
struct InFlight {
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl InFlight {
    fn start(conn: Arc<Conn>, table: Arc<Table>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        conn.head_started.store(0, Ordering::Relaxed);
        InFlight { conn, table }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.served.store(true, Ordering::Relaxed);
        self.conn
            .idle_since
            .store(self.table.epoch.now(), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds its request's `InFlight` until sent or dropped.
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket (or the TLS stream over it), noting when the first byte of a request head
/// arrives on an idle connection.
struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && this.conn.idle()
            && this.conn.head_started.load(Ordering::Relaxed) == 0
        {
            this.conn
                .head_started
                .store(this.table.epoch.now() + 1, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
