//! The engine's answers agree with each other and with a brute-force evaluator.
//!
//! Random small clusters are built directly from core types: namespaces and workloads with
//! labels from a small vocabulary and named ports, and policies in all three layers with random
//! selectors, peers (pods, addresses, anything) and ports (numbered and named). For every pair
//! of endpoints (workloads and the external pieces the engine cuts the address space into) and
//! a sample of protocol/port points (including every range boundary in the cluster):
//!
//! - `allowed(s, d)` contains the point exactly when `decide(s, d, ..)` allows it;
//! - per direction, `direction_allowed` and `decide_direction` agree, and the reason given is
//!   consistent with the decision;
//! - both agree with [`brute`], a direct per-port reading of the precedence rules.

use bulkhead_core::conn::{MAX_PORT, MIN_PORT};
use bulkhead_core::{
    Action, Cluster, ConnSet, DirDecision, Direction, Endpoint, Engine, IpRange, IpSet, Labels,
    Layer, NAMESPACE_NAME_LABEL, NamedPort, NsMatch, Operator, Origin, Peer, PodMatch, Policy,
    PortMatch, Protocol, RangeSet, Reason, Requirement, Rule, Selector, Workload,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// The brute-force evaluator: one protocol and port at a time, straight from the precedence rules.
// ---------------------------------------------------------------------------------------------

mod brute {
    use super::*;

    fn selector(s: &Selector, labels: &Labels) -> bool {
        s.requirements().iter().all(|r| {
            let v = labels.get(&r.key);
            let listed = v.is_some_and(|v| r.values.contains(v));
            match r.op {
                Operator::In => listed,
                Operator::NotIn => !listed,
                Operator::Exists => v.is_some(),
                Operator::DoesNotExist => v.is_none(),
            }
        })
    }

    fn pods(c: &Cluster, m: &PodMatch, w: &Workload) -> bool {
        let ns_ok = match &m.namespaces {
            NsMatch::Exact(n) => *n == w.namespace,
            NsMatch::Selector(s) => {
                selector(s, c.namespaces.get(&w.namespace).unwrap_or(&Labels::new()))
            }
        };
        ns_ok && selector(&m.pods, &w.labels)
    }

    fn peer(c: &Cluster, p: &Peer, e: Endpoint) -> bool {
        match (p, e) {
            (Peer::Any, _) => true,
            (Peer::Pods(m), Endpoint::Workload(i)) => pods(c, m, &c.workloads[i]),
            (Peer::Pods(_), Endpoint::External(_)) => false,
            (Peer::Ips(_), Endpoint::Workload(_)) => false,
            // Endpoints are whole external pieces: any address stands for all of them.
            (Peer::Ips(set), Endpoint::External(r)) => set.contains(r.first()),
        }
    }

    fn port(c: &Cluster, rule: &Rule, dst: Endpoint, proto: Protocol, port: u16) -> bool {
        let Some(list) = &rule.ports else {
            return true;
        };
        list.iter().any(|pm| match pm {
            PortMatch::Conns(cs) => cs.contains(proto, port),
            PortMatch::Named { protocol, name } => match dst {
                Endpoint::Workload(i) => c.workloads[i].named_ports.iter().any(|np| {
                    np.name == *name
                        && protocol.is_none_or(|p| p == np.protocol)
                        && np.protocol == proto
                        && np.port == port
                }),
                Endpoint::External(_) => false,
            },
        })
    }

    /// Does workload `subject` allow the point in direction `dir`, with `other` at the far end?
    pub fn direction(
        c: &Cluster,
        dir: Direction,
        subject: usize,
        other: Endpoint,
        proto: Protocol,
        p: u16,
    ) -> bool {
        let w = &c.workloads[subject];
        let dst = match dir {
            Direction::Ingress => Endpoint::Workload(subject),
            Direction::Egress => other,
        };
        let rules_of = |pol: &Policy| -> Vec<Rule> {
            match dir {
                Direction::Ingress => pol.ingress.clone(),
                Direction::Egress => pol.egress.clone(),
            }
            .unwrap_or_default()
        };
        let selects = |pol: &Policy| {
            pods(c, &pol.subject, w)
                && match dir {
                    Direction::Ingress => pol.ingress.is_some(),
                    Direction::Egress => pol.egress.is_some(),
                }
        };
        let hits =
            |r: &Rule| r.peers.iter().any(|x| peer(c, x, other)) && port(c, r, dst, proto, p);

        // 1. Admin policies by (priority, name), rules in order: the first Allow/Deny decides;
        //    a Pass skips the rest of the admin layer.
        let mut admins: Vec<&Policy> = c
            .policies
            .iter()
            .filter(|pol| pol.layer == Layer::Admin && selects(pol))
            .collect();
        admins.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        'admin: for pol in admins {
            for r in rules_of(pol) {
                if hits(&r) {
                    match r.action {
                        Action::Allow => return true,
                        Action::Deny => return false,
                        Action::Pass => break 'admin,
                    }
                }
            }
        }
        // 2. NetworkPolicies selecting the workload in this direction: allowed iff a rule allows.
        let nps: Vec<&Policy> = c
            .policies
            .iter()
            .filter(|pol| pol.layer == Layer::Namespaced && selects(pol))
            .collect();
        if !nps.is_empty() {
            return nps.iter().any(|pol| rules_of(pol).iter().any(hits));
        }
        // 3. Baseline rules in order; 4. allow.
        for pol in c
            .policies
            .iter()
            .filter(|pol| pol.layer == Layer::Baseline && selects(pol))
        {
            for r in rules_of(pol) {
                if hits(&r) {
                    return r.action == Action::Allow;
                }
            }
        }
        true
    }

    /// A connection needs the source's egress and the destination's ingress; an external
    /// address has no policy of its own, and two external ends have no connection here.
    pub fn connection(c: &Cluster, s: Endpoint, d: Endpoint, proto: Protocol, p: u16) -> bool {
        match (s, d) {
            (Endpoint::External(_), Endpoint::External(_)) => false,
            (Endpoint::Workload(a), Endpoint::External(_)) => {
                direction(c, Direction::Egress, a, d, proto, p)
            }
            (Endpoint::External(_), Endpoint::Workload(b)) => {
                direction(c, Direction::Ingress, b, s, proto, p)
            }
            (Endpoint::Workload(a), Endpoint::Workload(b)) => {
                direction(c, Direction::Egress, a, d, proto, p)
                    && direction(c, Direction::Ingress, b, s, proto, p)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random clusters.
// ---------------------------------------------------------------------------------------------

const NAMESPACES: &[&str] = &["ns0", "ns1", "ns2"];
const NS_KEYS: &[&str] = &["team", "env", NAMESPACE_NAME_LABEL];
const NS_VALUES: &[&str] = &["a", "b", "ns0", "ns1"];
const POD_KEYS: &[&str] = &["app", "tier"];
const POD_VALUES: &[&str] = &["x", "y", "z"];
const PORT_NAMES: &[&str] = &["http", "dns", "web"];
const PORTS: &[u16] = &[1, 53, 80, 443, 8080, 65535];
const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.0.0/16",
    "203.0.113.7/32",
    "0.0.0.0/0",
    "fd00::/8",
    "fd00:1::/32",
    "::/0",
];

fn protocol() -> impl Strategy<Value = Protocol> {
    select(&Protocol::ALL[..])
}

fn requirement(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Requirement> {
    (
        select(keys),
        select(
            &[
                Operator::In,
                Operator::NotIn,
                Operator::Exists,
                Operator::DoesNotExist,
            ][..],
        ),
        prop::collection::vec(select(values), 1..3),
    )
        .prop_map(|(k, op, vals)| {
            let vals = match op {
                Operator::In | Operator::NotIn => vals.into_iter().map(String::from).collect(),
                _ => Vec::new(),
            };
            Requirement::new(k, op, vals).expect("valid requirement")
        })
}

fn selector(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Selector> {
    // Often empty, so that policies and peers overlap and precedence matters.
    prop_oneof![
        2 => Just(Vec::new()),
        3 => prop::collection::vec(requirement(keys, values), 1..3),
    ]
    .prop_map(|reqs| Selector::new([], reqs).expect("valid selector"))
}

fn labels(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(
        select(keys).prop_map(String::from),
        select(values).prop_map(String::from),
        0..3,
    )
}

fn pod_match() -> impl Strategy<Value = PodMatch> {
    (
        prop_oneof![
            3 => selector(NS_KEYS, NS_VALUES).prop_map(NsMatch::Selector),
            1 => select(NAMESPACES).prop_map(|n| NsMatch::Exact(n.to_string())),
        ],
        selector(POD_KEYS, POD_VALUES),
    )
        .prop_map(|(namespaces, pods)| PodMatch { namespaces, pods })
}

fn cidr(s: &str) -> IpSet {
    IpSet::cidr(s).expect("valid CIDR")
}

fn ip_set() -> impl Strategy<Value = IpSet> {
    (
        prop::collection::vec(select(CIDRS), 1..3),
        prop::option::of(select(CIDRS)),
    )
        .prop_map(|(blocks, except)| {
            let set = blocks
                .iter()
                .fold(IpSet::empty(), |acc, b| acc.union(&cidr(b)));
            match except {
                Some(e) => set.subtract(&cidr(e)),
                None => set,
            }
        })
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        1 => Just(Peer::Any),
        4 => pod_match().prop_map(Peer::Pods),
        2 => ip_set().prop_map(Peer::Ips),
    ]
}

fn conn_set() -> impl Strategy<Value = ConnSet> {
    prop_oneof![
        protocol().prop_map(ConnSet::protocol),
        (protocol(), select(PORTS)).prop_map(|(p, n)| ConnSet::single(p, n)),
        (protocol(), select(PORTS), select(PORTS))
            .prop_map(|(p, a, b)| { ConnSet::ports(p, RangeSet::range(a.min(b), a.max(b))) }),
        (protocol(), 1u16..=65535, 0u16..200).prop_map(|(p, a, len)| {
            ConnSet::ports(p, RangeSet::range(a, a.saturating_add(len)))
        }),
    ]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
    prop_oneof![
        3 => conn_set().prop_map(PortMatch::Conns),
        2 => (prop::option::of(protocol()), select(PORT_NAMES)).prop_map(|(protocol, name)| {
            PortMatch::Named {
                protocol,
                name: name.to_string(),
            }
        }),
    ]
}

fn rule(actions: &'static [Action]) -> impl Strategy<Value = Rule> {
    (
        select(actions),
        prop::collection::vec(peer(), 1..3),
        prop::option::weighted(0.6, prop::collection::vec(port_match(), 1..3)),
    )
        .prop_map(|(action, peers, ports)| Rule {
            name: String::new(),
            action,
            peers,
            ports,
        })
}

fn rules(actions: &'static [Action]) -> impl Strategy<Value = Option<Vec<Rule>>> {
    prop::option::weighted(0.7, prop::collection::vec(rule(actions), 0..3)).prop_map(|rs| {
        rs.map(|rs| {
            rs.into_iter()
                .enumerate()
                .map(|(i, mut r)| {
                    r.name = format!("rule{i}");
                    r
                })
                .collect()
        })
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    const ADMIN: &[Action] = &[Action::Allow, Action::Deny, Action::Pass];
    const NAMESPACED: &[Action] = &[Action::Allow];
    const BASELINE: &[Action] = &[Action::Allow, Action::Deny];
    let admin = (0i32..3, pod_match(), rules(ADMIN), rules(ADMIN)).prop_map(
        |(priority, subject, ingress, egress)| Policy {
            kind: "AdminNetworkPolicy".to_string(),
            namespace: None,
            name: String::new(),
            layer: Layer::Admin,
            priority,
            subject,
            ingress,
            egress,
            origin: Origin::default(),
        },
    );
    let namespaced = (
        select(NAMESPACES),
        selector(POD_KEYS, POD_VALUES),
        rules(NAMESPACED),
        rules(NAMESPACED),
    )
        .prop_map(|(ns, pods, ingress, egress)| Policy {
            kind: "NetworkPolicy".to_string(),
            namespace: Some(ns.to_string()),
            name: String::new(),
            layer: Layer::Namespaced,
            priority: 0,
            subject: PodMatch {
                namespaces: NsMatch::Exact(ns.to_string()),
                pods,
            },
            ingress,
            egress,
            origin: Origin::default(),
        });
    let baseline =
        (pod_match(), rules(BASELINE), rules(BASELINE)).prop_map(|(subject, ingress, egress)| {
            Policy {
                kind: "BaselineAdminNetworkPolicy".to_string(),
                namespace: None,
                name: "default".to_string(),
                layer: Layer::Baseline,
                priority: 0,
                subject,
                ingress,
                egress,
                origin: Origin::default(),
            }
        });
    prop_oneof![4 => admin, 3 => namespaced, 2 => baseline]
}

fn workload() -> impl Strategy<Value = (usize, Labels, Vec<(usize, Protocol, u16)>)> {
    (
        0usize..3,
        labels(POD_KEYS, POD_VALUES),
        // Named ports: at most one per name, as in a pod.
        prop::collection::btree_map(0..PORT_NAMES.len(), (protocol(), select(PORTS)), 0..3)
            .prop_map(|m| m.into_iter().map(|(n, (p, port))| (n, p, port)).collect()),
    )
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        2usize..=3,
        prop::collection::vec(labels(&["team", "env"], &["a", "b"]), 3),
        prop::collection::vec(workload(), 2..=5),
        prop::collection::vec((policy(), select(&["a", "b", "c", "d"][..])), 0..=5),
    )
        .prop_map(|(n_ns, ns_labels, workloads, policies)| {
            let mut c = Cluster::default();
            for (i, l) in ns_labels.into_iter().take(n_ns).enumerate() {
                c.ensure_namespace(NAMESPACES[i]).extend(l);
                c.ensure_namespace(NAMESPACES[i]);
            }
            for (i, (ns, labels, ports)) in workloads.into_iter().enumerate() {
                c.workloads.push(Workload {
                    namespace: NAMESPACES[ns % n_ns].to_string(),
                    name: format!("w{i}"),
                    kind: "Deployment".to_string(),
                    labels: labels.clone(),
                    label_variants: vec![labels],
                    named_ports: ports
                        .into_iter()
                        .map(|(n, protocol, port)| NamedPort {
                            name: PORT_NAMES[n].to_string(),
                            protocol,
                            port,
                        })
                        .collect(),
                    members: vec![format!("w{i}")],
                    addresses: Vec::new(),
                    origin: Origin::default(),
                    service_account: None,
                });
            }
            for (i, (mut p, letter)) in policies.into_iter().enumerate() {
                if p.layer != Layer::Baseline {
                    // Names sort differently from the order of the policies, and are unique.
                    p.name = format!("{letter}{i}");
                }
                c.policies.push(p);
            }
            c
        })
}

/// Makes every policy select every workload in its namespace scope, every admin priority equal
/// and every pod peer `Any`: rules then overlap everywhere, and the order of precedence
/// (priority ties broken by name, rule order, Pass) decides nearly every answer.
fn dense(mut c: Cluster) -> Cluster {
    for p in &mut c.policies {
        p.priority = 0;
        p.subject.pods = Selector::everything();
        if let NsMatch::Selector(s) = &mut p.subject.namespaces {
            *s = Selector::everything();
        }
        for r in p.ingress.iter_mut().chain(p.egress.iter_mut()).flatten() {
            for peer in &mut r.peers {
                if matches!(peer, Peer::Pods(_)) {
                    *peer = Peer::Any;
                }
            }
        }
    }
    c
}

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

/// Ports to probe: fixed ones around common ports and the extremes, plus both sides of every
/// range boundary and named port in the cluster.
fn probe_ports(c: &Cluster) -> Vec<u16> {
    let mut out: BTreeSet<u16> = [
        1, 2, 52, 53, 54, 79, 80, 81, 442, 443, 444, 8079, 8080, 8081, 65534, 65535,
    ]
    .into_iter()
    .collect();
    let mut add = |a: u16, b: u16| {
        for x in [a.saturating_sub(1), a, b, b.saturating_add(1)] {
            if (MIN_PORT..=MAX_PORT).contains(&x) {
                out.insert(x);
            }
        }
    };
    for w in &c.workloads {
        for np in &w.named_ports {
            add(np.port, np.port);
        }
    }
    for p in &c.policies {
        for r in p.ingress.iter().chain(p.egress.iter()).flatten() {
            for pm in r.ports.iter().flatten() {
                if let PortMatch::Conns(cs) = pm {
                    for proto in Protocol::ALL {
                        for &(a, b) in cs.ports_of(proto).ranges() {
                            add(a, b);
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The reason given for a direction must fit the decision.
fn check_reason(c: &Cluster, d: &DirDecision) -> Result<(), TestCaseError> {
    let rule_of = |r: bulkhead_core::RuleRef| {
        c.policies[r.policy]
            .rules(d.direction)
            .map(|rs| rs[r.rule].clone())
    };
    match &d.reason {
        Reason::Admin { rule, action } => {
            prop_assert_eq!(c.policies[rule.policy].layer, Layer::Admin);
            prop_assert_eq!(rule_of(*rule).map(|r| r.action), Some(*action));
            prop_assert_eq!(d.allowed, *action == Action::Allow);
            prop_assert!(*action != Action::Pass, "Pass never decides");
            prop_assert!(d.passed_by.is_none(), "an admin decision was not passed");
        }
        Reason::NetworkPolicyAllow { rules } => {
            prop_assert!(d.allowed);
            prop_assert!(!rules.is_empty());
            for r in rules {
                prop_assert_eq!(c.policies[r.policy].layer, Layer::Namespaced);
            }
        }
        Reason::NetworkPolicyIsolated { policies } => {
            prop_assert!(!d.allowed);
            prop_assert!(!policies.is_empty());
            for &p in policies {
                prop_assert_eq!(c.policies[p].layer, Layer::Namespaced);
            }
        }
        Reason::Baseline { rule, action } => {
            prop_assert_eq!(c.policies[rule.policy].layer, Layer::Baseline);
            prop_assert_eq!(rule_of(*rule).map(|r| r.action), Some(*action));
            prop_assert_eq!(d.allowed, *action == Action::Allow);
        }
        Reason::Default => prop_assert!(d.allowed),
    }
    if let Some(r) = d.passed_by {
        prop_assert_eq!(c.policies[r.policy].layer, Layer::Admin);
        prop_assert_eq!(rule_of(r).map(|r| r.action), Some(Action::Pass));
    }
    Ok(())
}

fn check_cluster(c: &Cluster) -> Result<(), TestCaseError> {
    let engine = Engine::new(c);
    let ports = probe_ports(c);
    let workloads: Vec<Endpoint> = (0..c.workloads.len()).map(Endpoint::Workload).collect();
    let ingress_pieces = engine.external_pieces(Direction::Ingress);
    let egress_pieces = engine.external_pieces(Direction::Egress);

    // The pieces cover the address space without overlap, and every address set named in a
    // direction holds each of that direction's pieces entirely or not at all.
    for (dir, pieces) in [
        (Direction::Ingress, &ingress_pieces),
        (Direction::Egress, &egress_pieces),
    ] {
        let mut v4 = 0u64;
        let mut v6 = 0u128;
        let mut v6_wrapped = false;
        for r in pieces.iter() {
            match *r {
                IpRange::V4(a, b) => {
                    prop_assert_eq!(u64::from(a), v4, "v4 pieces are contiguous");
                    v4 = u64::from(b) + 1;
                }
                IpRange::V6(a, b) => {
                    prop_assert!(!v6_wrapped && a == v6, "v6 pieces are contiguous");
                    match b.checked_add(1) {
                        Some(n) => v6 = n,
                        None => v6_wrapped = true,
                    }
                }
            }
        }
        prop_assert_eq!(v4, 1u64 << 32, "v4 pieces reach the end");
        prop_assert!(v6_wrapped, "v6 pieces reach the end");
        let named: Vec<&IpSet> = c
            .policies
            .iter()
            .flat_map(|p| p.rules(dir).unwrap_or_default())
            .flat_map(|r| &r.peers)
            .filter_map(|peer| match peer {
                Peer::Ips(set) => Some(set),
                _ => None,
            })
            .collect();
        prop_assert_eq!(
            engine.referenced_ip_sets(dir),
            named.clone(),
            "{} address sets",
            dir
        );
        for set in named {
            for &piece in pieces.iter() {
                let whole = set.contains_range(piece);
                let none = !set.contains(piece.first()) && !set.contains(piece.last());
                prop_assert!(whole || none, "{:?} splits piece {}", set, piece);
            }
        }
    }

    let sources: Vec<Endpoint> = workloads
        .iter()
        .copied()
        .chain(ingress_pieces.iter().map(|&r| Endpoint::External(r)))
        .collect();
    let destinations: Vec<Endpoint> = workloads
        .iter()
        .copied()
        .chain(egress_pieces.iter().map(|&r| Endpoint::External(r)))
        .collect();
    for &s in &sources {
        for &d in &destinations {
            if matches!((s, d), (Endpoint::External(_), Endpoint::External(_)))
                && (s, d)
                    != (
                        sources[sources.len() - 1],
                        destinations[destinations.len() - 1],
                    )
            {
                // Two external ends: checking one pair is enough.
                continue;
            }
            let set = engine.allowed(s, d);
            let egress_set = match s {
                Endpoint::Workload(a) => Some(engine.direction_allowed(Direction::Egress, a, d)),
                Endpoint::External(_) => None,
            };
            let ingress_set = match d {
                Endpoint::Workload(b) => Some(engine.direction_allowed(Direction::Ingress, b, s)),
                Endpoint::External(_) => None,
            };
            for proto in Protocol::ALL {
                for &port in &ports {
                    let decision = engine.decide(s, d, proto, port);
                    let by_set = set.contains(proto, port);
                    let expected = brute::connection(c, s, d, proto, port);
                    prop_assert_eq!(
                        by_set,
                        decision.allowed,
                        "allowed({}, {}) = {} vs decide at {} {}: {:?}",
                        s,
                        d,
                        set,
                        proto,
                        port,
                        decision
                    );
                    prop_assert_eq!(
                        decision.allowed,
                        expected,
                        "engine vs brute force for {} -> {} at {} {}: {:?}",
                        s,
                        d,
                        proto,
                        port,
                        decision
                    );
                    for (dd, dset, subject, other) in [
                        (&decision.egress, &egress_set, s, d),
                        (&decision.ingress, &ingress_set, d, s),
                    ] {
                        prop_assert_eq!(dd.is_some(), dset.is_some());
                        let (Some(dd), Some(dset), Endpoint::Workload(w)) = (dd, dset, subject)
                        else {
                            continue;
                        };
                        check_reason(c, dd)?;
                        prop_assert_eq!(dd.allowed, dset.contains(proto, port));
                        prop_assert_eq!(
                            dd.allowed,
                            brute::direction(c, dd.direction, w, other, proto, port),
                            "{} of {} with {} at {} {}: {:?}",
                            dd.direction,
                            subject,
                            other,
                            proto,
                            port,
                            dd
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_itself_and_with_brute_force(c in cluster()) {
        check_cluster(&c)?;
    }

    #[test]
    fn dense_clusters_agree_too(c in cluster().prop_map(dense)) {
        check_cluster(&c)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-made clusters for the corners the generator reaches only by chance.
// ---------------------------------------------------------------------------------------------

fn workload_in(ns: &str, name: &str, app: &str, ports: &[(&str, Protocol, u16)]) -> Workload {
    let labels: Labels = [("app".to_string(), app.to_string())].into_iter().collect();
    Workload {
        namespace: ns.to_string(),
        name: name.to_string(),
        kind: "Pod".to_string(),
        labels: labels.clone(),
        label_variants: vec![labels],
        named_ports: ports
            .iter()
            .map(|&(n, protocol, port)| NamedPort {
                name: n.to_string(),
                protocol,
                port,
            })
            .collect(),
        members: vec![name.to_string()],
        addresses: Vec::new(),
        origin: Origin::default(),
        service_account: None,
    }
}

fn admin(name: &str, priority: i32, ingress: Vec<Rule>) -> Policy {
    Policy {
        kind: "AdminNetworkPolicy".to_string(),
        namespace: None,
        name: name.to_string(),
        layer: Layer::Admin,
        priority,
        subject: PodMatch {
            namespaces: NsMatch::Selector(Selector::everything()),
            pods: Selector::everything(),
        },
        ingress: Some(ingress),
        egress: None,
        origin: Origin::default(),
    }
}

fn any_rule(action: Action, ports: Option<Vec<PortMatch>>) -> Rule {
    Rule {
        name: "r".to_string(),
        action,
        peers: vec![Peer::Any],
        ports,
    }
}

fn conns(s: &str) -> PortMatch {
    PortMatch::Conns(s.parse().expect("valid connection set"))
}

#[test]
fn hand_made_corners() {
    let mk = |policies: Vec<Policy>| {
        let mut c = Cluster::default();
        c.ensure_namespace("ns");
        c.workloads.push(workload_in(
            "ns",
            "a",
            "a",
            &[("http", Protocol::Tcp, 8080), ("dns", Protocol::Udp, 53)],
        ));
        c.workloads.push(workload_in("ns", "b", "b", &[]));
        c.policies = policies;
        c
    };
    let np_allow = |ports: Option<Vec<PortMatch>>| Policy {
        kind: "NetworkPolicy".to_string(),
        namespace: Some("ns".to_string()),
        name: "np".to_string(),
        layer: Layer::Namespaced,
        priority: 0,
        subject: PodMatch {
            namespaces: NsMatch::Exact("ns".to_string()),
            pods: Selector::label("app", "a"),
        },
        ingress: Some(vec![any_rule(Action::Allow, ports)]),
        egress: None,
        origin: Origin::default(),
    };
    let cases: Vec<(&str, Vec<Policy>, &str)> = vec![
        ("no policy: all", vec![], "All Connections"),
        (
            "equal priority: the name decides, not the order",
            vec![
                admin("b", 1, vec![any_rule(Action::Allow, None)]),
                admin(
                    "a",
                    1,
                    vec![any_rule(Action::Deny, Some(vec![conns("TCP 1-65535")]))],
                ),
            ],
            "SCTP 1-65535,UDP 1-65535",
        ),
        (
            "Pass on the last port, then a NetworkPolicy allowing a named port",
            vec![
                admin(
                    "a",
                    0,
                    vec![any_rule(
                        Action::Pass,
                        Some(vec![conns("TCP 65535"), conns("UDP 1-100")]),
                    )],
                ),
                admin("b", 1, vec![any_rule(Action::Deny, None)]),
                np_allow(Some(vec![
                    PortMatch::Named {
                        protocol: Some(Protocol::Udp),
                        name: "dns".to_string(),
                    },
                    conns("TCP 65535"),
                ])),
            ],
            "TCP 65535,UDP 53",
        ),
        (
            "an admin Allow on a named port without protocol takes the port's own",
            vec![admin(
                "a",
                0,
                vec![
                    any_rule(
                        Action::Allow,
                        Some(vec![PortMatch::Named {
                            protocol: None,
                            name: "dns".to_string(),
                        }]),
                    ),
                    any_rule(Action::Deny, None),
                ],
            )],
            "UDP 53",
        ),
        (
            "a named port asked for with another protocol matches nothing",
            vec![np_allow(Some(vec![PortMatch::Named {
                protocol: Some(Protocol::Tcp),
                name: "dns".to_string(),
            }]))],
            "No Connections",
        ),
        (
            "a policy with an empty ingress list still isolates",
            vec![Policy {
                ingress: Some(vec![]),
                ..np_allow(None)
            }],
            "No Connections",
        ),
    ];
    for (msg, policies, want) in cases {
        let c = mk(policies);
        let engine = Engine::new(&c);
        let got = engine.allowed(Endpoint::Workload(1), Endpoint::Workload(0));
        assert_eq!(got.to_string(), want, "{msg}");
        check_cluster(&c).unwrap_or_else(|e| panic!("{msg}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The fast paths: class-level full connectivity and incremental updates.
// ---------------------------------------------------------------------------------------------

/// Every endpoint pair's connections, pairwise (`allowed`), workloads and external pieces.
fn pairwise(engine: &Engine<'_>) -> std::collections::BTreeMap<(Endpoint, Endpoint), ConnSet> {
    let n = engine.cluster().workloads.len();
    let srcs: Vec<Endpoint> = (0..n)
        .map(Endpoint::Workload)
        .chain(
            engine
                .external_pieces(Direction::Ingress)
                .into_iter()
                .map(Endpoint::External),
        )
        .collect();
    let dsts: Vec<Endpoint> = (0..n)
        .map(Endpoint::Workload)
        .chain(
            engine
                .external_pieces(Direction::Egress)
                .into_iter()
                .map(Endpoint::External),
        )
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for &s in &srcs {
        for &d in &dsts {
            if s == d || matches!((s, d), (Endpoint::External(_), Endpoint::External(_))) {
                continue;
            }
            let c = engine.allowed(s, d);
            if !c.is_empty() {
                out.insert((s, d), c);
            }
        }
    }
    out
}

fn classwise(
    engine: &Engine<'_>,
) -> Result<std::collections::BTreeMap<(Endpoint, Endpoint), ConnSet>, TestCaseError> {
    let mut out = std::collections::BTreeMap::new();
    let mut dup = None;
    engine.for_each_connection(|s, d, c| {
        if out.insert((s, d), c.clone()).is_some() {
            dup = Some((s, d));
        }
    });
    prop_assert!(dup.is_none(), "pair visited twice: {:?}", dup);
    Ok(out)
}

/// A policy edit: replace policy `i`, remove it, add a new one, or give policy `i`'s rule `k`
/// (counting ingress, then egress) new ports and, for an admin policy, maybe a new action —
/// everything else kept, as a port change in a bank's pipeline would (the engine may then keep
/// the policy's classes in place).
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Policy),
    Remove(usize),
    Add(Policy),
    Retune(usize, usize, Option<Vec<PortMatch>>, Option<Action>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0usize..8, policy()).prop_map(|(i, p)| Edit::Replace(i, p)),
        (0usize..8).prop_map(Edit::Remove),
        policy().prop_map(Edit::Add),
        (
            0usize..8,
            0usize..6,
            prop::option::of(prop::collection::vec(port_match(), 1..3)),
            prop::option::of(select(&[Action::Allow, Action::Deny, Action::Pass])),
        )
            .prop_map(|(i, k, ports, action)| Edit::Retune(i, k, ports, action)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn class_level_connectivity_equals_pairwise(c in cluster()) {
        let engine = Engine::new(&c);
        prop_assert_eq!(classwise(&engine)?, pairwise(&engine));
    }

    #[test]
    fn incremental_updates_equal_a_rebuild(
        c in cluster(),
        edits in prop::collection::vec(edit(), 1..7),
        unread in prop::collection::vec(any::<bool>(), 7),
    ) {
        check_edits(c, edits, &unread)?;
    }
}

/// Applies `edits` to an engine of `c` one by one and checks, after each, that the engine
/// equals a fresh one of the edited cluster and that the update reported exactly the direction
/// verdicts that changed (before and after). After the edits `unread` marks (but the last), the
/// engine's verdicts are not read, so that changes pile up on verdicts no one has read (admin
/// layers then wait to be patched); the next read checks them all. Every other report is read
/// only after the next edit is made (the engine has moved on, its atoms perhaps split).
fn check_edits(c: Cluster, edits: Vec<Edit>, unread: &[bool]) -> Result<(), TestCaseError> {
    let mut engine = Engine::owned(c.clone());
    // Warm every class, so stale cached verdicts would show.
    let _ = classwise(&engine)?;
    let mut expected = c;
    let steps = edits.len();
    let mut deferred: Option<ReportCheck> = None;
    for (step, e) in edits.into_iter().enumerate() {
        let n = expected.policies.len();
        let before = Engine::new(&expected);
        let before_dirs = direction_table(&before);
        let old_pieces =
            [Direction::Ingress, Direction::Egress].map(|dir| before.external_pieces(dir));
        let (index, policy) = match e {
            Edit::Replace(i, mut p) if n > 0 => {
                p.name = format!("r{i}");
                (i % n, Some(p))
            }
            Edit::Remove(i) if n > 0 => (i % n, None),
            Edit::Retune(i, k, ports, action) if n > 0 => {
                let mut p = expected.policies[i % n].clone();
                let admin = p.layer == Layer::Admin;
                let mut rules: Vec<&mut Rule> = (p.ingress.iter_mut().flatten())
                    .chain(p.egress.iter_mut().flatten())
                    .collect();
                if rules.is_empty() {
                    continue;
                }
                let count = rules.len();
                let r = &mut rules[k % count];
                r.ports = ports;
                if let Some(a) = action.filter(|_| admin) {
                    r.action = a;
                }
                (i % n, Some(p))
            }
            Edit::Replace(_, p) | Edit::Add(p) => (n, Some(p)),
            Edit::Remove(_) | Edit::Retune(..) => continue,
        };
        let update = engine.set_policy(index, policy.clone());
        if let Some(late) = deferred.take() {
            late.check()?;
        }
        // A report is read after the engine moved on: here, after the same policy is set
        // again (which changes no verdict, though it moves classes and layers).
        if step % 3 == 2
            && let Some(p) = &policy
        {
            let again = engine.set_policy(index, Some(p.clone()));
            prop_assert_eq!(again.changed_pairs(), 0, "setting the same policy again");
        }
        // Pairs the update names as affected include every changed pair.
        let affected = update.affected_pairs();
        // Dropping retired keys and empty classes (which set_policy does by itself only
        // once they pile up) must change nothing: every check below also runs after it.
        if step % 2 == 1 {
            let classes = engine.class_counts();
            engine.compact();
            prop_assert_eq!(engine.class_counts(), classes);
        }
        // What a removal leaves behind, to rebuild from the same policy list.
        let placeholder = engine.cluster().policies[index].clone();
        if index == n {
            expected.policies.push(placeholder);
        } else {
            expected.policies[index] = placeholder;
        }
        let fresh = Engine::new(&expected);
        if !unread.get(step).copied().unwrap_or(false) || step + 1 == steps {
            prop_assert_eq!(classwise(&engine)?, pairwise(&fresh), "after {:?}", update);
        }
        let check = ReportCheck {
            update,
            affected,
            before_dirs,
            after_dirs: direction_table(&fresh),
            workloads: expected.workloads.len(),
            old_pieces,
            new_pieces: [Direction::Ingress, Direction::Egress]
                .map(|dir| fresh.external_pieces(dir)),
        };
        if step % 2 == 0 {
            deferred = Some(check);
        } else {
            check.check()?;
        }
    }
    if let Some(late) = deferred {
        late.check()?;
    }
    Ok(())
}

/// An update's report with what it must say: the direction verdicts before and after (from
/// fresh engines), the workloads, and the external pieces before and after.
struct ReportCheck {
    update: bulkhead_core::engine::Update,
    /// The pairs the update named as affected, counted as it was made.
    affected: usize,
    before_dirs: std::collections::BTreeMap<(Direction, usize, usize), ConnSet>,
    after_dirs: std::collections::BTreeMap<(Direction, usize, usize), ConnSet>,
    workloads: usize,
    old_pieces: [Vec<IpRange>; 2],
    new_pieces: [Vec<IpRange>; 2],
}

impl ReportCheck {
    /// The reported changes are exactly the direction verdicts that changed. When the external
    /// pieces moved, a new piece's verdicts before are those of the old piece holding its first
    /// address.
    fn check(&self) -> Result<(), TestCaseError> {
        let ReportCheck {
            update,
            affected,
            before_dirs,
            after_dirs,
            workloads,
            old_pieces,
            new_pieces,
        } = self;
        let (affected, workloads) = (*affected, *workloads);
        let was = |dir: Direction, u: usize| -> usize {
            let Some(j) = u.checked_sub(workloads) else {
                return u;
            };
            let d = usize::from(dir == Direction::Egress);
            let (old, first) = (&old_pieces[d], new_pieces[d][j].first());
            workloads + (old.iter().position(|o| o.contains(first))).expect("pieces cover all")
        };
        let mut reported = std::collections::BTreeMap::new();
        for ch in update.changes() {
            // A change's peer count (which may come from counts the engine keeps) is the
            // number of peers it lists.
            prop_assert_eq!(ch.peers.count(), ch.peers.ones().count());
            for s in ch.subjects.ones() {
                for u in ch.peers.ones() {
                    let prev = reported
                        .insert((ch.direction, s, u), (ch.before.clone(), ch.after.clone()));
                    prop_assert!(prev.is_none(), "change reported twice");
                }
            }
        }
        for (key, a) in after_dirs {
            let b = &before_dirs[&(key.0, key.1, was(key.0, key.2))];
            match reported.get(key) {
                Some((rb, ra)) => {
                    prop_assert_eq!(rb, b, "reported before of {:?}", key);
                    prop_assert_eq!(ra, a, "reported after of {:?}", key);
                    prop_assert_ne!(a, b);
                }
                None => prop_assert_eq!(a, b, "unreported change at {:?}", key),
            }
        }
        prop_assert_eq!(update.changed_pairs(), reported.len());
        prop_assert!(affected >= reported.len(), "{affected} affected pairs");
        Ok(())
    }
}

/// Per direction, subject and peer (as universe index: workloads, then that direction's pieces).
fn direction_table(
    engine: &Engine<'_>,
) -> std::collections::BTreeMap<(Direction, usize, usize), ConnSet> {
    let n = engine.cluster().workloads.len();
    let mut out = std::collections::BTreeMap::new();
    for dir in [Direction::Ingress, Direction::Egress] {
        let peers: Vec<Endpoint> = (0..n)
            .map(Endpoint::Workload)
            .chain(
                engine
                    .external_pieces(dir)
                    .into_iter()
                    .map(Endpoint::External),
            )
            .collect();
        for s in 0..n {
            for (u, &p) in peers.iter().enumerate() {
                out.insert((dir, s, u), engine.direction_allowed(dir, s, p));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Grouped reachability (`Engine::for_each_reach`, used by `bulkhead verify --k8s`).
// ---------------------------------------------------------------------------------------------

/// Random subsets of the workloads and of the external ranges (the engine's pieces cut further
/// at `extra`), as sources and destinations.
fn reach_case() -> impl Strategy<Value = (Cluster, u64, u64, u64, u64, Option<&'static str>)> {
    (
        cluster(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::option::of(select(CIDRS)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every (source, destination) pair of the two sets, except a workload with itself and two
    /// external ranges, lands in exactly one group, whose connections are the pair's own
    /// (`allowed`) and whose example is one of those sources.
    #[test]
    fn reach_groups_equal_pairwise_allowed(case in reach_case()) {
        let (c, sw, sx, dw, dx, extra) = case;
        let engine = Engine::new(&c);
        let n = c.workloads.len();
        let extra: Vec<IpSet> = extra.map(cidr).into_iter().collect();
        let extra_refs: Vec<&IpSet> = extra.iter().collect();
        let pick = |mask: u64, k: usize| mask >> (k % 64) & 1 == 1;
        let subset = |ws: u64, xs: u64, dir: Direction| {
            let mut b = bulkhead_core::Bitset::empty(n);
            (0..n).filter(|&i| pick(ws, i)).for_each(|i| b.insert(i));
            let ext: Vec<IpRange> = engine
                .external_cuts(dir, &extra_refs)
                .into_iter()
                .enumerate()
                .filter(|(k, _)| pick(xs, *k))
                .map(|(_, r)| r)
                .collect();
            bulkhead_core::Endpoints { workloads: b, external: ext }
        };
        let srcs = subset(sw, sx, Direction::Ingress);
        let dsts = subset(dw, dx, Direction::Egress);
        let all = |e: &bulkhead_core::Endpoints| -> Vec<Endpoint> {
            e.workloads.ones().map(Endpoint::Workload)
                .chain(e.external.iter().map(|&r| Endpoint::External(r)))
                .collect()
        };
        // Pairwise: destination -> connection set -> sources.
        let mut want: std::collections::BTreeMap<(Endpoint, String), BTreeSet<Endpoint>> =
            Default::default();
        for s in all(&srcs) {
            for d in all(&dsts) {
                if s == d || matches!((s, d), (Endpoint::External(_), Endpoint::External(_))) {
                    continue;
                }
                want.entry((d, engine.allowed(s, d).to_string())).or_default().insert(s);
            }
        }
        let mut got: std::collections::BTreeMap<(Endpoint, String), u64> = Default::default();
        let mut bad_example = None;
        engine
            .for_each_reach(&srcs, &dsts, |g| {
                let key = (g.dst, g.conns.to_string());
                if !want.get(&key).is_some_and(|s| s.contains(&g.example)) {
                    bad_example = Some(format!("{key:?} example {:?}", g.example));
                }
                *got.entry(key).or_default() += g.sources;
            })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(bad_example.is_none(), "{:?}", bad_example);
        let want: std::collections::BTreeMap<(Endpoint, String), u64> =
            want.into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
        prop_assert_eq!(got, want);
    }
}

/// An admin change followed by a rule on an ingress named port that two workloads resolve to
/// different ports: the rest of the sweep after the changed policy depends on the workload, and
/// the incremental update must not share it between them.
#[test]
fn admin_change_before_a_named_port_rule() {
    let mut c = Cluster::default();
    c.ensure_namespace("ns");
    c.workloads.push(workload_in(
        "ns",
        "w0",
        "w0",
        &[("http", Protocol::Tcp, 80)],
    ));
    c.workloads.push(workload_in(
        "ns",
        "w1",
        "w1",
        &[("http", Protocol::Tcp, 81)],
    ));
    c.workloads.push(workload_in("ns", "w2", "w2", &[]));
    let named = PortMatch::Named {
        protocol: None,
        name: "http".to_string(),
    };
    c.policies = vec![
        admin(
            "a",
            1,
            vec![any_rule(Action::Allow, Some(vec![conns("TCP 80")]))],
        ),
        admin("b", 2, vec![any_rule(Action::Deny, Some(vec![named]))]),
    ];
    let edits = vec![
        Edit::Replace(
            0,
            admin(
                "a",
                1,
                vec![any_rule(Action::Allow, Some(vec![conns("TCP 81")]))],
            ),
        ),
        Edit::Replace(
            0,
            admin(
                "a",
                1,
                vec![any_rule(Action::Pass, Some(vec![conns("TCP 80-81")]))],
            ),
        ),
        Edit::Remove(0),
    ];
    check_edits(c, edits, &[]).expect("incremental updates agree with a rebuild");
}

/// An admin policy with a rule per namespace, over more namespaces than the engine counts a
/// lower block's peers from its admin atoms for (64): removing it changes regions that several
/// lower blocks meet, none of them counted from the atoms, so the counts of all but one come
/// from the peers and the last from what they leave of the region. The update must still
/// report exactly the direction verdicts that changed, with their counts.
#[test]
fn admin_removal_over_many_atoms() {
    const NAMESPACES: usize = 72;
    let mut c = Cluster::default();
    let tiered = |ns: &str, name: String, tier: &str| {
        let mut w = workload_in(ns, &name, &name, &[]);
        w.labels.insert("tier".to_string(), tier.to_string());
        w.label_variants = vec![w.labels.clone()];
        w
    };
    for k in 0..NAMESPACES {
        let ns = format!("n{k:02}");
        c.ensure_namespace(&ns)
            .insert("slot".to_string(), format!("s{k}"));
        for tier in ["web", "db", "batch"] {
            c.workloads.push(tiered(&ns, format!("{tier}-{k}"), tier));
        }
    }
    let in_namespaces = |namespaces: Selector, pods: Selector| {
        Peer::Pods(PodMatch {
            namespaces: NsMatch::Selector(namespaces),
            pods,
        })
    };
    let egress_admin = |name: &str, priority: i32, egress: Vec<Rule>| Policy {
        ingress: None,
        egress: Some(egress),
        ..admin(name, priority, Vec::new())
    };
    let actions = [Action::Allow, Action::Deny, Action::Pass];
    let ports = ["TCP 80", "TCP 5432", "TCP 1-65535"];
    let per_namespace = (0..NAMESPACES)
        .map(|k| Rule {
            name: format!("to-n{k:02}"),
            action: actions[k % 3],
            peers: vec![in_namespaces(
                Selector::label("slot", &format!("s{k}")),
                Selector::everything(),
            )],
            ports: Some(vec![conns(ports[(k / 3) % 3])]),
        })
        .collect();
    let lower_deny = any_rule(Action::Deny, Some(vec![conns("TCP 80")]));
    let tier_rule = |tier: &str, port: &str| Rule {
        name: tier.to_string(),
        action: Action::Allow,
        peers: vec![in_namespaces(
            Selector::everything(),
            Selector::label("tier", tier),
        )],
        ports: Some(vec![conns(port)]),
    };
    // The workloads of the first namespace egress to web and db workloads anywhere, each on
    // its own port: their lower layer has three blocks (web, db, the rest), each spread over
    // every namespace.
    let np = Policy {
        kind: "NetworkPolicy".to_string(),
        namespace: Some("n00".to_string()),
        name: "n00-out".to_string(),
        layer: Layer::Namespaced,
        priority: 0,
        subject: PodMatch {
            namespaces: NsMatch::Exact("n00".to_string()),
            pods: Selector::everything(),
        },
        ingress: None,
        egress: Some(vec![
            tier_rule("web", "TCP 80"),
            tier_rule("db", "TCP 5432"),
        ]),
        origin: Origin::default(),
    };
    c.policies = vec![
        egress_admin("per-namespace", 5, per_namespace),
        egress_admin("floor", 9, vec![lower_deny]),
        np,
    ];
    check_edits(c, vec![Edit::Remove(0), Edit::Remove(0)], &[])
        .expect("incremental updates agree with a rebuild");
}
