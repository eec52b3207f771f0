//! The physical limit for `bench/static.sh` and `bench/geo.sh`: a UDP responder that does as
//! little as a DNS server can, on this machine's kernel. One thread, one socket, the same
//! recvmmsg/sendmmsg batches of 32 as Meridian's workers; each reply is the query's header and
//! question followed by one canned A record (192.0.2.1, TTL 300), with anything after the
//! question (an OPT record, ECS) dropped. No zone, no lookup, no checks beyond finding the end
//! of the question: what it costs per query is the kernel's UDP path and the copying.
//!
//!   cargo build --release --example bare-responder
//!   taskset -c 0 target/release/examples/bare-responder 127.0.0.1:15353

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

const BATCH: usize = 32;
const MAX: usize = 4096;
/// The answer: a pointer to the question's name, A IN, TTL 300, 192.0.2.1.
const ANSWER: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1];

/// The reply to `query` in `out`, or `None` for a packet with no whole question.
fn reply(query: &[u8], out: &mut [u8; MAX]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        at += 1 + len;
    }
    let end = at + 1 + 4;
    if end > query.len() || end + ANSWER.len() > MAX {
        return None;
    }
    out[..end].copy_from_slice(&query[..end]);
    out[2] = 0x84 | (query[2] & 0x01); // QR, AA, RD copied
    out[3] = 0;
    out[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    out[end..end + ANSWER.len()].copy_from_slice(&ANSWER);
    Some(end + ANSWER.len())
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:15353".into());
    let socket = UdpSocket::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX]; BATCH];
    let mut outs = vec![[0u8; MAX]; BATCH];
    // SAFETY (all three): plain C structs, all-zero is a valid value.
    let mut peers: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iov_in: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iov_out: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut hdr_in: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut hdr_out: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    for i in 0..BATCH {
        iov_in[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: MAX,
        };
        hdr_in[i].msg_hdr.msg_iov = &mut iov_in[i];
        hdr_in[i].msg_hdr.msg_iovlen = 1;
        hdr_in[i].msg_hdr.msg_name = (&mut peers[i] as *mut libc::sockaddr_storage).cast();
    }
    loop {
        for h in &mut hdr_in {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: the headers point at live buffers of the lengths given.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdr_in.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            continue;
        }
        let mut n = 0;
        for i in 0..got as usize {
            let len = hdr_in[i].msg_len as usize;
            let Some(out_len) = reply(&bufs[i][..len], &mut outs[i]) else {
                continue;
            };
            iov_out[n] = libc::iovec {
                iov_base: outs[i].as_mut_ptr().cast(),
                iov_len: out_len,
            };
            let h = &mut hdr_out[n].msg_hdr;
            h.msg_iov = &mut iov_out[n];
            h.msg_iovlen = 1;
            h.msg_name = (&mut peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = hdr_in[i].msg_hdr.msg_namelen;
            n += 1;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: as above; the kernel only reads through these headers.
            let sent = unsafe { libc::sendmmsg(fd, hdr_out[done..n].as_mut_ptr(), (n - done) as u32, 0) };
            done += if sent <= 0 { 1 } else { sent as usize };
        }
    }
}
