//! The per-host compiler without a kernel: what each rule becomes and why (reasoning tests),
//! a software model of the table checked against the evaluator on every port boundary of
//! random intents (property test), `nft -c` over every host of the bank example (root), and
//! golden files as a drift test (`UPDATE_GOLDEN=1` regenerates them).

mod common;

use bulkhead_compile::Options;
use bulkhead_core::{IpRange, Labels, Protocol};
use bulkhead_intent::{Evaluator, Identity, Intent, Verdict, load_str};
use bulkhead_nft::ruleset::{End, Family, Match, NVerdict};
use bulkhead_nft::{
    CounterKind, HostMode, ModeOverride, Nft, NftError, Ruleset, compile_host, to_json, to_text,
};
use proptest::prelude::*;
use std::net::IpAddr;

fn intent(yaml: &str) -> Intent {
    let l = load_str("t.yaml", yaml);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    l.intent
}

fn host(name: &str, labels: &[(&str, &str)], addrs: &[&str]) -> Identity {
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Identity::host(
        name,
        labels,
        addrs.iter().map(|a| a.parse().unwrap()).collect(),
    )
}

fn opts(inv: Vec<Identity>) -> Options {
    Options {
        inventory: inv,
        ..Options::default()
    }
}

const SEGS: &str = "
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec:
  hostSelector: {matchLabels: {segment: db}}
  mode: enforce
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: batch}
spec:
  hostSelector: {matchLabels: {segment: batch}}
  mode: observe
";

fn policy(rules: &str) -> String {
    format!(
        "{SEGS}---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n{rules}"
    )
}

fn inventory() -> Vec<Identity> {
    vec![
        host("db-1", &[("segment", "db")], &["10.0.0.1"]),
        host(
            "batch-1",
            &[("segment", "batch")],
            &["10.0.1.1", "fd00::11"],
        ),
        host(
            "batch-2",
            &[("segment", "batch"), ("tier", "x")],
            &["10.0.1.2"],
        ),
        host("free-1", &[("app", "free")], &["10.0.2.1"]),
    ]
}

fn set_of<'a>(rs: &'a Ruleset, name: &str) -> &'a [IpRange] {
    &rs.sets.iter().find(|s| s.name == name).unwrap().elems
}

/// The set names an input-chain tier rule matches the source against.
fn src_sets(rs: &Ruleset, chain: &str) -> Vec<(Family, String)> {
    rs.chains
        .iter()
        .find(|c| c.name == chain)
        .unwrap()
        .rules
        .iter()
        .flat_map(|r| &r.matches)
        .filter_map(|m| match m {
            Match::Set(End::Src, f, n) => Some((*f, n.clone())),
            _ => None,
        })
        .collect()
}

fn v4(a: &str) -> IpRange {
    let x: std::net::Ipv4Addr = a.parse().unwrap();
    IpRange::V4(x.into(), x.into())
}

#[test]
fn modes_follow_the_segments_and_observe_never_drops() {
    let it = intent(&policy(
        "    - {action: deny, from: [{any: true}], to: [{any: true}], ports: [{port: 22}]}\n",
    ));
    let o = opts(inventory());
    let db = compile_host(&it, &o, "db-1", ModeOverride::Segments).unwrap();
    assert_eq!(db.mode, HostMode::Enforce);
    assert!(db.drops());
    let batch = compile_host(&it, &o, "batch-1", ModeOverride::Segments).unwrap();
    assert_eq!(batch.mode, HostMode::Observe);
    assert!(!batch.drops(), "observe mode never drops");
    assert!(
        batch
            .counters
            .iter()
            .all(|c| c.kind == CounterKind::WouldBlock)
    );
    // The deny rule and the default are counted in both directions.
    assert_eq!(batch.counters.len(), 4);
    let forced = compile_host(&it, &o, "db-1", ModeOverride::Observe).unwrap();
    assert_eq!(forced.mode, HostMode::Observe);
    assert!(!forced.drops());
    // A host in no segment: nothing of Bulkhead's enforces there.
    let free = compile_host(&it, &o, "free-1", ModeOverride::Segments).unwrap();
    assert_eq!(free.mode, HostMode::Unmanaged);
    assert!(!free.drops());
    assert_eq!(free.chains.len(), 2, "only the base chains");
    assert!(free.counters.is_empty());
    assert!(matches!(
        compile_host(&it, &o, "nobody", ModeOverride::Segments),
        Err(NftError::UnknownHost(_))
    ));
}

#[test]
fn host_selectors_match_exactly_the_selected_hosts_addresses() {
    let it = intent(&policy(
        "    - {action: allow, from: [{selector: {hostSelector: {matchLabels: {tier: x}}}}], to: [{segment: db}]}\n    - {action: allow, from: [{segment: batch}], to: [{segment: db}], ports: [{port: 5432}]}\n",
    ));
    let db = compile_host(&it, &opts(inventory()), "db-1", ModeOverride::Segments).unwrap();
    let sets = src_sets(&db, "in_application");
    // Rule 0: batch-2 only (batch-1 is in the segment but lacks tier=x); rule 1: both batch
    // hosts, over IPv4 and IPv6 (batch-1 has an IPv6 address).
    assert_eq!(sets.len(), 3, "{sets:?}");
    assert_eq!(set_of(&db, &sets[0].1), &[v4("10.0.1.2")]);
    assert_eq!(
        set_of(&db, &sets[1].1),
        &[IpRange::V4(0x0a00_0101, 0x0a00_0102)]
    );
    assert_eq!(sets[2].0, Family::V6);
    assert_eq!(set_of(&db, &sets[2].1).len(), 1);
    // The output chain: rules whose `from` holds db-1 — none.
    let out: usize = db
        .chains
        .iter()
        .filter(|c| c.name.starts_with("out_"))
        .map(|c| c.rules.len())
        .sum();
    assert_eq!(out, 0);
}

#[test]
fn a_cidr_peer_takes_every_address_of_a_host_inside_and_never_pods() {
    let it = intent(&policy(
        "    - {action: allow, from: [{cidr: 10.0.1.1/32}], to: [{segment: db}]}\n    - {action: allow, from: [{namespace: shop}], to: [{segment: db}]}\n",
    ));
    let db = compile_host(&it, &opts(inventory()), "db-1", ModeOverride::Segments).unwrap();
    let sets = src_sets(&db, "in_application");
    // batch-1 has 10.0.1.1 inside: its IPv6 address is batch-1 too (the evaluator judges the
    // host); the namespace peer names pods, whose addresses the inventory does not give.
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert_eq!(set_of(&db, &sets[0].1), &[v4("10.0.1.1")]);
    assert_eq!(sets[1].0, Family::V6);
    assert!(
        db.notes.iter().any(|n| n.contains("Kubernetes workloads")),
        "{:?}",
        db.notes
    );
}

#[test]
fn pass_returns_deny_drops_named_ports_are_noted() {
    let it = intent(&policy(
        "    - {action: pass, from: [{any: true}], to: [{segment: db}], ports: [{port: 1}]}\n    - {action: deny, from: [{any: true}], to: [{segment: db}], ports: [{protocol: UDP, port: 53}, {port: 80, endPort: 90}]}\n    - {action: allow, from: [{any: true}], to: [{segment: db}], ports: [{port: http}]}\n",
    ));
    let db = compile_host(&it, &opts(inventory()), "db-1", ModeOverride::Segments).unwrap();
    let app = &db
        .chains
        .iter()
        .find(|c| c.name == "in_application")
        .unwrap()
        .rules;
    // pass → return; deny → one rule per protocol, counted and dropped; the named-port allow
    // matches nothing on a host (hosts have no container ports) and is left out with a note.
    assert_eq!(app.len(), 3, "{app:#?}");
    assert_eq!(app[0].verdict, NVerdict::Return);
    assert_eq!(
        app[0].matches,
        vec![Match::Ports(Protocol::Tcp, vec![(1, 1)])]
    );
    assert_eq!(
        app[1].matches,
        vec![Match::Ports(Protocol::Tcp, vec![(80, 90)])]
    );
    assert_eq!(
        app[2].matches,
        vec![Match::Ports(Protocol::Udp, vec![(53, 53)])]
    );
    assert!(
        app[1..]
            .iter()
            .all(|r| r.verdict == NVerdict::Drop && r.counter.is_some())
    );
    assert!(
        db.notes.iter().any(|n| n.contains("named ports")),
        "{:?}",
        db.notes
    );
    // And the text says the same.
    let text = to_text(&db);
    assert!(
        text.contains("tcp dport 80-90 counter name \"in_r1\" drop"),
        "{text}"
    );
    assert!(
        text.contains("udp dport 53 counter name \"in_r1\" drop"),
        "{text}"
    );
}

#[test]
fn odd_rule_names_give_valid_nft_comments() {
    let it = intent(&policy(
        r#"    - {name: "quote \" back\\slash été", action: allow, from: [{any: true}], to: [{segment: db}]}
"#,
    ));
    let db = compile_host(&it, &opts(inventory()), "db-1", ModeOverride::Segments).unwrap();
    let c = db.chains[2..]
        .iter()
        .flat_map(|c| &c.rules)
        .find_map(|r| r.comment.clone())
        .unwrap();
    assert!(c.contains("quote") && c.contains("slash"), "{c}");
    assert!(
        c.chars()
            .all(|ch| (' '..='~').contains(&ch) && ch != '"' && ch != '\\'),
        "{c}"
    );
    if common::is_root() {
        Nft::host().check_text(&to_text(&db)).unwrap();
        Nft::host().check_json(&to_json(&db)).unwrap();
    }
}

// ---- A software model of the table, checked against the evaluator ----

/// What the compiled table does to a new connection from `src` to `dst` at one of its ends
/// (`input`: `dst` is the host; `output`: `src` is): `true` when it is not dropped.
fn model_passes(rs: &Ruleset, input: bool, peer: IpAddr, proto: Protocol, port: u16) -> bool {
    let matches = |m: &Match| match m {
        Match::Established | Match::Loopback(_) | Match::NeighbourDiscovery => false,
        Match::Set(_, f, n) => {
            let fam_ok = (*f == Family::V4) == peer.is_ipv4();
            fam_ok && set_of(rs, n).iter().any(|r| r.contains(peer))
        }
        Match::Ports(p, rs) => *p == proto && rs.iter().any(|&(a, b)| (a..=b).contains(&port)),
    };
    // Returns Some(accept?) when a rule ends the evaluation.
    fn run(rs: &Ruleset, name: &str, m: &dyn Fn(&Match) -> bool) -> Option<bool> {
        let chain = rs.chains.iter().find(|c| c.name == name).unwrap();
        for r in &chain.rules {
            if !r.matches.iter().all(m) {
                continue;
            }
            match &r.verdict {
                NVerdict::Accept => return Some(true),
                NVerdict::Drop => return Some(false),
                NVerdict::Return => return None,
                NVerdict::Jump(t) => {
                    if let Some(v) = run(rs, t, m) {
                        return Some(v);
                    }
                }
                NVerdict::None => {}
            }
        }
        None
    }
    run(rs, if input { "input" } else { "output" }, &matches).unwrap_or(true)
}

fn arb_intent() -> impl Strategy<Value = String> {
    let peer = prop_oneof![
        Just("{any: true}".to_string()),
        (0..3usize).prop_map(|s| format!("{{segment: s{s}}}")),
        (0..4usize).prop_map(|h| format!(
            "{{selector: {{hostSelector: {{matchLabels: {{name: h{h}}}}}}}}}"
        )),
        (0..6u8).prop_map(|h| format!("{{cidr: 10.1.0.{h}/32}}")),
        Just("{cidr: 10.1.0.0/30, except: [10.1.0.1/32]}".to_string()),
        Just("{cidr: \"fd01::/64\"}".to_string()),
        Just(
            "{selector: {podSelector: {}, hostSelector: {matchLabels: {segment: s1}}}}".to_string()
        ),
        Just("{namespace: shop}".to_string()),
    ];
    let port = prop_oneof![
        Just("{port: 80}"),
        Just("{port: 443}"),
        Just("{port: 8000, endPort: 8100}"),
        Just("{protocol: UDP, port: 53}"),
        Just("{protocol: UDP}"),
    ];
    let rule = (
        prop_oneof![Just("allow"), Just("deny"), Just("pass")],
        prop::collection::vec(peer.clone(), 1..3),
        prop::collection::vec(peer, 1..3),
        prop::option::of(prop::collection::vec(port, 1..3)),
    )
        .prop_map(|(a, f, t, p)| {
            let mut s = format!(
                "    - action: {a}\n      from: [{}]\n      to: [{}]\n",
                f.join(", "),
                t.join(", ")
            );
            if let Some(p) = p {
                s += &format!("      ports: [{}]\n", p.join(", "));
            }
            s
        });
    (
        prop::collection::vec(any::<bool>(), 3),
        prop::collection::vec(prop::collection::vec(rule, 1..4), 3),
    )
        .prop_map(|(modes, tiers)| {
            let mut y = String::new();
            for (i, enforce) in modes.iter().enumerate() {
                y += &format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: s{i}}}\nspec:\n  hostSelector: {{matchLabels: {{segment: s{i}}}}}\n  mode: {}\n",
                    if *enforce { "enforce" } else { "observe" }
                );
            }
            for (i, (tier, rules)) in ["guardrail", "application", "baseline"]
                .iter()
                .zip(tiers)
                .enumerate()
            {
                y += &format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p{i}}}\nspec:\n  tier: {tier}\n  rules:\n{}",
                    rules.concat()
                );
            }
            y
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each host's table, read as nftables evaluates it, drops a new connection on its side
    /// exactly when the evaluator's verdict for that side is a deny — for every pair of hosts
    /// and outside addresses, both families, at every port boundary of TCP and UDP.
    #[test]
    fn the_table_model_equals_the_evaluator(yaml in arb_intent()) {
        let it = intent(&yaml);
        let ev = Evaluator::new(&it).unwrap();
        // h0..h2 in segments s0..s2, h3 in none; 10.1.0.4 and fd01::9 are outside addresses.
        let inv: Vec<Identity> = (0..4)
            .map(|i| {
                let mut l = vec![("name", format!("h{i}"))];
                if i < 3 { l.push(("segment", format!("s{i}"))); }
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let v6 = format!("fd01::{i}");
                host(&format!("h{i}"), &l, &[&format!("10.1.0.{i}"), &v6])
            })
            .collect();
        let o = opts(inv.clone());
        let tables: Vec<Ruleset> = (0..4)
            .map(|i| compile_host(&it, &o, &format!("h{i}"), ModeOverride::Segments).unwrap())
            .collect();
        let outside = [Identity::external("10.1.0.4".parse().unwrap()), Identity::external("fd01::9".parse().unwrap())];
        let ports: [(Protocol, u16); 7] = [
            (Protocol::Tcp, 80), (Protocol::Tcp, 443), (Protocol::Tcp, 7999), (Protocol::Tcp, 8000),
            (Protocol::Tcp, 8100), (Protocol::Udp, 53), (Protocol::Udp, 54),
        ];
        // Index 4 is the outside address of the family being probed.
        for a in 0..5usize {
            for b in 0..5usize {
                if a == b { continue; }
                for v6 in [false, true] {
                    let id = |i: usize| if i < 4 { inv[i].clone() } else { outside[usize::from(v6)].clone() };
                    let addr = |i: usize| -> IpAddr {
                        let s = match (i, v6) {
                            (4, false) => "10.1.0.4".to_string(),
                            (4, true) => "fd01::9".to_string(),
                            (i, false) => format!("10.1.0.{i}"),
                            (i, true) => format!("fd01::{i}"),
                        };
                        s.parse().unwrap()
                    };
                    for &(proto, port) in &ports {
                        let d = ev.decide(&id(a), &id(b), proto, port);
                        let out_ok = a >= 4 || model_passes(&tables[a], false, addr(b), proto, port);
                        let in_ok = b >= 4 || model_passes(&tables[b], true, addr(a), proto, port);
                        prop_assert_eq!(
                            out_ok && in_ok,
                            d.verdict != Verdict::Deny,
                            "h{} -> h{} {:?}/{} v6={}: model out {} in {}, evaluator {:?}\n{}",
                            a, b, proto, port, v6, out_ok, in_ok, d.verdict, yaml
                        );
                    }
                }
            }
        }
    }
}

// ---- The bank example: nft -c and golden files ----

#[test]
fn every_bank_host_passes_nft_check() {
    if !common::is_root() {
        eprintln!("skipped: nft -c needs root (CAP_NET_ADMIN)");
        return;
    }
    let it = common::bank_intent();
    let o = common::bank_options();
    let nft = Nft::host();
    let mut n = 0;
    for h in &o.inventory {
        let rs = compile_host(&it, &o, &h.name, ModeOverride::Segments).unwrap();
        nft.check_json(&to_json(&rs))
            .unwrap_or_else(|e| panic!("{} (json): {e}", h.name));
        nft.check_text(&to_text(&rs))
            .unwrap_or_else(|e| panic!("{} (text): {e}", h.name));
        n += 1;
    }
    assert!(n >= 40, "the bank has {n} hosts");
}

#[test]
fn golden_files_of_bank_hosts() {
    let it = common::bank_intent();
    let o = common::bank_options();
    let dir = common::repo().join("crates/nft/tests/golden");
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let compiled = bulkhead_nft::compile(&it, &o, None, ModeOverride::Segments).unwrap();
    // One enforced host (payments) and one observed (messaging): the files a reviewer reads.
    for name in [
        "swift-gateway-01.nft",
        "swift-gateway-01.nft.json",
        "kafka-01.nft",
        "kafka-01.nft.json",
    ] {
        let got = compiled
            .files
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"));
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            *got == want,
            "{name} changed: review the difference, then UPDATE_GOLDEN=1 cargo test -p bulkhead-nft --test compile"
        );
    }
}
