//! TCP listener (RFC 7766): length-prefixed messages, pipelined queries answered in order,
//! an idle timeout on reads and writes, and a bound on open connections.

use super::{Transport, handle};
use crate::answer::Scratch;
use crate::rng::Entropy;
use crate::state::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of one TCP listener.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// Longest wait for the next query, for the rest of a query, and for an answer to be
    /// written (a client that pipelines and never reads holds a connection no longer).
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// The two steps of stopping: `stop` closes the listener and lets each connection finish the
/// answer it is writing; `abort` (the grace period is over) closes every connection at once.
#[derive(Clone, Debug)]
pub struct Stop {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// Accepts and serves connections until `stop` is cancelled; then closes the listener and
/// waits for open connections to finish their current answer (or for `abort`).
pub async fn serve(listener: TcpListener, store: Arc<Store>, limits: TcpLimits, stop: Stop) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let mut burst = Burst::default();
    let mut tick = tokio::time::interval(RELEASE_AFTER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.stop.cancelled() => break,
            _ = tick.tick() => {
                if burst.over(limits.max_connections - slots.available_permits()) {
                    tokio::task::spawn_blocking(crate::memory::release_freed);
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "tcp connection refused: limit reached");
            drop(stream);
            continue;
        };
        burst.open(limits.max_connections - slots.available_permits());
        let (store, stop) = (store.clone(), stop.clone());
        tracker.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &store, limits.idle_timeout, &stop).await {
                tracing::debug!(%peer, error = %e, "tcp connection ended");
            }
        });
    }
    // New clients are refused from here on, not queued in a backlog nobody accepts from.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Connections open together that make a burst: once most of them have closed, what they
/// freed (their tasks, buffers and sockets' bookkeeping, several megabytes for a thousand) is
/// handed back to the system, which glibc would otherwise keep.
const BURST: usize = 64;

/// The most connections open together since memory was last handed back.
#[derive(Debug, Default)]
struct Burst {
    peak: usize,
}

impl Burst {
    /// A connection was accepted; `open` are open now, it included.
    fn open(&mut self, open: usize) {
        self.peak = self.peak.max(open);
    }

    /// Whether a burst is over (`open` now, at most half its peak): the caller hands the
    /// memory back, and the next burst is counted from here.
    fn over(&mut self, open: usize) -> bool {
        let over = self.peak >= BURST && open <= self.peak / 2;
        if over {
            self.peak = open;
        }
        over
    }
}

/// A connection with no query for this long (or for half its idle timeout, when that is
/// shorter) gives back its message buffers: an idle connection holds none. They grow again with
/// the next message.
const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// What waiting for the next query's first bytes ended with.
enum Next {
    /// Bytes are buffered.
    Bytes,
    /// The client closed the connection, or the server is stopping.
    Closed,
    /// Nothing came in the time given.
    Quiet,
}

/// Waits up to `wait` for bytes to read. `fill_buf` is cancel-safe: a wait cut short loses
/// nothing of what the client sent.
async fn next_bytes(
    read: &mut BufReader<OwnedReadHalf>,
    wait: Duration,
    stop: &CancellationToken,
) -> std::io::Result<Next> {
    tokio::select! {
        _ = stop.cancelled() => Ok(Next::Closed),
        r = tokio::time::timeout(wait, read.fill_buf()) => match r {
            Err(_) => Ok(Next::Quiet),
            Ok(Ok([])) => Ok(Next::Closed),
            Ok(Ok(_)) => Ok(Next::Bytes),
            Ok(Err(e)) => Err(e),
        },
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

async fn connection(stream: TcpStream, store: &Store, idle: Duration, stop: &Stop) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?.ip();
    let mut entropy = Entropy::new();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // Each buffer grows to the largest message of this connection, not to 64 KiB up front;
    // then answering allocates nothing, until a quiet spell gives them back.
    let mut msg = Vec::new();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut framed = Vec::new();
    let quiet = RELEASE_AFTER.min(idle / 2);
    loop {
        if read.buffer().is_empty() {
            match next_bytes(&mut read, quiet, &stop.stop).await? {
                Next::Bytes => {}
                Next::Closed => return Ok(()),
                Next::Quiet => {
                    (msg, out, framed, scratch) = Default::default();
                    match next_bytes(&mut read, idle.saturating_sub(quiet), &stop.stop).await? {
                        Next::Bytes => {}
                        Next::Closed | Next::Quiet => return Ok(()), // closed, or idle
                    }
                }
            }
        }
        let len = tokio::select! {
            _ = stop.stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(idle, read.read_u16()) => match r {
                Err(_) => return Ok(()), // idle
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(r) => usize::from(r?),
            },
        };
        msg.resize(len, 0);
        let body = &mut msg[..];
        tokio::select! {
            _ = stop.abort.cancelled() => return Ok(()),
            r = tokio::time::timeout(idle, read.read_exact(body)) => {
                r.map_err(|_| timed_out("message not completed in time"))??;
            }
        }
        if !handle(
            body,
            Transport::Tcp,
            peer,
            &store.load(),
            entropy.draw(),
            &mut scratch,
            &mut out,
        ) {
            continue;
        }
        framed.clear();
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        tokio::select! {
            _ = stop.abort.cancelled() => return Ok(()),
            r = tokio::time::timeout(idle, write.write_all(&framed)) => {
                r.map_err(|_| timed_out("answer not taken in time (the client does not read)"))??;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory is handed back once per burst, when most of its connections have closed; a few
    /// connections coming and going are no burst.
    #[test]
    fn a_burst_is_over_when_half_its_connections_have_closed() {
        let mut b = Burst::default();
        for open in 1..=10 {
            b.open(open);
        }
        assert!(!b.over(0), "ten connections are no burst");
        for open in 1..=100 {
            b.open(open);
        }
        assert!(!b.over(80), "most are still open");
        assert!(b.over(50));
        assert!(!b.over(0), "counted from what was open when it was handed back");
        for open in 1..=70 {
            b.open(open);
        }
        assert!(b.over(3));
    }
}
