//! Weighted orderings: a weighted random permutation (Efraimidis–Spirakis keys), and its sticky
//! form, weighted rendezvous hashing, where each (client subnet, data center) pair draws a fixed
//! key: removing one data center moves only the clients it had.
//!
//! Only the first `k` places of the order are kept, in a fixed-capacity array: the answer path
//! draws without allocating, whatever the number of items offered.

use crate::rng::unit;
use arrayvec::ArrayVec;

/// The first `k` (at most `N`) places of a weighted order, built as items are offered: each item
/// of weight w draws the key u^(1/w), u from its random bits, and larger keys come first. The
/// first place is a weighted choice; the whole order is a weighted draw without replacement.
pub struct Top<T, const N: usize> {
    /// (ln(u)/w, item), by descending key; ln(u)/w is monotone in u^(1/w).
    keyed: ArrayVec<(f64, T), N>,
    k: usize,
}

impl<T: Copy, const N: usize> Top<T, N> {
    /// Keeps the first `k` places (no more than `N`).
    pub fn new(k: usize) -> Self {
        Top {
            keyed: ArrayVec::new(),
            k: k.min(N),
        }
    }

    /// Offers the next item, of weight `weight` (0 counts as 1), with random `bits`. Items are
    /// offered in list order: on equal keys the one offered first keeps the earlier place.
    pub fn offer(&mut self, item: T, weight: u32, bits: u64) {
        let key = unit(bits).ln() / f64::from(weight.max(1));
        let at = self
            .keyed
            .iter()
            .position(|(k, _)| k.total_cmp(&key).is_lt())
            .unwrap_or(self.keyed.len());
        if at >= self.k {
            return;
        }
        if self.keyed.len() == self.k {
            self.keyed.pop();
        }
        self.keyed.insert(at, (key, item));
    }

    /// The items kept, first place first.
    pub fn into_items(self) -> ArrayVec<T, N> {
        let mut items = ArrayVec::new();
        self.items_into(&mut items);
        items
    }

    /// Appends the items kept, first place first, to `out` (in place: no copy of the whole
    /// array, as returning one would make).
    pub fn items_into(&self, out: &mut ArrayVec<T, N>) {
        out.extend(self.keyed.iter().map(|&(_, item)| item));
    }
}

/// The first `k` (at most `N`) places of the weighted order of `items` (with weights), where
/// each item's random bits come from `draw(item)`.
pub fn top<T: Copy, const N: usize>(
    items: impl IntoIterator<Item = (T, u32)>,
    draw: impl Fn(T) -> u64,
    k: usize,
) -> ArrayVec<T, N> {
    let mut t = Top::new(k);
    for (item, w) in items {
        t.offer(item, w, draw(item));
    }
    t.into_items()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole order of a few items.
    fn order<T: Copy>(items: &[(T, u32)], draw: impl Fn(T) -> u64) -> ArrayVec<T, 8> {
        top(items.iter().copied(), draw, 8)
    }

    #[test]
    fn weights_shape_the_first_choice() {
        let items = [("a", 3u32), ("b", 1u32)];
        let mut first_a = 0;
        for seed in 0..10_000u64 {
            if order(&items, |x: &str| {
                crate::rng::mix(seed ^ crate::rng::hash(&[x.as_bytes()]))
            })[0]
                == "a"
            {
                first_a += 1;
            }
        }
        // Expect 75% ± a little.
        assert!((7_200..7_800).contains(&first_a), "{first_a}");
    }

    /// Keeping the first k places is the same as ordering everything and cutting: the same
    /// items in the same order, ties to the item listed first.
    #[test]
    fn the_first_places_are_the_whole_orders_head() {
        let items: Vec<(u32, u32)> = (0..20).map(|i| (i, 1 + i % 4)).collect();
        for seed in 0..500u64 {
            // Few distinct draws, so that keys tie often.
            let draw = |x: u32| crate::rng::mix(seed ^ u64::from(x % 5));
            let all: ArrayVec<u32, 20> = top(items.iter().copied(), draw, 20);
            let mut sorted: Vec<(f64, usize)> = items
                .iter()
                .enumerate()
                .map(|(i, &(x, w))| (unit(draw(x)).ln() / f64::from(w), i))
                .collect();
            sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let want: Vec<u32> = sorted.iter().map(|&(_, i)| items[i].0).collect();
            assert_eq!(&all[..], &want[..], "seed {seed}");
            for k in [0, 1, 3, 7] {
                let head: ArrayVec<u32, 8> = top(items.iter().copied(), draw, k);
                assert_eq!(&head[..], &want[..k], "seed {seed}, k {k}");
            }
        }
    }

    #[test]
    fn rendezvous_moves_only_the_removed_items_clients() {
        let all = [("us", 1u32), ("eu", 1), ("ap", 1)];
        let without_eu = [("us", 1u32), ("ap", 1)];
        for client in 0..2_000u32 {
            let draw = |dc: &str| crate::rng::hash(&[&client.to_be_bytes(), dc.as_bytes()]);
            let before = order(&all, draw)[0];
            let after = order(&without_eu, draw)[0];
            if before != "eu" {
                assert_eq!(before, after, "client {client} moved though its DC stayed");
            }
        }
    }

    /// Which data center each client subnet sticks to, among three of equal weight. Pinned:
    /// nodes (and versions) must agree, or clients move when they ask another node.
    #[test]
    fn sticky_choices_are_pinned() {
        let dcs = [("us-east", 1u32), ("eu-west", 1), ("ap-south", 1)];
        let first = |subnet: &str| order(&dcs, |d| crate::rng::sticky_draw(subnet.parse().unwrap(), d))[0];
        let got: Vec<&str> = [
            "10.0.0.0",
            "10.0.1.0",
            "10.0.2.0",
            "192.0.2.0",
            "198.51.100.0",
            "2001:db8::",
            "2001:db8:1::",
        ]
        .iter()
        .map(|s| first(s))
        .collect();
        assert_eq!(got, PINNED_STICKY);
    }

    /// Also computed by an independent implementation (Python) of `rng::hash` and this order.
    const PINNED_STICKY: [&str; 7] = [
        "ap-south", "ap-south", "us-east", "eu-west", "us-east", "ap-south", "ap-south",
    ];
}
