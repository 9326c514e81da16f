//! The engine's indexes: which workloads every selector picks, as bit sets, computed once from a
//! label index instead of matching every selector against every workload.
//!
//! Peers of a direction live in one universe: the workloads `0..W`, then that direction's external
//! pieces (`W..W+N`): ingress rules see sources (workloads and ingress pieces), egress rules see
//! destinations (workloads and egress pieces).

use crate::bitset::Bitset;
use crate::conn::Protocol;
use crate::ip::IpRange;
use crate::model::{Cluster, Direction, Layer, NsMatch, Peer, PodMatch, Policy, PortMatch};
use crate::selector::{LabelBits, Selector};
use std::collections::HashMap;

pub(crate) fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

pub(crate) const DIRS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// Workloads by label, by label key and by namespace.
pub(crate) struct LabelIndex {
    n: usize,
    labels: LabelBits,
    by_ns: HashMap<String, Bitset>,
    /// Namespace selectors already evaluated: selectors repeat across policies.
    ns_cache: std::cell::RefCell<HashMap<Selector, Bitset>>,
}

impl LabelIndex {
    pub(crate) fn new(cluster: &Cluster) -> Self {
        let n = cluster.workloads.len();
        let mut idx = LabelIndex {
            n,
            labels: LabelBits::new(n),
            by_ns: HashMap::new(),
            ns_cache: Default::default(),
        };
        for (i, w) in cluster.workloads.iter().enumerate() {
            idx.labels.add(i, &w.labels);
            idx.by_ns
                .entry(w.namespace.clone())
                .or_insert_with(|| Bitset::empty(n))
                .insert(i);
        }
        idx
    }

    /// Workloads whose own labels match.
    fn pods(&self, sel: &Selector) -> Bitset {
        self.labels.select(sel)
    }

    /// Workloads in the namespaces a match covers.
    fn namespaces(&self, cluster: &Cluster, m: &NsMatch) -> Bitset {
        match m {
            NsMatch::Exact(ns) => self
                .by_ns
                .get(ns)
                .cloned()
                .unwrap_or_else(|| Bitset::empty(self.n)),
            NsMatch::Selector(s) => {
                if s.is_everything() {
                    return Bitset::full(self.n);
                }
                if let Some(b) = self.ns_cache.borrow().get(s) {
                    return b.clone();
                }
                let mut out = Bitset::empty(self.n);
                for (ns, members) in &self.by_ns {
                    if s.matches(cluster.ns_labels(ns)) {
                        out.union_with(members);
                    }
                }
                self.ns_cache.borrow_mut().insert(s.clone(), out.clone());
                out
            }
        }
    }

    pub(crate) fn pod_match(&self, cluster: &Cluster, m: &PodMatch) -> Bitset {
        let mut b = self.namespaces(cluster, &m.namespaces);
        if !m.pods.is_everything() {
            b.intersect_with(&self.pods(&m.pods));
        }
        b
    }
}

/// A named port as rules name it: the name and, for NetworkPolicy, the protocol.
pub(crate) type NamedKey = (String, Option<Protocol>);

/// The bit sets of one policy.
#[derive(Clone, Debug)]
pub(crate) struct PolicySets {
    /// Workloads the policy selects.
    pub subject: Bitset,
    /// Per direction, per rule: the peers (over that direction's universe) a rule matches.
    pub rules: [Vec<Bitset>; 2],
    /// The named ports its ingress rules use, in rule order (a class key holds their values).
    pub ingress_named: Vec<NamedKey>,
}

/// External pieces of both directions, with a reverse lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pieces {
    pub ranges: [Vec<IpRange>; 2],
    pub lookup: [HashMap<IpRange, usize>; 2],
}

impl Pieces {
    pub(crate) fn new(ranges: [Vec<IpRange>; 2]) -> Self {
        let lookup = [0, 1].map(|d| ranges[d].iter().enumerate().map(|(i, r)| (*r, i)).collect());
        Pieces { ranges, lookup }
    }
}

pub(crate) fn policy_sets(
    cluster: &Cluster,
    labels: &LabelIndex,
    pieces: &Pieces,
    p: &Policy,
) -> PolicySets {
    let w = cluster.workloads.len();
    let subject = labels.pod_match(cluster, &p.subject);
    let rules = DIRS.map(|dir| {
        let d = dir_index(dir);
        let ulen = w + pieces.ranges[d].len();
        p.rules(dir)
            .unwrap_or_default()
            .iter()
            .map(|rule| {
                let mut b = Bitset::empty(ulen);
                for peer in &rule.peers {
                    match peer {
                        Peer::Any => b = Bitset::full(ulen),
                        Peer::Pods(m) => {
                            for i in labels.pod_match(cluster, m).ones() {
                                b.insert(i);
                            }
                        }
                        Peer::Ips(set) => {
                            for (j, r) in pieces.ranges[d].iter().enumerate() {
                                if set.contains_range(*r) {
                                    b.insert(w + j);
                                }
                            }
                        }
                    }
                }
                b
            })
            .collect()
    });
    PolicySets {
        subject,
        rules,
        ingress_named: named_keys(p, Direction::Ingress).collect(),
    }
}

/// Workloads grouped by what a named port resolves to: one set per resolved value.
pub(crate) fn named_partition(cluster: &Cluster, key: &NamedKey) -> Vec<Bitset> {
    let n = cluster.workloads.len();
    let mut by_val: HashMap<(Protocol, u16), Bitset> = HashMap::new();
    for (i, w) in cluster.workloads.iter().enumerate() {
        if let Some(np) = w.resolve_named_port(&key.0, key.1) {
            by_val
                .entry((np.protocol, np.port))
                .or_insert_with(|| Bitset::empty(n))
                .insert(i);
        }
    }
    let mut v: Vec<_> = by_val.into_iter().collect();
    v.sort_by_key(|(k, _)| *k);
    v.into_iter().map(|(_, b)| b).collect()
}

/// The named ports a policy's rules of one direction refer to.
pub(crate) fn named_keys(p: &Policy, dir: Direction) -> impl Iterator<Item = NamedKey> + '_ {
    p.rules(dir).unwrap_or_default().iter().flat_map(|r| {
        r.ports.iter().flatten().filter_map(|pm| match pm {
            PortMatch::Named { protocol, name } => Some((name.clone(), *protocol)),
            PortMatch::Conns(_) => None,
        })
    })
}

/// Admin policies in precedence order: by priority, then name.
pub(crate) fn admin_order(cluster: &Cluster) -> Vec<usize> {
    let mut v: Vec<usize> = (0..cluster.policies.len())
        .filter(|&i| cluster.policies[i].layer == Layer::Admin)
        .collect();
    v.sort_by(|&a, &b| {
        let (pa, pb) = (&cluster.policies[a], &cluster.policies[b]);
        (pa.priority, &pa.name).cmp(&(pb.priority, &pb.name))
    });
    v
}
