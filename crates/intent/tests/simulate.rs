//! The digital twin: edges classified by how their verdict changes, case by case, and the
//! semantic diff checked against brute-force decisions on random small intents.

use bulkhead_core::{IpSet, NamedPort, Protocol, RangeSet, Selector};
use bulkhead_intent::{
    Action, Change, EntitySelector, Evaluator, Identity, Intent, Loc, Meta, Mode, Peer, PeerAt,
    Policy, PortMatch, Rule, Segment, Tier, Twin, Universe, Verdict, diff,
};
use proptest::prelude::*;

mod common;
use common::*;

fn pod(app: &str) -> Identity {
    Identity::workload(
        "ns",
        app,
        labels(&[("app", app)]),
        labels(&[("kubernetes.io/metadata.name", "ns")]),
    )
}

/// web → db on TCP 5432 (and 22) under `new` and `old`.
fn change(new: &Intent, old: &Intent, port: u16) -> (Change, Option<String>) {
    let (en, eo) = (Evaluator::new(new).unwrap(), Evaluator::new(old).unwrap());
    let ids = vec![pod("web"), pod("db"), pod("other")];
    let (un, uo) = (Universe::new(&en, ids.clone()), Universe::new(&eo, ids));
    let mut twin = Twin::new(&un, &uo);
    let (n, o) = twin.decide(0, 1, Protocol::Tcp, port);
    let by = n.rule.map(|r| new.policies[r.policy].rule_label(r.rule));
    (Change::of(n.verdict, o.verdict), by)
}

#[test]
fn each_class_by_hand() {
    let none = Intent::default();
    let segs = |mode: &str| segment("web", "web", mode) + &segment("db", "db", mode);
    let allow_pg = policy(
        "app",
        "application",
        &rule("allow", "{segment: web}", "{segment: db}", "{port: 5432}"),
    );
    let guard = policy(
        "guard",
        "guardrail",
        "    - name: no-ssh\n      action: deny\n      from: [{any: true}]\n      to: [{any: true}]\n      ports: [{port: 22}]\n",
    );
    let enforced = intent(&(segs("enforce") + &allow_pg + &guard));
    let observed = intent(&(segs("observe") + &allow_pg));
    // Enforced, the allowed port stays allowed against "no policy".
    assert_eq!(change(&enforced, &none, 5432).0, Change::StillAllowed);
    // Enforced, another port falls to the default deny: newly blocked, by no rule.
    assert_eq!(change(&enforced, &none, 6379), (Change::NewlyBlocked, None));
    // The guardrail decides SSH: newly blocked by the named rule.
    assert_eq!(
        change(&enforced, &none, 22),
        (
            Change::NewlyBlocked,
            Some("rules[0] \"no-ssh\"".to_string())
        )
    );
    // Observed segments: would block instead.
    assert_eq!(change(&observed, &none, 6379).0, Change::WouldBlock);
    assert_eq!(change(&observed, &none, 5432).0, Change::StillAllowed);
    // Against the enforced version: 6379 was denied and still is; opening it is newly allowed.
    assert_eq!(change(&enforced, &enforced, 6379).0, Change::StillBlocked);
    let wider = intent(
        &(segs("enforce")
            + &policy(
                "app",
                "application",
                &rule("allow", "{segment: web}", "{segment: db}", ""),
            )),
    );
    assert_eq!(change(&wider, &enforced, 6379).0, Change::NewlyAllowed);
    assert_eq!(change(&wider, &enforced, 5432).0, Change::StillAllowed);
    // Denied before, only would-block now (the segments moved to observe).
    assert_eq!(change(&observed, &enforced, 6379).0, Change::WouldBlock);
}

#[test]
fn change_table() {
    use Verdict::*;
    for (new, old, want) in [
        (Allow, Allow, Change::StillAllowed),
        (Allow, WouldBlock, Change::StillAllowed),
        (Allow, Deny, Change::NewlyAllowed),
        (Deny, Allow, Change::NewlyBlocked),
        (Deny, WouldBlock, Change::NewlyBlocked),
        (Deny, Deny, Change::StillBlocked),
        (WouldBlock, Allow, Change::WouldBlock),
        (WouldBlock, Deny, Change::WouldBlock),
    ] {
        assert_eq!(Change::of(new, old), want, "{new:?} after {old:?}");
    }
}

#[test]
fn diff_by_hand() {
    let segs = segment("web", "web", "enforce") + &segment("db", "db", "enforce");
    let old = intent(
        &(segs.clone()
            + &policy(
                "app",
                "application",
                &rule("allow", "{segment: web}", "{segment: db}", "{port: 5432}"),
            )),
    );
    let new = intent(
        &(segs
            + &policy(
                "app",
                "application",
                &rule(
                    "allow",
                    "{segment: web}",
                    "{segment: db}",
                    "{port: 5432}, {port: 6000, endPort: 6010}",
                ),
            )),
    );
    let (en, eo) = (Evaluator::new(&new).unwrap(), Evaluator::new(&old).unwrap());
    let ids = vec![pod("web"), pod("db"), pod("web"), pod("other")];
    let (un, uo) = (Universe::new(&en, ids.clone()), Universe::new(&eo, ids));
    let twin = Twin::new(&un, &uo);
    // The two web pods are one class.
    assert_eq!(twin.classes.len(), 3);
    let rows = diff(&twin);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(twin.classes.members[r.src as usize], vec![0, 2]);
    assert_eq!(twin.classes.members[r.dst as usize], vec![1]);
    assert_eq!(
        (r.proto, r.ports.clone()),
        (Protocol::Tcp, vec![(6000, 6010)])
    );
    assert_eq!(
        (r.old.verdict, r.new.verdict),
        (Verdict::Deny, Verdict::Allow)
    );
}

/// The diff row covering (class pair, protocol, port), if any.
fn covering(
    rows: &[bulkhead_intent::DiffRow],
    s: u32,
    d: u32,
    proto: Protocol,
    port: u16,
) -> Vec<&bulkhead_intent::DiffRow> {
    rows.iter()
        .filter(|r| {
            r.src == s
                && r.dst == d
                && r.proto == proto
                && r.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn diff_agrees_with_brute_force(new in arb_intent(), old in arb_intent()) {
        let (en, eo) = (Evaluator::new(&new).unwrap(), Evaluator::new(&old).unwrap());
        let ids = identities();
        let (un, uo) = (Universe::new(&en, ids.clone()), Universe::new(&eo, ids.clone()));
        let twin = Twin::new(&un, &uo);
        let rows = diff(&twin);
        // Rules name ports 53, 80..99 and the named port 85; the reduced universe spans them
        // with margin, and the top of the range.
        let ports: Vec<u16> = (1..=130).chain([1000, 65535]).collect();
        for si in 0..ids.len() {
            for di in 0..ids.len() {
                let (cs, cd) = (twin.classes.class_of[si], twin.classes.class_of[di]);
                for proto in Protocol::ALL {
                    for &port in &ports {
                        // `decide_edge` agrees with `decide` (tests/eval.rs).
                        let n = un.decide_edge(si, di, proto, port);
                        let o = uo.decide_edge(si, di, proto, port);
                        let hit = covering(&rows, cs, cd, proto, port);
                        if n.verdict == o.verdict {
                            prop_assert!(hit.is_empty(), "{} -> {} {}/{}: unchanged but reported", ids[si].name, ids[di].name, proto, port);
                        } else {
                            prop_assert_eq!(hit.len(), 1, "{} -> {} {}/{}: {:?} -> {:?} reported {} times", ids[si].name, ids[di].name, proto, port, o.verdict, n.verdict, hit.len());
                            prop_assert_eq!((hit[0].old, hit[0].new), (o, n));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn diff_of_an_intent_with_itself_is_empty() {
    let it = intent(
        &(segment("web", "web", "enforce")
            + &policy(
                "app",
                "application",
                &rule("allow", "{segment: web}", "{any: true}", "{port: 443}"),
            )),
    );
    let ev = Evaluator::new(&it).unwrap();
    let ids = vec![
        pod("web"),
        pod("db"),
        Identity::external("8.8.8.8".parse().unwrap()),
    ];
    let (a, b) = (Universe::new(&ev, ids.clone()), Universe::new(&ev, ids));
    assert!(diff(&Twin::new(&a, &b)).is_empty());
    // Against no policy, web's egress other than 443 is what changes.
    let none = Evaluator::new(&Intent::default()).unwrap();
    let ids = vec![pod("web"), pod("db")];
    let (a, b) = (Universe::new(&ev, ids.clone()), Universe::new(&none, ids));
    let twin = Twin::new(&a, &b);
    let rows = diff(&twin);
    let web = twin.classes.class_of[0];
    // Web's egress other than 443 and everything into web (default deny at its ingress).
    assert!(
        rows.iter()
            .all(|r| (r.src == web || r.dst == web) && r.new.verdict == Verdict::Deny)
    );
    let tcp: Vec<_> = rows
        .iter()
        .filter(|r| r.proto == Protocol::Tcp && r.dst != web)
        .flat_map(|r| r.ports.clone())
        .collect();
    assert!(
        tcp.contains(&(1, 442)) && tcp.contains(&(444, 65535)),
        "{tcp:?}"
    );
    let _ = (
        IpSet::cidr("10.0.0.0/8"),
        Selector::everything(),
        RangeSet::range(1u16, 2),
        NamedPort {
            name: String::new(),
            protocol: Protocol::Tcp,
            port: 1,
        },
        Action::Allow,
        EntitySelector::default(),
        Mode::Observe,
        Tier::Guardrail,
        PeerAt {
            peer: Peer::Any,
            loc: Loc::default(),
        },
        Meta::default(),
    );
    let _: Option<(Policy, Rule, Segment, PortMatch)> = None;
}
