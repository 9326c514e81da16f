//! Fixed-length bit sets: the engine's sets of workloads and external pieces.

/// A set of indices `0..len`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for Bitset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.ones()).finish()
    }
}

impl Bitset {
    pub fn empty(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub fn full(len: usize) -> Self {
        let mut b = Bitset {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        b.trim();
        b
    }

    /// The set `lo..hi`.
    pub fn range(len: usize, lo: usize, hi: usize) -> Self {
        let mut b = Bitset::empty(len);
        for i in lo..hi.min(len) {
            b.insert(i);
        }
        b
    }

    fn trim(&mut self) {
        let extra = self.words.len() * 64 - self.len;
        if extra > 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= u64::MAX >> extra;
        }
    }

    /// The set over `[0..w | old tail]` carried to `[0..w | new tail]`: the elements below `w`
    /// stay, and new tail element `w + j` is in the set when old tail element `w + map[j]` was.
    pub fn remapped(&self, w: usize, map: &[usize]) -> Bitset {
        let mut out = self.resized(w, w + map.len());
        for (j, &k) in map.iter().enumerate() {
            if self.contains(w + k) {
                out.insert(w + j);
            }
        }
        out
    }

    /// The elements below `keep`, in a set of length `len`.
    pub fn resized(&self, keep: usize, len: usize) -> Bitset {
        let mut out = Bitset::empty(len);
        let words = keep.div_ceil(64).min(out.words.len()).min(self.words.len());
        out.words[..words].copy_from_slice(&self.words[..words]);
        if !keep.is_multiple_of(64) && words > 0 && keep.div_ceil(64) == words {
            out.words[words - 1] &= u64::MAX >> (64 - keep % 64);
        }
        out.trim();
        out
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, i: usize) {
        debug_assert!(i < self.len);
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn union_with(&mut self, o: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a |= b;
        }
    }

    pub fn intersect_with(&mut self, o: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a &= b;
        }
    }

    pub fn subtract_with(&mut self, o: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a &= !b;
        }
    }

    pub fn complement(&self) -> Bitset {
        let mut b = Bitset {
            words: self.words.iter().map(|w| !w).collect(),
            len: self.len,
        };
        b.trim();
        b
    }

    pub fn intersect(&self, o: &Bitset) -> Bitset {
        let mut b = self.clone();
        b.intersect_with(o);
        b
    }

    pub fn subtract(&self, o: &Bitset) -> Bitset {
        let mut b = self.clone();
        b.subtract_with(o);
        b
    }

    /// `(self ∩ o, self ∖ o)` when both are non-empty; `None` when `o` holds all of the set or
    /// none of it.
    pub fn split(&self, o: &Bitset) -> Option<(Bitset, Bitset)> {
        let (mut any_in, mut any_out) = (false, false);
        for (a, b) in self.words.iter().zip(&o.words) {
            any_in |= a & b != 0;
            any_out |= a & !b != 0;
            if any_in && any_out {
                break;
            }
        }
        if !(any_in && any_out) {
            return None;
        }
        Some((self.intersect(o), self.subtract(o)))
    }

    /// `self ∩ o`, or `None` when it is empty (one pass).
    pub fn intersection_if_any(&self, o: &Bitset) -> Option<Bitset> {
        let mut any = 0u64;
        let words: Vec<u64> = self
            .words
            .iter()
            .zip(&o.words)
            .map(|(a, b)| {
                let w = a & b;
                any |= w;
                w
            })
            .collect();
        (any != 0).then_some(Bitset {
            words,
            len: self.len,
        })
    }

    /// Does the set share an element with `o`?
    pub fn intersects(&self, o: &Bitset) -> bool {
        self.words.iter().zip(&o.words).any(|(a, b)| a & b != 0)
    }

    /// Is every element of `self` in `o`?
    pub fn is_subset(&self, o: &Bitset) -> bool {
        self.words.iter().zip(&o.words).all(|(a, b)| a & !b == 0)
    }

    pub fn first(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// The elements in `lo..hi`, ascending.
    pub fn ones_in(&self, lo: usize, hi: usize) -> impl Iterator<Item = usize> + '_ {
        let hi = hi.min(self.len);
        let (wlo, whi) = (
            (lo / 64).min(self.words.len()),
            hi.div_ceil(64).min(self.words.len()),
        );
        ones_of(&self.words[wlo..whi], wlo).filter(move |&x| x >= lo && x < hi)
    }

    /// The elements, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        ones_of(&self.words, 0)
    }
}

/// A bit set kept as its nonzero words with their indices, so that testing whether it meets
/// another set ([`IndexedBitset::meets`]) looks at those words only: a small set tested against
/// many others pays for its extent, not for the universe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedBitset {
    words: Vec<(u32, u64)>,
}

impl IndexedBitset {
    pub fn new(set: &Bitset) -> Self {
        let words = (set.words.iter().enumerate())
            .filter(|&(_, &w)| w != 0)
            .map(|(i, &w)| (i as u32, w))
            .collect();
        IndexedBitset { words }
    }

    /// Whether `self ∩ o` is not empty (`o` over the same universe).
    pub fn meets(&self, o: &Bitset) -> bool {
        self.words
            .iter()
            .any(|&(i, w)| w & o.words[i as usize] != 0)
    }

    /// The elements, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().flat_map(|&(i, w)| bits_of(w, i as usize))
    }

    /// Adds the elements to `o` (over the same universe), word by word.
    pub fn add_to(&self, o: &mut Bitset) {
        for &(i, w) in &self.words {
            o.words[i as usize] |= w;
        }
    }
}

/// A set kept by its density: a bit set, or its elements in order when that list takes no more
/// room than the bit set (one element in 32 or fewer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Members {
    Dense(Bitset),
    Sparse { len: usize, elems: Vec<u32> },
}

impl Members {
    pub fn new(b: Bitset) -> Self {
        if b.count() * 32 <= b.len() {
            Members::Sparse {
                len: b.len,
                elems: b.ones().map(|x| x as u32).collect(),
            }
        } else {
            Members::Dense(b)
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        match self {
            Members::Dense(b) => b.contains(i),
            Members::Sparse { elems, .. } => elems.binary_search(&(i as u32)).is_ok(),
        }
    }

    /// The set as a bit set.
    pub fn to_bitset(&self) -> Bitset {
        match self {
            Members::Dense(b) => b.clone(),
            Members::Sparse { len, elems } => {
                let mut b = Bitset::empty(*len);
                for &x in elems {
                    b.insert(x as usize);
                }
                b
            }
        }
    }

    /// Whether `self ∩ o` is not empty.
    pub fn intersects(&self, o: &Bitset) -> bool {
        match self {
            Members::Dense(b) => b.intersects(o),
            Members::Sparse { elems, .. } => elems.iter().any(|&x| o.contains(x as usize)),
        }
    }

    /// `self ∩ o`, or `None` when it is empty.
    pub fn meet(&self, o: &Bitset) -> Option<Bitset> {
        match self {
            Members::Dense(b) => b.intersection_if_any(o),
            Members::Sparse { len, elems } => {
                let mut out: Option<Bitset> = None;
                for &x in elems {
                    if o.contains(x as usize) {
                        out.get_or_insert_with(|| Bitset::empty(*len))
                            .insert(x as usize);
                    }
                }
                out
            }
        }
    }

    /// `self ∩ o` for two sets kept by density, or `None` when it is empty.
    pub fn meet_members(&self, o: &Members) -> Option<Bitset> {
        match (self, o) {
            (Members::Dense(a), b) | (b, Members::Dense(a)) => b.meet(a),
            (Members::Sparse { len, elems: a }, Members::Sparse { elems: b, .. }) => {
                let (mut i, mut j) = (0, 0);
                let mut out: Option<Bitset> = None;
                while i < a.len() && j < b.len() {
                    match a[i].cmp(&b[j]) {
                        std::cmp::Ordering::Less => i += 1,
                        std::cmp::Ordering::Greater => j += 1,
                        std::cmp::Ordering::Equal => {
                            out.get_or_insert_with(|| Bitset::empty(*len))
                                .insert(a[i] as usize);
                            i += 1;
                            j += 1;
                        }
                    }
                }
                out
            }
        }
    }

    /// Calls `f` with every element in `lo..hi`, ascending.
    pub fn each_in(&self, lo: usize, hi: usize, f: impl FnMut(usize)) {
        match self {
            Members::Dense(b) => b.ones_in(lo, hi).for_each(f),
            Members::Sparse { elems, .. } => {
                let start = elems.partition_point(|&x| (x as usize) < lo);
                elems[start..]
                    .iter()
                    .map(|&x| x as usize)
                    .take_while(|&x| x < hi)
                    .for_each(f);
            }
        }
    }

    /// The elements, ascending.
    pub fn ones(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match self {
            Members::Dense(b) => Box::new(b.ones()),
            Members::Sparse { elems, .. } => Box::new(elems.iter().map(|&x| x as usize)),
        }
    }

    /// Calls `f` with every element, ascending.
    pub fn each(&self, f: impl FnMut(usize)) {
        self.each_in(0, usize::MAX, f)
    }

    /// `|self ∩ o|`, without building the intersection.
    pub fn meet_count(&self, o: &Bitset) -> usize {
        match self {
            Members::Dense(b) => b
                .words
                .iter()
                .zip(&o.words)
                .map(|(a, b)| (a & b).count_ones() as usize)
                .sum(),
            Members::Sparse { elems, .. } => {
                elems.iter().filter(|&&x| o.contains(x as usize)).count()
            }
        }
    }

    /// The elements of `self ∩ o`, ascending, without building the intersection.
    pub fn meet_ones<'a>(&'a self, o: &'a Bitset) -> Box<dyn Iterator<Item = usize> + 'a> {
        match self {
            Members::Dense(b) => Box::new(
                (b.words.iter().zip(&o.words).enumerate())
                    .flat_map(|(k, (a, b))| bits_of(a & b, k)),
            ),
            Members::Sparse { elems, .. } => Box::new(
                elems
                    .iter()
                    .map(|&x| x as usize)
                    .filter(move |&x| o.contains(x)),
            ),
        }
    }

    /// As [`Bitset::remapped`], keeping the set's form (a list stays a list).
    pub fn remapped(&self, w: usize, map: &[usize]) -> Members {
        match self {
            Members::Dense(b) => Members::Dense(b.remapped(w, map)),
            Members::Sparse { elems, .. } => {
                let cut = elems.partition_point(|&x| (x as usize) < w);
                let (head, tail) = elems.split_at(cut);
                let mut out = head.to_vec();
                if !tail.is_empty() {
                    out.extend(
                        (map.iter().enumerate())
                            .filter(|&(_, &k)| tail.binary_search(&((w + k) as u32)).is_ok())
                            .map(|(j, _)| (w + j) as u32),
                    );
                }
                Members::Sparse {
                    len: w + map.len(),
                    elems: out,
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Members::Dense(b) => b.is_empty(),
            Members::Sparse { elems, .. } => elems.is_empty(),
        }
    }

    /// Whether the set holds an element at or above `w`.
    pub fn reaches(&self, w: usize) -> bool {
        match self {
            Members::Dense(b) => b.ones_in(w, b.len()).next().is_some(),
            Members::Sparse { elems, .. } => elems.last().is_some_and(|&x| x as usize >= w),
        }
    }

    /// The length of the universe the set is over.
    pub fn universe(&self) -> usize {
        match self {
            Members::Dense(b) => b.len(),
            Members::Sparse { len, .. } => *len,
        }
    }
}

/// The set bits of `words`, the first of which is word number `base`.
fn ones_of(words: &[u64], base: usize) -> impl Iterator<Item = usize> + '_ {
    (words.iter().enumerate()).flat_map(move |(k, &w)| bits_of(w, base + k))
}

/// The set bits of `w`, word number `at` of a set, ascending.
fn bits_of(mut w: u64, at: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if w == 0 {
            return None;
        }
        let t = w.trailing_zeros() as usize;
        w &= w - 1;
        Some(at * 64 + t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut a = Bitset::empty(130);
        for i in [0, 5, 64, 129] {
            a.insert(i);
        }
        assert_eq!(a.ones().collect::<Vec<_>>(), vec![0, 5, 64, 129]);
        assert_eq!(a.count(), 4);
        let full = Bitset::full(130);
        assert_eq!(full.count(), 130, "full set has no bits past len");
        let c = a.complement();
        assert_eq!(c.count(), 126);
        assert!(!c.intersects(&a));
        assert!(a.is_subset(&full));
        assert_eq!(full.subtract(&a), c);
        assert_eq!(a.first(), Some(0));
        assert_eq!(
            Bitset::range(130, 3, 6).ones().collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(!a.contains(200), "out of range is absent");
    }

    #[test]
    fn members_agree_with_bit_sets() {
        let len = 1000;
        let sparse = Bitset::range(len, 10, 20);
        let dense = Bitset::range(len, 15, 900);
        let (ms, md) = (Members::new(sparse.clone()), Members::new(dense.clone()));
        assert!(matches!(ms, Members::Sparse { .. }));
        assert!(matches!(md, Members::Dense(_)));
        assert_eq!(ms.to_bitset(), sparse);
        assert_eq!(md.to_bitset(), dense);
        let both = sparse.intersect(&dense);
        assert_eq!(ms.meet(&dense), Some(both.clone()));
        assert_eq!(md.meet(&sparse), Some(both.clone()));
        assert_eq!(ms.meet_members(&md), Some(both.clone()));
        assert_eq!(md.meet_members(&ms), Some(both.clone()));
        assert_eq!(ms.meet_members(&ms), Some(sparse.clone()));
        let far = Members::new(Bitset::range(len, 950, 960));
        assert_eq!(far.meet_members(&ms), None);
        assert!(ms.contains(12) && !ms.contains(20));
        let mut got = Vec::new();
        ms.each_in(12, 15, |x| got.push(x));
        assert_eq!(got, vec![12, 13, 14]);
        // Counting and listing an intersection without building it agree with building it.
        for (m, o) in [
            (&ms, &dense),
            (&md, &sparse),
            (&md, &dense),
            (&far, &sparse),
        ] {
            let built = m.to_bitset().intersect(o);
            assert_eq!(m.meet_count(o), built.count());
            assert_eq!(
                m.meet_ones(o).collect::<Vec<_>>(),
                built.ones().collect::<Vec<_>>()
            );
        }
        assert_eq!(md.meet_count(&sparse), 5, "15..20 of 10..20");
        assert_eq!(far.meet_count(&sparse), 0);
        assert_eq!(ms.universe(), len);
    }

    proptest::proptest! {
        /// An indexed set's elements and whether it meets another set, against the bit set.
        #[test]
        fn an_indexed_set_lists_and_meets_as_its_bit_set(
            members in proptest::collection::btree_set(0usize..300, 0..60),
            other in proptest::collection::btree_set(0usize..300, 0..60),
        ) {
            let (mut set, mut o) = (Bitset::empty(300), Bitset::empty(300));
            for &m in &members {
                set.insert(m);
            }
            for &m in &other {
                o.insert(m);
            }
            let indexed = IndexedBitset::new(&set);
            proptest::prop_assert_eq!(indexed.ones().collect::<Vec<_>>(), set.ones().collect::<Vec<_>>());
            proptest::prop_assert_eq!(indexed.meets(&o), set.intersects(&o));
        }

        /// A set carried to a new tail, as a list or a bit set, against carrying element by
        /// element; and whether it reaches into the tail.
        #[test]
        fn a_remapped_set_moves_its_tail_by_the_map(
            members in proptest::collection::btree_set(0usize..140, 0..40),
            w in 0usize..130,
            map in proptest::collection::vec(0usize..10, 0..20),
        ) {
            let len = 140;
            let mut set = Bitset::empty(len);
            for &m in &members {
                set.insert(m);
            }
            let old_tail = len - w;
            let map: Vec<usize> = map.into_iter().filter(|&k| k < old_tail).collect();
            let want: Vec<usize> = (members.iter().copied().filter(|&m| m < w))
                .chain((0..map.len()).filter(|&j| members.contains(&(w + map[j]))).map(|j| w + j))
                .collect();
            let b = set.remapped(w, &map);
            proptest::prop_assert_eq!(b.len(), w + map.len());
            proptest::prop_assert_eq!(b.ones().collect::<Vec<_>>(), want.clone());
            let sparse = Members::Sparse { len, elems: members.iter().map(|&m| m as u32).collect() };
            for m in [sparse, Members::Dense(set.clone())] {
                proptest::prop_assert_eq!(m.reaches(w), members.iter().any(|&x| x >= w));
                let r = m.remapped(w, &map);
                proptest::prop_assert_eq!(r.universe(), w + map.len());
                proptest::prop_assert_eq!(r.to_bitset().ones().collect::<Vec<_>>(), want.clone());
            }
        }
    }
}
