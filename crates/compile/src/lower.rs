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
        let mut cache = HostCache::new();
        for pi in intent.policy_order() {
            let policy = &intent.policies[pi];
            for (index, rule) in policy.rules.iter().enumerate() {
                let mut side =
                    |peers: &[bulkhead_intent::PeerAt]| -> Result<Vec<LPeer>, CompileError> {
                        let mut out = Vec::new();
                        for p in peers {
                            out.extend(resolve_cached(intent, &p.peer, opts, &mut cache).map_err(
                                |what| CompileError::Unsupported {
                                    target,
                                    loc: p.loc.clone(),
                                    what,
                                    hint: None,
                                },
                            )?);
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

/// Addresses of the inventory hosts `sel` picks (built in one pass: a fold of unions is
/// quadratic in the number of hosts).
fn host_addresses(sel: &Selector, inventory: &[Identity]) -> IpSet {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for id in inventory
        .iter()
        .filter(|id| id.kind == IdentityKind::Host && sel.matches(&id.labels))
    {
        for a in &id.addresses {
            match a {
                std::net::IpAddr::V4(a) => v4.push((u32::from(*a), u32::from(*a))),
                std::net::IpAddr::V6(a) => v6.push((u128::from(*a), u128::from(*a))),
            }
        }
    }
    IpSet {
        v4: bulkhead_core::RangeSet::from_ranges(v4),
        v6: bulkhead_core::RangeSet::from_ranges(v6),
    }
}

fn entity(s: &EntitySelector, opts: &Options, cache: &mut HostCache) -> Vec<LPeer> {
    let mut out = Vec::new();
    if let Some(w) = workload_part(s) {
        out.push(LPeer::Workloads(w));
    }
    if let Some(h) = &s.hosts {
        out.push(LPeer::Hosts {
            selector: h.clone(),
            addresses: cache
                .entry(h.clone())
                .or_insert_with(|| host_addresses(h, &opts.inventory))
                .clone(),
        });
    }
    out
}

/// Host addresses per host selector, so each selector scans the inventory once.
type HostCache = std::collections::HashMap<Selector, IpSet>;

/// One peer of the intent as what targets select. `Err`: an unknown segment.
pub fn resolve(intent: &Intent, peer: &Peer, opts: &Options) -> Result<Vec<LPeer>, String> {
    resolve_cached(intent, peer, opts, &mut HostCache::new())
}

fn resolve_cached(
    intent: &Intent,
    peer: &Peer,
    opts: &Options,
    cache: &mut HostCache,
) -> Result<Vec<LPeer>, String> {
    Ok(match peer {
        Peer::Any => vec![LPeer::Any],
        Peer::Segment(name) => {
            let seg = intent
                .segment(name)
                .ok_or_else(|| format!("a reference to segment {name:?}, which does not exist"))?;
            entity(&seg.selector, opts, cache)
        }
        Peer::Selector(s) => entity(s, opts, cache),
        Peer::Namespace(n) => vec![LPeer::Workloads(WorkloadSel {
            namespaces: Some(Selector::label(NAMESPACE_NAME_LABEL, n)),
            pods: None,
        })],
        Peer::Cidr(set) => vec![LPeer::Addresses(set.clone())],
    })
}
