//! Address sets over a fixed cut of the address space, for the k8s compiler's address walk.
//!
//! The walk subtracts and intersects the same few hundred address sets over and over, and one
//! of them is nearly always large: "every address but the hosts the rules so far named", a
//! list of as many ranges as hosts. As range lists every step copies and merges that list.
//! Here the address space is cut once into the pieces every rule's addresses are unions of
//! ([`bulkhead_core::ip::pieces`]: between two consecutive boundaries of any of the sets), and
//! a set is a bit per piece: subtracting or intersecting is a pass over a few machine words,
//! in place, whatever the number of ranges. Every set built from the input sets by union,
//! intersection and difference is again a union of pieces, so nothing is approximated:
//! [`Pieces::ip_set`] gives back exactly the [`IpSet`] the range lists would have given.

use bulkhead_core::{IpSet, RangeSet};

/// The address space cut into pieces: IPv4 pieces first, then IPv6, each family in address
/// order. Piece `i` of a family runs from its start to the next piece's start − 1 (the last to
/// the family's last address).
#[derive(Clone, Debug)]
pub struct Pieces {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

/// A set of pieces of one [`Pieces`] (a bit per piece; bits past the last piece stay clear).
/// Only sets of the same `Pieces` may be combined.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PieceSet {
    words: Vec<u64>,
}

impl Pieces {
    /// The coarsest cut in which every one of `sets` is a union of pieces.
    pub fn new<'a>(sets: impl IntoIterator<Item = &'a IpSet>) -> Self {
        let mut v4: Vec<u32> = vec![0];
        let mut v6: Vec<u128> = vec![0];
        for s in sets {
            v4.extend(s.v4.boundaries());
            v6.extend(s.v6.boundaries());
        }
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        Pieces { v4, v6 }
    }

    /// The number of pieces.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Never: each family is at least one piece.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn words(&self) -> usize {
        self.len().div_ceil(64)
    }

    /// No address.
    pub fn none(&self) -> PieceSet {
        PieceSet {
            words: vec![0; self.words()],
        }
    }

    /// Every address.
    pub fn all(&self) -> PieceSet {
        let mut s = self.none();
        s.fill(0, self.len() - 1);
        s
    }

    /// `s` as pieces, or `None` when `s` is not a union of pieces (it was not among the sets
    /// the cut was made from, nor made of them).
    pub fn of(&self, s: &IpSet) -> Option<PieceSet> {
        let mut out = self.none();
        for &(lo, hi) in s.v4.ranges() {
            let (a, b) = span(&self.v4, lo, hi)?;
            out.fill(a, b);
        }
        let off = self.v4.len();
        for &(lo, hi) in s.v6.ranges() {
            let (a, b) = span(&self.v6, lo, hi)?;
            out.fill(off + a, off + b);
        }
        Some(out)
    }

    /// The addresses of the pieces of `p`.
    pub fn ip_set(&self, p: &PieceSet) -> IpSet {
        let n4 = self.v4.len();
        let (mut r4, mut r6) = (Vec::new(), Vec::new());
        for (a, b) in p.runs() {
            // A run may cross from the last IPv4 piece to the first IPv6 one.
            if a < n4 {
                let b4 = b.min(n4 - 1);
                r4.push((self.v4[a], last(&self.v4, b4, u32::MAX)));
            }
            if b >= n4 {
                let (a6, b6) = (a.max(n4) - n4, b - n4);
                if let Some(&lo) = self.v6.get(a6) {
                    r6.push((lo, last(&self.v6, b6, u128::MAX)));
                }
            }
        }
        IpSet {
            v4: RangeSet::from_ranges(r4),
            v6: RangeSet::from_ranges(r6),
        }
    }
}

/// The pieces `a..=b` of `starts` covering exactly `lo..=hi`, if they do.
fn span<T: bulkhead_core::rangeset::Point>(starts: &[T], lo: T, hi: T) -> Option<(usize, usize)> {
    let a = starts.binary_search(&lo).ok()?;
    let b = match hi.succ() {
        None => starts.len() - 1,
        Some(next) => starts.binary_search(&next).ok()?.checked_sub(1)?,
    };
    (a <= b).then_some((a, b))
}

/// The last address of piece `i`.
fn last<T: bulkhead_core::rangeset::Point>(starts: &[T], i: usize, max: T) -> T {
    match starts.get(i + 1) {
        Some(&next) => next.pred().unwrap_or(max),
        None => max,
    }
}

impl PieceSet {
    /// Adds the pieces `a..=b`.
    fn fill(&mut self, a: usize, b: usize) {
        let (wa, wb) = (a / 64, b / 64);
        let lo_mask = u64::MAX << (a % 64);
        let hi_mask = u64::MAX >> (63 - b % 64);
        if wa == wb {
            self.words[wa] |= lo_mask & hi_mask;
            return;
        }
        self.words[wa] |= lo_mask;
        for w in &mut self.words[wa + 1..wb] {
            *w = u64::MAX;
        }
        self.words[wb] |= hi_mask;
    }

    /// The maximal runs `a..=b` of pieces in the set, ascending.
    fn runs(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (wi, &w) in self.words.iter().enumerate() {
            let mut w = w;
            let mut base = wi * 64;
            while w != 0 {
                let skip = w.trailing_zeros() as usize;
                w >>= skip;
                base += skip;
                let len = w.trailing_ones() as usize;
                let (a, b) = (base, base + len - 1);
                match out.last_mut() {
                    Some(last) if last.1 + 1 == a => last.1 = b,
                    _ => out.push((a, b)),
                }
                // `len` may be 64 (a full word): shifting by 64 would overflow.
                w = w.checked_shr(len as u32).unwrap_or(0);
                base += len;
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Whether the two share a piece.
    pub fn meets(&self, o: &PieceSet) -> bool {
        self.words.iter().zip(&o.words).any(|(a, b)| a & b != 0)
    }

    pub fn intersect(&self, o: &PieceSet) -> PieceSet {
        PieceSet {
            words: self
                .words
                .iter()
                .zip(&o.words)
                .map(|(a, b)| a & b)
                .collect(),
        }
    }

    /// `self −= o`.
    pub fn subtract_with(&mut self, o: &PieceSet) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a &= !b;
        }
    }

    /// `self ∪= o`.
    pub fn union_with(&mut self, o: &PieceSet) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a |= b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small random sets of both families, near the ends of the spaces too.
    fn arb_set() -> impl Strategy<Value = IpSet> {
        let v4 = prop::collection::vec(
            (
                prop_oneof![0u32..300, (u32::MAX - 300)..=u32::MAX],
                0u32..70,
            ),
            0..5,
        );
        let v6 = prop::collection::vec(
            (
                prop_oneof![0u128..300, (u128::MAX - 300)..=u128::MAX],
                0u128..70,
            ),
            0..3,
        );
        (v4, v6).prop_map(|(a, b)| IpSet {
            v4: RangeSet::from_ranges(a.into_iter().map(|(x, l)| (x, x.saturating_add(l)))),
            v6: RangeSet::from_ranges(b.into_iter().map(|(x, l)| (x, x.saturating_add(l)))),
        })
    }

    proptest! {
        /// Pieces agree with the range lists they replace: every set converts back to itself,
        /// and intersection, difference, union, emptiness and meeting give the range lists'
        /// results, also when chained (as the walk chains them).
        #[test]
        fn pieces_agree_with_range_lists(sets in prop::collection::vec(arb_set(), 1..6),
                                         ops in prop::collection::vec((0usize..6, 0usize..6, 0u8..3), 0..12)) {
            let mut all = sets.clone();
            all.push(IpSet::all());
            let p = Pieces::new(&sets);
            let mut plain: Vec<IpSet> = all.clone();
            let mut cut: Vec<PieceSet> = Vec::new();
            for s in &all {
                let c = p.of(s).expect("a set the cut was made from is a union of pieces");
                prop_assert_eq!(&p.ip_set(&c), s);
                cut.push(c);
            }
            prop_assert_eq!(p.all(), cut[all.len() - 1].clone());
            prop_assert!(p.ip_set(&p.none()).is_empty());
            for (i, j, op) in ops {
                let (i, j) = (i % plain.len(), j % plain.len());
                let a = plain[i].v4.ranges().iter().any(|&(lo, hi)| plain[j].v4.ranges().iter().any(|&(l, h)| lo <= h && l <= hi))
                    || plain[i].v6.ranges().iter().any(|&(lo, hi)| plain[j].v6.ranges().iter().any(|&(l, h)| lo <= h && l <= hi));
                prop_assert_eq!(cut[i].meets(&cut[j]), a);
                let (x, y) = match op {
                    0 => (plain[i].intersect(&plain[j]), cut[i].intersect(&cut[j])),
                    1 => {
                        let mut c = cut[i].clone();
                        c.subtract_with(&cut[j]);
                        (plain[i].subtract(&plain[j]), c)
                    }
                    _ => {
                        let mut c = cut[i].clone();
                        c.union_with(&cut[j]);
                        (plain[i].union(&plain[j]), c)
                    }
                };
                prop_assert_eq!(y.is_empty(), x.is_empty());
                prop_assert_eq!(&p.ip_set(&y), &x);
                let back = p.of(&x);
                prop_assert_eq!(back.as_ref(), Some(&y));
                plain.push(x);
                cut.push(y);
            }
        }

        /// A set that is not a union of the pieces is refused, never rounded.
        #[test]
        fn sets_across_pieces_are_refused(s in arb_set(), t in arb_set()) {
            let p = Pieces::new([&s]);
            let exact = t.v4.boundaries().all(|b| p.v4.binary_search(&b).is_ok())
                && t.v6.boundaries().all(|b| p.v6.binary_search(&b).is_ok());
            match p.of(&t) {
                Some(c) => { prop_assert!(exact); prop_assert_eq!(p.ip_set(&c), t); }
                None => prop_assert!(!exact),
            }
        }
    }

    #[test]
    fn runs_cross_words_and_families() {
        // Single addresses 2, 4, ..., 68 cut IPv4 into 69 pieces (0-1, 2, 3, ..., 68, 69-max),
        // one IPv6 range into 2: runs over word boundaries, and one from the last IPv4 piece
        // into IPv6.
        let s = IpSet {
            v4: RangeSet::from_ranges((1..35u32).map(|x| (2 * x, 2 * x))),
            v6: RangeSet::range(0, 5),
        };
        let p = Pieces::new([&s]);
        assert_eq!((p.v4.len(), p.v6.len()), (69, 2));
        let mut all = p.none();
        all.fill(0, 70);
        assert_eq!(all, p.all());
        assert_eq!(p.ip_set(&all), IpSet::all());
        let mut t = p.none();
        t.fill(60, 69);
        assert_eq!(t.runs(), vec![(60, 69)]);
        let ip = p.ip_set(&t);
        assert_eq!(p.v4[60], 61);
        assert_eq!(ip.v4.ranges(), &[(61, u32::MAX)]);
        assert_eq!(ip.v6.ranges(), &[(0, 5)]);
        assert_eq!(p.of(&s).map(|c| p.ip_set(&c)), Some(s));
    }
}
