//! The digital twin: recorded edges decided under a proposed intent and a baseline one, and the
//! exact semantic diff of two intents over every pair of identities and every port.
//!
//! Both sides are [`Universe`]s over the same identities (in the same order). Identities whose
//! profiles are equal under both intents behave alike in every connection, so they form one
//! [`Classes`] class; decisions are cached per (source class, destination class, protocol,
//! port), and the diff walks class pairs instead of identity pairs. "No Bulkhead policy" is the
//! empty intent: nobody is in a segment, so everything is allowed.

use crate::eval::{Decision, Profile, Universe, Verdict};
use bulkhead_core::Protocol;
use rustc_hash::FxHashMap;

/// A decision pair and its port ranges.
type Group = (Decision, Decision, Vec<(u16, u16)>);

/// How an edge's verdict changes from the baseline to the proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Allowed before (or only would-block) and allowed now.
    StillAllowed,
    /// Flowing before (allowed or would-block) and denied now.
    NewlyBlocked,
    /// Denied before, allowed now.
    NewlyAllowed,
    /// Not denied now, but a side in an observed segment would block it once enforced.
    WouldBlock,
    /// Denied before and now.
    StillBlocked,
}

impl Change {
    pub const ALL: [Change; 5] = [
        Change::StillAllowed,
        Change::NewlyBlocked,
        Change::NewlyAllowed,
        Change::WouldBlock,
        Change::StillBlocked,
    ];

    /// The class of an edge decided `old` by the baseline and `new` by the proposal.
    pub fn of(new: Verdict, old: Verdict) -> Change {
        match (new, old) {
            (Verdict::Deny, Verdict::Deny) => Change::StillBlocked,
            (Verdict::Deny, _) => Change::NewlyBlocked,
            (Verdict::WouldBlock, _) => Change::WouldBlock,
            (Verdict::Allow, Verdict::Deny) => Change::NewlyAllowed,
            (Verdict::Allow, _) => Change::StillAllowed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Change::StillAllowed => "still allowed",
            Change::NewlyBlocked => "newly blocked",
            Change::NewlyAllowed => "newly allowed",
            Change::WouldBlock => "would block",
            Change::StillBlocked => "still blocked",
        }
    }
}

/// Identities grouped by their profile pair (proposal, baseline).
pub struct Classes {
    /// Class of each identity.
    pub class_of: Vec<u32>,
    /// Identities of each class, in identity order.
    pub members: Vec<Vec<usize>>,
}

impl Classes {
    /// Groups the identities of two universes built over the same identities.
    pub fn new(new: &Universe<'_>, old: &Universe<'_>) -> Classes {
        assert_eq!(
            new.identities.len(),
            old.identities.len(),
            "both universes hold the same identities"
        );
        let mut ids: FxHashMap<(&Profile, &Profile), u32> = FxHashMap::default();
        let mut class_of = Vec::with_capacity(new.identities.len());
        let mut members: Vec<Vec<usize>> = Vec::new();
        for i in 0..new.identities.len() {
            let key = (new.profile(i), old.profile(i));
            let c = *ids.entry(key).or_insert_with(|| {
                members.push(Vec::new());
                (members.len() - 1) as u32
            });
            members[c as usize].push(i);
            class_of.push(c);
        }
        Classes { class_of, members }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Decides edges under both intents, caching per class pair, protocol and port.
///
/// The cache holds a small id per key; the distinct outcomes (pairs of decisions) are kept
/// once, so a million recorded edges touch a compact map and callers can work per outcome.
pub struct Twin<'a, 'e> {
    pub new: &'a Universe<'e>,
    pub old: &'a Universe<'e>,
    pub classes: Classes,
    cache: FxHashMap<(u32, u32, Protocol, u16), u32>,
    outcomes: Vec<(Decision, Decision)>,
    outcome_ids: FxHashMap<(Decision, Decision), u32>,
    /// Decisions computed (cache misses), for the report.
    pub computed: u64,
}

impl<'a, 'e> Twin<'a, 'e> {
    pub fn new(new: &'a Universe<'e>, old: &'a Universe<'e>) -> Self {
        Twin {
            classes: Classes::new(new, old),
            new,
            old,
            cache: FxHashMap::default(),
            outcomes: Vec::new(),
            outcome_ids: FxHashMap::default(),
            computed: 0,
        }
    }

    /// The proposal's and the baseline's decisions on identities `src` → `dst`.
    pub fn decide(
        &mut self,
        src: usize,
        dst: usize,
        proto: Protocol,
        port: u16,
    ) -> (Decision, Decision) {
        let id = self.decide_id(src, dst, proto, port);
        self.outcomes[id as usize]
    }

    /// The id of the outcome (proposal's and baseline's decisions) on `src` → `dst`; equal
    /// outcomes have equal ids ([`Twin::outcome`] gives it back).
    pub fn decide_id(&mut self, src: usize, dst: usize, proto: Protocol, port: u16) -> u32 {
        let key = (
            self.classes.class_of[src],
            self.classes.class_of[dst],
            proto,
            port,
        );
        if let Some(&id) = self.cache.get(&key) {
            return id;
        }
        let d = (
            self.new.decide_edge(src, dst, proto, port),
            self.old.decide_edge(src, dst, proto, port),
        );
        self.computed += 1;
        let next = self.outcomes.len() as u32;
        let id = *self.outcome_ids.entry(d).or_insert(next);
        if id == next {
            self.outcomes.push(d);
        }
        self.cache.insert(key, id);
        id
    }

    /// The outcome behind an id from [`Twin::decide_id`].
    pub fn outcome(&self, id: u32) -> (Decision, Decision) {
        self.outcomes[id as usize]
    }

    /// Distinct outcomes so far (ids are `0..outcomes()`).
    pub fn outcomes(&self) -> usize {
        self.outcomes.len()
    }
}

/// One verdict change of the semantic diff: every identity of class `src` to every identity of
/// class `dst` on `proto` and these port ranges is decided `old` before and `new` after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffRow {
    pub src: u32,
    pub dst: u32,
    pub proto: Protocol,
    /// Inclusive, sorted, disjoint and not adjacent.
    pub ports: Vec<(u16, u16)>,
    pub old: Decision,
    pub new: Decision,
}

/// The ranges `[lo, hi]` of `1..=65535` that both intents (and the identities' named ports)
/// decide alike throughout, per protocol.
pub fn port_intervals(new: &Universe<'_>, old: &Universe<'_>, proto: Protocol) -> Vec<(u16, u16)> {
    let mut b = new.evaluator().port_boundaries(proto);
    b.extend(old.evaluator().port_boundaries(proto));
    for id in new.identities.iter() {
        for np in &id.named_ports {
            if np.protocol == proto {
                b.push(np.port as u32);
                b.push(np.port as u32 + 1);
            }
        }
    }
    b.push(1);
    b.push(65536);
    b.retain(|&x| (1..=65536).contains(&x));
    b.sort_unstable();
    b.dedup();
    b.windows(2)
        .map(|w| (w[0] as u16, (w[1] - 1) as u16))
        .collect()
}

/// Every (source class, destination class, protocol, port range) whose verdict differs between
/// the two intents. Exact: each port range between two rule boundaries is decided once.
pub fn diff(twin: &Twin<'_, '_>) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    let reps: Vec<usize> = twin.classes.members.iter().map(|m| m[0]).collect();
    for proto in Protocol::ALL {
        let intervals = port_intervals(twin.new, twin.old, proto);
        for (cs, &s) in reps.iter().enumerate() {
            for (cd, &d) in reps.iter().enumerate() {
                // Per (old, new) decision pair, in order of first port: the port ranges.
                let mut groups: Vec<Group> = Vec::new();
                let mut order: FxHashMap<(Decision, Decision), usize> = FxHashMap::default();
                for &(lo, hi) in &intervals {
                    let n = twin.new.decide_edge(s, d, proto, lo);
                    let o = twin.old.decide_edge(s, d, proto, lo);
                    if n.verdict == o.verdict {
                        continue;
                    }
                    let slot = *order.entry((o, n)).or_insert_with(|| {
                        groups.push((o, n, Vec::new()));
                        groups.len() - 1
                    });
                    let e = &mut groups[slot];
                    match e.2.last_mut() {
                        Some(last) if last.1 as u32 + 1 == lo as u32 => last.1 = hi,
                        _ => e.2.push((lo, hi)),
                    }
                }
                for (o, n, ports) in groups {
                    rows.push(DiffRow {
                        src: cs as u32,
                        dst: cd as u32,
                        proto,
                        ports,
                        old: o,
                        new: n,
                    });
                }
            }
        }
    }
    rows
}
