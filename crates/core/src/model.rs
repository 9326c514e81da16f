//! The policy model: workloads, namespaces and tiered policies.
//!
//! Kubernetes NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy (and, later,
//! Bulkhead's own intent) all translate into these types, and one engine answers every question
//! over them.

use crate::conn::{ConnSet, Protocol};
use crate::ip::IpSet;
use crate::selector::{Labels, Selector};
use std::collections::BTreeMap;
use std::fmt;

/// Where an object was read from, for messages.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A container port with a name, which policies may refer to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// Something that sends or receives traffic: a pod's controlling owner, a workload manifest,
/// a lone pod, or (later) a VM or host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `Pod`, …
    pub kind: String,
    /// The labels policies see (those of the first pod, or the pod template).
    pub labels: Labels,
    /// Every distinct label set among the workload's pods (the first is `labels`).
    pub label_variants: Vec<Labels>,
    /// The container ports that have names.
    pub named_ports: Vec<NamedPort>,
    /// Names of the pods (or manifests) that make up this workload.
    pub members: Vec<String>,
    /// Pod addresses known from the input (`status.podIP`), for attributing an address.
    pub addresses: Vec<std::net::IpAddr>,
    pub origin: Origin,
    /// The pods' service account (`spec.serviceAccountName`, the pod template's for workload
    /// kinds; `None` when not written, which Kubernetes reads as `default`).
    pub service_account: Option<String>,
}

impl Workload {
    /// `namespace/name[Kind]`, the way connectivity prints it.
    pub fn display_name(&self) -> String {
        format!("{}/{}[{}]", self.namespace, self.name, self.kind)
    }

    /// Resolves a named port of this workload; `protocol` `None` takes the port's own protocol.
    pub fn resolve_named_port(&self, name: &str, protocol: Option<Protocol>) -> Option<&NamedPort> {
        self.named_ports
            .iter()
            .find(|p| p.name == name && protocol.is_none_or(|proto| proto == p.protocol))
    }
}

/// Which namespaces a pod match covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsMatch {
    /// Exactly this namespace (a NetworkPolicy's own namespace).
    Exact(String),
    /// Namespaces whose labels match.
    Selector(Selector),
}

/// Pods chosen by namespace and pod labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMatch {
    pub namespaces: NsMatch,
    pub pods: Selector,
}

impl PodMatch {
    pub fn matches(&self, w: &Workload, ns_labels: &Labels) -> bool {
        self.matches_labels(&w.namespace, ns_labels, &w.labels)
    }

    pub fn matches_labels(&self, namespace: &str, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        let ns_ok = match &self.namespaces {
            NsMatch::Exact(n) => n == namespace,
            NsMatch::Selector(s) => s.matches(ns_labels),
        };
        ns_ok && self.pods.matches(pod_labels)
    }
}

impl fmt::Display for PodMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespaces {
            NsMatch::Exact(n) => write!(f, "pods {} in namespace {n}", self.pods),
            NsMatch::Selector(s) => write!(f, "pods {} in namespaces {s}", self.pods),
        }
    }
}

/// The other end of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Every pod and every address (a NetworkPolicy rule with no `from`/`to`).
    Any,
    /// Pods by namespace and labels.
    Pods(PodMatch),
    /// Addresses outside the cluster (ipBlock minus except, or ANP `networks`).
    Ips(IpSet),
}

/// A port condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// Numbered ports and ranges.
    Conns(ConnSet),
    /// A named container port of the destination; `protocol` `None` takes the port's own.
    Named {
        protocol: Option<Protocol>,
        name: String,
    },
}

impl PortMatch {
    /// A list of port conditions as the union of its numbered connections and its names.
    pub fn split(ms: &[PortMatch]) -> (ConnSet, Vec<(Option<Protocol>, &str)>) {
        let mut c = ConnSet::none();
        let mut named = Vec::new();
        for m in ms {
            match m {
                PortMatch::Conns(x) => c = c.union(x),
                PortMatch::Named { protocol, name } => named.push((*protocol, name.as_str())),
            }
        }
        (c, named)
    }
}

/// What a rule does to the connections it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    /// Skip the remaining admin rules and let the NetworkPolicy layer decide.
    Pass,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        })
    }
}

/// One rule of a policy, in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name, or `ingress[i]`/`egress[i]` when it has none.
    pub name: String,
    pub action: Action,
    /// A connection matches when any peer matches.
    pub peers: Vec<Peer>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<PortMatch>>,
}

/// The layers of precedence, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// AdminNetworkPolicy: ordered by priority, Allow/Deny/Pass.
    Admin,
    /// NetworkPolicy: allow-lists with per-direction isolation.
    Namespaced,
    /// BaselineAdminNetworkPolicy: ordered Allow/Deny, before the default allow.
    Baseline,
}

/// A policy of any layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `NetworkPolicy`, `AdminNetworkPolicy`, `BaselineAdminNetworkPolicy`, …
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub layer: Layer,
    /// Admin layer precedence: lower numbers first.
    pub priority: i32,
    pub subject: PodMatch,
    /// `Some` when the policy applies to ingress (for NetworkPolicy: isolates ingress).
    pub ingress: Option<Vec<Rule>>,
    /// `Some` when the policy applies to egress.
    pub egress: Option<Vec<Rule>>,
    pub origin: Origin,
}

impl Policy {
    /// `namespace/name` for namespaced policies, `name` otherwise.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Traffic direction, seen from the workload a policy selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Everything the engine needs: namespaces, workloads and policies.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Namespace name → labels (including `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, Labels>,
    pub workloads: Vec<Workload>,
    pub policies: Vec<Policy>,
}

/// The label Kubernetes puts on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Cluster {
    /// Adds a namespace if missing, and makes sure it carries `kubernetes.io/metadata.name`.
    pub fn ensure_namespace(&mut self, name: &str) -> &mut Labels {
        let labels = self.namespaces.entry(name.to_string()).or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        labels
    }

    pub fn ns_labels(&self, ns: &str) -> &Labels {
        static EMPTY: Labels = Labels::new();
        self.namespaces.get(ns).unwrap_or(&EMPTY)
    }
}
