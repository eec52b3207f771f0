//! Binary prefix trees over both address families, whose leaves hold a small value: the
//! locations of a GeoIP database (built by `GeoDb` at load), and what geo rules compile to
//! (`select::geo::RuleTree`). A lookup walks the address's bits and returns the leaf's value
//! and its depth; sibling leaves of equal value are merged, so the depth is the widest prefix
//! around the address over which the value does not change.
//!
//! Subtrees may be shared: an IPv6 database leads ::/96, ::ffff:0:0/96 and 2002::/16 to its one
//! IPv4 tree, and so do these trees, so IPv4 networks are held (and compiled) once.

use std::collections::HashMap;
use std::net::IpAddr;

/// The largest value a leaf holds.
pub const MAX_VALUE: u32 = LEAF - 1;

const LEAF: u32 = 1 << 31;

/// A child: a leaf with its value (top bit set), or an inner node's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Link(u32);

impl Link {
    fn leaf(value: u32) -> Link {
        debug_assert!(value <= MAX_VALUE);
        Link(LEAF | value)
    }
    fn node(index: usize) -> Link {
        let i = u32::try_from(index).expect("fewer than 2^31 tree nodes");
        assert!(i < LEAF, "fewer than 2^31 tree nodes");
        Link(i)
    }
    fn value(self) -> Option<u32> {
        (self.0 & LEAF != 0).then_some(self.0 & !LEAF)
    }
}

/// A prefix tree for IPv4 and one for IPv6, in one arena.
#[derive(Clone, Debug)]
pub struct PrefixTree {
    nodes: Vec<[Link; 2]>,
    v4: Link,
    v6: Link,
}

/// A network given a rank (see [`PrefixTree::ranked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankedNet {
    pub addr: IpAddr,
    pub len: u8,
    pub rank: u32,
}

/// An address's bits, left-aligned in a u128 (IPv4 in the top 32 bits).
fn key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

impl PrefixTree {
    /// Every address has `value`.
    pub fn uniform(value: u32) -> PrefixTree {
        PrefixTree {
            nodes: Vec::new(),
            v4: Link::leaf(value),
            v6: Link::leaf(value),
        }
    }

    /// The value at `addr` and the depth of its leaf: the widest prefix of `addr` over which
    /// the value is the same (0 when the whole family has one value). No allocation, no lock.
    pub fn lookup(&self, addr: IpAddr) -> (u32, u8) {
        let (key, mut link) = match addr {
            IpAddr::V4(_) => (key(addr), self.v4),
            IpAddr::V6(_) => (key(addr), self.v6),
        };
        let mut depth = 0u8;
        loop {
            if let Some(v) = link.value() {
                return (v, depth);
            }
            // Depth never passes the family's width: trees are built so (see `Builder`).
            link = self.nodes[link.0 as usize][bit(key, depth)];
            depth += 1;
        }
    }

    /// Inner nodes held.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes held by the arena.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<[Link; 2]>()
    }

    /// A tree of ranks: each address gets the lowest of `leaf_rank` of its value here and the
    /// ranks of the `nets` that contain it (a net of the other family contains nothing).
    /// `floor` is a rank no `leaf_rank` goes below, so a subtree under a net ranked at or below
    /// it is one leaf without being walked. Shared subtrees stay shared; equal sibling leaves
    /// are merged.
    pub fn ranked(
        &self,
        mut leaf_rank: impl FnMut(u32) -> u32,
        floor: u32,
        nets: &[RankedNet],
    ) -> PrefixTree {
        let nets_of = |v4: bool| -> Vec<(u128, u8, u32)> {
            nets.iter()
                .filter(|n| n.addr.is_ipv4() == v4)
                .map(|n| (key(n.addr), n.len, n.rank))
                .collect()
        };
        let mut r = Ranker {
            src: &self.nodes,
            out: Vec::new(),
            leaf_rank: &mut leaf_rank,
            floor,
            plain: vec![None; self.nodes.len()],
            under: HashMap::new(),
        };
        let v4 = r.build(self.v4, 0, NO_NET, &nets_of(true));
        let v6 = r.build(self.v6, 0, NO_NET, &nets_of(false));
        let mut nodes = r.out;
        nodes.shrink_to_fit();
        PrefixTree { nodes, v4, v6 }
    }
}

/// Not under any net.
const NO_NET: u32 = u32::MAX;

struct Ranker<'a, F> {
    src: &'a [[Link; 2]],
    out: Vec<[Link; 2]>,
    leaf_rank: &'a mut F,
    floor: u32,
    /// Source node → its ranked copy, for subtrees under no net (the common case).
    plain: Vec<Option<Link>>,
    /// (source node, rank of the nets above it) → its ranked copy.
    under: HashMap<(u32, u32), Link>,
}

impl<F: FnMut(u32) -> u32> Ranker<'_, F> {
    /// The ranked copy of `link`, at `depth`, under nets ranked `best` at most; `inside` are the
    /// nets within this prefix (none shorter than `depth`).
    fn build(&mut self, link: Link, depth: u8, best: u32, inside: &[(u128, u8, u32)]) -> Link {
        let mut best = best;
        for &(_, _, rank) in inside.iter().filter(|n| n.1 == depth) {
            best = best.min(rank);
        }
        let deeper: Vec<(u128, u8, u32)> = inside.iter().copied().filter(|n| n.1 > depth).collect();
        if deeper.is_empty() {
            return self.plain(link, best);
        }
        if best <= self.floor {
            // Nets inside rank below `best` or not: only they can change the value.
            let (l, r): (Vec<_>, Vec<_>) = deeper.iter().partition(|n| bit(n.0, depth) == 0);
            let l = self.build(Link::leaf(0), depth + 1, best, &l);
            let r = self.build(Link::leaf(0), depth + 1, best, &r);
            return self.join(l, r);
        }
        let [l, r] = match link.value() {
            Some(_) => [link, link],
            None => self.src[link.0 as usize],
        };
        let (ln, rn): (Vec<_>, Vec<_>) = deeper.iter().partition(|n| bit(n.0, depth) == 0);
        let l = self.build(l, depth + 1, best, &ln);
        let r = self.build(r, depth + 1, best, &rn);
        self.join(l, r)
    }

    /// The ranked copy of a subtree no net splits.
    fn plain(&mut self, link: Link, best: u32) -> Link {
        if best <= self.floor {
            return Link::leaf(best);
        }
        let i = match link.value() {
            Some(v) => return Link::leaf((self.leaf_rank)(v).min(best)),
            None => link.0 as usize,
        };
        let memo = if best == NO_NET {
            self.plain[i]
        } else {
            self.under.get(&(i as u32, best)).copied()
        };
        if let Some(done) = memo {
            return done;
        }
        let [l, r] = self.src[i];
        let l = self.plain(l, best);
        let r = self.plain(r, best);
        let done = self.join(l, r);
        if best == NO_NET {
            self.plain[i] = Some(done);
        } else {
            self.under.insert((i as u32, best), done);
        }
        done
    }

    fn join(&mut self, l: Link, r: Link) -> Link {
        if l == r && l.value().is_some() {
            return l;
        }
        self.out.push([l, r]);
        Link::node(self.out.len() - 1)
    }
}

/// Builds a tree of values from disjoint networks, then aliases (prefixes that lead to the
/// IPv4 tree), then merges.
#[derive(Debug)]
pub(crate) struct Builder {
    tree: PrefixTree,
}

impl Builder {
    /// Every address has `empty` until a network says otherwise.
    pub(crate) fn new(empty: u32) -> Builder {
        Builder {
            tree: PrefixTree::uniform(empty),
        }
    }

    /// Sets `addr/len` to `value`, in place (before any alias is made).
    pub(crate) fn insert(&mut self, addr: IpAddr, len: u8, value: u32) {
        self.set(addr, len, Link::leaf(value));
    }

    /// Leads the IPv6 prefix `addr/len` (at most /96) to the IPv4 tree, as a database's alias
    /// does: the address bits after `len` are looked up as an IPv4 address.
    pub(crate) fn alias_v4(&mut self, addr: std::net::Ipv6Addr, len: u8) {
        assert!(len <= 96, "an IPv4 alias leaves 32 bits");
        let v4 = self.tree.v4;
        self.set(IpAddr::V6(addr), len, v4);
    }

    fn set(&mut self, addr: IpAddr, len: u8, to: Link) {
        let key = key(addr);
        let t = &mut self.tree;
        // The slot being followed: a family's root, or a child of a node.
        let mut at: Option<(usize, usize)> = None;
        for depth in 0..len {
            let link = match at {
                Some((i, b)) => t.nodes[i][b],
                None if addr.is_ipv4() => t.v4,
                None => t.v6,
            };
            let i = match link.value() {
                Some(_) => {
                    t.nodes.push([link; 2]);
                    let new = Link::node(t.nodes.len() - 1);
                    match at {
                        Some((i, b)) => t.nodes[i][b] = new,
                        None if addr.is_ipv4() => t.v4 = new,
                        None => t.v6 = new,
                    }
                    t.nodes.len() - 1
                }
                None => link.0 as usize,
            };
            at = Some((i, bit(key, depth)));
        }
        match at {
            Some((i, b)) => t.nodes[i][b] = to,
            None if addr.is_ipv4() => t.v4 = to,
            None => t.v6 = to,
        }
    }

    /// The finished tree, equal siblings merged.
    pub(crate) fn finish(self) -> PrefixTree {
        self.tree.ranked(|v| v, 0, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn equal_siblings_merge_and_the_depth_is_the_widest_equal_prefix() {
        let mut b = Builder::new(9);
        b.insert(ip("10.20.0.0"), 16, 1);
        b.insert(ip("10.21.0.0"), 16, 1);
        b.insert(ip("10.22.0.0"), 16, 2);
        let t = b.finish();
        assert_eq!(
            t.lookup(ip("10.20.5.1")),
            (1, 15),
            "10.20/16 + 10.21/16 = 10.20/15"
        );
        assert_eq!(t.lookup(ip("10.22.0.1")), (2, 16));
        assert_eq!(t.lookup(ip("10.23.0.1")), (9, 16));
        assert_eq!(t.lookup(ip("192.0.2.1")), (9, 1), "outside 0/1 nothing differs");
        assert_eq!(t.lookup(ip("2001:db8::1")), (9, 0), "IPv6 is empty: one leaf");
    }

    #[test]
    fn a_uniform_family_is_one_leaf() {
        let mut b = Builder::new(0);
        b.insert(ip("0.0.0.0"), 1, 4);
        b.insert(ip("128.0.0.0"), 1, 4);
        let t = b.finish();
        assert_eq!(t.lookup(ip("1.2.3.4")), (4, 0));
        assert_eq!(t.nodes(), 0);
    }

    #[test]
    fn aliases_share_the_ipv4_tree() {
        let mut b = Builder::new(0);
        b.insert(ip("10.20.0.0"), 16, 1);
        b.insert(ip("2001:db8::"), 32, 2);
        b.alias_v4("::".parse().unwrap(), 96);
        b.alias_v4("::ffff:0:0".parse().unwrap(), 96);
        b.alias_v4("2002::".parse().unwrap(), 16);
        let t = b.finish();
        assert_eq!(t.lookup(ip("10.20.1.1")), (1, 16));
        assert_eq!(t.lookup(ip("::ffff:10.20.1.1")), (1, 112));
        assert_eq!(t.lookup(ip("::10.20.1.1")), (1, 112));
        assert_eq!(
            t.lookup(ip("2002:a14:101::1")),
            (1, 32),
            "2002:AABB:CCDD:: is AA.BB.CC.DD"
        );
        assert_eq!(t.lookup(ip("2002:a15:101::1")), (0, 32));
        assert_eq!(t.lookup(ip("2001:db8:1::1")), (2, 32));
        // The IPv4 tree's nodes are held once, not once per alias.
        let alone = {
            let mut b = Builder::new(0);
            b.insert(ip("10.20.0.0"), 16, 1);
            b.finish().nodes()
        };
        assert!(t.nodes() < 2 * alone + 128 + 16 + 32, "{} nodes", t.nodes());
    }

    #[test]
    fn ranked_takes_the_lowest_rank_of_leaf_and_nets() {
        let mut b = Builder::new(0);
        b.insert(ip("10.0.0.0"), 8, 1);
        b.insert(ip("2001:db8::"), 32, 1);
        let t = b.finish();
        // Leaf value 0 (no data) ranks 7, value 1 ranks 5.
        let rank = |v| if v == 1 { 5 } else { 7 };
        let nets = [
            RankedNet {
                addr: ip("10.20.0.0"),
                len: 16,
                rank: 1,
            },
            RankedNet {
                addr: ip("10.20.30.0"),
                len: 24,
                rank: 0,
            },
            RankedNet {
                addr: ip("10.0.0.0"),
                len: 8,
                rank: 6,
            }, // ranks after the leaf's 5
            RankedNet {
                addr: ip("192.0.2.0"),
                len: 24,
                rank: 6,
            },
        ];
        let r = t.ranked(rank, 5, &nets);
        assert_eq!(r.lookup(ip("10.20.30.1")), (0, 24));
        assert_eq!(
            r.lookup(ip("10.20.200.1")),
            (1, 17),
            "10.20.128/17 excludes 10.20.30/24"
        );
        assert_eq!(r.lookup(ip("10.1.0.1")), (5, 12), "10.0/12 excludes 10.20/16");
        assert_eq!(r.lookup(ip("192.0.2.9")), (6, 24));
        assert_eq!(r.lookup(ip("192.0.3.9")), (7, 24));
        assert_eq!(r.lookup(ip("2001:db8::1")), (5, 32), "IPv4 nets leave IPv6 alone");
        // Lower-ranked net under a higher one: only the part the higher one leaves.
        let nets = [
            RankedNet {
                addr: ip("10.0.0.0"),
                len: 8,
                rank: 0,
            },
            RankedNet {
                addr: ip("10.20.0.0"),
                len: 16,
                rank: 1,
            },
        ];
        let r = t.ranked(rank, 5, &nets);
        assert_eq!(
            r.lookup(ip("10.20.0.1")),
            (0, 8),
            "the /16 never wins inside the /8"
        );
    }
}
