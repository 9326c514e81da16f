//! `verify_k8s` equals brute force on random small clusters.
//!
//! Clusters are built from core types the way `crates/core/tests/engine_agreement.rs` does
//! (namespaces and workloads with labels from a small vocabulary and named ports; NetworkPolicy,
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy with pod, address and any peers and
//! numbered and named ports); an intent with fixed segments and random `never`, `only` and
//! `mustAllow` invariants (segments, CIDRs, `any`; optional ports) is read from YAML.
//!
//! The brute force asks the engine's per-pair, per-port `decide` (what `bulkhead eval` answers)
//! for every source and destination the invariant ranges over — workloads, and one address per
//! piece of the address space cut at every CIDR of the policies and the invariants — and for
//! every protocol at every port where some range of the cluster or the invariant starts or
//! stops (ports in between are decided alike). It must find the same status, the same number
//! of pairs checked and violating, and each reported example must be a real violation.

use bulkhead_analysis::verify_k8s;
use bulkhead_core::ip::pieces;
use bulkhead_core::{
    Action, Cluster, ConnSet, Endpoint, Engine, IpRange, IpSet, Labels, Layer, NamedPort, NsMatch,
    Operator, Origin, Peer, PodMatch, Policy, PortMatch, Protocol, RangeSet, Requirement, Rule,
    Selector, Workload,
};
use bulkhead_intent::{
    Identity, Intent, InvariantKind, Peer as IPeer, Status, VerifyOptions, load_str,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::BTreeSet;

const NAMESPACES: &[&str] = &["ns0", "ns1", "ns2"];
const APPS: &[&str] = &["x", "y", "z"];
const PORT_NAMES: &[&str] = &["http", "dns"];
const PORTS: &[u16] = &[1, 53, 80, 443, 8080, 65535];
const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "fd00::/8",
];

fn protocol() -> impl Strategy<Value = Protocol> {
    select(&Protocol::ALL[..])
}

fn app_selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::everything()),
        prop::collection::vec(select(APPS), 1..3).prop_map(|v| {
            let vals = v.into_iter().map(String::from).collect();
            Selector::new(
                [],
                [Requirement::new("app", Operator::In, vals).expect("valid")],
            )
            .expect("valid")
        }),
    ]
}

fn pod_match() -> impl Strategy<Value = PodMatch> {
    (
        prop_oneof![
            2 => Just(NsMatch::Selector(Selector::everything())),
            1 => select(&["a", "b"][..]).prop_map(|t| NsMatch::Selector(
                Selector::new([("team".to_string(), t.to_string())], []).expect("valid"),
            )),
            1 => select(NAMESPACES).prop_map(|n| NsMatch::Exact(n.to_string())),
        ],
        app_selector(),
    )
        .prop_map(|(namespaces, pods)| PodMatch { namespaces, pods })
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        1 => Just(Peer::Any),
        3 => pod_match().prop_map(Peer::Pods),
        2 => (select(CIDRS), prop::option::of(select(CIDRS))).prop_map(|(c, e)| {
            let set = IpSet::cidr(c).expect("valid");
            Peer::Ips(match e {
                Some(e) => set.subtract(&IpSet::cidr(e).expect("valid")),
                None => set,
            })
        }),
    ]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
    prop_oneof![
        2 => (protocol(), select(PORTS)).prop_map(|(p, n)| PortMatch::Conns(ConnSet::single(p, n))),
        2 => (protocol(), select(PORTS), select(PORTS)).prop_map(|(p, a, b)| {
            PortMatch::Conns(ConnSet::ports(p, RangeSet::range(a.min(b), a.max(b))))
        }),
        1 => (prop::option::of(protocol()), select(PORT_NAMES)).prop_map(|(protocol, name)| {
            PortMatch::Named { protocol, name: name.to_string() }
        }),
    ]
}

fn rules(actions: &'static [Action]) -> impl Strategy<Value = Option<Vec<Rule>>> {
    prop::option::weighted(
        0.7,
        prop::collection::vec(
            (
                select(actions),
                prop::collection::vec(peer(), 1..3),
                prop::option::weighted(0.6, prop::collection::vec(port_match(), 1..3)),
            ),
            0..3,
        ),
    )
    .prop_map(|rs| {
        rs.map(|rs| {
            rs.into_iter()
                .enumerate()
                .map(|(i, (action, peers, ports))| Rule {
                    name: format!("rule{i}"),
                    action,
                    peers,
                    ports,
                })
                .collect()
        })
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    const ADMIN: &[Action] = &[Action::Allow, Action::Deny, Action::Pass];
    const NAMESPACED: &[Action] = &[Action::Allow];
    const BASELINE: &[Action] = &[Action::Allow, Action::Deny];
    let mk =
        |kind: &str, layer, namespace: Option<String>, priority, subject, ingress, egress| Policy {
            kind: kind.to_string(),
            namespace,
            name: String::new(),
            layer,
            priority,
            subject,
            ingress,
            egress,
            origin: Origin::default(),
        };
    prop_oneof![
        4 => (0i32..3, pod_match(), rules(ADMIN), rules(ADMIN)).prop_map(move |(p, s, i, e)| {
            mk("AdminNetworkPolicy", Layer::Admin, None, p, s, i, e)
        }),
        4 => (select(NAMESPACES), app_selector(), rules(NAMESPACED), rules(NAMESPACED)).prop_map(
            move |(ns, pods, i, e)| {
                let subject = PodMatch { namespaces: NsMatch::Exact(ns.to_string()), pods };
                mk("NetworkPolicy", Layer::Namespaced, Some(ns.to_string()), 0, subject, i, e)
            }
        ),
        1 => (pod_match(), rules(BASELINE), rules(BASELINE)).prop_map(move |(s, i, e)| {
            mk("BaselineAdminNetworkPolicy", Layer::Baseline, None, 0, s, i, e)
        }),
    ]
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        prop::collection::vec(select(&["a", "b"][..]), 3),
        prop::collection::vec(
            (
                0usize..3,
                select(APPS),
                prop::collection::btree_map(0..PORT_NAMES.len(), (protocol(), select(PORTS)), 0..3),
            ),
            2..=6,
        ),
        prop::collection::vec(policy(), 0..=5),
    )
        .prop_map(|(teams, workloads, policies)| {
            let mut c = Cluster::default();
            for (ns, team) in NAMESPACES.iter().zip(teams) {
                c.ensure_namespace(ns).insert("team".into(), team.into());
            }
            for (i, (ns, app, ports)) in workloads.into_iter().enumerate() {
                let labels: Labels = [("app".to_string(), app.to_string())].into_iter().collect();
                c.workloads.push(Workload {
                    namespace: NAMESPACES[ns].to_string(),
                    name: format!("w{i}"),
                    kind: "Deployment".to_string(),
                    labels: labels.clone(),
                    label_variants: vec![labels],
                    named_ports: ports
                        .into_iter()
                        .map(|(k, (protocol, port))| NamedPort {
                            name: PORT_NAMES[k].to_string(),
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
            for (i, mut p) in policies.into_iter().enumerate() {
                p.name = format!("p{i}");
                if p.layer == Layer::Baseline {
                    p.name = "default".into();
                }
                c.policies.push(p);
            }
            // One BaselineAdminNetworkPolicy at most, as in a cluster.
            let mut seen = false;
            c.policies.retain(|p| {
                let keep = p.layer != Layer::Baseline || !seen;
                seen |= p.layer == Layer::Baseline;
                keep
            });
            c
        })
}

const SEGMENTS: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: app-x}
spec:
  podSelector: {matchLabels: {app: x}}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: team-a}
spec:
  namespaceSelector: {matchLabels: {team: a}}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: yz-in-ns1}
spec:
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns1}}
  podSelector: {matchExpressions: [{key: app, operator: In, values: [y, z]}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: hosts}
spec:
  hostSelector: {matchLabels: {app: x}}
"#;

const PEERS: &[&str] = &[
    "{segment: app-x}",
    "{segment: team-a}",
    "{segment: yz-in-ns1}",
    "{segment: hosts}",
    "{cidr: 10.0.0.0/8}",
    "{cidr: 10.1.2.0/24}",
    "{cidr: 0.0.0.0/0}",
    "{any: true}",
];

const INV_PORTS: &[&str] = &[
    "{port: 80}",
    "{protocol: UDP, port: 53}",
    "{port: 440, endPort: 450}",
    "{protocol: SCTP}",
    "{port: http}",
];

fn invariant() -> impl Strategy<Value = String> {
    (
        select(&["never", "only", "mustAllow"][..]),
        prop::collection::vec(select(PEERS), 1..3),
        prop::collection::vec(select(PEERS), 1..3),
        prop::option::weighted(0.6, prop::collection::vec(select(INV_PORTS), 1..3)),
    )
        .prop_map(|(kind, from, to, ports)| {
            // mustAllow names its ports (every port of every protocol is rarely allowed).
            let ports = match (kind, ports) {
                (_, Some(p)) => format!("\n    ports: [{}]", p.join(", ")),
                ("mustAllow", None) => "\n    ports: [{port: 80}]".to_string(),
                _ => String::new(),
            };
            format!(
                "  {kind}:\n    from: [{}]\n    to: [{}]{ports}\n",
                from.join(", "),
                to.join(", ")
            )
        })
}

fn intent(invariants: &[String]) -> Intent {
    let mut y = SEGMENTS.to_string();
    for (i, body) in invariants.iter().enumerate() {
        y.push_str(&format!(
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {{name: inv{i}}}\nspec:\n{body}"
        ));
    }
    let loaded = load_str("intent.yaml", &y);
    assert!(!loaded.has_errors(), "{:?}\n{y}", loaded.diagnostics);
    loaded.intent
}

/// Ports where some range of the cluster or of the invariants starts or stops, and 1.
fn probe_ports(c: &Cluster, intent: &Intent) -> Vec<u16> {
    let mut out: BTreeSet<u16> = [1].into_iter().collect();
    let mut add = |cs: &ConnSet| {
        for p in Protocol::ALL {
            for &(a, b) in cs.ports_of(p).ranges() {
                out.insert(a);
                if b < u16::MAX {
                    out.insert(b + 1);
                }
            }
        }
    };
    for w in &c.workloads {
        for np in &w.named_ports {
            add(&ConnSet::single(np.protocol, np.port));
        }
    }
    let rules = c
        .policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(p.egress.iter()).flatten());
    for pm in rules.flat_map(|r| r.ports.iter().flatten()).chain(
        intent
            .invariants
            .iter()
            .flat_map(|i| i.ports.iter().flatten()),
    ) {
        if let PortMatch::Conns(cs) = pm {
            add(cs);
        }
    }
    out.into_iter().collect()
}

/// Does the invariant's port list hold this connection towards `dst`?
fn in_ports(
    ports: &Option<Vec<PortMatch>>,
    c: &Cluster,
    dst: Endpoint,
    p: Protocol,
    n: u16,
) -> bool {
    let Some(list) = ports else {
        return true;
    };
    list.iter().any(|pm| match pm {
        PortMatch::Conns(cs) => cs.contains(p, n),
        PortMatch::Named { protocol, name } => match dst {
            Endpoint::Workload(i) => c.workloads[i].named_ports.iter().any(|np| {
                np.name == *name
                    && protocol.is_none_or(|x| x == np.protocol)
                    && np.protocol == p
                    && np.port == n
            }),
            Endpoint::External(_) => false,
        },
    })
}

/// Does one of the invariant's peers pick this endpoint (segments by their selectors)?
fn picks(intent: &Intent, peers: &[bulkhead_intent::PeerAt], c: &Cluster, e: Endpoint) -> bool {
    peers.iter().any(|pa| match (&pa.peer, e) {
        (IPeer::Any, _) => true,
        (IPeer::Cidr(set), Endpoint::External(r)) => set.contains(r.first()),
        (IPeer::Cidr(_), Endpoint::Workload(_)) => false,
        (IPeer::Segment(s), Endpoint::Workload(i)) => {
            let w = &c.workloads[i];
            let id = Identity::workload(
                &w.namespace,
                &w.name,
                w.labels.clone(),
                c.ns_labels(&w.namespace).clone(),
            );
            intent
                .segment(s)
                .is_some_and(|seg| seg.selector.matches(&id))
        }
        _ => false,
    })
}

fn check(c: &Cluster, invariants: &[String]) -> Result<(), TestCaseError> {
    let intent = intent(invariants);
    let engine = Engine::new(c);
    let v = verify_k8s(&intent, &engine, VerifyOptions { max_examples: 100 })
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(v.results.len(), intent.invariants.len());
    // The address space cut at every CIDR of the invariants and, as `connectivity` does, of
    // the ingress rules for sources and of the egress rules for destinations.
    let mut inv_sets: Vec<IpSet> = Vec::new();
    for inv in &intent.invariants {
        for pa in inv.from.iter().chain(&inv.to) {
            if let IPeer::Cidr(s) = &pa.peer {
                inv_sets.push(s.clone());
            }
        }
    }
    let cut = |ingress: bool| -> Vec<IpRange> {
        let mut sets = inv_sets.clone();
        for p in &c.policies {
            let rules = if ingress { &p.ingress } else { &p.egress };
            for r in rules.iter().flatten() {
                for peer in &r.peers {
                    if let Peer::Ips(s) = peer {
                        sets.push(s.clone());
                    }
                }
            }
        }
        pieces(sets.iter())
    };
    let (src_ext, dst_ext) = (cut(true), cut(false));
    let ports = probe_ports(c, &intent);
    let n = c.workloads.len();
    for (inv, res) in intent.invariants.iter().zip(&v.results) {
        let ends = |peers: &[bulkhead_intent::PeerAt], ext: &[IpRange], negate: bool| {
            (0..n)
                .map(Endpoint::Workload)
                .chain(ext.iter().map(|&r| Endpoint::External(r)))
                .filter(|&e| picks(&intent, peers, c, e) != negate)
                .collect::<Vec<Endpoint>>()
        };
        let srcs = ends(&inv.from, &src_ext, inv.kind == InvariantKind::Only);
        let dsts = ends(&inv.to, &dst_ext, false);
        let (mut pairs, mut violating) = (0u64, 0u64);
        for &s in &srcs {
            for &d in &dsts {
                if s == d || matches!((s, d), (Endpoint::External(_), Endpoint::External(_))) {
                    continue;
                }
                pairs += 1;
                let bad = Protocol::ALL.into_iter().any(|p| {
                    ports.iter().any(|&port| {
                        if !in_ports(&inv.ports, c, d, p, port) {
                            return false;
                        }
                        let allowed = engine.decide(s, d, p, port).allowed;
                        match inv.kind {
                            InvariantKind::Never | InvariantKind::Only => allowed,
                            InvariantKind::MustAllow => !allowed,
                        }
                    })
                });
                violating += bad as u64;
            }
        }
        prop_assert_eq!(res.pairs_checked, pairs, "{}: pairs", inv.meta.name);
        prop_assert_eq!(
            res.violating_pairs,
            violating,
            "{}: violating pairs",
            inv.meta.name
        );
        let want = if violating > 0 {
            Status::Violated
        } else {
            Status::Holds
        };
        prop_assert_eq!(res.status, want);
        // One example per violating group of sources (never more than the violating pairs).
        prop_assert_eq!(res.examples.is_empty(), violating == 0);
        prop_assert!(res.examples.len() as u64 <= violating);
        // Each example is a violation at its own protocol and port.
        for e in &res.examples {
            let want_allowed = inv.kind != InvariantKind::MustAllow;
            prop_assert_eq!(
                e.verdict == bulkhead_intent::Verdict::Allow,
                want_allowed,
                "{:?}",
                e
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn verify_k8s_equals_brute_force(
        c in cluster(),
        invs in prop::collection::vec(invariant(), 1..4),
    ) {
        check(&c, &invs)?;
    }
}
