//! Address sets over IPv4 and IPv6, and CIDR parsing.

use crate::rangeset::RangeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A set of IPv4 and IPv6 addresses.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct IpSet {
    pub v4: RangeSet<u32>,
    pub v6: RangeSet<u128>,
}

/// Error for a malformed CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected an address and a prefix length, e.g. 10.0.0.0/8 or fd00::/8")]
pub struct InvalidCidr(pub String);

/// One contiguous range of addresses of one family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum IpRange {
    V4(u32, u32),
    V6(u128, u128),
}

impl IpRange {
    /// The first address of the range.
    pub fn first(&self) -> IpAddr {
        match *self {
            IpRange::V4(a, _) => IpAddr::V4(Ipv4Addr::from(a)),
            IpRange::V6(a, _) => IpAddr::V6(Ipv6Addr::from(a)),
        }
    }

    pub fn last(&self) -> IpAddr {
        match *self {
            IpRange::V4(_, b) => IpAddr::V4(Ipv4Addr::from(b)),
            IpRange::V6(_, b) => IpAddr::V6(Ipv6Addr::from(b)),
        }
    }

    pub fn is_v4(&self) -> bool {
        matches!(self, IpRange::V4(..))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (IpRange::V4(a, b), IpAddr::V4(x)) => (a..=b).contains(&u32::from(x)),
            (IpRange::V6(a, b), IpAddr::V6(x)) => (a..=b).contains(&u128::from(x)),
            _ => false,
        }
    }
}

/// `first-last`, the np-guard spelling (`10.0.0.0-10.255.255.255`).
impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first(), self.last())
    }
}

impl IpSet {
    pub fn empty() -> Self {
        IpSet::default()
    }

    /// Every address of both families.
    pub fn all() -> Self {
        IpSet {
            v4: RangeSet::range(0, u32::MAX),
            v6: RangeSet::range(0, u128::MAX),
        }
    }

    /// The addresses of one CIDR. Host bits are ignored, as Go's `net.ParseCIDR` does.
    pub fn cidr(s: &str) -> Result<Self, InvalidCidr> {
        let err = || InvalidCidr(s.to_string());
        let (addr, len) = s.trim().split_once('/').ok_or_else(err)?;
        let len: u32 = len.parse().map_err(|_| err())?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let mut set = IpSet::empty();
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(err());
                }
                let host = if len == 0 {
                    u32::MAX
                } else {
                    (1u32 << (32 - len)) - 1
                };
                let lo = u32::from(a) & !host;
                set.v4 = RangeSet::range(lo, lo | host);
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(err());
                }
                let host = if len == 0 {
                    u128::MAX
                } else {
                    (1u128 << (128 - len)) - 1
                };
                let lo = u128::from(a) & !host;
                set.v6 = RangeSet::range(lo, lo | host);
            }
        }
        Ok(set)
    }

    /// One address.
    pub fn addr(ip: IpAddr) -> Self {
        let mut set = IpSet::empty();
        match ip {
            IpAddr::V4(a) => set.v4 = RangeSet::range(u32::from(a), u32::from(a)),
            IpAddr::V6(a) => set.v6 = RangeSet::range(u128::from(a), u128::from(a)),
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// True when every address of `r` is in the set.
    pub fn contains_range(&self, r: IpRange) -> bool {
        match r {
            IpRange::V4(a, b) => self.v4.contains_set(&RangeSet::range(a, b)),
            IpRange::V6(a, b) => self.v6.contains_set(&RangeSet::range(a, b)),
        }
    }

    pub fn union(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.union(&o.v4),
            v6: self.v6.union(&o.v6),
        }
    }

    pub fn intersect(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.intersect(&o.v4),
            v6: self.v6.intersect(&o.v6),
        }
    }

    pub fn subtract(&self, o: &Self) -> Self {
        IpSet {
            v4: self.v4.subtract(&o.v4),
            v6: self.v6.subtract(&o.v6),
        }
    }

    /// The ranges of the set, IPv4 first.
    pub fn ranges(&self) -> impl Iterator<Item = IpRange> + '_ {
        self.v4
            .ranges()
            .iter()
            .map(|&(a, b)| IpRange::V4(a, b))
            .chain(self.v6.ranges().iter().map(|&(a, b)| IpRange::V6(a, b)))
    }
}

impl IpSet {
    /// The set as the fewest CIDR blocks that cover exactly it (`10.0.0.0/8`, `fd00::/8`), IPv4
    /// first, each in address order: what the enforcement targets' address lists take.
    pub fn cidrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(a, b) in self.v4.ranges() {
            cover(u128::from(a), u128::from(b), 32, &mut |lo, len| {
                out.push(format!("{}/{len}", Ipv4Addr::from(lo as u32)))
            });
        }
        for &(a, b) in self.v6.ranges() {
            cover(a, b, 128, &mut |lo, len| {
                out.push(format!("{}/{len}", Ipv6Addr::from(lo)))
            });
        }
        out
    }
}

/// Calls `emit(start, prefix_len)` for the largest aligned blocks covering `lo..=hi` of a
/// `bits`-wide address space.
fn cover(mut lo: u128, hi: u128, bits: u32, emit: &mut dyn FnMut(u128, u32)) {
    // The last address of the block of 2^size_log addresses starting at `lo`.
    let last_of = |lo: u128, size_log: u32| -> Option<u128> {
        if size_log >= 128 {
            (lo == 0).then_some(u128::MAX)
        } else {
            lo.checked_add((1u128 << size_log) - 1)
        }
    };
    loop {
        // The largest block aligned at `lo` that stays within `hi`.
        let mut size_log = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_log > 0 && last_of(lo, size_log).is_none_or(|l| l > hi) {
            size_log -= 1;
        }
        emit(lo, bits - size_log);
        let last = last_of(lo, size_log).unwrap_or(u128::MAX);
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

/// Cuts the whole address space into the maximal runs of addresses that each of `sets` holds
/// entirely or not at all: np-guard's disjoint external pieces. With no sets, each family is one
/// piece.
pub fn pieces<'a>(sets: impl IntoIterator<Item = &'a IpSet>) -> Vec<IpRange> {
    let mut b4: Vec<u32> = vec![0];
    let mut b6: Vec<u128> = vec![0];
    for s in sets {
        b4.extend(s.v4.boundaries());
        b6.extend(s.v6.boundaries());
    }
    pieces_at(b4, b6)
}

/// The pieces that start at the boundaries `b4` and `b6` (which hold 0; in any order, repeats
/// allowed) and run to the next one.
fn pieces_at(mut b4: Vec<u32>, mut b6: Vec<u128>) -> Vec<IpRange> {
    b4.sort_unstable();
    b4.dedup();
    b6.sort_unstable();
    b6.dedup();
    let mut out = Vec::with_capacity(b4.len() + b6.len());
    for (i, &a) in b4.iter().enumerate() {
        let end = b4.get(i + 1).map_or(u32::MAX, |n| n - 1);
        out.push(IpRange::V4(a, end));
    }
    for (i, &a) in b6.iter().enumerate() {
        let end = b6.get(i + 1).map_or(u128::MAX, |n| n - 1);
        out.push(IpRange::V6(a, end));
    }
    out
}

/// How many address sets cut the address space at each boundary. The external pieces
/// ([`pieces`]) follow from which boundaries are cut at all, so a set's arrival or departure moves
/// them exactly when it brings a boundary no other set has, or takes away the last set at one:
/// knowing that costs the changed sets' boundaries, not a pass over every set.
#[derive(Clone, Debug, Default)]
pub struct Cuts {
    v4: rustc_hash::FxHashMap<u32, u32>,
    v6: rustc_hash::FxHashMap<u128, u32>,
}

impl Cuts {
    /// The cuts of `sets` (each counted as often as it comes).
    pub fn new<'a>(sets: impl IntoIterator<Item = &'a IpSet>) -> Self {
        let mut cuts = Cuts::default();
        cuts.replace([], sets);
        cuts
    }

    /// Takes the sets `old` away and brings the sets `new` in (each counted as often as it
    /// comes); whether the pieces moved (a boundary other than the start of a family, which is
    /// always one, is now cut where it was not, or the other way round).
    pub fn replace<'a, 'b>(
        &mut self,
        old: impl IntoIterator<Item = &'a IpSet>,
        new: impl IntoIterator<Item = &'b IpSet>,
    ) -> bool {
        // Per boundary the change touches, how many more sets cut there; then whether it went
        // from cut to not cut or the other way.
        fn apply<T: Copy + Eq + std::hash::Hash + Default>(
            counts: &mut rustc_hash::FxHashMap<T, u32>,
            old: impl Iterator<Item = T>,
            new: impl Iterator<Item = T>,
        ) -> bool {
            let mut net: rustc_hash::FxHashMap<T, i64> = rustc_hash::FxHashMap::default();
            old.for_each(|b| *net.entry(b).or_default() -= 1);
            new.for_each(|b| *net.entry(b).or_default() += 1);
            let mut moved = false;
            for (b, d) in net {
                let was = counts.get(&b).copied().unwrap_or(0);
                let now = u32::try_from(i64::from(was) + d)
                    .expect("a set is taken away only after it came");
                if now == 0 {
                    counts.remove(&b);
                } else {
                    counts.insert(b, now);
                }
                moved |= b != T::default() && (was > 0) != (now > 0);
            }
            moved
        }
        let (old, new): (Vec<&IpSet>, Vec<&IpSet>) =
            (old.into_iter().collect(), new.into_iter().collect());
        let moved4 = apply(
            &mut self.v4,
            old.iter().copied().flat_map(|s| s.v4.boundaries()),
            new.iter().copied().flat_map(|s| s.v4.boundaries()),
        );
        let moved6 = apply(
            &mut self.v6,
            old.iter().copied().flat_map(|s| s.v6.boundaries()),
            new.iter().copied().flat_map(|s| s.v6.boundaries()),
        );
        moved4 || moved6
    }

    /// The external pieces: what [`pieces`] gives for the sets counted now.
    pub fn pieces(&self) -> Vec<IpRange> {
        pieces_at(
            self.v4.keys().copied().chain([0]).collect(),
            self.v6.keys().copied().chain([0]).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_mask_host_bits() {
        let cases: &[(&str, &str, &str)] = &[
            ("10.0.0.0/8", "10.0.0.0-10.255.255.255", "plain /8"),
            (
                "10.1.2.3/16",
                "10.1.0.0-10.1.255.255",
                "host bits masked like Go's ParseCIDR",
            ),
            ("0.0.0.0/0", "0.0.0.0-255.255.255.255", "everything"),
            ("1.2.3.4/32", "1.2.3.4-1.2.3.4", "one address"),
            (
                "fd00::/8",
                "fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "IPv6",
            ),
        ];
        for (cidr, want, msg) in cases {
            let s = IpSet::cidr(cidr).unwrap();
            let got: Vec<String> = s.ranges().map(|r| r.to_string()).collect();
            assert_eq!(got, vec![want.to_string()], "{msg}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "x/8", "10.0.0/8"] {
            assert!(IpSet::cidr(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn pieces_cut_at_every_boundary_and_keep_adjacent_excepts_together() {
        // 10.0.0.0/8 except 10.1.0.0/16 and 10.2.0.0/16 (adjacent): the excepts form one piece.
        let block = IpSet::cidr("10.0.0.0/8")
            .unwrap()
            .subtract(&IpSet::cidr("10.1.0.0/16").unwrap())
            .subtract(&IpSet::cidr("10.2.0.0/16").unwrap());
        let got: Vec<String> = pieces([&block])
            .iter()
            .filter(|r| r.is_v4())
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "0.0.0.0-9.255.255.255",
                "10.0.0.0-10.0.255.255",
                "10.1.0.0-10.2.255.255",
                "10.3.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255"
            ]
        );
        assert_eq!(pieces([]).len(), 2, "no sets: one piece per family");
    }
}

#[cfg(test)]
mod cidr_cover {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(cidrs: &[String]) -> IpSet {
        cidrs
            .iter()
            .map(|c| IpSet::cidr(c).unwrap())
            .fold(IpSet::empty(), |a, b| a.union(&b))
    }

    #[test]
    fn known_covers() {
        let set = IpSet::cidr("10.0.0.0/8")
            .unwrap()
            .subtract(&IpSet::cidr("10.1.0.0/16").unwrap());
        let c = set.cidrs();
        assert_eq!(c.len(), 8, "{c:?}");
        assert_eq!(c[0], "10.0.0.0/16");
        assert_eq!(c[7], "10.128.0.0/9");
        assert_eq!(IpSet::all().cidrs(), vec!["0.0.0.0/0", "::/0"]);
        assert_eq!(
            IpSet::addr("192.0.2.7".parse().unwrap()).cidrs(),
            vec!["192.0.2.7/32"]
        );
        assert!(IpSet::empty().cidrs().is_empty());
    }

    /// A set of a few v4 ranges (and perhaps a v6 one) over a small grid of addresses, so that
    /// sets share boundaries, and some start at 0 or end at the last address.
    fn grid_set() -> impl Strategy<Value = IpSet> {
        let edge = |k: u32| if k == 8 { u32::MAX } else { k << 29 };
        (
            prop::collection::vec((0u32..9, 0u32..9), 0..3),
            any::<bool>(),
        )
            .prop_map(move |(ranges, v6)| {
                let mut set = IpSet::empty();
                for (a, b) in ranges {
                    let (lo, hi) = (edge(a.min(b)), edge(a.max(b)));
                    set.v4 = set.v4.union(&RangeSet::range(lo, hi));
                }
                if v6 {
                    set.v6 = RangeSet::range(1 << 100, u128::MAX);
                }
                set
            })
    }

    proptest! {
        /// Counting cuts gives the pieces of the sets counted, and says the pieces moved exactly
        /// when they did, whatever sets come and go.
        #[test]
        fn cuts_follow_the_sets_counted(
            start in prop::collection::vec(grid_set(), 0..5),
            changes in prop::collection::vec(
                (prop::collection::vec(any::<prop::sample::Index>(), 0..3),
                 prop::collection::vec(grid_set(), 0..3)),
                1..8,
            ),
        ) {
            let mut sets = start;
            let mut cuts = Cuts::new(&sets);
            prop_assert_eq!(cuts.pieces(), pieces(&sets));
            for (gone, new) in changes {
                let before = pieces(&sets);
                // Take away the sets at the indices drawn (each once), bring the new ones in.
                let mut at: Vec<usize> = gone.iter().filter(|_| !sets.is_empty())
                    .map(|i| i.index(sets.len())).collect();
                at.sort_unstable();
                at.dedup();
                let old: Vec<IpSet> = at.iter().rev().map(|&i| sets.remove(i)).collect();
                sets.extend(new.iter().cloned());
                let moved = cuts.replace(&old, &new);
                prop_assert_eq!(cuts.pieces(), pieces(&sets));
                prop_assert_eq!(moved, pieces(&sets) != before);
            }
        }

        /// The blocks cover exactly the set, and no two of them are halves of one larger block.
        #[test]
        fn cover_is_exact_and_minimal(ranges in prop::collection::vec((any::<u32>(), 0u32..1 << 20), 0..6),
                                      v6 in prop::collection::vec((any::<u128>(), 0u128..1 << 70), 0..3)) {
            let mut set = IpSet::empty();
            for (a, n) in ranges {
                set.v4 = set.v4.union(&RangeSet::range(a, a.saturating_add(n)));
            }
            for (a, n) in v6 {
                set.v6 = set.v6.union(&RangeSet::range(a, a.saturating_add(n)));
            }
            let c = set.cidrs();
            prop_assert_eq!(parse_all(&c), set);
            for w in c.windows(2) {
                let (a, b) = (IpSet::cidr(&w[0]).unwrap(), IpSet::cidr(&w[1]).unwrap());
                let (la, lb) = (w[0].split('/').nth(1).unwrap(), w[1].split('/').nth(1).unwrap());
                if la == lb && la != "0" && a.v4.is_empty() == b.v4.is_empty() {
                    let len: u32 = la.parse().unwrap();
                    let parent = format!("{}/{}", w[0].split('/').next().unwrap(), len - 1);
                    prop_assert!(IpSet::cidr(&parent).unwrap() != a.union(&b), "{} and {} merge", w[0], w[1]);
                }
            }
        }
    }
}
