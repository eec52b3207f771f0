//! TCP listener (RFC 7766): length-prefixed messages, pipelined queries answered in order,
//! an idle timeout, and a bound on open connections.

use super::{Entropy, Transport, handle};
use crate::state::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of one TCP listener.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts and serves connections until `stop` is cancelled; then lets open ones finish
/// their current query.
pub async fn serve(listener: TcpListener, store: Arc<Store>, limits: TcpLimits, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
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
        let (store, stop) = (store.clone(), stop.clone());
        tracker.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &store, limits.idle_timeout, &stop).await {
                tracing::debug!(%peer, error = %e, "tcp connection ended");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    stream: TcpStream,
    store: &Store,
    idle: Duration,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?.ip();
    let mut entropy = Entropy::new();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut msg = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(idle, read.read_u16()) => match r {
                Err(_) => return Ok(()), // idle
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(r) => usize::from(r?),
            },
        };
        let body = &mut msg[..len];
        tokio::time::timeout(idle, read.read_exact(body))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "message not completed in time")
            })??;
        if !handle(
            body,
            Transport::Tcp,
            peer,
            &store.load(),
            entropy.draw(),
            &mut out,
        ) {
            continue;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        write.write_all(&framed).await?;
    }
}
