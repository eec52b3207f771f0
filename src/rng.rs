//! Randomness and hashing, a leaf every layer may use: a fast per-worker random source, a
//! uniform draw, and a hash of explicit bytes whose values are part of the contract.
//!
//! `hash` feeds bytes the caller chooses (never `std::hash::Hash`, whose output Rust does not
//! promise to keep across versions or platforms) through FNV-1a and a SplitMix64 finaliser. Sticky
//! answers and ETags depend on it: two nodes, or one node before and after an upgrade, must agree.
//! The test at the bottom pins known values, so a change here cannot slip through unnoticed.

use std::net::IpAddr;

/// A per-worker random source for load-balancing choices and probe jitter (xorshift64*): fast,
/// unshared, and seeded from the standard library's per-process random keys.
pub struct Entropy(u64);

impl Entropy {
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
        Entropy(h.finish() | 1)
    }

    pub fn draw(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Default for Entropy {
    fn default() -> Self {
        Self::new()
    }
}

/// A 64-bit mix (SplitMix64 finaliser): turns a seed into a well-spread value.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in (0, 1) from 64 random bits. 52 of them: with 53, the largest draw rounds
/// up to exactly 1.
pub fn unit(bits: u64) -> f64 {
    ((bits >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

/// The hash of `parts`: each part's length (4 octets, big-endian) and octets through FNV-1a,
/// then `mix`. The length prefix keeps `["ab", "c"]` and `["a", "bc"]` apart.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for part in parts {
        feed(&(part.len() as u32).to_be_bytes());
        feed(part);
    }
    mix(h)
}

/// An address as hash input: a family octet (4 or 6), then the address in network order.
pub fn addr_bytes(addr: IpAddr) -> ([u8; 17], usize) {
    let mut out = [0u8; 17];
    match addr {
        IpAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.octets());
            (out, 5)
        }
        IpAddr::V6(a) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&a.octets());
            (out, 17)
        }
    }
}

/// The draw of one (client subnet, data center) pair for sticky answers (weighted rendezvous).
pub fn sticky_draw(subnet: IpAddr, datacenter: &str) -> u64 {
    let (bytes, len) = addr_bytes(subnet);
    hash(&[&bytes[..len], datacenter.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values: if one changes, sticky clients move between data centers and every ETag
    /// changes, on nodes that disagree. Change them only on purpose, and say so in the release.
    #[test]
    fn hash_values_are_pinned() {
        assert_eq!(hash(&[]), PINNED[0]);
        assert_eq!(hash(&[b"meridian"]), PINNED[1]);
        assert_eq!(hash(&[b"ab", b"c"]), PINNED[2]);
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
        assert_eq!(sticky_draw("10.1.2.0".parse().unwrap(), "eu-west"), PINNED[3]);
        assert_eq!(sticky_draw("2001:db8::".parse().unwrap(), "us-east"), PINNED[4]);
    }

    /// Also computed by an independent implementation of the description above (Python).
    const PINNED: [u64; 5] = [
        14_087_677_454_934_409_008,
        7_245_563_589_585_961_124,
        9_137_346_829_509_030_714,
        14_593_083_548_486_087_531,
        9_449_782_372_940_657_606,
    ];

    #[test]
    fn unit_is_inside_the_open_interval() {
        assert!(unit(0) > 0.0 && unit(u64::MAX) < 1.0);
    }
}
