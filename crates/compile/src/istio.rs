//! The `istio` target: `AuthorizationPolicy` (`security.istio.io/v1`) at each enforced
//! Kubernetes workload, with sources named by their SPIFFE identities (service-account
//! principals, `TRUST_DOMAIN/ns/NS/sa/SA`).
//!
//! **What is kept.** Istio enforces at the server: its sidecar authorises a connection at the
//! destination. So the meaning compiled is the evaluator's *destination side*
//! ([`crate::lower`]): for a destination workload in an enforced segment, a TCP connection is
//! allowed exactly when the first deciding rule (guardrail → application → baseline, `pass`
//! skipping the rest of its tier) is an `allow`. The source side (egress) stays with the other
//! targets; Istio never sees UDP or SCTP (rules' UDP/SCTP ports are noted, not compiled).
//!
//! **How.** Istio evaluates `DENY` policies first (any match denies), then `ALLOW` policies (when
//! any applies to the workload, the request must match one). First-match tiers do not map rule
//! for rule onto that (a `DENY` always beats an `ALLOW`, whatever their order), so the chain is
//! evaluated symbolically per destination class: each rule's *effective* region — its sources ×
//! TCP ports minus everything an earlier rule already decided and, within its tier, what an
//! earlier `pass` set aside — is computed exactly in an algebra of source sets (finite sets of
//! principals and address sets, or their complements: `notPrincipals`, `notIpBlocks`) and port
//! sets (`ports` / `notPorts`). Effective `allow` regions become one `ALLOW` policy, effective
//! `deny` regions one `DENY` policy, and the `ALLOW` policy exists even when empty (an
//! allow-nothing policy), so whatever no rule allows is denied. Effective regions are disjoint,
//! so the `DENY` never takes away an allowed connection: the result is exact.
//!
//! **Identities.** Destinations and sources are the inventory's workloads: an inventory is
//! required. A source peer that selects workloads becomes the principals of their service
//! accounts; when a service account is shared by a selected and an unselected workload of the
//! same namespace, the principal would be broader than the intent, and compilation fails
//! ("identity limit"). Hosts and external addresses are sources by address: `ipBlocks`
//! together with `notPrincipals: ["*"]` (no peer certificate), so, like the intent's CIDR peers,
//! they never match a workload of the mesh whatever its pod address. Destination workloads are
//! chosen with `matchLabels` from the inventory (expressions cannot be Istio selectors): the
//! labels a class's workloads share, or each one's own labels, checked to pick exactly the class
//! among the inventory workloads of the namespace; else compilation fails.
//!
//! **Observe mode.** Workloads only in `observe` segments get nothing: Istio's `AUDIT` action
//! never blocks but only marks requests for a provider plugin (Stackdriver), which is left out;
//! a note says so.

use crate::lower::{LPeer, LRule, Lowered, WorkloadSel};
use crate::{CompileError, Compiled, Options, Target};
use bulkhead_core::conn::all_ports;
use bulkhead_core::{IpSet, Labels, PortSet, Protocol};
use bulkhead_intent::{Action, Identity, IdentityKind, Mode};
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// The most ports one `ports`/`notPorts` list may enumerate (Istio takes single ports, not
/// ranges).
pub const MAX_LISTED_PORTS: usize = 1024;

/// The most pieces a destination's effective regions may split into.
pub const MAX_PIECES: usize = 4096;

/// Istio-specific settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IstioOptions {
    /// The mesh's trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Istio's root namespace (`istio-system`): a policy there applies to the whole mesh, so no
    /// enforced workload may live there.
    pub root_namespace: String,
}

impl Default for IstioOptions {
    fn default() -> Self {
        IstioOptions {
            trust_domain: "cluster.local".to_string(),
            root_namespace: "istio-system".to_string(),
        }
    }
}

/// Compiles `intent` for `istio` with the default trust domain and root namespace.
pub fn compile(intent: &bulkhead_intent::Intent, opts: &Options) -> Result<Compiled, CompileError> {
    compile_with(intent, opts, &IstioOptions::default())
}

/// A set of request sources: `Pos` — a principal in `principals`, or no principal and a source
/// address in `ips`; `neg` — the complement of that.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Src {
    neg: bool,
    /// Interned principals (indexes into [`Ctx::names`]), shared: pieces are copied far more
    /// often than their sources change.
    principals: Rc<BTreeSet<u32>>,
    ips: IpSet,
}

type Principals = Rc<BTreeSet<u32>>;

/// Set operations on shared principal sets that share an operand when the result is one.
fn set_union(a: &Principals, b: &Principals) -> Principals {
    if b.is_empty() || Rc::ptr_eq(a, b) {
        a.clone()
    } else if a.is_empty() {
        b.clone()
    } else {
        Rc::new(a.union(b).copied().collect())
    }
}

fn set_intersection(a: &Principals, b: &Principals) -> Principals {
    if a.is_empty() || Rc::ptr_eq(a, b) {
        a.clone()
    } else if b.is_empty() {
        b.clone()
    } else {
        Rc::new(a.intersection(b).copied().collect())
    }
}

fn set_difference(a: &Principals, b: &Principals) -> Principals {
    if a.is_empty() || b.is_empty() {
        a.clone()
    } else {
        Rc::new(a.difference(b).copied().collect())
    }
}

impl Src {
    fn none() -> Src {
        Src {
            neg: false,
            principals: Rc::default(),
            ips: IpSet::empty(),
        }
    }

    fn any() -> Src {
        Src {
            neg: true,
            ..Src::none()
        }
    }

    fn is_empty(&self) -> bool {
        !self.neg && self.principals.is_empty() && self.ips.is_empty()
    }

    fn complement(&self) -> Src {
        Src {
            neg: !self.neg,
            principals: self.principals.clone(),
            ips: self.ips.clone(),
        }
    }

    fn union(&self, o: &Src) -> Src {
        match (self.neg, o.neg) {
            (false, false) => Src {
                neg: false,
                principals: set_union(&self.principals, &o.principals),
                ips: self.ips.union(&o.ips),
            },
            (true, true) => Src {
                neg: true,
                principals: set_intersection(&self.principals, &o.principals),
                ips: self.ips.intersect(&o.ips),
            },
            (false, true) | (true, false) => {
                let (pos, neg) = if self.neg { (o, self) } else { (self, o) };
                Src {
                    neg: true,
                    principals: set_difference(&neg.principals, &pos.principals),
                    ips: neg.ips.subtract(&pos.ips),
                }
            }
        }
    }

    fn intersect(&self, o: &Src) -> Src {
        match (self.neg, o.neg) {
            (false, false) => Src {
                neg: false,
                principals: set_intersection(&self.principals, &o.principals),
                ips: self.ips.intersect(&o.ips),
            },
            (true, true) => Src {
                neg: true,
                principals: set_union(&self.principals, &o.principals),
                ips: self.ips.union(&o.ips),
            },
            (false, true) | (true, false) => {
                let (pos, neg) = if self.neg { (o, self) } else { (self, o) };
                Src {
                    neg: false,
                    principals: set_difference(&pos.principals, &neg.principals),
                    ips: pos.ips.subtract(&neg.ips),
                }
            }
        }
    }

    fn subtract(&self, o: &Src) -> Src {
        self.intersect(&o.complement())
    }
}

/// Sources × TCP ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Piece {
    src: Src,
    ports: PortSet,
}

impl Piece {
    /// `self` minus `o`, as at most two disjoint pieces.
    fn minus(&self, o: &Piece, out: &mut Vec<Piece>) {
        // Ports first: disjoint ports are the cheap, common case.
        if self.ports.intersect(&o.ports).is_empty() {
            out.push(self.clone());
            return;
        }
        let si = self.src.intersect(&o.src);
        if si.is_empty() {
            out.push(self.clone());
            return;
        }
        let s1 = self.src.subtract(&o.src);
        if !s1.is_empty() {
            out.push(Piece {
                src: s1,
                ports: self.ports.clone(),
            });
        }
        let p2 = self.ports.subtract(&o.ports);
        if !p2.is_empty() {
            out.push(Piece { src: si, ports: p2 });
        }
    }
}

fn minus_all<'p>(mut region: Vec<Piece>, by: impl IntoIterator<Item = &'p Piece>) -> Vec<Piece> {
    for b in by {
        if region.is_empty() {
            break;
        }
        let mut next = Vec::with_capacity(region.len());
        for p in &region {
            p.minus(b, &mut next);
        }
        region = next;
    }
    region
}

/// Unions pieces with equal ports, then pieces with equal sources.
fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut by_ports: Vec<Piece> = Vec::new();
    for p in pieces {
        match by_ports.iter_mut().find(|q| q.ports == p.ports) {
            Some(q) => q.src = q.src.union(&p.src),
            None => by_ports.push(p),
        }
    }
    let mut by_src: Vec<Piece> = Vec::new();
    for p in by_ports {
        match by_src.iter_mut().find(|q| q.src == p.src) {
            Some(q) => q.ports = q.ports.union(&p.ports),
            None => by_src.push(p),
        }
    }
    by_src
}

fn workload_name(id: &Identity) -> &str {
    id.name.rsplit('/').next().unwrap_or(&id.name)
}

/// The SPIFFE principal of an inventory workload.
fn principal(id: &Identity, td: &str) -> Option<String> {
    let ns = id.namespace()?;
    let sa = id.service_account.as_deref().unwrap_or("default");
    Some(format!("{td}/ns/{ns}/sa/{sa}"))
}

/// A rule's TCP ports at destination `d` (named ports resolved against `d`'s container ports).
fn tcp_ports(r: &LRule<'_>, d: &Identity) -> PortSet {
    let Some(lp) = &r.ports else {
        return all_ports();
    };
    let mut set = PortSet::from_ranges(
        lp.ranges
            .iter()
            .filter(|(p, _, _)| *p == Protocol::Tcp)
            .map(|&(_, a, b)| (a, b)),
    );
    for (proto, name) in &lp.named {
        for np in &d.named_ports {
            if np.name == *name
                && np.protocol == Protocol::Tcp
                && proto.is_none_or(|p| p == Protocol::Tcp)
            {
                set = set.union(&PortSet::range(np.port, np.port));
            }
        }
    }
    set.intersect(&all_ports())
}

/// Candidates for a workload selector among a list of identities, by label: a selector that
/// requires `key in (…)` (of the pod or of its namespace) can only pick identities carrying one
/// of those pairs, so each distinct selector is matched against those, not the whole list.
struct SelIndex {
    /// Indexes of the workloads of the list.
    workloads: Vec<usize>,
    /// `(key, value)` of a workload's own labels → indexes.
    by_pod: HashMap<(String, String), Vec<usize>>,
    /// `(key, value)` of a workload's namespace labels → indexes.
    by_ns: HashMap<(String, String), Vec<usize>>,
}

impl SelIndex {
    fn new<'i>(ids: impl IntoIterator<Item = &'i Identity>) -> Self {
        let mut ix = SelIndex {
            workloads: Vec::new(),
            by_pod: HashMap::new(),
            by_ns: HashMap::new(),
        };
        for (i, id) in ids.into_iter().enumerate() {
            if let IdentityKind::Workload {
                namespace_labels, ..
            } = &id.kind
            {
                ix.workloads.push(i);
                for (k, v) in &id.labels {
                    ix.by_pod.entry((k.clone(), v.clone())).or_default().push(i);
                }
                for (k, v) in namespace_labels {
                    ix.by_ns.entry((k.clone(), v.clone())).or_default().push(i);
                }
            }
        }
        ix
    }

    /// Indexes (ascending, no repeats) that include every workload `sel` can pick; the caller
    /// still matches each one.
    fn candidates(&self, sel: &WorkloadSel) -> Vec<usize> {
        let first_in = |s: &Option<bulkhead_core::Selector>| {
            s.as_ref().and_then(|s| {
                s.requirements()
                    .iter()
                    .find(|r| r.op == bulkhead_core::Operator::In)
                    .cloned()
            })
        };
        let (req, map) = match (first_in(&sel.pods), first_in(&sel.namespaces)) {
            (Some(r), _) => (r, &self.by_pod),
            (None, Some(r)) => (r, &self.by_ns),
            (None, None) => return self.workloads.clone(),
        };
        let mut out: Vec<usize> = req
            .values
            .iter()
            .flat_map(|v| {
                map.get(&(req.key.clone(), v.clone()))
                    .into_iter()
                    .flatten()
                    .copied()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A `from` peer's principals, or the identity limit hit: `(principal, other workload)`.
type PeerSources = Result<Src, (String, String)>;

struct Ctx<'a> {
    lowered: &'a Lowered<'a>,
    inventory: &'a [Identity],
    /// The principal of each inventory identity (workloads only), interned.
    principals: Vec<Option<u32>>,
    /// Interned principals.
    names: Vec<String>,
    /// Inventory indexes per principal.
    by_principal: HashMap<u32, Vec<usize>>,
    /// The inventory's workloads by label.
    index: SelIndex,
    /// Sources per distinct workload selector of a `from` peer.
    peer_sources: RefCell<HashMap<WorkloadSel, PeerSources>>,
    /// Sources per rule.
    rule_sources: RefCell<HashMap<usize, Result<Src, CompileError>>>,
    /// Interned reaches (the pieces a rule adds to a region state).
    reaches: RefCell<HashMap<Vec<Piece>, u32>>,
    /// Interned region states (what was passed, or reached by the other action, so far): a
    /// state is the empty state (0) or a state extended by an interned reach, so an id stands
    /// for one list of pieces without hashing the whole list at every step.
    states: RefCell<HashMap<(u32, u32), u32>>,
    /// A rule's reach and effective part, per (rule, ports, passed state, other-action state):
    /// destinations that differ only in later rules share the work.
    memo: RefCell<HashMap<Memo, Rc<ReachAndEffect>>>,
}

type Memo = (usize, PortSet, u32, u32);

/// A rule's reach (with its interned id) and its effective part.
struct ReachAndEffect {
    reach: Vec<Piece>,
    reach_id: u32,
    effective: Vec<Piece>,
}

impl<'a> Ctx<'a> {
    fn new(lowered: &'a Lowered<'a>, inventory: &'a [Identity], td: &str) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut principals: Vec<Option<u32>> = Vec::with_capacity(inventory.len());
        let mut by_principal: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, id) in inventory.iter().enumerate() {
            let p = principal(id, td).map(|p| {
                *ids.entry(p.clone()).or_insert_with(|| {
                    names.push(p);
                    (names.len() - 1) as u32
                })
            });
            if let Some(p) = p {
                by_principal.entry(p).or_default().push(i);
            }
            principals.push(p);
        }
        Ctx {
            lowered,
            inventory,
            principals,
            names,
            by_principal,
            index: SelIndex::new(inventory),
            peer_sources: RefCell::default(),
            rule_sources: RefCell::default(),
            reaches: RefCell::default(),
            states: RefCell::default(),
            memo: RefCell::default(),
        }
    }

    /// The principals of the workloads `sel` picks; `Err((principal, other workload))` when a
    /// principal also stands for a workload `sel` does not pick (the identity limit).
    fn workload_sources(&self, sel: &WorkloadSel) -> Result<Src, (String, String)> {
        if let Some(r) = self.peer_sources.borrow().get(sel) {
            return r.clone();
        }
        let mut picked: Vec<bool> = vec![false; self.inventory.len()];
        for i in self.index.candidates(sel) {
            picked[i] = sel.matches(&self.inventory[i]);
        }
        let mut principals = BTreeSet::new();
        let mut result = Ok(());
        for (i, p) in self.principals.iter().enumerate() {
            if let (true, Some(p)) = (picked[i], *p)
                && principals.insert(p)
                && let Some(&other) = self.by_principal[&p].iter().find(|&&j| !picked[j])
                && result.is_ok()
            {
                result = Err((
                    self.names[p as usize].clone(),
                    self.inventory[other].name.clone(),
                ));
            }
        }
        let r = result.map(|()| Src {
            neg: false,
            principals: Rc::new(principals),
            ips: IpSet::empty(),
        });
        self.peer_sources
            .borrow_mut()
            .insert(sel.clone(), r.clone());
        r
    }

    fn intern_reach(&self, v: &[Piece]) -> u32 {
        let mut st = self.reaches.borrow_mut();
        if let Some(&id) = st.get(v) {
            return id;
        }
        let id = st.len() as u32;
        st.insert(v.to_vec(), id);
        id
    }

    /// The state `state` extended by the reach `reach_id` (ids from 1; 0 is the empty state).
    fn extend_state(&self, state: u32, reach_id: u32) -> u32 {
        let mut st = self.states.borrow_mut();
        let next = st.len() as u32 + 1;
        *st.entry((state, reach_id)).or_insert(next)
    }

    /// The sources of rule `i` (resolved against the inventory).
    fn sources(&self, i: usize) -> Result<Src, CompileError> {
        if let Some(r) = self.rule_sources.borrow().get(&i) {
            return r.clone();
        }
        let r = &self.lowered.rules[i];
        let mut src = Src::none();
        let mut result = Ok(());
        for peer in &r.from {
            let part = match peer {
                LPeer::Any => Src::any(),
                LPeer::Workloads(sel) => match self.workload_sources(sel) {
                    Ok(s) => s,
                    Err((p, other)) => {
                        result = Err(CompileError::Unsupported {
                            target: Target::Istio,
                            loc: r.loc().clone(),
                            what: format!(
                                "{}: its source peer selects workloads whose service account \
                                 {p} is also the identity of {other}, which the peer does not \
                                 select (identity limit: the principal would be broader than \
                                 the intent)",
                                r.label(),
                            ),
                            hint: Some(
                                "give the selected workloads their own service account \
                                 (spec.serviceAccountName)"
                                    .to_string(),
                            ),
                        });
                        break;
                    }
                },
                LPeer::Hosts { addresses, .. } => Src {
                    neg: false,
                    principals: Rc::default(),
                    ips: addresses.clone(),
                },
                LPeer::Addresses(set) => Src {
                    neg: false,
                    principals: Rc::default(),
                    ips: set.clone(),
                },
            };
            src = src.union(&part);
        }
        let out = result.map(|()| src);
        self.rule_sources.borrow_mut().insert(i, out.clone());
        out
    }
}

/// One destination class's result.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Regions {
    allow: Vec<Piece>,
    deny: Vec<Piece>,
    /// Rules (indexes into `Lowered::rules`) with a non-empty effective region.
    rules: BTreeSet<usize>,
}

/// Walks the rules whose `to` holds destination `d` (`rules`, in evaluation order).
///
/// A rule *reaches* the connections it matches minus those an earlier `pass` of its tier set
/// aside. The first rule reaching a connection decides it, so the allowed connections are the
/// reach of each `allow` minus the reach of every earlier `deny`, and the denied ones the reach
/// of each `deny` minus the reach of every earlier `allow` (earlier rules of the same action
/// need not be subtracted: they decide alike).
fn regions(ctx: &Ctx<'_>, d: &Identity, rules: &[u32]) -> Result<Regions, CompileError> {
    // Regions as the memoised reaches they are made of (shared, not copied).
    let mut allow_reach: Vec<Rc<ReachAndEffect>> = Vec::new();
    let mut deny_reach: Vec<Rc<ReachAndEffect>> = Vec::new();
    let mut passed: Vec<Rc<ReachAndEffect>> = Vec::new();
    // How many pieces the three regions hold.
    let mut held = 0usize;
    let mut tier = None;
    let mut out = Regions {
        allow: Vec::new(),
        deny: Vec::new(),
        rules: BTreeSet::new(),
    };
    let (mut passed_id, mut allow_id, mut deny_id) = (0u32, 0u32, 0u32);
    for &i in rules {
        let i = i as usize;
        let r = &ctx.lowered.rules[i];
        if tier != Some(r.tier) {
            tier = Some(r.tier);
            held -= passed.iter().map(|x| x.reach.len()).sum::<usize>();
            passed.clear();
            passed_id = 0;
        }
        let ports = tcp_ports(r, d);
        if ports.is_empty() {
            continue;
        }
        let src = ctx.sources(i)?;
        if src.is_empty() {
            continue;
        }
        let other = match r.action {
            Action::Allow => deny_id,
            Action::Deny => allow_id,
            Action::Pass => u32::MAX,
        };
        let key = (i, ports, passed_id, other);
        let known = ctx.memo.borrow().get(&key).cloned();
        let step = match known {
            Some(v) => v,
            None => {
                let reach = minus_all(
                    vec![Piece {
                        src,
                        ports: key.1.clone(),
                    }],
                    passed.iter().flat_map(|x| &x.reach),
                );
                let effective = match r.action {
                    Action::Allow => {
                        minus_all(reach.clone(), deny_reach.iter().flat_map(|x| &x.reach))
                    }
                    Action::Deny => {
                        minus_all(reach.clone(), allow_reach.iter().flat_map(|x| &x.reach))
                    }
                    Action::Pass => reach.clone(),
                };
                let v = Rc::new(ReachAndEffect {
                    reach_id: ctx.intern_reach(&reach),
                    reach,
                    effective,
                });
                ctx.memo.borrow_mut().insert(key, v.clone());
                v
            }
        };
        if step.reach.is_empty() {
            continue;
        }
        match r.action {
            Action::Allow => {
                out.allow.extend(step.effective.iter().cloned());
                allow_id = ctx.extend_state(allow_id, step.reach_id);
                allow_reach.push(step.clone());
            }
            Action::Deny => {
                out.deny.extend(step.effective.iter().cloned());
                deny_id = ctx.extend_state(deny_id, step.reach_id);
                deny_reach.push(step.clone());
            }
            Action::Pass => {
                passed_id = ctx.extend_state(passed_id, step.reach_id);
                passed.push(step.clone());
            }
        }
        if !step.effective.is_empty() {
            out.rules.insert(i);
        }
        held += step.reach.len();
        let n = held + out.allow.len();
        if n > MAX_PIECES {
            return Err(CompileError::Limit {
                target: Target::Istio,
                what: format!(
                    "the rules reaching {} split into more than {MAX_PIECES} pieces of \
                     sources × ports (at {}: {})",
                    d.name,
                    r.loc(),
                    r.label()
                ),
            });
        }
    }
    out.allow = merge(out.allow);
    out.deny = merge(out.deny);
    Ok(out)
}

fn strings(v: impl IntoIterator<Item = String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

/// How source sets are written.
struct Emit {
    /// Every inventory principal, per namespace.
    ns_principals: HashMap<String, BTreeSet<u32>>,
    /// Interned principals.
    names: Vec<String>,
    /// How many principal lists were shortened to namespaces.
    shortened: Cell<usize>,
    /// Written source sets: `None` (every source) or the index of the `from` list in `lists`.
    written: RefCell<HashMap<Src, Option<usize>>>,
    /// The distinct `from` lists. A rule's `from` holds the list's index (a number, which no
    /// `from` list is) until the YAML is written: each list is rendered once per indentation
    /// and copied, not rebuilt and re-rendered for every class that shares it.
    lists: RefCell<Vec<Value>>,
    /// Rendered `from` lists per (index, indentation).
    rendered: RefCell<HashMap<(usize, usize), String>>,
}

impl Emit {
    /// The namespace of a principal `TD/ns/NS/sa/SA`.
    fn ns_of(p: &str) -> Option<&str> {
        let rest = &p[p.find("/ns/")? + 4..];
        Some(&rest[..rest.find("/sa/")?])
    }

    /// `(namespaces, other principals)`: a namespace whose every inventory principal (two or
    /// more) is in `p` is written as the namespace.
    fn split(&self, p: &BTreeSet<u32>) -> (Vec<String>, Vec<String>) {
        let ns_of = |x: u32| Emit::ns_of(&self.names[x as usize]);
        let mut whole: BTreeSet<&str> = BTreeSet::new();
        for &x in p {
            if let Some(ns) = ns_of(x)
                && !whole.contains(ns)
                && let Some(all) = self.ns_principals.get(ns)
                && all.len() >= 2
                && all.is_subset(p)
            {
                whole.insert(ns);
            }
        }
        if !whole.is_empty() {
            self.shortened.set(self.shortened.get() + 1);
        }
        let mut rest: Vec<String> = p
            .iter()
            .filter(|&&x| ns_of(x).is_none_or(|ns| !whole.contains(ns)))
            .map(|&x| self.names[x as usize].clone())
            .collect();
        rest.sort();
        (whole.into_iter().map(String::from).collect(), rest)
    }

    /// The `from` list of a source set (`None`: every source, no `from`).
    fn sources_json(&self, s: &Src) -> Option<Value> {
        let known = self.written.borrow().get(s).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.write_sources(s).map(|v| {
                    let mut lists = self.lists.borrow_mut();
                    lists.push(v);
                    lists.len() - 1
                });
                self.written.borrow_mut().insert(s.clone(), id);
                id
            }
        };
        id.map(Value::from)
    }

    /// Writes the `from` list with index `id` (see [`Emit::lists`]) as [`inline_or_block`]
    /// would write the list itself.
    fn write_list(&self, id: usize, indent: usize, out: &mut String) {
        if let Some(text) = self.rendered.borrow().get(&(id, indent)) {
            out.push_str(text);
            return;
        }
        let mut text = String::new();
        if let Some(v) = self.lists.borrow().get(id) {
            inline_or_block(v, indent, &mut text, self);
        }
        out.push_str(&text);
        self.rendered.borrow_mut().insert((id, indent), text);
    }

    fn write_sources(&self, s: &Src) -> Option<Value> {
        let mut out = Vec::new();
        let (nss, p) = self.split(&s.principals);
        let ips = s.ips.cidrs();
        if !s.neg {
            if !nss.is_empty() {
                out.push(json!({"source": {"namespaces": nss}}));
            }
            if !p.is_empty() {
                out.push(json!({"source": {"principals": p}}));
            }
            if !ips.is_empty() {
                out.push(json!({"source": {"ipBlocks": ips, "notPrincipals": ["*"]}}));
            }
        } else {
            if nss.is_empty() && p.is_empty() && ips.is_empty() {
                return None;
            }
            // Peers with a certificate other than the excluded principals…
            let mut a = Map::new();
            a.insert("principals".into(), json!(["*"]));
            if !nss.is_empty() {
                a.insert("notNamespaces".into(), strings(nss));
            }
            if !p.is_empty() {
                a.insert("notPrincipals".into(), strings(p));
            }
            out.push(json!({ "source": a }));
            // …and peers without one outside the excluded addresses.
            let mut b = Map::new();
            b.insert("notPrincipals".into(), json!(["*"]));
            if !ips.is_empty() {
                b.insert("notIpBlocks".into(), strings(ips));
            }
            out.push(json!({ "source": b }));
        }
        Some(Value::Array(out))
    }
}

fn port_list(set: &PortSet) -> Vec<String> {
    set.ranges()
        .iter()
        .flat_map(|&(a, b)| (a..=b).map(|p| p.to_string()))
        .collect()
}

fn count(set: &PortSet) -> usize {
    set.ranges()
        .iter()
        .map(|&(a, b)| (b - a) as usize + 1)
        .sum()
}

/// The `to` list of a port set (`None`: every port).
fn to_json(ports: &PortSet, dst: &str) -> Result<Option<Value>, CompileError> {
    let all = all_ports();
    if *ports == all {
        return Ok(None);
    }
    let rest = all.subtract(ports);
    let (key, list) = if count(ports) <= count(&rest) {
        ("ports", ports)
    } else {
        ("notPorts", &rest)
    };
    if count(list) > MAX_LISTED_PORTS {
        return Err(CompileError::Limit {
            target: Target::Istio,
            what: format!(
                "the TCP ports allowed or denied to {dst} ({}) would list {} ports one by one \
                 (Istio's `ports` takes single ports; at most {MAX_LISTED_PORTS})",
                bulkhead_core::conn::fmt_ports(ports),
                count(list)
            ),
        });
    }
    Ok(Some(json!([{ "operation": { key: port_list(list) } }])))
}

fn rules_json(emit: &Emit, pieces: &[Piece], dst: &str) -> Result<Vec<Value>, CompileError> {
    let mut out = Vec::new();
    for p in pieces {
        let mut rule = Map::new();
        if let Some(f) = emit.sources_json(&p.src) {
            rule.insert("from".into(), f);
        }
        if let Some(t) = to_json(&p.ports, dst)? {
            rule.insert("to".into(), t);
        }
        out.push(Value::Object(rule));
    }
    Ok(out)
}

/// `matchLabels` sets that pick exactly `members` among the inventory workloads of their
/// namespace (`ns_workloads`), or `None`.
fn selectors(members: &[&Identity], ns_workloads: &[&Identity]) -> Option<Vec<Labels>> {
    let picks = |m: &Labels| -> Vec<&str> {
        ns_workloads
            .iter()
            .filter(|w| m.iter().all(|(k, v)| w.labels.get(k) == Some(v)))
            .map(|w| w.name.as_str())
            .collect()
    };
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let common: Labels = members[0]
        .labels
        .iter()
        .filter(|(k, v)| members.iter().all(|m| m.labels.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let p = picks(&common);
    if p.iter().all(|n| names.contains(n)) {
        return Some(vec![common]);
    }
    let mut out: Vec<Labels> = Vec::new();
    for m in members {
        if !picks(&m.labels).iter().all(|n| names.contains(n)) {
            return None;
        }
        if !out.contains(&m.labels) {
            out.push(m.labels.clone());
        }
    }
    Some(out)
}

/// Compiles `intent` for `istio`.
pub fn compile_with(
    intent: &bulkhead_intent::Intent,
    opts: &Options,
    io: &IstioOptions,
) -> Result<Compiled, CompileError> {
    let lowered = Lowered::new(intent, Target::Istio, opts)?;
    let mut notes = Vec::new();
    let workloads: Vec<&Identity> = opts
        .inventory
        .iter()
        .filter(|id| matches!(id.kind, IdentityKind::Workload { .. }))
        .collect();
    let enforces_workloads = !lowered.enforced_workloads().is_empty();
    if workloads.is_empty() && enforces_workloads {
        return Err(CompileError::Limit {
            target: Target::Istio,
            what: "Istio names sources by service account and destinations by labels: an \
                   inventory of the cluster's workloads is required (--inventory)"
                .to_string(),
        });
    }
    if !lowered.enforced_hosts().is_empty() {
        notes.push(
            "istio: hosts of enforced segments are not in the mesh; they are enforced by the \
             nftables target"
                .to_string(),
        );
    }
    // Which workloads are enforced, observed, or neither (the evaluator's side modes).
    let seg_mode = |id: &Identity| -> Option<Mode> {
        let mut m = None;
        for s in &intent.segments {
            if s.selector.matches(id) {
                if s.mode == Mode::Enforce {
                    return Some(Mode::Enforce);
                }
                m = Some(Mode::Observe);
            }
        }
        m
    };
    let mut observed = 0usize;
    let mut enforced: Vec<&Identity> = Vec::new();
    for &w in &workloads {
        match seg_mode(w) {
            Some(Mode::Enforce) => {
                if w.namespace() == Some(io.root_namespace.as_str()) {
                    let seg = intent
                        .segments
                        .iter()
                        .find(|s| s.mode == Mode::Enforce && s.selector.matches(w));
                    return Err(CompileError::Unsupported {
                        target: Target::Istio,
                        loc: seg.map(|s| s.loc.clone()).unwrap_or_default(),
                        what: format!(
                            "enforcement of {}: it is in Istio's root namespace {}, where an \
                             AuthorizationPolicy applies to the whole mesh",
                            w.name, io.root_namespace
                        ),
                        hint: Some(
                            "leave the root namespace out of enforced segments, or set \
                             --istio-root-namespace"
                                .to_string(),
                        ),
                    });
                }
                enforced.push(w);
            }
            Some(Mode::Observe) => observed += 1,
            None => {}
        }
    }
    if observed > 0 {
        notes.push(format!(
            "istio: {observed} workload(s) only in observe-mode segments get no \
             AuthorizationPolicy: observe mode never blocks, and Istio's AUDIT action only \
             marks requests for a provider plugin (Stackdriver), so nothing is emitted for them"
        ));
    }
    let ctx = Ctx::new(&lowered, &opts.inventory, &io.trust_domain);
    // The rules whose `to` holds each enforced workload, through one match per distinct peer.
    let mut to_cache: HashMap<WorkloadSel, Vec<u32>> = HashMap::new();
    let enforced_index = SelIndex::new(enforced.iter().copied());
    let mut rules_of: Vec<Vec<u32>> = vec![Vec::new(); enforced.len()];
    for (i, r) in lowered.rules.iter().enumerate() {
        let mut hit: BTreeSet<u32> = BTreeSet::new();
        for p in &r.to {
            match p {
                LPeer::Any => hit.extend(0..enforced.len() as u32),
                LPeer::Workloads(sel) => {
                    let v = to_cache.entry(sel.clone()).or_insert_with(|| {
                        enforced_index
                            .candidates(sel)
                            .into_iter()
                            .filter(|&k| sel.matches(enforced[k]))
                            .map(|k| k as u32)
                            .collect()
                    });
                    hit.extend(v.iter().copied());
                }
                // Host and address peers never hold a Kubernetes workload.
                LPeer::Hosts { .. } | LPeer::Addresses(_) => {}
            }
        }
        for k in hit {
            rules_of[k as usize].push(i as u32);
        }
    }
    // Destinations with the same namespace, rules and TCP named ports are decided alike.
    type Key = (String, Vec<u32>, Vec<(String, u16)>);
    let mut by_key: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (k, d) in enforced.iter().enumerate() {
        let mut named: Vec<(String, u16)> = d
            .named_ports
            .iter()
            .filter(|np| np.protocol == Protocol::Tcp)
            .map(|np| (np.name.clone(), np.port))
            .collect();
        named.sort();
        let ns = d.namespace().unwrap_or_default().to_string();
        by_key
            .entry((ns, std::mem::take(&mut rules_of[k]), named))
            .or_default()
            .push(k);
    }
    // Then classes: the same namespace and the same regions.
    let mut classes: Vec<(String, Regions, Vec<&Identity>)> = Vec::new();
    let mut class_of: HashMap<(String, Vec<Piece>, Vec<Piece>), usize> = HashMap::new();
    for ((ns, rules, _), members) in by_key {
        let reg = regions(&ctx, enforced[members[0]], &rules)?;
        let key = (ns.clone(), reg.allow.clone(), reg.deny.clone());
        match class_of.get(&key) {
            Some(&c) => {
                classes[c].2.extend(members.iter().map(|&k| enforced[k]));
                let more = reg.rules;
                classes[c].1.rules.extend(more);
            }
            None => {
                class_of.insert(key, classes.len());
                classes.push((ns, reg, members.iter().map(|&k| enforced[k]).collect()));
            }
        }
    }
    for (_, _, members) in &mut classes {
        members.sort_by(|a, b| a.name.cmp(&b.name));
    }
    classes.sort_by(|a, b| (&a.0, &a.2[0].name).cmp(&(&b.0, &b.2[0].name)));
    // Notes on rules whose UDP/SCTP ports Istio cannot see.
    let mut non_tcp = BTreeSet::new();
    for (_, reg, _) in &classes {
        for &i in &reg.rules {
            let r = &lowered.rules[i];
            let other = match &r.ports {
                None => true,
                Some(lp) => {
                    lp.ranges.iter().any(|(p, _, _)| *p != Protocol::Tcp)
                        || lp
                            .named
                            .iter()
                            .any(|(p, _)| p.is_some_and(|p| p != Protocol::Tcp))
                }
            };
            if other {
                non_tcp.insert(i);
            }
        }
    }
    for i in non_tcp {
        let r = &lowered.rules[i];
        notes.push(format!(
            "{}: {}: istio authorises TCP only; the rule's UDP/SCTP part stays with the other \
             targets",
            r.loc(),
            r.label()
        ));
    }
    let mut ns_principals: HashMap<String, BTreeSet<u32>> = HashMap::new();
    for (id, p) in opts.inventory.iter().zip(&ctx.principals) {
        if let (Some(ns), Some(p)) = (id.namespace(), p) {
            ns_principals.entry(ns.to_string()).or_default().insert(*p);
        }
    }
    let emit = Emit {
        ns_principals,
        names: ctx.names.clone(),
        shortened: Cell::new(0),
        written: RefCell::default(),
        lists: RefCell::default(),
        rendered: RefCell::default(),
    };
    let rule_refs = |rules: &BTreeSet<usize>, action: Action| -> String {
        rules
            .iter()
            .map(|&i| &lowered.rules[i])
            .filter(|r| r.action == action)
            .map(|r| format!("{} {}", r.loc(), r.label()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let policy = |ns: &str,
                  name: String,
                  selector: &Labels,
                  action: &str,
                  rules: &[Value],
                  refs: String,
                  members: &str|
     -> Value {
        let mut spec = Map::new();
        if !selector.is_empty() {
            spec.insert("selector".into(), json!({ "matchLabels": selector }));
        }
        spec.insert("action".into(), json!(action));
        if !rules.is_empty() {
            spec.insert("rules".into(), Value::Array(rules.to_vec()));
        }
        let mut ann = Map::new();
        ann.insert("bulkhead.dev/workloads".into(), json!(members));
        if !refs.is_empty() {
            ann.insert("bulkhead.dev/rules".into(), json!(refs));
        }
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                "annotations": ann,
            },
            "spec": spec,
        })
    };
    let names = |members: &[&Identity]| {
        members
            .iter()
            .map(|m| workload_name(m))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let namespaces: BTreeSet<&str> = classes.iter().map(|c| c.0.as_str()).collect();
    for ns in namespaces {
        let mine: Vec<&(String, Regions, Vec<&Identity>)> =
            classes.iter().filter(|c| c.0 == ns).collect();
        let ns_workloads: Vec<&Identity> = workloads
            .iter()
            .copied()
            .filter(|w| w.namespace() == Some(ns))
            .collect();
        let all_members: Vec<&Identity> = mine.iter().flat_map(|c| c.2.iter().copied()).collect();
        let mut docs = Vec::new();
        // A base for the namespace: the pieces every class shares, under one selector that
        // picks exactly the enforced workloads of the namespace; each class then adds only what
        // it has beyond the base (policies of one action add up: the union is the class's own).
        let base_sel = match selectors(&all_members, &ns_workloads) {
            Some(v) if v.len() == 1 && mine.len() > 1 => v.into_iter().next(),
            _ => None,
        };
        let (base_allow, base_deny, base_rules) = match &base_sel {
            Some(_) => {
                let common = |f: &dyn Fn(&Regions) -> &Vec<Piece>| -> Vec<Piece> {
                    let sets: Vec<HashSet<&Piece>> =
                        mine.iter().map(|c| f(&c.1).iter().collect()).collect();
                    f(&mine[0].1)
                        .iter()
                        .filter(|p| sets.iter().all(|set| set.contains(p)))
                        .cloned()
                        .collect()
                };
                let rules: BTreeSet<usize> = mine[0]
                    .1
                    .rules
                    .iter()
                    .copied()
                    .filter(|r| mine.iter().all(|c| c.1.rules.contains(r)))
                    .collect();
                (common(&|r| &r.allow), common(&|r| &r.deny), rules)
            }
            None => (Vec::new(), Vec::new(), BTreeSet::new()),
        };
        if let Some(sel) = &base_sel {
            let who = format!("every enforced workload of namespace {ns}");
            if !base_deny.is_empty() {
                docs.push(policy(
                    ns,
                    "bulkhead-deny".to_string(),
                    sel,
                    "DENY",
                    &rules_json(&emit, &base_deny, &who)?,
                    rule_refs(&base_rules, Action::Deny),
                    &who,
                ));
            }
            // Always present: an ALLOW policy without rules is allow-nothing (default deny).
            docs.push(policy(
                ns,
                "bulkhead-allow".to_string(),
                sel,
                "ALLOW",
                &rules_json(&emit, &base_allow, &who)?,
                rule_refs(&base_rules, Action::Allow),
                &who,
            ));
        }
        let base_allow_set: HashSet<&Piece> = base_allow.iter().collect();
        let base_deny_set: HashSet<&Piece> = base_deny.iter().collect();
        for (_, reg, members) in &mine {
            let allow: Vec<Piece> = reg
                .allow
                .iter()
                .filter(|p| !base_allow_set.contains(p))
                .cloned()
                .collect();
            let deny: Vec<Piece> = reg
                .deny
                .iter()
                .filter(|p| !base_deny_set.contains(p))
                .cloned()
                .collect();
            if base_sel.is_some() && allow.is_empty() && deny.is_empty() {
                continue;
            }
            let sels = selectors(members, &ns_workloads).ok_or_else(|| CompileError::Limit {
                target: Target::Istio,
                what: format!(
                    "no matchLabels picks exactly {} among the workloads of namespace {ns} \
                     (another workload carries all their labels but is decided differently)",
                    members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
            let rules: BTreeSet<usize> = reg.rules.difference(&base_rules).copied().collect();
            let stem = format!("bulkhead-{}", workload_name(members[0]));
            let who = names(members);
            let allow_rules = rules_json(&emit, &allow, &members[0].name)?;
            let deny_rules = rules_json(&emit, &deny, &members[0].name)?;
            for (si, sel) in sels.iter().enumerate() {
                let suffix = if sels.len() > 1 {
                    format!("-{}", si + 1)
                } else {
                    String::new()
                };
                if !deny_rules.is_empty() {
                    docs.push(policy(
                        ns,
                        format!("{stem}-deny{suffix}"),
                        sel,
                        "DENY",
                        &deny_rules,
                        rule_refs(&rules, Action::Deny),
                        &who,
                    ));
                }
                // Without a base, this is the workload's allow-nothing default too.
                if !allow_rules.is_empty() || base_sel.is_none() {
                    docs.push(policy(
                        ns,
                        format!("{stem}-allow{suffix}"),
                        sel,
                        "ALLOW",
                        &allow_rules,
                        rule_refs(&rules, Action::Allow),
                        &who,
                    ));
                }
            }
        }
        let text = files.entry(format!("istio/{ns}.yaml")).or_default();
        for d in docs {
            if !text.is_empty() {
                text.push_str("---\n");
            }
            yaml(&d, 0, text, &emit);
        }
    }
    if emit.shortened.get() > 0 {
        notes.push(format!(
            "istio: {} source list(s) name every inventory service account of a namespace and \
             are written as `namespaces`/`notNamespaces`: service accounts created later in \
             those namespaces are covered too until the next compile",
            emit.shortened.get()
        ));
    }
    if !enforced.is_empty() {
        notes.push(
            "istio: principals come from mutual TLS; apply a PeerAuthentication in STRICT mode \
             to the enforced namespaces so that no workload of the mesh connects in plaintext"
                .to_string(),
        );
    }
    Ok(Compiled { files, notes })
}

/// Block-style YAML of a JSON value (strings in JSON's double-quoted form, which YAML reads
/// alike), keys in the value's order.
fn yaml(v: &Value, indent: usize, out: &mut String, emit: &Emit) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&scalar_key(k));
                out.push(':');
                inline_or_block(val, indent, out, emit);
            }
        }
        Value::Array(a) => {
            for val in a {
                out.push_str(&pad);
                out.push('-');
                match val {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash's line, the rest indented under it.
                        let mut first = true;
                        for (k, x) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&" ".repeat(indent + 2));
                            }
                            out.push_str(&scalar_key(k));
                            out.push(':');
                            // A rule's `from`: the index of a list written once (see `Emit`).
                            match (k.as_str(), x.as_u64()) {
                                ("from", Some(id)) => emit.write_list(id as usize, indent + 2, out),
                                _ => inline_or_block(x, indent + 2, out, emit),
                            }
                        }
                    }
                    _ => inline_or_block(val, indent, out, emit),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

fn inline_or_block(val: &Value, indent: usize, out: &mut String, emit: &Emit) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(val, indent + 2, out, emit);
        }
        Value::Array(a) if !a.is_empty() && a.iter().any(|x| x.is_object()) => {
            out.push('\n');
            yaml(val, indent + 2, out, emit);
        }
        // Empty collections and lists of scalars in flow style.
        other => {
            out.push(' ');
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

fn scalar_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'));
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_core::{Operator, Requirement, Selector};

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(k: &str, op: Operator, vs: &[&str]) -> Requirement {
        Requirement::new(k, op, vs.iter().map(|v| v.to_string()).collect())
            .expect("a valid requirement")
    }

    /// The index's candidates hold every workload a selector picks (whatever its operators), and
    /// a selector with an `In` requirement is matched against fewer than all workloads.
    #[test]
    fn selector_index_candidates_cover_every_match() {
        let mut ids = Vec::new();
        for (i, (ns, app, tier)) in [
            ("n1", "a", "x"),
            ("n1", "b", "y"),
            ("n2", "a", "y"),
            ("n2", "c", "x"),
            ("n3", "b", "x"),
        ]
        .into_iter()
        .enumerate()
        {
            ids.push(Identity::workload(
                ns,
                &format!("w{i}"),
                labels(&[("app", app), ("tier", tier)]),
                labels(&[("kubernetes.io/metadata.name", ns), ("env", "prod")]),
            ));
        }
        // A host carrying the same labels is never a workload candidate.
        let mut host = ids[0].clone();
        host.kind = IdentityKind::Host;
        ids.push(host);
        let ix = SelIndex::new(&ids);
        let sel = |pods: Vec<Requirement>, nss: Vec<Requirement>| WorkloadSel {
            pods: (!pods.is_empty()).then(|| Selector::new([], pods).expect("valid")),
            namespaces: (!nss.is_empty()).then(|| Selector::new([], nss).expect("valid")),
        };
        let cases = [
            (sel(vec![req("app", Operator::In, &["a", "b"])], vec![]), 4),
            (sel(vec![req("app", Operator::In, &["z"])], vec![]), 0),
            (
                sel(
                    vec![req("tier", Operator::NotIn, &["x"])],
                    vec![req("kubernetes.io/metadata.name", Operator::In, &["n2"])],
                ),
                1,
            ),
            (
                sel(
                    vec![
                        req("app", Operator::In, &["a"]),
                        req("tier", Operator::In, &["y"]),
                    ],
                    vec![req("env", Operator::Exists, &[])],
                ),
                1,
            ),
            (
                sel(vec![req("tier", Operator::DoesNotExist, &[])], vec![]),
                0,
            ),
            (sel(vec![req("app", Operator::NotIn, &["c"])], vec![]), 4),
            (WorkloadSel::all(), 5),
        ];
        for (s, picked) in cases {
            let cand = ix.candidates(&s);
            let matched: Vec<usize> = (0..ids.len()).filter(|&i| s.matches(&ids[i])).collect();
            assert_eq!(matched.len(), picked, "{s:?}");
            assert!(
                matched.iter().all(|i| cand.contains(i)),
                "{s:?}: candidates {cand:?} miss some of {matched:?}"
            );
            assert!(cand.windows(2).all(|w| w[0] < w[1]), "{cand:?}");
            assert!(cand.iter().all(|&i| ids[i].kind != IdentityKind::Host));
        }
        // An `In` requirement narrows the candidates.
        let narrow = ix.candidates(&sel(vec![req("app", Operator::In, &["c"])], vec![]));
        assert_eq!(narrow, vec![3]);
    }
}
