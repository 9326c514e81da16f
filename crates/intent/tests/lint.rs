//! Each lint check, on a case that must be reported and a close one that must not.

use bulkhead_core::Labels;
use bulkhead_intent::{
    Diagnostic, Evaluator, Identity, LintOptions, Severity, Universe, lint, load_str,
};

const HEAD: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

fn seg(name: &str, compliance: &str) -> String {
    format!(
        "---\n{HEAD}kind: Segment\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{segment: {name}}}}}\n  compliance: [{compliance}]\n"
    )
}

fn pol(name: &str, tier: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    let mut s = format!(
        "---\n{HEAD}kind: Policy\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  rules:\n"
    );
    for (action, from, to, ports) in rules {
        s.push_str(&format!(
            "    - action: {action}\n      from: [{from}]\n      to: [{to}]\n"
        ));
        if !ports.is_empty() {
            s.push_str(&format!("      ports: [{ports}]\n"));
        }
    }
    if rules.is_empty() {
        s = s.replace("  rules:\n", "  rules: []\n");
    }
    s
}

fn run(yaml: &str) -> Vec<Diagnostic> {
    let l = load_str("t.yaml", yaml);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    lint(&l.intent, &LintOptions::default())
        .into_iter()
        .filter(|d| d.code != "no-inventory")
        .collect()
}

fn codes(d: &[Diagnostic]) -> Vec<(&'static str, Severity, usize)> {
    d.iter().map(|d| (d.code, d.severity, d.loc.line)).collect()
}

fn base() -> String {
    seg("cards", "pci-dss") + &seg("web", "") + &seg("db", "gdpr")
}

#[test]
fn checks_table() {
    use Severity::*;
    // (yaml, expected codes with severity, message)
    type Case = (String, Vec<(&'static str, Severity)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[("allow", "{segment: web}", "{segment: cardz}", "")],
                ),
            vec![("unknown-segment", Error)],
            "unknown segment",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[("allow", "{segment: web}", "{segment: db}", "")],
                ),
            vec![],
            "known segments",
        ),
        (
            base() + &seg("web", ""),
            vec![("duplicate-name", Error)],
            "a segment defined twice",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        ("allow", "{segment: web}", "{segment: db}", ""),
                        ("deny", "{segment: web}", "{segment: db}", "{port: 443}"),
                    ],
                ),
            vec![("shadowed-rule", Error)],
            "a later deny inside an earlier allow",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        ("allow", "{segment: web}", "{segment: db}", "{port: 443}"),
                        ("deny", "{segment: web}", "{segment: db}", ""),
                    ],
                ),
            vec![],
            "a narrower rule first is not shadowing",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        (
                            "allow",
                            "{segment: web}",
                            "{segment: db}",
                            "{port: 400, endPort: 500}",
                        ),
                        ("allow", "{segment: web}", "{segment: db}", "{port: 443}"),
                    ],
                ),
            vec![("redundant-rule", Warning)],
            "same action, contained ports",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        ("allow", "{segment: web}", "{segment: db}", "{port: 443}"),
                        (
                            "allow",
                            "{segment: web}",
                            "{segment: db}",
                            "{protocol: UDP, port: 443}",
                        ),
                    ],
                ),
            vec![],
            "another protocol is not contained",
        ),
        (
            base()
                + &pol(
                    "a",
                    "application",
                    &[("allow", "{segment: web}", "{any: true}", "")],
                )
                + &pol(
                    "b",
                    "application",
                    &[("deny", "{segment: web}", "{segment: db}", "{port: 443}")],
                ),
            vec![("shadowed-rule", Error)],
            "shadowing across policies of one tier",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("deny", "{segment: web}", "{segment: db}", "")],
                )
                + &pol(
                    "a",
                    "application",
                    &[("allow", "{segment: web}", "{segment: db}", "")],
                ),
            vec![],
            "a guardrail over an application rule is the point of tiers, not shadowing",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[
                        ("pass", "{segment: web}", "{any: true}", ""),
                        ("deny", "{segment: web}", "{segment: db}", ""),
                    ],
                ),
            vec![("shadowed-rule", Error)],
            "an earlier pass hides the rest of the tier",
        ),
        (
            base()
                + &pol(
                    "p",
                    "baseline",
                    &[
                        (
                            "allow",
                            "{selector: {podSelector: {matchLabels: {app: a}}}}",
                            "{segment: db}",
                            "",
                        ),
                        (
                            "deny",
                            "{selector: {podSelector: {matchLabels: {app: a, tier: x}}}}",
                            "{segment: db}",
                            "",
                        ),
                    ],
                ),
            vec![("shadowed-rule", Error)],
            "a selector with fewer requirements contains one with more",
        ),
        (
            base()
                + &pol(
                    "p",
                    "baseline",
                    &[
                        (
                            "allow",
                            "{selector: {podSelector: {matchLabels: {app: a, tier: x}}}}",
                            "{segment: db}",
                            "",
                        ),
                        (
                            "deny",
                            "{selector: {podSelector: {matchLabels: {app: a}}}}",
                            "{segment: db}",
                            "",
                        ),
                    ],
                ),
            vec![],
            "a selector with more requirements does not contain one with fewer",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        ("allow", "{cidr: 10.0.0.0/8}", "{segment: db}", ""),
                        ("deny", "{cidr: 10.1.0.0/16}", "{segment: db}", ""),
                    ],
                ),
            vec![("shadowed-rule", Error)],
            "CIDR containment",
        ),
        (
            base()
                + &pol(
                    "p",
                    "application",
                    &[
                        (
                            "allow",
                            "{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}",
                            "{segment: db}",
                            "",
                        ),
                        ("deny", "{cidr: 10.1.0.0/16}", "{segment: db}", ""),
                    ],
                ),
            vec![],
            "except carves the later rule out",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("allow", "{any: true}", "{segment: cards}", "")],
                ),
            vec![("open-compliance-scope", Error)],
            "a guardrail allow from everyone into PCI",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("allow", "{cidr: 0.0.0.0/0}", "{segment: db}", "{port: 443}")],
                ),
            vec![("open-compliance-scope", Error)],
            "0.0.0.0/0 is everyone, even on one port",
        ),
        (
            base()
                + &pol(
                    "a",
                    "application",
                    &[("allow", "{any: true}", "{segment: cards}", "")],
                ),
            vec![("open-compliance-scope", Warning)],
            "the same in the application tier is a warning",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("allow", "{segment: web}", "{segment: cards}", "")],
                ),
            vec![],
            "named sources into PCI",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("allow", "{any: true}", "{segment: web}", "")],
                ),
            vec![],
            "everyone into a segment without compliance scope",
        ),
        (
            base()
                + &pol(
                    "g",
                    "guardrail",
                    &[("deny", "{any: true}", "{segment: cards}", "")],
                ),
            vec![],
            "a deny from everyone closes, not opens",
        ),
        (
            base() + &pol("e", "baseline", &[]),
            vec![("empty-policy", Warning)],
            "a policy without rules",
        ),
    ];
    for (yaml, want, msg) in cases {
        let got = run(&yaml);
        let got: Vec<(&str, Severity)> = got.iter().map(|d| (d.code, d.severity)).collect();
        assert_eq!(got, want, "{msg}");
    }
}

#[test]
fn shadowed_rule_is_placed_at_the_later_rule_and_names_the_earlier() {
    let yaml = base()
        + &pol(
            "p",
            "application",
            &[
                ("allow", "{segment: web}", "{segment: db}", ""),
                ("deny", "{segment: web}", "{segment: db}", ""),
            ],
        );
    let d = run(&yaml);
    assert_eq!(codes(&d).len(), 1);
    // The policy starts after three segments of 7 lines each; rules[1] is its 11th line.
    assert_eq!(d[0].loc.line, 21 + 11, "{}", d[0]);
    assert!(
        d[0].message.contains("rules[0] of policy p (t.yaml:29:7)"),
        "{}",
        d[0].message
    );
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn selectors_that_match_nothing_need_an_inventory() {
    let yaml = base()
        + &pol(
            "p",
            "application",
            &[
                (
                    "allow",
                    "{selector: {podSelector: {matchLabels: {app: ghost}}}}",
                    "{segment: db}",
                    "",
                ),
                ("allow", "{namespace: nowhere}", "{segment: db}", ""),
                (
                    "allow",
                    "{selector: {hostSelector: {matchLabels: {app: vm}}}}",
                    "{namespace: prod}",
                    "",
                ),
            ],
        );
    let l = load_str("t.yaml", &yaml);
    assert!(!l.has_errors());
    let without = lint(&l.intent, &LintOptions::default());
    assert_eq!(
        codes(&without).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec!["no-inventory"],
        "skipped, and said so"
    );
    let ids = vec![
        Identity::workload("prod", "w", labels(&[("segment", "web")]), labels(&[])),
        Identity::workload("prod", "d", labels(&[("segment", "db")]), labels(&[])),
        Identity::host("vm-1", labels(&[("app", "vm")]), vec![]),
    ];
    let ev = Evaluator::new(&l.intent).unwrap();
    let u = Universe::new(&ev, ids);
    let with = lint(&l.intent, &LintOptions { universe: Some(&u) });
    let got: Vec<(&str, Severity, usize)> = codes(&with);
    // Segment cards (first, line 4) has no member; db and web do. The ghost selector (rule 0)
    // and namespace nowhere (rule 1) match nothing; the host selector and namespace prod do.
    assert_eq!(
        got,
        vec![
            ("empty-segment", Severity::Warning, 4),
            ("matches-nothing", Severity::Warning, 30),
            ("matches-nothing", Severity::Warning, 33),
        ],
        "{with:#?}"
    );
}
