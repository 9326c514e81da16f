//! The connectivity engine: which connections one endpoint may open to another, and why.
//!
//! Precedence, per direction: AdminNetworkPolicy rules by priority (Allow/Deny decide, Pass skips
//! to the NetworkPolicy layer) → NetworkPolicy (a selected workload is isolated in that direction
//! and only its rules' allows pass) → BaselineAdminNetworkPolicy rules in order → allow. A
//! connection needs the source's egress and the destination's ingress to allow it; an address
//! outside the cluster has no policy of its own.

use crate::conn::{ConnSet, Protocol};
use crate::ip::{IpRange, IpSet, pieces};
use crate::model::{Action, Cluster, Direction, Layer, Peer, PortMatch, Rule};
use std::fmt;

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// Index into [`Cluster::workloads`].
    Workload(usize),
    /// Addresses outside the cluster; the range must lie within one external piece (or be a
    /// single address) for the answer to hold for all of it.
    External(IpRange),
}

/// A rule, by policy and rule index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    pub policy: usize,
    pub rule: usize,
}

/// Why one direction of a connection was allowed or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// An admin-layer rule (AdminNetworkPolicy) allowed or denied it.
    Admin { rule: RuleRef, action: Action },
    /// NetworkPolicies select the workload and these rules allow it.
    NetworkPolicyAllow { rules: Vec<RuleRef> },
    /// NetworkPolicies select the workload (isolating it) and none of their rules allows it.
    NetworkPolicyIsolated { policies: Vec<usize> },
    /// A baseline rule (BaselineAdminNetworkPolicy) allowed or denied it.
    Baseline { rule: RuleRef, action: Action },
    /// No policy decided: allowed by default.
    Default,
}

/// The decision for one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirDecision {
    pub direction: Direction,
    pub allowed: bool,
    pub reason: Reason,
    /// The admin rule whose Pass sent the decision down to the NetworkPolicy layer, if any.
    pub passed_by: Option<RuleRef>,
}

/// The decision for a whole connection: both directions that apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The source's egress decision (absent when the source is outside the cluster).
    pub egress: Option<DirDecision>,
    /// The destination's ingress decision (absent when the destination is outside the cluster).
    pub ingress: Option<DirDecision>,
}

/// The policies and rules that apply to one workload in one direction, in order of precedence.
#[derive(Clone, Debug, Default)]
struct Applicable {
    admin: Vec<RuleRef>,
    namespaced: Vec<usize>,
    baseline: Vec<RuleRef>,
}

/// Answers connectivity questions over a [`Cluster`].
pub struct Engine<'c> {
    cluster: &'c Cluster,
    /// Per workload: `[ingress, egress]`.
    applicable: Vec<[Applicable; 2]>,
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl<'c> Engine<'c> {
    pub fn new(cluster: &'c Cluster) -> Self {
        // Admin policies by priority; equal priorities keep their name order (the API leaves
        // that undefined; ordering by name makes the answer deterministic).
        let mut admin_order: Vec<usize> = (0..cluster.policies.len())
            .filter(|&i| cluster.policies[i].layer == Layer::Admin)
            .collect();
        admin_order.sort_by(|&a, &b| {
            let (pa, pb) = (&cluster.policies[a], &cluster.policies[b]);
            (pa.priority, &pa.name).cmp(&(pb.priority, &pb.name))
        });
        let others: Vec<usize> = (0..cluster.policies.len())
            .filter(|&i| cluster.policies[i].layer != Layer::Admin)
            .collect();

        let applicable = cluster
            .workloads
            .iter()
            .map(|w| {
                let nsl = cluster.ns_labels(&w.namespace);
                let mut per_dir: [Applicable; 2] = Default::default();
                for &pi in admin_order.iter().chain(others.iter()) {
                    let p = &cluster.policies[pi];
                    if !p.subject.matches(w, nsl) {
                        continue;
                    }
                    for dir in [Direction::Ingress, Direction::Egress] {
                        let Some(rules) = p.rules(dir) else { continue };
                        let a = &mut per_dir[dir_index(dir)];
                        match p.layer {
                            Layer::Admin => a
                                .admin
                                .extend((0..rules.len()).map(|rule| RuleRef { policy: pi, rule })),
                            Layer::Namespaced => a.namespaced.push(pi),
                            Layer::Baseline => a
                                .baseline
                                .extend((0..rules.len()).map(|rule| RuleRef { policy: pi, rule })),
                        }
                    }
                }
                per_dir
            })
            .collect();
        Engine {
            cluster,
            applicable,
        }
    }

    pub fn cluster(&self) -> &'c Cluster {
        self.cluster
    }

    fn rule(&self, dir: Direction, r: RuleRef) -> &'c Rule {
        // RuleRefs are only built from policies that have rules in `dir`.
        &self.cluster.policies[r.policy]
            .rules(dir)
            .unwrap_or_default()[r.rule]
    }

    /// Does `peer` of a rule match endpoint `e`?
    pub fn peer_matches(&self, peer: &Peer, e: Endpoint) -> bool {
        match (peer, e) {
            (Peer::Any, _) => true,
            (Peer::Pods(m), Endpoint::Workload(i)) => {
                let w = &self.cluster.workloads[i];
                m.matches(w, self.cluster.ns_labels(&w.namespace))
            }
            (Peer::Pods(_), Endpoint::External(_)) => false,
            // An ipBlock never matches a pod's own address: pods are chosen by labels only.
            (Peer::Ips(_), Endpoint::Workload(_)) => false,
            (Peer::Ips(set), Endpoint::External(r)) => set.contains_range(r),
        }
    }

    /// The connections a rule's ports cover towards destination `dst` (named ports resolve
    /// against the destination's container ports; they never match an external address).
    pub fn rule_conns(&self, rule: &Rule, dst: Endpoint) -> ConnSet {
        let Some(ports) = &rule.ports else {
            return ConnSet::all();
        };
        let mut out = ConnSet::none();
        for pm in ports {
            match pm {
                PortMatch::Conns(c) => out = out.union(c),
                PortMatch::Named { protocol, name } => {
                    if let Endpoint::Workload(i) = dst
                        && let Some(np) =
                            self.cluster.workloads[i].resolve_named_port(name, *protocol)
                    {
                        out = out.union(&ConnSet::single(np.protocol, np.port));
                    }
                }
            }
        }
        out
    }

    fn rule_matches(
        &self,
        dir: Direction,
        r: RuleRef,
        peer: Endpoint,
        dst: Endpoint,
    ) -> Option<ConnSet> {
        let rule = self.rule(dir, r);
        if rule.peers.iter().any(|p| self.peer_matches(p, peer)) {
            Some(self.rule_conns(rule, dst))
        } else {
            None
        }
    }

    /// The connections `subject` allows in direction `dir` with `peer` at the other end.
    pub fn direction_allowed(&self, dir: Direction, subject: usize, peer: Endpoint) -> ConnSet {
        let app = &self.applicable[subject][dir_index(dir)];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => peer,
        };
        let mut allowed = ConnSet::none();
        // Connections no admin rule has decided. Passed connections go on to the NetworkPolicy
        // layer exactly like unmatched ones, so they stay in `delegated` too.
        let mut open = ConnSet::all();
        let mut passed = ConnSet::none();
        for &r in &app.admin {
            if open.is_empty() {
                break;
            }
            let Some(c) = self.rule_matches(dir, r, peer, dst) else {
                continue;
            };
            let hit = c.intersect(&open);
            open = open.subtract(&hit);
            match self.rule(dir, r).action {
                Action::Allow => allowed = allowed.union(&hit),
                Action::Deny => {}
                Action::Pass => passed = passed.union(&hit),
            }
        }
        let delegated = open.union(&passed);
        if delegated.is_empty() {
            return allowed;
        }
        if !app.namespaced.is_empty() {
            let mut np = ConnSet::none();
            for &pi in &app.namespaced {
                let rules = self.cluster.policies[pi].rules(dir).unwrap_or_default();
                for rule in rules {
                    if rule.peers.iter().any(|p| self.peer_matches(p, peer)) {
                        np = np.union(&self.rule_conns(rule, dst));
                    }
                }
            }
            return allowed.union(&delegated.intersect(&np));
        }
        let mut open = delegated;
        for &r in &app.baseline {
            if open.is_empty() {
                break;
            }
            let Some(c) = self.rule_matches(dir, r, peer, dst) else {
                continue;
            };
            let hit = c.intersect(&open);
            open = open.subtract(&hit);
            if self.rule(dir, r).action == Action::Allow {
                allowed = allowed.union(&hit);
            }
        }
        // Whatever no baseline rule decided is allowed by default.
        allowed.union(&open)
    }

    /// The connections `src` may open to `dst`: the source's egress and the destination's
    /// ingress must both allow them. Two external endpoints have no connectivity here.
    pub fn allowed(&self, src: Endpoint, dst: Endpoint) -> ConnSet {
        match (src, dst) {
            (Endpoint::External(_), Endpoint::External(_)) => ConnSet::none(),
            (Endpoint::Workload(s), Endpoint::External(_)) => {
                self.direction_allowed(Direction::Egress, s, dst)
            }
            (Endpoint::External(_), Endpoint::Workload(d)) => {
                self.direction_allowed(Direction::Ingress, d, src)
            }
            (Endpoint::Workload(s), Endpoint::Workload(d)) => {
                let e = self.direction_allowed(Direction::Egress, s, dst);
                if e.is_empty() {
                    return e;
                }
                e.intersect(&self.direction_allowed(Direction::Ingress, d, src))
            }
        }
    }

    /// Decides one direction for one protocol and port, naming the rule that decided.
    pub fn decide_direction(
        &self,
        dir: Direction,
        subject: usize,
        peer: Endpoint,
        proto: Protocol,
        port: u16,
    ) -> DirDecision {
        let app = &self.applicable[subject][dir_index(dir)];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => peer,
        };
        let hits = |r: RuleRef| {
            self.rule_matches(dir, r, peer, dst)
                .is_some_and(|c| c.contains(proto, port))
        };
        let mut passed_by = None;
        for &r in &app.admin {
            if !hits(r) {
                continue;
            }
            match self.rule(dir, r).action {
                Action::Pass => {
                    passed_by = Some(r);
                    break;
                }
                action => {
                    return DirDecision {
                        direction: dir,
                        allowed: action == Action::Allow,
                        reason: Reason::Admin { rule: r, action },
                        passed_by: None,
                    };
                }
            }
        }
        if !app.namespaced.is_empty() {
            let mut rules = Vec::new();
            for &pi in &app.namespaced {
                let prules = self.cluster.policies[pi].rules(dir).unwrap_or_default();
                for (ri, rule) in prules.iter().enumerate() {
                    if rule.peers.iter().any(|p| self.peer_matches(p, peer))
                        && self.rule_conns(rule, dst).contains(proto, port)
                    {
                        rules.push(RuleRef {
                            policy: pi,
                            rule: ri,
                        });
                    }
                }
            }
            let allowed = !rules.is_empty();
            let reason = if allowed {
                Reason::NetworkPolicyAllow { rules }
            } else {
                Reason::NetworkPolicyIsolated {
                    policies: app.namespaced.clone(),
                }
            };
            return DirDecision {
                direction: dir,
                allowed,
                reason,
                passed_by,
            };
        }
        for &r in &app.baseline {
            if hits(r) {
                let action = self.rule(dir, r).action;
                return DirDecision {
                    direction: dir,
                    allowed: action == Action::Allow,
                    reason: Reason::Baseline { rule: r, action },
                    passed_by,
                };
            }
        }
        DirDecision {
            direction: dir,
            allowed: true,
            reason: Reason::Default,
            passed_by,
        }
    }

    /// Decides a whole connection for one protocol and port.
    pub fn decide(&self, src: Endpoint, dst: Endpoint, proto: Protocol, port: u16) -> Decision {
        let egress = match src {
            Endpoint::Workload(s) => {
                Some(self.decide_direction(Direction::Egress, s, dst, proto, port))
            }
            Endpoint::External(_) => None,
        };
        let ingress = match dst {
            Endpoint::Workload(d) => {
                Some(self.decide_direction(Direction::Ingress, d, src, proto, port))
            }
            Endpoint::External(_) => None,
        };
        let allowed = (egress.is_some() || ingress.is_some())
            && egress.as_ref().is_none_or(|d| d.allowed)
            && ingress.as_ref().is_none_or(|d| d.allowed);
        Decision {
            allowed,
            egress,
            ingress,
        }
    }

    /// The address sets policies name in one direction: ingress rules cut sources, egress
    /// rules cut destinations.
    pub fn referenced_ip_sets(&self, dir: Direction) -> Vec<&'c IpSet> {
        let mut out = Vec::new();
        for p in &self.cluster.policies {
            for rule in p.rules(dir).unwrap_or_default() {
                for peer in &rule.peers {
                    if let Peer::Ips(s) = peer {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// The external pieces for one direction: maximal runs of addresses that every address
    /// set named by that direction's rules holds entirely or not at all.
    pub fn external_pieces(&self, dir: Direction) -> Vec<IpRange> {
        pieces(self.referenced_ip_sets(dir))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Workload(i) => write!(f, "workload #{i}"),
            Endpoint::External(r) => write!(f, "{r}[External]"),
        }
    }
}
