//! Helpers shared by the intent tests: small intents written as YAML, and random small intents
//! with the identities they are tried on.
#![allow(dead_code)]

use bulkhead_core::{IpSet, Labels, NamedPort, Protocol, RangeSet, Selector};
use bulkhead_intent::{
    Action, EntitySelector, Identity, Intent, Loc, Meta, Mode, Peer, PeerAt, Policy, PortMatch,
    Rule, Segment, Tier, load_str,
};
use proptest::prelude::*;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const HEAD: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

pub fn intent(yaml: &str) -> Intent {
    let l = load_str("t.yaml", yaml);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    l.intent
}

pub fn segment(name: &str, app: &str, mode: &str) -> String {
    format!(
        "---\n{HEAD}kind: Segment\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  mode: {mode}\n"
    )
}

pub fn policy(name: &str, tier: &str, rules: &str) -> String {
    format!(
        "---\n{HEAD}kind: Policy\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  rules:\n{rules}"
    )
}

pub fn rule(action: &str, from: &str, to: &str, ports: &str) -> String {
    let mut s = format!("    - action: {action}\n      from: [{from}]\n      to: [{to}]\n");
    if !ports.is_empty() {
        s.push_str(&format!("      ports: [{ports}]\n"));
    }
    s
}

pub fn at(peer: Peer) -> PeerAt {
    PeerAt {
        peer,
        loc: Loc::default(),
    }
}

pub fn arb_selector() -> impl Strategy<Value = EntitySelector> {
    let sel = prop_oneof![
        Just(Selector::everything()),
        (0usize..3).prop_map(|i| Selector::label("app", ["a", "b", "c"][i])),
        (0usize..3).prop_map(|i| Selector::label("tier", ["x", "y", "z"][i])),
    ];
    let ns = prop_oneof![
        Just(Selector::everything()),
        (0usize..2).prop_map(|i| Selector::label("kubernetes.io/metadata.name", ["n1", "n2"][i]))
    ];
    (
        proptest::option::of(ns),
        proptest::option::of(sel.clone()),
        proptest::option::of(sel),
    )
        .prop_map(|(n, p, h)| EntitySelector {
            namespaces: n,
            pods: p,
            hosts: h,
        })
}

pub fn arb_peer(nseg: usize) -> impl Strategy<Value = Peer> {
    prop_oneof![
        1 => Just(Peer::Any),
        3 => (0..nseg).prop_map(|i| Peer::Segment(format!("s{i}"))),
        3 => arb_selector().prop_map(Peer::Selector),
        1 => (0usize..2).prop_map(|i| Peer::Namespace(["n1", "n2"][i].into())),
        1 => (0usize..3).prop_map(|i| Peer::Cidr(IpSet::cidr(["10.0.0.0/25", "10.0.0.0/8", "192.168.0.0/16"][i]).unwrap())),
    ]
}

pub fn arb_ports() -> impl Strategy<Value = Option<Vec<PortMatch>>> {
    let one = prop_oneof![
        (80u16..90, 0u16..10).prop_map(|(a, l)| PortMatch::Conns(bulkhead_core::ConnSet::ports(
            Protocol::Tcp,
            RangeSet::range(a, a + l)
        ))),
        Just(PortMatch::Conns(bulkhead_core::ConnSet::single(
            Protocol::Udp,
            53
        ))),
        Just(PortMatch::Conns(bulkhead_core::ConnSet::protocol(
            Protocol::Udp
        ))),
        Just(PortMatch::Named {
            protocol: None,
            name: "web".into()
        }),
    ];
    proptest::option::of(proptest::collection::vec(one, 1..3))
}

pub fn arb_intent() -> impl Strategy<Value = Intent> {
    let segs = proptest::collection::vec((arb_selector(), any::<bool>()), 1..4);
    segs.prop_flat_map(|segs| {
        let n = segs.len();
        let rule = (
            0usize..3,
            proptest::collection::vec(arb_peer(n), 1..3),
            proptest::collection::vec(arb_peer(n), 1..3),
            arb_ports(),
        )
            .prop_map(|(a, f, t, ports)| Rule {
                name: None,
                action: [Action::Allow, Action::Deny, Action::Pass][a],
                from: f.into_iter().map(at).collect(),
                to: t.into_iter().map(at).collect(),
                ports,
                description: None,
                loc: Loc::default(),
            });
        let pol = (
            0usize..3,
            0i32..2,
            proptest::collection::vec(rule, 0..4),
            0u8..4,
        );
        (Just(segs), proptest::collection::vec(pol, 0..5))
    })
    .prop_map(|(segs, pols)| Intent {
        segments: segs
            .into_iter()
            .enumerate()
            .map(|(i, (selector, enforce))| Segment {
                meta: Meta {
                    name: format!("s{i}"),
                    ..Meta::default()
                },
                selector,
                compliance: Vec::new(),
                owner: None,
                mode: if enforce {
                    Mode::Enforce
                } else {
                    Mode::Observe
                },
                description: None,
                loc: Loc::default(),
            })
            .collect(),
        policies: pols
            .into_iter()
            .enumerate()
            .map(|(i, (t, prio, rules, name))| Policy {
                meta: Meta {
                    name: format!("p{name}-{i}"),
                    ..Meta::default()
                },
                tier: Tier::ALL[t],
                priority: prio,
                rules,
                description: None,
                loc: Loc::default(),
            })
            .collect(),
        invariants: Vec::new(),
    })
}

pub fn identities() -> Vec<Identity> {
    let mut v = Vec::new();
    for ns in ["n1", "n2"] {
        for app in ["a", "b", "c", "d"] {
            let mut id = Identity::workload(
                ns,
                app,
                labels(&[("app", app), ("tier", if app == "a" { "x" } else { "y" })]),
                labels(&[("kubernetes.io/metadata.name", ns)]),
            );
            if app == "b" {
                id.named_ports = vec![NamedPort {
                    name: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 85,
                }];
            }
            v.push(id);
        }
    }
    v.push(Identity::host(
        "h1",
        labels(&[("app", "a")]),
        vec!["10.0.0.5".parse().unwrap()],
    ));
    v.push(Identity::host(
        "h2",
        labels(&[("tier", "z")]),
        vec!["10.0.1.5".parse().unwrap()],
    ));
    v.push(Identity::host("h3", Labels::new(), vec![]));
    v.push(Identity::external("10.0.0.100".parse().unwrap()));
    v.push(Identity::external("192.168.3.3".parse().unwrap()));
    v.push(Identity::external("8.8.8.8".parse().unwrap()));
    v
}
