//! The validated intent: what the loader produces and the lint and the evaluator read.
//!
//! Later stages (recommend, the digital twin, verify, plan, the compilers to Kubernetes, Cilium,
//! Calico and nftables) read these types; they hold no YAML detail beyond where each object came
//! from ([`Loc`]).

use crate::diag::Loc;
use bulkhead_core::{IpSet, Selector};
use std::collections::BTreeMap;
use std::fmt;

pub use bulkhead_core::{Action, PortMatch};

/// The `apiVersion` of every intent resource.
pub const API_VERSION: &str = "bulkhead.dev/v1alpha1";

/// `metadata` of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    pub name: String,
    /// Informational (where compiled objects are placed, ownership); names are global per kind.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Whether a segment's workloads are really isolated (`enforce`) or only watched (`observe`:
/// a verdict that would deny is reported as [`WouldBlock`](crate::Verdict::WouldBlock)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Observe,
    Enforce,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
        })
    }
}

/// Which identities a selector picks.
///
/// A Kubernetes workload matches when `namespaces` or `pods` is given and every given one matches
/// (its namespace's labels, its own labels). A host of the host inventory matches when `hosts`
/// is given and matches its labels. External addresses never match a selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct EntitySelector {
    /// `namespaceSelector`.
    pub namespaces: Option<Selector>,
    /// `podSelector` (alias `workloadSelector`).
    pub pods: Option<Selector>,
    /// `hostSelector`.
    pub hosts: Option<Selector>,
}

impl EntitySelector {
    /// True when the selector picks every Kubernetes workload and every host (`{}` selectors).
    pub fn selects_everything(&self) -> bool {
        let all = |s: &Option<Selector>| s.as_ref().is_some_and(Selector::is_everything);
        let pods_all = (all(&self.namespaces) || self.namespaces.is_none())
            && (all(&self.pods) || self.pods.is_none())
            && (self.namespaces.is_some() || self.pods.is_some());
        pods_all && all(&self.hosts)
    }

    /// True when every identity `other` picks, `self` picks too, whatever the inventory
    /// (a syntactic test: each present selector of `self` has a subset of `other`'s requirements).
    pub fn contains(&self, other: &EntitySelector) -> bool {
        fn sel_contains(a: &Selector, b: &Selector) -> bool {
            a.requirements()
                .iter()
                .all(|r| b.requirements().contains(r))
        }
        // Pods: `other` picks pods only when it has namespaces or pods.
        let other_pods = other.namespaces.is_some() || other.pods.is_some();
        let self_pods = self.namespaces.is_some() || self.pods.is_some();
        let pods_ok = !other_pods
            || (self_pods
                && [
                    (&self.namespaces, &other.namespaces),
                    (&self.pods, &other.pods),
                ]
                .iter()
                .all(|(a, b)| match (a, b) {
                    (None, _) => true,
                    (Some(a), Some(b)) => sel_contains(a, b),
                    (Some(a), None) => a.is_everything(),
                }));
        let hosts_ok = match (&self.hosts, &other.hosts) {
            (_, None) => true,
            (Some(a), Some(b)) => sel_contains(a, b),
            (None, Some(_)) => false,
        };
        pods_ok && hosts_ok
    }
}

impl fmt::Display for EntitySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.namespaces {
            parts.push(format!("namespaces {s}"));
        }
        if let Some(s) = &self.pods {
            parts.push(format!("pods {s}"));
        }
        if let Some(s) = &self.hosts {
            parts.push(format!("hosts {s}"));
        }
        if parts.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&parts.join(" and "))
    }
}

/// A `Segment`: a named group of workloads and hosts, with compliance scopes and a mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub meta: Meta,
    pub selector: EntitySelector,
    /// Compliance scopes, lowercase (`pci-dss`, `gdpr`, `sox`).
    pub compliance: Vec<String>,
    pub owner: Option<String>,
    pub mode: Mode,
    pub description: Option<String>,
    pub loc: Loc,
}

impl Segment {
    pub fn name(&self) -> &str {
        &self.meta.name
    }
}

/// One side of a rule or an invariant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Every workload, host and address (`any: true`).
    Any,
    /// The members of a segment, by name.
    Segment(String),
    Selector(EntitySelector),
    /// Every Kubernetes workload of a namespace.
    Namespace(String),
    /// Addresses: external addresses, and hosts whose addresses fall inside (never pods).
    Cidr(IpSet),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Any => f.write_str("anything"),
            Peer::Segment(s) => write!(f, "segment {s}"),
            Peer::Selector(s) => write!(f, "{s}"),
            Peer::Namespace(n) => write!(f, "namespace {n}"),
            Peer::Cidr(set) => {
                let v4: Vec<String> = set
                    .v4
                    .ranges()
                    .iter()
                    .map(|&(a, b)| {
                        format!(
                            "{}-{}",
                            std::net::Ipv4Addr::from(a),
                            std::net::Ipv4Addr::from(b)
                        )
                    })
                    .collect();
                let v6: Vec<String> = set
                    .v6
                    .ranges()
                    .iter()
                    .map(|&(a, b)| {
                        format!(
                            "{}-{}",
                            std::net::Ipv6Addr::from(a),
                            std::net::Ipv6Addr::from(b)
                        )
                    })
                    .collect();
                write!(f, "addresses {}", [v4, v6].concat().join(","))
            }
        }
    }
}

/// A peer and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAt {
    pub peer: Peer,
    pub loc: Loc,
}

/// The tiers, in evaluation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Compliance boundaries application rules cannot override.
    Guardrail,
    /// Least-privilege allows of the applications.
    Application,
    /// Defaults, after the applications.
    Baseline,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Guardrail, Tier::Application, Tier::Baseline];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Guardrail => "guardrail",
            Tier::Application => "application",
            Tier::Baseline => "baseline",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule: connections `from` any source peer `to` any destination peer on `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: Option<String>,
    pub action: Action,
    pub from: Vec<PeerAt>,
    pub to: Vec<PeerAt>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<PortMatch>>,
    pub description: Option<String>,
    pub loc: Loc,
}

/// A `Policy`: ordered rules in one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub meta: Meta,
    pub tier: Tier,
    /// Order among the policies of a tier: lower first, then by name.
    pub priority: i32,
    pub rules: Vec<Rule>,
    pub description: Option<String>,
    pub loc: Loc,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// `rules[i]` or the rule's own name.
    pub fn rule_label(&self, i: usize) -> String {
        match self.rules.get(i).and_then(|r| r.name.as_deref()) {
            Some(n) => format!("rules[{i}] {n:?}"),
            None => format!("rules[{i}]"),
        }
    }
}

/// What an invariant asserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvariantKind {
    /// No connection from `from` to `to` on `ports`.
    Never,
    /// Only `from` may reach `to` on `ports`.
    Only,
    /// Every connection from `from` to `to` on `ports` stays allowed.
    MustAllow,
}

impl fmt::Display for InvariantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvariantKind::Never => "never",
            InvariantKind::Only => "only",
            InvariantKind::MustAllow => "mustAllow",
        })
    }
}

/// An `Invariant`: an assertion checked over every workload and port (by `bulkhead verify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invariant {
    pub meta: Meta,
    pub kind: InvariantKind,
    pub from: Vec<PeerAt>,
    pub to: Vec<PeerAt>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<PortMatch>>,
    /// Compliance controls the invariant evidences (`pci-dss-4.0:1.3.1`), free text.
    pub controls: Vec<String>,
    pub description: Option<String>,
    pub loc: Loc,
}

/// Everything read from a policy directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    pub segments: Vec<Segment>,
    pub policies: Vec<Policy>,
    pub invariants: Vec<Invariant>,
}

impl Intent {
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.meta.name == name)
    }

    /// Policy indexes in evaluation order: by tier, then priority, then name, then file order.
    pub fn policy_order(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.policies.len()).collect();
        v.sort_by(|&a, &b| {
            let (pa, pb) = (&self.policies[a], &self.policies[b]);
            (pa.tier, pa.priority, &pa.meta.name, a).cmp(&(pb.tier, pb.priority, &pb.meta.name, b))
        });
        v
    }
}
