//! The `k8s` target: NetworkPolicy for the application and baseline tiers and the default deny
//! of enforced segments, AdminNetworkPolicy (v1alpha1) or ClusterNetworkPolicy (v1alpha2, tier
//! `Admin`) for the guardrail tier. `docs/compile.md` explains the mapping; in short, per side
//! of a connection (the source's egress, the destination's ingress):
//!
//! - Only workloads of enforced segments are ever a subject: observed and unmanaged workloads
//!   are selected by nothing that can drop, so Kubernetes' default allow keeps their sides open.
//! - Guardrail rules become admin policies whose subject is the rule's destination (ingress) or
//!   source (egress) met with each enforced segment, one priority per rule and subject in rule
//!   order; `allow`/`deny`/`pass` map to `Allow`/`Deny`/`Pass` (`Accept`/`Deny`/`Pass`). Admin
//!   peers are workloads only: addresses are left to the NetworkPolicy layer (below).
//! - Every enforced workload is isolated in both directions by a default-deny NetworkPolicy,
//!   so after the admin layer (no match, or `Pass` — both continue with the application tier)
//!   the NetworkPolicy layer decides alone (a BaselineAdminNetworkPolicy is never consulted for
//!   isolated pods, so none is emitted): each `allow` of the application and baseline tiers
//!   becomes NetworkPolicies with its workload peers. That union is the intent's meaning exactly
//!   when no application or baseline `deny`/`pass` takes precedence over a later `allow` for
//!   workload pairs involving an enforced workload — otherwise compilation fails.
//! - Addresses (external CIDRs, hosts' addresses, the address part of `any`): admin ingress
//!   rules cannot name CIDRs, so for addresses the whole rule chain (all three tiers, `pass`
//!   included) is evaluated here, per NetworkPolicy subject and namespace, over sets of
//!   addresses × ports, and each `allow` gets the `ipBlock`s it decides. Whether a rule applies
//!   to a subject is decided from the selectors (namespace labels from the inventory); where it
//!   cannot be decided and it matters, compilation fails.

use crate::lower::{
    LPeer, LPorts, LRule, Lowered, WorkloadSel, ranges_of, selector_contains, selectors_disjoint,
    workload_part,
};
use crate::pieces::{PieceSet, Pieces};
use crate::{CompileError, Compiled, K8sApi, Options, Target};
use bulkhead_core::{ConnSet, IpSet, Labels, Operator, Protocol, Selector};
use bulkhead_intent::{Action, IdentityKind, Intent, Segment, Tier};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// `apiVersion` of AdminNetworkPolicy and BaselineAdminNetworkPolicy.
pub const ANP_API: &str = "policy.networking.k8s.io/v1alpha1";
/// `apiVersion` of ClusterNetworkPolicy.
pub const CNP_API: &str = "policy.networking.k8s.io/v1alpha2";
/// The label every compiled object carries.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Annotation: the intent rule's `file:line`.
pub const SOURCE_ANNOTATION: &str = "bulkhead.dev/source";
/// Annotation: the intent rule (`policy/rules[i] "name"`).
pub const RULE_ANNOTATION: &str = "bulkhead.dev/rule";
/// Annotation: the enforced segment the object's subject is restricted to.
pub const SEGMENT_ANNOTATION: &str = "bulkhead.dev/segment";

/// Admin priorities available (`0..=1000`).
const MAX_PRIORITY: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    Ingress,
    Egress,
}

impl Dir {
    fn key(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }
    fn peers_key(self) -> &'static str {
        match self {
            Dir::Ingress => "from",
            Dir::Egress => "to",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Dir::Ingress => "in",
            Dir::Egress => "eg",
        }
    }
}

/// A rule seen from one direction: who it applies to (the subject side) and what it names at
/// the other end.
struct Side {
    /// Workload selectors of the subject side (`any` = every workload).
    subjects: Vec<WorkloadSel>,
    /// Workload peers at the other end.
    pods: Vec<WorkloadSel>,
    /// Addresses at the other end (CIDRs, hosts' addresses, all of them for `any`).
    addrs: IpSet,
    /// Per subject, its pods' label equalities ([`Interner::eqs`]; filled in once all
    /// subjects are interned).
    eqs: Vec<Eqs>,
}

fn side(r: &LRule, d: Dir) -> Side {
    let (subj, peer) = match d {
        Dir::Ingress => (&r.to, &r.from),
        Dir::Egress => (&r.from, &r.to),
    };
    let mut subjects = Vec::new();
    for p in subj {
        match p {
            LPeer::Any => subjects.push(WorkloadSel::all()),
            LPeer::Workloads(w) => subjects.push(w.clone()),
            LPeer::Hosts { .. } | LPeer::Addresses(_) => {}
        }
    }
    let mut pods = Vec::new();
    let mut addrs = IpSet::empty();
    for p in peer {
        match p {
            LPeer::Any => {
                pods.push(WorkloadSel::all());
                addrs = IpSet::all();
            }
            LPeer::Workloads(w) => pods.push(w.clone()),
            LPeer::Hosts { addresses, .. } => addrs = addrs.union(addresses),
            LPeer::Addresses(s) => addrs = addrs.union(s),
        }
    }
    subjects.retain(|w| !w.is_empty());
    pods.retain(|w| !w.is_empty());
    Side {
        subjects,
        pods,
        addrs,
        eqs: Vec::new(),
    }
}

fn all_pods(peers: &[LPeer]) -> Vec<WorkloadSel> {
    peers
        .iter()
        .filter_map(|p| match p {
            LPeer::Any => Some(WorkloadSel::all()),
            LPeer::Workloads(w) => Some(w.clone()),
            _ => None,
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn unsupported(r: &LRule, what: String, hint: &str) -> CompileError {
    CompileError::Unsupported {
        target: Target::K8s,
        loc: r.loc().clone(),
        what,
        hint: Some(hint.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and addresses as sets of rectangles, for the walk over address peers.

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PSel {
    All,
    Conns(ConnSet),
    Named(Option<Protocol>, String),
}

/// Addresses × ports. The addresses are pieces of the cut made from every rule's addresses
/// ([`Pieces`]): the walk's sets are all unions of them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rect {
    addrs: PieceSet,
    ports: PSel,
}

/// Named ports meet numbered ones only per destination pod: not decidable here.
struct Undecidable;

fn p_inter(a: &PSel, b: &PSel) -> Result<Option<PSel>, Undecidable> {
    Ok(match (a, b) {
        (PSel::All, x) | (x, PSel::All) => Some(x.clone()),
        (PSel::Conns(x), PSel::Conns(y)) => {
            let c = x.intersect(y);
            (!c.is_empty()).then_some(PSel::Conns(c))
        }
        (PSel::Named(p1, n1), PSel::Named(p2, n2)) => {
            if p1 == p2 && n1 == n2 {
                Some(a.clone())
            } else if p1.is_some() && p2.is_some() && p1 != p2 {
                None
            } else {
                return Err(Undecidable);
            }
        }
        _ => return Err(Undecidable),
    })
}

/// Whether [`p_inter`] is non-empty, without building the intersection.
fn p_meet(a: &PSel, b: &PSel) -> Result<bool, Undecidable> {
    match (a, b) {
        (PSel::All, _) | (_, PSel::All) => Ok(true),
        (PSel::Conns(x), PSel::Conns(y)) => Ok(Protocol::ALL
            .iter()
            .any(|&p| ranges_meet(x.ports_of(p).ranges(), y.ports_of(p).ranges()))),
        _ => p_inter(a, b).map(|r| r.is_some()),
    }
}

fn p_sub(a: &PSel, b: &PSel) -> Result<Option<PSel>, Undecidable> {
    Ok(match (a, b) {
        (_, PSel::All) => None,
        (PSel::All, PSel::Conns(c)) => {
            let r = ConnSet::all().subtract(c);
            (!r.is_empty()).then_some(PSel::Conns(r))
        }
        (PSel::Conns(x), PSel::Conns(y)) => {
            let r = x.subtract(y);
            (!r.is_empty()).then_some(PSel::Conns(r))
        }
        (PSel::Named(p1, n1), PSel::Named(p2, n2)) => {
            if p1 == p2 && n1 == n2 {
                None
            } else if p1.is_some() && p2.is_some() && p1 != p2 {
                Some(a.clone())
            } else {
                return Err(Undecidable);
            }
        }
        _ => return Err(Undecidable),
    })
}

/// Whether two sorted, disjoint range lists share a point (no allocation).
fn ranges_meet<T: Ord + Copy>(a: &[(T, T)], b: &[(T, T)]) -> bool {
    // A short list against a long one (a few CIDRs against everything minus many hosts):
    // search the long one for each short range instead of walking it.
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() > 8 * short.len().max(1) {
        return short.iter().any(|&(lo, hi)| {
            let k = long.partition_point(|&(_, end)| end < lo);
            k < long.len() && long[k].0 <= hi
        });
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.1 < y.0 {
            i += 1;
        } else if y.1 < x.0 {
            j += 1;
        } else {
            return true;
        }
    }
    false
}

fn normalize(v: Vec<Rect>) -> Vec<Rect> {
    let mut out: Vec<Rect> = Vec::new();
    let mut at: std::collections::HashMap<PSel, usize> = Default::default();
    for r in v {
        if r.addrs.is_empty() {
            continue;
        }
        match at.get(&r.ports) {
            Some(&i) => out[i].addrs.union_with(&r.addrs),
            None => {
                at.insert(r.ports.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// `list −= m`, in place; `list` stays normalised (one rectangle per port selection).
fn subtract_in(list: &mut Vec<Rect>, m: &[Rect]) -> Result<(), Undecidable> {
    for b in m {
        let mut extra: Vec<Rect> = Vec::new();
        let mut emptied = false;
        for a in list.iter_mut() {
            if !a.addrs.meets(&b.addrs) || matches!(p_meet(&a.ports, &b.ports), Ok(false)) {
                continue;
            }
            let common = a.addrs.intersect(&b.addrs);
            if let Some(p) = p_sub(&a.ports, &b.ports)? {
                extra.push(Rect {
                    addrs: common,
                    ports: p,
                });
            }
            a.addrs.subtract_with(&b.addrs);
            emptied |= a.addrs.is_empty();
        }
        if emptied {
            list.retain(|a| !a.addrs.is_empty());
        }
        for e in extra {
            match list.iter_mut().find(|o| o.ports == e.ports) {
                Some(o) => o.addrs.union_with(&e.addrs),
                None => list.push(e),
            }
        }
    }
    Ok(())
}

fn intersect(list: &[Rect], m: &[Rect]) -> Result<Vec<Rect>, Undecidable> {
    let mut out = Vec::new();
    for a in list {
        for b in m {
            if !a.addrs.meets(&b.addrs) || !p_meet(&a.ports, &b.ports)? {
                continue;
            }
            if let Some(p) = p_inter(&a.ports, &b.ports)? {
                out.push(Rect {
                    addrs: a.addrs.intersect(&b.addrs),
                    ports: p,
                });
            }
        }
    }
    Ok(normalize(out))
}

fn rects_of(addrs: &PieceSet, ports: &Option<LPorts>) -> Vec<Rect> {
    match ports {
        None => vec![Rect {
            addrs: addrs.clone(),
            ports: PSel::All,
        }],
        Some(p) => {
            let mut c = ConnSet::none();
            for &(proto, lo, hi) in &p.ranges {
                c = c.union(&ConnSet::ports(
                    proto,
                    bulkhead_core::RangeSet::range(lo, hi),
                ));
            }
            let mut out = Vec::new();
            if !c.is_empty() {
                out.push(Rect {
                    addrs: addrs.clone(),
                    ports: PSel::Conns(c),
                });
            }
            for (proto, name) in &p.named {
                out.push(Rect {
                    addrs: addrs.clone(),
                    ports: PSel::Named(*proto, name.clone()),
                });
            }
            out
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Whether a rule applies to a NetworkPolicy subject (a pod selector in a known namespace).

/// Where a walk over the rules stands for one subject: resumed when a later rule asks.
struct Walk {
    /// The next rule to walk.
    pos: usize,
    /// The equalities of the walk's subject's pods.
    eqs: Eqs,
    live: Vec<Rect>,
    undecided: Vec<Rect>,
    tier: Option<Tier>,
    /// Deny and pass rules that may apply to the subject, kept aside.
    pending: Vec<(usize, Vec<Rect>)>,
    /// What the rule last walked to decides, when it is an allow: its index, addresses (back
    /// from pieces) and ports. Rules ask in rule order, each right after walking to itself, so
    /// what earlier allows decided is never asked again and is not kept.
    decided: Option<(usize, Vec<(IpSet, PSel)>)>,
}

impl Default for Walk {
    /// A placeholder while a walk is being resumed (nothing allocated).
    fn default() -> Self {
        Walk {
            pos: 0,
            eqs: Vec::new(),
            live: Vec::new(),
            undecided: Vec::new(),
            tier: None,
            pending: Vec::new(),
            decided: None,
        }
    }
}

impl Walk {
    fn new(pieces: &Pieces, eqs: Eqs) -> Self {
        let everything = vec![Rect {
            addrs: pieces.all(),
            ports: PSel::All,
        }];
        Walk {
            pos: 0,
            eqs,
            live: everything.clone(),
            undecided: everything,
            tier: None,
            pending: Vec::new(),
            decided: None,
        }
    }
}

/// A NetworkPolicy subject of the address walk: direction, namespace, pod selector.
type WalkKey = (Dir, String, Option<Selector>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Contains,
    Disjoint,
    Unknown,
}

fn term_rel(w: &WorkloadSel, ns_labels: &Labels, pods: Option<&Selector>) -> Rel {
    let ns_ok = w.namespaces.as_ref().is_none_or(|s| s.matches(ns_labels));
    if !ns_ok || selectors_disjoint(w.pods.as_ref(), pods) {
        Rel::Disjoint
    } else if selector_contains(w.pods.as_ref(), pods) {
        Rel::Contains
    } else {
        Rel::Unknown
    }
}

/// Label equalities `key In [value]` of a selector, as interned (key, value) ids.
type Eqs = Vec<(u32, u32)>;

/// Ids of the keys and values of the rules' subjects' label equalities: telling that a rule's
/// subject and a walk's subject conflict (the same key, different values) takes integer
/// comparisons instead of string ones. Only a shortcut: every conflict found this way is one
/// [`selectors_disjoint`] finds too (`In [a]` and `In [b]` with `a != b`).
#[derive(Default)]
struct Interner(std::collections::HashMap<String, u32>);

impl Interner {
    /// An id that no interned string has: a string that was not interned equals none that was.
    const UNKNOWN: u32 = u32::MAX;

    fn add(&mut self, s: Option<&Selector>) {
        for r in s.map(Selector::requirements).unwrap_or_default() {
            if r.op == Operator::In && r.values.len() == 1 {
                for x in [&r.key, &r.values[0]] {
                    let next = self.0.len() as u32;
                    self.0.entry(x.clone()).or_insert(next);
                }
            }
        }
    }

    fn eqs(&self, s: Option<&Selector>) -> Eqs {
        let id = |x: &String| self.0.get(x).copied().unwrap_or(Self::UNKNOWN);
        s.map(Selector::requirements)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.op == Operator::In && r.values.len() == 1)
            .map(|r| (id(&r.key), id(&r.values[0])))
            .collect()
    }
}

/// Whether two selectors' equalities conflict: a known key with values that differ (not
/// both unknown, which may be the same string).
fn eqs_conflict(a: &Eqs, b: &Eqs) -> bool {
    a.iter().any(|&(k, v)| {
        k != Interner::UNKNOWN
            && b.iter().any(|&(k2, v2)| {
                k == k2 && v != v2 && !(v == Interner::UNKNOWN && v2 == Interner::UNKNOWN)
            })
    })
}

/// How a rule's subjects relate to a walk's subject (`pods`, with equalities `eqs`, in a
/// namespace with `ns_labels`).
fn rule_rel(s: &Side, eqs: &Eqs, ns_labels: &Labels, pods: Option<&Selector>) -> Rel {
    let mut all_disjoint = true;
    for (k, w) in s.subjects.iter().enumerate() {
        if s.eqs.get(k).is_some_and(|e| eqs_conflict(e, eqs)) {
            continue;
        }
        match term_rel(w, ns_labels, pods) {
            Rel::Contains => return Rel::Contains,
            Rel::Unknown => all_disjoint = false,
            Rel::Disjoint => {}
        }
    }
    if all_disjoint {
        Rel::Disjoint
    } else {
        Rel::Unknown
    }
}

/// The rules in evaluation order with what each names per direction.
struct Chain<'c, 'a> {
    rules: &'c [LRule<'a>],
    sides: &'c [[Side; 2]],
    rects: &'c [[Vec<Rect>; 2]],
    pieces: &'c Pieces,
}

/// Walks the rule chain over address peers up to rule `upto` for workloads of `pods` in a
/// namespace with `ns_labels`, in direction `d` (tiers in order, `pass` skipping the rest of its
/// tier): afterwards `walk.decided` holds the addresses × ports rule `upto` decides, if it is
/// an allow that decides any.
fn address_walk(
    walk: &mut Walk,
    upto: usize,
    chain: &Chain,
    d: Dir,
    ns_name: &str,
    ns_labels: &Labels,
    pods: Option<&Selector>,
) -> Result<(), CompileError> {
    let Chain {
        rules,
        sides,
        rects,
        pieces,
    } = *chain;
    let Walk {
        pos,
        eqs,
        mut live,
        mut undecided,
        mut tier,
        mut pending,
        mut decided,
    } = std::mem::take(walk);
    if pos <= upto {
        decided = None;
    }
    let subject = match pods {
        Some(p) => format!("workloads {p} of namespace {ns_name}"),
        None => format!("the workloads of namespace {ns_name}"),
    };
    for (i, r) in rules.iter().enumerate().take(upto + 1).skip(pos) {
        if tier != Some(r.tier) {
            live = undecided.clone();
            tier = Some(r.tier);
        }
        let s = &sides[i][d as usize];
        let m = &rects[i][d as usize];
        if m.is_empty() {
            continue;
        }
        let rel = rule_rel(s, &eqs, ns_labels, pods);
        if rel == Rel::Disjoint {
            continue;
        }
        let undecidable = |_: Undecidable| {
            unsupported(
                r,
                format!(
                    "rule {} for addresses towards {subject}: its named ports overlap other rules' ports in a way that depends on each pod's container ports",
                    r.label()
                ),
                "use numbered ports in rules that name addresses, or name the same port in every overlapping rule",
            )
        };
        match rel {
            Rel::Disjoint => continue,
            // An allow that may apply to some of the subject's workloads decides, for those,
            // connections its own NetworkPolicy allows: leaving it out here only lets later
            // allows repeat it. A deny or pass that may apply is kept aside: it is an error
            // only if it would take something from a later allow of this subject.
            Rel::Unknown if r.action == Action::Allow => continue,
            Rel::Unknown => {
                pending.push((i, m.clone()));
                continue;
            }
            Rel::Contains => {}
        }
        // What this rule decides (allow, deny) or sets aside (pass) for the subject.
        // (A pass with nothing kept aside needs only the subtraction below.)
        let x = if r.action == Action::Pass && pending.is_empty() {
            Vec::new()
        } else {
            intersect(&live, m).map_err(undecidable)?
        };
        // A kept-aside deny matters if it would take something from this allow; a kept-aside
        // pass if this allow or deny of its own tier would decide something it passes.
        for (pi, pm) in &pending {
            let p = &rules[*pi];
            let matters = match p.action {
                Action::Deny => r.action == Action::Allow,
                _ => p.tier == r.tier && r.action != Action::Pass,
            };
            if !matters {
                continue;
            }
            let hit = match intersect(&x, pm) {
                Ok(v) => !v.is_empty(),
                Err(_) => true,
            };
            if hit {
                return Err(unsupported(
                    p,
                    format!(
                        "rule {} for addresses ({}): whether it applies to {subject} (the subject of rule {} at {}) cannot be decided from the selectors",
                        p.label(),
                        d.key(),
                        r.label(),
                        r.loc()
                    ),
                    "select the rule's workloads with the same labels as the rules it precedes (e.g. the segment), or with labels that cannot overlap",
                ));
            }
        }
        match r.action {
            Action::Allow => {
                // Only what is still live in this tier is decided: a `pass` earlier in the
                // tier set its connections aside for the next tier.
                subtract_in(&mut undecided, &x).map_err(undecidable)?;
                subtract_in(&mut live, m).map_err(undecidable)?;
                if i == upto && !x.is_empty() {
                    decided = Some((
                        i,
                        x.into_iter()
                            .map(|r| (pieces.ip_set(&r.addrs), r.ports))
                            .collect(),
                    ));
                }
            }
            Action::Deny => {
                subtract_in(&mut undecided, &x).map_err(undecidable)?;
                subtract_in(&mut live, m).map_err(undecidable)?;
            }
            Action::Pass => {
                subtract_in(&mut live, m).map_err(undecidable)?;
            }
        }
    }
    *walk = Walk {
        pos: pos.max(upto + 1),
        eqs,
        live,
        undecided,
        tier,
        pending,
        decided,
    };
    Ok(())
}

/// The inventory's workloads by label ([`bulkhead_core::LabelBits`]), to tell in which
/// namespaces a subject has workloads.
struct Inventory<'a> {
    ids: &'a [bulkhead_intent::Identity],
    /// Indexes into `ids` of the workloads, in order.
    workloads: Vec<usize>,
    /// Over `workloads`.
    bits: bulkhead_core::LabelBits,
    cache: std::collections::HashMap<Option<Selector>, std::collections::BTreeSet<String>>,
}

impl<'a> Inventory<'a> {
    fn new(ids: &'a [bulkhead_intent::Identity]) -> Self {
        let workloads: Vec<usize> = (0..ids.len())
            .filter(|&i| ids[i].namespace().is_some())
            .collect();
        let mut bits = bulkhead_core::LabelBits::new(workloads.len());
        for (j, &i) in workloads.iter().enumerate() {
            bits.add(j, &ids[i].labels);
        }
        Inventory {
            ids,
            workloads,
            bits,
            cache: Default::default(),
        }
    }

    /// The namespaces holding a workload `pods` selects.
    fn namespaces_with(&mut self, pods: Option<&Selector>) -> &std::collections::BTreeSet<String> {
        let key = pods.cloned();
        if !self.cache.contains_key(&key) {
            let ns = |j: usize| self.ids[self.workloads[j]].namespace().map(str::to_string);
            let set = match pods {
                Some(p) => self.bits.select(p).ones().filter_map(ns).collect(),
                None => (0..self.workloads.len()).filter_map(ns).collect(),
            };
            self.cache.insert(key.clone(), set);
        }
        &self.cache[&key]
    }
}

// ---------------------------------------------------------------------------------------------
// JSON of selectors, ports and peers.

fn selector_json(s: Option<&Selector>) -> Value {
    let mut labels = Map::new();
    let mut exprs = Vec::new();
    for r in s.map(Selector::requirements).unwrap_or_default() {
        if r.op == Operator::In && r.values.len() == 1 && !labels.contains_key(&r.key) {
            labels.insert(r.key.clone(), json!(r.values[0]));
            continue;
        }
        let mut e = Map::new();
        e.insert("key".into(), json!(r.key));
        e.insert(
            "operator".into(),
            json!(match r.op {
                Operator::In => "In",
                Operator::NotIn => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
            }),
        );
        if matches!(r.op, Operator::In | Operator::NotIn) {
            e.insert("values".into(), json!(r.values));
        }
        exprs.push(Value::Object(e));
    }
    let mut m = Map::new();
    if !labels.is_empty() {
        m.insert("matchLabels".into(), Value::Object(labels));
    }
    if !exprs.is_empty() {
        m.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(m)
}

/// A NetworkPolicy peer for workloads (any namespace unless the selector says).
fn np_pod_peer(w: &WorkloadSel) -> Value {
    json!({
        "namespaceSelector": selector_json(w.namespaces.as_ref()),
        "podSelector": selector_json(w.pods.as_ref()),
    })
}

fn np_ports_of(p: &PSel) -> Option<Vec<Value>> {
    match p {
        PSel::All => None,
        PSel::Conns(c) => Some(np_ranges(&ranges_of(c))),
        PSel::Named(proto, name) => Some(np_named(*proto, name)),
    }
}

fn np_ranges(ranges: &[(Protocol, u16, u16)]) -> Vec<Value> {
    ranges
        .iter()
        .map(|&(p, lo, hi)| {
            if lo == bulkhead_core::conn::MIN_PORT && hi == bulkhead_core::conn::MAX_PORT {
                json!({"protocol": p.as_str()})
            } else if lo == hi {
                json!({"protocol": p.as_str(), "port": lo})
            } else {
                json!({"protocol": p.as_str(), "port": lo, "endPort": hi})
            }
        })
        .collect()
}

/// A named port: NetworkPolicy needs a protocol, so a name without one (the container port's
/// own protocol) is listed once per protocol.
fn np_named(proto: Option<Protocol>, name: &str) -> Vec<Value> {
    match proto {
        Some(p) => vec![json!({"protocol": p.as_str(), "port": name})],
        None => Protocol::ALL
            .iter()
            .map(|p| json!({"protocol": p.as_str(), "port": name}))
            .collect(),
    }
}

fn np_ports(p: &Option<LPorts>) -> Option<Vec<Value>> {
    p.as_ref().map(|p| {
        let mut v = np_ranges(&p.ranges);
        for (proto, name) in &p.named {
            v.extend(np_named(*proto, name));
        }
        v
    })
}

/// An admin peer or subject for workloads.
fn admin_pods(w: &WorkloadSel) -> Value {
    match &w.pods {
        None => json!({"namespaces": selector_json(w.namespaces.as_ref())}),
        Some(p) => json!({"pods": {
            "namespaceSelector": selector_json(w.namespaces.as_ref()),
            "podSelector": selector_json(Some(p)),
        }}),
    }
}

/// Admin ports of a rule, or `Err(what)` when the API cannot say them.
fn admin_ports(api: K8sApi, p: &Option<LPorts>) -> Result<Option<Vec<Value>>, String> {
    let Some(p) = p else { return Ok(None) };
    let mut out = Vec::new();
    for &(proto, lo, hi) in &p.ranges {
        out.push(match api {
            K8sApi::Anp if lo == hi => {
                json!({"portNumber": {"protocol": proto.as_str(), "port": lo}})
            }
            K8sApi::Anp => {
                json!({"portRange": {"protocol": proto.as_str(), "start": lo, "end": hi}})
            }
            K8sApi::Cnp => {
                let port = if lo == hi {
                    json!({"number": lo})
                } else {
                    json!({"range": {"start": lo, "end": hi}})
                };
                let mut m = Map::new();
                m.insert(
                    proto.as_str().to_ascii_lowercase(),
                    json!({"destinationPort": port}),
                );
                Value::Object(m)
            }
        });
    }
    for (proto, name) in &p.named {
        match (api, proto) {
            (K8sApi::Cnp, None) => out.push(json!({"destinationNamedPort": name})),
            (K8sApi::Cnp, Some(pr)) => {
                return Err(format!(
                    "the named port {name:?} restricted to {pr}: ClusterNetworkPolicy's destinationNamedPort takes the container port's own protocol"
                ));
            }
            (K8sApi::Anp, _) => {
                return Err(format!(
                    "the named port {name:?}: AdminNetworkPolicy v1alpha1 (standard channel) has no named ports"
                ));
            }
        }
    }
    Ok(Some(out))
}

fn chunks(v: &[Value], n: usize) -> Vec<Vec<Value>> {
    if v.is_empty() {
        return vec![Vec::new()];
    }
    v.chunks(n).map(<[Value]>::to_vec).collect()
}

// ---------------------------------------------------------------------------------------------
// Names and metadata.

/// A DNS-1123 subdomain made of the parts (lowercase, `[a-z0-9-.]`, at most 253 characters).
fn object_name(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        let clean: String = p
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let clean = clean.trim_matches(|c| c == '-' || c == '.');
        if clean.is_empty() {
            continue;
        }
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(clean);
    }
    if s.len() > 253 {
        let h = fnv(&s);
        s.truncate(240);
        s = format!("{}.{h:012x}", s.trim_end_matches(['-', '.']));
    }
    s
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h & 0xffff_ffff_ffff
}

fn rule_part(r: &LRule) -> String {
    match &r.rule.name {
        Some(n) => format!("{}-{n}", r.index),
        None => format!("rule-{}", r.index),
    }
}

fn metadata(name: &str, ns: Option<&str>, r: Option<&LRule>, seg: &str, tier: &str) -> Value {
    let mut md = Map::new();
    md.insert("name".into(), json!(name));
    if let Some(ns) = ns {
        md.insert("namespace".into(), json!(ns));
    }
    md.insert(
        "labels".into(),
        json!({MANAGED_BY: "bulkhead", "bulkhead.dev/tier": tier}),
    );
    let mut ann = Map::new();
    if let Some(r) = r {
        ann.insert(
            SOURCE_ANNOTATION.into(),
            json!(format!("{}:{}", r.loc().file, r.loc().line)),
        );
        ann.insert(RULE_ANNOTATION.into(), json!(r.label()));
    }
    ann.insert(SEGMENT_ANNOTATION.into(), json!(seg));
    md.insert("annotations".into(), Value::Object(ann));
    Value::Object(md)
}

/// An object from its parts, moved rather than serialised again (`json!` would copy `spec`).
fn k8s_object(api_version: &str, kind: &str, metadata: Value, spec: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), Value::String(api_version.into()));
    m.insert("kind".into(), Value::String(kind.into()));
    m.insert("metadata".into(), metadata);
    m.insert("spec".into(), Value::Object(spec));
    Value::Object(m)
}

fn segment_source(s: &Segment) -> String {
    format!("{}:{}", s.loc.file, s.loc.line)
}

// ---------------------------------------------------------------------------------------------

/// Compiles `intent` for `k8s`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let low = Lowered::new(intent, Target::K8s, opts)?;
    let mut notes = Vec::new();
    let has_hosts = opts.inventory.iter().any(|i| i.kind == IdentityKind::Host);
    // Host peers need the inventory's addresses.
    for r in &low.rules {
        if !has_hosts
            && r.from
                .iter()
                .chain(&r.to)
                .any(|p| matches!(p, LPeer::Hosts { .. }))
        {
            return Err(unsupported(
                r,
                format!(
                    "rule {}: it names hosts, whose addresses come from the host inventory, and none was given",
                    r.label()
                ),
                "pass the host inventory with --hosts FILE",
            ));
        }
    }
    // Enforced segments' workloads.
    let enforced: Vec<(&Segment, WorkloadSel)> = low
        .enforced
        .iter()
        .filter_map(|s| workload_part(&s.selector).map(|w| (*s, w)))
        .filter(|(_, w)| !w.is_empty())
        .collect();
    for s in &low.enforced {
        if workload_part(&s.selector).is_none() {
            notes.push(format!(
                "segment {} selects only hosts: nothing for Kubernetes (its hosts are enforced by the nftables target)",
                s.name()
            ));
        } else if s.selector.hosts.is_some() {
            notes.push(format!(
                "segment {}: its hosts' own side is enforced by the nftables target; here only its Kubernetes workloads",
                s.name()
            ));
        }
    }
    if !low.observed.is_empty() {
        notes.push(format!(
            "observe-mode segments get no object (nothing that can drop): {}",
            low.observed
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Namespaces from the inventory.
    let mut namespaces: BTreeMap<String, Labels> = BTreeMap::new();
    for id in &opts.inventory {
        if let IdentityKind::Workload {
            namespace,
            namespace_labels,
        } = &id.kind
        {
            let mut l = namespace_labels.clone();
            l.entry(crate::lower::NAMESPACE_NAME_LABEL.to_string())
                .or_insert_with(|| namespace.clone());
            namespaces.entry(namespace.clone()).or_insert(l);
        }
    }
    if let Some((seg, _)) = enforced.first()
        && namespaces.is_empty()
    {
        return Err(CompileError::Unsupported {
            target: Target::K8s,
            loc: seg.loc.clone(),
            what: format!(
                "segment {} without an inventory: NetworkPolicies are namespaced, and the namespaces of an enforced segment's workloads are read from the inventory",
                seg.name()
            ),
            hint: Some("pass the cluster's manifests with --inventory PATH".to_string()),
        });
    }
    let mut sides: Vec<[Side; 2]> = low
        .rules
        .iter()
        .map(|r| [side(r, Dir::Ingress), side(r, Dir::Egress)])
        .collect();
    let mut interner = Interner::default();
    for s in sides.iter().flatten() {
        for w in &s.subjects {
            interner.add(w.pods.as_ref());
        }
    }
    for s in sides.iter_mut().flatten() {
        s.eqs = s
            .subjects
            .iter()
            .map(|w| interner.eqs(w.pods.as_ref()))
            .collect();
    }
    check_np_exceptions(&low, &enforced)?;
    // Each rule's addresses × ports per direction (named ports are the destination's container
    // ports: addresses, as destinations, have none), addresses as pieces of the cut made from
    // all of them.
    // (Rules name the same segments' addresses over and over: each distinct set once.)
    let distinct: std::collections::HashSet<&IpSet> = sides
        .iter()
        .flat_map(|sd| [&sd[0].addrs, &sd[1].addrs])
        .collect();
    let pieces = Pieces::new(distinct.iter().copied());
    let internal = || {
        CompileError::Intent(
            "internal error: an address set of the rules is not a union of the address pieces made from them"
                .to_string(),
        )
    };
    let mut as_pieces: std::collections::HashMap<&IpSet, PieceSet> = Default::default();
    for s in distinct {
        as_pieces.insert(s, pieces.of(s).ok_or_else(internal)?);
    }
    let rects: Vec<[Vec<Rect>; 2]> = low
        .rules
        .iter()
        .zip(&sides)
        .map(|(r, sd)| {
            let of = |s: &Side| -> Result<Vec<Rect>, CompileError> {
                if s.addrs.is_empty() {
                    return Ok(Vec::new());
                }
                let p = as_pieces.get(&s.addrs).ok_or_else(internal)?;
                Ok(rects_of(p, &r.ports))
            };
            let mut eg = of(&sd[1])?;
            eg.retain(|x| !matches!(x.ports, PSel::Named(..)));
            Ok([of(&sd[0])?, eg])
        })
        .collect::<Result<_, CompileError>>()?;
    // Guardrails → admin policies.
    let admin = admin_objects(&low, &sides, &enforced, opts.k8s_api)?;

    // NetworkPolicies, as YAML documents (see [`NpRule`]).
    let mut nps: BTreeMap<(String, String), String> = BTreeMap::new();
    for (seg, e) in &enforced {
        for (ns, labels) in &namespaces {
            if !e.namespaces.as_ref().is_none_or(|s| s.matches(labels)) {
                continue;
            }
            let name = object_name(&["bulkhead-default-deny", seg.name()]);
            let mut md = metadata(&name, Some(ns), None, seg.name(), "default");
            md["annotations"][SOURCE_ANNOTATION] = json!(segment_source(seg));
            let doc = json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": md,
                "spec": {
                    "podSelector": selector_json(e.pods.as_ref()),
                    "policyTypes": ["Ingress", "Egress"],
                }
            });
            let mut text = String::new();
            yaml_block(&doc, 0, None, &mut text);
            nps.insert((ns.clone(), name.clone()), text);
        }
    }
    let mut inv = Inventory::new(&opts.inventory);
    let mut walks: BTreeMap<WalkKey, Walk> = BTreeMap::new();
    let chain = Chain {
        rules: &low.rules,
        sides: &sides,
        rects: &rects,
        pieces: &pieces,
    };
    let mut ip_blocks = false;
    for (i, r) in low.rules.iter().enumerate() {
        if r.action != Action::Allow {
            continue;
        }
        for d in [Dir::Ingress, Dir::Egress] {
            let s = &sides[i][d as usize];
            let pods = if r.tier == Tier::Guardrail {
                // Decided by the admin layer.
                Vec::new()
            } else {
                s.pods.clone()
            };
            if pods.is_empty() && s.addrs.is_empty() {
                continue;
            }
            for (k, term) in s.subjects.iter().enumerate() {
                for (seg, e) in &enforced {
                    let subj = term.meet(e);
                    if subj.is_empty() {
                        continue;
                    }
                    // Allows go where the inventory has workloads they select; the default deny
                    // covers every namespace, so a workload that appears elsewhere is isolated
                    // (closed) until compiled again.
                    let populated = inv.namespaces_with(subj.pods.as_ref()).clone();
                    for ns in &populated {
                        let Some(labels) = namespaces.get(ns) else {
                            continue;
                        };
                        if !subj.namespaces.as_ref().is_none_or(|s| s.matches(labels)) {
                            continue;
                        }
                        let mut rules = Vec::new();
                        if !pods.is_empty() {
                            let mut rule = Map::new();
                            rule.insert(
                                d.peers_key().into(),
                                Value::Array(pods.iter().map(np_pod_peer).collect()),
                            );
                            if let Some(p) = np_ports(&r.ports) {
                                rule.insert("ports".into(), Value::Array(p));
                            }
                            rules.push(NpRule::Json(Value::Object(rule)));
                        }
                        if !s.addrs.is_empty() {
                            let key = (d, ns.clone(), subj.pods.clone());
                            {
                                let w = walks.entry(key.clone()).or_insert_with(|| {
                                    Walk::new(&pieces, interner.eqs(subj.pods.as_ref()))
                                });
                                address_walk(w, i, &chain, d, ns, labels, subj.pods.as_ref())?;
                            }
                            let decided = walks[&key]
                                .decided
                                .as_ref()
                                .filter(|(j, _)| *j == i)
                                .map(|(_, v)| v);
                            for (addrs, ports) in decided.into_iter().flatten() {
                                ip_blocks = true;
                                rules.push(NpRule::IpBlocks {
                                    cidrs: addrs.cidrs(),
                                    ports: np_ports_of(ports),
                                });
                            }
                        }
                        if rules.is_empty() {
                            continue;
                        }
                        let mut parts = vec![r.policy.name().to_string(), rule_part(r)];
                        parts.push(d.short().to_string());
                        parts.push(seg.name().to_string());
                        if s.subjects.len() > 1 {
                            parts.push(format!("t{k}"));
                        }
                        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                        let name = object_name(&refs);
                        let doc = np_yaml(
                            metadata(&name, Some(ns), Some(r), seg.name(), r.tier.as_str()),
                            d,
                            rules,
                            selector_json(subj.pods.as_ref()),
                        );
                        nps.insert((ns.clone(), name.clone()), doc);
                    }
                }
            }
        }
    }
    if !enforced.is_empty() {
        notes.push(format!(
            "NetworkPolicies are namespaced: the default deny was placed in the {} namespace{} of the inventory, the allows where the inventory has workloads they select; compile again when namespaces or workloads are added (a new namespace gets no default deny, a workload of an enforced segment in a namespace without its allows is isolated)",
            namespaces.len(),
            if namespaces.len() == 1 { "" } else { "s" }
        ));
    }
    if ip_blocks {
        notes.push("addresses are NetworkPolicy ipBlocks, meant for addresses outside the cluster: on network plugins that also match pod IPs against ipBlocks, keep the pod network out of the intent's CIDRs".to_string());
    }
    let mut files = BTreeMap::new();
    let header = |what: &str| {
        format!(
            "# Generated by `bulkhead compile --target k8s` ({what}). Do not edit: change the intent and compile again.\n"
        )
    };
    if !nps.is_empty() {
        files.insert(
            "networkpolicies.yaml".to_string(),
            header(
                "NetworkPolicy: application and baseline allows, default deny of enforced segments",
            ) + &nps.values().fold(String::new(), |mut all, doc| {
                all.push_str("---\n");
                all.push_str(doc);
                all
            }),
        );
    }
    if !admin.is_empty() {
        let (file, what) = match opts.k8s_api {
            K8sApi::Anp => (
                "adminnetworkpolicies.yaml",
                "AdminNetworkPolicy v1alpha1: the guardrail tier",
            ),
            K8sApi::Cnp => (
                "clusternetworkpolicies.yaml",
                "ClusterNetworkPolicy v1alpha2, tier Admin: the guardrail tier",
            ),
        };
        files.insert(
            file.to_string(),
            header(what) + &yaml_documents(admin.iter()),
        );
    }
    Ok(Compiled { files, notes })
}

/// Application and baseline `deny`/`pass` rules cannot be said with NetworkPolicy (an allow
/// list): refuse one that takes precedence over a later `allow` for a workload pair with an
/// enforced workload on either side, on some common port.
fn check_np_exceptions(
    low: &Lowered,
    enforced: &[(&Segment, WorkloadSel)],
) -> Result<(), CompileError> {
    let lower: Vec<&LRule> = low
        .rules
        .iter()
        .filter(|r| r.tier != Tier::Guardrail)
        .collect();
    let touches = |xs: &[WorkloadSel], ys: &[WorkloadSel]| {
        xs.iter().any(|x| {
            ys.iter().any(|y| {
                let m = x.meet(y);
                !m.is_empty() && enforced.iter().any(|(_, e)| !m.disjoint(e))
            })
        })
    };
    let overlap = |xs: &[WorkloadSel], ys: &[WorkloadSel]| {
        xs.iter().any(|x| ys.iter().any(|y| !x.disjoint(y)))
    };
    for (bi, b) in lower.iter().enumerate() {
        if b.action == Action::Allow {
            continue;
        }
        let (fb, tb) = (all_pods(&b.from), all_pods(&b.to));
        for a in &lower[bi + 1..] {
            if a.action != Action::Allow {
                continue;
            }
            // A pass skips the rest of its tier only.
            if b.action == Action::Pass && a.tier != b.tier {
                continue;
            }
            let (fa, ta) = (all_pods(&a.from), all_pods(&a.to));
            if overlap(&fb, &fa)
                && overlap(&tb, &ta)
                && ports_overlap(&b.ports, &a.ports)
                && (touches(&fb, &fa) || touches(&tb, &ta))
            {
                return Err(unsupported(
                    b,
                    format!(
                        "the {} {} rule {} before the allow {} at {}: NetworkPolicy can only allow, so an exception to a later allow between workloads cannot be said",
                        b.tier,
                        match b.action {
                            Action::Deny => "deny",
                            _ => "pass",
                        },
                        b.label(),
                        a.label(),
                        a.loc()
                    ),
                    "move the deny to the guardrail tier (AdminNetworkPolicy), or narrow the allow so that the two cannot overlap",
                ));
            }
        }
    }
    Ok(())
}

fn ports_overlap(a: &Option<LPorts>, b: &Option<LPorts>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => {
            !a.named.is_empty()
                || !b.named.is_empty()
                || a.ranges.iter().any(|&(p, lo, hi)| {
                    b.ranges
                        .iter()
                        .any(|&(q, l2, h2)| p == q && lo <= h2 && l2 <= hi)
                })
        }
    }
}

/// One admin policy per guardrail rule and subject (the rule's destination for ingress, its
/// source for egress, met with each enforced segment), priorities in rule order.
fn admin_objects(
    low: &Lowered,
    sides: &[[Side; 2]],
    enforced: &[(&Segment, WorkloadSel)],
    api: K8sApi,
) -> Result<Vec<Value>, CompileError> {
    let (max_items, action_allow) = match api {
        K8sApi::Anp => (100usize, "Allow"),
        K8sApi::Cnp => (25usize, "Accept"),
    };
    let mut out = Vec::new();
    let mut priority = 0usize;
    for (i, r) in low.rules.iter().enumerate() {
        if r.tier != Tier::Guardrail {
            continue;
        }
        // subject → (segments, ingress rules, egress rules)
        let mut subjects: Vec<(WorkloadSel, String, [Vec<Value>; 2])> = Vec::new();
        for d in [Dir::Ingress, Dir::Egress] {
            let s = &sides[i][d as usize];
            if s.pods.is_empty() {
                continue;
            }
            let ports = admin_ports(api, &r.ports).map_err(|what| {
                unsupported(
                    r,
                    format!("rule {}: {what}", r.label()),
                    "name the port by number in guardrail rules",
                )
            })?;
            let peers: Vec<Value> = s.pods.iter().map(admin_pods).collect();
            let action = match r.action {
                Action::Allow => action_allow,
                Action::Deny => "Deny",
                Action::Pass => "Pass",
            };
            let mut rules = Vec::new();
            for pc in chunks(&peers, max_items) {
                for (n, portc) in ports
                    .as_ref()
                    .map(|p| chunks(p, max_items))
                    .unwrap_or_else(|| vec![Vec::new()])
                    .into_iter()
                    .enumerate()
                {
                    let mut rule = Map::new();
                    let mut name = format!("{}/{}", r.policy.name(), r.policy.rule_label(r.index));
                    if n > 0 {
                        name = format!("{name} ({n})");
                    }
                    name.truncate(100);
                    rule.insert("name".into(), json!(name));
                    rule.insert("action".into(), json!(action));
                    rule.insert(d.peers_key().into(), Value::Array(pc.clone()));
                    if ports.is_some() {
                        let key = match api {
                            K8sApi::Anp => "ports",
                            K8sApi::Cnp => "protocols",
                        };
                        rule.insert(key.into(), Value::Array(portc));
                    }
                    rules.push(Value::Object(rule));
                }
            }
            if rules.len() > max_items {
                return Err(CompileError::Limit {
                    target: Target::K8s,
                    what: format!(
                        "{}: rule {} needs {} admin rules per direction, more than the API's {max_items}",
                        r.loc(),
                        r.label(),
                        rules.len()
                    ),
                });
            }
            for term in &s.subjects {
                for (seg, e) in enforced {
                    let subj = term.meet(e);
                    if subj.is_empty() {
                        continue;
                    }
                    match subjects.iter_mut().find(|(w, _, _)| *w == subj) {
                        Some((_, _, rs)) => rs[d as usize].extend(rules.iter().cloned()),
                        None => {
                            let mut rs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
                            rs[d as usize] = rules.clone();
                            subjects.push((subj, seg.name().to_string(), rs));
                        }
                    }
                }
            }
        }
        let many = subjects.len() > 1;
        for (n, (subj, seg, rs)) in subjects.into_iter().enumerate() {
            if priority > MAX_PRIORITY {
                return Err(CompileError::Limit {
                    target: Target::K8s,
                    what: format!(
                        "{}: the guardrail tier needs more than {} admin policies (one per rule and enforced subject, each at its own priority in rule order); priorities run 0-{MAX_PRIORITY}",
                        r.loc(),
                        MAX_PRIORITY + 1
                    ),
                });
            }
            let mut parts = vec![r.policy.name().to_string(), rule_part(r), seg.clone()];
            if many {
                parts.push(format!("s{n}"));
            }
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let name = object_name(&refs);
            let mut spec = Map::new();
            if api == K8sApi::Cnp {
                spec.insert("tier".into(), json!("Admin"));
            }
            spec.insert("priority".into(), json!(priority));
            spec.insert("subject".into(), admin_pods(&subj));
            let [ing, eg] = rs;
            if !ing.is_empty() {
                spec.insert("ingress".into(), Value::Array(ing));
            }
            if !eg.is_empty() {
                spec.insert("egress".into(), Value::Array(eg));
            }
            let (api_version, kind) = match api {
                K8sApi::Anp => (ANP_API, "AdminNetworkPolicy"),
                K8sApi::Cnp => (CNP_API, "ClusterNetworkPolicy"),
            };
            out.push(k8s_object(
                api_version,
                kind,
                metadata(&name, None, Some(r), &seg, "guardrail"),
                spec,
            ));
            priority += 1;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// YAML output.

/// One rule of a NetworkPolicy's `ingress` or `egress` list.
#[derive(Debug)]
enum NpRule {
    /// Written from its JSON.
    Json(Value),
    /// Address blocks and ports, written straight to YAML: the text [`yaml_block`] writes for
    /// `{from|to: [{ipBlock: {cidr: …}}, …], ports: […]}`, without two JSON maps per block (at
    /// the scale 190,000 blocks, the most of the compile's allocations).
    IpBlocks {
        cidrs: Vec<String>,
        ports: Option<Vec<Value>>,
    },
}

impl NpRule {
    /// The rule as JSON: what [`NpRule::write`] writes.
    #[cfg(test)]
    fn to_json(&self, d: Dir) -> Value {
        match self {
            NpRule::Json(v) => v.clone(),
            NpRule::IpBlocks { cidrs, ports } => {
                let mut rule = Map::new();
                rule.insert(
                    d.peers_key().into(),
                    Value::Array(
                        cidrs
                            .iter()
                            .map(|c| json!({"ipBlock": {"cidr": c}}))
                            .collect(),
                    ),
                );
                if let Some(p) = ports {
                    rule.insert("ports".into(), Value::Array(p.clone()));
                }
                Value::Object(rule)
            }
        }
    }

    /// Writes the rule as an item of the list under `spec.ingress`/`spec.egress`.
    fn write(self, d: Dir, out: &mut String) {
        // The list's items are at indent 4, their keys at 6.
        const DASH: &str = "    - ";
        const PAD: &str = "      ";
        match self {
            NpRule::Json(v) => match yaml_scalar(&v) {
                Some(s) => {
                    out.push_str(DASH);
                    out.push_str(&s);
                    out.push('\n');
                }
                None => yaml_block(&v, 6, Some(DASH), out),
            },
            NpRule::IpBlocks { cidrs, ports } => {
                // Keys in the order of a JSON map: `from` < `ports` < `to`.
                let mut keys = vec![d.peers_key()];
                if ports.is_some() {
                    keys.push("ports");
                }
                keys.sort_unstable();
                let mut lead = Some(DASH);
                let mut ports = ports;
                for k in keys {
                    if k == "ports" {
                        let mut m = Map::new();
                        m.insert(
                            "ports".into(),
                            Value::Array(ports.take().unwrap_or_default()),
                        );
                        yaml_block(&Value::Object(m), 6, lead.take(), out);
                        continue;
                    }
                    out.push_str(lead.take().unwrap_or(PAD));
                    out.push_str(k);
                    if cidrs.is_empty() {
                        out.push_str(": []\n");
                        continue;
                    }
                    out.push_str(":\n");
                    for c in &cidrs {
                        out.push_str("        - ipBlock:\n            cidr: ");
                        out.push_str(&yaml_string(c));
                        out.push('\n');
                    }
                }
            }
        }
    }
}

/// A NetworkPolicy document (after its `---` line): the text [`yaml_block`] writes for the
/// object with `spec: {ingress|egress: rules, podSelector, policyTypes}`.
fn np_yaml(metadata: Value, d: Dir, rules: Vec<NpRule>, pod_selector: Value) -> String {
    let mut out = String::new();
    let mut head = Map::new();
    head.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
    head.insert("kind".into(), json!("NetworkPolicy"));
    head.insert("metadata".into(), metadata);
    yaml_block(&Value::Object(head), 0, None, &mut out);
    // `spec` comes last; in it `egress`/`ingress` before `podSelector` and `policyTypes`.
    out.push_str("spec:\n  ");
    out.push_str(d.key());
    if rules.is_empty() {
        out.push_str(": []\n");
    } else {
        out.push_str(":\n");
        for r in rules {
            r.write(d, &mut out);
        }
    }
    let mut tail = Map::new();
    tail.insert("podSelector".into(), pod_selector);
    tail.insert(
        "policyTypes".into(),
        json!([match d {
            Dir::Ingress => "Ingress",
            Dir::Egress => "Egress",
        }]),
    );
    yaml_block(&Value::Object(tail), 2, None, &mut out);
    out
}

fn yaml_documents<'a>(docs: impl Iterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        yaml_block(d, 0, None, &mut out);
    }
    out
}

fn yaml_scalar(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        _ => return None,
    })
}

/// A string as a plain scalar when that is unambiguous, else double-quoted (JSON escapes are
/// YAML escapes).
pub fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// Writes `v` as a block at `indent`; `first`, if given, replaces the first line's indentation
/// (a sequence item's `- `).
fn yaml_block(v: &Value, indent: usize, first: Option<&str>, out: &mut String) {
    let mut lead = first;
    fn pad(lead: &mut Option<&str>, indent: usize, out: &mut String) {
        match lead.take() {
            Some(f) => out.push_str(f),
            None => out.extend(std::iter::repeat_n(' ', indent)),
        }
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                pad(&mut lead, indent, out);
                out.push_str(&yaml_string(k));
                match yaml_scalar(v) {
                    Some(s) => {
                        out.push_str(": ");
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        out.push_str(":\n");
                        yaml_block(v, indent + 2, None, out);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let dash = format!("{}- ", " ".repeat(indent));
            for item in a {
                match yaml_scalar(item) {
                    Some(s) => {
                        pad(&mut lead, indent, out);
                        out.push_str("- ");
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        let d = match lead.take() {
                            Some(f) => format!("{f}- "),
                            None => dash.clone(),
                        };
                        yaml_block(item, indent + 2, Some(&d), out);
                    }
                }
            }
        }
        other => {
            pad(&mut lead, indent, out);
            out.push_str(&yaml_scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod meet_tests {
    use super::ranges_meet;
    use proptest::prelude::*;

    /// Sorted, disjoint ranges from random starts and lengths.
    fn ranges(v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        let mut at = 0u32;
        for (gap, len) in v {
            let lo = at.saturating_add(gap);
            let hi = lo.saturating_add(len);
            if out.last().is_some_and(|l| l.1 >= lo) || hi == u32::MAX {
                break;
            }
            out.push((lo, hi));
            at = hi + 2;
        }
        out
    }

    proptest! {
        /// The walk and the search of a short list in a long one agree with brute force.
        #[test]
        fn ranges_meet_is_exact(a in prop::collection::vec((1u32..50, 0u32..5), 0..4),
                                b in prop::collection::vec((1u32..6, 0u32..3), 0..80)) {
            let (a, b) = (ranges(a), ranges(b));
            let brute = a.iter().any(|x| b.iter().any(|y| x.0 <= y.1 && y.0 <= x.1));
            prop_assert_eq!(ranges_meet(&a, &b), brute);
            prop_assert_eq!(ranges_meet(&b, &a), brute);
        }
    }
}

#[cfg(test)]
mod rel_tests {
    use super::{Interner, Rel, Side, WorkloadSel, eqs_conflict, rule_rel, term_rel};
    use bulkhead_core::{IpSet, Labels, Operator, Requirement, Selector};
    use proptest::prelude::*;

    /// Selectors over two keys and three values, with every operator.
    fn arb_selector() -> impl Strategy<Value = Option<Selector>> {
        // `In` one value half the time: the equalities the shortcut reads.
        let req = (0usize..2, 0usize..6, prop::collection::vec(0usize..3, 1..3)).prop_map(
            |(k, op, vals)| {
                let key = ["app", "segment"][k];
                let values: Vec<String> = vals.iter().map(|v| format!("v{v}")).collect();
                match op {
                    0 | 1 => Requirement::new(key, Operator::In, values[..1].to_vec()),
                    2 => Requirement::new(key, Operator::In, values),
                    3 => Requirement::new(key, Operator::NotIn, values),
                    4 => Requirement::new(key, Operator::Exists, Vec::new()),
                    _ => Requirement::new(key, Operator::DoesNotExist, Vec::new()),
                }
                .expect("a valid requirement")
            },
        );
        prop::option::of(
            prop::collection::vec(req, 0..3)
                .prop_map(|rs| Selector::new([], rs).expect("a valid selector")),
        )
    }

    proptest! {
        // Cheap cases, and the pairs that matter (the same key and value on both sides, one
        // side interned) are a few in a hundred: many cases.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The interned shortcut never changes a relation: a conflict it finds is one the
        /// selectors have, and `rule_rel` with it equals the plain walk over `term_rel`
        /// (values the interner never saw included: only the subjects are interned).
        #[test]
        fn interned_equalities_keep_relations(subjects in prop::collection::vec(arb_selector(), 1..4),
                                              pods in arb_selector(),
                                              known in 0usize..3) {
            let subjects: Vec<WorkloadSel> = subjects
                .into_iter()
                .map(|p| WorkloadSel { namespaces: None, pods: p })
                .collect();
            let mut interner = Interner::default();
            for w in subjects.iter().take(known) {
                interner.add(w.pods.as_ref());
            }
            let eqs: Vec<_> = subjects.iter().map(|w| interner.eqs(w.pods.as_ref())).collect();
            let walk_eqs = interner.eqs(pods.as_ref());
            let ns = Labels::new();
            for (w, e) in subjects.iter().zip(&eqs) {
                if eqs_conflict(e, &walk_eqs) {
                    prop_assert_eq!(term_rel(w, &ns, pods.as_ref()), Rel::Disjoint);
                }
            }
            let plain = {
                let rels: Vec<Rel> = subjects.iter().map(|w| term_rel(w, &ns, pods.as_ref())).collect();
                if rels.contains(&Rel::Contains) {
                    Rel::Contains
                } else if rels.iter().all(|r| *r == Rel::Disjoint) {
                    Rel::Disjoint
                } else {
                    Rel::Unknown
                }
            };
            let side = Side { subjects, pods: Vec::new(), addrs: IpSet::empty(), eqs };
            prop_assert_eq!(rule_rel(&side, &walk_eqs, &ns, pods.as_ref()), plain);
        }
    }

    #[test]
    fn conflicting_equalities_are_found_and_unknown_values_differ() {
        let sel = |k: &str, v: &str| Selector::new([(k.to_string(), v.to_string())], []).ok();
        let mut i = Interner::default();
        i.add(sel("app", "a").as_ref());
        let a = i.eqs(sel("app", "a").as_ref());
        assert!(eqs_conflict(&a, &i.eqs(sel("app", "b").as_ref())));
        assert!(!eqs_conflict(&a, &i.eqs(sel("app", "a").as_ref())));
        assert!(!eqs_conflict(&a, &i.eqs(sel("tier", "a").as_ref())));
        // Two strings the interner never saw may be equal: no conclusion.
        let x = i.eqs(sel("app", "zz").as_ref());
        assert!(!eqs_conflict(&x, &x));
    }
}

#[cfg(test)]
mod np_yaml_tests {
    use super::{Dir, NpRule, k8s_object, np_yaml, yaml_block};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn arb_ports() -> impl Strategy<Value = Option<Vec<Value>>> {
        prop::option::of(prop::collection::vec(
            (0u16..3, 1u16..70).prop_map(|(kind, p)| match kind {
                0 => json!({"protocol": "TCP"}),
                1 => json!({"protocol": "UDP", "port": p}),
                _ => json!({"protocol": "TCP", "port": p, "endPort": p + 5}),
            }),
            0..3,
        ))
    }

    fn arb_rule() -> impl Strategy<Value = NpRule> {
        prop_oneof![
            (
                prop::collection::vec(
                    prop_oneof![Just("10.0.0.0/8"), Just("fd00::/8"), Just("192.0.2.1/32")],
                    0..4
                ),
                arb_ports()
            )
                .prop_map(|(c, ports)| NpRule::IpBlocks {
                    cidrs: c.into_iter().map(str::to_string).collect(),
                    ports,
                }),
            (prop::bool::ANY, arb_ports()).prop_map(|(peers, ports)| {
                let mut m = Map::new();
                if peers {
                    m.insert(
                        "from".into(),
                        json!([{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "a"}}}]),
                    );
                }
                if let Some(p) = ports {
                    m.insert("ports".into(), Value::Array(p));
                }
                NpRule::Json(Value::Object(m))
            }),
        ]
    }

    proptest! {
        /// The NetworkPolicy written straight to YAML is the text of the JSON object it stands
        /// for, byte for byte, in both directions, with and without ports, empty lists included.
        #[test]
        fn np_yaml_is_the_json_objects_yaml(rules in prop::collection::vec(arb_rule(), 0..4),
                                            egress in prop::bool::ANY,
                                            labelled in prop::bool::ANY) {
            let d = if egress { Dir::Egress } else { Dir::Ingress };
            let md = json!({"name": "n.rule-1.in.cards", "namespace": "cards",
                            "annotations": {"bulkhead.dev/rule": "p/rules[1]"}});
            let ps = if labelled { json!({"matchLabels": {"segment": "cards"}}) } else { json!({}) };
            let mut spec = Map::new();
            spec.insert("podSelector".into(), ps.clone());
            spec.insert("policyTypes".into(), json!([if egress { "Egress" } else { "Ingress" }]));
            spec.insert(d.key().into(), Value::Array(rules.iter().map(|r| r.to_json(d)).collect()));
            let mut want = String::new();
            yaml_block(&k8s_object("networking.k8s.io/v1", "NetworkPolicy", md.clone(), spec), 0, None, &mut want);
            prop_assert_eq!(np_yaml(md, d, rules, ps), want);
        }
    }
}
