//! UDP listener: blocking worker threads, each on a socket of its own (the address's sockets
//! share its port with SO_REUSEPORT; see [`super::socket`]).
//!
//! Plain threads rather than async tasks: a UDP query is one receive, one synchronous answer and
//! one send, so an executor would only add wake-ups. On Linux each worker receives and sends up
//! to `BATCH` datagrams per system call (recvmmsg/sendmmsg), which is where most of a query's
//! cost goes. Workers poll the stop flag between reads.
//!
//! A socket bound to a wildcard address learns each datagram's destination (IP_PKTINFO /
//! IPV6_PKTINFO control messages) and sends the reply from that address, so a host with several
//! addresses can listen on `0.0.0.0` and clients see the answer come from the address they asked.
//! Every buffer, header and control block is allocated once per worker: a batch allocates
//! nothing.

use super::{Transport, handle};
use crate::answer::Scratch;
use crate::rng::Entropy;
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

/// Starts `workers` threads answering on `sockets` (worker i on socket i modulo their number:
/// one each with SO_REUSEPORT, or all on one) until `stop` is set. `pktinfo`: the sockets
/// report destination addresses (see [`super::socket::enable_pktinfo`]) and replies are sent
/// from them.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    pktinfo: bool,
    workers: usize,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    for socket in &sockets {
        socket.set_read_timeout(Some(STOP_POLL))?;
    }
    (0..workers.max(sockets.len()))
        .map(|i| {
            let socket = sockets[i % sockets.len()].try_clone()?;
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || serve(&socket, pktinfo, &store, &stop))
        })
        .collect()
}

/// Answers one datagram into `out`; false when nothing is to be sent. A bug costs one answer,
/// not a worker: no packet may stop the server.
fn answer(
    packet: &[u8],
    peer: SocketAddr,
    store: &Store,
    entropy: &mut Entropy,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> bool {
    let snap = store.load();
    let e = entropy.draw();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(packet, Transport::Udp, peer.ip(), &snap, e, scratch, out)
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
fn serve(socket: &UdpSocket, _pktinfo: bool, store: &Store, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(MAX_QUERY);
    let mut entropy = Entropy::new();
    let mut scratch = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if idle(&e) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        if answer(&buf[..len], peer, store, &mut entropy, &mut scratch, &mut out)
            && let Err(e) = socket.send_to(&out, peer)
        {
            tracing::debug!(%peer, error = %e, "udp send failed");
        }
    }
}

#[cfg(target_os = "linux")]
fn serve(socket: &UdpSocket, pktinfo: bool, store: &Store, stop: &AtomicBool) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut batch = mmsg::Batch::new(pktinfo);
    let mut entropy = Entropy::new();
    let mut scratch = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.recv(fd) {
            Ok(n) => n,
            Err(e) if idle(&e) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        for i in 0..received {
            let Some((packet, peer, out)) = batch.datagram(i) else {
                continue;
            };
            if answer(packet, peer, store, &mut entropy, &mut scratch, out) {
                batch.reply(i);
            }
        }
        if let Err(e) = batch.send(fd) {
            tracing::debug!(error = %e, "udp send failed");
        }
    }
}

/// recvmmsg/sendmmsg with destination-address control messages, kept to the smallest unsafe
/// surface. Every buffer lives in one `Batch`, allocated when the worker starts.
#[cfg(target_os = "linux")]
mod mmsg {
    use super::{BATCH, MAX_QUERY};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    /// Room for one IP_PKTINFO or IPV6_PKTINFO control message (CMSG_SPACE of the larger,
    /// 40 bytes on 64-bit Linux), aligned as `cmsghdr` must be.
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct Control([u8; 64]);

    /// Where a datagram was sent: the address to reply from, and the interface it came in on.
    #[derive(Clone, Copy)]
    enum Dest {
        V4(libc::in_addr),
        V6(libc::in6_addr, u32),
    }

    pub struct Batch {
        pktinfo: bool,
        bufs: Vec<[u8; MAX_QUERY]>,
        outs: Vec<Vec<u8>>,
        peers: Vec<libc::sockaddr_storage>,
        ctl_in: Vec<Control>,
        ctl_out: Vec<Control>,
        iov_in: Vec<libc::iovec>,
        iov_out: Vec<libc::iovec>,
        hdr_in: Vec<libc::mmsghdr>,
        hdr_out: Vec<libc::mmsghdr>,
        /// Per received datagram: its length, and whether it arrived whole.
        got: Vec<(usize, bool)>,
        dests: Vec<Option<Dest>>,
        /// Indexes of received datagrams that get a reply.
        replies: Vec<usize>,
    }

    impl Batch {
        pub fn new(pktinfo: bool) -> Box<Batch> {
            // SAFETY: these libc structs are plain data; all-zero is a valid value for each.
            let zero_storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            let zero_iov = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            let mut b = Box::new(Batch {
                pktinfo,
                bufs: vec![[0u8; MAX_QUERY]; BATCH],
                outs: (0..BATCH).map(|_| Vec::with_capacity(MAX_QUERY)).collect(),
                peers: vec![zero_storage; BATCH],
                ctl_in: vec![Control([0; 64]); BATCH],
                ctl_out: vec![Control([0; 64]); BATCH],
                iov_in: vec![zero_iov; BATCH],
                iov_out: vec![zero_iov; BATCH],
                hdr_in: vec![zero_hdr; BATCH],
                hdr_out: vec![zero_hdr; BATCH],
                got: Vec::with_capacity(BATCH),
                dests: Vec::with_capacity(BATCH),
                replies: Vec::with_capacity(BATCH),
            });
            // The vectors never grow past their first allocation, so these pointers hold for
            // the batch's life.
            for i in 0..BATCH {
                b.iov_in[i] = libc::iovec {
                    iov_base: b.bufs[i].as_mut_ptr().cast(),
                    iov_len: MAX_QUERY,
                };
                let iov: *mut libc::iovec = &mut b.iov_in[i];
                let peer: *mut libc::sockaddr_storage = &mut b.peers[i];
                let ctl: *mut Control = &mut b.ctl_in[i];
                let h = &mut b.hdr_in[i].msg_hdr;
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                h.msg_name = peer.cast();
                if pktinfo {
                    h.msg_control = ctl.cast();
                }
            }
            b
        }

        /// Receives up to BATCH datagrams, blocking (up to the socket's read timeout) for the
        /// first only. Returns how many arrived.
        pub fn recv(&mut self, fd: i32) -> std::io::Result<usize> {
            for h in &mut self.hdr_in {
                // The kernel rewrites these lengths on every call.
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
                h.msg_hdr.msg_controllen = if self.pktinfo {
                    std::mem::size_of::<Control>()
                } else {
                    0
                };
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: `hdr_in` holds BATCH headers whose buffers (set up in `new`) are valid
            // for writing at the lengths given.
            let got = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdr_in.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if got < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let got = got as usize;
            self.got.clear();
            self.dests.clear();
            self.replies.clear();
            for h in &self.hdr_in[..got] {
                // A datagram longer than MAX_QUERY arrives cut; answering its head would be wrong.
                let whole = h.msg_hdr.msg_flags & libc::MSG_TRUNC == 0;
                self.got.push((h.msg_len as usize, whole));
                self.dests.push(if self.pktinfo {
                    destination(&h.msg_hdr)
                } else {
                    None
                });
            }
            Ok(got)
        }

        /// Datagram `i` of the last receive: its bytes, its sender, and the buffer for its reply.
        /// `None` when it cannot be answered (cut short, or an unknown sender family). Without
        /// a destination address (never seen on a PKTINFO socket) the reply still goes out,
        /// from the address the kernel picks.
        pub fn datagram(&mut self, i: usize) -> Option<(&[u8], SocketAddr, &mut Vec<u8>)> {
            let (len, whole) = self.got[i];
            if !whole {
                return None;
            }
            let peer = to_socket_addr(&self.peers[i])?;
            Some((&self.bufs[i][..len], peer, &mut self.outs[i]))
        }

        /// Marks datagram `i` as answered: its reply goes out with the next `send`.
        pub fn reply(&mut self, i: usize) {
            self.replies.push(i);
        }

        /// Sends the replies marked since the last receive, as few calls as the kernel allows,
        /// each from the address its query was sent to. A datagram the kernel refuses is
        /// skipped (UDP promises nothing more).
        pub fn send(&mut self, fd: i32) -> std::io::Result<()> {
            let n = self.replies.len();
            for (k, &i) in self.replies.iter().enumerate() {
                self.iov_out[k] = libc::iovec {
                    iov_base: self.outs[i].as_ptr() as *mut libc::c_void,
                    iov_len: self.outs[i].len(),
                };
                let iov: *mut libc::iovec = &mut self.iov_out[k];
                let peer: *mut libc::sockaddr_storage = &mut self.peers[i];
                let h = &mut self.hdr_out[k].msg_hdr;
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                h.msg_name = peer.cast();
                h.msg_namelen = namelen(&self.peers[i]);
                h.msg_flags = 0;
                match self.dests[i] {
                    Some(dest) => {
                        let len = write_source(&mut self.ctl_out[k], dest);
                        let h = &mut self.hdr_out[k].msg_hdr;
                        h.msg_control = self.ctl_out[k].0.as_mut_ptr().cast();
                        h.msg_controllen = len;
                    }
                    None => {
                        h.msg_control = std::ptr::null_mut();
                        h.msg_controllen = 0;
                    }
                }
            }
            let mut done = 0;
            while done < n {
                // SAFETY: `hdr_out[done..n]` are initialised headers over live buffers; the
                // kernel only reads through them.
                let sent =
                    unsafe { libc::sendmmsg(fd, self.hdr_out[done..n].as_mut_ptr(), (n - done) as u32, 0) };
                if sent < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    done += 1; // this datagram is refused; go on with the rest
                    if done == n {
                        return Err(e);
                    }
                    continue;
                }
                done += sent as usize;
            }
            Ok(())
        }
    }

    /// The destination address of a received datagram, from its PKTINFO control message.
    fn destination(h: &libc::msghdr) -> Option<Dest> {
        // SAFETY: `h` was filled by recvmmsg: its control buffer holds `msg_controllen` valid
        // bytes of control messages, walked with the kernel's own macros; each payload is read
        // unaligned at the size its type announces.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                        return Some(Dest::V4(p.ipi_addr));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        // The interface matters only for a link-local address (its scope);
                        // for any other, leaving it 0 lets routing choose, as for IPv4.
                        let link_local =
                            p.ipi6_addr.s6_addr[0] == 0xfe && p.ipi6_addr.s6_addr[1] & 0xc0 == 0x80;
                        let ifindex = if link_local { p.ipi6_ifindex } else { 0 };
                        return Some(Dest::V6(p.ipi6_addr, ifindex));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    /// Writes the control message that sets a reply's source address; returns its length.
    fn write_source(ctl: &mut Control, dest: Dest) -> usize {
        ctl.0 = [0; 64];
        let (level, ty, payload) = match dest {
            Dest::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                std::mem::size_of::<libc::in_pktinfo>(),
            ),
            Dest::V6(..) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                std::mem::size_of::<libc::in6_pktinfo>(),
            ),
        };
        // SAFETY: `ctl` is aligned for cmsghdr and larger than CMSG_SPACE(payload) for both
        // payloads; the header and payload are written inside it.
        unsafe {
            let space = libc::CMSG_SPACE(payload as u32) as usize;
            let c = ctl.0.as_mut_ptr().cast::<libc::cmsghdr>();
            (*c).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
            (*c).cmsg_level = level;
            (*c).cmsg_type = ty;
            let data = libc::CMSG_DATA(c);
            match dest {
                // The source is the address asked; the route picks the interface.
                Dest::V4(addr) => std::ptr::write_unaligned(
                    data.cast::<libc::in_pktinfo>(),
                    libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: addr,
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    },
                ),
                // The interface matters for link-local addresses: reply on the one it came in on.
                Dest::V6(addr, ifindex) => std::ptr::write_unaligned(
                    data.cast::<libc::in6_pktinfo>(),
                    libc::in6_pktinfo {
                        ipi6_addr: addr,
                        ipi6_ifindex: ifindex,
                    },
                ),
            }
            space
        }
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
