//! Grouped reachability between two sets of endpoints, for verifying properties over every pair
//! without visiting every pair one by one (`bulkhead verify --k8s`).
//!
//! A pair's connections are the source's egress-class verdict for the destination meet the
//! destination's ingress-class verdict for the source (see [`Engine::for_each_connection`]).
//! For one ingress class, the sources that share an egress class and the same ingress verdict
//! form a *source group*: for every destination of that ingress class, each group costs one
//! table lookup and one memoised intersection, whatever its size. The answers are then
//! aggregated per destination and distinct connection set, with how many sources reach it so
//! and one concrete source, so a caller sees a few groups per destination, not every source.

use super::{Engine, Interner, Meet};
use crate::bitset::{Bitset, Members};
use crate::conn::ConnSet;
use crate::engine::Endpoint;
use crate::index::dir_index;
use crate::ip::{IpRange, IpSet, pieces};
use crate::model::Direction;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// A set of endpoints: workloads, and address ranges outside the cluster.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Over [`crate::Cluster::workloads`].
    pub workloads: Bitset,
    /// Disjoint address ranges outside the cluster, each within one external piece of the
    /// direction it is used in: the ingress pieces for sources, the egress pieces for
    /// destinations (take them from [`Engine::external_cuts`]).
    pub external: Vec<IpRange>,
}

/// The sources of [`Engine::for_each_reach`] that reach one destination with exactly the same
/// connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachGroup<'a> {
    pub dst: Endpoint,
    /// What each of these sources may open to `dst` (possibly nothing).
    pub conns: &'a ConnSet,
    /// How many sources (workloads and external ranges, never `dst` itself).
    pub sources: u64,
    /// One of them.
    pub example: Endpoint,
}

/// An external range given to [`Engine::for_each_reach`] that is not within one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "address range {0} spans several external pieces of the engine (cut it with Engine::external_cuts)"
)]
pub struct SpansPieces(pub IpRange);

/// Sources that reach the destinations of one ingress class alike (relative to their egress
/// verdicts): an egress class (compact index, or [`EXTERNAL`]) and an ingress verdict.
#[derive(Clone, Copy, Debug)]
struct Group {
    egress: u32,
    ingress: u32,
    count: u64,
    first: Endpoint,
    second: Option<Endpoint>,
}

/// How many elements a block holds.
fn members_len(m: &Members) -> usize {
    match m {
        Members::Dense(b) => b.count(),
        Members::Sparse { elems, .. } => elems.len(),
    }
}

/// The "egress class" of an external source: it has no egress of its own.
const EXTERNAL: u32 = u32::MAX;

/// Rows of the per-destination egress table kept at once (entries of 4 bytes).
const TABLE_BUDGET: usize = (256usize << 20) / 4;

impl Engine<'_> {
    /// The external pieces of a direction cut further at the boundaries of `extra` (for example
    /// the CIDRs a question names): maximal runs of addresses that every address set of the
    /// direction's rules and every set of `extra` holds entirely or not at all.
    pub fn external_cuts(&self, dir: Direction, extra: &[&IpSet]) -> Vec<IpRange> {
        let mut sets = self.referenced_ip_sets(dir);
        sets.extend(extra.iter().copied());
        pieces(sets)
    }

    /// The external piece of a direction holding all of `r`.
    fn piece_of(&self, dir: Direction, r: IpRange) -> Result<usize, SpansPieces> {
        let ranges = &self.pieces.ranges[dir_index(dir)];
        let key = |x: &IpRange| match *x {
            IpRange::V4(a, _) => (0u8, a as u128),
            IpRange::V6(a, _) => (1u8, a),
        };
        let end = |x: &IpRange| match *x {
            IpRange::V4(_, b) => (0u8, b as u128),
            IpRange::V6(_, b) => (1u8, b),
        };
        let at = ranges.partition_point(|p| key(p) <= key(&r));
        match at.checked_sub(1) {
            Some(j) if end(&ranges[j]) >= end(&r) && key(&ranges[j]).0 == key(&r).0 => Ok(j),
            _ => Err(SpansPieces(r)),
        }
    }

    /// For every destination of `dsts`, the sources of `srcs` grouped by what they may open to
    /// it: `f` is called once per destination and distinct connection set (the empty set
    /// included), with the number of sources and one of them. Pairs of a workload with itself
    /// and of two external ranges are left out; every other pair of `srcs` × `dsts` is counted
    /// in exactly one group. All groups of one destination come together (workload destinations
    /// by ingress class, then external ones); the order is deterministic.
    pub fn for_each_reach(
        &self,
        srcs: &Endpoints,
        dsts: &Endpoints,
        mut f: impl FnMut(ReachGroup<'_>),
    ) -> Result<(), SpansPieces> {
        let n = self.cluster.workloads.len();
        let (ei, ii) = (dir_index(Direction::Egress), dir_index(Direction::Ingress));
        let n_in = self.pieces.ranges[ii].len();
        let src_ext: Vec<(IpRange, usize)> = srcs
            .external
            .iter()
            .map(|&r| Ok((r, self.piece_of(Direction::Ingress, r)?)))
            .collect::<Result<_, _>>()?;
        let dst_ext: Vec<(IpRange, usize)> = dsts
            .external
            .iter()
            .map(|&r| Ok((r, self.piece_of(Direction::Egress, r)?)))
            .collect::<Result<_, _>>()?;

        let mut interner = Interner::default();
        let empty = interner.id(&ConnSet::none());
        // Source workloads, their position, and their egress classes (compacted).
        let src_list: Vec<usize> = srcs.workloads.ones().filter(|&s| s < n).collect();
        let mut pos = vec![u32::MAX; n];
        for (k, &s) in src_list.iter().enumerate() {
            pos[s] = k as u32;
        }
        let mut compact: HashMap<u32, u32> = HashMap::default();
        let mut e_classes: Vec<u32> = Vec::new();
        let src_ce: Vec<u32> = src_list
            .iter()
            .map(|&s| {
                let c = self.classes[ei].of[s];
                *compact.entry(c).or_insert_with(|| {
                    e_classes.push(c);
                    (e_classes.len() - 1) as u32
                })
            })
            .collect();
        let e_ids: Vec<Vec<u32>> = e_classes
            .iter()
            .map(|&c| {
                self.class_fn(Direction::Egress, c)
                    .blocks
                    .iter()
                    .map(|(_, cs)| interner.id(cs))
                    .collect()
            })
            .collect();
        // Destination workloads by ingress class, with their verdict ids.
        let dst_list: Vec<usize> = dsts.workloads.ones().filter(|&d| d < n).collect();
        let mut i_ids: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &d in &dst_list {
            let c = self.classes[ii].of[d];
            i_ids.entry(c).or_insert_with(|| {
                self.class_fn(Direction::Ingress, c)
                    .blocks
                    .iter()
                    .map(|(_, cs)| interner.id(cs))
                    .collect()
            });
        }
        let mut meet = Meet::new(interner.sets.len());
        let universe = n + self.pieces.ranges[ei].len();
        // Per egress class: its largest block, when its blocks cover the universe, and that
        // block's verdict (otherwise none, and the empty set).
        let mut e_base_block: Vec<Option<usize>> = Vec::with_capacity(e_classes.len());
        let mut e_base: Vec<u32> = Vec::with_capacity(e_classes.len());
        for (c, ids) in e_ids.iter().enumerate() {
            let blocks = &self.class_fn(Direction::Egress, e_classes[c]).blocks;
            let sizes: Vec<usize> = blocks.iter().map(|(b, _)| members_len(b)).collect();
            let base = (sizes.iter().sum::<usize>() == universe)
                .then(|| (0..blocks.len()).max_by_key(|&k| sizes[k]))
                .flatten();
            e_base_block.push(base);
            e_base.push(base.map_or(empty, |k| ids[k]));
        }

        // Table rows: destination workloads, then the egress pieces of external destinations,
        // in ascending universe order.
        let mut rows: Vec<usize> = dst_list.clone();
        let mut ext_rows: Vec<usize> = dst_ext.iter().map(|&(_, q)| n + q).collect();
        ext_rows.sort_unstable();
        ext_rows.dedup();
        rows.extend(&ext_rows);
        let mut row_of = vec![u32::MAX; universe];
        for (r, &u) in rows.iter().enumerate() {
            row_of[u] = r as u32;
        }
        let ce = e_classes.len().max(1);
        let chunk = (TABLE_BUDGET / ce).clamp(1, rows.len().max(1));

        // Sources by egress class alone, for external destinations (only the egress decides).
        let mut by_egress: Vec<(u64, Option<Endpoint>)> = vec![(0, None); e_classes.len()];
        for (k, &s) in src_list.iter().enumerate() {
            let g = &mut by_egress[src_ce[k] as usize];
            g.0 += 1;
            g.1.get_or_insert(Endpoint::Workload(s));
        }

        let mut src_by_egress: Vec<Vec<usize>> = vec![Vec::new(); e_classes.len()];
        for (k, &s) in src_list.iter().enumerate() {
            src_by_egress[src_ce[k] as usize].push(s);
        }
        let mut moved_by_egress = vec![0u64; e_classes.len()];
        let mut cnt = vec![0u64; e_classes.len()];
        let mut ex: Vec<(Endpoint, Option<Endpoint>)> =
            vec![(Endpoint::Workload(0), None); e_classes.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut t: Vec<u32> = Vec::new();
        let mut iv_src = vec![empty; src_list.len()];
        let mut seen = vec![0u32; src_list.len()];
        let mut stamp = 0u32;
        let mut iv_piece = vec![empty; n_in];
        let mut out: Vec<(u32, u64, Option<Endpoint>)> = Vec::new();
        let mut emit = |dst: Endpoint, out: &[(u32, u64, Option<Endpoint>)], sets: &[ConnSet]| {
            for &(r, count, ex) in out {
                if count == 0 {
                    continue;
                }
                if let Some(example) = ex {
                    f(ReachGroup {
                        dst,
                        conns: &sets[r as usize],
                        sources: count,
                        example,
                    });
                }
            }
        };
        let mut lo = 0;
        while lo < rows.len() {
            let hi = (lo + chunk).min(rows.len());
            let (ulo, uhi) = (rows[lo], rows[hi - 1] + 1);
            // Each egress class's base verdict everywhere, then its other blocks.
            t.clear();
            for _ in lo..hi {
                t.extend_from_slice(&e_base);
            }
            if e_base.is_empty() {
                t.resize((hi - lo) * ce, empty);
            }
            for (c, ids) in e_ids.iter().enumerate() {
                let blocks = &self.class_fn(Direction::Egress, e_classes[c]).blocks;
                for (k, ((b, _), &id)) in blocks.iter().zip(ids).enumerate() {
                    if Some(k) == e_base_block[c] || id == e_base[c] {
                        continue;
                    }
                    b.each_in(ulo, uhi, |u| {
                        let r = row_of[u];
                        if r != u32::MAX {
                            t[(r as usize - lo) * ce + c] = id;
                        }
                    });
                }
            }
            // Workload destinations of this chunk, by ingress class.
            let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for &d in rows[lo..hi].iter().filter(|&&u| u < n) {
                by_class.entry(self.classes[ii].of[d]).or_default().push(d);
            }
            for (ic, ds) in by_class {
                let blocks = &self.class_fn(Direction::Ingress, ic).blocks;
                let ids = &i_ids[&ic];
                // The base block: the largest, when the blocks cover the whole universe (each
                // source then has the base verdict unless another block holds it), so only the
                // members of the other blocks are visited.
                let sizes: Vec<usize> = blocks.iter().map(|(b, _)| members_len(b)).collect();
                let base = (sizes.iter().sum::<usize>() == n + n_in)
                    .then(|| (0..blocks.len()).max_by_key(|&k| sizes[k]))
                    .flatten();
                let base_iv = base.map_or(empty, |k| ids[k]);
                stamp += 1;
                // Members of the other blocks, counted per egress class (block by block, so
                // the ingress verdict is fixed while counting).
                let mut moved: Vec<Group> = Vec::new();
                for (k, ((b, _), &id)) in blocks.iter().zip(ids).enumerate() {
                    if Some(k) == base || id == base_iv {
                        continue;
                    }
                    b.each_in(0, n, |u| {
                        let p = pos[u];
                        if p == u32::MAX {
                            return;
                        }
                        let p = p as usize;
                        iv_src[p] = id;
                        seen[p] = stamp;
                        let c = src_ce[p] as usize;
                        moved_by_egress[c] += 1;
                        let e = Endpoint::Workload(u);
                        match cnt[c] {
                            0 => {
                                touched.push(c as u32);
                                ex[c] = (e, None);
                            }
                            1 => ex[c].1 = Some(e),
                            _ => {}
                        }
                        cnt[c] += 1;
                    });
                    for &c in &touched {
                        let c = c as usize;
                        moved.push(Group {
                            egress: c as u32,
                            ingress: id,
                            count: cnt[c],
                            first: ex[c].0,
                            second: ex[c].1,
                        });
                        cnt[c] = 0;
                    }
                    touched.clear();
                }
                if !src_ext.is_empty() {
                    iv_piece.fill(base_iv);
                    for ((b, _), &id) in blocks.iter().zip(ids) {
                        b.each_in(n, n + n_in, |u| iv_piece[u - n] = id);
                    }
                }
                // Sources of each egress class left with the base verdict.
                let mut groups: Vec<Group> = Vec::with_capacity(e_classes.len() + moved.len());
                for (c, members) in src_by_egress.iter().enumerate() {
                    let left = members.len() as u64 - moved_by_egress[c];
                    moved_by_egress[c] = 0;
                    if left == 0 {
                        continue;
                    }
                    let mut ex = members
                        .iter()
                        .filter(|&&s| seen[pos[s] as usize] != stamp)
                        .map(|&s| Endpoint::Workload(s));
                    if let Some(first) = ex.next() {
                        groups.push(Group {
                            egress: c as u32,
                            ingress: base_iv,
                            count: left,
                            first,
                            second: ex.next(),
                        });
                    }
                }
                groups.extend(moved);
                for &(r, p) in &src_ext {
                    groups.push(Group {
                        egress: EXTERNAL,
                        ingress: iv_piece[p],
                        count: 1,
                        first: Endpoint::External(r),
                        second: None,
                    });
                }
                // A source's own verdict from this class (for the pair of `d` with itself).
                let own_iv = |p: usize| if seen[p] == stamp { iv_src[p] } else { base_iv };
                for &d in &ds {
                    let row = row_of[d] as usize - lo;
                    let trow = &t[row * ce..(row + 1) * ce];
                    out.clear();
                    let me = Endpoint::Workload(d);
                    let mut reach = |g: &Group| {
                        if g.egress == EXTERNAL {
                            g.ingress
                        } else {
                            let e = trow[g.egress as usize];
                            if e == empty || g.ingress == empty {
                                empty
                            } else {
                                meet.get(e, g.ingress, &mut interner)
                            }
                        }
                    };
                    for g in &groups {
                        let r = reach(g);
                        let ex = if g.first != me {
                            Some(g.first)
                        } else {
                            g.second
                        };
                        match out.iter_mut().find(|o| o.0 == r) {
                            Some(o) => {
                                o.1 += g.count;
                                if o.2.is_none_or(|x| x == me) {
                                    o.2 = ex;
                                }
                            }
                            None => out.push((r, g.count, ex)),
                        }
                    }
                    // The pair of `d` with itself is not a connection.
                    if pos[d] != u32::MAX {
                        let k = pos[d] as usize;
                        let own = Group {
                            egress: src_ce[k],
                            ingress: own_iv(k),
                            count: 1,
                            first: me,
                            second: None,
                        };
                        let r = reach(&own);
                        if let Some(o) = out.iter_mut().find(|o| o.0 == r) {
                            o.1 -= 1;
                        }
                    }
                    emit(me, &out, &interner.sets);
                }
            }
            // External destinations of this chunk: only the source's egress decides.
            for &(y, q) in &dst_ext {
                let r = row_of[n + q] as usize;
                if r < lo || r >= hi {
                    continue;
                }
                let trow = &t[(r - lo) * ce..(r - lo + 1) * ce];
                out.clear();
                for (c, &(count, ex)) in by_egress.iter().enumerate() {
                    let id = trow[c];
                    match out.iter_mut().find(|o| o.0 == id) {
                        Some(o) => o.1 += count,
                        None => out.push((id, count, ex)),
                    }
                }
                emit(Endpoint::External(y), &out, &interner.sets);
            }
            lo = hi;
        }
        Ok(())
    }
}
