//! What every cluster compiler starts from: the intent's rules in evaluation order with their
//! peers resolved to what a target can select (workload selectors, host addresses, address
//! sets), and who is enforced.
//!
//! The meaning the compilers keep is the evaluator's (`docs/intent.md`, "The evaluator"), read
//! as a dataplane: a connection is dropped exactly when the evaluator's verdict is `Deny`.
//! `WouldBlock` is an allow in the dataplane (observe mode never blocks). Per side:
//! - an `Unmanaged` or `External` side never drops: nothing of Bulkhead's enforces there, so a
//!   compiled object must never select a workload that is in no enforced segment in a way that
//!   can drop its traffic;
//! - an `Enforce` side drops unless the first matching rule (guardrail → application →
//!   baseline, `pass` skipping the rest of its tier) is an `allow`.

use crate::{CompileError, Options, Target};
use bulkhead_core::{ConnSet, IpSet, Protocol, Selector};
use bulkhead_intent::{
    Action, EntitySelector, Identity, IdentityKind, Intent, Loc, Mode, Peer, Policy, PortMatch,
    Rule, Segment, Tier,
};

/// The label every Kubernetes namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A set of Kubernetes workloads: those whose namespace's labels match `namespaces` and whose
/// own labels match `pods` (`None`: any).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WorkloadSel {
    pub namespaces: Option<Selector>,
    pub pods: Option<Selector>,
}

impl WorkloadSel {
    /// Every workload of every namespace.
    pub fn all() -> Self {
        WorkloadSel::default()
    }

    /// The workloads both select (the conjunction of their requirements).
    pub fn meet(&self, o: &WorkloadSel) -> WorkloadSel {
        fn and(a: &Option<Selector>, b: &Option<Selector>) -> Option<Selector> {
            match (a, b) {
                (None, None) => None,
                (Some(s), None) | (None, Some(s)) => Some(s.clone()),
                (Some(a), Some(b)) => Some(
                    Selector::new([], a.requirements().iter().chain(b.requirements()).cloned())
                        .expect("requirements of valid selectors stay valid"),
                ),
            }
        }
        WorkloadSel {
            namespaces: and(&self.namespaces, &o.namespaces),
            pods: and(&self.pods, &o.pods),
        }
    }

    pub fn matches(&self, id: &Identity) -> bool {
        match &id.kind {
            IdentityKind::Workload {
                namespace_labels, ..
            } => {
                self.namespaces
                    .as_ref()
                    .is_none_or(|s| s.matches(namespace_labels))
                    && self.pods.as_ref().is_none_or(|s| s.matches(&id.labels))
            }
            _ => false,
        }
    }
}

/// One side of a rule, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LPeer {
    /// Every workload, host and address.
    Any,
    /// Kubernetes workloads.
    Workloads(WorkloadSel),
    /// Inventory hosts chosen by labels, with the addresses the inventory gives them (empty
    /// without an inventory: a target that needs addresses says so).
    Hosts {
        selector: Selector,
        addresses: IpSet,
    },
    /// Addresses: external ones, and hosts' addresses inside (never pods).
    Addresses(IpSet),
}

/// A rule's ports: `None` = every port of every protocol; else numbered ranges per protocol
/// and named container ports of the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LPorts {
    /// `(protocol, first, last)`, in protocol then port order.
    pub ranges: Vec<(Protocol, u16, u16)>,
    /// `(protocol, name)`; protocol `None` takes the container port's own.
    pub named: Vec<(Option<Protocol>, String)>,
}

impl LPorts {
    pub fn of(ports: &[PortMatch]) -> LPorts {
        let (conns, named) = PortMatch::split(ports);
        LPorts {
            ranges: ranges_of(&conns),
            named: named.into_iter().map(|(p, n)| (p, n.to_string())).collect(),
        }
    }
}

/// `(protocol, first, last)` of a connection set.
pub fn ranges_of(c: &ConnSet) -> Vec<(Protocol, u16, u16)> {
    Protocol::ALL
        .iter()
        .flat_map(|&p| c.ports_of(p).ranges().iter().map(move |&(a, b)| (p, a, b)))
        .collect()
}

/// One rule in evaluation order.
#[derive(Clone, Debug)]
pub struct LRule<'a> {
    pub tier: Tier,
    pub policy: &'a Policy,
    /// Index of the rule in its policy.
    pub index: usize,
    pub rule: &'a Rule,
    pub action: Action,
    pub from: Vec<LPeer>,
    pub to: Vec<LPeer>,
    /// `None`: every port of every protocol.
    pub ports: Option<LPorts>,
}

impl LRule<'_> {
    /// `policy/rules[i]` or `policy/name`, for names of compiled objects and messages.
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.policy.name(),
            self.policy.rule_label(self.index)
        )
    }

    pub fn loc(&self) -> &Loc {
        &self.rule.loc
    }

    /// The refusal of a target that needs the addresses of hosts (`selector`) when no host
    /// inventory was given.
    pub fn hosts_without_inventory(
        &self,
        target: Target,
        selector: &impl std::fmt::Display,
    ) -> CompileError {
        CompileError::Unsupported {
            target,
            loc: self.loc().clone(),
            what: format!(
                "{}: hosts ({selector}) without an inventory that gives their addresses",
                self.label()
            ),
            hint: Some("pass the host inventory (--hosts/--inventory)".into()),
        }
    }
}

/// The intent, lowered.
#[derive(Clone, Debug)]
pub struct Lowered<'a> {
    pub intent: &'a Intent,
    /// Every rule, in evaluation order.
    pub rules: Vec<LRule<'a>>,
    /// Segments in `enforce` mode, in name order.
    pub enforced: Vec<&'a Segment>,
    /// Segments in `observe` mode, in name order.
    pub observed: Vec<&'a Segment>,
}

impl<'a> Lowered<'a> {
    pub fn new(intent: &'a Intent, target: Target, opts: &Options) -> Result<Self, CompileError> {
        let mut rules = Vec::new();
        let mut host_index = HostIndex::new(&opts.inventory);
        for pi in intent.policy_order() {
            let policy = &intent.policies[pi];
            for (index, rule) in policy.rules.iter().enumerate() {
                let mut side =
                    |peers: &[bulkhead_intent::PeerAt]| -> Result<Vec<LPeer>, CompileError> {
                        let mut out = Vec::new();
                        for p in peers {
                            out.extend(
                                resolve_with(intent, &p.peer, &mut |h| host_index.addresses(h))
                                    .map_err(|what| CompileError::Unsupported {
                                        target,
                                        loc: p.loc.clone(),
                                        what,
                                        hint: None,
                                    })?,
                            );
                        }
                        Ok(out)
                    };
                rules.push(LRule {
                    tier: policy.tier,
                    policy,
                    index,
                    rule,
                    action: rule.action,
                    from: side(&rule.from)?,
                    to: side(&rule.to)?,
                    ports: rule.ports.as_deref().map(LPorts::of),
                });
            }
        }
        let mut segs: Vec<&Segment> = intent.segments.iter().collect();
        segs.sort_by(|a, b| a.name().cmp(b.name()));
        let (enforced, observed) = segs.into_iter().partition(|s| s.mode == Mode::Enforce);
        Ok(Lowered {
            intent,
            rules,
            enforced,
            observed,
        })
    }

    /// The Kubernetes workloads in enforced segments, as one selector per enforced segment that
    /// selects workloads (their union).
    pub fn enforced_workloads(&self) -> Vec<WorkloadSel> {
        self.enforced
            .iter()
            .filter_map(|s| workload_part(&s.selector))
            .collect()
    }

    /// The host selectors of the enforced segments (their union).
    pub fn enforced_hosts(&self) -> Vec<Selector> {
        self.enforced
            .iter()
            .filter_map(|s| s.selector.hosts.clone())
            .collect()
    }
}

/// The Kubernetes-workload part of an entity selector, if it selects workloads at all.
pub fn workload_part(s: &EntitySelector) -> Option<WorkloadSel> {
    (s.namespaces.is_some() || s.pods.is_some()).then(|| WorkloadSel {
        namespaces: s.namespaces.clone(),
        pods: s.pods.clone(),
    })
}

/// Addresses of the inventory hosts `sel` picks.
fn host_addresses(sel: &Selector, inventory: &[Identity]) -> IpSet {
    addresses_of(
        inventory
            .iter()
            .filter(|id| id.kind == IdentityKind::Host && sel.matches(&id.labels))
            .flat_map(|id| id.addresses.iter().copied()),
    )
}

/// An address set from single addresses, built in one sort (not one union per address).
fn addresses_of(addrs: impl IntoIterator<Item = std::net::IpAddr>) -> IpSet {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for a in addrs {
        match a {
            std::net::IpAddr::V4(a) => v4.push((u32::from(a), u32::from(a))),
            std::net::IpAddr::V6(a) => v6.push((u128::from(a), u128::from(a))),
        }
    }
    IpSet {
        v4: bulkhead_core::RangeSet::from_ranges(v4),
        v6: bulkhead_core::RangeSet::from_ranges(v6),
    }
}

fn entity(s: &EntitySelector, hosts: &mut dyn FnMut(&Selector) -> IpSet) -> Vec<LPeer> {
    let mut out = Vec::new();
    if let Some(w) = workload_part(s) {
        out.push(LPeer::Workloads(w));
    }
    if let Some(h) = &s.hosts {
        out.push(LPeer::Hosts {
            selector: h.clone(),
            addresses: hosts(h),
        });
    }
    out
}

/// The inventory's hosts by label ([`bulkhead_core::LabelBits`]), and the addresses each host
/// selector picks (memoised): a policy of thousands of rules over thousands of hosts asks for the
/// same selectors again.
struct HostIndex<'a> {
    hosts: Vec<&'a Identity>,
    bits: bulkhead_core::LabelBits,
    cache: std::collections::HashMap<Selector, IpSet>,
}

impl<'a> HostIndex<'a> {
    fn new(inventory: &'a [Identity]) -> Self {
        let hosts: Vec<&Identity> = inventory
            .iter()
            .filter(|id| id.kind == IdentityKind::Host)
            .collect();
        let mut bits = bulkhead_core::LabelBits::new(hosts.len());
        for (i, h) in hosts.iter().enumerate() {
            bits.add(i, &h.labels);
        }
        HostIndex {
            hosts,
            bits,
            cache: Default::default(),
        }
    }

    fn addresses(&mut self, sel: &Selector) -> IpSet {
        if let Some(a) = self.cache.get(sel) {
            return a.clone();
        }
        let set = addresses_of(
            self.bits
                .select(sel)
                .ones()
                .flat_map(|i| self.hosts[i].addresses.iter().copied()),
        );
        self.cache.insert(sel.clone(), set.clone());
        set
    }
}

/// One peer of the intent as what targets select. `Err`: an unknown segment.
pub fn resolve(intent: &Intent, peer: &Peer, opts: &Options) -> Result<Vec<LPeer>, String> {
    resolve_with(intent, peer, &mut |h| host_addresses(h, &opts.inventory))
}

fn resolve_with(
    intent: &Intent,
    peer: &Peer,
    hosts: &mut dyn FnMut(&Selector) -> IpSet,
) -> Result<Vec<LPeer>, String> {
    Ok(match peer {
        Peer::Any => vec![LPeer::Any],
        Peer::Segment(name) => {
            let seg = intent
                .segment(name)
                .ok_or_else(|| format!("a reference to segment {name:?}, which does not exist"))?;
            entity(&seg.selector, hosts)
        }
        Peer::Selector(s) => entity(s, hosts),
        Peer::Namespace(n) => vec![LPeer::Workloads(WorkloadSel {
            namespaces: Some(Selector::label(NAMESPACE_NAME_LABEL, n)),
            pods: None,
        })],
        Peer::Cidr(set) => vec![LPeer::Addresses(set.clone())],
    })
}

/// Whether two requirements on the same key can never hold together.
pub fn requirements_conflict(
    a: &bulkhead_core::Requirement,
    b: &bulkhead_core::Requirement,
) -> bool {
    use bulkhead_core::Operator::*;
    if a.key != b.key {
        return false;
    }
    let one_way =
        |x: &bulkhead_core::Requirement, y: &bulkhead_core::Requirement| match (x.op, y.op) {
            (In, In) => !x.values.iter().any(|v| y.values.contains(v)),
            (In, NotIn) => x.values.iter().all(|v| y.values.contains(v)),
            (In, DoesNotExist) | (Exists, DoesNotExist) => true,
            _ => false,
        };
    one_way(a, b) || one_way(b, a)
}

/// True when no label set satisfies both selectors (`None`: every label set), decided from the
/// requirements alone: some pair of them conflicts.
pub fn selectors_disjoint(a: Option<&Selector>, b: Option<&Selector>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        // One side matches everything: disjoint only when the other matches nothing.
        return a.or(b).is_some_and(selector_empty);
    };
    a.requirements()
        .iter()
        .any(|x| b.requirements().iter().any(|y| requirements_conflict(x, y)))
        || selector_empty(a)
        || selector_empty(b)
}

/// True when no label set satisfies the selector (two of its requirements conflict).
pub fn selector_empty(s: &Selector) -> bool {
    let r = s.requirements();
    r.iter()
        .enumerate()
        .any(|(i, x)| r[i + 1..].iter().any(|y| requirements_conflict(x, y)))
}

/// True when every label set `small` matches, `big` matches too, whatever the labels: each of
/// `big`'s requirements is one of `small`'s (`None`: every label set).
pub fn selector_contains(big: Option<&Selector>, small: Option<&Selector>) -> bool {
    match (big, small) {
        (None, _) => true,
        (Some(b), None) => b.is_everything(),
        (Some(b), Some(s)) => {
            selector_empty(s)
                || b.requirements()
                    .iter()
                    .all(|r| s.requirements().contains(r))
        }
    }
}

impl WorkloadSel {
    /// True when the selector provably picks no workload.
    pub fn is_empty(&self) -> bool {
        self.namespaces.as_ref().is_some_and(selector_empty)
            || self.pods.as_ref().is_some_and(selector_empty)
    }

    /// True when no workload is picked by both, whatever the cluster.
    pub fn disjoint(&self, o: &WorkloadSel) -> bool {
        selectors_disjoint(self.namespaces.as_ref(), o.namespaces.as_ref())
            || selectors_disjoint(self.pods.as_ref(), o.pods.as_ref())
    }

    /// True when every workload `o` picks, `self` picks too, whatever the cluster.
    pub fn contains(&self, o: &WorkloadSel) -> bool {
        o.is_empty()
            || (selector_contains(self.namespaces.as_ref(), o.namespaces.as_ref())
                && selector_contains(self.pods.as_ref(), o.pods.as_ref()))
    }
}

/// A manifest document as block-style YAML. Strings are written as JSON strings (a YAML 1.2
/// double-quoted scalar) unless they are plain-safe, so the output is exact and stable.
pub fn yaml_doc(v: &serde_json::Value) -> String {
    let mut out = String::new();
    yaml_value(v, 0, &mut out, false);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn yaml_scalar(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
                );
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        other => other.to_string(),
    }
}

fn yaml_value(v: &serde_json::Value, indent: usize, out: &mut String, in_list: bool) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Array(a) if a.is_empty() => out.push_str(" []\n"),
        Value::Object(m) => {
            let mut first = true;
            if !in_list && indent > 0 {
                out.push('\n');
            }
            for (k, val) in m {
                if !(first && in_list) {
                    out.push_str(&pad);
                }
                first = false;
                out.push_str(&yaml_scalar(&Value::String(k.clone())));
                out.push(':');
                match val {
                    Value::Object(c) if !c.is_empty() => yaml_value(val, indent + 2, out, false),
                    Value::Array(c) if !c.is_empty() => yaml_value(val, indent, out, false),
                    _ => yaml_value(val, indent + 2, out, false),
                }
            }
        }
        Value::Array(a) => {
            out.push('\n');
            for item in a {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Value::Object(c) if !c.is_empty() => yaml_value(item, indent + 2, out, true),
                    Value::Array(c) if !c.is_empty() => {
                        // A list in a list: a flow sequence keeps it on one line.
                        out.push_str(&serde_json::to_string(item).unwrap_or_default());
                        out.push('\n');
                    }
                    _ => {
                        out.push_str(yaml_scalar_or_empty(item).trim_start());
                    }
                }
            }
        }
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

fn yaml_scalar_or_empty(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(_) => "{}\n".to_string(),
        Value::Array(_) => "[]\n".to_string(),
        other => format!("{}\n", yaml_scalar(other)),
    }
}

/// Checks a Kubernetes object name (a DNS subdomain: at most 253 characters of lowercase
/// letters, digits, `-` and `.`, starting and ending alphanumeric).
pub fn check_name(target: Target, name: &str) -> Result<(), CompileError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(CompileError::Limit {
            target,
            what: format!(
                "object name {name:?} is not a DNS subdomain of at most 253 characters (shorten the policy or segment name)"
            ),
        })
    }
}
