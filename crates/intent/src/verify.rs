//! Verification: every [`Invariant`](crate::Invariant) checked exactly, over every pair of identities and every
//! port of every protocol (`bulkhead verify`), and the allowed connections between two
//! identities (`bulkhead query can-reach`).
//!
//! Exactness: for a pair of identities the rule chain is walked once with *connection sets*
//! ([`ConnSet`]: port ranges per protocol) instead of one port at a time. Each rule takes the
//! part of the still-undecided connections its ports cover; `allow` and `deny` decide that part,
//! `pass` sets it aside until the end of the tier. The result is the exact set of connections
//! the policy allows, split at the rules' own port boundaries, so "never A → B" is violated as
//! soon as any single port is allowed.
//!
//! Cost: pairs are grouped. For one invariant, only the rules that can decide one of its pairs
//! matter (a rule whose `from` picks one of its sources, whose `to` picks one of its
//! destinations and whose ports meet the invariant's); identities whose membership of those
//! rules (and whose mode) are equal behave alike, so the walk runs once per pair of such
//! classes, not per pair of identities.
//!
//! Pairs of an identity with itself, and of two addresses outside every inventory, are not
//! connections of ours and are skipped.
//!
//! Observe mode: verification judges the policy **as it would be when enforced** — a segment in
//! `observe` mode counts as enforced, so a connection is allowed only if a rule allows it (or
//! neither end is governed by any segment). What passes *today* (observe mode turns a deny into
//! `WouldBlock`, which does not block) is computed alongside: an invariant may hold when
//! enforced and not yet today ([`InvariantResult::holds_today`]).

use crate::eval::{Evaluator, Identity, SideMode, Universe};
use crate::model::{Action, Intent, InvariantKind, Peer, PortMatch};
use crate::{Decision, Verdict};
use bulkhead_core::{Bitset, ConnSet, NamedPort, Protocol};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The connections that one rule of a chain decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub conns: ConnSet,
    /// Index of the rule in evaluation order (see [`Evaluator::rule_ref`]).
    pub rule: usize,
    pub action: Action,
}

/// The connections from one identity to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// Allowed when every segment is enforced (what the policy allows).
    pub enforced: ConnSet,
    /// Passing today: observe-mode segments do not block.
    pub today: ConnSet,
    /// The rules that decided, in evaluation order, with the connections each decided.
    pub pieces: Vec<Piece>,
    pub src_mode: SideMode,
    pub dst_mode: SideMode,
}

/// A rule of a chain, for people.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainStep {
    pub tier: String,
    pub policy: String,
    /// `rules[i]` or `rules[i] "name"`.
    pub rule: String,
    pub action: String,
    /// `file:line:column` of the rule.
    pub at: String,
}

/// A counterexample to an invariant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub src: String,
    pub dst: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Every offending connection between these two identities (allowed for `never`/`only`,
    /// not allowed for `mustAllow`), as `TCP 1-65535,UDP 53`.
    pub conns: String,
    /// The evaluator's verdict on the example, with the segments as they are written.
    pub verdict: Verdict,
    /// The rules that matched the example, in evaluation order: `pass` rules, then the rule
    /// that decided (none: no rule decided).
    pub chain: Vec<ChainStep>,
    /// One line: what decided.
    pub explanation: String,
}

/// Whether an invariant holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Holds,
    Violated,
}

/// The outcome of one invariant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InvariantResult {
    pub name: String,
    pub kind: String,
    /// `file:line:column` of the invariant.
    pub at: String,
    pub controls: Vec<String>,
    pub description: Option<String>,
    /// With every segment enforced.
    pub status: Status,
    /// Also holds with observe-mode segments not blocking (what passes today).
    pub holds_today: bool,
    /// Source and destination identities the invariant ranges over.
    pub sources: usize,
    pub destinations: usize,
    /// (source, destination) pairs of distinct identities checked, over every port.
    pub pairs_checked: u64,
    /// Pairs of behaviour classes the rule chain was walked for.
    pub class_pairs: u64,
    /// Pairs that violate (with every segment enforced).
    pub violating_pairs: u64,
    /// Pairs that violate today.
    pub violating_pairs_today: u64,
    /// Up to `max_examples` counterexamples.
    pub examples: Vec<Violation>,
}

/// Options of [`verify`].
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// Counterexamples kept per invariant.
    pub max_examples: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { max_examples: 3 }
    }
}

/// A rule's connections for a destination (named ports resolved against it).
fn rule_conns<'a>(ev: &'a Evaluator, r: usize, dst_named: &[NamedPort]) -> Cow<'a, ConnSet> {
    let rule = &ev.rules[r];
    match &rule.conns {
        None => Cow::Owned(ConnSet::all()),
        Some(c) if rule.named.is_empty() => Cow::Borrowed(c),
        Some(c) => {
            let mut c = c.clone();
            for (proto, name) in &rule.named {
                for np in dst_named {
                    if np.name == *name && proto.is_none_or(|p| p == np.protocol) {
                        c = c.union(&ConnSet::single(np.protocol, np.port));
                    }
                }
            }
            Cow::Owned(c)
        }
    }
}

/// Walks the rule chain for the connections `start`, over the rules set in both `src` and
/// `dst` (bit sets over the rules): the pieces each `allow` or `deny` rule decided, and what no
/// rule decided.
fn walk(
    ev: &Evaluator,
    src: &[u64],
    dst: &[u64],
    dst_named: &[NamedPort],
    start: ConnSet,
) -> (Vec<Piece>, ConnSet) {
    let mut rem = start;
    let mut passed = ConnSet::none();
    let mut tier_end = 0usize;
    let mut pieces = Vec::new();
    for (w, (a, b)) in src.iter().zip(dst).enumerate() {
        let mut bits = a & b;
        while bits != 0 {
            let r = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if r >= tier_end {
                rem = rem.union(&passed);
                passed = ConnSet::none();
                tier_end = ev.rules[r].tier_end;
            }
            if rem.is_empty() {
                if passed.is_empty() {
                    return (pieces, rem);
                }
                continue;
            }
            let hit = rem.intersect(&rule_conns(ev, r, dst_named));
            if hit.is_empty() {
                continue;
            }
            rem = rem.subtract(&hit);
            match ev.rules[r].action {
                Action::Pass => passed = passed.union(&hit),
                action => pieces.push(Piece {
                    conns: hit,
                    rule: r,
                    action,
                }),
            }
        }
    }
    (pieces, rem.union(&passed))
}

fn managed(m: SideMode) -> bool {
    matches!(m, SideMode::Observe | SideMode::Enforce)
}

/// Enforced and today's allowed connections out of a walk's pieces.
fn outcome(pieces: &[Piece], start: &ConnSet, s: SideMode, d: SideMode) -> (ConnSet, ConnSet) {
    let mut rule_allowed = ConnSet::none();
    for p in pieces {
        if p.action == Action::Allow {
            rule_allowed = rule_allowed.union(&p.conns);
        }
    }
    let enforced = if managed(s) || managed(d) {
        rule_allowed.clone()
    } else {
        start.clone()
    };
    let today = if s == SideMode::Enforce || d == SideMode::Enforce {
        rule_allowed
    } else {
        start.clone()
    };
    (enforced, today)
}

impl Evaluator {
    /// The rule at `r` in evaluation order.
    pub fn rule_ref(&self, r: usize) -> crate::RuleRef {
        let c = &self.rules[r];
        crate::RuleRef {
            tier: c.tier,
            policy: c.policy,
            rule: c.index,
            action: c.action,
        }
    }
}

impl Universe<'_> {
    /// Every connection from identity `src` to identity `dst` (indexes into `identities`).
    pub fn reach(&self, src: usize, dst: usize) -> Reach {
        let (s, d) = (self.profile(src), self.profile(dst));
        let (pieces, _) = walk(self.ev, &s.src, &d.dst, &d.named_ports, ConnSet::all());
        let (enforced, today) = outcome(&pieces, &ConnSet::all(), s.mode, d.mode);
        Reach {
            enforced,
            today,
            pieces,
            src_mode: s.mode,
            dst_mode: d.mode,
        }
    }

    /// The rules the evaluator walks for one connection: `pass` rules that matched, then the
    /// rule that decided (if any).
    pub fn trace(&self, src: usize, dst: usize, proto: Protocol, port: u16) -> Vec<crate::RuleRef> {
        let (s, d) = (self.profile(src), self.profile(dst));
        let one = ConnSet::single(proto, port);
        let mut out = Vec::new();
        let mut skip_to = 0usize;
        for (w, (a, b)) in s.src.iter().zip(&d.dst).enumerate() {
            let mut bits = a & b;
            while bits != 0 {
                let r = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if r < skip_to
                    || rule_conns(self.ev, r, &d.named_ports)
                        .intersect(&one)
                        .is_empty()
                {
                    continue;
                }
                out.push(self.ev.rule_ref(r));
                match self.ev.rules[r].action {
                    Action::Pass => skip_to = self.ev.rules[r].tier_end,
                    _ => return out,
                }
            }
        }
        out
    }
}

/// People's form of a rule.
pub fn chain_step(intent: &Intent, r: &crate::RuleRef) -> ChainStep {
    let p = &intent.policies[r.policy];
    ChainStep {
        tier: r.tier.to_string(),
        policy: p.name().to_string(),
        rule: p.rule_label(r.rule),
        action: r.action.to_string().to_lowercase(),
        at: p
            .rules
            .get(r.rule)
            .map(|x| x.loc.to_string())
            .unwrap_or_default(),
    }
}

/// Representatives of the addresses outside every inventory: one address per piece of the
/// IPv4 and IPv6 spaces cut at every CIDR boundary the intent names, so that verification
/// covers external sources and destinations exactly (every address of a piece is matched by the
/// same CIDR peers). Addresses of `known` identities are avoided.
pub fn external_representatives(intent: &Intent, known: &[Identity]) -> Vec<Identity> {
    let mut v4: BTreeSet<u32> = BTreeSet::from([0]);
    let mut v6: BTreeSet<u128> = BTreeSet::from([0]);
    let mut add = |peers: &[crate::PeerAt]| {
        for pa in peers {
            if let Peer::Cidr(set) = &pa.peer {
                v4.extend(set.v4.boundaries());
                v6.extend(set.v6.boundaries());
            }
        }
    };
    for p in &intent.policies {
        for r in &p.rules {
            add(&r.from);
            add(&r.to);
        }
    }
    for i in &intent.invariants {
        add(&i.from);
        add(&i.to);
    }
    let taken: BTreeSet<IpAddr> = known.iter().flat_map(|i| i.addresses.clone()).collect();
    let mut out = Vec::new();
    let v4: Vec<u32> = v4.into_iter().collect();
    for (k, &lo) in v4.iter().enumerate() {
        let hi = v4.get(k + 1).map_or(u32::MAX, |h| h - 1);
        let pick = (0..16u32)
            .map_while(|o| lo.checked_add(o).filter(|&a| a <= hi))
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .find(|a| !taken.contains(a));
        out.extend(pick.map(external));
    }
    let v6: Vec<u128> = v6.into_iter().collect();
    for (k, &lo) in v6.iter().enumerate() {
        let hi = v6.get(k + 1).map_or(u128::MAX, |h| h - 1);
        let pick = (0..16u128)
            .map_while(|o| lo.checked_add(o).filter(|&a| a <= hi))
            .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .find(|a| !taken.contains(a));
        out.extend(pick.map(external));
    }
    out
}

fn external(ip: IpAddr) -> Identity {
    let mut id = Identity::external(ip);
    id.name = format!("external {ip}");
    id
}

/// The invariant's connections, and whether it names ports by name.
fn invariant_conns(ports: &Option<Vec<PortMatch>>) -> (ConnSet, Vec<(Option<Protocol>, String)>) {
    match ports {
        None => (ConnSet::all(), Vec::new()),
        Some(ps) => {
            let (c, named) = PortMatch::split(ps);
            (
                c,
                named.into_iter().map(|(p, n)| (p, n.to_owned())).collect(),
            )
        }
    }
}

/// Checks every invariant of `intent` over the identities of `u` (built from an evaluator of
/// the same intent). Identities outside every inventory should be included through
/// [`external_representatives`].
pub fn verify(intent: &Intent, u: &Universe<'_>, opts: VerifyOptions) -> Vec<InvariantResult> {
    intent
        .invariants
        .iter()
        .map(|inv| verify_one(intent, u, inv, opts))
        .collect()
}

fn verify_one(
    intent: &Intent,
    u: &Universe<'_>,
    inv: &crate::Invariant,
    opts: VerifyOptions,
) -> InvariantResult {
    let ev = u.ev;
    let n = u.identities.len();
    let from = u.select_all(intent, &inv.from);
    let to = u.select_all(intent, &inv.to);
    let sources = match inv.kind {
        InvariantKind::Only => from.complement(),
        _ => from,
    };
    let (inv_conns, inv_named) = invariant_conns(&inv.ports);
    // The rules that can decide a pair of this invariant.
    let mut src_any = vec![0u64; ev.words];
    let mut dst_any = vec![0u64; ev.words];
    for i in sources.ones() {
        for (m, w) in src_any.iter_mut().zip(&u.profile(i).src) {
            *m |= w;
        }
    }
    for i in to.ones() {
        for (m, w) in dst_any.iter_mut().zip(&u.profile(i).dst) {
            *m |= w;
        }
    }
    let mut mask = vec![0u64; ev.words];
    let mut any_named = !inv_named.is_empty();
    for r in 0..ev.rules.len() {
        let (w, bit) = (r / 64, 1u64 << (r % 64));
        if src_any[w] & dst_any[w] & bit == 0 {
            continue;
        }
        let rule = &ev.rules[r];
        let relevant = !inv_named.is_empty()
            || !rule.named.is_empty()
            || rule
                .conns
                .as_ref()
                .is_none_or(|c| !c.intersect(&inv_conns).is_empty());
        if relevant {
            any_named |= !rule.named.is_empty();
            mask[w] |= bit;
        }
    }
    // Behaviour classes: identities with the same relevant rules and mode.
    type Key = (Vec<u64>, SideMode, Vec<NamedPort>);
    let classes = |set: &Bitset, dst: bool| -> (Vec<Vec<usize>>, Vec<usize>) {
        let mut ids: HashMap<Key, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut of = vec![usize::MAX; n];
        for i in set.ones() {
            let p = u.profile(i);
            let bits = if dst { &p.dst } else { &p.src };
            let named = if dst && any_named {
                p.named_ports.clone()
            } else {
                Vec::new()
            };
            let key = (
                bits.iter().zip(&mask).map(|(b, m)| b & m).collect(),
                p.mode,
                named,
            );
            let next = members.len();
            let c = *ids.entry(key).or_insert(next);
            if c == next {
                members.push(Vec::new());
            }
            members[c].push(i);
            of[i] = c;
        }
        (members, of)
    };
    let (src_classes, src_of) = classes(&sources, false);
    let (dst_classes, dst_of) = classes(&to, true);
    // Identities that are both a source and a destination: their pair with themselves is not a
    // connection.
    let mut diagonal: HashMap<(usize, usize), u64> = HashMap::new();
    for i in sources.intersect(&to).ones() {
        *diagonal.entry((src_of[i], dst_of[i])).or_default() += 1;
    }
    let mut res = InvariantResult {
        name: inv.meta.name.clone(),
        kind: inv.kind.to_string(),
        at: inv.loc.to_string(),
        controls: inv.controls.clone(),
        description: inv.description.clone(),
        status: Status::Holds,
        holds_today: true,
        sources: sources.count(),
        destinations: to.count(),
        pairs_checked: 0,
        class_pairs: 0,
        violating_pairs: 0,
        violating_pairs_today: 0,
        examples: Vec::new(),
    };
    for (a, sm) in src_classes.iter().enumerate() {
        let s0 = u.profile(sm[0]);
        let src_bits: Vec<u64> = s0.src.iter().zip(&mask).map(|(b, m)| b & m).collect();
        for (b, dm) in dst_classes.iter().enumerate() {
            let d0 = u.profile(dm[0]);
            // Between two addresses outside every inventory nothing of ours is on the path.
            if s0.mode == SideMode::External && d0.mode == SideMode::External {
                continue;
            }
            let pairs =
                (sm.len() as u64) * (dm.len() as u64) - diagonal.get(&(a, b)).copied().unwrap_or(0);
            if pairs == 0 {
                continue;
            }
            res.pairs_checked += pairs;
            res.class_pairs += 1;
            let mut start = inv_conns.clone();
            for (proto, name) in &inv_named {
                for np in &d0.named_ports {
                    if np.name == *name && proto.is_none_or(|p| p == np.protocol) {
                        start = start.union(&ConnSet::single(np.protocol, np.port));
                    }
                }
            }
            if start.is_empty() {
                continue;
            }
            let (pieces, _) = walk(ev, &src_bits, &d0.dst, &d0.named_ports, start.clone());
            let (enforced, today) = outcome(&pieces, &start, s0.mode, d0.mode);
            let (bad, bad_today) = match inv.kind {
                InvariantKind::Never | InvariantKind::Only => (enforced, today),
                InvariantKind::MustAllow => (start.subtract(&enforced), start.subtract(&today)),
            };
            if !bad_today.is_empty() {
                res.holds_today = false;
                res.violating_pairs_today += pairs;
            }
            if bad.is_empty() {
                continue;
            }
            res.status = Status::Violated;
            res.violating_pairs += pairs;
            if res.examples.len() < opts.max_examples
                && let Some((si, di)) = sm
                    .iter()
                    .flat_map(|&s| dm.iter().map(move |&d| (s, d)))
                    .find(|(s, d)| s != d)
                && let Some((proto, port)) = bad.first()
            {
                let decision: Decision = u.decide_edge(si, di, proto, port);
                let chain = u
                    .trace(si, di, proto, port)
                    .iter()
                    .map(|r| chain_step(intent, r))
                    .collect();
                // The pair's own offending set (the class shares it, named ports aside).
                res.examples.push(Violation {
                    src: u.identities[si].name.clone(),
                    dst: u.identities[di].name.clone(),
                    protocol: proto,
                    port,
                    conns: bad.to_string(),
                    verdict: decision.verdict,
                    chain,
                    explanation: explain(ev, intent, &decision, inv.kind),
                });
            }
        }
    }
    res
}

fn explain(ev: &Evaluator, intent: &Intent, d: &Decision, kind: InvariantKind) -> String {
    let base = ev.describe(intent, d);
    if kind == InvariantKind::MustAllow && d.verdict == Verdict::WouldBlock {
        format!("{base}; denied once the segment is enforced")
    } else {
        base
    }
}
