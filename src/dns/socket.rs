//! Opening the DNS sockets: per listen address, one TCP listener and one UDP socket per UDP
//! worker.
//!
//! The UDP sockets of an address share its port with SO_REUSEPORT, so the kernel spreads
//! datagrams over them by their source address and port, and each worker receives from a queue
//! of its own instead of every worker contending for one socket's. The TCP listener is bound
//! without SO_REUSEPORT, right after the first UDP socket: a second server started by mistake
//! on the same address fails on it, instead of silently sharing the UDP traffic.
//!
//! Every IPv6 socket is IPV6_V6ONLY, whatever `net.ipv6.bindv6only` says, so `[::]:P` means
//! IPv6 only, on UDP and TCP alike, and `0.0.0.0:P` beside it gives dual stack. A wildcard UDP
//! socket asks for each datagram's destination address (IP_PKTINFO / IPV6_RECVPKTINFO), so
//! replies leave from the address the query was sent to.

use std::net::{SocketAddr, TcpListener, UdpSocket};

/// Receive buffer asked for each UDP socket: room for bursts while a worker is busy. The kernel
/// caps it at net.core.rmem_max.
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Pending TCP connections the kernel queues before Meridian accepts them.
const TCP_BACKLOG: i32 = 1024;

/// Which socket of a listen address could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        })
    }
}

/// UDP sockets and a TCP listener on the same address.
pub struct Bound {
    /// The address bound (the port chosen by the kernel when 0 was asked).
    pub addr: SocketAddr,
    /// One per UDP worker, all on `addr` (SO_REUSEPORT).
    pub udp: Vec<UdpSocket>,
    pub tcp: TcpListener,
    /// The UDP socket reports each datagram's destination (a wildcard address).
    pub pktinfo: bool,
}

fn new_socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<(UdpSocket, bool)> {
    let socket = new_socket(addr, socket2::Type::DGRAM)?;
    socket.set_reuse_port(true)?;
    // Best effort: a smaller buffer only means drops under heavier bursts.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    let pktinfo = addr.ip().is_unspecified();
    if pktinfo {
        enable_pktinfo(&socket, addr.is_ipv6())?;
    }
    socket.bind(&addr.into())?;
    Ok((socket.into(), pktinfo))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr, socket2::Type::STREAM)?;
    // As the standard library does: a restart may bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    Ok(socket.into())
}

/// Binds `udp_sockets` UDP sockets (at least one) and a TCP listener on `addr`. With port 0,
/// the first UDP socket picks the port and the others take the same one.
pub fn bind(addr: SocketAddr, udp_sockets: usize) -> Result<Bound, (Proto, std::io::Error)> {
    if addr.port() != 0 {
        // TCP first: a second server on a fixed port is refused before any UDP socket of its
        // joins the first's (it would take a share of its queries until it exited).
        let tcp = bind_tcp(addr).map_err(|e| (Proto::Tcp, e))?;
        let (first, pktinfo) = bind_udp(addr).map_err(|e| (Proto::Udp, e))?;
        let mut udp = vec![first];
        while udp.len() < udp_sockets {
            udp.push(bind_udp(addr).map_err(|e| (Proto::Udp, e))?.0);
        }
        return Ok(Bound {
            addr,
            udp,
            tcp,
            pktinfo,
        });
    }
    for _ in 0..16 {
        let (first, pktinfo) = bind_udp(addr).map_err(|e| (Proto::Udp, e))?;
        let local = first.local_addr().map_err(|e| (Proto::Udp, e))?;
        match bind_tcp(local) {
            Ok(tcp) => {
                let mut udp = Vec::with_capacity(udp_sockets.max(1));
                udp.push(first);
                while udp.len() < udp_sockets {
                    udp.push(bind_udp(local).map_err(|e| (Proto::Udp, e))?.0);
                }
                return Ok(Bound {
                    addr: local,
                    udp,
                    tcp,
                    pktinfo,
                });
            }
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err((Proto::Tcp, e)),
        }
    }
    Err((
        Proto::Tcp,
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "no port free for both UDP and TCP"),
    ))
}

/// What to do about a bind error, for the message that reports it. `option` is the command
/// line option that picks another address.
pub fn bind_hint(addr: SocketAddr, error: &std::io::Error, option: &str) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        AddrInUse => {
            let mdns = if addr.port() == 5353 {
                " (5353 is also the mDNS port: avahi-daemon or systemd-resolved may hold it)"
            } else {
                ""
            };
            format!(
                "another process holds this port{mdns}; choose another address or port with {option} ADDR:PORT"
            )
        }
        PermissionDenied => format!(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; or choose another port with {option} ADDR:PORT"
        ),
        AddrNotAvailable => {
            format!("this host has no such address; choose one of its addresses with {option} ADDR:PORT")
        }
        _ => format!("choose another address with {option} ADDR:PORT"),
    }
}

/// Asks the kernel for each datagram's destination address (before bind).
pub fn enable_pktinfo(socket: &socket2::Socket, ipv6: bool) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (level, name) = if ipv6 {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`, which lives across the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, ipv6);
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (every TCP connection, DNS or admin,
/// holds a descriptor; the common soft default of 1024 is easily reached). Returns the limit
/// in force afterwards and the one before.
pub fn raise_open_files_limit() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        // Linux refuses an infinite descriptor limit; its ceiling is fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target > lim.rlim_cur {
        lim.rlim_cur = target;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((lim.rlim_cur, before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_udp_worker_gets_a_socket_on_the_same_port() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(bound.udp.len(), 3);
        for udp in &bound.udp {
            assert_eq!(udp.local_addr().unwrap(), bound.addr);
        }
        assert_eq!(bound.tcp.local_addr().unwrap(), bound.addr);
        assert!(!bound.pktinfo);
    }

    #[test]
    fn the_kernel_spreads_datagrams_over_the_sockets() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        // 64 clients, each on its own port: the kernel hashes senders over the three sockets
        // (all 64 in one socket would happen with probability 3 × (1/3)^64).
        let clients: Vec<UdpSocket> = (0..64).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for c in &clients {
            c.send_to(b"q", bound.addr).unwrap();
        }
        let mut counts = Vec::new();
        for udp in &bound.udp {
            udp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut n = 0;
            let mut buf = [0u8; 16];
            while udp.recv_from(&mut buf).is_ok() {
                n += 1;
            }
            counts.push(n);
        }
        assert_eq!(
            counts.iter().sum::<usize>(),
            64,
            "every datagram arrives once: {counts:?}"
        );
        assert!(
            counts.iter().filter(|&&n| n > 0).count() >= 2,
            "datagrams spread over the sockets: {counts:?}"
        );
    }

    #[test]
    fn a_second_server_on_the_same_address_is_refused() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        // Its UDP sockets would join the first's group (same user, SO_REUSEPORT): the TCP
        // listener, bound without it, is what refuses.
        let Err((proto, e)) = bind(first.addr, 2) else {
            panic!("a second bind of {} succeeded", first.addr)
        };
        assert_eq!((proto, e.kind()), (Proto::Tcp, std::io::ErrorKind::AddrInUse));
    }

    #[test]
    fn a_port_held_by_another_udp_socket_is_refused() {
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let Err((proto, e)) = bind(other.local_addr().unwrap(), 2) else {
            panic!("bound over a port another socket holds")
        };
        assert_eq!((proto, e.kind()), (Proto::Udp, std::io::ErrorKind::AddrInUse));
    }
}
