//! Sets of integers kept as sorted, disjoint, non-adjacent inclusive ranges.
//!
//! One implementation serves port sets (`u16`), IPv4 address sets (`u32`) and IPv6 address sets
//! (`u128`). Every operation keeps the canonical form, so two equal sets compare equal.

use std::fmt;

/// An integer type a [`RangeSet`] can hold.
pub trait Point: Copy + Ord + fmt::Debug {
    /// The next value, or `None` at the type's maximum.
    fn succ(self) -> Option<Self>;
    /// The previous value, or `None` at the type's minimum.
    fn pred(self) -> Option<Self>;
}

macro_rules! point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
point!(u16, u32, u128);

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RangeSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> fmt::Debug for RangeSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ranges.iter()).finish()
    }
}

impl<T: Point> RangeSet<T> {
    /// The empty set.
    pub const fn empty() -> Self {
        RangeSet { ranges: Vec::new() }
    }

    /// The set `[lo, hi]`; empty when `lo > hi`.
    pub fn range(lo: T, hi: T) -> Self {
        if lo > hi {
            Self::empty()
        } else {
            RangeSet {
                ranges: vec![(lo, hi)],
            }
        }
    }

    /// Builds a set from arbitrary (possibly overlapping, unordered) inclusive ranges.
    pub fn from_ranges(iter: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut v: Vec<(T, T)> = iter.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            if let Some(last) = out.last_mut() {
                // Merge overlapping or adjacent ranges.
                if last.1.succ().is_none_or(|n| a <= n) {
                    if b > last.1 {
                        last.1 = b;
                    }
                    continue;
                }
            }
            out.push((a, b));
        }
        RangeSet { ranges: out }
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, x: T) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < x);
        i < self.ranges.len() && self.ranges[i].0 <= x
    }

    /// True when `other` is a subset of `self`.
    pub fn contains_set(&self, other: &Self) -> bool {
        other.subtract(self).is_empty()
    }

    pub fn union(&self, other: &Self) -> Self {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        Self::from_ranges(self.ranges.iter().chain(other.ranges.iter()).copied())
    }

    pub fn intersect(&self, other: &Self) -> Self {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a0, a1) = self.ranges[i];
            let (b0, b1) = other.ranges[j];
            let lo = a0.max(b0);
            let hi = a1.min(b1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet { ranges: out }
    }

    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let mut j = 0;
        for &(a0, a1) in &self.ranges {
            let mut lo = Some(a0);
            while j < other.ranges.len() && other.ranges[j].1 < a0 {
                j += 1;
            }
            let mut k = j;
            while let Some(cur) = lo {
                if k >= other.ranges.len() || other.ranges[k].0 > a1 {
                    out.push((cur, a1));
                    break;
                }
                let (b0, b1) = other.ranges[k];
                if b0 > cur {
                    // b0 > cur >= T::MIN, so b0 has a predecessor.
                    if let Some(p) = b0.pred() {
                        out.push((cur, p));
                    }
                }
                lo = if b1 >= a1 { None } else { b1.succ() };
                k += 1;
            }
        }
        RangeSet { ranges: out }
    }

    /// Every range start and every range end + 1: the points where membership changes.
    pub fn boundaries(&self) -> impl Iterator<Item = T> + '_ {
        self.ranges
            .iter()
            .flat_map(|&(a, b)| std::iter::once(Some(a)).chain(std::iter::once(b.succ())))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(s: &RangeSet<u16>) -> Vec<u16> {
        s.ranges().iter().flat_map(|&(a, b)| a..=b).collect()
    }

    fn arb() -> impl Strategy<Value = RangeSet<u16>> {
        prop::collection::vec((0u16..200, 0u16..20), 0..6)
            .prop_map(|v| RangeSet::from_ranges(v.into_iter().map(|(a, l)| (a, a + l))))
    }

    proptest! {
        #[test]
        fn ops_agree_with_naive_sets(a in arb(), b in arb()) {
            use std::collections::BTreeSet;
            let sa: BTreeSet<u16> = naive(&a).into_iter().collect();
            let sb: BTreeSet<u16> = naive(&b).into_iter().collect();
            prop_assert_eq!(naive(&a.union(&b)), sa.union(&sb).copied().collect::<Vec<_>>());
            prop_assert_eq!(naive(&a.intersect(&b)), sa.intersection(&sb).copied().collect::<Vec<_>>());
            prop_assert_eq!(naive(&a.subtract(&b)), sa.difference(&sb).copied().collect::<Vec<_>>());
            for x in 0..230u16 {
                prop_assert_eq!(a.contains(x), sa.contains(&x));
            }
        }
    }

    #[test]
    fn adjacent_ranges_merge_and_extremes_work() {
        let s = RangeSet::from_ranges([(1u16, 5), (6, 9), (20, 30)]);
        assert_eq!(s.ranges(), &[(1, 9), (20, 30)]);
        let all = RangeSet::range(0u32, u32::MAX);
        let hole = all
            .subtract(&RangeSet::range(0, 0))
            .subtract(&RangeSet::range(u32::MAX, u32::MAX));
        assert_eq!(hole.ranges(), &[(1, u32::MAX - 1)]);
        assert_eq!(all.subtract(&all), RangeSet::empty());
        assert_eq!(hole.boundaries().collect::<Vec<_>>(), vec![1, u32::MAX]);
    }
}
