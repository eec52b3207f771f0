//! The answer path allocates nothing in steady state: every kind of answer of
//! `bench/allocs.rs` (static, negative, CNAME chains, wildcards, referrals, every policy, ECS,
//! TCP-sized answers), counted per thread by this binary's global allocator through
//! `dns::handle`, the function the UDP and TCP workers call. The UDP loop and a TCP connection
//! are counted by the benchmark (`cargo bench --bench allocs`).

mod alloc_cases;

use alloc_cases::{Counting, Fixture, thread_allocs};
use meridian::dns::Transport;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counter sees an allocation: a zero below means nothing was allocated, not nothing counted.
#[test]
fn the_counter_counts() {
    let before = thread_allocs();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(16));
    std::hint::black_box(&v);
    assert_eq!(thread_allocs() - before, 1);
}

#[test]
fn every_kind_of_answer_allocates_nothing_once_warm() {
    let snap = Fixture::new().snapshot();
    let mut allocating = Vec::new();
    for k in alloc_cases::kinds() {
        let n = alloc_cases::allocations(&snap, &k, Transport::Udp, 20, 200);
        if n > 0 {
            allocating.push(format!("{}: {n} allocations in 200 queries", k.name));
        }
    }
    assert!(allocating.is_empty(), "{}", allocating.join("\n"));
}

#[test]
fn tcp_answers_allocate_nothing_once_warm() {
    let snap = Fixture::new().snapshot();
    for k in [alloc_cases::kind_tcp_only(), alloc_cases::kinds().remove(0)] {
        let n = alloc_cases::allocations(&snap, &k, Transport::Tcp, 20, 200);
        assert_eq!(n, 0, "{}: {n} allocations in 200 queries", k.name);
    }
}
