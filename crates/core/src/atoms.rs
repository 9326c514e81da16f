//! Atoms of a direction's peer universe: the coarsest partition we keep such that every set in
//! it (here: every admin rule's peers, and the named-port partitions those rules use) is a union
//! of atoms. Admin rules pick peers by namespace labels, so a universe of ten thousand workloads
//! has a few hundred atoms, and the admin layer is worked out over atoms instead of peers.
//!
//! Atoms only ever split: a set that goes away leaves its cuts behind, which keeps every other
//! set's atoms valid (finer atoms are still atoms).

use crate::bitset::{Bitset, IndexedBitset};
use rustc_hash::FxHashMap as HashMap;

/// A partition of `0..len` into atoms, and sets over it by key.
#[derive(Clone, Debug)]
pub(crate) struct Atoms<K> {
    /// Per universe element: its atom.
    of: Vec<u32>,
    /// Per atom: its elements, and how many.
    members: Vec<Bitset>,
    size: Vec<usize>,
    /// Per atom: its elements' nonzero words (the same sets as `members`, kept for
    /// [`Atoms::expand`], which then pays for an atom's extent rather than the universe).
    /// Shared with the regions an update report expands later ([`Atoms::words`]), copied when
    /// they change while one holds them.
    words: std::sync::Arc<Vec<IndexedBitset>>,
    /// Sets registered by key, as sets of atoms.
    sets: HashMap<K, Bitset>,
    /// Per atom: the atom it was split from (itself for the first).
    parent: Vec<u32>,
}

impl<K: Clone + Eq + std::hash::Hash> Atoms<K> {
    /// One atom holding the whole universe (none if it is empty).
    pub(crate) fn new(len: usize) -> Self {
        let (of, members, size) = if len == 0 {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (vec![0; len], vec![Bitset::full(len)], vec![len])
        };
        let parent = (0..members.len() as u32).collect();
        let words = std::sync::Arc::new(members.iter().map(IndexedBitset::new).collect());
        Atoms {
            of,
            members,
            size,
            words,
            sets: HashMap::default(),
            parent,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The atom of universe element `u`.
    pub(crate) fn atom_of(&self, u: usize) -> usize {
        self.of[u] as usize
    }

    /// How many universe elements a set of atoms holds.
    pub(crate) fn count_of(&self, atoms: &Bitset) -> usize {
        atoms.ones().map(|a| self.size[a]).sum()
    }

    /// A universe element of atom `a`.
    pub(crate) fn rep(&self, a: usize) -> Option<usize> {
        self.members[a].first()
    }

    /// The atoms of a registered set.
    pub(crate) fn get(&self, key: &K) -> Option<&Bitset> {
        self.sets.get(key)
    }

    /// Registers (or replaces) a set of universe elements under `key`, cutting atoms so that it
    /// is a union of them.
    pub(crate) fn insert(&mut self, key: K, set: &Bitset) {
        let before = self.members.len();
        let mut splits: Vec<(usize, usize)> = Vec::new();
        // Only atoms the set holds part of are cut: count the set's elements per atom.
        let mut inside_count = vec![0u32; before];
        for u in set.ones() {
            inside_count[self.of[u] as usize] += 1;
        }
        for (a, &k) in inside_count.iter().enumerate() {
            let k = k as usize;
            if k == 0 || k == self.size[a] {
                continue;
            }
            if let Some((inside, outside)) = self.members[a].split(set) {
                self.size[a] = k;
                self.size.push(outside.count());
                let b = self.members.len();
                for u in outside.ones() {
                    self.of[u] = b as u32;
                }
                let words = std::sync::Arc::make_mut(&mut self.words);
                words[a] = IndexedBitset::new(&inside);
                words.push(IndexedBitset::new(&outside));
                self.members[a] = inside;
                self.members.push(outside);
                self.parent.push(a as u32);
                splits.push((a, b));
            }
        }
        let n = self.members.len();
        if n != before {
            // Every set holding a cut atom holds both of its parts.
            for s in self.sets.values_mut() {
                *s = s.resized(before, n);
                for &(a, b) in &splits {
                    if s.contains(a) {
                        s.insert(b);
                    }
                }
            }
        }
        let mut atoms = Bitset::empty(n);
        for u in set.ones() {
            atoms.insert(self.of[u] as usize);
        }
        self.sets.insert(key, atoms);
    }

    /// Forgets a set (its cuts stay).
    pub(crate) fn remove(&mut self, key: &K) {
        self.sets.remove(key);
    }

    /// The atoms of the elements from `w` on.
    pub(crate) fn tail(&self, w: usize) -> &[u32] {
        &self.of[w..]
    }

    /// Carries the partition of `[0..w | old tail]` to `[0..w | new tail]`, where element
    /// `w + j` of the new tail takes the atom of element `w + map[j]` of the old one. Every atom
    /// keeps its index, and so does every set of atoms; an atom left without elements stays,
    /// empty ([`Atoms::rep`] is then `None`).
    pub(crate) fn remap(&mut self, w: usize, map: &[usize]) {
        let len = w + map.len();
        for m in &mut self.members {
            *m = m.resized(w, len);
        }
        for &a in &self.of[w..] {
            self.size[a as usize] -= 1;
        }
        let tail: Vec<u32> = map.iter().map(|&k| self.of[w + k]).collect();
        self.of.truncate(w);
        for (j, a) in tail.into_iter().enumerate() {
            self.members[a as usize].insert(w + j);
            self.size[a as usize] += 1;
            self.of.push(a);
        }
        self.words = std::sync::Arc::new(self.members.iter().map(IndexedBitset::new).collect());
    }

    /// A set of atoms taken when there were fewer, as a set of today's atoms: every atom
    /// split off since from an atom of the set is in it too.
    pub(crate) fn catch_up(&self, set: &Bitset) -> Bitset {
        let (was, n) = (set.len(), self.members.len());
        if was == n {
            return set.clone();
        }
        let mut out = set.resized(was, n);
        for b in was..n {
            if out.contains(self.parent[b] as usize) {
                out.insert(b);
            }
        }
        out
    }

    /// Disjoint groups of atoms as sets of universe elements: each group the union of its
    /// atoms' nonzero words, so a group pays for the extent of its atoms, not for the universe.
    pub(crate) fn expand<V>(&self, groups: Vec<(Bitset, V)>) -> Vec<(Bitset, V)> {
        groups
            .into_iter()
            .map(|(g, v)| (expand(&self.words, self.of.len(), g.ones()), v))
            .collect()
    }

    /// The atoms' nonzero words as they are now, to expand sets of today's atoms later
    /// ([`expand`]), and the universe's length.
    pub(crate) fn words(&self) -> (std::sync::Arc<Vec<IndexedBitset>>, usize) {
        (self.words.clone(), self.of.len())
    }
}

/// The elements of `atoms` (of a universe of `len`), given each atom's nonzero words.
pub(crate) fn expand(
    words: &[IndexedBitset],
    len: usize,
    atoms: impl Iterator<Item = usize>,
) -> Bitset {
    let mut b = Bitset::empty(len);
    for a in atoms {
        words[a].add_to(&mut b);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(len: usize, xs: &[usize]) -> Bitset {
        let mut b = Bitset::empty(len);
        for &x in xs {
            b.insert(x);
        }
        b
    }

    #[test]
    fn a_remapped_partition_keeps_its_atoms_and_sets() {
        // Four elements, then a tail of three (4, 5, 6); the new tail has four: two copies of
        // old 4, one of old 6, none of old 5.
        let mut a: Atoms<&str> = Atoms::new(7);
        a.insert("x", &set(7, &[0, 1, 4]));
        a.insert("y", &set(7, &[1, 5]));
        let before: Vec<Bitset> = ["x", "y"].map(|k| a.get(&k).unwrap().clone()).into();
        let atom = |a: &Atoms<&str>, u: usize| a.atom_of(u);
        let (a0, a4, a5, a6) = (atom(&a, 0), atom(&a, 4), atom(&a, 5), atom(&a, 6));
        a.remap(4, &[0, 0, 2, 0]);
        assert_eq!(a.len(), before[0].len(), "atoms keep their indices");
        assert_eq!(
            ["x", "y"].map(|k| a.get(&k).unwrap().clone()).to_vec(),
            before
        );
        assert_eq!([4, 5, 6, 7].map(|u| atom(&a, u)), [a4, a4, a6, a4]);
        assert_eq!(atom(&a, 0), a0);
        // Old 5 shared its atom with nothing else: that atom is now empty.
        assert_ne!(a5, a4);
        assert_eq!(a.rep(a5), None);
        assert_eq!(a.count_of(a.get(&"y").unwrap()), 1);
        let x = a.expand(vec![(a.get(&"x").unwrap().clone(), ())]);
        assert_eq!(x[0].0.ones().collect::<Vec<_>>(), vec![0, 1, 4, 5, 7]);
    }

    #[test]
    fn sets_stay_unions_of_atoms_as_atoms_split() {
        let mut a: Atoms<&str> = Atoms::new(8);
        a.insert("x", &set(8, &[0, 1, 2, 3]));
        assert_eq!(a.len(), 2);
        a.insert("y", &set(8, &[2, 3, 4]));
        assert_eq!(a.len(), 4, "{{0,1}} {{2,3}} {{4}} {{5,6,7}}");
        // "x" was registered before the cut of {0,1,2,3}; it still expands to its elements.
        for (key, want) in [("x", vec![0, 1, 2, 3]), ("y", vec![2, 3, 4])] {
            let atoms = a.get(&key).unwrap().clone();
            assert_eq!(a.count_of(&atoms), want.len(), "{key}");
            let got = a.expand(vec![(atoms, ())]);
            assert_eq!(got[0].0.ones().collect::<Vec<_>>(), want, "{key}");
        }
        a.remove(&"y");
        assert!(a.get(&"y").is_none());
        assert_eq!(a.len(), 4, "cuts stay");
        assert_eq!((a.rep(1), a.rep(3)), (Some(4), Some(5)));
    }

    #[test]
    fn sets_of_atoms_taken_before_splits_catch_up() {
        let mut a: Atoms<&str> = Atoms::new(10);
        a.insert("x", &set(10, &[0, 1, 2, 3, 4]));
        let old_x = a.get(&"x").unwrap().clone();
        let old_rest = Bitset::full(a.len()).subtract(&old_x);
        // Cuts through both parts, and through a part made by an earlier cut.
        a.insert("y", &set(10, &[3, 4, 5, 6]));
        a.insert("z", &set(10, &[4, 6, 9]));
        assert!(a.len() > 2);
        for (old, want) in [
            (old_x, vec![0, 1, 2, 3, 4]),
            (old_rest, vec![5, 6, 7, 8, 9]),
        ] {
            let now = a.catch_up(&old);
            assert_eq!(now.len(), a.len());
            let got = a.expand(vec![(now, ())]);
            assert_eq!(got[0].0.ones().collect::<Vec<_>>(), want);
        }
        // Expanding disjoint groups agrees with the atoms element by element, and the atoms
        // partition the universe.
        let n = a.len();
        let groups: Vec<(Bitset, usize)> = (0..n)
            .step_by(2)
            .map(|i| (set(n, &[i, (i + 1).min(n - 1)]), i))
            .collect();
        let expanded = a.expand(groups.clone());
        for ((g, v), (b, w)) in groups.iter().zip(&expanded) {
            assert_eq!(v, w);
            let want: Vec<usize> = (0..10).filter(|&u| g.contains(a.atom_of(u))).collect();
            assert_eq!(b.ones().collect::<Vec<_>>(), want);
        }
        let mut count = vec![0; 10];
        for (b, _) in &expanded {
            for u in b.ones() {
                count[u] += 1;
            }
        }
        assert_eq!(count, vec![1; 10], "each element in one atom");
    }
}
