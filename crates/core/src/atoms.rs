//! Atoms of a direction's peer universe: the coarsest partition we keep such that every set in
//! it (here: every admin rule's peers, and the named-port partitions those rules use) is a union
//! of atoms. Admin rules pick peers by namespace labels, so a universe of ten thousand workloads
//! has a few hundred atoms, and the admin layer is worked out over atoms instead of peers.
//!
//! Atoms only ever split: a set that goes away leaves its cuts behind, which keeps every other
//! set's atoms valid (finer atoms are still atoms).

use crate::bitset::Bitset;
use rustc_hash::FxHashMap as HashMap;

/// A partition of `0..len` into atoms, and sets over it by key.
#[derive(Clone, Debug)]
pub(crate) struct Atoms<K> {
    /// Per universe element: its atom.
    of: Vec<u32>,
    /// Per atom: its elements, and how many.
    members: Vec<Bitset>,
    size: Vec<usize>,
    /// Sets registered by key, as sets of atoms.
    sets: HashMap<K, Bitset>,
}

impl<K: Clone + Eq + std::hash::Hash> Atoms<K> {
    /// One atom holding the whole universe (none if it is empty).
    pub(crate) fn new(len: usize) -> Self {
        let (of, members, size) = if len == 0 {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (vec![0; len], vec![Bitset::full(len)], vec![len])
        };
        Atoms {
            of,
            members,
            size,
            sets: HashMap::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
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
                self.members[a] = inside;
                self.members.push(outside);
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

    /// Groups of atoms as sets of universe elements (each group a set of atoms).
    pub(crate) fn expand<V>(&self, groups: Vec<(Bitset, V)>) -> Vec<(Bitset, V)> {
        let len = self.of.len();
        let mut group_of = vec![u32::MAX; self.members.len()];
        for (g, (atoms, _)) in groups.iter().enumerate() {
            for a in atoms.ones() {
                group_of[a] = g as u32;
            }
        }
        let mut out: Vec<(Bitset, V)> = groups
            .into_iter()
            .map(|(_, v)| (Bitset::empty(len), v))
            .collect();
        for (u, &a) in self.of.iter().enumerate() {
            let g = group_of[a as usize];
            if g != u32::MAX {
                out[g as usize].0.insert(u);
            }
        }
        out
    }
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
    fn sets_stay_unions_of_atoms_as_atoms_split() {
        let mut a: Atoms<&str> = Atoms::new(8);
        a.insert("x", &set(8, &[0, 1, 2, 3]));
        assert_eq!(a.len(), 2);
        a.insert("y", &set(8, &[2, 3, 4]));
        assert_eq!(a.len(), 4, "{{0,1}} {{2,3}} {{4}} {{5,6,7}}");
        // "x" was registered before the cut of {0,1,2,3}; it still expands to its elements.
        for (key, want) in [("x", vec![0, 1, 2, 3]), ("y", vec![2, 3, 4])] {
            let atoms = a.get(&key).unwrap().clone();
            let got = a.expand(vec![(atoms, ())]);
            assert_eq!(got[0].0.ones().collect::<Vec<_>>(), want, "{key}");
        }
        a.remove(&"y");
        assert!(a.get(&"y").is_none());
        assert_eq!(a.len(), 4, "cuts stay");
        assert_eq!((a.rep(1), a.rep(3)), (Some(4), Some(5)));
    }
}
