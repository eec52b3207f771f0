//! UDP listener: blocking worker threads sharing one socket.
//!
//! Plain threads rather than async tasks: a UDP query is one receive, one synchronous answer and
//! one send, so an executor would only add wake-ups. Workers poll the stop flag between reads.

use super::{Entropy, Transport, handle};
use crate::state::Store;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Starts `workers` threads answering on `socket` until `stop` is set.
pub fn spawn(
    socket: UdpSocket,
    workers: usize,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    socket.set_read_timeout(Some(STOP_POLL))?;
    (0..workers)
        .map(|i| {
            let socket = socket.try_clone()?;
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || serve(&socket, &store, &stop))
        })
        .collect()
}

fn serve(socket: &UdpSocket, store: &Store, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(4096);
    let mut entropy = Entropy::new();
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let snap = store.load();
        // A bug must cost one answer, not a worker: no packet may stop the server.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle(
                &buf[..len],
                Transport::Udp,
                peer.ip(),
                &snap,
                entropy.draw(),
                &mut out,
            )
        }));
        let answered = answered.unwrap_or_else(|_| {
            tracing::error!(%peer, packet = ?&buf[..len], "answering a packet panicked; it was dropped");
            false
        });
        if answered && let Err(e) = socket.send_to(&out, peer) {
            tracing::debug!(%peer, error = %e, "udp send failed");
        }
    }
}
