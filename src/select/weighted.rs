//! Weighted orderings: a weighted random permutation (Efraimidis–Spirakis keys), and its sticky
//! form, weighted rendezvous hashing, where each (client subnet, data center) pair draws a fixed
//! key: removing one data center moves only the clients it had.

use crate::rng::unit;

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
