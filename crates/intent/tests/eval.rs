//! The evaluator: semantics case by case, the bank example, and agreement with a naive
//! reference implementation (written here, separately) on random small intents.

use bulkhead_core::{NamedPort, Protocol};
use bulkhead_intent::{
    Action, EntitySelector, Evaluator, Identity, Intent, Mode, Peer, PortMatch, Reason, Rule, Side,
    Tier, Universe, Verdict, load_paths,
};
use proptest::prelude::*;

mod common;
use common::*;

fn pod(ns: &str, app: &str) -> Identity {
    Identity::workload(
        ns,
        app,
        labels(&[("app", app)]),
        labels(&[("kubernetes.io/metadata.name", ns)]),
    )
}

const HEAD: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

/// (intent, src app, dst app, port, verdict, deciding policy/rule, side, message)
#[test]
fn semantics_table() {
    let segs = || {
        segment("web", "web", "enforce")
            + &segment("db", "db", "enforce")
            + &segment("obs", "obs", "observe")
    };
    type Case = (
        String,
        &'static str,
        &'static str,
        u16,
        Verdict,
        Option<(&'static str, usize)>,
        Option<Side>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &rule("deny", "{segment: web}", "{segment: db}", ""),
                )
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", ""),
                ),
            "web",
            "db",
            5432,
            Verdict::Deny,
            Some(("g", 0)),
            Some(Side::Egress),
            "a guardrail deny wins over an application allow",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", "{port: 5432}"),
                )
                + &policy(
                    "b",
                    "baseline",
                    &rule("deny", "{any: true}", "{any: true}", ""),
                ),
            "web",
            "db",
            5432,
            Verdict::Allow,
            Some(("a", 0)),
            None,
            "an application allow wins over a baseline deny",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", "{port: 5432}"),
                ),
            "web",
            "db",
            5433,
            Verdict::Deny,
            None,
            Some(Side::Egress),
            "another port: default deny of the enforced source",
        ),
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &(rule("pass", "{segment: web}", "{segment: db}", "")
                        + &rule("deny", "{any: true}", "{segment: db}", "")),
                )
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", ""),
                ),
            "web",
            "db",
            1,
            Verdict::Allow,
            Some(("a", 0)),
            None,
            "pass skips the rest of the guardrail tier",
        ),
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &(rule("pass", "{segment: web}", "{segment: db}", "")
                        + &rule("allow", "{any: true}", "{any: true}", "")),
                )
                + &policy(
                    "b",
                    "baseline",
                    &rule("deny", "{any: true}", "{any: true}", ""),
                ),
            "web",
            "db",
            1,
            Verdict::Deny,
            Some(("b", 0)),
            Some(Side::Egress),
            "pass goes to the next tier with rules, here the baseline",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &(rule("allow", "{segment: web}", "{segment: db}", "")
                        + &rule("deny", "{segment: web}", "{segment: db}", "")),
                ),
            "web",
            "db",
            1,
            Verdict::Allow,
            Some(("a", 0)),
            None,
            "first match wins within a tier",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", ""),
                ),
            "db",
            "web",
            80,
            Verdict::Deny,
            None,
            Some(Side::Egress),
            "rules have a direction: db to web is not allowed",
        ),
        (
            segs(),
            "free",
            "db",
            80,
            Verdict::Deny,
            None,
            Some(Side::Ingress),
            "an enforced destination denies by default at its ingress",
        ),
        (
            segs(),
            "web",
            "free",
            80,
            Verdict::Deny,
            None,
            Some(Side::Egress),
            "an enforced source denies by default at its egress",
        ),
        (
            segs(),
            "free",
            "other",
            80,
            Verdict::Allow,
            None,
            None,
            "outside every segment: default allow",
        ),
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &rule("deny", "{any: true}", "{any: true}", ""),
                ),
            "free",
            "other",
            80,
            Verdict::Allow,
            Some(("g", 0)),
            None,
            "a deny between two unmanaged workloads has no enforcement point",
        ),
        (
            segs(),
            "free",
            "obs",
            80,
            Verdict::WouldBlock,
            None,
            Some(Side::Ingress),
            "observe mode: the default deny would block",
        ),
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &rule("deny", "{any: true}", "{segment: obs}", ""),
                ),
            "free",
            "obs",
            80,
            Verdict::WouldBlock,
            Some(("g", 0)),
            Some(Side::Ingress),
            "observe mode: an explicit deny would block",
        ),
        (
            segs()
                + &policy(
                    "g",
                    "guardrail",
                    &rule("deny", "{segment: obs}", "{segment: db}", ""),
                ),
            "obs",
            "db",
            80,
            Verdict::Deny,
            Some(("g", 0)),
            Some(Side::Ingress),
            "an observed source cannot stop the enforced destination from denying",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &rule("allow", "{segment: web}", "{segment: db}", ""),
                ),
            "web",
            "db",
            80,
            Verdict::Allow,
            Some(("a", 0)),
            None,
            "one rule between two enforced segments allows both sides",
        ),
        (
            segs()
                + &policy(
                    "a",
                    "application",
                    &rule(
                        "allow",
                        "{segment: web}",
                        "{segment: obs}",
                        "{protocol: UDP}",
                    ),
                ),
            "web",
            "obs",
            80,
            Verdict::Deny,
            None,
            Some(Side::Egress),
            "TCP is not UDP",
        ),
    ];
    for (yaml, s, d, port, verdict, by, side, msg) in cases {
        let it = intent(&yaml);
        let ev = Evaluator::new(&it).unwrap();
        let dec = ev.decide(&pod("ns", s), &pod("ns", d), Protocol::Tcp, port);
        assert_eq!(dec.verdict, verdict, "{msg}: {}", ev.describe(&it, &dec));
        let got = dec.rule.map(|r| (it.policies[r.policy].name(), r.rule));
        assert_eq!(got, by, "{msg}: deciding rule");
        assert_eq!(dec.side, side, "{msg}: side");
    }
}

#[test]
fn externals_hosts_and_named_ports() {
    let yaml = segment("db", "db", "enforce")
        + &format!(
            "---\n{HEAD}kind: Segment\nmetadata: {{name: vms}}\nspec:\n  hostSelector: {{matchLabels: {{app: vm}}}}\n  mode: enforce\n"
        )
        + &policy(
            "a",
            "application",
            &(rule(
                "allow",
                "{cidr: 192.0.2.0/24}",
                "{segment: db}",
                "{port: https}",
            ) + &rule(
                "allow",
                "{segment: vms}",
                "{cidr: 10.9.0.0/16}",
                "{protocol: UDP, port: 53}",
            )),
        );
    let it = intent(&yaml);
    let ev = Evaluator::new(&it).unwrap();
    let mut db = pod("ns", "db");
    db.named_ports = vec![NamedPort {
        name: "https".into(),
        protocol: Protocol::Tcp,
        port: 8443,
    }];
    let ext = Identity::external("192.0.2.7".parse().unwrap());
    let d = ev.decide(&ext, &db, Protocol::Tcp, 8443);
    assert_eq!(
        d.verdict,
        Verdict::Allow,
        "named port resolves on the destination"
    );
    assert_eq!(d.reason, Reason::Rule);
    let d = ev.decide(&ext, &db, Protocol::Tcp, 443);
    assert_eq!(
        (d.verdict, d.side),
        (Verdict::Deny, Some(Side::Ingress)),
        "443 is not https here"
    );
    let vm = Identity::host(
        "vm-1",
        labels(&[("app", "vm")]),
        vec!["10.1.0.1".parse().unwrap()],
    );
    let dns = Identity::external("10.9.1.1".parse().unwrap());
    assert_eq!(
        ev.decide(&vm, &dns, Protocol::Udp, 53).verdict,
        Verdict::Allow,
        "host by hostSelector"
    );
    assert_eq!(
        ev.decide(&vm, &dns, Protocol::Tcp, 53).verdict,
        Verdict::Deny,
        "host egress default deny"
    );
    // CIDR peers do not match pods, whatever their address.
    let it2 = intent(
        &(segment("db", "db", "enforce")
            + &policy(
                "a",
                "application",
                &rule("allow", "{cidr: 0.0.0.0/0}", "{segment: db}", ""),
            )),
    );
    let ev2 = Evaluator::new(&it2).unwrap();
    assert_eq!(
        ev2.decide(&pod("x", "web"), &pod("ns", "db"), Protocol::Tcp, 1)
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        ev2.decide(&ext, &pod("ns", "db"), Protocol::Tcp, 1).verdict,
        Verdict::Allow
    );
}

#[test]
fn unknown_segments_refuse_to_compile() {
    let it = intent(&policy(
        "a",
        "application",
        &rule("allow", "{segment: nope}", "{any: true}", ""),
    ));
    assert!(
        Evaluator::new(&it).is_err(),
        "an unknown segment is never 'match nothing'"
    );
}

/// The worked bank example, decided by hand from its files.
#[test]
fn bank_example_decisions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    let l = load_paths(&[dir]);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    let it = l.intent;
    let ev = Evaluator::new(&it).unwrap();
    let bank_pod = |seg: &str, app: &str| {
        Identity::workload(
            seg,
            app,
            labels(&[("segment", seg), ("app", app)]),
            labels(&[("segment", seg)]),
        )
    };
    let bank_host = |seg: &str, app: &str| {
        Identity::host(
            app,
            labels(&[("segment", seg), ("app", app)]),
            vec!["10.50.0.20".parse().unwrap()],
        )
    };
    type BankCase = (
        Identity,
        Identity,
        Protocol,
        u16,
        Verdict,
        Option<&'static str>,
        &'static str,
    );
    let cases: Vec<BankCase> = vec![
        (
            bank_pod("marketing-analytics", "campaign"),
            bank_host("core-ledger", "ledger-db"),
            Protocol::Tcp,
            1521,
            Verdict::Deny,
            Some("marketing-isolation"),
            "marketing never reaches the ledger",
        ),
        (
            bank_pod("marketing-analytics", "campaign"),
            bank_host("core-ledger", "ledger-staging"),
            Protocol::Tcp,
            22,
            Verdict::Deny,
            Some("marketing-isolation"),
            "nor its staging host",
        ),
        (
            bank_pod("edge", "api-gateway"),
            bank_pod("payments", "payment-orchestrator"),
            Protocol::Tcp,
            8443,
            Verdict::Allow,
            Some("customer-journeys"),
            "gateway to payments stays open",
        ),
        (
            bank_pod("payments", "payment-orchestrator"),
            bank_pod("fraud", "fraud-scoring"),
            Protocol::Tcp,
            9090,
            Verdict::Allow,
            Some("payments"),
            "payments to fraud",
        ),
        (
            bank_pod("accounts", "accounts"),
            bank_host("cards", "card-auth"),
            Protocol::Tcp,
            8583,
            Verdict::Deny,
            Some("pci-cde-boundary"),
            "only payments reach cards",
        ),
        (
            bank_pod("payments", "payment-orchestrator"),
            bank_host("cards", "card-auth"),
            Protocol::Tcp,
            8583,
            Verdict::Allow,
            Some("payments"),
            "payments reach card authorisation",
        ),
        (
            bank_pod("payments", "payment-orchestrator"),
            bank_host("cards", "hsm"),
            Protocol::Tcp,
            1500,
            Verdict::Deny,
            Some("pci-cde-boundary"),
            "only cards reach the HSM",
        ),
        (
            bank_host("cards", "card-auth"),
            bank_host("cards", "hsm"),
            Protocol::Tcp,
            1500,
            Verdict::Allow,
            Some("payments"),
            "cards reach the HSM",
        ),
        (
            bank_pod("payments", "sepa-instant"),
            bank_pod("shared-infra", "coredns"),
            Protocol::Udp,
            53,
            Verdict::Allow,
            Some("platform-baseline"),
            "DNS from an enforced segment",
        ),
        (
            bank_pod("payments", "sepa-instant"),
            bank_pod("channels", "web-bff"),
            Protocol::Tcp,
            8443,
            Verdict::Deny,
            None,
            "enforced payments: default deny at egress",
        ),
        (
            bank_pod("channels", "web-bff"),
            bank_pod("notifications", "sms-sender"),
            Protocol::Tcp,
            8443,
            Verdict::WouldBlock,
            None,
            "observed segments: would block",
        ),
        (
            bank_host("shared-infra", "backup"),
            bank_pod("customer-data", "customer-db"),
            Protocol::Tcp,
            5432,
            Verdict::Deny,
            Some("gdpr-customer-data"),
            "backup reaches customer data on 8443 only",
        ),
    ];
    for (s, d, proto, port, verdict, by, msg) in cases {
        let dec = ev.decide(&s, &d, proto, port);
        assert_eq!(dec.verdict, verdict, "{msg}: {}", ev.describe(&it, &dec));
        assert_eq!(
            dec.rule.map(|r| it.policies[r.policy].name()),
            by,
            "{msg}: {}",
            ev.describe(&it, &dec)
        );
    }
}

// ---- The naive reference: the documented semantics, written directly. ----

fn ref_sel(sel: &EntitySelector, id: &Identity) -> bool {
    match &id.kind {
        bulkhead_intent::IdentityKind::Workload {
            namespace_labels, ..
        } => {
            if sel.namespaces.is_none() && sel.pods.is_none() {
                return false;
            }
            let ns_ok = match &sel.namespaces {
                None => true,
                Some(s) => s.matches(namespace_labels),
            };
            let pod_ok = match &sel.pods {
                None => true,
                Some(s) => s.matches(&id.labels),
            };
            ns_ok && pod_ok
        }
        bulkhead_intent::IdentityKind::Host => match &sel.hosts {
            None => false,
            Some(s) => s.matches(&id.labels),
        },
        bulkhead_intent::IdentityKind::External => false,
    }
}

fn ref_peer(it: &Intent, p: &Peer, id: &Identity) -> bool {
    match p {
        Peer::Any => true,
        Peer::Segment(n) => it
            .segments
            .iter()
            .any(|s| &s.meta.name == n && ref_sel(&s.selector, id)),
        Peer::Selector(s) => ref_sel(s, id),
        Peer::Namespace(n) => id.namespace() == Some(n.as_str()),
        Peer::Cidr(set) => {
            !matches!(id.kind, bulkhead_intent::IdentityKind::Workload { .. })
                && id.addresses.iter().any(|a| set.contains(*a))
        }
    }
}

fn ref_ports(r: &Rule, dst: &Identity, proto: Protocol, port: u16) -> bool {
    let Some(ps) = &r.ports else { return true };
    ps.iter().any(|p| match p {
        PortMatch::Conns(c) => c.contains(proto, port),
        PortMatch::Named { protocol, name } => {
            protocol.is_none_or(|x| x == proto)
                && dst
                    .named_ports
                    .iter()
                    .any(|np| &np.name == name && np.protocol == proto && np.port == port)
        }
    })
}

/// (verdict, deciding (policy, rule)).
fn reference(
    it: &Intent,
    src: &Identity,
    dst: &Identity,
    proto: Protocol,
    port: u16,
) -> (Verdict, Option<(usize, usize)>) {
    let mut decided: Option<(usize, usize, Action)> = None;
    'tiers: for tier in [Tier::Guardrail, Tier::Application, Tier::Baseline] {
        let mut ps: Vec<usize> = (0..it.policies.len())
            .filter(|&i| it.policies[i].tier == tier)
            .collect();
        ps.sort_by_key(|&i| (it.policies[i].priority, it.policies[i].meta.name.clone(), i));
        for pi in ps {
            for (ri, r) in it.policies[pi].rules.iter().enumerate() {
                let m = r.from.iter().any(|p| ref_peer(it, &p.peer, src))
                    && r.to.iter().any(|p| ref_peer(it, &p.peer, dst))
                    && ref_ports(r, dst, proto, port);
                if !m {
                    continue;
                }
                match r.action {
                    Action::Pass => continue 'tiers,
                    a => {
                        decided = Some((pi, ri, a));
                        break 'tiers;
                    }
                }
            }
        }
    }
    let mode = |id: &Identity| -> Option<Mode> {
        if matches!(id.kind, bulkhead_intent::IdentityKind::External) {
            return None;
        }
        let ms: Vec<Mode> = it
            .segments
            .iter()
            .filter(|s| ref_sel(&s.selector, id))
            .map(|s| s.mode)
            .collect();
        if ms.contains(&Mode::Enforce) {
            Some(Mode::Enforce)
        } else if ms.contains(&Mode::Observe) {
            Some(Mode::Observe)
        } else {
            None
        }
    };
    let allowed = matches!(decided, Some((_, _, Action::Allow)));
    let side = |m: Option<Mode>| match m {
        None => Verdict::Allow,
        Some(_) if allowed => Verdict::Allow,
        Some(Mode::Observe) => Verdict::WouldBlock,
        Some(Mode::Enforce) => Verdict::Deny,
    };
    let (a, b) = (side(mode(src)), side(mode(dst)));
    let v = if a == Verdict::Deny || b == Verdict::Deny {
        Verdict::Deny
    } else if a == Verdict::WouldBlock || b == Verdict::WouldBlock {
        Verdict::WouldBlock
    } else {
        Verdict::Allow
    };
    (v, decided.map(|(p, r, _)| (p, r)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn evaluator_agrees_with_the_reference(it in arb_intent()) {
        let ev = Evaluator::new(&it).unwrap();
        let ids = identities();
        let u = Universe::new(&ev, ids.clone());
        for (si, s) in ids.iter().enumerate() {
            for (di, d) in ids.iter().enumerate() {
                for (proto, port) in [(Protocol::Tcp, 85), (Protocol::Tcp, 80), (Protocol::Udp, 53), (Protocol::Tcp, 1000)] {
                    let got = ev.decide(s, d, proto, port);
                    let (v, by) = reference(&it, s, d, proto, port);
                    prop_assert_eq!(got.verdict, v, "{} -> {} {}/{}: {}", s.name, d.name, proto, port, ev.describe(&it, &got));
                    prop_assert_eq!(got.rule.map(|r| (r.policy, r.rule)), by, "{} -> {} {}/{}", s.name, d.name, proto, port);
                    prop_assert_eq!(u.decide_edge(si, di, proto, port), got, "edge form agrees");
                }
            }
        }
    }
}
