//! The evaluator: decides a connection between two identities under an [`Intent`].
//!
//! Semantics (the long form is in `docs/intent.md`):
//! - Rules are evaluated tier by tier (guardrail, application, baseline); within a tier, policies
//!   by priority then name, rules in their order. The first rule whose `from` holds the source,
//!   whose `to` holds the destination and whose ports hold the connection decides: `allow` and
//!   `deny` end the evaluation, `pass` skips the rest of its tier.
//! - A connection needs both sides: the source's egress and the destination's ingress. A rule
//!   names both ends, so a deciding rule decides both sides alike; what differs per side is the
//!   side's mode. A side whose workload is in an `enforce` segment denies when no rule decided;
//!   a side only in `observe` segments turns a deny (explicit or default) into `WouldBlock`; a
//!   workload in no segment and an external address have no enforcement point of Bulkhead's, so
//!   their side always allows.
//! - The verdict is `Deny` if either side denies, else `WouldBlock` if either would block, else
//!   `Allow`.
//!
//! Speed: every rule's `from` and `to` are compiled once per identity into bit sets over the
//! rules ([`Profile`]); a decision ANDs two of them and walks the set bits in rule order.
//! [`Universe`] compiles profiles for many identities at once through a label index.

use crate::diag::Loc;
use crate::model::{Action, EntitySelector, Intent, Mode, Peer, PortMatch, Tier};
use bulkhead_core::{Bitset, ConnSet, IpSet, LabelBits, Labels, NamedPort, Protocol};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// What kind of thing an identity is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKind {
    /// A Kubernetes workload in a namespace whose labels are given.
    Workload {
        namespace: String,
        namespace_labels: Labels,
    },
    /// A host (VM, appliance) of the host inventory.
    Host,
    /// An address outside every inventory.
    External,
}

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// For messages: `namespace/name`, a host name or an address.
    pub name: String,
    pub kind: IdentityKind,
    pub labels: Labels,
    /// Hosts' and external identities' addresses (CIDR peers match these; pods never).
    pub addresses: Vec<IpAddr>,
    /// Named container ports (rules may name them).
    pub named_ports: Vec<NamedPort>,
    /// A Kubernetes workload's service account (`spec.serviceAccountName` of its pods; `None`
    /// when the inventory does not say, which Kubernetes reads as `default`). Identity-based
    /// targets (Istio's SPIFFE principals) need it.
    pub service_account: Option<String>,
}

impl Identity {
    pub fn workload(namespace: &str, name: &str, labels: Labels, namespace_labels: Labels) -> Self {
        Identity {
            name: format!("{namespace}/{name}"),
            kind: IdentityKind::Workload {
                namespace: namespace.to_string(),
                namespace_labels,
            },
            labels,
            addresses: Vec::new(),
            named_ports: Vec::new(),
            service_account: None,
        }
    }

    /// A host; its labels get the implicit [`HOST_NAME_LABEL`](crate::quarantine::HOST_NAME_LABEL)
    /// `: NAME` (unless the inventory sets it), so one host can be selected alone (quarantine).
    pub fn host(name: &str, mut labels: Labels, addresses: Vec<IpAddr>) -> Self {
        labels
            .entry(crate::quarantine::HOST_NAME_LABEL.to_string())
            .or_insert_with(|| name.to_string());
        Identity {
            name: name.to_string(),
            kind: IdentityKind::Host,
            labels,
            addresses,
            named_ports: Vec::new(),
            service_account: None,
        }
    }

    pub fn external(ip: IpAddr) -> Self {
        Identity {
            name: ip.to_string(),
            kind: IdentityKind::External,
            labels: Labels::new(),
            addresses: vec![ip],
            named_ports: Vec::new(),
            service_account: None,
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match &self.kind {
            IdentityKind::Workload { namespace, .. } => Some(namespace),
            _ => None,
        }
    }
}

impl EntitySelector {
    /// Does the selector pick this identity? (See [`EntitySelector`] for the rules.)
    pub fn matches(&self, id: &Identity) -> bool {
        match &id.kind {
            IdentityKind::Workload {
                namespace_labels, ..
            } => {
                (self.namespaces.is_some() || self.pods.is_some())
                    && self
                        .namespaces
                        .as_ref()
                        .is_none_or(|s| s.matches(namespace_labels))
                    && self.pods.as_ref().is_none_or(|s| s.matches(&id.labels))
            }
            IdentityKind::Host => self.hosts.as_ref().is_some_and(|s| s.matches(&id.labels)),
            IdentityKind::External => false,
        }
    }
}

/// A peer with segment names resolved to their selectors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Resolved {
    Any,
    Sel(EntitySelector),
    Ns(String),
    Cidr(IpSet),
}

impl Resolved {
    fn matches(&self, id: &Identity) -> bool {
        match self {
            Resolved::Any => true,
            Resolved::Sel(s) => s.matches(id),
            Resolved::Ns(n) => id.namespace() == Some(n.as_str()),
            Resolved::Cidr(set) => cidr_matches(set, id),
        }
    }
}

/// CIDR peers match hosts and external addresses by address, never pods.
pub(crate) fn cidr_matches(set: &IpSet, id: &Identity) -> bool {
    !matches!(id.kind, IdentityKind::Workload { .. })
        && id.addresses.iter().any(|a| set.contains(*a))
}

/// Why the evaluator cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A rule names a segment that does not exist.
    UnknownSegment { name: String, loc: Loc },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::UnknownSegment { name, loc } => {
                write!(f, "{loc}: unknown segment `{name}`")
            }
        }
    }
}

impl std::error::Error for EvalError {}

/// The verdict on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Verdict {
    Allow,
    Deny,
    /// Would be denied, but the side that denies is only in `observe` segments.
    WouldBlock,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::WouldBlock => "would-block",
        })
    }
}

/// A side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Side {
    /// The source's egress.
    Egress,
    /// The destination's ingress.
    Ingress,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Egress => "source egress",
            Side::Ingress => "destination ingress",
        })
    }
}

/// How one side of a connection is governed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SideMode {
    /// An external address: no enforcement point of its own.
    External,
    /// A workload or host in no segment: not governed (always allows on its side).
    Unmanaged,
    /// Only in `observe` segments: denies become `WouldBlock`.
    Observe,
    /// In at least one `enforce` segment: default deny.
    Enforce,
}

/// The rule that decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef {
    pub tier: Tier,
    /// Index into [`Intent::policies`].
    pub policy: usize,
    /// Index into the policy's rules.
    pub rule: usize,
    pub action: Action,
}

/// Why the verdict is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A rule decided (`Decision::rule`); `Decision::side` names the side that denied or would
    /// block, if any.
    Rule,
    /// No rule decided; `Decision::side` is in an enforced (deny) or observed (would block)
    /// segment.
    Default,
    /// Neither side is in a segment (or the other end is an external address), so nothing of
    /// Bulkhead's enforces: allowed. `Decision::rule` still names a deny rule that matched.
    Unmanaged,
}

/// A decision and the rule behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    pub verdict: Verdict,
    pub rule: Option<RuleRef>,
    pub reason: Reason,
    /// The side that denied or would block (`None` for allows).
    pub side: Option<Side>,
}

pub(crate) struct CompiledRule {
    pub(crate) policy: usize,
    pub(crate) index: usize,
    pub(crate) tier: Tier,
    pub(crate) action: Action,
    from: Vec<Resolved>,
    to: Vec<Resolved>,
    /// `None`: all ports.
    pub(crate) conns: Option<ConnSet>,
    pub(crate) named: Vec<(Option<Protocol>, String)>,
    /// First rule index after this rule's tier.
    pub(crate) tier_end: usize,
}

impl CompiledRule {
    fn ports_match(&self, proto: Protocol, port: u16, dst_named: &[NamedPort]) -> bool {
        match &self.conns {
            None => true,
            Some(c) => {
                c.contains(proto, port)
                    || self.named.iter().any(|(pr, name)| {
                        pr.is_none_or(|p| p == proto)
                            && dst_named.iter().any(|np| {
                                np.name == *name && np.protocol == proto && np.port == port
                            })
                    })
            }
        }
    }
}

/// An identity compiled against an evaluator's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    /// Bit `r`: the identity is in rule `r`'s `from`.
    pub(crate) src: Vec<u64>,
    /// Bit `r`: the identity is in rule `r`'s `to`.
    pub(crate) dst: Vec<u64>,
    pub mode: SideMode,
    pub(crate) named_ports: Vec<NamedPort>,
}

/// The compiled intent.
pub struct Evaluator {
    pub(crate) rules: Vec<CompiledRule>,
    segments: Vec<(EntitySelector, Mode)>,
    pub(crate) words: usize,
}

fn resolve(intent: &Intent, peer: &Peer, loc: &Loc) -> Result<Resolved, EvalError> {
    Ok(match peer {
        Peer::Any => Resolved::Any,
        Peer::Segment(name) => match intent.segment(name) {
            Some(s) => Resolved::Sel(s.selector.clone()),
            None => {
                return Err(EvalError::UnknownSegment {
                    name: name.clone(),
                    loc: loc.clone(),
                });
            }
        },
        Peer::Selector(s) => Resolved::Sel(s.clone()),
        Peer::Namespace(n) => Resolved::Ns(n.clone()),
        Peer::Cidr(set) => Resolved::Cidr(set.clone()),
    })
}

impl Evaluator {
    /// Compiles an intent. Fails on references to unknown segments (an intent with load or lint
    /// errors must not be evaluated).
    pub fn new(intent: &Intent) -> Result<Evaluator, EvalError> {
        let mut rules = Vec::new();
        for pi in intent.policy_order() {
            let p = &intent.policies[pi];
            for (ri, r) in p.rules.iter().enumerate() {
                let side = |v: &[crate::model::PeerAt]| -> Result<Vec<Resolved>, EvalError> {
                    v.iter()
                        .map(|pa| resolve(intent, &pa.peer, &pa.loc))
                        .collect()
                };
                let (conns, named) = match &r.ports {
                    None => (None, Vec::new()),
                    Some(ps) => {
                        let (c, named) = PortMatch::split(ps);
                        let named = named.into_iter().map(|(p, n)| (p, n.to_owned()));
                        (Some(c), named.collect())
                    }
                };
                rules.push(CompiledRule {
                    policy: pi,
                    index: ri,
                    tier: p.tier,
                    action: r.action,
                    from: side(&r.from)?,
                    to: side(&r.to)?,
                    conns,
                    named,
                    tier_end: 0,
                });
            }
        }
        let n = rules.len();
        for i in (0..n).rev() {
            rules[i].tier_end = if i + 1 < n && rules[i + 1].tier == rules[i].tier {
                rules[i + 1].tier_end
            } else {
                i + 1
            };
        }
        let segments = intent
            .segments
            .iter()
            .map(|s| (s.selector.clone(), s.mode))
            .collect();
        Ok(Evaluator {
            words: n.div_ceil(64).max(1),
            rules,
            segments,
        })
    }

    /// The ports where some rule's port match starts or stops, per protocol: every port range
    /// between two consecutive boundaries is decided alike by every rule (named ports are
    /// resolved per destination and added by the caller).
    pub fn port_boundaries(&self, proto: Protocol) -> Vec<u32> {
        let mut b = Vec::new();
        for r in &self.rules {
            if let Some(c) = &r.conns {
                for &(lo, hi) in c.ports_of(proto).ranges() {
                    b.push(lo as u32);
                    b.push(hi as u32 + 1);
                }
            }
        }
        b
    }

    /// Rules in evaluation order.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    fn mode_of(&self, id: &Identity, member: impl Fn(usize) -> bool) -> SideMode {
        if id.kind == IdentityKind::External {
            return SideMode::External;
        }
        let mut mode = SideMode::Unmanaged;
        for (i, (_, m)) in self.segments.iter().enumerate() {
            if member(i) {
                match m {
                    Mode::Enforce => return SideMode::Enforce,
                    Mode::Observe => mode = SideMode::Observe,
                }
            }
        }
        mode
    }

    /// Compiles one identity (matching every rule's peers directly).
    pub fn profile(&self, id: &Identity) -> Profile {
        let mut src = vec![0u64; self.words];
        let mut dst = vec![0u64; self.words];
        for (r, rule) in self.rules.iter().enumerate() {
            if rule.from.iter().any(|p| p.matches(id)) {
                src[r / 64] |= 1 << (r % 64);
            }
            if rule.to.iter().any(|p| p.matches(id)) {
                dst[r / 64] |= 1 << (r % 64);
            }
        }
        Profile {
            src,
            dst,
            mode: self.mode_of(id, |i| self.segments[i].0.matches(id)),
            named_ports: id.named_ports.clone(),
        }
    }

    /// Decides a connection from `src` to `dst` on `proto`/`port`.
    pub fn decide(&self, src: &Identity, dst: &Identity, proto: Protocol, port: u16) -> Decision {
        self.decide_profiles(&self.profile(src), &self.profile(dst), proto, port)
    }

    /// Decides a connection between two compiled identities.
    pub fn decide_profiles(
        &self,
        s: &Profile,
        d: &Profile,
        proto: Protocol,
        port: u16,
    ) -> Decision {
        let n = self.rules.len();
        let mut chain: Option<usize> = None;
        let mut i = 0usize;
        'walk: while i < n {
            let mut w = i / 64;
            let mut bits = s.src[w] & d.dst[w] & (!0u64 << (i % 64));
            while bits == 0 {
                w += 1;
                if w >= self.words {
                    break 'walk;
                }
                bits = s.src[w] & d.dst[w];
            }
            let r = w * 64 + bits.trailing_zeros() as usize;
            let rule = &self.rules[r];
            if !rule.ports_match(proto, port, &d.named_ports) {
                i = r + 1;
                continue;
            }
            match rule.action {
                Action::Allow | Action::Deny => {
                    chain = Some(r);
                    break;
                }
                Action::Pass => i = rule.tier_end,
            }
        }
        let action = chain.map(|r| self.rules[r].action);
        let side_verdict = |mode: SideMode| -> Verdict {
            match (mode, action) {
                // No enforcement point of Bulkhead's on this side.
                (SideMode::External | SideMode::Unmanaged, _) => Verdict::Allow,
                (_, Some(Action::Allow)) => Verdict::Allow,
                (SideMode::Observe, _) => Verdict::WouldBlock,
                (SideMode::Enforce, _) => Verdict::Deny,
            }
        };
        let (e, g) = (side_verdict(s.mode), side_verdict(d.mode));
        let (verdict, side) = if e == Verdict::Deny {
            (Verdict::Deny, Some(Side::Egress))
        } else if g == Verdict::Deny {
            (Verdict::Deny, Some(Side::Ingress))
        } else if e == Verdict::WouldBlock {
            (Verdict::WouldBlock, Some(Side::Egress))
        } else if g == Verdict::WouldBlock {
            (Verdict::WouldBlock, Some(Side::Ingress))
        } else {
            (Verdict::Allow, None)
        };
        let rule = chain.map(|r| {
            let c = &self.rules[r];
            RuleRef {
                tier: c.tier,
                policy: c.policy,
                rule: c.index,
                action: c.action,
            }
        });
        let reason = match (action, side) {
            (Some(_), Some(_)) | (Some(Action::Allow), None) => Reason::Rule,
            (None, Some(_)) => Reason::Default,
            (_, None) => Reason::Unmanaged,
        };
        Decision {
            verdict,
            rule,
            reason,
            side,
        }
    }

    /// One line for people: the verdict and what decided it.
    pub fn describe(&self, intent: &Intent, d: &Decision) -> String {
        let side = d.side.map(|s| format!(" at the {s}")).unwrap_or_default();
        match (d.reason, d.rule) {
            (Reason::Rule, Some(r)) => {
                let p = &intent.policies[r.policy];
                let loc = p
                    .rules
                    .get(r.rule)
                    .map(|x| x.loc.to_string())
                    .unwrap_or_default();
                format!(
                    "{}{side}: {} policy {} {} ({}) at {loc}",
                    d.verdict,
                    r.tier,
                    p.name(),
                    p.rule_label(r.rule),
                    r.action.to_string().to_lowercase()
                )
            }
            (Reason::Default, _) => format!(
                "{}{side}: no rule decided and the workload is in an {} segment",
                d.verdict,
                if d.verdict == Verdict::Deny {
                    "enforced"
                } else {
                    "observed"
                }
            ),
            (_, Some(r)) => format!(
                "{}: {} policy {} {} matched, but neither end is in a segment",
                d.verdict,
                r.tier,
                intent.policies[r.policy].name(),
                intent.policies[r.policy].rule_label(r.rule)
            ),
            _ => format!(
                "{}: no rule decided and neither end is in a segment",
                d.verdict
            ),
        }
    }
}

/// Identities compiled together: profiles of every identity, built through a label index, for
/// deciding many edges (the digital twin, verification, lint).
pub struct Universe<'e> {
    pub(crate) ev: &'e Evaluator,
    pub identities: Vec<Identity>,
    profiles: Vec<Profile>,
    index: LabelIndex,
}

impl<'e> Universe<'e> {
    pub fn new(ev: &'e Evaluator, identities: Vec<Identity>) -> Self {
        let index = LabelIndex::new(&identities);
        let n = identities.len();
        let mut cache: HashMap<Resolved, Bitset> = HashMap::new();
        let mut src = vec![vec![0u64; ev.words]; n];
        let mut dst = vec![vec![0u64; ev.words]; n];
        for (r, rule) in ev.rules.iter().enumerate() {
            for (peers, out) in [(&rule.from, &mut src), (&rule.to, &mut dst)] {
                let mut set = Bitset::empty(n);
                for p in peers {
                    if !cache.contains_key(p) {
                        cache.insert(p.clone(), index.select(p, &identities));
                    }
                    if let Some(b) = cache.get(p) {
                        set.union_with(b);
                    }
                }
                for i in set.ones() {
                    out[i][r / 64] |= 1 << (r % 64);
                }
            }
        }
        let seg_sets: Vec<Bitset> = ev
            .segments
            .iter()
            .map(|(s, _)| index.select(&Resolved::Sel(s.clone()), &identities))
            .collect();
        let profiles = src
            .into_iter()
            .zip(dst)
            .enumerate()
            .map(|(i, (s, d))| Profile {
                src: s,
                dst: d,
                mode: ev.mode_of(&identities[i], |k| seg_sets[k].contains(i)),
                named_ports: identities[i].named_ports.clone(),
            })
            .collect();
        Universe {
            ev,
            identities,
            profiles,
            index,
        }
    }

    pub fn profile(&self, i: usize) -> &Profile {
        &self.profiles[i]
    }

    /// The evaluator the profiles were compiled against.
    pub fn evaluator(&self) -> &'e Evaluator {
        self.ev
    }

    /// Decides the edge between identities `src` and `dst` (indexes into `identities`).
    pub fn decide_edge(&self, src: usize, dst: usize, proto: Protocol, port: u16) -> Decision {
        self.ev
            .decide_profiles(&self.profiles[src], &self.profiles[dst], proto, port)
    }

    /// The identities a peer picks (segments resolved through `intent`); `None` for an unknown
    /// segment.
    pub fn select(&self, intent: &Intent, peer: &Peer) -> Option<Bitset> {
        let r = resolve(intent, peer, &Loc::default()).ok()?;
        Some(self.index.select(&r, &self.identities))
    }

    /// The identities any of `peers` picks (peers naming an unknown segment pick none).
    pub fn select_all(&self, intent: &Intent, peers: &[crate::model::PeerAt]) -> Bitset {
        let mut b = Bitset::empty(self.identities.len());
        for pa in peers {
            if let Some(s) = self.select(intent, &pa.peer) {
                b.union_with(&s);
            }
        }
        b
    }

    /// The identities an entity selector picks.
    pub fn select_entities(&self, sel: &EntitySelector) -> Bitset {
        self.index
            .select(&Resolved::Sel(sel.clone()), &self.identities)
    }
}

/// Identities by label, by namespace and by kind.
struct LabelIndex {
    n: usize,
    labels: LabelBits,
    by_ns: HashMap<String, (Labels, Bitset)>,
    workloads: Bitset,
    hosts: Bitset,
}

impl LabelIndex {
    fn new(ids: &[Identity]) -> Self {
        let n = ids.len();
        let mut idx = LabelIndex {
            n,
            labels: LabelBits::new(n),
            by_ns: HashMap::new(),
            workloads: Bitset::empty(n),
            hosts: Bitset::empty(n),
        };
        for (i, id) in ids.iter().enumerate() {
            idx.labels.add(i, &id.labels);
            match &id.kind {
                IdentityKind::Workload {
                    namespace,
                    namespace_labels,
                } => {
                    idx.workloads.insert(i);
                    idx.by_ns
                        .entry(namespace.clone())
                        .or_insert_with(|| (namespace_labels.clone(), Bitset::empty(n)))
                        .1
                        .insert(i);
                }
                IdentityKind::Host => idx.hosts.insert(i),
                IdentityKind::External => {}
            }
        }
        idx
    }

    fn select(&self, p: &Resolved, ids: &[Identity]) -> Bitset {
        match p {
            Resolved::Any => Bitset::full(self.n),
            Resolved::Ns(ns) => self
                .by_ns
                .get(ns)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| Bitset::empty(self.n)),
            Resolved::Cidr(set) => {
                let mut b = Bitset::empty(self.n);
                for (i, id) in ids.iter().enumerate() {
                    if cidr_matches(set, id) {
                        b.insert(i);
                    }
                }
                b
            }
            Resolved::Sel(s) => {
                let mut out = Bitset::empty(self.n);
                if s.namespaces.is_some() || s.pods.is_some() {
                    let mut pods = self.workloads.clone();
                    if let Some(nsel) = &s.namespaces {
                        let mut in_ns = Bitset::empty(self.n);
                        for (labels, members) in self.by_ns.values() {
                            if nsel.matches(labels) {
                                in_ns.union_with(members);
                            }
                        }
                        pods.intersect_with(&in_ns);
                    }
                    if let Some(psel) = &s.pods {
                        pods.intersect_with(&self.labels.select(psel));
                    }
                    out.union_with(&pods);
                }
                if let Some(h) = &s.hosts {
                    let mut hosts = self.hosts.clone();
                    hosts.intersect_with(&self.labels.select(h));
                    out.union_with(&hosts);
                }
                out
            }
        }
    }
}
