//! UDP listener: blocking worker threads sharing one socket.
//!
//! Plain threads rather than async tasks: a UDP query is one receive, one synchronous answer and
//! one send, so an executor would only add wake-ups. On Linux each worker receives and sends up
//! to `BATCH` datagrams per system call (recvmmsg/sendmmsg), which is where most of a query's
//! cost goes. Workers poll the stop flag between reads.

use super::{Entropy, Transport, handle};
use crate::state::Store;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Datagrams per receive call.
const BATCH: usize = 32;
/// Largest query read; longer datagrams are cut and then fail to parse (FORMERR). EDNS queries
/// are far smaller.
const MAX_QUERY: usize = 4096;

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

/// Answers one datagram into `out`; false when nothing is to be sent. A bug costs one answer,
/// not a worker: no packet may stop the server.
fn answer(packet: &[u8], peer: SocketAddr, store: &Store, entropy: &mut Entropy, out: &mut Vec<u8>) -> bool {
    let snap = store.load();
    let e = entropy.draw();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(packet, Transport::Udp, peer.ip(), &snap, e, out)
    }))
    .unwrap_or_else(|_| {
        tracing::error!(%peer, packet = ?packet, "answering a packet panicked; it was dropped");
        false
    })
}

fn idle(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}

#[cfg(not(target_os = "linux"))]
fn serve(socket: &UdpSocket, store: &Store, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(MAX_QUERY);
    let mut entropy = Entropy::new();
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if idle(&e) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        if answer(&buf[..len], peer, store, &mut entropy, &mut out)
            && let Err(e) = socket.send_to(&out, peer)
        {
            tracing::debug!(%peer, error = %e, "udp send failed");
        }
    }
}

#[cfg(target_os = "linux")]
fn serve(socket: &UdpSocket, store: &Store, stop: &AtomicBool) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(MAX_QUERY)).collect();
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut peers: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut entropy = Entropy::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match mmsg::recv(fd, &mut bufs, &mut peers) {
            Ok(r) => r,
            Err(e) if idle(&e) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let mut replies: Vec<(usize, bool)> = Vec::with_capacity(received.len());
        for (i, &(len, truncated)) in received.iter().enumerate() {
            let Some(peer) = mmsg::to_socket_addr(&peers[i]) else {
                replies.push((i, false));
                continue;
            };
            // A datagram longer than MAX_QUERY arrives cut; answering its head would be wrong.
            let ok = !truncated && answer(&bufs[i][..len], peer, store, &mut entropy, &mut outs[i]);
            replies.push((i, ok));
        }
        let to_send: Vec<usize> = replies.iter().filter(|r| r.1).map(|r| r.0).collect();
        if let Err(e) = mmsg::send(fd, &outs, &peers, &to_send) {
            tracing::debug!(error = %e, "udp send failed");
        }
    }
}

/// recvmmsg/sendmmsg, kept to the smallest unsafe surface.
#[cfg(target_os = "linux")]
mod mmsg {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    /// Receives up to `bufs.len()` datagrams, blocking (up to the socket's read timeout) for the
    /// first only. Returns (length, cut short) per datagram; `peers[i]` holds each sender.
    pub fn recv(
        fd: i32,
        bufs: &mut [[u8; super::MAX_QUERY]],
        peers: &mut [libc::sockaddr_storage],
    ) -> std::io::Result<Vec<(usize, bool)>> {
        let n = bufs.len().min(peers.len());
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid; every pointer set below refers to `iovs` and
        // `peers`, which outlive the call, with lengths matching their buffers.
        let mut hdrs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for i in 0..n {
            hdrs[i].msg_hdr.msg_name = (&mut peers[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs` holds `n` initialised headers whose buffers are valid for writing.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(hdrs[..got as usize]
            .iter()
            .map(|h| (h.msg_len as usize, h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0))
            .collect())
    }

    /// Sends `outs[i]` to `peers[i]` for each i in `which`, as few calls as the kernel allows.
    /// A datagram the kernel refuses is skipped (UDP promises nothing more).
    pub fn send(
        fd: i32,
        outs: &[Vec<u8>],
        peers: &[libc::sockaddr_storage],
        which: &[usize],
    ) -> std::io::Result<()> {
        let mut iovs: Vec<libc::iovec> = which
            .iter()
            .map(|&i| libc::iovec {
                iov_base: outs[i].as_ptr() as *mut libc::c_void,
                iov_len: outs[i].len(),
            })
            .collect();
        // SAFETY: as in `recv`; the kernel only reads through these pointers.
        let mut hdrs: Vec<libc::mmsghdr> = which.iter().map(|_| unsafe { std::mem::zeroed() }).collect();
        for (k, &i) in which.iter().enumerate() {
            hdrs[k].msg_hdr.msg_name =
                (&peers[i] as *const libc::sockaddr_storage as *mut libc::sockaddr_storage).cast();
            hdrs[k].msg_hdr.msg_namelen = namelen(&peers[i]);
            hdrs[k].msg_hdr.msg_iov = &mut iovs[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < hdrs.len() {
            // SAFETY: `hdrs[done..]` are initialised headers over live buffers.
            let sent =
                unsafe { libc::sendmmsg(fd, hdrs[done..].as_mut_ptr(), (hdrs.len() - done) as u32, 0) };
            if sent < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                done += 1; // this datagram is refused; go on with the rest
                if done == hdrs.len() {
                    return Err(e);
                }
                continue;
            }
            done += sent as usize;
        }
        Ok(())
    }

    fn namelen(s: &libc::sockaddr_storage) -> u32 {
        match i32::from(s.ss_family) {
            libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>() as u32,
            _ => std::mem::size_of::<libc::sockaddr_in6>() as u32,
        }
    }

    /// The sender of a received datagram.
    pub fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}
