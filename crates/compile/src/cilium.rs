//! The `cilium` target: `CiliumClusterwideNetworkPolicy` (`cilium.io/v2`).
//!
//! Cilium has no rule order, priority or pass (Cilium 1.17's CRD has no policy priority): per
//! endpoint and direction, an endpoint selected by a policy with rules for that direction (or
//! `enableDefaultDeny`) is default-deny, and a connection is allowed iff some allow rule matches
//! it and no deny rule does — deny wins regardless of order. The evaluator's first match with
//! `pass` is therefore rewritten into sets, exactly. Over connections `x = (source,
//! destination, port)`, with `M_r` the connections rule `r` matches:
//!
//! - `A_j = M_j − ⋃ { M_p : p a pass before j in j's tier }` for every `allow` rule `j`;
//! - `D_k = M_k − ⋃ { A_i : i an allow before k } − ⋃ { M_p : p a pass before k in k's tier }`
//!   for every `deny` rule `k`;
//! - the compiled policy allows `⋃ A − ⋃ D`, and enforced workloads are default-deny.
//!
//! Proof sketch, by the rule `f` that decides `x` in the evaluator: if `f` is an allow, no rule
//! of its tier before it matches `x`, so `x ∈ A_f`; a deny `k` before `f` either did not match
//! or was skipped by a pass of its own tier that matched (so `x ∉ D_k`), and a deny after `f`
//! subtracts `A_f`. If `f` is a deny, `x ∈ D_f` (an earlier allow either did not match or was
//! skipped by a matching pass of its tier, so `x ∉ A_i`). If no rule decides, an allow that
//! matches `x` was skipped by a matching pass of its tier, so `x ∉ A`. Hence allowed iff the
//! evaluator's chain ends in `allow`; `docs/compile.md` has the long form.
//!
//! The sets are unions of boxes (source × destination × ports). Each side is one term: `any`,
//! workloads matching a conjunction of label requirements on pod and namespace labels, or an
//! address set. Differences of terms are exact: a requirement's negation is a requirement
//! (`In`↔`NotIn`, `Exists`↔`DoesNotExist`, Kubernetes semantics: `NotIn` holds when the key
//! is absent), address sets subtract, port sets subtract. Two things cannot be subtracted
//! exactly: named ports (what they resolve to depends on the destination) and boxes past
//! [`MAX_BOXES`] per rule; both fail with [`CompileError::Unsupported`] naming both rules.
//!
//! Output: for each box, its egress side (subject: the source workloads, peer: the destination)
//! and its ingress side (subject: the destination workloads, peer: the source), subjects always
//! conjoined with an enforced segment's selector, so workloads that are unmanaged or only
//! observed are never selected; `egress`/`ingress` for `A`, `egressDeny`/`ingressDeny` for `D`.
//! One `CiliumClusterwideNetworkPolicy` per intent policy and subject, plus one per enforced
//! segment (`bulkhead-enforce-<segment>`) that makes its workloads default-deny both ways.
//! Observe-mode segments get nothing: Cilium has no per-policy audit mode (policy audit mode is
//! per endpoint or agent-wide), so nothing that could drop is emitted for them.
//!
//! Peers: workloads → `toEndpoints`/`fromEndpoints` (pod labels as `k8s:<key>`, namespace
//! labels as `k8s:io.cilium.k8s.namespace.labels.<key>`, the namespace name as
//! `k8s:io.kubernetes.pod.namespace`); addresses and hosts (their inventory addresses) →
//! `toCIDRSet`/`fromCIDRSet` (Cilium's CIDR rules never match cluster endpoints, as the
//! evaluator's CIDR peers never match pods), lists longer than four blocks as a
//! `CiliumCIDRGroup` (`cilium/ciliumcidrgroups.yaml`, `bulkhead-addresses-<n>`) referenced by
//! `cidrGroupRef`; `any` → `toEntities`/`fromEntities: [all]`.

use crate::lower::{
    LPeer, LRule, Lowered, NAMESPACE_NAME_LABEL, check_name, workload_part, yaml_doc,
};
use crate::{CompileError, Compiled, Options, Target};
use bulkhead_core::{ConnSet, IpSet, Operator, Protocol, Requirement};
use bulkhead_intent::{Action, IdentityKind, Intent, Loc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Boxes one rule may grow into by the rewrite before compilation gives up.
pub const MAX_BOXES: usize = 2048;
/// Cilium's `toPorts[].ports` holds at most this many entries (the CRD's `maxItems`).
const MAX_PORTS: usize = 40;
const API: &str = "cilium.io/v2";
const KIND: &str = "CiliumClusterwideNetworkPolicy";

/// One label requirement on a workload: on its own labels or on its namespace's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Lit {
    ns: bool,
    req: Requirement,
}

impl Lit {
    fn negate(&self) -> Lit {
        let op = match self.req.op {
            Operator::In => Operator::NotIn,
            Operator::NotIn => Operator::In,
            Operator::Exists => Operator::DoesNotExist,
            Operator::DoesNotExist => Operator::Exists,
        };
        Lit {
            ns: self.ns,
            req: Requirement {
                key: self.req.key.clone(),
                op,
                values: self.req.values.clone(),
            },
        }
    }

    /// True when no label set satisfies both.
    fn contradicts(&self, o: &Lit) -> bool {
        if self.ns != o.ns || self.req.key != o.req.key {
            return false;
        }
        use Operator::*;
        let (a, b) = (&self.req, &o.req);
        let disjoint = |x: &[String], y: &[String]| !x.iter().any(|v| y.contains(v));
        let subset = |x: &[String], y: &[String]| x.iter().all(|v| y.contains(v));
        match (a.op, b.op) {
            (In, In) => disjoint(&a.values, &b.values),
            (In, NotIn) => subset(&a.values, &b.values),
            (NotIn, In) => subset(&b.values, &a.values),
            (In | Exists, DoesNotExist) | (DoesNotExist, In | Exists) => true,
            _ => false,
        }
    }
}

/// A conjunction of requirements (sorted, no duplicates); empty: every workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
struct Conj(Vec<Lit>);

impl Conj {
    /// The conjunction of both, or `None` when it is visibly empty.
    fn and(&self, o: &Conj) -> Option<Conj> {
        let mut v = self.0.clone();
        for l in &o.0 {
            if v.iter().any(|x| x.contradicts(l)) {
                return None;
            }
            // `k in A` and `k in B`: `k in A ∩ B` (not empty, or they would contradict).
            if l.req.op == Operator::In
                && let Some(x) = v
                    .iter_mut()
                    .find(|x| x.ns == l.ns && x.req.key == l.req.key && x.req.op == Operator::In)
            {
                x.req.values.retain(|a| l.req.values.contains(a));
                continue;
            }
            if !v.contains(l) {
                v.push(l.clone());
            }
        }
        v.sort();
        v.dedup();
        Some(Conj(v))
    }

    /// `self ∨ o` as one conjunction, when they differ only in one `In` on the same key.
    fn merge(&self, o: &Conj) -> Option<Conj> {
        if self.0.len() != o.0.len() {
            return None;
        }
        let diff: Vec<usize> = (0..self.0.len()).filter(|&i| self.0[i] != o.0[i]).collect();
        match diff[..] {
            [] => Some(self.clone()),
            [i] => {
                let (a, b) = (&self.0[i], &o.0[i]);
                if a.ns != b.ns
                    || a.req.key != b.req.key
                    || a.req.op != Operator::In
                    || b.req.op != Operator::In
                {
                    return None;
                }
                let mut c = self.clone();
                let vals = &mut c.0[i].req.values;
                vals.extend(b.req.values.iter().cloned());
                vals.sort();
                vals.dedup();
                c.0.sort();
                Some(c)
            }
            _ => None,
        }
    }

    fn of(w: &crate::lower::WorkloadSel) -> Option<Conj> {
        let mut c = Conj::default();
        for (ns, s) in [(true, &w.namespaces), (false, &w.pods)] {
            for r in s.iter().flat_map(|s| s.requirements()) {
                c = c.and(&Conj(vec![Lit { ns, req: r.clone() }]))?;
            }
        }
        Some(c)
    }
}

/// One side of a box.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    /// Every workload, host and address.
    Any,
    Workloads(Conj),
    /// Addresses (hosts' and external), never pods.
    Addrs(IpSet),
}

impl Term {
    fn and(&self, o: &Term) -> Option<Term> {
        match (self, o) {
            (Term::Any, x) | (x, Term::Any) => Some(x.clone()),
            (Term::Workloads(a), Term::Workloads(b)) => a.and(b).map(Term::Workloads),
            (Term::Addrs(a), Term::Addrs(b)) => {
                let i = a.intersect(b);
                (!i.is_empty()).then_some(Term::Addrs(i))
            }
            _ => None,
        }
    }

    fn minus(&self, o: &Term) -> Vec<Term> {
        match (self, o) {
            (_, Term::Any) => vec![],
            (Term::Any, Term::Workloads(_)) => {
                let mut v = vec![Term::Addrs(IpSet::all())];
                v.extend(Term::Workloads(Conj::default()).minus(o));
                v
            }
            (Term::Any, Term::Addrs(s)) => {
                let mut v = vec![Term::Workloads(Conj::default())];
                let rest = IpSet::all().subtract(s);
                if !rest.is_empty() {
                    v.push(Term::Addrs(rest));
                }
                v
            }
            (Term::Workloads(a), Term::Workloads(b)) => {
                if a.and(b).is_none() {
                    return vec![self.clone()];
                }
                // a − (b1 ∧ … ∧ bn) = ⋃_i a ∧ b1 ∧ … ∧ b(i−1) ∧ ¬bi, disjoint pieces.
                let mut out = Vec::new();
                let mut prefix = a.clone();
                for l in &b.0 {
                    if !a.0.contains(l)
                        && let Some(c) = prefix.and(&Conj(vec![l.negate()]))
                    {
                        out.push(Term::Workloads(c));
                    }
                    match prefix.and(&Conj(vec![l.clone()])) {
                        Some(p) => prefix = p,
                        None => break,
                    }
                }
                out
            }
            (Term::Addrs(a), Term::Addrs(b)) => {
                let d = a.subtract(b);
                if d.is_empty() {
                    vec![]
                } else {
                    vec![Term::Addrs(d)]
                }
            }
            _ => vec![self.clone()],
        }
    }
}

/// A box's ports: `None` every port of every protocol; else numbered ports and named ports.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ports {
    conns: ConnSet,
    named: Vec<(Option<Protocol>, String)>,
}

impl Ports {
    fn all() -> Ports {
        Ports {
            conns: ConnSet::all(),
            named: vec![],
        }
    }

    fn is_all(&self) -> bool {
        self.conns.is_all()
    }

    /// `Err(())`: named ports make the answer depend on the destination.
    fn and(&self, o: &Ports) -> Result<Option<Ports>, ()> {
        if o.is_all() {
            return Ok(Some(self.clone()));
        }
        if self.is_all() {
            return Ok(Some(o.clone()));
        }
        if !self.named.is_empty() || !o.named.is_empty() {
            return Err(());
        }
        let c = self.conns.intersect(&o.conns);
        Ok((!c.is_empty()).then_some(Ports {
            conns: c,
            named: vec![],
        }))
    }

    fn minus(&self, o: &Ports) -> Result<Option<Ports>, ()> {
        if o.is_all() {
            return Ok(None);
        }
        if !self.named.is_empty() || !o.named.is_empty() {
            return Err(());
        }
        let c = self.conns.subtract(&o.conns);
        Ok((!c.is_empty()).then_some(Ports {
            conns: c,
            named: vec![],
        }))
    }
}

#[derive(Clone, Debug)]
struct Cube {
    src: Term,
    dst: Term,
    ports: Ports,
}

impl Cube {
    /// `self − o` as disjoint cubes. `Err(())`: named ports in the way.
    fn minus(&self, o: &Cube) -> Result<Vec<Cube>, ()> {
        let (Some(si), Some(di)) = (self.src.and(&o.src), self.dst.and(&o.dst)) else {
            return Ok(vec![self.clone()]);
        };
        if self.ports.and(&o.ports)?.is_none() {
            return Ok(vec![self.clone()]);
        }
        let mut out = Vec::new();
        for s in self.src.minus(&o.src) {
            out.push(Cube {
                src: s,
                dst: self.dst.clone(),
                ports: self.ports.clone(),
            });
        }
        for d in self.dst.minus(&o.dst) {
            out.push(Cube {
                src: si.clone(),
                dst: d,
                ports: self.ports.clone(),
            });
        }
        if let Some(p) = self.ports.minus(&o.ports)? {
            out.push(Cube {
                src: si,
                dst: di,
                ports: p,
            });
        }
        Ok(out)
    }
}

/// A rule's matches as cubes (`from` × `to` × ports).
fn cubes(r: &LRule, has_hosts: bool) -> Result<Vec<Cube>, CompileError> {
    let side = |peers: &[LPeer]| -> Result<Vec<Term>, CompileError> {
        let mut out = Vec::new();
        for p in peers {
            match p {
                LPeer::Any => out.push(Term::Any),
                LPeer::Workloads(w) => out.extend(Conj::of(w).map(Term::Workloads)),
                LPeer::Hosts {
                    selector,
                    addresses,
                } => {
                    if !has_hosts {
                        return Err(r.hosts_without_inventory(Target::Cilium, selector));
                    }
                    if !addresses.is_empty() {
                        out.push(Term::Addrs(addresses.clone()));
                    }
                }
                LPeer::Addresses(s) => {
                    if !s.is_empty() {
                        out.push(Term::Addrs(s.clone()));
                    }
                }
            }
        }
        Ok(out)
    };
    let ports = match &r.ports {
        None => Ports::all(),
        Some(p) => {
            let mut conns = ConnSet::none();
            for &(pr, a, b) in &p.ranges {
                conns = conns.union(&ConnSet::ports(pr, bulkhead_core::PortSet::range(a, b)));
            }
            Ports {
                conns,
                named: p.named.clone(),
            }
        }
    };
    let (from, to) = (side(&r.from)?, side(&r.to)?);
    let mut out = Vec::new();
    for s in &from {
        for d in &to {
            out.push(Cube {
                src: s.clone(),
                dst: d.clone(),
                ports: ports.clone(),
            });
        }
    }
    Ok(out)
}

/// `region − sub`, failing with both rules named.
fn subtract(
    region: Vec<Cube>,
    sub: &[Cube],
    r: &LRule,
    by: &LRule,
) -> Result<Vec<Cube>, CompileError> {
    let mut region = region;
    for s in sub {
        let mut next = Vec::new();
        for c in &region {
            let pieces = c.minus(s).map_err(|()| CompileError::Unsupported {
                target: Target::Cilium,
                loc: r.loc().clone(),
                what: format!(
                    "{} after {} ({}) exactly: named ports overlap ports of the other rule, and Cilium has no rule order to keep the first match",
                    r.label(),
                    by.label(),
                    by.loc()
                ),
                hint: Some("use numbered ports in one of the two rules".into()),
            })?;
            next.extend(pieces);
        }
        if next.len() > MAX_BOXES {
            return Err(CompileError::Unsupported {
                target: Target::Cilium,
                loc: r.loc().clone(),
                what: format!(
                    "{} after {} ({}): rewriting the first match into Cilium's deny-wins sets needs more than {MAX_BOXES} selectors",
                    r.label(),
                    by.label(),
                    by.loc()
                ),
                hint: Some("narrow the rules' peers or ports, or use the calico target".into()),
            });
        }
        region = next;
    }
    Ok(region)
}

/// The Cilium label key of a requirement.
fn key(l: &Lit) -> String {
    if l.ns && l.req.key == NAMESPACE_NAME_LABEL {
        "k8s:io.kubernetes.pod.namespace".to_string()
    } else if l.ns {
        format!("k8s:io.cilium.k8s.namespace.labels.{}", l.req.key)
    } else {
        format!("k8s:{}", l.req.key)
    }
}

/// A Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-`, `_`, `.`
/// inside (what Cilium's CRD and the API server accept).
fn check_value(v: &str) -> Result<(), CompileError> {
    let ok = v.len() <= 63
        && (v.is_empty()
            || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))));
    if ok {
        Ok(())
    } else {
        Err(CompileError::Limit {
            target: Target::Cilium,
            what: format!(
                "label value {v:?} is not a Kubernetes label value (at most 63 characters of letters, digits, '-', '_', '.')"
            ),
        })
    }
}

/// A conjunction as a Cilium `EndpointSelector`.
fn selector(c: &Conj) -> Result<Value, CompileError> {
    for l in &c.0 {
        for v in &l.req.values {
            check_value(v)?;
        }
    }
    let mut labels = Map::new();
    let mut exprs = Vec::new();
    for l in &c.0 {
        if l.req.op == Operator::In && l.req.values.len() == 1 && !labels.contains_key(&key(l)) {
            labels.insert(key(l), json!(l.req.values[0]));
        } else {
            let op = match l.req.op {
                Operator::In => "In",
                Operator::NotIn => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
            };
            let mut e = json!({"key": key(l), "operator": op});
            if !l.req.values.is_empty() {
                e["values"] = json!(l.req.values);
            }
            exprs.push(e);
        }
    }
    let mut m = Map::new();
    if !labels.is_empty() {
        m.insert("matchLabels".into(), Value::Object(labels));
    }
    if !exprs.is_empty() {
        m.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Ok(Value::Object(m))
}

/// `toPorts` of a box (`None`: every port of every protocol, no `toPorts`).
fn to_ports(p: &Ports) -> Option<Value> {
    if p.is_all() {
        return None;
    }
    let mut entries = Vec::new();
    for (pr, a, b) in crate::lower::ranges_of(&p.conns) {
        let mut e = json!({"port": a.to_string(), "protocol": pr.as_str()});
        if b != a {
            e["endPort"] = json!(b);
        }
        entries.push(e);
    }
    for (pr, name) in &p.named {
        let protos: Vec<&str> = match pr {
            Some(pr) => vec![pr.as_str()],
            None => Protocol::ALL.iter().map(|p| p.as_str()).collect(),
        };
        for pr in protos {
            entries.push(json!({"port": name, "protocol": pr}));
        }
    }
    Some(Value::Array(
        entries
            .chunks(MAX_PORTS)
            .map(|c| json!({"ports": c}))
            .collect(),
    ))
}

/// The peer part of a Cilium rule, `to*` or `from*`.
fn peer(t: &Term, dir: &str, groups: &mut Groups) -> Result<Map<String, Value>, CompileError> {
    let mut m = Map::new();
    match t {
        Term::Any => {
            m.insert(format!("{dir}Entities"), json!(["all"]));
        }
        Term::Workloads(c) => {
            m.insert(format!("{dir}Endpoints"), json!([selector(c)?]));
        }
        Term::Addrs(s) => {
            m.insert(format!("{dir}CIDRSet"), Value::Array(cidr_set(s, groups)));
        }
    }
    Ok(m)
}

/// An address set as `CIDRSet` entries: per family, the set's own blocks, or the whole family
/// with `except` blocks when that is shorter (a guardrail's "everyone but …").
fn cidr_set(s: &IpSet, groups: &mut Groups) -> Vec<Value> {
    if let Some(v) = groups.cache.get(s) {
        return v.clone();
    }
    let mut out = Vec::new();
    let all = IpSet::all();
    let v4 = |r: &IpSet| IpSet {
        v4: r.v4.clone(),
        v6: Default::default(),
    };
    let v6 = |r: &IpSet| IpSet {
        v4: Default::default(),
        v6: r.v6.clone(),
    };
    for (part, whole, root) in [(v4(s), v4(&all), "0.0.0.0/0"), (v6(s), v6(&all), "::/0")] {
        if part.is_empty() {
            continue;
        }
        let own = part.cidrs();
        // The complement has about as many ranges as the set, one fewer when the set touches
        // both ends of the family: only then can `except` be shorter.
        let rest = whole.subtract(&part);
        let ranges = |r: &IpSet| r.v4.ranges().len() + r.v6.ranges().len();
        if ranges(&rest) < ranges(&part) || own.len() > 2 * ranges(&part) {
            let holes = rest.cidrs();
            if holes.len() + 1 < own.len() {
                out.push(json!({"cidr": root, "except": holes}));
                continue;
            }
        }
        out.extend(own.into_iter().map(|c| json!({"cidr": c})));
    }
    // Long lists (a segment's hosts) go to a CiliumCIDRGroup, referenced by name.
    if out.len() > GROUP_OVER && out.iter().all(|e| e.get("except").is_none()) {
        let name = format!("bulkhead-addresses-{}", groups.sets.len() + 1);
        groups.sets.push((name.clone(), s.cidrs()));
        out = vec![json!({"cidrGroupRef": name})];
    }
    groups.cache.insert(s.clone(), out.clone());
    out
}

/// Cilium rules per object; more are split over `-part<n>` objects (keeps every object well
/// below the API server's request size limit).
pub const MAX_RULES_PER_OBJECT: usize = 300;

/// Address lists longer than this become a `CiliumCIDRGroup`.
const GROUP_OVER: usize = 4;

/// The `CiliumCIDRGroup`s, in order of first use, and the rendering of each address set.
#[derive(Default)]
struct Groups {
    sets: Vec<(String, Vec<String>)>,
    cache: std::collections::HashMap<IpSet, Vec<Value>>,
}

/// The workloads of a term (subjects are workloads only).
fn workloads(t: &Term) -> Option<Conj> {
    match t {
        Term::Any => Some(Conj::default()),
        Term::Workloads(c) => Some(c.clone()),
        Term::Addrs(_) => None,
    }
}

/// One policy object being built: its subject and rule lists.
#[derive(Default)]
struct Obj {
    lists: BTreeMap<&'static str, Vec<Value>>,
    seen: std::collections::HashSet<(&'static str, String)>,
    rules: Vec<String>,
}

/// Compiles `intent` for `cilium`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let low = Lowered::new(intent, Target::Cilium, opts)?;
    let has_hosts = opts.inventory.iter().any(|i| i.kind == IdentityKind::Host);
    let mut notes = Vec::new();
    let enforced: Vec<(String, Conj, Loc)> = low
        .enforced
        .iter()
        .filter_map(|s| {
            let w = workload_part(&s.selector)?;
            // `k8s:io.kubernetes.pod.namespace` exists on every pod and on nothing else: a
            // subject never selects the host or Cilium's reserved endpoints, even for `{}`.
            let pods_only = Conj(vec![Lit {
                ns: true,
                req: Requirement {
                    key: NAMESPACE_NAME_LABEL.to_string(),
                    op: Operator::Exists,
                    values: vec![],
                },
            }]);
            let c = Conj::of(&w)?.and(&pods_only)?;
            Some((s.name().to_string(), c, s.loc.clone()))
        })
        .collect();
    // Enforced segments that differ in one `In` on the same key share subjects
    // (`segment in (cards, payments)`): fewer, equivalent objects.
    let mut subjects: Vec<Conj> = Vec::new();
    for (_, c, _) in &enforced {
        match subjects.iter_mut().find_map(|s| s.merge(c).map(|m| (s, m))) {
            Some((s, m)) => *s = m,
            None => subjects.push(c.clone()),
        }
    }
    for s in &low.enforced {
        if s.selector.hosts.is_some() {
            notes.push(format!(
                "cilium: segment {} selects hosts: Cilium policies here select its Kubernetes workloads only; its hosts are enforced by the nftables target",
                s.name()
            ));
        }
    }
    if !low.observed.is_empty() {
        notes.push(format!(
            "cilium: observe-mode segments ({}) get no Cilium objects: Cilium has no per-policy audit mode, and nothing that could drop may select them (watch them with policy audit mode per endpoint, or bulkhead's own observe reports)",
            low.observed
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // The rewrite: A for allows, D for denies.
    let mut matched: Vec<Vec<Cube>> = Vec::with_capacity(low.rules.len());
    for r in &low.rules {
        matched.push(cubes(r, has_hosts)?);
    }
    let mut allow_sets: Vec<(usize, Vec<Cube>)> = Vec::new();
    let mut region: Vec<(usize, bool, Vec<Cube>)> = Vec::new();
    for (j, r) in low.rules.iter().enumerate() {
        if r.action == Action::Pass {
            continue;
        }
        let mut set = matched[j].clone();
        // Passes before it in its tier.
        for (p, pr) in low.rules[..j].iter().enumerate() {
            if pr.action == Action::Pass && pr.tier == r.tier {
                set = subtract(set, &matched[p], r, pr)?;
            }
        }
        if r.action == Action::Deny {
            for (i, a) in &allow_sets {
                set = subtract(set, a, r, &low.rules[*i])?;
            }
            region.push((j, true, set));
        } else {
            allow_sets.push((j, set.clone()));
            region.push((j, false, set));
        }
        if matched[j].is_empty() {
            notes.push(format!(
                "cilium: {} ({}) matches nothing here (a peer picks no host of the inventory)",
                r.label(),
                r.loc()
            ));
        }
    }

    // Objects per intent policy and subject.
    let mut objs: BTreeMap<String, (Obj, String, Value, String)> = BTreeMap::new();
    let mut subject_index: BTreeMap<(String, Conj), usize> = BTreeMap::new();
    let mut groups = Groups::default();
    for (j, deny, set) in &region {
        let r = &low.rules[*j];
        for c in set {
            for (dir, subj, other, list) in [
                (
                    "to",
                    &c.src,
                    &c.dst,
                    if *deny { "egressDeny" } else { "egress" },
                ),
                (
                    "from",
                    &c.dst,
                    &c.src,
                    if *deny { "ingressDeny" } else { "ingress" },
                ),
            ] {
                let Some(sw) = workloads(subj) else { continue };
                for e in &subjects {
                    let Some(s) = sw.and(e) else { continue };
                    let pname = r.policy.name().to_string();
                    let n = subject_index.len();
                    let idx = *subject_index.entry((pname.clone(), s.clone())).or_insert(n);
                    let name = format!("bulkhead-{}-{}-{idx}", r.tier, pname);
                    let entry = match objs.entry(name) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => v.insert((
                            Obj::default(),
                            r.policy.loc.to_string(),
                            selector(&s)?,
                            pname.clone(),
                        )),
                    };
                    let mut rule = peer(other, dir, &mut groups)?;
                    if let Some(tp) = to_ports(&c.ports) {
                        rule.insert("toPorts".into(), tp);
                    }
                    let v = Value::Object(rule);
                    if entry.0.seen.insert((list, v.to_string())) {
                        entry.0.lists.entry(list).or_default().push(v);
                    }
                    let tag = format!("{} {}", r.policy.rule_label(r.index), r.loc());
                    if entry.0.rules.last() != Some(&tag) && !entry.0.rules.contains(&tag) {
                        entry.0.rules.push(tag);
                    }
                }
            }
        }
    }

    let mut docs: Vec<(String, Value)> = Vec::new();
    for (seg, e, loc) in &enforced {
        let name = format!("bulkhead-enforce-{seg}");
        check_name(Target::Cilium, &name)?;
        docs.push((
            name.clone(),
            json!({"apiVersion": API, "kind": KIND,
                "metadata": {"name": name,
                    "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                    "annotations": {"bulkhead.dev/source": loc.to_string(), "bulkhead.dev/segment": seg}},
                "spec": {
                    "description": format!("Bulkhead: segment {seg} is enforced: default deny both ways."),
                    "endpointSelector": selector(e)?,
                    "enableDefaultDeny": {"ingress": true, "egress": true},
                    "ingress": [{}],
                    "egress": [{}]}}),
        ));
    }
    for (base, (obj, loc, subject, pname)) in objs {
        // Cilium ORs its rules: an object's rules split over several objects mean the same.
        let all: Vec<(&str, Value)> = obj
            .lists
            .into_iter()
            .flat_map(|(k, v)| v.into_iter().map(move |r| (k, r)))
            .collect();
        let parts = all.len().div_ceil(MAX_RULES_PER_OBJECT).max(1);
        for (k, chunk) in all.chunks(MAX_RULES_PER_OBJECT).enumerate() {
            let name = if parts == 1 {
                base.clone()
            } else {
                format!("{base}-part{}", k + 1)
            };
            check_name(Target::Cilium, &name)?;
            let mut spec = Map::new();
            spec.insert(
                "description".into(),
                json!(format!("Bulkhead policy {pname}")),
            );
            spec.insert("endpointSelector".into(), subject.clone());
            // Only the enforce objects switch default deny on; these never widen it.
            spec.insert(
                "enableDefaultDeny".into(),
                json!({"ingress": false, "egress": false}),
            );
            for (list, r) in chunk {
                spec.entry(list.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("a rule list")
                    .push(r.clone());
            }
            docs.push((
                name.clone(),
                json!({"apiVersion": API, "kind": KIND,
                "metadata": {"name": name,
                    "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                    "annotations": {"bulkhead.dev/source": loc, "bulkhead.dev/policy": pname,
                                    "bulkhead.dev/rules": obj.rules.join("; ")}},
                "spec": spec}),
            ));
        }
    }
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = format!(
        "# Generated by `bulkhead compile --target cilium` from the intent; do not edit.\n# {} CiliumClusterwideNetworkPolicy object(s). See docs/compile.md, \"Cilium\".\n",
        docs.len()
    );
    for (_, d) in &docs {
        text.push_str("---\n");
        text.push_str(&yaml_doc(d));
    }
    let mut files = BTreeMap::new();
    files.insert(
        "cilium/ciliumclusterwidenetworkpolicies.yaml".to_string(),
        text,
    );
    if !groups.sets.is_empty() {
        let mut text = format!(
            "# Generated by `bulkhead compile --target cilium` from the intent; do not edit.\n# {} CiliumCIDRGroup object(s): address sets the policies reference. Apply before the policies.\n",
            groups.sets.len()
        );
        for (name, cidrs) in &groups.sets {
            text.push_str("---\n");
            text.push_str(&yaml_doc(
                &json!({"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumCIDRGroup",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "bulkhead"}},
                "spec": {"externalCIDRs": cidrs}}),
            ));
        }
        files.insert("cilium/ciliumcidrgroups.yaml".to_string(), text);
    }
    Ok(Compiled { files, notes })
}
