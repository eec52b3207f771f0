//! Heap allocations per query, counted by a counting global allocator, for every kind of answer.
//!
//! `cargo bench --bench allocs` (or `bench/allocs.sh`). Each kind is answered through the
//! function the server's UDP and TCP workers call (`dns::handle`) over a snapshot built from a
//! configuration with every policy and a GeoIP database built by `geo::build`; then the UDP loop
//! itself (`dns::udp::spawn`: recvmmsg, answer, sendmmsg) and a TCP connection
//! (`dns::tcp::serve`) are driven over loopback. Warm-up first: what a worker or a connection
//! allocates once (buffers at start or at accept) is not counted. Exits non-zero when anything
//! allocates in steady state.
//!
//! `ALLOCS_N` sets the queries counted per kind (default 10,000).

#[path = "../tests/alloc_cases/mod.rs"]
mod cases;

use cases::{ALL_ALLOCS, Counting, Fixture, Kind};
use meridian::dns::Transport;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n: usize = std::env::var("ALLOCS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let fixture = Fixture::new();
    let snap = fixture.snapshot();
    let kinds = cases::kinds();
    let mut failed = Vec::new();

    println!(
        "Heap allocations per query (counting global allocator), {n} queries per kind after 1,000 of warm-up"
    );
    println!();
    println!("| kind | through | allocations / query |");
    println!("|---|---|---:|");
    let mut row = |kind: &str, through: &str, allocs: u64, per: usize| {
        println!("| {kind} | {through} | {} |", per_query(allocs, per));
        if allocs > 0 {
            failed.push(format!("{kind} ({through})"));
        }
    };
    for k in &kinds {
        let a = cases::allocations(&snap, k, Transport::Udp, 1_000, n);
        row(k.name, "dns::handle (UDP)", a, n);
    }
    let tcp_big = cases::kind_tcp_only();
    for k in kinds.iter().take(1).chain([&tcp_big]) {
        let a = cases::allocations(&snap, k, Transport::Tcp, 1_000, n);
        row(k.name, "dns::handle (TCP)", a, n);
    }

    let (allocs, queries) = udp_loop(&fixture, &kinds, n, "127.0.0.1:0");
    row(
        "UDP loop, every kind in turn",
        "dns::udp workers",
        allocs,
        queries,
    );
    let (allocs, queries) = udp_loop(&fixture, &kinds, n, "0.0.0.0:0");
    row(
        "UDP loop on 0.0.0.0 (replies sourced by PKTINFO)",
        "dns::udp workers",
        allocs,
        queries,
    );
    let (allocs, queries) = tcp_connection(&fixture, &kinds, n);
    row(
        "TCP connection, every kind in turn",
        "dns::tcp::serve",
        allocs,
        queries,
    );

    println!();
    if failed.is_empty() {
        println!("no allocation in steady state");
    } else {
        eprintln!("allocating in steady state: {}", failed.join(", "));
        std::process::exit(1);
    }
}

fn per_query(allocs: u64, queries: usize) -> String {
    if allocs == 0 {
        "0".into()
    } else {
        format!("{:.2}", allocs as f64 / queries as f64)
    }
}

/// Allocations by any thread while `f` runs.
fn counted(f: impl FnOnce()) -> u64 {
    let before = ALL_ALLOCS.load(Ordering::SeqCst);
    f();
    ALL_ALLOCS.load(Ordering::SeqCst) - before
}

/// The UDP workers (one thread, recvmmsg/sendmmsg) on `listen`, bound as the server binds it
/// (`dns::socket::bind`: a wildcard address gets PKTINFO), answering every kind in turn, 32
/// queries in flight. Counts every thread's allocations; the client here allocates nothing in
/// its loop. Returns (allocations, queries).
fn udp_loop(fixture: &Fixture, kinds: &[Kind], n: usize, listen: &str) -> (u64, usize) {
    let store = Arc::new(meridian::state::Store::new(
        fixture.config(),
        Default::default(),
        Default::default(),
    ));
    let bound = meridian::dns::socket::bind(listen.parse().unwrap(), 1)
        .unwrap_or_else(|(_, e)| panic!("bind {listen}: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], bound.addr.port()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = meridian::dns::udp::spawn(bound.udp, bound.pktinfo, 1, store, stop.clone()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut round = |rounds: usize| {
        for r in 0..rounds {
            for i in 0..32 {
                let k = &kinds[(r * 32 + i) % kinds.len()];
                client.send_to(&k.packet, addr).unwrap();
            }
            for _ in 0..32 {
                client.recv_from(&mut buf).expect("a UDP reply");
            }
        }
    };
    round(100);
    let rounds = n.div_ceil(32);
    let allocs = counted(|| round(rounds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    (allocs, rounds * 32)
}

/// One TCP connection to `dns::tcp::serve` (a tokio runtime of one thread) answering every kind
/// in turn, one query at a time. Counts every thread's allocations (the runtime's included);
/// the client allocates nothing in its loop. The connection's task and buffers are made at
/// accept, before counting starts. Returns (allocations, queries).
fn tcp_connection(fixture: &Fixture, kinds: &[Kind], n: usize) -> (u64, usize) {
    let store = Arc::new(meridian::state::Store::new(
        fixture.config(),
        Default::default(),
        Default::default(),
    ));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr: SocketAddr = std_listener.local_addr().unwrap();
    let stop = meridian::dns::tcp::Stop {
        stop: Default::default(),
        abort: Default::default(),
    };
    let server_stop = stop.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let limits = meridian::dns::tcp::TcpLimits {
                idle_timeout: Duration::from_secs(10),
                max_connections: 4,
            };
            meridian::dns::tcp::serve(listener, store, limits, server_stop).await;
        });
    });
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_nodelay(true).unwrap();
    let mut framed: Vec<Vec<u8>> = kinds
        .iter()
        .map(|k| {
            let mut f = (k.packet.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(&k.packet);
            f
        })
        .collect();
    framed.push({
        let k = cases::kind_tcp_only();
        let mut f = (k.packet.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&k.packet);
        f
    });
    let mut buf = vec![0u8; 65_536];
    let mut ask = |queries: usize| {
        for i in 0..queries {
            conn.write_all(&framed[i % framed.len()]).unwrap();
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).unwrap();
            conn.read_exact(&mut buf[..usize::from(u16::from_be_bytes(len))])
                .unwrap();
        }
    };
    ask(1_000);
    let allocs = counted(|| ask(n));
    drop(conn);
    stop.stop.cancel();
    server.join().unwrap();
    (allocs, n)
}
