//! Weighted orderings: a weighted random permutation (Efraimidis–Spirakis keys), and its sticky
//! form, weighted rendezvous hashing, where each (client subnet, data center) pair draws a fixed
//! key: removing one data center moves only the clients it had.

use std::hash::{Hash, Hasher};

/// A 64-bit mix (SplitMix64 finaliser): turns a seed into a well-spread value.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in (0, 1) from 64 random bits.
pub fn unit(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Stable hash of a key (not randomised per process: sticky answers must survive restarts
/// and agree between nodes).
pub fn stable_hash<T: Hash + ?Sized>(key: &T) -> u64 {
    // FNV-1a feeding a final mix: deterministic across runs and builds.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            mix(self.0)
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    h.finish()
}

/// Orders `items` (with weights) by descending key u^(1/w), where u comes from `draw(item)`.
/// The first item is a weighted choice; the whole order is a weighted draw without replacement.
pub fn order<T: Copy>(items: &[(T, u32)], draw: impl Fn(T) -> u64) -> Vec<T> {
    let mut keyed: Vec<(f64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, &(item, w))| (unit(draw(item)).ln() / f64::from(w.max(1)), i))
        .collect();
    // ln(u)/w is monotone in u^(1/w); larger is first. Ties fall back to list order.
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, i)| items[i].0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_shape_the_first_choice() {
        let items = [("a", 3u32), ("b", 1u32)];
        let mut first_a = 0;
        for seed in 0..10_000u64 {
            if order(&items, |x| mix(seed ^ stable_hash(x)))[0] == "a" {
                first_a += 1;
            }
        }
        // Expect 75% ± a little.
        assert!((7_200..7_800).contains(&first_a), "{first_a}");
    }

    #[test]
    fn rendezvous_moves_only_the_removed_items_clients() {
        let all = [("us", 1u32), ("eu", 1), ("ap", 1)];
        let without_eu = [("us", 1u32), ("ap", 1)];
        for client in 0..2_000u32 {
            let draw = |dc: &str| stable_hash(&(client, dc));
            let before = order(&all, draw)[0];
            let after = order(&without_eu, draw)[0];
            if before != "eu" {
                assert_eq!(before, after, "client {client} moved though its DC stayed");
            }
        }
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash("meridian"), stable_hash("meridian"));
        assert_ne!(stable_hash("a"), stable_hash("b"));
    }
}
