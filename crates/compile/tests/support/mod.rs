//! Shared by the Cilium and Calico tests: the bank example with a small host inventory, random
//! small intents and clusters, and the comparison of a target's reference interpreter with the
//! evaluator.

#![allow(dead_code)]

use bulkhead_core::{Labels, NamedPort, Protocol};
use bulkhead_intent::{Action, Evaluator, Identity, IdentityKind, Intent, SideMode, load_paths};
use proptest::prelude::*;
use std::net::IpAddr;
use std::path::Path;

pub fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn load(text: &str) -> Intent {
    let l = bulkhead_intent::load_str("intent.yaml", text);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.intent
}

/// The worked example.
pub fn bank_intent() -> Intent {
    // Relative (tests run in the crate's directory), so the goldens' sources are stable.
    let dir = Path::new("../../examples/intent/bank");
    let l = load_paths(&[dir]);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.intent
}

/// One host per segment of the bank (`segment: <name>`, as the simulator labels them), the HSM
/// in cards, at 10.20.<i>.10.
pub fn bank_hosts(intent: &Intent) -> Vec<Identity> {
    let mut out = Vec::new();
    for (i, s) in intent.segments.iter().enumerate() {
        let ip: IpAddr = format!("10.20.{i}.10").parse().unwrap();
        out.push(Identity::host(
            &format!("{}-vm", s.name()),
            labels(&[("segment", s.name())]),
            vec![ip],
        ));
    }
    out.push(Identity::host(
        "hsm-1",
        labels(&[("segment", "cards"), ("app", "hsm")]),
        vec!["10.20.99.10".parse().unwrap()],
    ));
    out
}

/// An identity of a test cluster, with the addresses a dataplane sees.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: Identity,
    /// Pods: their (IPv4, IPv6) addresses; hosts and externals: `id.addresses`.
    pub pod_ips: Vec<IpAddr>,
}

impl Node {
    pub fn is_pod(&self) -> bool {
        matches!(self.id.kind, IdentityKind::Workload { .. })
    }

    /// The node's addresses of one IP family.
    pub fn ips(&self, v6: bool) -> Vec<IpAddr> {
        let all = if self.is_pod() {
            &self.pod_ips
        } else {
            &self.id.addresses
        };
        all.iter().copied().filter(|a| a.is_ipv6() == v6).collect()
    }
}

/// A small cluster: pods in three namespaces, two hosts, three external addresses.
pub fn cluster(pod_labels: &[(u8, u8, u8)]) -> Vec<Node> {
    let ns = [
        (
            "n1",
            labels(&[("team", "t1"), ("kubernetes.io/metadata.name", "n1")]),
        ),
        (
            "n2",
            labels(&[("team", "t2"), ("kubernetes.io/metadata.name", "n2")]),
        ),
        ("n3", labels(&[("kubernetes.io/metadata.name", "n3")])),
    ];
    let mut out = Vec::new();
    for (i, &(n, app, env)) in pod_labels.iter().enumerate() {
        let (nsname, nsl) = &ns[n as usize % 3];
        let mut l = Labels::new();
        if app < 3 {
            l.insert("app".into(), ["a", "b", "c"][app as usize].into());
        }
        if env < 2 {
            l.insert("env".into(), ["x", "y"][env as usize].into());
        }
        let mut id = Identity::workload(nsname, &format!("p{i}"), l, nsl.clone());
        if i % 2 == 0 {
            id.named_ports.push(NamedPort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            });
        }
        out.push(Node {
            id,
            pod_ips: vec![
                format!("10.244.0.{}", i + 1).parse().unwrap(),
                format!("fd00:244::{}", i + 1).parse().unwrap(),
            ],
        });
    }
    for (name, l, ip) in [
        ("h1", labels(&[("app", "a")]), "192.0.2.10"),
        ("h2", labels(&[("env", "y")]), "2001:db8::10"),
    ] {
        out.push(Node {
            id: Identity::host(name, l, vec![ip.parse().unwrap()]),
            pod_ips: vec![],
        });
    }
    for ip in ["203.0.113.7", "198.51.100.1", "2001:db8:1::1"] {
        out.push(Node {
            id: Identity::external(ip.parse().unwrap()),
            pod_ips: vec![],
        });
    }
    out
}

pub fn inventory(nodes: &[Node]) -> Vec<Identity> {
    nodes
        .iter()
        .filter(|n| n.id.kind == IdentityKind::Host)
        .map(|n| n.id.clone())
        .collect()
}

/// The connections checked between each pair.
pub const CONNS: [(Protocol, u16); 7] = [
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 8080),
    (Protocol::Tcp, 8050),
    (Protocol::Tcp, 443),
    (Protocol::Udp, 53),
    (Protocol::Udp, 80),
    (Protocol::Sctp, 80),
];

/// What the cluster dataplane must do: drop iff a Kubernetes workload's side is enforced and the
/// rule chain does not end in `allow` (hosts are enforced by nftables, not by a cluster target).
/// Also checks that this is the evaluator's `Deny` whenever no host side is enforced.
pub fn expected_drop(ev: &Evaluator, src: &Node, dst: &Node, p: Protocol, port: u16) -> bool {
    let d = ev.decide(&src.id, &dst.id, p, port);
    let allowed = d.rule.is_some_and(|r| r.action == Action::Allow);
    let (ms, md) = (ev.profile(&src.id).mode, ev.profile(&dst.id).mode);
    let drop = |n: &Node, m: SideMode| n.is_pod() && m == SideMode::Enforce && !allowed;
    let out = drop(src, ms) || drop(dst, md);
    let host_enforced = |n: &Node, m: SideMode| !n.is_pod() && m == SideMode::Enforce;
    if !host_enforced(src, ms) && !host_enforced(dst, md) {
        assert_eq!(
            out,
            d.verdict == bulkhead_intent::Verdict::Deny,
            "{} -> {} {p}/{port}: {d:?}",
            src.id.name,
            dst.id.name
        );
    }
    out
}

/// A random intent over the cluster's vocabulary, as YAML.
pub fn intent_yaml() -> impl Strategy<Value = String> {
    let sel = prop_oneof![
        Just("{matchLabels: {app: a}}".to_string()),
        Just("{matchLabels: {app: b}}".to_string()),
        Just("{matchLabels: {env: x}}".to_string()),
        Just("{matchExpressions: [{key: app, operator: In, values: [a, c]}]}".to_string()),
        Just("{matchExpressions: [{key: env, operator: NotIn, values: [y]}]}".to_string()),
        Just("{matchExpressions: [{key: app, operator: Exists}]}".to_string()),
        Just("{matchExpressions: [{key: env, operator: DoesNotExist}]}".to_string()),
        Just("{}".to_string()),
    ];
    let ns_sel = prop_oneof![
        Just("{matchLabels: {team: t1}}".to_string()),
        Just("{matchExpressions: [{key: team, operator: Exists}]}".to_string()),
        Just("{}".to_string()),
    ];
    let segment = (
        proptest::option::of(ns_sel.clone()),
        proptest::option::of(sel.clone()),
        proptest::option::of(sel.clone()),
        any::<bool>(),
    );
    let peer = prop_oneof![
        Just("{any: true}".to_string()),
        (0..3usize).prop_map(|i| format!("{{segment: s{i}}}")),
        (sel.clone(), proptest::option::of(ns_sel.clone())).prop_map(|(s, n)| match n {
            Some(n) => format!("{{selector: {{namespaceSelector: {n}, podSelector: {s}}}}}"),
            None => format!("{{selector: {{podSelector: {s}}}}}"),
        }),
        sel.clone()
            .prop_map(|s| format!("{{selector: {{hostSelector: {s}}}}}")),
        prop_oneof![Just("n1"), Just("n2")].prop_map(|n| format!("{{namespace: {n}}}")),
        prop_oneof![
            Just("10.244.0.0/16"),
            Just("203.0.113.0/24"),
            Just("0.0.0.0/0"),
            Just("::/0"),
            Just("192.0.2.0/24")
        ]
        .prop_map(|c| format!("{{cidr: {c}}}")),
    ];
    let ports = proptest::option::of(proptest::sample::subsequence(
        vec![
            "{protocol: TCP, port: 80}",
            "{protocol: UDP, port: 53}",
            "{port: 8000, endPort: 8100}",
            "{port: http}",
            "{protocol: SCTP}",
        ],
        1..3,
    ));
    let rule = (
        prop_oneof![Just("allow"), Just("deny"), Just("pass")],
        proptest::collection::vec(peer.clone(), 1..3),
        proptest::collection::vec(peer, 1..3),
        ports,
    );
    let policy = (
        prop_oneof![Just("guardrail"), Just("application"), Just("baseline")],
        0..3i32,
        proptest::collection::vec(rule, 1..4),
    );
    (
        proptest::collection::vec(segment, 3),
        proptest::collection::vec(policy, 1..4),
    )
        .prop_map(|(segs, pols)| {
            let mut y = String::new();
            for (i, (ns, pods, hosts, enforce)) in segs.into_iter().enumerate() {
                y.push_str(&format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: s{i}}}\nspec:\n  mode: {}\n",
                    if enforce { "enforce" } else { "observe" }
                ));
                let mut any = false;
                if let Some(n) = ns {
                    y.push_str(&format!("  namespaceSelector: {n}\n"));
                    any = true;
                }
                if let Some(p) = pods {
                    y.push_str(&format!("  podSelector: {p}\n"));
                    any = true;
                }
                match hosts {
                    Some(h) => y.push_str(&format!("  hostSelector: {h}\n")),
                    None if !any => y.push_str("  podSelector: {}\n"),
                    None => {}
                }
            }
            for (i, (tier, prio, rules)) in pols.into_iter().enumerate() {
                y.push_str(&format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p{i}}}\nspec:\n  tier: {tier}\n  priority: {prio}\n  rules:\n"
                ));
                for (action, from, to, ports) in rules {
                    y.push_str(&format!(
                        "    - action: {action}\n      from: [{}]\n      to: [{}]\n",
                        from.join(", "),
                        to.join(", ")
                    ));
                    if let Some(p) = ports {
                        y.push_str(&format!("      ports: [{}]\n", p.join(", ")));
                    }
                }
            }
            y
        })
}

pub fn pods() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((0..3u8, 0..4u8, 0..3u8), 2..7)
}
