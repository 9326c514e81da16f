//! The connectivity engine: which connections one endpoint may open to another, and why.
//!
//! Precedence, per direction: AdminNetworkPolicy rules by priority (Allow/Deny decide, Pass skips
//! to the NetworkPolicy layer) → NetworkPolicy (a selected workload is isolated in that direction
//! and only its rules' allows pass) → BaselineAdminNetworkPolicy rules in order → allow. A
//! connection needs the source's egress and the destination's ingress to allow it; an address
//! outside the cluster has no policy of its own.

use crate::atoms::Atoms;
use crate::bitset::{Bitset, IndexedBitset, Members};
use crate::conn::{ConnSet, Protocol};
use crate::index::{
    DIRS, LabelIndex, NamedKey, Pieces, PolicySets, admin_order, dir_index, named_keys,
    named_partition, policy_sets,
};
use crate::ip::{Cuts, IpRange, IpSet};
use crate::model::{Action, Cluster, Direction, Layer, Peer, Policy, PortMatch, Rule};
use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

mod reach;
pub use reach::{Endpoints, ReachGroup, SpansPieces};

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// Index into [`Cluster::workloads`].
    Workload(usize),
    /// Addresses outside the cluster; the range must lie within one external piece (or be a
    /// single address) for the answer to hold for all of it.
    External(IpRange),
}

/// A rule, by policy and rule index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    pub policy: usize,
    pub rule: usize,
}

/// Why one direction of a connection was allowed or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// An admin-layer rule (AdminNetworkPolicy) allowed or denied it.
    Admin { rule: RuleRef, action: Action },
    /// NetworkPolicies select the workload and these rules allow it.
    NetworkPolicyAllow { rules: Vec<RuleRef> },
    /// NetworkPolicies select the workload (isolating it) and none of their rules allows it.
    NetworkPolicyIsolated { policies: Vec<usize> },
    /// A baseline rule (BaselineAdminNetworkPolicy) allowed or denied it.
    Baseline { rule: RuleRef, action: Action },
    /// No policy decided: allowed by default.
    Default,
}

/// The decision for one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirDecision {
    pub direction: Direction,
    pub allowed: bool,
    pub reason: Reason,
    /// The admin rule whose Pass sent the decision down to the NetworkPolicy layer, if any.
    pub passed_by: Option<RuleRef>,
}

/// The decision for a whole connection: both directions that apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The source's egress decision (absent when the source is outside the cluster).
    pub egress: Option<DirDecision>,
    /// The destination's ingress decision (absent when the destination is outside the cluster).
    pub ingress: Option<DirDecision>,
}

/// The policies and rules that apply to one workload in one direction, in order of precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Applicable {
    /// The admin rules, as an id of [`AdminLists`]: workloads with the same admin policies
    /// share one list, so an admin policy change works a new list out once per group of
    /// workloads that had the same one.
    admin: u32,
    namespaced: Vec<usize>,
    baseline: Vec<RuleRef>,
}

/// Admin rule lists (in precedence order) by id; id 0 is the empty list. Lists are kept
/// once made (there are as many as distinct sets of admin policies met).
struct AdminLists {
    lists: Vec<std::rc::Rc<[RuleRef]>>,
    ids: HashMap<std::rc::Rc<[RuleRef]>, u32>,
}

impl Default for AdminLists {
    fn default() -> Self {
        let empty: std::rc::Rc<[RuleRef]> = std::rc::Rc::from(Vec::new());
        AdminLists {
            lists: vec![empty.clone()],
            ids: [(empty, 0)].into_iter().collect(),
        }
    }
}

impl AdminLists {
    fn id(&mut self, list: Vec<RuleRef>) -> u32 {
        if let Some(&id) = self.ids.get(list.as_slice()) {
            return id;
        }
        let id = self.lists.len() as u32;
        let list: std::rc::Rc<[RuleRef]> = list.into();
        self.lists.push(list.clone());
        self.ids.insert(list, id);
        id
    }

    fn get(&self, id: u32) -> &[RuleRef] {
        &self.lists[id as usize]
    }
}

/// What decides one layer of one direction for a subject: the direction, the layer's policies
/// that apply (in precedence order), and for ingress the subject's values of the named ports
/// those policies name.
type LayerKey = (usize, Vec<u32>, NamedValues);

/// A subject's values of named ports (protocol and number, if it has the port).
type NamedValues = Vec<Option<(Protocol, u16)>>;

/// The workloads an admin policy change affects that were in one class and that it selects
/// alike (or not), as (old class, selected, workload) ([`Engine::regroup_admin`]).
type ClassRun<'a> = &'a [(u32, bool, usize)];

/// Layer keys by id. When a policy changes, the ids of the keys naming it are retired: the
/// same key then means something else, and gets a fresh id when it is next asked for, so
/// nothing computed for the old meaning is found under the new one.
#[derive(Default)]
struct LayerKeys {
    /// Ids by key; a retired id stays here until its key is asked for again (it is then
    /// replaced by a fresh one) or the keys are compacted, so retiring hashes no key.
    ids: HashMap<LayerKey, u32>,
    keys: Vec<LayerKey>,
    /// Per policy: the ids given to keys naming it (some may have been retired since, by a
    /// change of another policy the key names).
    by_policy: Vec<Vec<u32>>,
    /// Per id: retired (its key may have a fresh id by now).
    retired: Vec<bool>,
    /// How many ids are retired.
    retired_count: usize,
}

impl LayerKeys {
    fn id(&mut self, key: LayerKey) -> u32 {
        if let Some(&id) = self.ids.get(&key)
            && !self.is_retired(id)
        {
            return id;
        }
        let id = self.keys.len() as u32;
        for &p in &key.1 {
            let p = p as usize;
            if self.by_policy.len() <= p {
                self.by_policy.resize_with(p + 1, Vec::new);
            }
            self.by_policy[p].push(id);
        }
        self.keys.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    fn names(&self, id: u32, policy: u32) -> bool {
        self.keys[id as usize].1.contains(&policy)
    }

    fn is_retired(&self, id: u32) -> bool {
        self.retired.get(id as usize).copied().unwrap_or(false)
    }

    /// How many ids are in use (not retired).
    fn live(&self) -> usize {
        self.keys.len() - self.retired_count
    }

    /// Drops the keys of retired ids and renumbers the rest in order, without hashing a key
    /// again; returns the new id of each old one (`u32::MAX`: dropped).
    fn compact(&mut self) -> Vec<u32> {
        let mut map = vec![u32::MAX; self.keys.len()];
        self.retired.resize(self.keys.len(), false);
        let keys = std::mem::take(&mut self.keys);
        for (id, key) in keys.into_iter().enumerate() {
            if !self.retired[id] {
                map[id] = self.keys.len() as u32;
                self.keys.push(key);
            }
        }
        self.ids.retain(|_, id| {
            *id = map[*id as usize];
            *id != u32::MAX
        });
        for ids in &mut self.by_policy {
            ids.retain_mut(|id| {
                *id = map[*id as usize];
                *id != u32::MAX
            });
        }
        self.retired = vec![false; self.keys.len()];
        self.retired_count = 0;
        map
    }

    /// Retires the ids of every key naming `policy`, and returns those that were still in use.
    fn retire(&mut self, policy: u32) -> Vec<u32> {
        let Some(ids) = self.by_policy.get_mut(policy as usize) else {
            return Vec::new();
        };
        let mut retired = std::mem::take(ids);
        self.retired.resize(self.keys.len(), false);
        // Ids retired before by a change of another policy named are gone already.
        retired.retain(|&id| !std::mem::replace(&mut self.retired[id as usize], true));
        self.retired_count += retired.len();
        retired
    }
}

/// Workloads that behave alike in one direction: the same admin layer and the same layers
/// below it (the NetworkPolicies that select them, or else the baseline rules), as layer key
/// ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ClassKey {
    admin: u32,
    lower: u32,
}

/// A class's verdicts over the direction's whole peer universe: disjoint blocks of peers, each
/// with the connections allowed.
#[derive(Clone, Debug)]
struct ClassFn {
    blocks: Vec<(Members, ConnSet)>,
}

/// Admin-layer verdicts: blocks, each with the connections the admin rules allow and those
/// they leave to the layers below.
type AdminBlocks = Vec<(Bitset, AdminVerdict)>;

/// What the admin rules allow, and what they leave to the layers below.
type AdminVerdict = (ConnSet, ConnSet);

/// The admin layer's verdicts over a direction's universe, worked out over the direction's
/// atoms and expanded to peers only when asked for ([`Engine::admin_blocks`]).
#[derive(Clone, Debug)]
struct AdminFn {
    /// Over the atoms as they were when it was worked out (later splits are caught up with
    /// when it is read); `None` when it was worked out over peers. Made on first use when the
    /// layer was `patched` ([`Engine::admin_atoms`]).
    over_atoms: Option<OnceCell<AdminBlocks>>,
    /// A layer an admin policy change brought up to date, not read since: the layer it was
    /// patched from and the changes to make to it, in order. Patching thousands of layers
    /// would take a large part of a change; most are read again only much later, if at all.
    patched: std::cell::RefCell<Option<(std::rc::Rc<AdminFn>, Vec<AdminDelta>)>>,
    /// Over the universe of peers, made on first use.
    blocks: OnceCell<AdminBlocks>,
}

impl AdminFn {
    /// At most this many changes wait to be made to a layer: the layer they are made to, and
    /// every change, are held until then.
    const PATCHES: usize = 4;

    fn over_peers(blocks: AdminBlocks) -> Self {
        AdminFn {
            over_atoms: None,
            patched: Default::default(),
            blocks: OnceCell::from(blocks),
        }
    }

    fn over_atoms(blocks: AdminBlocks) -> Self {
        AdminFn {
            over_atoms: Some(OnceCell::from(blocks)),
            patched: Default::default(),
            blocks: OnceCell::new(),
        }
    }

    /// This layer over the external pieces of `map` (new piece to the old piece holding its
    /// first address; `None`: unmoved). Over atoms it stays as it is, the atoms being carried
    /// over with their indices (see [`Engine::remap_pieces`]); only its expansion to peers is
    /// made again.
    fn carried(&self, w: usize, map: Option<&[usize]>) -> Self {
        let Some(map) = map else {
            return self.clone();
        };
        match &self.over_atoms {
            Some(cell) => AdminFn {
                over_atoms: Some(cell.clone()),
                patched: self.patched.clone(),
                blocks: OnceCell::new(),
            },
            None => {
                let mut blocks = self.blocks.get().cloned().unwrap_or_default();
                for (b, _) in &mut blocks {
                    *b = b.remapped(w, map);
                }
                AdminFn::over_peers(blocks)
            }
        }
    }

    /// `before` with `delta` made to it, when it is read.
    fn patch(before: &std::rc::Rc<AdminFn>, delta: AdminDelta) -> Self {
        let pending = before.patched.borrow().clone();
        let (base, mut deltas) = match pending {
            Some((base, deltas)) if deltas.len() < AdminFn::PATCHES => (base, deltas),
            _ => (before.clone(), Vec::new()),
        };
        deltas.push(delta);
        AdminFn {
            over_atoms: Some(OnceCell::new()),
            patched: std::cell::RefCell::new(Some((base, deltas))),
            blocks: OnceCell::new(),
        }
    }
}

/// Where an admin layer changed, over peers, with the verdicts before and after; and per
/// region, its index in the update's regions once the report names it.
type AdminRegions = (Vec<AdminRegion>, Vec<Option<u32>>);

/// The index of `x` in the report's `list`, added the first time `slot` (where the index is
/// kept) is asked for.
fn name_in<T: Clone>(list: &mut Vec<T>, slot: &mut Option<u32>, x: &T) -> u32 {
    *slot.get_or_insert_with(|| {
        list.push(x.clone());
        (list.len() - 1) as u32
    })
}

/// How the layers below admin bear on a region of an admin change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Below {
    /// They matter: the region is read against each lower block.
    Matter,
    /// They do not, as what the admin layer delegates, before and after, it also allows: every
    /// pair in the region goes from the admin layer's allowed connections before to those
    /// after (`Some`, as indices into the report's verdicts), or none changes.
    Ignored(Option<(u32, u32)>),
}

/// Per admin atom (of `atoms`), which of `regions` holds it, counted from 1 (0: none). The
/// regions of one admin change are disjoint unions of atoms.
fn region_index<'r>(regions: impl Iterator<Item = &'r Region>, atoms: usize) -> Box<[u32]> {
    let mut of = vec![0u32; atoms].into_boxed_slice();
    for (i, r) in regions.enumerate() {
        for a in r.atoms().into_iter().flat_map(|ra| ra.ones()) {
            debug_assert_eq!(of[a], 0, "the regions of a change are disjoint");
            of[a] = i as u32 + 1;
        }
    }
    of
}

/// What identifies an [`AdminRegion`] within one update: its shared peer set (by address) and
/// its verdicts before and after.
type RegionSig = (usize, [u32; 2], [u32; 2]);

/// Class transitions of one update that change only the admin layer, in the same way
/// (`delta`, an index into the update's distinct admin changes) over the same lower layer
/// (key `lower`, of workload `rep`): their members make the same changes.
struct AdminOnly {
    delta: usize,
    lower: u32,
    rep: usize,
    members: Vec<usize>,
}

/// A region of peers where an admin layer changed, and the admin verdicts before and after
/// (allowed, delegated), as ids of the engine's [`ConnAlgebra`].
type AdminRegion = (std::rc::Rc<Region>, ([u32; 2], [u32; 2]));

/// The peers of a region where an admin layer changed, and how many: known, or, for a region
/// worked out over admin atoms, those atoms with each atom's peers as they were then, expanded
/// the first time the peers are asked for (an update names many regions that only its readers
/// expand).
struct Region {
    peers: OnceCell<Bitset>,
    count: usize,
    atoms: Option<RegionWords>,
}

/// The admin atoms of a [`Region`], the atoms' nonzero words when it was made, and the length
/// of the universe.
type RegionWords = (
    std::sync::Arc<IndexedBitset>,
    std::sync::Arc<Vec<IndexedBitset>>,
    usize,
);

impl Region {
    fn of_peers(peers: Bitset) -> Self {
        Region {
            count: peers.count(),
            peers: OnceCell::from(peers),
            atoms: None,
        }
    }

    /// The region of `atoms` (of `count` peers).
    fn over_atoms(atoms: RegionWords, count: usize) -> Self {
        Region {
            peers: OnceCell::new(),
            count,
            atoms: Some(atoms),
        }
    }

    /// The admin atoms the region is a union of, when it was worked out over them.
    fn atoms(&self) -> Option<&IndexedBitset> {
        self.atoms.as_ref().map(|(atoms, ..)| &**atoms)
    }

    fn peers(&self) -> &Bitset {
        self.peers.get_or_init(|| {
            let (atoms, words, len) = self.atoms.as_ref().expect("peers or atoms are known");
            crate::atoms::expand(words, *len, atoms.ones())
        })
    }
}

/// The layers below the admin layer over a direction's universe: the connections they would
/// allow if the admin layer left everything to them.
#[derive(Clone, Debug)]
struct LowerFn {
    /// Shared, so that a change report can name a block without copying it.
    blocks: Vec<(std::sync::Arc<Members>, ConnSet)>,
    /// Per block: its connections as an id of the engine's [`ConnAlgebra`], so that what a
    /// change of the admin layer does over blocks with equal connections is worked out once.
    ids: Vec<u32>,
    /// Per block: the admin atoms it meets (made when first asked for,
    /// [`Engine::lower_atoms`]). Replaced, never changed in place, when the atoms split: an
    /// update report keeps the version its regions' atoms are numbered by.
    atoms: std::cell::RefCell<Option<std::sync::Arc<BlockAtoms>>>,
}

impl LowerFn {
    /// This layer over the external pieces of `map` (new piece to the old piece holding its
    /// first address): every set not of the changed policy is constant over both, so the new
    /// piece's verdict is the old one's. Blocks left without peers are dropped. The admin
    /// atoms the blocks meet are carried too when `atoms` are given: the direction's atoms
    /// (carried over with their indices) and those of the old pieces, when known.
    fn carried(
        &self,
        w: usize,
        map: &[usize],
        atoms: Option<(&Atoms<AtomKey>, Option<&[u32]>)>,
    ) -> Self {
        let held = self.atoms.borrow();
        let held = held.as_ref().zip(atoms);
        let mut tally = vec![0u32; held.map_or(0, |(_, (a, _))| a.len())];
        let mut met = Vec::new();
        let mut counts = Vec::new();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let mut ids = Vec::with_capacity(self.blocks.len());
        for (k, ((b, c), &id)) in self.blocks.iter().zip(&self.ids).enumerate() {
            let z = b.remapped(w, map);
            if z.is_empty() {
                continue;
            }
            if let Some((held, (atoms, tail))) = held {
                let moved = (b.reaches(w) || z.reaches(w)).then_some(TailMove { old: b, w, tail });
                let (m, n) = held.caught_up(k, &z, moved, atoms, &mut tally);
                met.push(m);
                counts.push(n);
            }
            blocks.push((std::sync::Arc::new(z), c.clone()));
            ids.push(id);
        }
        LowerFn {
            blocks,
            ids,
            atoms: std::cell::RefCell::new(held.map(|(_, (a, _))| {
                std::sync::Arc::new(BlockAtoms {
                    met,
                    counts,
                    atoms: a.len(),
                })
            })),
        }
    }
}

/// A block whose external pieces moved ([`LowerFn::carried`]): the block before, over
/// `[w workloads | old pieces]`, and the atoms the old pieces were in (when known).
#[derive(Clone, Copy)]
struct TailMove<'a> {
    old: &'a Members,
    w: usize,
    tail: Option<&'a [u32]>,
}

/// The admin atoms block `z` meets and, when they are few ([`BlockAtoms::FEW`]), how many of
/// its elements each holds. `tally`, one zero per atom, is left as it was.
fn block_atoms(
    z: &Members,
    atoms: &Atoms<AtomKey>,
    tally: &mut [u32],
) -> (Bitset, Option<AtomCounts>) {
    let mut met = Bitset::empty(atoms.len());
    z.each(|u| met.insert(atoms.atom_of(u)));
    // Counted only for blocks meeting few atoms (a second pass over them).
    let counts = (met.count() <= BlockAtoms::FEW).then(|| {
        z.each(|u| tally[atoms.atom_of(u)] += 1);
        met.ones()
            .map(|a| (a as u32, std::mem::take(&mut tally[a])))
            .collect::<Box<[_]>>()
    });
    (met, counts)
}

/// Layers below admin cached before the external pieces moved, not read since, one per move
/// (oldest first). [`Engine::lower_fn`] carries a layer over when it is next asked for, rather
/// than every layer at the move.
#[derive(Default)]
struct MovedLayers {
    /// Per direction: the map from today's pieces to the pieces then (`None`: that
    /// direction's did not move since).
    maps: [Option<Vec<usize>>; 2],
    /// Per direction: the admin atoms the pieces then were in (`None`: not known).
    tails: [Option<Vec<u32>>; 2],
    /// The layers, by key.
    layers: HashMap<u32, std::rc::Rc<LowerFn>>,
}

/// The admin atoms each block of a [`LowerFn`] meets. A changed admin region is a union of
/// atoms, so these tell which blocks it may meet without going over peers, and for blocks
/// meeting few atoms, how many peers it shares with each.
#[derive(Clone, Debug)]
struct BlockAtoms {
    /// Per block: the atoms it meets, exactly for a counted block (below); for another, perhaps
    /// some more (its external pieces may have moved away, or an atom split), which still tells
    /// where it cannot meet a union of atoms (a quick test before the exact one over peers).
    met: Vec<Bitset>,
    /// Per block meeting at most [`BlockAtoms::FEW`] atoms: each atom it meets with how many
    /// of its peers are in that atom, ascending by atom (a block then meets a union of atoms
    /// exactly when it has peers in one). May be shorter than the blocks (`None` for the rest).
    counts: Vec<Option<AtomCounts>>,
    /// How many atoms there were when these were made (the length of each set in `met`): an
    /// update checks it for each lower layer it keeps, without reading the sets.
    atoms: usize,
}

/// Atoms with how many of a set's elements each holds, ascending by atom.
type AtomCounts = Box<[(u32, u32)]>;

impl BlockAtoms {
    /// Above this many atoms, summing a block's counts over a region costs about as much as
    /// counting their common peers, and the counts would take more room than the atoms met.
    const FEW: usize = 64;

    /// Block `k`'s atoms and counts caught up with `atoms` (as they are now, over the same or
    /// more atoms), its peers now being `z` (`moved`: its external pieces may have moved).
    /// Counts are kept exact: kept when none of the atoms the block meets has split, shifted
    /// by the pieces that came and went, worked out again when an atom split (or the old
    /// pieces' atoms are not known). Uncounted blocks keep a superset of the atoms they meet.
    fn caught_up(
        &self,
        k: usize,
        z: &Members,
        moved: Option<TailMove<'_>>,
        atoms: &Atoms<AtomKey>,
        tally: &mut [u32],
    ) -> (Bitset, Option<AtomCounts>) {
        let was = &self.met[k];
        let mut met = atoms.catch_up(was);
        let Some(counts) = self.counts.get(k).and_then(Option::as_ref) else {
            if let Some(m) = moved {
                z.each_in(m.w, usize::MAX, |u| met.insert(atoms.atom_of(u)));
            }
            return (met, None);
        };
        let split = met.len() != was.len() && met.count() != was.count();
        match moved {
            _ if split => block_atoms(z, atoms, tally),
            None => (met, Some(counts.clone())),
            Some(TailMove { tail: None, .. }) => block_atoms(z, atoms, tally),
            Some(TailMove {
                old,
                w,
                tail: Some(tail),
            }) => {
                let mut shifted: Vec<(u32, i64)> =
                    counts.iter().map(|&(a, n)| (a, i64::from(n))).collect();
                let mut add = |a: u32, d: i64| match shifted.iter_mut().find(|(x, _)| *x == a) {
                    Some(at) => at.1 += d,
                    None => shifted.push((a, d)),
                };
                old.each_in(w, usize::MAX, |u| add(tail[u - w], -1));
                z.each_in(w, usize::MAX, |u| add(atoms.atom_of(u) as u32, 1));
                debug_assert!(shifted.iter().all(|&(_, n)| n >= 0));
                shifted.retain(|&(_, n)| n > 0);
                shifted.sort_unstable();
                let mut met = Bitset::empty(atoms.len());
                for &(a, _) in &shifted {
                    met.insert(a as usize);
                }
                let counts = (shifted.len() <= Self::FEW)
                    .then(|| shifted.iter().map(|&(a, n)| (a, n as u32)).collect());
                (met, counts)
            }
        }
    }
}

/// The subject classes of one direction.
#[derive(Clone, Debug, Default)]
struct Classes {
    /// Per workload: its class.
    of: Vec<u32>,
    by_key: HashMap<ClassKey, u32>,
    /// Per class: its key.
    keys: Vec<ClassKey>,
    /// Per class: a workload of the class.
    reps: Vec<usize>,
    funcs: Vec<OnceCell<std::rc::Rc<ClassFn>>>,
    /// Per class: how many workloads it holds now.
    counts: Vec<u32>,
}

/// What changed when one policy was added, replaced or removed.
///
/// The changes name their sets and verdicts in tables the report holds, so that thousands of
/// changes over a few hundred sets copy no set and count each intersection once: subject sets
/// made for the report, blocks of the layers below admin shared with the engine, regions where
/// an admin layer changed.
///
/// Where only the admin layer of some subjects changed, the report holds the change as the
/// engine worked it out: the subjects, the regions of peers where their admin verdicts went
/// from one pair (allowed, delegated) to another, and the layers below admin those subjects
/// have. That names every pair the update affects and its verdicts before and after
/// ([`Update::affected_pairs`]); the exact changes, region by region against the lower
/// layer's blocks, dropping the pairs whose verdict came out the same, are worked out the
/// first time the report is read ([`Update::changes`]), from what the report holds (the engine
/// may have moved on since).
#[derive(Clone, Default)]
pub struct Update {
    /// Workloads whose verdicts of a direction may have changed (`[ingress, egress]`).
    pub subjects: [Bitset; 2],
    /// True when the change moved the external pieces (every bit set was carried over to the
    /// new pieces; the changes then compare each new piece with the old piece holding its
    /// first address).
    pub pieces_moved: bool,
    changes: Vec<Change>,
    /// Subject sets, each with its size.
    subject_sets: Vec<(Members, usize)>,
    /// Peer sets of the changes' own.
    peer_sets: Vec<Bitset>,
    /// Blocks of peers of the layers below admin.
    blocks: Vec<std::sync::Arc<Members>>,
    /// Regions of peers where an admin layer changed.
    regions: Vec<std::rc::Rc<Region>>,
    verdicts: Vec<ConnSet>,
    /// The admin changes of [`Layered`] groups.
    admin_changes: Vec<LayeredChange>,
    /// Groups of subjects whose admin layer alone changed, read against their lower layer's
    /// blocks when the report is first read.
    layered: Vec<Layered>,
    /// The changes of `layered`, once read.
    read: OnceCell<Read>,
}

/// Subjects whose admin layer alone changed, in the same way and over the same layers below:
/// in each region of their admin change where the layers below matter, a peer's verdict went
/// from the admin verdicts before over its lower verdict to those after over the same.
#[derive(Clone)]
struct Layered {
    direction: Direction,
    /// Index into [`Update::admin_changes`].
    change: u32,
    members: Vec<usize>,
    lower: std::rc::Rc<LowerFn>,
    /// The atoms the lower blocks meet, as numbered when the update was made.
    atoms: std::sync::Arc<BlockAtoms>,
}

/// A layer below admin and the admin atoms its blocks meet, as they were at an update.
type LowerSnapshot = (std::rc::Rc<LowerFn>, std::sync::Arc<BlockAtoms>);

/// An admin change of [`Layered`] groups: its regions where the layers below matter.
#[derive(Clone)]
struct LayeredChange {
    regions: Vec<LayeredRegion>,
    /// How many peers the regions hold in all.
    peers: usize,
    /// When the regions were worked out over admin atoms, how many atoms there were (the
    /// regions' and the blocks' atoms are numbered so).
    atoms: Option<usize>,
}

/// A region of a [`LayeredChange`]: its index among the report's regions, and the admin
/// verdicts before and after (allowed, delegated) as indices into the report's verdicts.
#[derive(Clone)]
struct LayeredRegion {
    region: u32,
    before: [u32; 2],
    after: [u32; 2],
}

/// The changes of an update's [`Layered`] groups, worked out when first read, with the tables
/// they name (regions are the report's own).
#[derive(Clone, Default)]
struct Read {
    changes: Vec<Change>,
    subject_sets: Vec<(Members, usize)>,
    blocks: Vec<std::sync::Arc<Members>>,
    verdicts: Vec<ConnSet>,
}

/// Admin verdicts before and after (allowed, delegated; indices into an update's verdicts) over
/// a lower block's connections (an algebra id): what [`Update::read_layered`] keeps, per such
/// key, of the layered verdicts before and after (indices into its own verdicts), when they
/// differ.
type OutcomeKey = ([u32; 2], [u32; 2], u32);

/// The tables a [`Change`] names by index.
#[derive(Clone, Copy)]
struct Tables<'u> {
    subject_sets: &'u [(Members, usize)],
    blocks: &'u [std::sync::Arc<Members>],
    verdicts: &'u [ConnSet],
}

/// A change as the report keeps it: indices into its tables.
#[derive(Clone, Copy, Debug)]
struct Change {
    direction: Direction,
    subjects: u32,
    peers: Peers,
    before: u32,
    after: u32,
}

/// The peers of a [`Change`].
#[derive(Clone, Copy, Debug)]
enum Peers {
    /// A set of the change's own.
    Own(u32),
    /// A whole region, `count` peers.
    Region { region: u32, count: u32 },
    /// The peers a block and a region share, `count` of them (not none).
    Meet { block: u32, region: u32, count: u32 },
}

/// One direction-level change of an [`Update`]: for these subjects and peers, the direction's
/// verdict went from `before` to `after`.
#[derive(Clone, Copy)]
pub struct DirChange<'u> {
    pub direction: Direction,
    /// Workloads whose policies say so (sources for egress, destinations for ingress).
    pub subjects: &'u Members,
    /// Peers over the direction's universe: workloads, then that direction's external pieces.
    pub peers: PeerSet<'u>,
    pub before: &'u ConnSet,
    pub after: &'u ConnSet,
    /// How many workloads `subjects` holds.
    subject_count: usize,
}

impl DirChange<'_> {
    /// How many workloads `subjects` holds.
    pub fn subject_count(&self) -> usize {
        self.subject_count
    }
}

impl fmt::Debug for DirChange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirChange")
            .field("direction", &self.direction)
            .field(
                "subjects",
                &fmt::from_fn(|f| f.debug_set().entries(self.subjects.ones()).finish()),
            )
            .field("peers", &self.peers)
            .field("before", self.before)
            .field("after", self.after)
            .finish()
    }
}

/// The peers of a [`DirChange`]: a set of its own, a region where the admin layer changed, or
/// the intersection of such a region and a block of the layers below admin (shared with other
/// changes, listed only when asked for; the size of a region or an intersection is known).
#[derive(Clone, Copy)]
pub struct PeerSet<'u>(PeerRepr<'u>);

#[derive(Clone, Copy)]
enum PeerRepr<'u> {
    Own(&'u Bitset),
    /// A region, with its size.
    Counted(&'u Bitset, usize),
    Meet(&'u Members, &'u Bitset, usize),
}

impl PeerSet<'_> {
    /// The length of the universe the set is over (workloads, then external pieces).
    pub fn universe(&self) -> usize {
        match self.0 {
            PeerRepr::Own(b) | PeerRepr::Counted(b, _) | PeerRepr::Meet(_, b, _) => b.len(),
        }
    }

    /// How many peers the set holds.
    pub fn count(&self) -> usize {
        match self.0 {
            PeerRepr::Own(b) => b.count(),
            PeerRepr::Counted(_, count) | PeerRepr::Meet(_, _, count) => count,
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        match self.0 {
            PeerRepr::Own(b) | PeerRepr::Counted(b, _) => b.contains(i),
            PeerRepr::Meet(a, b, _) => a.contains(i) && b.contains(i),
        }
    }

    /// The peers, ascending.
    pub fn ones(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match self.0 {
            PeerRepr::Own(b) | PeerRepr::Counted(b, _) => Box::new(b.ones()),
            PeerRepr::Meet(a, b, _) => a.meet_ones(b),
        }
    }

    /// The peers as a bit set of their own.
    pub fn to_bitset(&self) -> Bitset {
        match self.0 {
            PeerRepr::Own(b) | PeerRepr::Counted(b, _) => b.clone(),
            PeerRepr::Meet(a, b, _) => a.meet(b).unwrap_or_else(|| Bitset::empty(b.len())),
        }
    }
}

impl fmt::Debug for PeerSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ones()).finish()
    }
}

impl Update {
    /// The direction-level changes: those found as the update was made, then those of subjects
    /// whose admin layer alone changed, worked out against their lower layers the first time
    /// the report is read (here or by [`Update::changed_pairs`] or [`Update::change_count`]).
    pub fn changes(&self) -> impl Iterator<Item = DirChange<'_>> + '_ {
        let own = Tables {
            subject_sets: &self.subject_sets,
            blocks: &self.blocks,
            verdicts: &self.verdicts,
        };
        let read = self.read();
        let of_read = Tables {
            subject_sets: &read.subject_sets,
            blocks: &read.blocks,
            verdicts: &read.verdicts,
        };
        (self.changes.iter().map(move |c| self.view(c, own)))
            .chain(read.changes.iter().map(move |c| self.view(c, of_read)))
    }

    /// A change with the tables it names.
    fn view<'u>(&'u self, c: &Change, t: Tables<'u>) -> DirChange<'u> {
        let (subjects, subject_count) = &t.subject_sets[c.subjects as usize];
        let peers = match c.peers {
            Peers::Own(i) => PeerRepr::Own(&self.peer_sets[i as usize]),
            Peers::Region { region, count } => {
                PeerRepr::Counted(self.regions[region as usize].peers(), count as usize)
            }
            Peers::Meet {
                block,
                region,
                count,
            } => PeerRepr::Meet(
                &t.blocks[block as usize],
                self.regions[region as usize].peers(),
                count as usize,
            ),
        };
        DirChange {
            direction: c.direction,
            subjects,
            peers: PeerSet(peers),
            before: &t.verdicts[c.before as usize],
            after: &t.verdicts[c.after as usize],
            subject_count: *subject_count,
        }
    }

    /// How many direction-level changes the report holds (reading it, see
    /// [`Update::changes`]).
    pub fn change_count(&self) -> usize {
        self.changes.len() + self.read().changes.len()
    }

    /// How many (subject, peer) pairs changed in either direction (reading the report, see
    /// [`Update::changes`]).
    pub fn changed_pairs(&self) -> usize {
        self.changes()
            .map(|c| c.subject_count * c.peers.count())
            .sum()
    }

    /// How many (subject, peer) pairs the update may have changed, known without reading the
    /// layers below admin: the pairs of the changes found as it was made, and for subjects
    /// whose admin layer alone changed, each with every peer of the regions of that change
    /// where the layers below matter (such a pair changed when its lower verdict, read under
    /// the admin verdicts before and after, gives two different verdicts). At least
    /// [`Update::changed_pairs`].
    pub fn affected_pairs(&self) -> usize {
        // From the counts the changes carry (a region's peers are not expanded for it).
        let found: usize = (self.changes.iter())
            .map(|c| {
                let peers = match c.peers {
                    Peers::Own(i) => self.peer_sets[i as usize].count(),
                    Peers::Region { count, .. } | Peers::Meet { count, .. } => count as usize,
                };
                self.subject_sets[c.subjects as usize].1 * peers
            })
            .sum();
        let layered: usize = (self.layered.iter())
            .map(|g| g.members.len() * self.admin_changes[g.change as usize].peers)
            .sum();
        found + layered
    }

    /// The changes of the [`Layered`] groups, worked out on first use.
    fn read(&self) -> &Read {
        self.read.get_or_init(|| self.read_layered())
    }

    /// Each [`Layered`] group's changes: each region of its admin change against each block of
    /// its lower layer that it meets, where the two layered verdicts differ.
    fn read_layered(&self) -> Read {
        let mut out = Read::default();
        let n = self.subjects[0].len();
        // Regions of different admin changes, and of both directions, mostly change between the
        // same few pairs of admin verdicts: each outcome over lower connections is worked out
        // once.
        let mut outcomes: HashMap<OutcomeKey, Option<(u32, u32)>> = HashMap::default();
        let mut ids: HashMap<ConnSet, u32> = HashMap::default();
        let mut region_of: Vec<Option<Box<[u32]>>> = vec![None; self.admin_changes.len()];
        // Scratch per group: per region, the peers the counted blocks share with it; per
        // counted block, the regions it meets and how many peers they share; the blocks not
        // counted, and those of them that may meet a region.
        let (mut known, mut shared): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        let (mut touched, mut uncounted, mut meeting): (Vec<usize>, Vec<usize>, Vec<usize>) =
            Default::default();
        for g in &self.layered {
            let change = &self.admin_changes[g.change as usize];
            let (regions, lower) = (&change.regions, &g.lower);
            // The members' set, made once a change names them.
            let mut ws = None;
            // Per block, its index in the report once a change names it.
            let mut block_ids: Vec<Option<u32>> = vec![None; lower.blocks.len()];
            // Block `k` against region `i`, sharing `count` peers (`None`: not known, counted
            // here only for a change, as its count is wanted anyway).
            let mut cell = |k: usize, i: usize, count: Option<u32>| {
                if count == Some(0) {
                    return;
                }
                let ((z, below), id) = (&lower.blocks[k], lower.ids[k]);
                let at = &regions[i];
                let r = self.regions[at.region as usize].peers();
                let outcome = *outcomes
                    .entry((at.before, at.after, id))
                    .or_insert_with(|| {
                        let v = |i: u32| &self.verdicts[i as usize];
                        let before = layered(v(at.before[0]), v(at.before[1]), below);
                        let after = layered(v(at.after[0]), v(at.after[1]), below);
                        (before != after).then(|| {
                            let mut id = |c: ConnSet| {
                                *ids.entry(c).or_insert_with_key(|c| {
                                    out.verdicts.push(c.clone());
                                    (out.verdicts.len() - 1) as u32
                                })
                            };
                            (id(before), id(after))
                        })
                    });
                let Some((before, after)) = outcome else {
                    return;
                };
                let count = match count {
                    Some(n) => {
                        debug_assert_eq!(n as usize, z.meet_count(r));
                        n as usize
                    }
                    None => match z.meet_count(r) {
                        0 => return,
                        n => n,
                    },
                };
                // `z` and `r` intersect: the change names both, copying neither.
                let subjects = *ws.get_or_insert_with(|| {
                    let mut members = g.members.clone();
                    members.sort_unstable();
                    subject_set(&mut out.subject_sets, n, members)
                });
                let block = name_in(&mut out.blocks, &mut block_ids[k], z);
                out.changes.push(Change {
                    direction: g.direction,
                    subjects,
                    peers: Peers::Meet {
                        block,
                        region: at.region,
                        count: count as u32,
                    },
                    before,
                    after,
                });
            };
            let (blocks, nreg) = (lower.blocks.len(), regions.len());
            // (Were the regions' atoms not known, each block is counted over peers.)
            let Some(atom_count) = change.atoms else {
                for k in 0..blocks {
                    for i in 0..nreg {
                        cell(k, i, None);
                    }
                }
                continue;
            };
            // Where the atoms tell (most blocks meet few of the changed regions): the regions
            // are disjoint unions of atoms, so each atom a counted block meets tells which
            // region, if any, it shares, and how many peers.
            let atoms = &*g.atoms;
            let region_of = region_of[g.change as usize].get_or_insert_with(|| {
                let of = regions.iter().map(|at| &*self.regions[at.region as usize]);
                region_index(of, atom_count)
            });
            known.clear();
            known.resize(nreg, 0u32);
            shared.resize(nreg, 0u32);
            uncounted.clear();
            for k in 0..blocks {
                let Some(Some(counts)) = atoms.counts.get(k) else {
                    uncounted.push(k);
                    continue;
                };
                touched.clear();
                for &(a, count) in counts.iter() {
                    if let Some(i) = region_of[a as usize].checked_sub(1) {
                        let i = i as usize;
                        if shared[i] == 0 {
                            touched.push(i);
                        }
                        shared[i] += count;
                    }
                }
                for &i in &touched {
                    let count = std::mem::take(&mut shared[i]);
                    known[i] += count;
                    cell(k, i, Some(count));
                }
            }
            // The blocks not counted (meeting many atoms), region by region: those that may
            // meet it (by the atoms they meet) are counted, all but the last, which has what
            // the others leave of the region (the blocks partition the peers).
            for (i, at) in regions.iter().enumerate() {
                let region = &self.regions[at.region as usize];
                let ra = region.atoms().expect("all regions' atoms are known here");
                meeting.clear();
                meeting.extend(uncounted.iter().filter(|&&k| ra.meets(&atoms.met[k])));
                let Some((&last, others)) = meeting.split_last() else {
                    continue;
                };
                let r = region.peers();
                let mut rest = region.count.checked_sub(known[i] as usize);
                for &k in others {
                    let count = lower.blocks[k].0.meet_count(r);
                    rest = rest.and_then(|n| n.checked_sub(count));
                    cell(k, i, Some(count as u32));
                }
                cell(last, i, rest.map(|n| n as u32));
            }
        }
        out
    }

    /// A subject set of the report's own ([`subject_set`]).
    fn subject_set(&mut self, n: usize, members: Vec<usize>) -> u32 {
        subject_set(&mut self.subject_sets, n, members)
    }

    /// A verdict of the report's own.
    fn verdict(&mut self, c: ConnSet) -> u32 {
        self.verdicts.push(c);
        (self.verdicts.len() - 1) as u32
    }

    /// The index of the algebra's connection set `c` among the verdicts, added once (`ids`:
    /// those added so far, by algebra id).
    fn verdict_of(&mut self, ids: &mut HashMap<u32, u32>, alg: &ConnAlgebra, c: u32) -> u32 {
        *ids.entry(c)
            .or_insert_with(|| self.verdict(alg.get(c).clone()))
    }

    /// A change with peers of its own and verdicts of its own.
    fn push_own(&mut self, direction: Direction, subjects: u32, peers: Bitset, v: [ConnSet; 2]) {
        self.peer_sets.push(peers);
        let peers = Peers::Own((self.peer_sets.len() - 1) as u32);
        let [before, after] = v.map(|c| self.verdict(c));
        self.changes.push(Change {
            direction,
            subjects,
            peers,
            before,
            after,
        });
    }
}

/// A subject set of `n` workloads made of `members` (distinct, ascending), added to `sets` with
/// its size, as a list when that is the smaller form (a change's subjects are mostly a few
/// workloads).
fn subject_set(sets: &mut Vec<(Members, usize)>, n: usize, members: Vec<usize>) -> u32 {
    debug_assert!(members.windows(2).all(|w| w[0] < w[1]));
    let count = members.len();
    let set = if count * 32 <= n {
        Members::Sparse {
            len: n,
            elems: members.into_iter().map(|m| m as u32).collect(),
        }
    } else {
        let mut b = Bitset::empty(n);
        for m in members {
            b.insert(m);
        }
        Members::Dense(b)
    };
    sets.push((set, count));
    (sets.len() - 1) as u32
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("subjects", &self.subjects)
            .field("pieces_moved", &self.pieces_moved)
            .field(
                "changes",
                &fmt::from_fn(|f| f.debug_list().entries(self.changes()).finish()),
            )
            .finish()
    }
}

/// Answers connectivity questions over a [`Cluster`].
///
/// Selectors are evaluated once into bit sets; workloads with the same applicable policies
/// share one class whose verdicts over all peers are computed once, as blocks of peers.
pub struct Engine<'c> {
    cluster: Cow<'c, Cluster>,
    labels: LabelIndex,
    pieces: Pieces,
    /// Per direction (`[ingress, egress]`): how many address sets cut at each boundary, so a
    /// change knows whether it moves the pieces from its own address sets alone.
    cuts: [Cuts; 2],
    sets: Vec<PolicySets>,
    /// Per workload: `[ingress, egress]`.
    applicable: Vec<[Applicable; 2]>,
    admin_lists: AdminLists,
    classes: [Classes; 2],
    /// Egress named-port partitions (over the egress universe).
    named: HashMap<NamedKey, Vec<Bitset>>,
    /// Admin-layer verdicts, shared by the classes with the same admin layer.
    admin_cache: std::cell::RefCell<HashMap<u32, std::rc::Rc<AdminFn>>>,
    /// Lower-layer verdicts, shared by the classes with the same layers below admin.
    lower_cache: std::cell::RefCell<HashMap<u32, std::rc::Rc<LowerFn>>>,
    /// Lower-layer verdicts over external pieces that have moved since ([`MovedLayers`]).
    moved_lower: std::cell::RefCell<Vec<MovedLayers>>,
    /// The layer keys of classes (see [`ClassKey`]).
    layer_keys: std::cell::RefCell<LayerKeys>,
    /// Per direction: the atoms of the admin rules' peers (built on first use).
    atoms: std::cell::RefCell<[Option<Atoms<AtomKey>>; 2]>,
    /// Interned connection sets and memoised operations on them, for the admin sweep.
    algebra: std::cell::RefCell<ConnAlgebra>,
    /// Verdicts a policy change made stale, freed a few at a time as classes are evaluated
    /// again ([`Graveyard`]).
    graveyard: std::cell::RefCell<Graveyard>,
}

/// Class and admin-layer verdicts that a policy change made stale, not yet freed. Freeing
/// thousands of them (each a few hundred blocks of bit sets and connection sets) would take
/// milliseconds of the change itself; instead each class evaluation, which makes verdicts,
/// frees a few stale ones ([`Graveyard::FREE_PER_EVALUATION`]), and [`Engine::compact`] frees
/// them all. Everything here was live before a change made it stale; once it outnumbers what
/// is live, [`Engine::wants_compaction`] says so.
#[derive(Default)]
struct Graveyard {
    classes: Vec<std::rc::Rc<ClassFn>>,
    admin: Vec<std::rc::Rc<AdminFn>>,
}

impl Graveyard {
    const FREE_PER_EVALUATION: usize = 4;

    /// Frees up to [`Graveyard::FREE_PER_EVALUATION`] stale verdicts of each kind.
    fn free_some(&mut self) {
        for _ in 0..Self::FREE_PER_EVALUATION {
            self.classes.pop();
            self.admin.pop();
        }
    }
}

/// A group's state in the admin sweep, as connection-set ids: what is allowed, what is still
/// open, what was passed.
type SweepState = [u32; 3];

/// Nothing decided yet.
const START: SweepState = [ConnAlgebra::NONE, ConnAlgebra::ALL, ConnAlgebra::NONE];

/// An admin rule with connections `conns` applied to a group in state `s`; `None` when it hits
/// nothing still open.
fn step(alg: &mut ConnAlgebra, action: Action, conns: u32, s: SweepState) -> Option<SweepState> {
    let hit = alg.op(Op::Intersect, conns, s[1]);
    if hit == ConnAlgebra::NONE {
        return None;
    }
    let mut s = s;
    s[1] = alg.op(Op::Subtract, s[1], hit);
    match action {
        Action::Allow => s[0] = alg.op(Op::Union, s[0], hit),
        Action::Pass => s[2] = alg.op(Op::Union, s[2], hit),
        Action::Deny => {}
    }
    Some(s)
}

/// A final sweep state as the admin layer's verdict ids: allowed, and left to the layers
/// below (still open or passed).
fn verdict(alg: &mut ConnAlgebra, s: SweepState) -> [u32; 2] {
    [s[0], alg.op(Op::Union, s[1], s[2])]
}

/// An admin rule as the sweep applies it: the rule, its peers as atoms, and its reference when
/// its connections may be remembered by it (the current version of a policy's rule).
struct SweepRule<'a> {
    rule: &'a Rule,
    peers: Cow<'a, Bitset>,
    memo: Option<RuleRef>,
}

/// What an admin layer needs to know of a changed admin policy to be brought up to date
/// incrementally ([`Engine::admin_delta`]).
struct AdminChange {
    index: usize,
    /// The workloads the old version selected.
    old_subject: Bitset,
    /// Per direction: the old version's rules with their peers as atoms (as the atoms were
    /// then); `None` when not known (the layers are then swept in full).
    old_rules: [Option<Vec<(Rule, Bitset)>>; 2],
    /// The old version's priority and name (its place among the admin policies).
    old_rank: (i32, String),
    /// Whether the new version keeps that place.
    same_rank: bool,
}

/// Where an admin layer changes, as atom groups with the old and the new verdict ids
/// (allowed, delegated); shared by the layers that make the same change.
type AdminDelta = std::rc::Rc<Vec<(Bitset, [[u32; 2]; 2])>>;

/// What the admin layers of one direction share while one admin policy change is worked out:
/// the old rules' peers as today's atoms, the atoms the change can move (with which rules reach
/// them), the sweeps of [`Engine::admin_delta`] as states and steps between them, and the atom
/// sets already expanded to peers.
#[derive(Default)]
struct DeltaScratch {
    old_peers: Option<Vec<Bitset>>,
    /// By whether the old and the new rules apply.
    reach: HashMap<(bool, bool), Reach>,
    /// By admin rule list and the variant.
    lists: HashMap<(u32, (bool, bool)), ListEntry>,
    key_ids: HashMap<DeltaKey, u32>,
    keys: Vec<DeltaKey>,
    /// Sweep states by id, and their ids by hash (a state is hashed once, not again each time
    /// the table grows; see [`intern_hashed`]).
    states: Vec<PairState>,
    state_ids: HashMap<u64, u32>,
    state_next: Vec<u32>,
    /// The groups decided on both sides, as a chain each state points into (by id, counted
    /// from 1; 0: none): per link, the link before it and the groups one step decided; and
    /// the links' ids by hash. A step then copies and hashes the groups still open only.
    decided: Vec<std::rc::Rc<(u32, PairGroups)>>,
    decided_ids: HashMap<u64, u32>,
    decided_next: Vec<u32>,
    /// The state where the policy's old and new rules part ways, by key and the subject's
    /// values of the named ports those rules name (`None`: an atom set is missing).
    heads: HashMap<(u32, NamedValues), Option<u32>>,
    /// The sweep of the rules before the policy, as a tree of single-side states: per variant
    /// its root (the atoms reached, all open), and the state each rule leads to from a state
    /// (with the subject's values of the rule's ingress named ports, if it names any; `None`:
    /// an atom set is missing). Groups a rule decides are dropped.
    prefix_states: Vec<std::rc::Rc<Vec<(Bitset, SweepState)>>>,
    prefix_roots: HashMap<(bool, bool), u32>,
    prefix_steps: HashMap<(u32, RuleRef, Option<NamedValues>), Option<u32>>,
    /// The state a rule after the policy leads to from a state (with the subject's values of
    /// the rule's ingress named ports, if it names any).
    steps: HashMap<(u32, RuleRef, Option<NamedValues>), Option<u32>>,
    /// The answer of a final state.
    finals: HashMap<u32, AdminDelta>,
    /// The atom sets of the pair states' groups, each kept once.
    sets: SetTable,
    /// Atom sets as regions, with the atoms indexed and the peers counted.
    expanded: HashMap<Bitset, std::rc::Rc<Region>>,
    /// The regions of an answer (by its address, the answer kept so the address is not taken
    /// again), as [`Engine::admin_update`] gives them: many admin layers make the same change.
    regions: HashMap<usize, (AdminDelta, Vec<AdminRegion>)>,
}

impl DeltaScratch {
    /// The state a step leaves, its newly decided groups linked after those of `decided`.
    fn intern(&mut self, (open, newly): PairParts, decided: u32) -> u32 {
        let decided = if newly.is_empty() {
            decided
        } else {
            let (ids, next) = (&mut self.decided_ids, &mut self.decided_next);
            intern_hashed(
                ids,
                next,
                &mut self.decided,
                (decided, newly),
                std::rc::Rc::new,
            ) + 1
        };
        let (ids, next) = (&mut self.state_ids, &mut self.state_next);
        intern_hashed(
            ids,
            next,
            &mut self.states,
            (open, decided),
            std::rc::Rc::new,
        )
    }
}

/// The index of `item` in `items`, added when missing; found by its hash in `ids`, so an item
/// is hashed once, not again each time the table grows. `ids` holds the last item of each
/// hash, and `next` (alongside `items`) the item of the same hash before each (`u32::MAX`:
/// none), so a hash's items are a chain with no list of their own.
fn intern_hashed<T: std::hash::Hash + PartialEq, W: std::borrow::Borrow<T>>(
    ids: &mut HashMap<u64, u32>,
    next: &mut Vec<u32>,
    items: &mut Vec<W>,
    item: T,
    keep: impl FnOnce(T) -> W,
) -> u32 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hash = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(&item);
    let last = ids.entry(hash).or_insert(u32::MAX);
    let mut at = *last;
    while at != u32::MAX {
        if *items[at as usize].borrow() == item {
            return at;
        }
        at = next[at as usize];
    }
    let id = items.len() as u32;
    next.push(*last);
    *last = id;
    items.push(keep(item));
    id
}

/// Where a sweep keeps the atom sets of its groups ([`Engine::sweep_rule`]): each group its
/// own bit set ([`Owned`]), or ids of sets kept once each ([`SetTable`]).
trait SetStore {
    type G;
    fn set<'s>(&'s self, g: &'s Self::G) -> &'s Bitset;
    fn make(&mut self, b: Bitset) -> Self::G;
    /// Group `g`'s set as a bit set of its own (to change it).
    fn own(&self, g: Self::G) -> Bitset;
}

/// Groups with bit sets of their own.
struct Owned;

impl SetStore for Owned {
    type G = Bitset;
    fn set<'s>(&'s self, g: &'s Bitset) -> &'s Bitset {
        g
    }
    fn make(&mut self, b: Bitset) -> Bitset {
        b
    }
    fn own(&self, g: Bitset) -> Bitset {
        g
    }
}

/// Atom sets kept once each, by id: the groups of [`Engine::admin_delta`]'s pair states are
/// ids here, so a state is copied, hashed and compared as integers, a group many states share
/// is one set, and a set made again is found rather than kept twice.
#[derive(Default)]
struct SetTable {
    sets: Vec<Bitset>,
    ids: HashMap<u64, u32>,
    next: Vec<u32>,
}

impl SetStore for SetTable {
    type G = u32;
    fn set<'s>(&'s self, g: &'s u32) -> &'s Bitset {
        &self.sets[*g as usize]
    }
    fn make(&mut self, b: Bitset) -> u32 {
        intern_hashed(&mut self.ids, &mut self.next, &mut self.sets, b, |b| b)
    }
    fn own(&self, g: u32) -> Bitset {
        self.sets[g as usize].clone()
    }
}

/// A group's atom set as a sweep step leaves it: kept as its store has it, or made by the step
/// (and kept by the store once the step is done).
enum Part<G> {
    Kept(G),
    Made(Bitset),
}

impl<G> Part<G> {
    fn set<'a, T: SetStore<G = G>>(&'a self, store: &'a T) -> &'a Bitset {
        match self {
            Part::Kept(g) => store.set(g),
            Part::Made(b) => b,
        }
    }

    /// Adds `other`'s atoms to this set.
    fn absorb<T: SetStore<G = G>>(&mut self, other: Part<G>, store: &T) {
        let mut b = match std::mem::replace(self, Part::Made(Bitset::default())) {
            Part::Kept(g) => store.own(g),
            Part::Made(b) => b,
        };
        b.union_with(other.set(store));
        *self = Part::Made(b);
    }

    fn into_group<T: SetStore<G = G>>(self, store: &mut T) -> G {
        match self {
            Part::Kept(g) => g,
            Part::Made(b) => store.make(b),
        }
    }
}

/// Atom groups where an admin layer's old and new versions are in different sweep states
/// (old allowed, open, passed, then the same for the new), as the rules after the policy are
/// applied: those still open on either side, and the link of [`DeltaScratch::decided`]
/// ending the chain of those decided on both.
type PairState = std::rc::Rc<(PairGroups, u32)>;

/// What one step leaves of a [`PairState`]: atom groups with the states of both sides, still
/// open on either side, and newly decided on both.
type PairParts = (PairGroups, PairGroups);

/// Atom groups (ids of [`DeltaScratch::sets`]), each with an old and a new sweep state.
type PairGroups = Vec<(u32, [u32; 6])>;

/// Ingress named ports (name and protocol) that admin rules name.
type PortNames = std::rc::Rc<Vec<(String, Option<Protocol>)>>;

/// Of groups in pair states: those whose two sides are equal are dropped (the same rules follow
/// on both sides, so they stay equal: no change there); those decided on both sides are set
/// apart (no later rule moves them).
fn settle(open: PairGroups) -> PairParts {
    let mut decided = Vec::new();
    let mut still = Vec::with_capacity(open.len());
    for (b, s) in open {
        if s[..3] == s[3..] {
            continue;
        }
        if s[1] == ConnAlgebra::NONE && s[4] == ConnAlgebra::NONE {
            decided.push((b, s));
        } else {
            still.push((b, s));
        }
    }
    (still, decided)
}

/// An admin rule list's part in a change: the key of the rules before the policy, the ingress
/// named ports they (and the policy's old and new rules) name, and the rules after it that reach
/// the change's atoms, each with the ingress named ports it names, if any.
#[derive(Clone)]
struct ListEntry {
    head: u32,
    names: PortNames,
    suffix: std::rc::Rc<Vec<(RuleRef, Option<PortNames>)>>,
}

/// The atoms a change's rules reach, and per policy (by index) its part in the lists that hold
/// it (filled as policies are met).
struct Reach {
    atoms: Bitset,
    parts: Vec<Option<PolicyPart>>,
}

/// An admin policy's part in the admin rule lists holding it, for one change (and whether the
/// old and the new rules apply, which sets the changed policy's place): whether it comes before
/// the changed policy, and its rules whose peers meet the atoms the change reaches, each with the
/// ingress named ports it names, if any.
struct PolicyPart {
    before: bool,
    rules: Vec<(RuleRef, Option<PortNames>)>,
}

/// What decides where an admin policy's old and new rules part ways ([`Engine::admin_delta`];
/// with the subject's values of the ingress named ports the rules name, as
/// [`crate::model::Workload::resolve_named_port`] gives them): whether the old and the new rules
/// apply, and the rules before them that reach the atoms they do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DeltaKey {
    variant: (bool, bool),
    prefix: Vec<RuleRef>,
}

/// The old rules' peers of a change, caught up with today's atoms.
fn old_rules_peers(change: &AdminChange, d: usize, atoms: &Atoms<AtomKey>) -> Vec<Bitset> {
    change.old_rules[d]
        .iter()
        .flatten()
        .map(|(_, peers)| atoms.catch_up(peers))
        .collect()
}

/// The sets the admin atoms are cut by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum AtomKey {
    /// An admin rule's peers.
    Rule(RuleRef),
    /// One part of an egress named-port partition an admin rule uses.
    Named(NamedKey, usize),
}

impl<'c> Engine<'c> {
    /// An engine over a borrowed cluster.
    pub fn new(cluster: &'c Cluster) -> Self {
        Self::build(Cow::Borrowed(cluster))
    }

    /// An engine that owns its cluster (needed for [`Engine::set_policy`] without a copy).
    pub fn owned(cluster: Cluster) -> Engine<'static> {
        Engine::build(Cow::Owned(cluster))
    }

    fn build(cluster: Cow<'c, Cluster>) -> Self {
        let labels = LabelIndex::new(&cluster);
        let cuts = DIRS.map(|d| Cuts::new(referenced_ip_sets(&cluster, d)));
        let pieces = Pieces::new([0, 1].map(|d| cuts[d].pieces()));
        let sets = cluster
            .policies
            .iter()
            .map(|p| policy_sets(&cluster, &labels, &pieces, p))
            .collect();
        let mut e = Engine {
            cluster,
            labels,
            pieces,
            cuts,
            sets,
            applicable: Vec::new(),
            admin_lists: AdminLists::default(),
            classes: Default::default(),
            named: HashMap::default(),
            admin_cache: Default::default(),
            lower_cache: Default::default(),
            moved_lower: Default::default(),
            atoms: Default::default(),
            algebra: Default::default(),
            layer_keys: Default::default(),
            graveyard: Default::default(),
        };
        e.index_all();
        e
    }

    /// (Re)computes applicable policies, classes and named-port partitions for every workload.
    fn index_all(&mut self) {
        let n = self.cluster.workloads.len();
        let mut applicable: Vec<[Applicable; 2]> = vec![Default::default(); n];
        let mut admin: Vec<[Vec<RuleRef>; 2]> = vec![Default::default(); n];
        for pi in self.precedence() {
            let p = &self.cluster.policies[pi];
            for w in self.sets[pi].subject.ones() {
                push_applicable(&mut applicable[w], &mut admin[w], p, pi);
            }
        }
        self.admin_lists = AdminLists::default();
        for (app, lists) in applicable.iter_mut().zip(admin) {
            for (a, list) in app.iter_mut().zip(lists) {
                a.admin = self.admin_lists.id(list);
            }
        }
        self.applicable = applicable;
        self.classes = Default::default();
        for d in DIRS {
            self.classes[dir_index(d)].of = vec![0; n];
        }
        for w in 0..n {
            self.classify(w, true);
        }
        self.named.clear();
        let keys: Vec<NamedKey> = self
            .cluster
            .policies
            .iter()
            .flat_map(|p| named_keys(p, Direction::Egress))
            .collect();
        for k in keys {
            self.add_named(k);
        }
    }

    fn add_named(&mut self, k: NamedKey) {
        if self.named.contains_key(&k) {
            return;
        }
        let ulen = self.universe_len(Direction::Egress);
        let parts = named_partition(&self.cluster, &k)
            .into_iter()
            .map(|b| {
                let mut x = Bitset::empty(ulen);
                for i in b.ones() {
                    x.insert(i);
                }
                x
            })
            .collect();
        self.named.insert(k, parts);
    }

    /// Brings workload `w`'s applicable rules up to date with policy `index` (the rest stay).
    /// `was`: the layer the policy was in, if it selected `w` before (only then is there
    /// something to take out).
    fn reapply(&mut self, w: usize, index: usize, was: Option<Layer>, before: &[bool]) {
        let cluster: &Cluster = &self.cluster;
        let p = &cluster.policies[index];
        let selected = self.sets[index].subject.contains(w);
        for dir in DIRS {
            let lists = &mut self.admin_lists;
            let a = &mut self.applicable[w][dir_index(dir)];
            match was {
                None => {}
                Some(Layer::Admin) => a.admin = lists.id(without_policy(lists.get(a.admin), index)),
                Some(Layer::Namespaced) => a.namespaced.retain(|&q| q != index),
                Some(Layer::Baseline) => a.baseline.retain(|r| r.policy != index),
            }
            let Some(rules) = p.rules(dir).filter(|_| selected) else {
                continue;
            };
            let refs = (0..rules.len()).map(|rule| RuleRef {
                policy: index,
                rule,
            });
            match p.layer {
                Layer::Admin => a.admin = lists.id(with_rules(lists.get(a.admin), refs, before)),
                Layer::Namespaced => {
                    let at = a.namespaced.partition_point(|&q| q < index);
                    a.namespaced.insert(at, index);
                }
                Layer::Baseline => {
                    let at = a.baseline.partition_point(|r| r.policy < index);
                    a.baseline.splice(at..at, refs);
                }
            }
        }
    }

    /// Per policy, whether it precedes admin policy `index` (by priority, then name, then
    /// input order, as `admin_order`): worked out once per change instead of once per
    /// comparison of every affected workload's list. Empty unless `index` is an admin policy.
    fn admin_precedes(&self, index: usize) -> Vec<bool> {
        let ps = &self.cluster.policies;
        if ps[index].layer != Layer::Admin {
            return Vec::new();
        }
        let me = (ps[index].priority, &ps[index].name, index);
        (0..ps.len())
            .map(|q| (ps[q].priority, &ps[q].name, q) < me)
            .collect()
    }

    /// Policy indices in precedence order: admin by priority, then the rest in input order.
    fn precedence(&self) -> Vec<usize> {
        let mut order = admin_order(&self.cluster);
        order.extend(
            (0..self.cluster.policies.len())
                .filter(|&i| self.cluster.policies[i].layer != Layer::Admin),
        );
        order
    }

    fn universe_len(&self, dir: Direction) -> usize {
        self.cluster.workloads.len() + self.pieces.ranges[dir_index(dir)].len()
    }

    /// Puts workload `w` into its class for each direction.
    /// `fresh`: `w` has no class yet (a first indexing), so none is left.
    fn classify(&mut self, w: usize, fresh: bool) {
        for dir in DIRS {
            let key = self.class_key(dir, w);
            let classes = &mut self.classes[dir_index(dir)];
            if !fresh {
                let old = classes.of[w] as usize;
                classes.counts[old] = classes.counts[old].saturating_sub(1);
            }
            let next = classes.reps.len() as u32;
            let c = *classes.by_key.entry(key).or_insert(next);
            if c == next {
                classes.keys.push(key);
                classes.reps.push(w);
                classes.funcs.push(OnceCell::new());
                classes.counts.push(0);
            }
            if classes.counts[c as usize] == 0 {
                // An empty class coming back to life: whatever verdicts it cached were computed
                // for no member, so start afresh from this one.
                classes.reps[c as usize] = w;
                classes.funcs[c as usize].take();
            }
            classes.counts[c as usize] += 1;
            classes.of[w] = c;
        }
    }

    /// Brings the workloads `affected` by a change of admin policy `index` up to date, group by
    /// group: workloads that shared a class before and that the policy now selects alike (with
    /// the same values of its named ports) share one after, since an admin policy changes only
    /// the admin part of a key, and only by its own entry. So one admin rule list and one key
    /// are worked out per group instead of one per workload, and the members share the list.
    /// `before`: per policy, whether it precedes `index` ([`Engine::admin_precedes`]).
    fn regroup_admin(
        &mut self,
        affected: &Bitset,
        old_classes: &[Vec<u32>; 2],
        index: usize,
        before: &[bool],
    ) {
        let named = !self.sets[index].ingress_named.is_empty();
        let counts = DIRS.map(|dir| {
            let p = &self.cluster.policies[index];
            p.rules(dir).map_or(0, |r| r.len())
        });
        let refs = |dir: Direction| {
            (0..counts[dir_index(dir)]).map(move |rule| RuleRef {
                policy: index,
                rule,
            })
        };
        for dir in DIRS {
            let d = dir_index(dir);
            let subject = &self.sets[index].subject;
            // Affected workloads by old class and whether the policy selects them now.
            let order: Vec<(u32, bool, usize)> = affected
                .ones()
                .map(|w| (old_classes[d][w], subject.contains(w), w))
                .collect();
            let order = by_key(order, 2 * self.classes[d].keys.len(), |&(c, s, _)| {
                2 * c as usize + usize::from(s)
            });
            // The new admin rule list follows from the old list and the policy's part, the new
            // key from the old key and the policy's part: the runs (of one old class and
            // selection) are taken by old admin key and selection, so runs sharing those are
            // brought up to date together, their list and key worked out once.
            let keys = &self.classes[d].keys;
            let mut runs: Vec<(u32, bool, u32, ClassRun<'_>)> = order
                .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
                .map(|run| {
                    let old = keys[run[0].0 as usize];
                    (old.admin, run[0].1, old.lower, run)
                })
                .collect();
            runs.sort_unstable_by_key(|&(admin, selected, _, run)| (admin, selected, run[0].0));
            let mut lists: HashMap<(u32, bool), u32> = HashMap::default();
            let mut admin_of: HashMap<(u32, bool, NamedValues), u32> = HashMap::default();
            let mut groups: Vec<(NamedValues, Vec<usize>)> = Vec::new();
            for same in runs.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let (old_admin, selected, _, run) = same[0];
                let first = run[0].2;
                let was = self.applicable[first][d].admin;
                let list = *lists.entry((was, selected)).or_insert_with(|| {
                    let all = &mut self.admin_lists;
                    // Most changes keep the policy's rule count and place (a port change):
                    // the list is then the same, and is not rebuilt.
                    let count = if selected { counts[d] } else { 0 };
                    if holds_rules(all.get(was), index, count, before) {
                        return was;
                    }
                    let rest = without_policy(all.get(was), index);
                    if selected {
                        all.id(with_rules(&rest, refs(dir), before))
                    } else {
                        all.id(rest)
                    }
                });
                for (.., run) in same {
                    for &(_, _, w) in *run {
                        self.applicable[w][d].admin = list;
                    }
                }
                if !(selected && named && dir == Direction::Ingress) {
                    // One admin key for all: the old one without the policy (and its
                    // named-port values) when the policy no longer selects them, else worked
                    // out for the first; each run is a group (no copy of its members).
                    let admin = if selected {
                        self.admin_key(dir, first)
                    } else {
                        let admin = self.key_without(old_admin, index);
                        debug_assert_eq!(admin, self.admin_key(dir, first));
                        admin
                    };
                    for &(.., lower, run) in same {
                        let key = ClassKey { admin, lower };
                        self.place(d, key, run.iter().map(|x| x.2));
                    }
                    continue;
                }
                for &(.., lower, run) in same {
                    groups.clear();
                    for &(_, _, w) in run {
                        let values = self.layer_named(dir, w, &[index as u32]);
                        match groups.iter_mut().find(|(v, _)| *v == values) {
                            Some((_, members)) => members.push(w),
                            None => groups.push((values, vec![w])),
                        }
                    }
                    for (values, members) in groups.drain(..) {
                        let group = (old_admin, selected, values);
                        let members = members.into_iter();
                        self.place_group(dir, &mut admin_of, group, lower, members);
                    }
                }
            }
        }
    }

    /// Puts `members` (at least one) into the class keyed by `lower` and the admin key of
    /// `group` (their old admin key, whether the policy selects them, their values of its
    /// ingress named ports), worked out for the group's first member and kept in `admin_of`.
    fn place_group(
        &mut self,
        dir: Direction,
        admin_of: &mut HashMap<(u32, bool, NamedValues), u32>,
        group: (u32, bool, NamedValues),
        lower: u32,
        members: impl Iterator<Item = usize>,
    ) {
        let mut members = members.peekable();
        let Some(&first) = members.peek() else {
            return;
        };
        let admin = *admin_of
            .entry(group)
            .or_insert_with(|| self.admin_key(dir, first));
        self.place(dir_index(dir), ClassKey { admin, lower }, members);
    }

    /// Puts `members` (each already in a class; at least one) into the class of `key` in
    /// direction `d`.
    fn place(&mut self, d: usize, key: ClassKey, members: impl Iterator<Item = usize>) {
        let mut members = members.peekable();
        let Some(&first) = members.peek() else {
            return;
        };
        let classes = &mut self.classes[d];
        let next = classes.reps.len() as u32;
        let c = *classes.by_key.entry(key).or_insert(next);
        if c == next {
            classes.keys.push(key);
            classes.reps.push(first);
            classes.funcs.push(OnceCell::new());
            classes.counts.push(0);
        }
        for w in members {
            let old = classes.of[w] as usize;
            classes.counts[old] = classes.counts[old].saturating_sub(1);
            if classes.counts[c as usize] == 0 {
                // An empty class coming back to life (as in `classify`).
                classes.reps[c as usize] = w;
                classes.funcs[c as usize].take();
            }
            classes.counts[c as usize] += 1;
            classes.of[w] = c;
        }
    }

    /// The id of the admin layer key `id` without policy `index`: its other policies, in
    /// order, with their named-port values (the values a key holds are its policies' in
    /// turn, and those of the others are as they were, so the policy's are what is left).
    fn key_without(&self, id: u32, index: usize) -> u32 {
        let mut keys = self.layer_keys.borrow_mut();
        let (d, mut policies, mut named) = keys.keys[id as usize].clone();
        if let Some(at) = policies.iter().position(|&p| p as usize == index) {
            let len = |p: &u32| self.sets[*p as usize].ingress_named.len();
            if !named.is_empty() {
                let start: usize = policies[..at].iter().map(len).sum();
                let after: usize = policies[at + 1..].iter().map(len).sum();
                named.drain(start..named.len() - after);
            }
            policies.remove(at);
        }
        keys.id((d, policies, named))
    }

    /// The key of workload `w`'s class in direction `dir`.
    fn class_key(&self, dir: Direction, w: usize) -> ClassKey {
        ClassKey {
            admin: self.admin_key(dir, w),
            lower: self.lower_key(dir, w),
        }
    }

    /// The admin layer key id of workload `w` in direction `dir`.
    fn admin_key(&self, dir: Direction, w: usize) -> u32 {
        let d = dir_index(dir);
        let mut admin: Vec<u32> = self
            .admin_lists
            .get(self.applicable[w][d].admin)
            .iter()
            .map(|r| r.policy as u32)
            .collect();
        admin.dedup();
        let named = self.layer_named(dir, w, &admin);
        self.layer_keys.borrow_mut().id((d, admin, named))
    }

    /// The key id of the layers below admin of workload `w` in direction `dir`.
    fn lower_key(&self, dir: Direction, w: usize) -> u32 {
        let d = dir_index(dir);
        let app = &self.applicable[w][d];
        let lower: Vec<u32> = if app.namespaced.is_empty() {
            let mut base: Vec<u32> = app.baseline.iter().map(|r| r.policy as u32).collect();
            base.dedup();
            base
        } else {
            app.namespaced.iter().map(|&p| p as u32).collect()
        };
        let named = self.layer_named(dir, w, &lower);
        self.layer_keys.borrow_mut().id((d, lower, named))
    }

    /// Workload `w`'s values of the named ports a layer's policies name (ingress only: egress
    /// named ports are resolved per destination).
    fn layer_named(&self, dir: Direction, w: usize, policies: &[u32]) -> NamedValues {
        if dir == Direction::Egress {
            return Vec::new();
        }
        let wl = &self.cluster.workloads[w];
        policies
            .iter()
            .flat_map(|&p| &self.sets[p as usize].ingress_named)
            .map(|(name, proto)| {
                wl.resolve_named_port(name, *proto)
                    .map(|np| (np.protocol, np.port))
            })
            .collect()
    }

    /// Blocks held by computed class verdicts, by the admin-layer cache and by the lower-layer
    /// cache (each a bit set over a direction's universe): what the engine's memory grows with.
    pub fn cached_blocks(&self) -> [usize; 3] {
        let class: usize = self
            .classes
            .iter()
            .flat_map(|c| c.funcs.iter())
            .filter_map(|f| f.get())
            .map(|f| f.blocks.len())
            .sum();
        let admin: usize = self
            .admin_cache
            .borrow()
            .values()
            .map(|f| {
                let over_atoms = f.over_atoms.as_ref().and_then(OnceCell::get);
                over_atoms.or(f.blocks.get()).map_or(0, Vec::len)
            })
            .sum();
        let lower: usize = self
            .lower_cache
            .borrow()
            .values()
            .map(|f| f.blocks.len())
            .sum();
        [class, admin, lower]
    }

    /// Number of subject classes per direction (`[ingress, egress]`).
    pub fn class_counts(&self) -> [usize; 2] {
        [0, 1].map(|d| {
            let mut used: Vec<u32> = self.classes[d].of.clone();
            used.sort_unstable();
            used.dedup();
            used.len()
        })
    }

    /// A workload of a class with members (its representative, or any member if it has moved
    /// on).
    fn member(&self, dir: Direction, class: u32) -> usize {
        let classes = &self.classes[dir_index(dir)];
        let rep = classes.reps[class as usize];
        if classes.of[rep] == class {
            rep
        } else {
            classes.of.iter().position(|&c| c == class).unwrap_or(rep)
        }
    }

    /// The verdicts of a class over its direction's universe, computed on first use.
    fn class_fn(&self, dir: Direction, class: u32) -> &std::rc::Rc<ClassFn> {
        let classes = &self.classes[dir_index(dir)];
        classes.funcs[class as usize].get_or_init(|| {
            self.graveyard.borrow_mut().free_some();
            let w = self.member(dir, class);
            let key = &classes.keys[class as usize];
            let admin = self.admin_fn(dir, w, key.admin);
            let lower = self.lower_fn(dir, w, key.lower);
            // The admin atoms are at hand (the admin layer was just worked out): the lower
            // blocks' atoms now, if the layer was made before there were atoms ([`lower_fn`]
            // fills them in when there are).
            if self.atoms.borrow()[dir_index(dir)].is_some() {
                self.lower_atoms(dir, &lower);
            }
            std::rc::Rc::new(ClassFn {
                blocks: combine_members(self.admin_blocks(dir, &admin), &lower),
            })
        })
    }

    /// Splits blocks by a rule's peers and, for egress, by the values of the named ports it uses.
    fn refine_by_rule(&self, dir: Direction, blocks: &mut Vec<Bitset>, r: RuleRef) {
        refine(blocks, &self.sets[r.policy].rules[dir_index(dir)][r.rule]);
        if dir == Direction::Egress {
            for pm in self.rule(dir, r).ports.iter().flatten() {
                if let PortMatch::Named { protocol, name } = pm
                    && let Some(parts) = self.named.get(&(name.clone(), *protocol))
                {
                    for part in parts {
                        refine(blocks, part);
                    }
                }
            }
        }
    }

    /// The blocks of the universe on which rules `rules` all agree.
    fn blocks_of(&self, dir: Direction, rules: &[RuleRef]) -> Vec<Bitset> {
        let mut blocks = vec![Bitset::full(self.universe_len(dir))];
        for &r in rules {
            self.refine_by_rule(dir, &mut blocks, r);
        }
        blocks
    }

    /// The atoms of a direction's admin rules (built on first use).
    fn atoms(&self, dir: Direction) -> std::cell::Ref<'_, Atoms<AtomKey>> {
        let d = dir_index(dir);
        if self.atoms.borrow()[d].is_none() {
            let mut atoms = Atoms::new(self.universe_len(dir));
            for pi in admin_order(&self.cluster) {
                self.cut_atoms(&mut atoms, dir, pi);
            }
            self.atoms.borrow_mut()[d] = Some(atoms);
        }
        std::cell::Ref::map(self.atoms.borrow(), |a| {
            a[d].as_ref().expect("atoms were just built")
        })
    }

    /// The admin layer of `subject`'s direction over atoms: its rules applied in order to
    /// groups of atoms in the same state (allowed, still open, passed), groups in equal states
    /// merged as they go, so the groups stay as few as the distinct outcomes. `None` if an atom
    /// set is missing.
    fn admin_sweep(
        &self,
        dir: Direction,
        subject: usize,
        atoms: &Atoms<AtomKey>,
    ) -> Option<Vec<(Bitset, (ConnSet, ConnSet))>> {
        let mut alg = self.algebra.borrow_mut();
        let alg = &mut *alg;
        let app = &self.applicable[subject][dir_index(dir)];
        let mut groups: Vec<(Bitset, SweepState)> = vec![(Bitset::full(atoms.len()), START)];
        // Groups with nothing left open are decided: no later rule changes them.
        let mut decided: Vec<(Bitset, SweepState)> = Vec::new();
        for &r in self.admin_lists.get(app.admin) {
            let rule = SweepRule {
                rule: self.rule(dir, r),
                peers: Cow::Borrowed(atoms.get(&AtomKey::Rule(r))?),
                memo: Some(r),
            };
            groups = self.sweep_rule(alg, dir, subject, atoms, &mut Owned, groups, &rule, step)?;
            groups.retain(|(b, s)| {
                if s[1] == ConnAlgebra::NONE {
                    decided.push((b.clone(), *s));
                    return false;
                }
                true
            });
        }
        let mut out: Merger<[u32; 2]> = Merger::default();
        for (b, s) in groups.into_iter().chain(decided) {
            out.put(b, verdict(alg, s));
        }
        Some(
            out.blocks
                .into_iter()
                .map(|(b, [allowed, delegated])| {
                    (b, (alg.get(allowed).clone(), alg.get(delegated).clone()))
                })
                .collect(),
        )
    }

    /// One admin rule applied to groups of atoms, each in a state `S`: the rule's peers in
    /// each group take the state `step` gives (`None`: the rule leaves it as it is), the rest
    /// keep theirs; groups in equal states are merged. `None` if an atom set is missing.
    #[allow(clippy::too_many_arguments)]
    fn sweep_rule<S: Copy + Eq + std::hash::Hash, T: SetStore>(
        &self,
        alg: &mut ConnAlgebra,
        dir: Direction,
        subject: usize,
        atoms: &Atoms<AtomKey>,
        store: &mut T,
        groups: Vec<(T::G, S)>,
        r: &SweepRule<'_>,
        step: impl Fn(&mut ConnAlgebra, Action, u32, S) -> Option<S>,
    ) -> Option<Vec<(T::G, S)>> {
        // A rule whose peers are in no group leaves every group as it is.
        if !groups
            .iter()
            .any(|(g, _)| store.set(g).intersects(&r.peers))
        {
            return Some(groups);
        }
        let rule = r.rule;
        // The rule's peers in cells where its connections are the same: the peers themselves,
        // unless egress named ports resolve differently per destination.
        let mut refined: Option<Vec<Bitset>> = None;
        let mut named_ports = false;
        for pm in rule.ports.iter().flatten() {
            if let PortMatch::Named { protocol, name } = pm {
                named_ports = true;
                if dir == Direction::Egress
                    && let Some(parts) = self.named.get(&(name.clone(), *protocol))
                {
                    let cells = refined.get_or_insert_with(|| vec![r.peers.clone().into_owned()]);
                    for j in 0..parts.len() {
                        let key = AtomKey::Named((name.clone(), *protocol), j);
                        refine(cells, atoms.get(&key)?);
                    }
                }
            }
        }
        let cells = refined
            .as_deref()
            .unwrap_or(std::slice::from_ref(&*r.peers));
        let mut with_conns: Vec<(&Bitset, u32)> = Vec::with_capacity(cells.len());
        for c in cells {
            // Atoms may be empty (their pieces gone, see [`Atoms::remap`]).
            let Some(u) = c.ones().find_map(|a| atoms.rep(a)) else {
                continue;
            };
            let dst = match dir {
                Direction::Ingress => Endpoint::Workload(subject),
                Direction::Egress => self.endpoint_at(dir, u),
            };
            let conns = match r.memo {
                Some(rr) if !named_ports => alg.rule_conns(dir, rr, || self.rule_conns(rule, dst)),
                _ => alg.id(self.rule_conns(rule, dst)),
            };
            with_conns.push((c, conns));
        }
        let mut next: Merger<S, Part<T::G>> =
            Merger::with_capacity(groups.len() + with_conns.len());
        let merge = |a: &mut Part<T::G>, b: Part<T::G>| a.absorb(b, &*store);
        for (group, state) in groups {
            // What is left of the group (`None` once it has all moved).
            let mut rest = Some(Part::Kept(group));
            for (cell, conns) in &with_conns {
                let Some(g) = rest.as_ref() else {
                    break;
                };
                let g = g.set(&*store);
                if !g.intersects(cell) {
                    continue;
                }
                let Some(s) = step(alg, rule.action, *conns, state) else {
                    // A rule that hits nothing still open leaves the group as it is.
                    continue;
                };
                match g.split(cell) {
                    // The whole group moves, as it is (still shared, if it was).
                    None => {
                        next.put_with(rest.take().expect("just read"), s, merge);
                        break;
                    }
                    Some((inside, outside)) => {
                        next.put_with(Part::Made(inside), s, merge);
                        rest = Some(Part::Made(outside));
                    }
                }
            }
            if let Some(g) = rest.filter(|g| !g.set(&*store).is_empty()) {
                next.put_with(g, state, merge);
            }
        }
        Some(
            (next.blocks.into_iter())
                .map(|(g, s)| (g.into_group(store), s))
                .collect(),
        )
    }

    /// Where the admin layer of `subject` (in a group making one class transition of an admin
    /// policy change) changes, worked out from the policy's old and new rules alone: only
    /// atoms its old or new rules reach can change. The rules of higher priority are swept
    /// over those atoms from the start, the old and the new rules of the policy are applied
    /// side by side, and only where their states differ are the lower-priority rules swept on.
    /// Rules whose peers miss those atoms change nothing there and are passed over, so groups
    /// whose admin rules differ only in such rules get the same answer, worked out once per
    /// update ([`DeltaScratch`]).
    /// Returns the changed atom groups with the old and the new verdict ids (allowed,
    /// delegated); `None` when this cannot be worked out so (the caller sweeps in full).
    fn admin_delta(
        &self,
        dir: Direction,
        subject: usize,
        atoms: &Atoms<AtomKey>,
        change: &AdminChange,
        scratch: &mut DeltaScratch,
    ) -> Option<AdminDelta> {
        let d = dir_index(dir);
        let index = change.index;
        let app = &self.applicable[subject][d];
        let old_rules: &[(Rule, Bitset)] = if change.old_subject.contains(subject) {
            change.old_rules[d].as_ref()?
        } else {
            &[]
        };
        // Whether the subject's list holds the policy's rules (read from the policy's sets: the
        // list itself is read only the first time it is met).
        let has_new =
            !self.sets[index].rules[d].is_empty() && self.sets[index].subject.contains(subject);
        let list = || self.admin_lists.get(app.admin);
        debug_assert_eq!(has_new, list().iter().any(|r| r.policy == index));
        if has_new && !old_rules.is_empty() && !change.same_rank {
            return None;
        }
        let variant = (!old_rules.is_empty(), has_new);
        // The old rules' peers as today's atoms, once per update.
        if scratch.old_peers.is_none() {
            scratch.old_peers = Some(old_rules_peers(change, d, atoms));
        }
        if !scratch.reach.contains_key(&variant) {
            // The atoms the policy's rules reach, old or new.
            let mut reach = Bitset::empty(atoms.len());
            if variant.0 {
                for peers in scratch.old_peers.iter().flatten() {
                    reach.union_with(peers);
                }
            }
            if variant.1 {
                for rule in 0..self.sets[index].rules[d].len() {
                    reach.union_with(atoms.get(&AtomKey::Rule(RuleRef {
                        policy: index,
                        rule,
                    }))?);
                }
            }
            scratch.reach.insert(
                variant,
                Reach {
                    atoms: reach,
                    parts: Vec::new(),
                },
            );
        }
        let reach = scratch.reach.get_mut(&variant).expect("just made");
        if reach.atoms.is_empty() {
            return Some(std::rc::Rc::new(Vec::new()));
        }
        let p = &self.cluster.policies[index];
        let rank_of = |q: usize| {
            let x = &self.cluster.policies[q];
            (x.priority, x.name.as_str(), q)
        };
        let at = if has_new || old_rules.is_empty() {
            (p.priority, p.name.as_str(), index)
        } else {
            (change.old_rank.0, change.old_rank.1.as_str(), index)
        };
        // The rules that reach those atoms, in order, by admin rule list: those before the
        // policy decide where its old and new rules part ways (with the subject's values of the
        // ingress named ports those rules name), those after it are swept on from there.
        // Ingress named ports a rule names (the subject resolves them).
        let names_of = |rule: &Rule| -> Vec<(String, Option<Protocol>)> {
            if dir != Direction::Ingress {
                return Vec::new();
            }
            rule.ports
                .iter()
                .flatten()
                .filter_map(|pm| match pm {
                    PortMatch::Named { protocol, name } => Some((name.clone(), *protocol)),
                    _ => None,
                })
                .collect()
        };
        let entry = match scratch.lists.get(&(app.admin, variant)) {
            Some(found) => found.clone(),
            None => {
                let mut names = Vec::new();
                let mut key = DeltaKey {
                    variant,
                    prefix: Vec::with_capacity(list().len()),
                };
                let mut suffix = Vec::with_capacity(list().len());
                for (r, _) in old_rules {
                    names.extend(names_of(r));
                }
                for run in list().chunk_by(|x, y| x.policy == y.policy) {
                    let q = run[0].policy;
                    if q == index {
                        for &r in run {
                            names.extend(names_of(self.rule(dir, r)));
                        }
                        continue;
                    }
                    // A list holds all of a policy's rules, in order.
                    debug_assert!(
                        run.iter().enumerate().all(|(k, r)| r.rule == k)
                            && run.len() == self.sets[q].rules[d].len()
                    );
                    let Reach {
                        atoms: reached,
                        parts,
                    } = &mut *reach;
                    if parts.len() <= q {
                        parts.resize_with(q + 1, || None);
                    }
                    let part = parts[q].get_or_insert_with(|| {
                        let count = self.sets[q].rules[d].len();
                        let mut rules = Vec::with_capacity(count);
                        rules.extend(
                            (0..count)
                                .map(|rule| RuleRef { policy: q, rule })
                                // A missing atom set counts as reaching (the sweep then gives up).
                                .filter(|&r| {
                                    (atoms.get(&AtomKey::Rule(r)))
                                        .is_none_or(|a| a.intersects(reached))
                                })
                                .map(|r| {
                                    let names = names_of(self.rule(dir, r));
                                    (r, (!names.is_empty()).then(|| std::rc::Rc::new(names)))
                                }),
                        );
                        PolicyPart {
                            before: rank_of(q) < at,
                            rules,
                        }
                    });
                    if part.before {
                        key.prefix.extend(part.rules.iter().map(|(r, _)| *r));
                        names.extend(
                            part.rules
                                .iter()
                                .flat_map(|(_, n)| n.iter().flat_map(|n| n.iter().cloned())),
                        );
                    } else {
                        suffix.extend(part.rules.iter().cloned());
                    }
                }
                let next = scratch.keys.len() as u32;
                let id = *scratch.key_ids.entry(key.clone()).or_insert(next);
                if id == next {
                    scratch.keys.push(key);
                }
                names.sort_unstable();
                names.dedup();
                let entry = ListEntry {
                    head: id,
                    names: std::rc::Rc::new(names),
                    suffix: std::rc::Rc::new(suffix),
                };
                scratch.lists.insert((app.admin, variant), entry.clone());
                entry
            }
        };
        let workload = &self.cluster.workloads[subject];
        let values_of = |names: &[(String, Option<Protocol>)]| -> NamedValues {
            names
                .iter()
                .map(|(name, protocol)| {
                    workload
                        .resolve_named_port(name, *protocol)
                        .map(|np| (np.protocol, np.port))
                })
                .collect()
        };
        let rule_of = |r: RuleRef| -> Option<SweepRule<'_>> {
            Some(SweepRule {
                rule: self.rule(dir, r),
                peers: Cow::Borrowed(atoms.get(&AtomKey::Rule(r))?),
                memo: Some(r),
            })
        };
        // Where the old and the new rules part ways, once per key and named-port values.
        let head_key = (entry.head, values_of(&entry.names));
        let mut state = match scratch.heads.get(&head_key) {
            Some(&found) => found?,
            None => {
                // The rules before the policy, rule by rule from the atoms reached: lists
                // whose rules there start alike share the sweep of what they share.
                let prefix = scratch.keys[entry.head as usize].prefix.clone();
                let root = *scratch.prefix_roots.entry(variant).or_insert_with(|| {
                    let reach = scratch.reach[&variant].atoms.clone();
                    scratch
                        .prefix_states
                        .push(std::rc::Rc::new(vec![(reach, START)]));
                    scratch.prefix_states.len() as u32 - 1
                });
                let mut at = Some(root);
                for r in prefix {
                    let Some(from) = at.filter(|&f| !scratch.prefix_states[f as usize].is_empty())
                    else {
                        break;
                    };
                    let names = names_of(self.rule(dir, r));
                    let step_key = (from, r, (!names.is_empty()).then(|| values_of(&names)));
                    at = match scratch.prefix_steps.get(&step_key) {
                        Some(&found) => found,
                        None => {
                            let groups = (*scratch.prefix_states[from as usize]).clone();
                            let next = rule_of(r).and_then(|rule| {
                                let mut alg = self.algebra.borrow_mut();
                                let owned = &mut Owned;
                                self.sweep_rule(
                                    &mut alg, dir, subject, atoms, owned, groups, &rule, step,
                                )
                            });
                            let id = next.map(|mut groups| {
                                // Groups the rule decides are the same before and after.
                                groups.retain(|(_, s)| s[1] != ConnAlgebra::NONE);
                                scratch.prefix_states.push(std::rc::Rc::new(groups));
                                scratch.prefix_states.len() as u32 - 1
                            });
                            scratch.prefix_steps.insert(step_key, id);
                            id
                        }
                    };
                }
                let new: Vec<RuleRef> = list()
                    .iter()
                    .copied()
                    .filter(|r| r.policy == index)
                    .collect();
                let sweep = |rules: &[RuleRef]| {
                    rules
                        .iter()
                        .map(|&r| rule_of(r))
                        .collect::<Option<Vec<_>>>()
                };
                let head = (|| {
                    let groups = (*scratch.prefix_states[at? as usize]).clone();
                    let new = sweep(&new)?;
                    let old: Vec<SweepRule<'_>> = old_rules
                        .iter()
                        .zip(scratch.old_peers.iter().flatten())
                        .map(|((rule, _), peers)| SweepRule {
                            rule,
                            peers: Cow::Borrowed(peers),
                            memo: None,
                        })
                        .collect();
                    let sets = &mut scratch.sets;
                    self.admin_delta_head(dir, subject, atoms, sets, groups, &old, &new)
                })();
                let id = head.map(|h| scratch.intern(h, 0));
                scratch.heads.insert(head_key, id);
                id?
            }
        };
        // The rules after it, rule by rule from the state reached: subjects whose rules differ
        // only further on share the steps up to there, and a state with nothing left to sweep
        // ends the walk.
        for (r, names) in entry.suffix.iter() {
            if scratch.states[state as usize].0.is_empty() {
                break;
            }
            let step_key = (state, *r, names.as_deref().map(|n| values_of(n)));
            state = match scratch.steps.get(&step_key) {
                Some(&found) => found?,
                None => {
                    let from = scratch.states[state as usize].clone();
                    let id = match rule_of(*r) {
                        // A rule whose peers miss every open group leaves the state as it is.
                        Some(rule) if !self.may_hit(dir, &rule, &scratch.sets, &from.0) => {
                            Some(state)
                        }
                        Some(rule) => {
                            let sets = &mut scratch.sets;
                            (self.admin_delta_step(dir, subject, atoms, sets, &from, &rule))
                                .map(|n| scratch.intern(n, from.1))
                        }
                        None => None,
                    };
                    scratch.steps.insert(step_key, id);
                    id?
                }
            };
        }
        if let Some(found) = scratch.finals.get(&state) {
            return Some(found.clone());
        }
        let done = std::rc::Rc::new(self.admin_delta_end(scratch, state));
        scratch.finals.insert(state, done.clone());
        Some(done)
    }

    /// Whether admin rule `r` may change a group of a [`PairState`]: its peers meet the group
    /// and (unless its connections depend on the destination, through egress named ports) its
    /// connections meet what is still open on either side.
    fn may_hit(
        &self,
        dir: Direction,
        r: &SweepRule<'_>,
        sets: &SetTable,
        groups: &PairGroups,
    ) -> bool {
        let mut meeting = groups
            .iter()
            .filter(|(g, _)| sets.set(g).intersects(&r.peers))
            .peekable();
        if meeting.peek().is_none() {
            return false;
        }
        let named = (r.rule.ports.iter().flatten()).any(|p| matches!(p, PortMatch::Named { .. }));
        let Some(memo) = r.memo.filter(|_| !named) else {
            return true;
        };
        let mut alg = self.algebra.borrow_mut();
        // Without named ports the connections are the same towards every peer.
        let conns = alg.rule_conns(dir, memo, || self.rule_conns(r.rule, Endpoint::Workload(0)));
        meeting.any(|(_, s)| {
            alg.op(Op::Intersect, conns, s[1]) != ConnAlgebra::NONE
                || alg.op(Op::Intersect, conns, s[4]) != ConnAlgebra::NONE
        })
    }

    /// [`Engine::admin_delta`] at the policy: from `groups` (the atoms reached, as the rules
    /// before it left them open), its old and its new rules side by side; the atom groups
    /// where the two states differ, as a [`PairState`]'s parts. `None` if an atom set is
    /// missing.
    #[allow(clippy::too_many_arguments)]
    fn admin_delta_head(
        &self,
        dir: Direction,
        subject: usize,
        atoms: &Atoms<AtomKey>,
        sets: &mut SetTable,
        groups: Vec<(Bitset, SweepState)>,
        old: &[SweepRule<'_>],
        new: &[SweepRule<'_>],
    ) -> Option<PairParts> {
        let mut alg = self.algebra.borrow_mut();
        let alg = &mut *alg;
        let mut before = groups.clone();
        for r in old {
            before = self.sweep_rule(alg, dir, subject, atoms, &mut Owned, before, r, step)?;
        }
        let mut after = groups;
        for r in new {
            after = self.sweep_rule(alg, dir, subject, atoms, &mut Owned, after, r, step)?;
        }
        let mut pairs: PairGroups = Vec::new();
        for (b, sb) in &before {
            for (a, sa) in &after {
                if sb != sa
                    && let Some(both) = b.intersection_if_any(a)
                {
                    let [x, y, z] = *sb;
                    let [u, v, w] = *sa;
                    pairs.push((sets.make(both), [x, y, z, u, v, w]));
                }
            }
        }
        Some(settle(pairs))
    }

    /// One rule after the policy applied to both sides of a [`PairState`]. `None` if an atom
    /// set is missing.
    fn admin_delta_step(
        &self,
        dir: Direction,
        subject: usize,
        atoms: &Atoms<AtomKey>,
        sets: &mut SetTable,
        from: &PairState,
        rule: &SweepRule<'_>,
    ) -> Option<PairParts> {
        let pair_step = |alg: &mut ConnAlgebra, action: Action, conns: u32, s: [u32; 6]| {
            let (b, a) = ([s[0], s[1], s[2]], [s[3], s[4], s[5]]);
            let (nb, na) = (step(alg, action, conns, b), step(alg, action, conns, a));
            if nb.is_none() && na.is_none() {
                return None;
            }
            let ([x, y, z], [u, v, w]) = (nb.unwrap_or(b), na.unwrap_or(a));
            Some([x, y, z, u, v, w])
        };
        let mut alg = self.algebra.borrow_mut();
        let open = self.sweep_rule(
            &mut alg,
            dir,
            subject,
            atoms,
            sets,
            from.0.clone(),
            rule,
            pair_step,
        )?;
        Some(settle(open))
    }

    /// The changed atom groups of a final state (by id in `scratch`), with the old and the new
    /// verdict ids.
    fn admin_delta_end(&self, scratch: &DeltaScratch, state: u32) -> Vec<(Bitset, [[u32; 2]; 2])> {
        let (open, last) = &*scratch.states[state as usize];
        let mut link = *last;
        // The decided groups, in the order they were decided.
        let mut chain = Vec::new();
        while link != 0 {
            let (before, groups) = &*scratch.decided[link as usize - 1];
            chain.push(groups);
            link = *before;
        }
        let mut alg = self.algebra.borrow_mut();
        let mut out: Merger<[[u32; 2]; 2]> = Merger::default();
        for (b, s) in open.iter().chain(chain.into_iter().rev().flatten()) {
            let vb = verdict(&mut alg, [s[0], s[1], s[2]]);
            let va = verdict(&mut alg, [s[3], s[4], s[5]]);
            if vb != va {
                out.put(scratch.sets.set(b).clone(), [vb, va]);
            }
        }
        out.blocks
    }

    /// The admin layer `old` with the changed atom groups of `delta` set to their new
    /// verdicts.
    fn patch_admin(
        &self,
        atoms: &Atoms<AtomKey>,
        old: &AdminBlocks,
        delta: &[(Bitset, [[u32; 2]; 2])],
    ) -> AdminBlocks {
        let alg = self.algebra.borrow();
        // The changes may be over fewer atoms (made before atoms split).
        let delta: Vec<(Bitset, [[u32; 2]; 2])> =
            delta.iter().map(|(b, v)| (atoms.catch_up(b), *v)).collect();
        let mut changed = Bitset::empty(atoms.len());
        for (b, _) in &delta {
            changed.union_with(b);
        }
        let mut out: Merger<AdminVerdict> = Merger::default();
        for (b, v) in old {
            let mut b = atoms.catch_up(b);
            b.subtract_with(&changed);
            if !b.is_empty() {
                out.put(b, v.clone());
            }
        }
        for (b, [_, [allowed, delegated]]) in delta {
            out.put(b, (alg.get(allowed).clone(), alg.get(delegated).clone()));
        }
        out.blocks
    }

    /// Cuts a direction's atoms by admin policy `pi`'s rules (and the named-port partitions
    /// they use).
    fn cut_atoms(&self, atoms: &mut Atoms<AtomKey>, dir: Direction, pi: usize) {
        let d = dir_index(dir);
        for (rule, set) in self.sets[pi].rules[d].iter().enumerate() {
            atoms.insert(AtomKey::Rule(RuleRef { policy: pi, rule }), set);
        }
        if dir == Direction::Egress {
            for k in named_keys(&self.cluster.policies[pi], dir) {
                for (j, part) in self.named.get(&k).into_iter().flatten().enumerate() {
                    atoms.insert(AtomKey::Named(k.clone(), j), part);
                }
            }
        }
    }

    /// The admin layer of `subject`'s direction over the whole universe, cached by its key
    /// (which must be the subject's).
    fn admin_fn(&self, dir: Direction, subject: usize, key: u32) -> std::rc::Rc<AdminFn> {
        if let Some(f) = self.admin_cache.borrow().get(&key) {
            return f.clone();
        }
        let app = &self.applicable[subject][dir_index(dir)];
        let verdict = |peer| self.admin_layer(dir, subject, peer);
        let atoms = self.atoms(dir);
        let swept = self.admin_sweep(dir, subject, &atoms);
        drop(atoms);
        let f = std::rc::Rc::new(match swept {
            Some(blocks) => AdminFn::over_atoms(blocks),
            // An atom set is missing (a bug, but not worth a wrong answer): work over peers.
            None => AdminFn::over_peers(self.evaluate_blocks(
                dir,
                self.blocks_of(dir, self.admin_lists.get(app.admin)),
                verdict,
            )),
        });
        self.admin_cache.borrow_mut().insert(key, f.clone());
        f
    }

    /// An admin layer's blocks over atoms (`None`: it was worked out over peers), patched on
    /// first use when it was brought up to date by a change ([`AdminFn::patch`]).
    fn admin_atoms<'a>(&self, dir: Direction, f: &'a AdminFn) -> Option<&'a AdminBlocks> {
        let cell = f.over_atoms.as_ref()?;
        Some(cell.get_or_init(|| {
            let (base, deltas) = (f.patched.borrow_mut().take())
                .expect("an admin layer over atoms is worked out or patched");
            let from = self
                .admin_atoms(dir, &base)
                .expect("a layer over atoms is patched from one");
            let atoms = self.atoms(dir);
            let mut blocks: Option<AdminBlocks> = None;
            for delta in &deltas {
                let next = self.patch_admin(&atoms, blocks.as_ref().unwrap_or(from), delta);
                blocks = Some(next);
            }
            blocks.unwrap_or_else(|| from.clone())
        }))
    }

    /// An admin layer's blocks over the universe of peers (expanded from atoms on first use).
    fn admin_blocks<'a>(&self, dir: Direction, f: &'a AdminFn) -> &'a AdminBlocks {
        f.blocks.get_or_init(|| {
            let atoms = self.atoms(dir);
            let groups = self.admin_atoms(dir, f).into_iter().flatten();
            atoms.expand(
                groups
                    .map(|(b, v)| (atoms.catch_up(b), v.clone()))
                    .collect(),
            )
        })
    }

    /// Where two admin layers differ, over the universe of peers: worked out over atoms when
    /// both were, so only the regions that differ are expanded.
    fn admin_diff(
        &self,
        dir: Direction,
        before: &AdminFn,
        after: &AdminFn,
    ) -> Vec<(Bitset, (AdminVerdict, AdminVerdict))> {
        if let (Some(b), Some(a)) = (self.admin_atoms(dir, before), self.admin_atoms(dir, after)) {
            let atoms = self.atoms(dir);
            fn up<'v>(
                atoms: &Atoms<AtomKey>,
                v: &'v AdminBlocks,
            ) -> Vec<(Bitset, &'v AdminVerdict)> {
                v.iter().map(|(x, c)| (atoms.catch_up(x), c)).collect()
            }
            let regions = diff_blocks(&up(&atoms, b), &up(&atoms, a))
                .into_iter()
                .map(|(r, (vb, va))| (r, (vb.clone(), va.clone())))
                .collect();
            return atoms.expand(regions);
        }
        diff_blocks(
            self.admin_blocks(dir, before),
            self.admin_blocks(dir, after),
        )
    }

    /// Where the admin layer of `subject` went from `before` to its new version (key `key`,
    /// cached here if it is not yet) over the universe of peers: worked out from the change
    /// of the admin policy alone when it can be ([`Engine::admin_delta`]), else by sweeping
    /// the new layer in full and comparing.
    fn admin_update(
        &self,
        dir: Direction,
        subject: usize,
        before: &std::rc::Rc<AdminFn>,
        key: u32,
        change: Option<&AdminChange>,
        scratch: &mut DeltaScratch,
    ) -> Vec<AdminRegion> {
        if let Some(change) = change.filter(|_| before.over_atoms.is_some()) {
            let atoms = self.atoms(dir);
            if let Some(delta) = self.admin_delta(dir, subject, &atoms, change, scratch) {
                if !self.admin_cache.borrow().contains_key(&key) {
                    let f = if delta.is_empty() {
                        before.clone()
                    } else {
                        std::rc::Rc::new(AdminFn::patch(before, delta.clone()))
                    };
                    self.admin_cache.borrow_mut().insert(key, f);
                }
                let at = std::rc::Rc::as_ptr(&delta) as usize;
                if let Some((_, regions)) = scratch.regions.get(&at) {
                    return regions.clone();
                }
                // Classes making different changes of the admin layer often change it over
                // the same atoms: each set of atoms becomes a region once per update (its peers
                // expanded only when asked for).
                let mut words = None;
                let regions: Vec<AdminRegion> = delta
                    .iter()
                    .map(|(b, [vb, va])| {
                        if !scratch.expanded.contains_key(b) {
                            let (words, len) = words.get_or_insert_with(|| atoms.words());
                            let set = std::sync::Arc::new(IndexedBitset::new(b));
                            let region =
                                Region::over_atoms((set, words.clone(), *len), atoms.count_of(b));
                            scratch.expanded.insert(b.clone(), std::rc::Rc::new(region));
                        }
                        (scratch.expanded[b].clone(), (*vb, *va))
                    })
                    .collect();
                scratch.regions.insert(at, (delta, regions.clone()));
                return regions;
            }
        }
        let after = self.admin_fn(dir, subject, key);
        let diff = self.admin_diff(dir, before, &after);
        let mut alg = self.algebra.borrow_mut();
        let mut id = |(a, d): AdminVerdict| [alg.id(a), alg.id(d)];
        diff.into_iter()
            .map(|(r, (vb, va))| (std::rc::Rc::new(Region::of_peers(r)), (id(vb), id(va))))
            .collect()
    }

    /// The layers below admin of `subject`'s direction over the whole universe, cached by its
    /// key (which must be the subject's).
    fn lower_fn(&self, dir: Direction, subject: usize, key: u32) -> std::rc::Rc<LowerFn> {
        if let Some(f) = self.lower_cache.borrow().get(&key) {
            return f.clone();
        }
        if let Some(f) = self.carry_lower(key) {
            return f;
        }
        let app = &self.applicable[subject][dir_index(dir)];
        let rules: Vec<RuleRef> = if app.namespaced.is_empty() {
            app.baseline.clone()
        } else {
            app.namespaced
                .iter()
                .flat_map(|&pi| {
                    (0..self.cluster.policies[pi]
                        .rules(dir)
                        .unwrap_or_default()
                        .len())
                        .map(move |rule| RuleRef { policy: pi, rule })
                })
                .collect()
        };
        let blocks = self.blocks_of(dir, &rules);
        let blocks: Vec<(std::sync::Arc<Members>, ConnSet)> = self
            .evaluate_blocks(dir, blocks, |peer| self.lower_layer(dir, subject, peer))
            .into_iter()
            .map(|(b, c)| (std::sync::Arc::new(Members::new(b)), c))
            .collect();
        let ids = {
            let mut alg = self.algebra.borrow_mut();
            blocks.iter().map(|(_, c)| alg.id(c.clone())).collect()
        };
        let f = std::rc::Rc::new(LowerFn {
            blocks,
            ids,
            atoms: Default::default(),
        });
        // The blocks' admin atoms now, while the layer is made (a few layers per NetworkPolicy
        // change), rather than for thousands of layers at once when the next admin policy
        // change reads them.
        if self.atoms.borrow()[dir_index(dir)].is_some() {
            self.lower_atoms(dir, &f);
        }
        self.lower_cache.borrow_mut().insert(key, f.clone());
        f
    }

    /// The layer below admin of key `key` worked out before the external pieces moved, carried
    /// over to today's pieces and cached, if there is one.
    fn carry_lower(&self, key: u32) -> Option<std::rc::Rc<LowerFn>> {
        let mut moved = self.moved_lower.borrow_mut();
        let d = self.layer_keys.borrow().keys[key as usize].0;
        let w = self.cluster.workloads.len();
        let atoms = self.atoms.borrow();
        let f = moved.iter_mut().rev().find_map(|m| {
            let f = m.layers.remove(&key)?;
            let atoms = atoms[d].as_ref().map(|a| (a, m.tails[d].as_deref()));
            Some(match &m.maps[d] {
                Some(map) => std::rc::Rc::new(f.carried(w, map, atoms)),
                None => f,
            })
        })?;
        drop(atoms);
        self.lower_cache.borrow_mut().insert(key, f.clone());
        Some(f)
    }

    /// The admin atoms each block of `f` meets (see [`LowerFn::atoms`]), caught up with the
    /// atoms as they are now.
    fn lower_atoms(&self, dir: Direction, f: &LowerFn) -> std::sync::Arc<BlockAtoms> {
        let atoms = self.atoms(dir);
        let mut held = f.atoms.borrow_mut();
        match &mut *held {
            // Atoms split since (the blocks' sets are made and caught up together).
            Some(held) if held.atoms != atoms.len() => {
                let mut tally = vec![0u32; atoms.len()];
                let (met, counts) = (f.blocks.iter().enumerate())
                    .map(|(k, (z, _))| held.caught_up(k, z, None, &atoms, &mut tally))
                    .unzip();
                *held = std::sync::Arc::new(BlockAtoms {
                    met,
                    counts,
                    atoms: atoms.len(),
                });
            }
            Some(_) => {}
            None => {
                let mut tally = vec![0u32; atoms.len()];
                let (met, counts) = (f.blocks.iter())
                    .map(|(z, _)| block_atoms(z, &atoms, &mut tally))
                    .unzip();
                *held = Some(std::sync::Arc::new(BlockAtoms {
                    met,
                    counts,
                    atoms: atoms.len(),
                }));
            }
        }
        held.clone().expect("just made")
    }

    /// Every connection with something allowed, as `(source, destination, connections)`.
    /// Pairs of a workload with itself and of two external ranges are left out. The order is
    /// unspecified.
    ///
    /// This visits all workload pairs through class-level tables: the source's egress class
    /// and the destination's ingress class decide, so each pair costs a few table lookups.
    pub fn for_each_connection(&self, mut f: impl FnMut(Endpoint, Endpoint, &ConnSet)) {
        let w = self.cluster.workloads.len();
        let (ei, ii) = (dir_index(Direction::Egress), dir_index(Direction::Ingress));
        let ne = self.pieces.ranges[ei].len();
        let mut interner = Interner::default();
        let empty = interner.id(&ConnSet::none());
        // Per class of a direction: block → interned connection set.
        let mut ids_of = |dir: Direction| -> Vec<Vec<u32>> {
            let classes = &self.classes[dir_index(dir)];
            (0..classes.reps.len() as u32)
                .map(|c| {
                    // Classes left without members have nothing to say (and no member to ask).
                    if classes.counts[c as usize] == 0 {
                        return Vec::new();
                    }
                    self.class_fn(dir, c)
                        .blocks
                        .iter()
                        .map(|(_, cs)| interner.id(cs))
                        .collect()
                })
                .collect()
        };
        let e_ids = ids_of(Direction::Egress);
        let i_ids = ids_of(Direction::Ingress);
        let e_classes = e_ids.len();
        let n0 = interner.sets.len();
        let mut meet = Meet::new(n0);
        let es: &[u32] = &self.classes[ei].of;
        let is: &[u32] = &self.classes[ii].of;
        // Destinations (workloads, then egress pieces) in chunks; for each, a table of the
        // egress verdict id per (destination, egress class).
        let rows = w + ne;
        let budget_entries = (256usize << 20) / 4;
        let chunk = (budget_entries / e_classes.max(1)).clamp(1, rows.max(1));
        let mut t: Vec<u32> = Vec::new();
        let mut admitted: Vec<(u32, u32)> = Vec::with_capacity(w);
        let mut external: Vec<(usize, u32)> = Vec::new();
        let mut lo = 0;
        while lo < rows {
            let hi = (lo + chunk).min(rows);
            t.clear();
            t.resize((hi - lo) * e_classes, empty);
            for (c, ids) in e_ids.iter().enumerate() {
                if ids.is_empty() {
                    continue;
                }
                for ((b, _), &id) in self
                    .class_fn(Direction::Egress, c as u32)
                    .blocks
                    .iter()
                    .zip(ids)
                {
                    if id == empty {
                        continue;
                    }
                    b.each_in(lo, hi, |dst| t[(dst - lo) * e_classes + c] = id);
                }
            }
            // Workload destinations of this chunk, grouped by ingress class.
            let mut by_class: HashMap<u32, Vec<usize>> = HashMap::default();
            for (dst, &class) in is.iter().enumerate().take(hi.min(w)).skip(lo) {
                by_class.entry(class).or_default().push(dst);
            }
            let mut groups: Vec<(u32, Vec<usize>)> = by_class.into_iter().collect();
            groups.sort_unstable();
            for (ic, dsts) in groups {
                // The sources this class admits at all, with their verdict ids (the buffers are
                // reused: fresh ones of this size would be mapped and unmapped every time).
                admitted.clear();
                external.clear();
                for ((b, _), &id) in self
                    .class_fn(Direction::Ingress, ic)
                    .blocks
                    .iter()
                    .zip(&i_ids[ic as usize])
                {
                    if id == empty {
                        continue;
                    }
                    b.each(|src| {
                        if src < w {
                            admitted.push((src as u32, id));
                        } else {
                            external.push((src - w, id));
                        }
                    });
                }
                for &dst in &dsts {
                    let trow = &t[(dst - lo) * e_classes..(dst - lo + 1) * e_classes];
                    for &(src, iv) in &admitted {
                        let src = src as usize;
                        let ev = trow[es[src] as usize];
                        if ev == empty || src == dst {
                            continue;
                        }
                        let r = meet.get(ev, iv, &mut interner);
                        if r != empty {
                            f(
                                Endpoint::Workload(src),
                                Endpoint::Workload(dst),
                                &interner.sets[r as usize],
                            );
                        }
                    }
                    for &(x, iv) in &external {
                        f(
                            Endpoint::External(self.pieces.ranges[ii][x]),
                            Endpoint::Workload(dst),
                            &interner.sets[iv as usize],
                        );
                    }
                }
            }
            // External destinations of this chunk: only the source's egress decides.
            for row in lo.max(w)..hi {
                let trow = &t[(row - lo) * e_classes..(row - lo + 1) * e_classes];
                let y = Endpoint::External(self.pieces.ranges[ei][row - w]);
                for src in 0..w {
                    let ev = trow[es[src] as usize];
                    if ev != empty {
                        f(Endpoint::Workload(src), y, &interner.sets[ev as usize]);
                    }
                }
            }
            lo = hi;
        }
    }

    /// Replaces policy `index` (`None` removes it; an index equal to the number of policies
    /// adds one) and brings every verdict up to date, incrementally unless the change moves the
    /// external pieces. Returns what changed, per direction.
    ///
    /// A removed policy stays in [`Cluster::policies`] as an inert placeholder (no subject, no
    /// rules, its name suffixed ` (removed)`), so policy indices stay stable.
    pub fn set_policy(&mut self, index: usize, policy: Option<Policy>) -> Update {
        let n = self.cluster.workloads.len();
        let adding = index >= self.cluster.policies.len();
        if adding && policy.is_none() {
            return Update {
                subjects: [Bitset::empty(n), Bitset::empty(n)],
                ..Default::default()
            };
        }
        let index = if adding {
            self.cluster.policies.len()
        } else {
            index
        };
        let old_subject = if adding {
            Bitset::empty(n)
        } else {
            self.sets[index].subject.clone()
        };
        let old_classes = [self.classes[0].of.clone(), self.classes[1].of.clone()];
        let old_layer = (!adding).then(|| self.cluster.policies[index].layer);
        let old_rules = if adding {
            [0, 0]
        } else {
            [0, 1].map(|d| self.sets[index].rules[d].len())
        };
        // Every workload the policy selects, before or after, may change class.
        let mut affected = old_subject.clone();
        if let Some(p) = &policy {
            affected.union_with(&self.labels.pod_match(&self.cluster, &p.subject));
        }
        let policy = policy.unwrap_or_else(|| {
            let old = &self.cluster.policies[index];
            Policy {
                name: format!("{} (removed)", old.name),
                subject: crate::model::PodMatch {
                    namespaces: crate::model::NsMatch::Exact(String::new()),
                    pods: crate::selector::Selector::everything(),
                },
                ingress: None,
                egress: None,
                ..old.clone()
            }
        });
        // The external pieces can only move when the policy's address sets do.
        fn ip_sets_of(p: &Policy) -> [Vec<&IpSet>; 2] {
            DIRS.map(|dir| policy_ip_sets(p, dir).collect())
        }
        let same_ip_sets = !adding
            && ip_sets_of(&self.cluster.policies[index]) == ip_sets_of(&policy)
            || adding && ip_sets_of(&policy).iter().all(|v| v.is_empty());
        // The external pieces after the change, when they move: they do when the policy's
        // address sets bring a boundary that none cut before, or take the last cut at one.
        let moved = !same_ip_sets && {
            let old = (!adding).then(|| &self.cluster.policies[index]);
            let by_dir = DIRS.map(|d| {
                let old = old.into_iter().flat_map(|p| policy_ip_sets(p, d));
                self.cuts[dir_index(d)].replace(old, policy_ip_sets(&policy, d))
            });
            by_dir.contains(&true)
        };
        let new_pieces = moved
            .then(|| Pieces::new([0, 1].map(|d| self.cuts[d].pieces())))
            .filter(|p| *p != self.pieces);
        let pieces_moved = new_pieces.is_some();
        // The old layer verdicts of the classes that may change, for the diff: of the admin
        // layer and of the layers below, as far as the change can move them (`[admin, lower]`).
        let admin_layer = |l: Layer| l == Layer::Admin;
        let needs = [
            pieces_moved || old_layer.is_some_and(admin_layer) || admin_layer(policy.layer),
            pieces_moved
                || old_layer.is_some_and(|l| !admin_layer(l))
                || !admin_layer(policy.layer),
        ];
        let mut old_admin: HashMap<u32, std::rc::Rc<AdminFn>> = HashMap::default();
        let mut old_lower: HashMap<u32, std::rc::Rc<LowerFn>> = HashMap::default();
        for dir in DIRS {
            let d = dir_index(dir);
            let mut seen = Bitset::empty(self.classes[d].keys.len());
            for w in affected.ones() {
                let c = old_classes[d][w];
                if seen.contains(c as usize) {
                    continue;
                }
                seen.insert(c as usize);
                let key = self.classes[d].keys[c as usize];
                if needs[0] {
                    old_admin
                        .entry(key.admin)
                        .or_insert_with(|| self.admin_fn(dir, w, key.admin));
                }
                if needs[1] {
                    old_lower
                        .entry(key.lower)
                        .or_insert_with(|| self.lower_fn(dir, w, key.lower));
                }
            }
        }
        // An admin policy's old version, for bringing admin layers up to date incrementally.
        let old_admin_policy = (old_layer == Some(Layer::Admin) && policy.layer == Layer::Admin)
            .then(|| self.cluster.policies[index].clone());
        let cluster = self.cluster.to_mut();
        if adding {
            cluster.policies.push(policy.clone());
        } else {
            cluster.policies[index] = policy.clone();
        }
        if let Some(new_pieces) = new_pieces {
            // The external pieces moved: carry every bit set over to the new pieces. Each new
            // piece overlaps the old piece holding its first address, and every set not of this
            // policy is constant over both, so that piece's bit is the new one's. The cached
            // layers go along ([`Engine::remap_pieces`]), and so do the old ones this change
            // compares with.
            let maps = self.remap_pieces(new_pieces);
            let w = self.cluster.workloads.len();
            let keys = self.layer_keys.borrow();
            let dir_of = |k: &u32| keys.keys[*k as usize].0;
            for (k, f) in old_admin.iter_mut() {
                if let Some(map) = &maps[dir_of(k)] {
                    let cached = self.admin_cache.borrow().get(k).cloned();
                    *f = cached.unwrap_or_else(|| std::rc::Rc::new(f.carried(w, Some(map))));
                }
            }
            for (k, f) in old_lower.iter_mut() {
                if let Some(map) = &maps[dir_of(k)] {
                    *f = (self.carry_lower(*k))
                        .unwrap_or_else(|| std::rc::Rc::new(f.carried(w, map, None)));
                }
            }
        }
        self.algebra.borrow_mut().forget_policy(index);
        let sets = policy_sets(&self.cluster, &self.labels, &self.pieces, &policy);
        // An admin policy that keeps its subject, its place, its rule counts and the ingress
        // named ports it names leaves every workload's admin rule list and layer keys as they
        // are: only what the keys naming it mean changes. Its classes are then kept, their admin
        // layers brought up to date in place, rather than their members moved to fresh classes.
        let in_place = !pieces_moved
            && old_admin_policy.as_ref().is_some_and(|old| {
                let old_sets = &self.sets[index];
                (old.priority, &old.name) == (policy.priority, &policy.name)
                    && old_sets.subject == sets.subject
                    && old_sets.ingress_named == sets.ingress_named
                    && [0, 1].map(|d| sets.rules[d].len()) == old_rules
            });
        // In place, a direction whose rules are as they were (a change of the other direction's
        // rules) keeps its admin layers, its classes and their verdicts as they are.
        let same_rules = DIRS.map(|dir| {
            in_place
                && old_admin_policy
                    .as_ref()
                    .is_some_and(|o| o.rules(dir) == policy.rules(dir))
        });
        if adding {
            self.sets.push(sets);
        } else {
            self.sets[index] = sets;
        }
        for k in named_keys(&policy, Direction::Egress).collect::<Vec<_>>() {
            self.add_named(k);
        }
        // Layer verdicts computed from this policy's old version, or over the old pieces, are
        // stale; so are the classes whose key names this policy: their workloads land in fresh
        // classes, or (in place) the classes keep them and lose their verdicts.
        let pi = index as u32;
        // Keys naming the policy get fresh ids from now on, so the classes whose key names it
        // are never found again (their members move to fresh classes); or, for a change in
        // place, keep their ids and lose what was computed for them.
        let stale = if in_place {
            let keys = self.layer_keys.borrow();
            let naming = keys.by_policy.get(index).into_iter().flatten().copied();
            naming
                .filter(|&id| !same_rules[keys.keys[id as usize].0])
                .collect()
        } else {
            self.layer_keys.borrow_mut().retire(pi)
        };
        for id in stale {
            self.admin_cache.borrow_mut().remove(&id);
            self.lower_cache.borrow_mut().remove(&id);
            for m in self.moved_lower.borrow_mut().iter_mut() {
                m.layers.remove(&id);
            }
        }
        // The admin atoms: cut by the new rules (the old rules' cuts stay, harmlessly).
        let mut old_rule_atoms: [Option<Vec<(Rule, Bitset)>>; 2] = [None, None];
        if old_layer == Some(Layer::Admin) || policy.layer == Layer::Admin {
            let mut atoms = self.atoms.take();
            for dir in DIRS {
                let d = dir_index(dir);
                if let Some(a) = &mut atoms[d] {
                    if let Some(old) = &old_admin_policy {
                        let rules = old.rules(dir).unwrap_or_default();
                        old_rule_atoms[d] = rules
                            .iter()
                            .enumerate()
                            .map(|(rule, r)| {
                                let key = AtomKey::Rule(RuleRef {
                                    policy: index,
                                    rule,
                                });
                                Some((r.clone(), a.get(&key)?.clone()))
                            })
                            .collect();
                    } else if adding {
                        old_rule_atoms[d] = Some(Vec::new());
                    }
                    for rule in 0..old_rules[d] {
                        a.remove(&AtomKey::Rule(RuleRef {
                            policy: index,
                            rule,
                        }));
                    }
                    if policy.layer == Layer::Admin {
                        self.cut_atoms(a, dir, index);
                    }
                }
            }
            *self.atoms.borrow_mut() = atoms;
        }
        let before = self.admin_precedes(index);
        let admin_change = (old_layer.is_none_or(|l| l == Layer::Admin)
            && policy.layer == Layer::Admin)
            .then(|| {
                let old = old_admin_policy.as_ref();
                let old_rank = old.map_or((policy.priority, policy.name.clone()), |o| {
                    (o.priority, o.name.clone())
                });
                AdminChange {
                    index,
                    old_subject: old_subject.clone(),
                    same_rank: old_rank == (policy.priority, policy.name.clone()),
                    old_rank,
                    old_rules: old_rule_atoms,
                }
            });
        // In place: the classes of a direction the policy has rules in (whose admin key names it)
        // keep their members and keys, and only their verdicts are dropped (unless its rules
        // there are as they were).
        let kept = DIRS.map(|dir| {
            let d = dir_index(dir);
            in_place && !self.sets[index].rules[d].is_empty() && !same_rules[d]
        });
        if in_place {
            let mut graveyard = self.graveyard.borrow_mut();
            for (d, classes) in self.classes.iter_mut().enumerate() {
                if kept[d] {
                    for w in affected.ones() {
                        let stale = classes.funcs[classes.of[w] as usize].take();
                        graveyard.classes.extend(stale);
                    }
                }
            }
        } else if admin_change.is_some() {
            self.regroup_admin(&affected, &old_classes, index, &before);
        } else {
            for w in affected.ones() {
                let was = old_layer.filter(|_| old_subject.contains(w));
                self.reapply(w, index, was, &before);
                self.classify(w, false);
            }
        }
        // The diff: for each affected subject whose class changed, where the verdicts differ.
        let mut subjects = [Bitset::empty(n), Bitset::empty(n)];
        // Per direction, the classes members left (each once): they may be left empty.
        let mut left: [Vec<u32>; 2] = Default::default();
        let mut report = Update::default();
        // Verdicts by algebra id: their indices in the report.
        let mut verdict_ids: HashMap<u32, u32> = HashMap::default();
        for dir in DIRS {
            let d = dir_index(dir);
            // Per class transition, its members in order (the first stands for all).
            let mut moves: Vec<(u32, u32, usize)> = Vec::new();
            for w in affected.ones() {
                let (a, b) = (old_classes[d][w], self.classes[d].of[w]);
                // In place, a class is kept exactly when its admin key names the policy and the
                // policy's rules there changed.
                debug_assert!(
                    !in_place
                        || a == b
                            && kept[d] == {
                                let admin = self.classes[d].keys[a as usize].admin;
                                self.layer_keys.borrow().names(admin, pi) && !same_rules[d]
                            }
                );
                if a != b || kept[d] {
                    subjects[d].insert(w);
                    moves.push((a, b, w));
                }
            }
            // By old class, then new class (a class's members mostly make one transition).
            let mut moves = by_key(moves, self.classes[d].keys.len(), |&(a, _, _)| a as usize);
            for run in moves.chunk_by_mut(|x, y| x.0 == y.0) {
                run.sort_by_key(|&(_, b, _)| b);
            }
            // Where two versions of one layer differ, shared by the classes making the same
            // change of that layer. For the admin layer, as an index into the distinct admin
            // changes (by their regions and verdicts), each with what its regions' changes do
            // over lower blocks of each connection set ([`AdminRegions`]); the transitions
            // changing only the admin layer are grouped by that change and their lower layer:
            // the members of a group make the same changes, which they share.
            let mut admin_diffs: HashMap<(u32, u32), usize> = HashMap::default();
            let mut deltas: Vec<AdminRegions> = Vec::new();
            let mut delta_ids: HashMap<Vec<RegionSig>, usize> = HashMap::default();
            let mut admin_only: Vec<AdminOnly> = Vec::new();
            let mut admin_only_ids: HashMap<(usize, u32), usize> = HashMap::default();
            let mut lower_diffs: HashMap<(u32, u32), Vec<(Bitset, _)>> = HashMap::default();
            let mut scratch = DeltaScratch::default();
            for run in moves.chunk_by(|x, y| (x.0, x.1) == (y.0, y.1)) {
                let (a, b, w) = run[0];
                if a != b && left[d].last() != Some(&a) {
                    left[d].push(a);
                }
                let (ka, kb) = (
                    self.classes[d].keys[a as usize],
                    self.classes[d].keys[b as usize],
                );
                // The transition's members, as a set made only once a change names them.
                let mut ws: Option<u32> = None;
                let mut emit = |peers: Bitset, before: ConnSet, after: ConnSet| {
                    let ws = *ws.get_or_insert_with(|| {
                        report.subject_set(n, run.iter().map(|x| x.2).collect())
                    });
                    report.push_own(dir, ws, peers, [before, after]);
                };
                // A layer is unchanged when its key is. A key naming the policy stays only for
                // a change in place, and then only as the admin key of a kept class, whose
                // layers below (compared first) are as they were: its admin layer is taken as
                // changed without comparing keys. Every other key naming it was retired.
                let same = |a: u32, b: u32| {
                    debug_assert!(a != b || !self.layer_keys.borrow().names(a, pi));
                    a == b
                };
                if same(ka.lower, kb.lower) {
                    // Only the admin layer changed: where it did, against the lower blocks
                    // (below, once per group).
                    let delta = *admin_diffs.entry((ka.admin, kb.admin)).or_insert_with(|| {
                        let regions = self.admin_update(
                            dir,
                            w,
                            &old_admin[&ka.admin],
                            kb.admin,
                            admin_change.as_ref(),
                            &mut scratch,
                        );
                        let sig = regions
                            .iter()
                            .map(|(r, (vb, va))| (std::rc::Rc::as_ptr(r) as usize, *vb, *va))
                            .collect();
                        *delta_ids.entry(sig).or_insert_with(|| {
                            let named = vec![None; regions.len()];
                            deltas.push((regions, named));
                            deltas.len() - 1
                        })
                    });
                    if deltas[delta].0.is_empty() {
                        continue;
                    }
                    let g = *admin_only_ids.entry((delta, kb.lower)).or_insert_with(|| {
                        admin_only.push(AdminOnly {
                            delta,
                            lower: kb.lower,
                            rep: w,
                            members: Vec::new(),
                        });
                        admin_only.len() - 1
                    });
                    admin_only[g].members.extend(run.iter().map(|x| x.2));
                } else if same(ka.admin, kb.admin) {
                    let before_lower = &old_lower[&ka.lower];
                    let after_lower = self.lower_fn(dir, w, kb.lower);
                    // Only the layers below changed: where they did, against the admin blocks.
                    let regions = lower_diffs
                        .entry((ka.lower, kb.lower))
                        .or_insert_with(|| diff_blocks(&before_lower.blocks, &after_lower.blocks));
                    if regions.is_empty() {
                        continue;
                    }
                    let after_admin = self.admin_fn(dir, w, kb.admin);
                    for (x, (al, dl)) in self.admin_blocks(dir, &after_admin) {
                        if dl.is_empty() {
                            continue;
                        }
                        for (r, (l1, l2)) in regions.iter() {
                            if !r.intersects(x) {
                                continue;
                            }
                            let before = layered(al, dl, l1);
                            let after = layered(al, dl, l2);
                            if before != after
                                && let Some(p) = r.intersection_if_any(x)
                            {
                                emit(p, before, after);
                            }
                        }
                    }
                } else {
                    let (before_admin, before_lower) =
                        (&old_admin[&ka.admin], &old_lower[&ka.lower]);
                    let after_lower = self.lower_fn(dir, w, kb.lower);
                    let after_admin = self.admin_fn(dir, w, kb.admin);
                    let before = combine(self.admin_blocks(dir, before_admin), before_lower);
                    let after = combine(self.admin_blocks(dir, &after_admin), &after_lower);
                    for (r, (cb, ca)) in diff_blocks(&before, &after) {
                        emit(r, cb, ca);
                    }
                }
            }
            // Regions where the layers below do not matter ([`Below`]): every lower block
            // changes there alike, so the change is the same for every group of that admin
            // change, and is reported once for all their members, over the whole region.
            let below: Vec<Vec<Below>> = deltas
                .iter()
                .map(|(regions, ..)| {
                    let mut alg = self.algebra.borrow_mut();
                    let mut below = |(vb, va): ([u32; 2], [u32; 2])| {
                        let mut fixed = |[allowed, delegated]: [u32; 2]| {
                            alg.op(Op::Union, allowed, delegated) == allowed
                        };
                        if !(fixed(vb) && fixed(va)) {
                            return Below::Matter;
                        }
                        Below::Ignored((vb[0] != va[0]).then(|| {
                            let mut id = |c| report.verdict_of(&mut verdict_ids, &alg, c);
                            (id(vb[0]), id(va[0]))
                        }))
                    };
                    regions.iter().map(|r| below(r.1)).collect()
                })
                .collect();
            let mut whole: Vec<Vec<usize>> = vec![Vec::new(); deltas.len()];
            for group in &admin_only {
                if below[group.delta]
                    .iter()
                    .any(|b| matches!(b, Below::Ignored(Some(_))))
                {
                    whole[group.delta].extend(&group.members);
                }
            }
            for (delta, mut members) in whole.into_iter().enumerate() {
                if members.is_empty() {
                    continue;
                }
                members.sort_unstable();
                let subjects = report.subject_set(n, members);
                let (regions, named) = &mut deltas[delta];
                for (i, (r, _)) in regions.iter().enumerate() {
                    let Below::Ignored(Some((before, after))) = below[delta][i] else {
                        continue;
                    };
                    let count = r.count;
                    if count == 0 {
                        continue;
                    }
                    let region = name_in(&mut report.regions, &mut named[i], r);
                    report.changes.push(Change {
                        direction: dir,
                        subjects,
                        peers: Peers::Region {
                            region,
                            count: count as u32,
                        },
                        before,
                        after,
                    });
                }
            }
            // The groups changing only the admin layer, over the regions where the layers
            // below matter: kept as they are (the admin change, the members, their lower
            // layer), read against the lower blocks when the report is first read
            // ([`Update::changes`]).
            let mut kept: Vec<Option<u32>> = vec![None; deltas.len()];
            // Lower layers with their blocks' atoms as they are now (which the regions' atoms
            // are numbered by), by key: groups of different admin changes share them.
            let mut lowers: HashMap<u32, LowerSnapshot> = HashMap::default();
            for group in admin_only {
                let below = &below[group.delta];
                if !below.contains(&Below::Matter) {
                    continue;
                }
                let change = *kept[group.delta].get_or_insert_with(|| {
                    let (regions, named) = &mut deltas[group.delta];
                    let alg = self.algebra.borrow();
                    let mut matter = Vec::new();
                    let (mut peers, mut over_atoms) = (0, true);
                    for (i, (r, (vb, va))) in regions.iter().enumerate() {
                        if below[i] != Below::Matter {
                            continue;
                        }
                        peers += r.count;
                        over_atoms &= r.atoms().is_some();
                        let mut id = |c| report.verdict_of(&mut verdict_ids, &alg, c);
                        let (before, after) = (vb.map(&mut id), va.map(&mut id));
                        matter.push(LayeredRegion {
                            region: name_in(&mut report.regions, &mut named[i], r),
                            before,
                            after,
                        });
                    }
                    report.admin_changes.push(LayeredChange {
                        regions: matter,
                        peers,
                        atoms: over_atoms.then(|| self.atoms(dir).len()),
                    });
                    (report.admin_changes.len() - 1) as u32
                });
                let (lower, atoms) = lowers
                    .entry(group.lower)
                    .or_insert_with(|| {
                        let lower = self.lower_fn(dir, group.rep, group.lower);
                        let atoms = self.lower_atoms(dir, &lower);
                        (lower, atoms)
                    })
                    .clone();
                report.layered.push(Layered {
                    direction: dir,
                    change,
                    members: group.members,
                    lower,
                    atoms,
                });
            }
        }
        // Classes this change left without members no longer need their verdicts, nor to be
        // found by key (should the key come back, a fresh class takes it).
        for (d, left) in left.iter().enumerate() {
            let classes = &mut self.classes[d];
            for &c in left {
                let c = c as usize;
                if classes.counts[c] == 0 {
                    let stale = classes.funcs[c].take();
                    self.graveyard.borrow_mut().classes.extend(stale);
                    let key = classes.keys[c];
                    if classes.by_key.get(&key) == Some(&(c as u32)) {
                        classes.by_key.remove(&key);
                    }
                }
            }
        }
        // The admin layers this change made stale, freed later (see [`Graveyard`]).
        self.graveyard.borrow_mut().admin.extend(
            old_admin
                .into_values()
                .filter(|f| std::rc::Rc::strong_count(f) == 1),
        );
        // Every change retires layer keys and empties classes. Dropping them is the caller's
        // to schedule ([`Engine::wants_compaction`]); should a caller never do it, it is done
        // here once they outnumber the live ones sixteen to one.
        if self.compaction_due(16) {
            self.compact();
        }
        Update {
            subjects,
            pieces_moved,
            ..report
        }
    }

    /// Whether the layer keys that changes retired or the classes they left without members
    /// outnumber the live ones `ratio` to one, or the stale verdicts not yet freed outnumber
    /// the live ones `ratio / 4` to one (with some slack, so a small engine is not compacted
    /// over and over).
    fn compaction_due(&self, ratio: usize) -> bool {
        let keys = self.layer_keys.borrow();
        let stale = {
            let g = self.graveyard.borrow();
            g.classes.len() + g.admin.len()
        };
        let live = self.admin_cache.borrow().len()
            + self.classes.iter().map(|c| c.by_key.len()).sum::<usize>();
        keys.keys.len() > ratio * keys.live() + 16384
            || (self.classes.iter()).any(|c| c.keys.len() > ratio * c.by_key.len() + 16384)
            || stale > ratio / 4 * live + 4096
    }

    /// Whether [`Engine::compact`] is due: the dead keys and classes outnumber the live ones
    /// four to one (its cost, linear in what is live, is then paid off over the changes that
    /// made them), the stale verdicts not yet freed outnumber the live ones, or the external
    /// pieces moved and cached layers wait to be carried over to them. A caller applying a
    /// stream of changes calls it between them, when no answer is waited for, as a database
    /// schedules its vacuum; [`Engine::set_policy`] does it by itself only when they outnumber
    /// the live ones sixteen (and four) to one.
    pub fn wants_compaction(&self) -> bool {
        self.compaction_due(4) || !self.moved_lower.borrow().is_empty()
    }

    /// Drops the layer keys that changes retired and the classes they left without members,
    /// renumbering the rest (and the verdicts cached under them), frees the verdicts changes
    /// made stale, and carries the cached layers over to the external pieces, should they have
    /// moved. Nothing computed for a live key or class is lost. Call it when
    /// [`Engine::wants_compaction`] says so, so an engine updated for a long time stays as
    /// large as its cluster, and the changes after a move of the pieces do not carry layers.
    pub fn compact(&mut self) {
        *self.graveyard.get_mut() = Graveyard::default();
        let keys: Vec<u32> = (self.moved_lower.get_mut().iter())
            .flat_map(|m| m.layers.keys().copied())
            .collect();
        for key in keys {
            self.carry_lower(key);
        }
        self.moved_lower.get_mut().clear();
        let map = self.layer_keys.borrow_mut().compact();
        fn rekey<F>(cache: &mut HashMap<u32, F>, map: &[u32]) {
            *cache = std::mem::take(cache)
                .into_iter()
                .filter_map(|(k, f)| Some((*map.get(k as usize).filter(|&&n| n != u32::MAX)?, f)))
                .collect();
        }
        rekey(&mut self.admin_cache.borrow_mut(), &map);
        rekey(&mut self.lower_cache.borrow_mut(), &map);
        for classes in &mut self.classes {
            let mut renumbered = Classes::default();
            let mut class_map = vec![u32::MAX; classes.keys.len()];
            for (c, new) in class_map.iter_mut().enumerate() {
                if classes.counts[c] == 0 {
                    continue;
                }
                // A class with members has live keys: a key is retired only when a policy it
                // names changes, and every member of its classes then moves.
                let k = classes.keys[c];
                let key = ClassKey {
                    admin: map[k.admin as usize],
                    lower: map[k.lower as usize],
                };
                debug_assert!(key.admin != u32::MAX && key.lower != u32::MAX);
                let id = renumbered.keys.len() as u32;
                *new = id;
                renumbered.keys.push(key);
                renumbered.reps.push(classes.reps[c]);
                renumbered.funcs.push(std::mem::take(&mut classes.funcs[c]));
                renumbered.counts.push(classes.counts[c]);
                renumbered.by_key.insert(key, id);
            }
            renumbered.of = classes.of.iter().map(|&c| class_map[c as usize]).collect();
            *classes = renumbered;
        }
    }

    /// Moves every bit set over external pieces to `new` pieces; returns per direction the map
    /// from each new piece to the old piece holding its first address (`None`: unchanged).
    /// How many moves of the external pieces the layers cached before them are kept over
    /// ([`MovedLayers`]).
    const MOVES_KEPT: usize = 4;

    fn remap_pieces(&mut self, new: Pieces) -> [Option<Vec<usize>>; 2] {
        let w = self.cluster.workloads.len();
        let maps = [0, 1].map(|d| {
            if new.ranges[d] == self.pieces.ranges[d] {
                return None;
            }
            let old = &self.pieces.ranges[d];
            Some(
                new.ranges[d]
                    .iter()
                    .map(|r| old.iter().position(|o| o.contains(r.first())).unwrap_or(0))
                    .collect::<Vec<usize>>(),
            )
        });
        let mut tails = [None, None];
        for (d, map) in maps.iter().enumerate() {
            let Some(map) = map else { continue };
            for s in &mut self.sets {
                for b in &mut s.rules[d] {
                    *b = b.remapped(w, map);
                }
            }
            // Class verdicts are worked out again from the layers on their next use (the stale
            // ones freed later).
            let graveyard = self.graveyard.get_mut();
            for cell in &mut self.classes[d].funcs {
                graveyard.classes.extend(cell.take());
            }
            // The atoms keep their indices, and every set of atoms stays as it is.
            if let Some(atoms) = &mut self.atoms.get_mut()[d] {
                tails[d] = Some(atoms.tail(w).to_vec());
                atoms.remap(w, map);
            }
            if d == dir_index(Direction::Egress) {
                for parts in self.named.values_mut() {
                    for b in parts.iter_mut() {
                        *b = b.remapped(w, map);
                    }
                }
            }
        }
        self.pieces = new;
        // The cached layers of the directions that moved: admin layers over atoms stay as they
        // are (only their expansions to peers go); the layers below are carried over when next
        // asked for, by the maps from today's pieces to theirs.
        let keys = self.layer_keys.get_mut();
        let moved = |k: &u32| maps[keys.keys[*k as usize].0].as_ref();
        for (k, f) in self.admin_cache.get_mut().iter_mut() {
            let Some(map) = moved(k) else { continue };
            match std::rc::Rc::get_mut(f) {
                Some(g) if g.over_atoms.is_some() => {
                    g.blocks.take();
                }
                _ => *f = std::rc::Rc::new(f.carried(w, Some(map))),
            }
        }
        let before = self.moved_lower.get_mut();
        for m in before.iter_mut() {
            for (then, map) in m.maps.iter_mut().zip(&maps) {
                if let Some(map) = map {
                    *then = Some(match then {
                        Some(then) => map.iter().map(|&k| then[k]).collect(),
                        None => map.clone(),
                    });
                }
            }
        }
        let layers: HashMap<u32, std::rc::Rc<LowerFn>> = (self.lower_cache.get_mut())
            .extract_if(|k, _| moved(k).is_some())
            .collect();
        if !layers.is_empty() {
            before.push(MovedLayers {
                maps: maps.clone(),
                tails,
                layers,
            });
        }
        // Layers not read over several moves are dropped (worked out again if asked for).
        if before.len() > Self::MOVES_KEPT {
            before.remove(0);
        }
        maps
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn rule(&self, dir: Direction, r: RuleRef) -> &Rule {
        // RuleRefs are only built from policies that have rules in `dir`.
        &self.cluster.policies[r.policy]
            .rules(dir)
            .unwrap_or_default()[r.rule]
    }

    /// Does `peer` of a rule match endpoint `e`?
    pub fn peer_matches(&self, peer: &Peer, e: Endpoint) -> bool {
        match (peer, e) {
            (Peer::Any, _) => true,
            (Peer::Pods(m), Endpoint::Workload(i)) => {
                let w = &self.cluster.workloads[i];
                m.matches(w, self.cluster.ns_labels(&w.namespace))
            }
            (Peer::Pods(_), Endpoint::External(_)) => false,
            // An ipBlock never matches a pod's own address: pods are chosen by labels only.
            (Peer::Ips(_), Endpoint::Workload(_)) => false,
            (Peer::Ips(set), Endpoint::External(r)) => set.contains_range(r),
        }
    }

    /// The connections a rule's ports cover towards destination `dst` (named ports resolve
    /// against the destination's container ports; they never match an external address).
    pub fn rule_conns(&self, rule: &Rule, dst: Endpoint) -> ConnSet {
        let Some(ports) = &rule.ports else {
            return ConnSet::all();
        };
        let mut out = ConnSet::none();
        for pm in ports {
            match pm {
                PortMatch::Conns(c) => out = out.union(c),
                PortMatch::Named { protocol, name } => {
                    if let Endpoint::Workload(i) = dst
                        && let Some(np) =
                            self.cluster.workloads[i].resolve_named_port(name, *protocol)
                    {
                        out = out.union(&ConnSet::single(np.protocol, np.port));
                    }
                }
            }
        }
        out
    }

    fn rule_matches(
        &self,
        dir: Direction,
        r: RuleRef,
        peer: Endpoint,
        dst: Endpoint,
    ) -> Option<ConnSet> {
        if self.peer_in_rule(dir, r, peer) {
            Some(self.rule_conns(self.rule(dir, r), dst))
        } else {
            None
        }
    }

    /// Does rule `r` match `peer`? A bit test for workloads and external pieces; a direct
    /// evaluation for any other address range.
    fn peer_in_rule(&self, dir: Direction, r: RuleRef, peer: Endpoint) -> bool {
        match self.universe_index(dir, peer) {
            Some(u) => self.sets[r.policy].rules[dir_index(dir)][r.rule].contains(u),
            None => self
                .rule(dir, r)
                .peers
                .iter()
                .any(|p| self.peer_matches(p, peer)),
        }
    }

    /// Evaluates one peer per block (all peers of a block get the same verdict) and merges
    /// blocks with equal verdicts.
    fn evaluate_blocks<V: Clone + Eq + std::hash::Hash>(
        &self,
        dir: Direction,
        blocks: Vec<Bitset>,
        verdict: impl Fn(Endpoint) -> V,
    ) -> Vec<(Bitset, V)> {
        let mut merged = Merger::default();
        for b in blocks {
            let Some(u) = b.first() else { continue };
            merged.put(b, verdict(self.endpoint_at(dir, u)));
        }
        merged.blocks
    }

    /// The endpoint at a position of a direction's peer universe.
    fn endpoint_at(&self, dir: Direction, u: usize) -> Endpoint {
        let w = self.cluster.workloads.len();
        if u < w {
            Endpoint::Workload(u)
        } else {
            Endpoint::External(self.pieces.ranges[dir_index(dir)][u - w])
        }
    }

    /// The position of an endpoint in a direction's peer universe.
    fn universe_index(&self, dir: Direction, e: Endpoint) -> Option<usize> {
        match e {
            Endpoint::Workload(i) => Some(i),
            Endpoint::External(r) => self.pieces.lookup[dir_index(dir)]
                .get(&r)
                .map(|j| self.cluster.workloads.len() + j),
        }
    }

    /// The admin layer alone: the connections its rules allow, and those they leave to the
    /// layers below (unmatched or passed: both go on to the NetworkPolicy layer).
    fn admin_layer(&self, dir: Direction, subject: usize, peer: Endpoint) -> (ConnSet, ConnSet) {
        let app = &self.applicable[subject][dir_index(dir)];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => peer,
        };
        let mut allowed = ConnSet::none();
        let mut open = ConnSet::all();
        let mut passed = ConnSet::none();
        for &r in self.admin_lists.get(app.admin) {
            if open.is_empty() {
                break;
            }
            let Some(c) = self.rule_matches(dir, r, peer, dst) else {
                continue;
            };
            let hit = c.intersect(&open);
            open = open.subtract(&hit);
            match self.rule(dir, r).action {
                Action::Allow => allowed = allowed.union(&hit),
                Action::Deny => {}
                Action::Pass => passed = passed.union(&hit),
            }
        }
        (allowed, open.union(&passed))
    }

    /// The layers below admin alone: the connections they allow if the admin layer leaves
    /// everything to them (the NetworkPolicies that isolate the subject, or else the baseline
    /// rules in order, then the default allow).
    fn lower_layer(&self, dir: Direction, subject: usize, peer: Endpoint) -> ConnSet {
        let app = &self.applicable[subject][dir_index(dir)];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => peer,
        };
        if !app.namespaced.is_empty() {
            let mut np = ConnSet::none();
            for &pi in &app.namespaced {
                let rules = self.cluster.policies[pi].rules(dir).unwrap_or_default();
                for (ri, rule) in rules.iter().enumerate() {
                    if self.peer_in_rule(
                        dir,
                        RuleRef {
                            policy: pi,
                            rule: ri,
                        },
                        peer,
                    ) {
                        np = np.union(&self.rule_conns(rule, dst));
                    }
                }
            }
            return np;
        }
        let mut allowed = ConnSet::none();
        let mut open = ConnSet::all();
        for &r in &app.baseline {
            if open.is_empty() {
                break;
            }
            let Some(c) = self.rule_matches(dir, r, peer, dst) else {
                continue;
            };
            let hit = c.intersect(&open);
            open = open.subtract(&hit);
            if self.rule(dir, r).action == Action::Allow {
                allowed = allowed.union(&hit);
            }
        }
        // Whatever no baseline rule decided is allowed by default.
        allowed.union(&open)
    }

    /// The connections `subject` allows in direction `dir` with `peer` at the other end: what
    /// the admin layer allows, and of what it leaves to the layers below, what they allow.
    /// (Every layer decides each connection on its own, so the layers combine set-wise.)
    pub fn direction_allowed(&self, dir: Direction, subject: usize, peer: Endpoint) -> ConnSet {
        let (allowed, delegated) = self.admin_layer(dir, subject, peer);
        if delegated.is_empty() {
            return allowed;
        }
        allowed.union(&delegated.intersect(&self.lower_layer(dir, subject, peer)))
    }

    /// The connections `src` may open to `dst`: the source's egress and the destination's
    /// ingress must both allow them. Two external endpoints have no connectivity here.
    pub fn allowed(&self, src: Endpoint, dst: Endpoint) -> ConnSet {
        match (src, dst) {
            (Endpoint::External(_), Endpoint::External(_)) => ConnSet::none(),
            (Endpoint::Workload(s), Endpoint::External(_)) => {
                self.direction_allowed(Direction::Egress, s, dst)
            }
            (Endpoint::External(_), Endpoint::Workload(d)) => {
                self.direction_allowed(Direction::Ingress, d, src)
            }
            (Endpoint::Workload(s), Endpoint::Workload(d)) => {
                let e = self.direction_allowed(Direction::Egress, s, dst);
                if e.is_empty() {
                    return e;
                }
                e.intersect(&self.direction_allowed(Direction::Ingress, d, src))
            }
        }
    }

    /// Decides one direction for one protocol and port, naming the rule that decided.
    pub fn decide_direction(
        &self,
        dir: Direction,
        subject: usize,
        peer: Endpoint,
        proto: Protocol,
        port: u16,
    ) -> DirDecision {
        let app = &self.applicable[subject][dir_index(dir)];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => peer,
        };
        let hits = |r: RuleRef| {
            self.rule_matches(dir, r, peer, dst)
                .is_some_and(|c| c.contains(proto, port))
        };
        let mut passed_by = None;
        for &r in self.admin_lists.get(app.admin) {
            if !hits(r) {
                continue;
            }
            match self.rule(dir, r).action {
                Action::Pass => {
                    passed_by = Some(r);
                    break;
                }
                action => {
                    return DirDecision {
                        direction: dir,
                        allowed: action == Action::Allow,
                        reason: Reason::Admin { rule: r, action },
                        passed_by: None,
                    };
                }
            }
        }
        if !app.namespaced.is_empty() {
            let mut rules = Vec::new();
            for &pi in &app.namespaced {
                let prules = self.cluster.policies[pi].rules(dir).unwrap_or_default();
                for (ri, rule) in prules.iter().enumerate() {
                    if self.peer_in_rule(
                        dir,
                        RuleRef {
                            policy: pi,
                            rule: ri,
                        },
                        peer,
                    ) && self.rule_conns(rule, dst).contains(proto, port)
                    {
                        rules.push(RuleRef {
                            policy: pi,
                            rule: ri,
                        });
                    }
                }
            }
            let allowed = !rules.is_empty();
            let reason = if allowed {
                Reason::NetworkPolicyAllow { rules }
            } else {
                Reason::NetworkPolicyIsolated {
                    policies: app.namespaced.clone(),
                }
            };
            return DirDecision {
                direction: dir,
                allowed,
                reason,
                passed_by,
            };
        }
        for &r in &app.baseline {
            if hits(r) {
                let action = self.rule(dir, r).action;
                return DirDecision {
                    direction: dir,
                    allowed: action == Action::Allow,
                    reason: Reason::Baseline { rule: r, action },
                    passed_by,
                };
            }
        }
        DirDecision {
            direction: dir,
            allowed: true,
            reason: Reason::Default,
            passed_by,
        }
    }

    /// Decides a whole connection for one protocol and port.
    pub fn decide(&self, src: Endpoint, dst: Endpoint, proto: Protocol, port: u16) -> Decision {
        let egress = match src {
            Endpoint::Workload(s) => {
                Some(self.decide_direction(Direction::Egress, s, dst, proto, port))
            }
            Endpoint::External(_) => None,
        };
        let ingress = match dst {
            Endpoint::Workload(d) => {
                Some(self.decide_direction(Direction::Ingress, d, src, proto, port))
            }
            Endpoint::External(_) => None,
        };
        let allowed = (egress.is_some() || ingress.is_some())
            && egress.as_ref().is_none_or(|d| d.allowed)
            && ingress.as_ref().is_none_or(|d| d.allowed);
        Decision {
            allowed,
            egress,
            ingress,
        }
    }

    /// The address sets policies name in one direction: ingress rules cut sources, egress
    /// rules cut destinations.
    pub fn referenced_ip_sets(&self, dir: Direction) -> Vec<&IpSet> {
        referenced_ip_sets(&self.cluster, dir)
    }

    /// The external pieces for one direction: maximal runs of addresses that every address
    /// set named by that direction's rules holds entirely or not at all.
    pub fn external_pieces(&self, dir: Direction) -> Vec<IpRange> {
        self.pieces.ranges[dir_index(dir)].clone()
    }
}

fn referenced_ip_sets(cluster: &Cluster, dir: Direction) -> Vec<&IpSet> {
    cluster
        .policies
        .iter()
        .flat_map(|p| policy_ip_sets(p, dir))
        .collect()
}

/// The address sets one policy's rules name in one direction, in rule order.
fn policy_ip_sets(p: &Policy, dir: Direction) -> impl Iterator<Item = &IpSet> {
    p.rules(dir)
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r.peers.iter())
        .filter_map(|peer| match peer {
            Peer::Ips(s) => Some(s),
            _ => None,
        })
}

/// Whether an admin rule list (in precedence order) holds exactly rules `0..count` of policy
/// `index`, where [`with_rules`] would put them: the list is then what replacing the policy's
/// rules by those gives.
fn holds_rules(list: &[RuleRef], index: usize, count: usize, before: &[bool]) -> bool {
    let start = list
        .iter()
        .position(|r| r.policy == index)
        .unwrap_or_else(|| list.partition_point(|r| before[r.policy]));
    let end = start + count;
    end <= list.len()
        && (list[start..end].iter().enumerate()).all(|(k, r)| r.policy == index && r.rule == k)
        && !list[end..].iter().any(|r| r.policy == index)
        && (start == 0 || before[list[start - 1].policy])
        && (end == list.len() || !before[list[end].policy])
}

/// An admin rule list without the rules of policy `index`.
fn without_policy(list: &[RuleRef], index: usize) -> Vec<RuleRef> {
    let mut out = Vec::with_capacity(list.len());
    out.extend(list.iter().copied().filter(|r| r.policy != index));
    out
}

/// An admin rule list (in precedence order) with `refs` inserted after the rules of the
/// policies that precede theirs (`before`, per policy).
fn with_rules(
    list: &[RuleRef],
    refs: impl Iterator<Item = RuleRef>,
    before: &[bool],
) -> Vec<RuleRef> {
    let at = list.partition_point(|r| before[r.policy]);
    let mut out = Vec::with_capacity(list.len() + refs.size_hint().0);
    out.extend_from_slice(&list[..at]);
    out.extend(refs);
    out.extend_from_slice(&list[at..]);
    out
}

fn push_applicable(
    app: &mut [Applicable; 2],
    admin: &mut [Vec<RuleRef>; 2],
    p: &Policy,
    pi: usize,
) {
    for dir in DIRS {
        let Some(rules) = p.rules(dir) else { continue };
        let a = &mut app[dir_index(dir)];
        match p.layer {
            Layer::Admin => admin[dir_index(dir)]
                .extend((0..rules.len()).map(|rule| RuleRef { policy: pi, rule })),
            Layer::Namespaced => a.namespaced.push(pi),
            Layer::Baseline => a
                .baseline
                .extend((0..rules.len()).map(|rule| RuleRef { policy: pi, rule })),
        }
    }
}

/// `items` in order of `key` (below `keys`), keeping the order of items with equal keys: a
/// counting sort, for grouping thousands of workloads by class in time linear in both (a few
/// items among many keys are sorted instead, rather than counted over every key).
fn by_key<T: Copy>(mut items: Vec<T>, keys: usize, key: impl Fn(&T) -> usize) -> Vec<T> {
    if items.len() * 8 < keys {
        items.sort_by_key(key);
        return items;
    }
    let mut start = vec![0u32; keys + 1];
    for x in &items {
        start[key(x) + 1] += 1;
    }
    for k in 0..keys {
        start[k + 1] += start[k];
    }
    let mut out = items.clone();
    for x in items {
        let at = &mut start[key(&x)];
        out[*at as usize] = x;
        *at += 1;
    }
    out
}

/// Where two functions over the same universe differ: the non-empty intersections of their
/// blocks with different values, with both values.
fn diff_blocks<S: Intersect, V: Clone + PartialEq>(
    before: &[(S, V)],
    after: &[(S, V)],
) -> Vec<(Bitset, (V, V))> {
    let mut out = Vec::new();
    for (b, vb) in before {
        for (a, va) in after {
            if vb != va
                && let Some(r) = b.meet_with(a)
            {
                out.push((r, (vb.clone(), va.clone())));
            }
        }
    }
    out
}

/// Sets that intersect into a bit set.
trait Intersect {
    fn meet_with(&self, o: &Self) -> Option<Bitset>;
}

impl Intersect for Bitset {
    fn meet_with(&self, o: &Self) -> Option<Bitset> {
        self.intersection_if_any(o)
    }
}

impl Intersect for Members {
    fn meet_with(&self, o: &Self) -> Option<Bitset> {
        self.meet_members(o)
    }
}

impl<T: Intersect> Intersect for std::sync::Arc<T> {
    fn meet_with(&self, o: &Self) -> Option<Bitset> {
        (**self).meet_with(o)
    }
}

/// Blocks with their verdicts, blocks of equal verdicts merged.
struct Merger<V, G = Bitset> {
    blocks: Vec<(G, V)>,
    /// Verdict → block, once there are too many blocks to compare one by one.
    at: Option<HashMap<V, usize>>,
}

impl<V, G> Default for Merger<V, G> {
    fn default() -> Self {
        Merger {
            blocks: Vec::new(),
            at: None,
        }
    }
}

/// Up to this many blocks, a verdict is looked up by comparing (no hashing, no copy).
const MERGER_SCAN: usize = 32;

impl<V: Clone + Eq + std::hash::Hash> Merger<V> {
    fn put(&mut self, b: Bitset, v: V) {
        self.put_with(b, v, |a, b| a.union_with(&b));
    }
}

impl<V: Clone + Eq + std::hash::Hash, G> Merger<V, G> {
    fn with_capacity(n: usize) -> Self {
        Merger {
            blocks: Vec::with_capacity(n),
            at: None,
        }
    }

    /// Adds block `b` with verdict `v`, merged (`merge`) into the block of that verdict if
    /// there is one.
    fn put_with(&mut self, b: G, v: V, merge: impl FnOnce(&mut G, G)) {
        let found = match &self.at {
            Some(at) => at.get(&v).copied(),
            None => self.blocks.iter().position(|(_, w)| *w == v),
        };
        if let Some(i) = found {
            merge(&mut self.blocks[i].0, b);
            return;
        }
        if let Some(at) = &mut self.at {
            at.insert(v.clone(), self.blocks.len());
        } else if self.blocks.len() == MERGER_SCAN {
            let mut at: HashMap<V, usize> = HashMap::default();
            for (i, (_, w)) in self.blocks.iter().enumerate() {
                at.insert(w.clone(), i);
            }
            at.insert(v.clone(), self.blocks.len());
            self.at = Some(at);
        }
        self.blocks.push((b, v));
    }
}

/// A subject's verdicts from its admin layer and the layers below: on each admin block, what
/// the admin rules allow, and of what they leave below, what the lower layers allow.
fn combine(admin: &AdminBlocks, lower: &LowerFn) -> Vec<(Bitset, ConnSet)> {
    let mut merged = Merger::default();
    for (x, (allowed, delegated)) in admin {
        if delegated.is_empty() {
            merged.put(x.clone(), allowed.clone());
            continue;
        }
        for (z, below) in &lower.blocks {
            if let Some(b) = z.meet(x) {
                merged.put(b, layered(allowed, delegated, below));
            }
        }
    }
    merged.blocks
}

/// [`combine`], each block kept by its density.
fn combine_members(admin: &AdminBlocks, lower: &LowerFn) -> Vec<(Members, ConnSet)> {
    combine(admin, lower)
        .into_iter()
        .map(|(b, c)| (Members::new(b), c))
        .collect()
}

/// The verdict of an admin layer that allows `allowed` and leaves `delegated` to layers below
/// that allow `below`.
fn layered(allowed: &ConnSet, delegated: &ConnSet, below: &ConnSet) -> ConnSet {
    allowed.union(&delegated.intersect(below))
}

/// Splits every block by `b`: the part inside and the part outside.
fn refine(blocks: &mut Vec<Bitset>, b: &Bitset) {
    let mut i = 0;
    let n = blocks.len();
    while i < n {
        if let Some((inside, outside)) = blocks[i].split(b) {
            blocks[i] = inside;
            blocks.push(outside);
        }
        i += 1;
    }
}

/// Connection sets by id.
#[derive(Default)]
struct Interner {
    ids: HashMap<ConnSet, u32>,
    sets: Vec<ConnSet>,
}

impl Interner {
    fn id(&mut self, c: &ConnSet) -> u32 {
        if let Some(&i) = self.ids.get(c) {
            return i;
        }
        let i = self.sets.len() as u32;
        self.ids.insert(c.clone(), i);
        self.sets.push(c.clone());
        i
    }
}

/// A set operation of [`ConnAlgebra`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Intersect,
    Subtract,
    Union,
}

/// Connection sets by id, with memoised set operations: the admin sweep works on ids, so its
/// states are copied, compared and hashed as three integers, and each distinct operation is
/// worked out once.
struct ConnAlgebra {
    interner: Interner,
    ops: HashMap<(Op, u32, u32), u32>,
    /// The connections of admin rules without named ports (the same for every subject and
    /// peer), by direction and rule.
    rules: HashMap<(usize, RuleRef), u32>,
}

impl Default for ConnAlgebra {
    fn default() -> Self {
        let mut interner = Interner::default();
        let none = interner.id(&ConnSet::none());
        let all = interner.id(&ConnSet::all());
        debug_assert_eq!((none, all), (Self::NONE, Self::ALL));
        ConnAlgebra {
            interner,
            ops: HashMap::default(),
            rules: HashMap::default(),
        }
    }
}

impl ConnAlgebra {
    /// The ids of the empty set and of every connection.
    const NONE: u32 = 0;
    const ALL: u32 = 1;

    fn id(&mut self, c: ConnSet) -> u32 {
        self.interner.id(&c)
    }

    fn get(&self, id: u32) -> &ConnSet {
        &self.interner.sets[id as usize]
    }

    /// The id of rule `r`'s connections (`conns` works them out), remembered per rule: only
    /// for rules without named ports, whose connections are the same towards every
    /// destination.
    fn rule_conns(&mut self, dir: Direction, r: RuleRef, conns: impl FnOnce() -> ConnSet) -> u32 {
        if let Some(&id) = self.rules.get(&(dir_index(dir), r)) {
            return id;
        }
        let c = conns();
        let id = self.id(c);
        self.rules.insert((dir_index(dir), r), id);
        id
    }

    /// Forgets what was remembered of policy `policy`'s rules.
    fn forget_policy(&mut self, policy: usize) {
        self.rules.retain(|(_, r), _| r.policy != policy);
    }

    fn op(&mut self, op: Op, a: u32, b: u32) -> u32 {
        // Shortcuts that need no table.
        match op {
            Op::Intersect if a == b => return a,
            Op::Intersect if a == Self::NONE || b == Self::NONE => return Self::NONE,
            Op::Intersect if a == Self::ALL => return b,
            Op::Intersect if b == Self::ALL => return a,
            Op::Union if a == b || b == Self::NONE => return a,
            Op::Union if a == Self::NONE => return b,
            Op::Subtract if a == b || b == Self::ALL || a == Self::NONE => return Self::NONE,
            Op::Subtract if b == Self::NONE => return a,
            _ => {}
        }
        if let Some(&r) = self.ops.get(&(op, a, b)) {
            return r;
        }
        let (x, y) = (self.get(a), self.get(b));
        let c = match op {
            Op::Intersect => x.intersect(y),
            Op::Subtract => x.subtract(y),
            Op::Union => x.union(y),
        };
        let r = self.id(c);
        self.ops.insert((op, a, b), r);
        r
    }
}

/// Memoised intersections of interned connection sets: a dense table when the sets are few.
struct Meet {
    n: usize,
    dense: Vec<u32>,
    sparse: HashMap<(u32, u32), u32>,
}

impl Meet {
    fn new(n: usize) -> Self {
        let dense = if n <= 4096 {
            vec![u32::MAX; n * n]
        } else {
            Vec::new()
        };
        Meet {
            n,
            dense,
            sparse: HashMap::default(),
        }
    }

    #[inline]
    fn get(&mut self, a: u32, b: u32, interner: &mut Interner) -> u32 {
        if !self.dense.is_empty() {
            let k = a as usize * self.n + b as usize;
            let v = self.dense[k];
            if v != u32::MAX {
                return v;
            }
            let r = interner.id(&interner.sets[a as usize].intersect(&interner.sets[b as usize]));
            self.dense[k] = r;
            return r;
        }
        if let Some(&r) = self.sparse.get(&(a, b)) {
            return r;
        }
        let r = interner.id(&interner.sets[a as usize].intersect(&interner.sets[b as usize]));
        self.sparse.insert((a, b), r);
        r
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Workload(i) => write!(f, "workload #{i}"),
            Endpoint::External(r) => write!(f, "{r}[External]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The counting sort orders as a stable sort by the same key does.
        #[test]
        fn by_key_is_a_stable_sort(keys in 1usize..400, items in proptest::collection::vec((0usize..400, any::<u16>()), 0..200)) {
            // Few keys (counted) and many (sorted).
            let items: Vec<(usize, u16)> = items.into_iter().map(|(k, v)| (k % keys, v)).collect();
            let mut want = items.clone();
            want.sort_by_key(|&(k, _)| k);
            prop_assert_eq!(by_key(items, keys, |&(k, _)| k), want);
        }

        /// `holds_rules` is true exactly when replacing a policy's rules in an admin rule list
        /// gives the list back (so the list need not be rebuilt).
        #[test]
        fn holds_rules_when_the_list_comes_back_as_it_was(
            order in Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
            present in proptest::collection::vec(any::<bool>(), 8),
            rules in proptest::collection::vec(0usize..3, 8),
            index in 0usize..8,
            count in 0usize..3,
            place in 0usize..9,
        ) {
            // The old list: the present policies' rules, by rank (`order`).
            let list: Vec<RuleRef> = order
                .iter()
                .filter(|&&q| present[q])
                .flat_map(|&q| (0..rules[q]).map(move |rule| RuleRef { policy: q, rule }))
                .collect();
            // The policy's new place: before the policies ranked from `place` on.
            let rank = |q: usize| order.iter().position(|&x| x == q).expect("ranked");
            let before: Vec<bool> = (0..8).map(|q| q != index && rank(q) < place).collect();
            let refs = (0..count).map(|rule| RuleRef { policy: index, rule });
            let rebuilt = with_rules(&without_policy(&list, index), refs, &before);
            prop_assert_eq!(holds_rules(&list, index, count, &before), rebuilt == list);
        }
    }
}
