//! `recommend`: grouping, port merging, DNS always kept; the proposal allows every training edge
//! under the evaluator (enforced), and its over-permissiveness count equals a brute-force count
//! through the evaluator; the YAML of a fixed input against golden files.

use bulkhead_core::Labels;
use bulkhead_core::Protocol;
use bulkhead_intent::recommend::{
    self as rec, GroupKey, Input, Observed, Options, Outcome, Provenance, TCP, UDP,
};
use bulkhead_intent::{
    Action, Evaluator, Identity, IdentityKind, LintOptions, Mode, Universe, Verdict, lint, load_str,
};
use proptest::prelude::*;
use rustc_hash::FxHashMap;

/// Identities, CIDRs of external groups, nodes, edges.
type Case = (
    Vec<Identity>,
    FxHashMap<usize, Vec<String>>,
    Vec<Vec<usize>>,
    Vec<Observed>,
);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(ns: &str, name: &str, l: &[(&str, &str)]) -> Identity {
    Identity::workload(
        ns,
        name,
        labels(l),
        labels(&[("kubernetes.io/metadata.name", ns)]),
    )
}

fn host(name: &str, l: &[(&str, &str)], ip: &str) -> Identity {
    Identity::host(name, labels(l), vec![ip.parse().unwrap()])
}

fn ext(name: &str, ip: Option<&str>) -> Identity {
    let mut id = Identity::external(ip.unwrap_or("0.0.0.0").parse().unwrap());
    id.name = name.into();
    if ip.is_none() {
        id.addresses.clear();
    }
    id
}

fn edge(src: u32, dst: u32, proto: u8, port: u16, flows: u64) -> Observed {
    Observed {
        src,
        dst,
        proto,
        port,
        flows,
        bytes: flows * 100,
        first: 1_793_350_000_000_000_000 + i64::from(port) * 1_000_000_000,
        last: 1_793_390_000_000_000_000 + i64::from(port) * 1_000_000_000,
    }
}

/// Loads both files as one text; panics on any load or lint error.
fn load(files: &rec::Files, ids: &[Identity]) -> bulkhead_intent::Intent {
    let text = format!("{}---\n{}", files.segments, files.policies);
    let l = load_str("proposal.yaml", &text);
    assert!(!l.has_errors(), "{:#?}\n{text}", l.diagnostics);
    let ev = Evaluator::new(&l.intent).unwrap();
    let un = Universe::new(&ev, ids.to_vec());
    let errs: Vec<_> = lint(
        &l.intent,
        &LintOptions {
            universe: Some(&un),
        },
    )
    .into_iter()
    .filter(|d| d.is_error())
    .collect();
    assert!(errs.is_empty(), "{errs:#?}\n{text}");
    l.intent
}

/// A small bank: two payments replicas, one fraud, a labelless pod, coredns (never observed),
/// an HSM host, a card scheme (external group), the internet.
fn fixture() -> Case {
    let ids = vec![
        pod("payments", "orchestrator-a", &[("app", "orchestrator")]), // 0
        pod("payments", "orchestrator-b", &[("app", "orchestrator")]), // 1
        pod("fraud", "scoring", &[("app", "scoring")]),                // 2
        pod("fraud", "debug-pod", &[]),                                // 3
        pod(
            "kube-system",
            "coredns",
            &[("k8s-app", "kube-dns"), ("app", "coredns")],
        ), // 4
        host("hsm-01", &[("app", "hsm")], "10.9.0.1"),                 // 5
        ext("external:card-scheme", Some("198.51.100.20")),            // 6
        ext("external:internet", None),                                // 7
        pod("fraud", "scoring-old", &[("app", "scoring")]),            // 8: never seen
    ];
    let mut cidrs = FxHashMap::default();
    cidrs.insert(6, vec!["198.51.100.20/32".to_string()]);
    let nodes: Vec<Vec<usize>> = vec![
        vec![0],
        vec![1],
        vec![2],
        vec![3],
        vec![5],
        vec![6],
        vec![7],
        vec![2, 8], // 7: a Service standing for both scoring workloads
    ];
    let edges = vec![
        edge(0, 7, TCP, 9090, 40),
        edge(1, 2, TCP, 9090, 2),
        edge(0, 2, TCP, 9091, 1),
        edge(1, 2, TCP, 9093, 1),
        edge(0, 4, TCP, 1500, 5),
        edge(4, 5, TCP, 8583, 3), // hsm → card scheme
        edge(5, 4, TCP, 8583, 7), // card scheme → hsm
        edge(3, 6, TCP, 443, 1),  // debug pod → internet
        edge(2, 2, UDP, 5000, 1),
        edge(0, 2, 1, 0, 9), // ICMP: not decided
    ];
    (ids, cidrs, nodes, edges)
}

#[test]
fn groups_generalise_replicas_and_respect_namespaces() {
    let (ids, cidrs, nodes, edges) = fixture();
    let input = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r = rec::recommend(&input, &Options::default());
    let g = |i: usize| &r.groups[r.group_of[i]];
    assert_eq!(r.group_of[0], r.group_of[1], "replicas share a group");
    assert_eq!(
        r.group_of[2], r.group_of[8],
        "a never-seen replica joins its group"
    );
    assert_eq!(g(2).members.len(), 2);
    assert_eq!(g(2).seen, 2, "the Service edge counts both members as seen");
    assert_ne!(r.group_of[3], r.group_of[2], "no app label: its own group");
    assert_eq!(
        g(3).key,
        GroupKey::Workloads {
            namespace: "fraud".into(),
            values: vec![("app".into(), None)]
        }
    );
    assert!(matches!(g(5).key, GroupKey::Hosts { .. }));
    assert!(matches!(g(6).key, GroupKey::External { .. }));
    assert!(matches!(g(7).key, GroupKey::Unresolved { .. }));
    // Same app in another namespace is another group.
    let mut ids2 = ids.clone();
    ids2.push(pod("other", "scoring", &[("app", "scoring")]));
    let input2 = Input {
        identities: &ids2,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r2 = rec::recommend(&input2, &Options::default());
    assert_ne!(r2.group_of[2], r2.group_of[9]);
    assert_eq!(r.other_protocol.edges, 1, "ICMP is counted apart");
}

#[test]
fn ports_merge_per_protocol_into_ranges() {
    let (ids, cidrs, nodes, edges) = fixture();
    let input = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r = rec::recommend(&input, &Options::default());
    let a = r
        .allows
        .iter()
        .find(|a| a.src == r.group_of[0] && a.dst == r.group_of[2])
        .expect("orchestrator → scoring");
    // 9090 (twice), 9091, 9093 from two replicas and through the Service: one rule.
    assert_eq!(a.ports.get(&TCP), Some(&vec![(9090, 9091), (9093, 9093)]));
    assert_eq!(a.evidence.edges, 4);
    assert_eq!(a.evidence.flows, 44);
    assert_eq!(a.evidence.src_seen, 2);
    assert_eq!(rec::ports_text(&a.ports), "TCP 9090-9091, 9093");
}

#[test]
fn dns_is_kept_for_every_segment_even_unobserved() {
    let (ids, cidrs, nodes, edges) = fixture();
    let input = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r = rec::recommend(&input, &Options::default());
    let dns = r.group_of[4];
    assert_eq!(r.dns, vec![dns], "coredns by its label, never observed");
    assert!(r.groups[dns].segment);
    let intent = load(&r.to_yaml(&Provenance::default()), &ids);
    let ev = Evaluator::new(&intent).unwrap();
    let un = Universe::new(&ev, ids.clone());
    for s in [0, 1, 2, 3, 5, 8] {
        for (p, proto) in [(Protocol::Udp, UDP), (Protocol::Tcp, TCP)] {
            let d = un.decide_edge(s, 4, p, 53);
            assert!(
                d.rule.is_some_and(|r| r.action == Action::Allow),
                "{} → coredns {proto}/53: {d:?}",
                ids[s].name
            );
        }
    }
    // And an observed DNS edge is folded into the DNS rule, not kept twice.
    let mut edges2 = edges.clone();
    edges2.push(Observed {
        dst: 0,
        ..edge(3, 0, UDP, 53, 4)
    });
    let input2 = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges2,
    };
    let r2 = rec::recommend(&input2, &Options::default());
    // Port 53 to the orchestrator makes it a DNS server group; the debug pod's allow to it
    // has no other port, so it goes and its flows are on the DNS rule.
    assert!(r2.groups[r2.group_of[0]].dns);
    assert!(
        !r2.allows
            .iter()
            .any(|a| a.src == r2.group_of[3] && a.dst == r2.group_of[0])
    );
    assert_eq!(r2.dns_evidence.flows, 4);
}

#[test]
fn outcome_of_unknown_and_unmanaged_peers() {
    let (ids, cidrs, nodes, edges) = fixture();
    let input = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r = rec::recommend(&input, &Options::default());
    let (o, s) = (Some(r.group_of[0]), Some(r.group_of[2]));
    assert_eq!(r.outcome(o, true, s, true, TCP, 9091), Outcome::Allowed);
    assert_eq!(r.outcome(o, true, s, true, TCP, 9092), Outcome::Blocked);
    assert_eq!(
        r.outcome(s, true, o, true, TCP, 9090),
        Outcome::Blocked,
        "direction"
    );
    assert_eq!(r.outcome(None, true, None, true, TCP, 1), Outcome::NotOurs);
    assert_eq!(r.outcome(None, true, s, true, TCP, 9090), Outcome::Blocked);
    // The debug pod reaches anything on 443 (the internet is an `any` peer).
    let dbg = Some(r.group_of[3]);
    assert_eq!(r.outcome(dbg, true, s, true, TCP, 443), Outcome::Allowed);
}

/// Brute force: every (source, destination, protocol, port ≤ 127 or 65535) the rules allow,
/// through the evaluator; pairs of two non-internal identities left out.
fn brute_allowed(intent: &bulkhead_intent::Intent, ids: &[Identity]) -> u128 {
    let ev = Evaluator::new(intent).unwrap();
    let un = Universe::new(&ev, ids.to_vec());
    let ext = |i: usize| ids[i].kind == IdentityKind::External;
    let mut n = 0u128;
    for s in 0..ids.len() {
        for d in 0..ids.len() {
            if ext(s) && ext(d) {
                continue;
            }
            for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                for port in (0..=127u16).chain([65535]) {
                    let dec = un.decide_edge(s, d, p, port);
                    if dec.rule.is_some_and(|r| r.action == Action::Allow) {
                        n += 1;
                    }
                }
            }
        }
    }
    n
}

fn arb_input() -> impl Strategy<Value = Case> {
    let pods = prop::collection::vec((0..2usize, prop::option::of(0..3usize)), 1..6);
    let hosts = prop::collection::vec(prop::option::of(0..2usize), 0..3);
    let exts = (0..3usize, prop::bool::weighted(0.8));
    (pods, hosts, exts, any::<u64>()).prop_flat_map(|(pods, hosts, (n_ext, unresolved), _)| {
        let mut ids = Vec::new();
        let apps = ["x", "y", "coredns"];
        for (i, (ns, app)) in pods.iter().enumerate() {
            let ns = ["a", "b"][*ns];
            match app {
                Some(a) => ids.push(pod(ns, &format!("p{i}"), &[("app", apps[*a])])),
                None => ids.push(pod(ns, &format!("p{i}"), &[("tier", "t")])),
            }
        }
        for (i, app) in hosts.iter().enumerate() {
            let ip = format!("10.0.0.{}", i + 1);
            match app {
                Some(a) => ids.push(host(&format!("h{i}"), &[("app", ["h", "k"][*a])], &ip)),
                None => ids.push(host(&format!("h{i}"), &[], &ip)),
            }
        }
        let mut cidrs = FxHashMap::default();
        for k in 0..n_ext {
            let ip = format!("198.51.100.{}", k * 16);
            cidrs.insert(ids.len(), vec![format!("{ip}/28")]);
            ids.push(ext(&format!("external:g{k}"), Some(&ip)));
        }
        if unresolved {
            ids.push(ext("external:internet", None));
        }
        let n = ids.len();
        let mut nodes: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        if pods.len() >= 2 {
            nodes.push(vec![0, 1]); // a Service
        }
        let nn = nodes.len() as u32;
        let edges = prop::collection::vec(
            (
                0..nn,
                0..nn,
                prop::sample::select(vec![TCP, TCP, UDP, 132u8, 1u8]),
                prop::sample::select(vec![1u16, 2, 53, 60, 127]),
                1..5u64,
            )
                .prop_map(|(s, d, p, port, f)| edge(s, d, p, port, f)),
            0..16,
        );
        (Just(ids), Just(cidrs), Just(nodes), edges)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every training edge is allowed under the proposal enforced (through the evaluator), and
    /// the combinatorial count of allowed combinations equals the evaluator's brute force.
    #[test]
    fn covers_training_and_counts_exactly((ids, cidrs, nodes, edges) in arb_input()) {
        let input = Input { identities: &ids, cidrs: &cidrs, nodes: &nodes, edges: &edges };
        let r = rec::recommend(&input, &Options { group_by: vec!["app".into()], mode: Mode::Enforce });
        let intent = load(&r.to_yaml(&Provenance::default()), &ids);
        let ev = Evaluator::new(&intent).unwrap();
        let un = Universe::new(&ev, ids.clone());
        let ext = |i: usize| ids[i].kind == IdentityKind::External;
        for e in &edges {
            let p = match e.proto { 6 => Protocol::Tcp, 17 => Protocol::Udp, 132 => Protocol::Sctp, _ => continue };
            for &s in &nodes[e.src as usize] {
                for &d in &nodes[e.dst as usize] {
                    if ext(s) && ext(d) { continue; }
                    let dec = un.decide_edge(s, d, p, e.port);
                    prop_assert_eq!(dec.verdict, Verdict::Allow, "{} -> {} {:?}/{}: {:?}", ids[s].name, ids[d].name, p, e.port, dec);
                }
            }
        }
        prop_assert_eq!(r.allowed_combinations(), brute_allowed(&intent, &ids));
        let q = rec::quality(&r, &input, Some(&input));
        prop_assert_eq!(q.recommended.training.blocked_flows, 0);
        prop_assert_eq!(q.naive.training.blocked_flows, 0);
        prop_assert!(q.recommended.allowed >= q.recommended.observed);
        prop_assert!(q.recommended.observed == q.naive.allowed);
    }
}

#[test]
fn yaml_golden() {
    let (ids, cidrs, nodes, edges) = fixture();
    let input = Input {
        identities: &ids,
        cidrs: &cidrs,
        nodes: &nodes,
        edges: &edges,
    };
    let r = rec::recommend(&input, &Options::default());
    let files = r.to_yaml(&Provenance {
        store: "/data/bulkhead".into(),
        window: "2026-10-30T00:00:00Z..2026-10-31T00:00:00Z".into(),
    });
    load(&files, &ids);
    // Deterministic: computing it again gives the same text.
    let again = rec::recommend(&input, &Options::default()).to_yaml(&Provenance {
        store: "/data/bulkhead".into(),
        window: "2026-10-30T00:00:00Z..2026-10-31T00:00:00Z".into(),
    });
    assert_eq!(files, again);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/recommend");
    for (name, text) in [
        ("segments.yaml", &files.segments),
        ("policies.yaml", &files.policies),
    ] {
        let p = dir.join(name);
        if std::env::var_os("BULKHEAD_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        let want = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with BULKHEAD_UPDATE_GOLDEN=1 to create it",
                p.display()
            )
        });
        assert_eq!(text, &want, "{name} differs from the golden file");
    }
}
