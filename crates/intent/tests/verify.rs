//! Verification: each invariant kind holding and violated on hand-made intents, and agreement
//! of the connection-set walk with brute force over every port through `decide_edge` on random
//! small intents (rules only name ports 1..=20, so port 21 stands for every higher port).

use bulkhead_core::{ConnSet, IpSet, Labels, NamedPort, Protocol, RangeSet, Selector};
use bulkhead_intent::{
    Action, EntitySelector, Evaluator, Identity, Intent, Invariant, InvariantKind, Loc, Meta, Mode,
    Peer, PeerAt, Policy, PortMatch, Rule, Segment, Status, Tier, Universe, Verdict, VerifyOptions,
    external_representatives, load_str, verify,
};
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(ns: &str, name: &str, app: &str) -> Identity {
    Identity::workload(
        ns,
        name,
        labels(&[("app", app)]),
        labels(&[("kubernetes.io/metadata.name", ns)]),
    )
}

const HEAD: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

fn segment(name: &str, app: &str, mode: &str) -> String {
    format!(
        "---\n{HEAD}kind: Segment\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  mode: {mode}\n"
    )
}

fn policy(name: &str, tier: &str, rules: &[String]) -> String {
    format!(
        "---\n{HEAD}kind: Policy\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  rules:\n{}",
        rules.concat()
    )
}

fn rule(name: &str, action: &str, from: &str, to: &str, ports: &str) -> String {
    let mut s = format!(
        "    - name: {name}\n      action: {action}\n      from: [{from}]\n      to: [{to}]\n"
    );
    if !ports.is_empty() {
        s.push_str(&format!("      ports: [{ports}]\n"));
    }
    s
}

fn invariant(name: &str, kind: &str, from: &str, to: &str, ports: &str) -> String {
    let mut s = format!(
        "---\n{HEAD}kind: Invariant\nmetadata: {{name: {name}}}\nspec:\n  {kind}:\n    from: [{from}]\n    to: [{to}]\n"
    );
    if !ports.is_empty() {
        s.push_str(&format!("    ports: [{ports}]\n"));
    }
    s
}

/// Verifies `yaml` over `ids` (with the external representatives): (name, status, holds today,
/// first example as (src, dst, proto, port, rule names of the chain)).
type Example = (String, String, Protocol, u16, Vec<String>);
fn run(yaml: &str, ids: Vec<Identity>) -> Vec<(String, Status, bool, Option<Example>)> {
    let l = load_str("t.yaml", yaml);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    let it = l.intent;
    let ev = Evaluator::new(&it).unwrap();
    let mut ids = ids;
    let ext = external_representatives(&it, &ids);
    ids.extend(ext);
    let u = Universe::new(&ev, ids);
    verify(&it, &u, VerifyOptions::default())
        .into_iter()
        .map(|r| {
            let ex = r.examples.first().map(|e| {
                (
                    e.src.clone(),
                    e.dst.clone(),
                    e.protocol,
                    e.port,
                    e.chain.iter().map(|c| c.rule.clone()).collect(),
                )
            });
            (r.name, r.status, r.holds_today, ex)
        })
        .collect()
}

fn web_db() -> Vec<Identity> {
    vec![
        pod("shop", "web", "web"),
        pod("shop", "db", "db"),
        pod("shop", "batch", "batch"),
    ]
}

#[test]
fn never_holds_and_is_violated_on_any_single_port() {
    let yaml = segment("web", "web", "enforce")
        + &segment("db", "db", "enforce")
        + &policy(
            "app",
            "application",
            &[rule(
                "web-to-db",
                "allow",
                "{segment: web}",
                "{segment: db}",
                "{protocol: TCP, port: 5432}",
            )],
        )
        + &invariant(
            "no-ssh",
            "never",
            "{segment: web}",
            "{segment: db}",
            "{protocol: TCP, port: 22}",
        )
        + &invariant(
            "never-at-all",
            "never",
            "{segment: web}",
            "{segment: db}",
            "",
        )
        + &invariant("never-back", "never", "{segment: db}", "{segment: web}", "");
    let r = run(&yaml, web_db());
    assert_eq!((r[0].1, r[0].3.clone()), (Status::Holds, None), "{r:?}");
    // One port of 65535 allowed is enough to violate, and the example names it and its rule.
    assert_eq!(r[1].1, Status::Violated);
    assert_eq!(
        r[1].3,
        Some((
            "shop/web".into(),
            "shop/db".into(),
            Protocol::Tcp,
            5432,
            vec!["rules[0] \"web-to-db\"".to_string()]
        ))
    );
    // Nothing allows db -> web and both are enforced: default deny.
    assert_eq!(r[2].1, Status::Holds);
}

#[test]
fn only_sees_unlisted_sources_including_external_addresses() {
    let base = segment("web", "web", "enforce") + &segment("db", "db", "enforce");
    let inv = invariant("only-web", "only", "{segment: web}", "{segment: db}", "");
    let tight = base.clone()
        + &policy(
            "app",
            "application",
            &[rule(
                "w",
                "allow",
                "{segment: web}",
                "{segment: db}",
                "{port: 5432}",
            )],
        )
        + &inv;
    assert_eq!(run(&tight, web_db())[0].1, Status::Holds);
    // An allow from an address range opens db to something outside `from`.
    let open =
        base + &policy(
            "app",
            "application",
            &[rule(
                "partners",
                "allow",
                "{cidr: 203.0.113.0/24}",
                "{segment: db}",
                "{port: 443}",
            )],
        ) + &inv;
    let r = run(&open, web_db());
    assert_eq!(r[0].1, Status::Violated);
    let ex = r[0].3.clone().unwrap();
    assert_eq!(
        (ex.0.as_str(), ex.1.as_str(), ex.2, ex.3),
        ("external 203.0.113.0", "shop/db", Protocol::Tcp, 443)
    );
}

const BATCH: &str = "{selector: {podSelector: {matchLabels: {app: batch}}}}";

#[test]
fn must_allow_and_observe_mode() {
    let yaml = segment("web", "web", "enforce")
        + &segment("db", "db", "observe")
        + &policy(
            "app",
            "application",
            &[rule(
                "w",
                "allow",
                "{segment: web}",
                "{segment: db}",
                "{port: 5432}",
            )],
        )
        + &invariant("pg", "mustAllow", "{segment: web}", "{segment: db}", "{port: 5432}")
        + &invariant(
            "pg-and-more",
            "mustAllow",
            "{segment: web}",
            "{segment: db}",
            "{port: 5432, endPort: 5433}",
        )
        // batch is in no segment, db only observed: batch -> db passes today, not when enforced.
        + &invariant("batch-never-db", "never", BATCH, "{segment: db}", "")
        + &invariant("db-never-batch", "never", "{segment: db}", BATCH, "");
    let r = run(&yaml, web_db());
    assert_eq!((r[0].1, r[0].2), (Status::Holds, true), "{r:?}");
    // 5433 is denied when enforced (web is enforced: egress denies by default).
    assert_eq!(r[1].1, Status::Violated);
    assert_eq!(r[1].3.as_ref().map(|e| e.3), Some(5433));
    assert_eq!((r[2].1, r[2].2), (Status::Holds, false), "{r:?}");
    assert_eq!((r[3].1, r[3].2), (Status::Holds, false), "{r:?}");
}

#[test]
fn pass_sets_ports_aside_until_the_next_tier() {
    let yaml = segment("web", "web", "enforce")
        + &segment("db", "db", "enforce")
        + &policy(
            "g",
            "guardrail",
            &[
                rule(
                    "web-pg",
                    "pass",
                    "{segment: web}",
                    "{segment: db}",
                    "{port: 5432}",
                ),
                rule("nobody", "deny", "{any: true}", "{segment: db}", ""),
            ],
        )
        + &policy(
            "a",
            "application",
            &[rule("wide", "allow", "{segment: web}", "{segment: db}", "")],
        )
        + &invariant(
            "only-pg",
            "never",
            "{segment: web}",
            "{segment: db}",
            "{port: 1, endPort: 5431}, {port: 5433, endPort: 65535}, {protocol: UDP, port: 1, endPort: 65535}",
        )
        + &invariant(
            "pg",
            "never",
            "{segment: web}",
            "{segment: db}",
            "{port: 5432}",
        );
    let r = run(&yaml, web_db());
    assert_eq!(r[0].1, Status::Holds, "{r:?}");
    assert_eq!(r[1].1, Status::Violated);
    assert_eq!(
        r[1].3.as_ref().map(|e| e.4.clone()),
        Some(vec![
            "rules[0] \"web-pg\"".to_string(),
            "rules[0] \"wide\"".to_string()
        ]),
        "the chain names the pass and the allow"
    );
}

// ---- Exactness: agreement with brute force over every port ----

fn at(peer: Peer) -> PeerAt {
    PeerAt {
        peer,
        loc: Loc::default(),
    }
}

fn arb_peer(nseg: usize) -> impl Strategy<Value = Peer> {
    prop_oneof![
        1 => Just(Peer::Any),
        3 => (0..nseg).prop_map(|i| Peer::Segment(format!("s{i}"))),
        2 => (0usize..3).prop_map(|i| Peer::Selector(EntitySelector {
            pods: Some(Selector::label("app", ["a", "b", "c"][i])),
            ..EntitySelector::default()
        })),
        1 => (0usize..2).prop_map(|i| Peer::Selector(EntitySelector {
            hosts: Some(Selector::label("app", ["a", "b"][i])),
            ..EntitySelector::default()
        })),
        1 => (0usize..2).prop_map(|i| Peer::Namespace(["n1", "n2"][i].into())),
        1 => (0usize..2).prop_map(|i| Peer::Cidr(IpSet::cidr(["10.0.0.0/25", "192.168.0.0/16"][i]).unwrap())),
    ]
}

/// Ports within 1..=20, TCP and UDP, and a named port.
fn arb_ports() -> impl Strategy<Value = Option<Vec<PortMatch>>> {
    let one = prop_oneof![
        (1u16..=20, 0u16..6, any::<bool>()).prop_map(|(a, l, udp)| PortMatch::Conns(
            ConnSet::ports(
                if udp { Protocol::Udp } else { Protocol::Tcp },
                RangeSet::range(a, (a + l).min(20))
            )
        )),
        Just(PortMatch::Named {
            protocol: None,
            name: "web".into()
        }),
    ];
    proptest::option::of(proptest::collection::vec(one, 1..3))
}

fn arb_intent() -> impl Strategy<Value = Intent> {
    let segs = proptest::collection::vec((0usize..4, 0usize..3), 1..4);
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
        let pol = (0usize..3, proptest::collection::vec(rule, 0..5));
        let inv = (
            0usize..3,
            proptest::collection::vec(arb_peer(n), 1..3),
            proptest::collection::vec(arb_peer(n), 1..3),
            arb_ports(),
        )
            .prop_map(|(k, f, t, ports)| Invariant {
                meta: Meta::default(),
                kind: [
                    InvariantKind::Never,
                    InvariantKind::Only,
                    InvariantKind::MustAllow,
                ][k],
                from: f.into_iter().map(at).collect(),
                to: t.into_iter().map(at).collect(),
                ports,
                controls: Vec::new(),
                description: None,
                loc: Loc::default(),
            });
        (
            Just(segs),
            proptest::collection::vec(pol, 0..4),
            proptest::collection::vec(inv, 1..4),
        )
    })
    .prop_map(|(segs, pols, invs)| Intent {
        segments: segs
            .into_iter()
            .enumerate()
            .map(|(i, (app, mode))| Segment {
                meta: Meta {
                    name: format!("s{i}"),
                    ..Meta::default()
                },
                selector: EntitySelector {
                    pods: Some(Selector::label("app", ["a", "b", "c", "d"][app])),
                    hosts: Some(Selector::label("app", ["a", "b", "c", "d"][app])),
                    ..EntitySelector::default()
                },
                compliance: Vec::new(),
                owner: None,
                mode: if mode == 0 {
                    Mode::Observe
                } else {
                    Mode::Enforce
                },
                description: None,
                loc: Loc::default(),
            })
            .collect(),
        policies: pols
            .into_iter()
            .enumerate()
            .map(|(i, (t, rules))| Policy {
                meta: Meta {
                    name: format!("p{i}"),
                    ..Meta::default()
                },
                tier: Tier::ALL[t],
                priority: 0,
                rules,
                description: None,
                loc: Loc::default(),
            })
            .collect(),
        invariants: invs
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v.meta.name = format!("i{i}");
                v
            })
            .collect(),
    })
}

fn identities() -> Vec<Identity> {
    let mut v = Vec::new();
    for ns in ["n1", "n2"] {
        for app in ["a", "b", "c", "e"] {
            let mut id = pod(ns, app, app);
            if app == "b" {
                id.named_ports = vec![NamedPort {
                    name: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 7,
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
        labels(&[("app", "b")]),
        vec!["192.168.1.5".parse().unwrap()],
    ));
    v.push(Identity::host("h3", Labels::new(), vec![]));
    v
}

fn conns_of(ports: &Option<Vec<PortMatch>>, dst: &Identity, proto: Protocol, port: u16) -> bool {
    match ports {
        None => true,
        Some(ps) => ps.iter().any(|p| match p {
            PortMatch::Conns(c) => c.contains(proto, port),
            PortMatch::Named { protocol, name } => dst.named_ports.iter().any(|n| {
                n.name == *name
                    && n.protocol == proto
                    && n.port == port
                    && protocol.is_none_or(|p| p == proto)
            }),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    #[test]
    fn verification_agrees_with_brute_force(it in arb_intent()) {
        let ev = Evaluator::new(&it).unwrap();
        let mut ids = identities();
        let ext = external_representatives(&it, &ids);
        ids.extend(ext);
        let u = Universe::new(&ev, ids.clone());
        let n = ids.len();
        let ports = 1u16..=21;
        // Reach: the walk's sets agree with the evaluator port by port.
        for s in 0..n {
            for d in 0..n {
                let r = u.reach(s, d);
                for proto in Protocol::ALL {
                    for port in ports.clone() {
                        let v = u.decide_edge(s, d, proto, port).verdict;
                        prop_assert_eq!(r.enforced.contains(proto, port), v == Verdict::Allow, "{} -> {} {} {}", ids[s].name, ids[d].name, proto, port);
                        prop_assert_eq!(r.today.contains(proto, port), v != Verdict::Deny, "{} -> {} {} {} today", ids[s].name, ids[d].name, proto, port);
                    }
                }
            }
        }
        // Invariants: status and today's status by brute force.
        let results = verify(&it, &u, VerifyOptions::default());
        for (inv, res) in it.invariants.iter().zip(&results) {
            let pick = |peers: &[PeerAt]| {
                let mut b = bulkhead_core::Bitset::empty(n);
                for p in peers { b.union_with(&u.select(&it, &p.peer).unwrap()); }
                b
            };
            let (from, to) = (pick(&inv.from), pick(&inv.to));
            let (mut bad, mut bad_today, mut pairs) = (false, false, 0u64);
            for s in 0..n {
                let is_src = match inv.kind { InvariantKind::Only => !from.contains(s), _ => from.contains(s) };
                for d in 0..n {
                    let both_ext = ids[s].kind == bulkhead_intent::IdentityKind::External && ids[d].kind == bulkhead_intent::IdentityKind::External;
                    if !is_src || !to.contains(d) || s == d || both_ext { continue; }
                    pairs += 1;
                    for proto in Protocol::ALL {
                        for port in ports.clone() {
                            if !conns_of(&inv.ports, &ids[d], proto, port) { continue; }
                            let v = u.decide_edge(s, d, proto, port).verdict;
                            match inv.kind {
                                InvariantKind::MustAllow => { bad |= v != Verdict::Allow; bad_today |= v == Verdict::Deny; }
                                _ => { bad |= v == Verdict::Allow; bad_today |= v != Verdict::Deny; }
                            }
                        }
                    }
                }
            }
            prop_assert_eq!(res.status == Status::Violated, bad, "{:?}: {:?}", inv, res);
            prop_assert_eq!(res.holds_today, !bad_today, "{:?}: {:?}", inv, res);
            prop_assert_eq!(res.pairs_checked, pairs);
            if bad {
                let e = &res.examples[0];
                let s = ids.iter().position(|i| i.name == e.src).unwrap();
                let d = ids.iter().position(|i| i.name == e.dst).unwrap();
                let v = u.decide_edge(s, d, e.protocol, e.port).verdict;
                prop_assert_eq!(v == Verdict::Allow, inv.kind != InvariantKind::MustAllow, "the example is a real counterexample");
            }
        }
    }
}
