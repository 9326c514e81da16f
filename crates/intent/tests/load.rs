//! The loader: every error names file, line and column with a hint; good resources are read
//! into the model; multi-document files and directories in name order.

use bulkhead_core::{ConnSet, Protocol, RangeSet};
use bulkhead_intent::{Action, InvariantKind, Mode, Peer, PortMatch, Tier, load_paths, load_str};

const HEAD: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

/// (document, line, column, code, hint fragment, message). Lines count from the document's
/// first line, which is `apiVersion`.
#[test]
fn errors_name_line_column_code_and_hint() {
    let cases: &[(&str, usize, usize, &str, &str, &str)] = &[
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: guardrail\n  rules:\n    - acton: allow\n      from: [{any: true}]\n      to: [{any: true}]\n",
            7,
            7,
            "unknown-field",
            "did you mean `action`?",
            "misspelt field",
        ),
        (
            "kind: Segmnt\nmetadata: {name: s}\n",
            2,
            7,
            "unknown-kind",
            "did you mean `Segment`?",
            "misspelt kind",
        ),
        (
            "kind: NetworkPolicy\nmetadata: {name: s}\n",
            2,
            7,
            "unknown-kind",
            "expected Segment, Policy or Invariant",
            "a kind far from ours",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: gardrail\n  rules: []\n",
            5,
            9,
            "unknown-value",
            "did you mean `guardrail`?",
            "misspelt tier",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: alow\n      from: [{any: true}]\n      to: [{any: true}]\n",
            7,
            15,
            "unknown-value",
            "did you mean `allow`?",
            "misspelt action",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: [{cidr: 10.0.0.0/33}]\n      to: [{any: true}]\n",
            8,
            21,
            "bad-cidr",
            "prefix length",
            "bad CIDR",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: [{any: true}]\n      to: [{any: true}]\n      ports:\n        - port: 70000\n",
            11,
            17,
            "bad-port",
            "1 to 65535",
            "port out of range",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: [{any: true}]\n      to: [{any: true}]\n      ports:\n        - port: 0\n",
            11,
            17,
            "bad-port",
            "1 to 65535",
            "port zero",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: [{any: true}]\n      to: [{any: true}]\n      ports:\n        - {protocol: TPC, port: 80}\n",
            11,
            22,
            "bad-protocol",
            "did you mean `TCP`?",
            "misspelt protocol",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: [{any: true}]\n      to: [{any: true}]\n      ports:\n        - {port: 90, endPort: 80}\n",
            11,
            31,
            "bad-port",
            "up to `endPort`",
            "reversed range",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from:\n        - segment: a\n          namespace: b\n      to: [{any: true}]\n",
            9,
            11,
            "bad-peer",
            "one list item per peer",
            "two peer kinds in one item",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      from: []\n      to: [{any: true}]\n",
            7,
            7,
            "empty-peers",
            "any: true",
            "empty from",
        ),
        (
            "kind: Policy\nmetadata: {name: p}\nspec:\n  tier: baseline\n  rules:\n    - action: allow\n      to: [{any: true}]\n",
            8,
            7,
            "missing-field",
            "add `from:`",
            "missing from (placed where the rule ends)",
        ),
        (
            "kind: Segment\nmetadata: {name: Bad_Name}\nspec:\n  podSelector: {}\n",
            3,
            18,
            "bad-name",
            "lowercase",
            "invalid name",
        ),
        (
            "kind: Segment\nmetadata: {name: s}\nspec:\n  podSelector:\n    matchExpressions:\n      - {key: a, operator: Exist}\n",
            7,
            9,
            "bad-selector",
            "did you mean `Exists`?",
            "misspelt operator",
        ),
        (
            "kind: Segment\nmetadata: {name: s}\nspec:\n  compliance: [pci-dss]\n",
            3,
            18,
            "empty-selector",
            "podSelector",
            "a segment without selectors (placed at its name)",
        ),
        (
            "kind: Segment\nmetadata: {name: s}\nspec:\n  podSelector: {}\n  mode: enforcing\n",
            6,
            9,
            "unknown-value",
            "did you mean `enforce`?",
            "misspelt mode",
        ),
        (
            "kind: Invariant\nmetadata: {name: i}\nspec:\n  never: {from: [{any: true}], to: [{any: true}]}\n  only: {from: [{any: true}], to: [{any: true}]}\n",
            3,
            18,
            "bad-invariant",
            "one Invariant per assertion",
            "two assertions",
        ),
        (
            "kind: Invariant\nmetadata: {name: i}\nspec:\n  mustAlow: {from: [{any: true}], to: [{any: true}]}\n",
            5,
            3,
            "unknown-field",
            "did you mean `mustAllow`?",
            "misspelt assertion",
        ),
    ];
    for (doc, line, col, code, hint, msg) in cases {
        let text = format!("# a comment first\n{HEAD}{doc}");
        let l = load_str("t.yaml", &text);
        let errs: Vec<_> = l.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errs.len(), 1, "{msg}: {errs:#?}");
        let d = errs[0];
        // +1: the comment line before the document.
        assert_eq!(
            (d.loc.file.as_str(), d.loc.line, d.loc.column, d.code),
            ("t.yaml", line + 1, *col, *code),
            "{msg}: {d}"
        );
        let h = d.hint.as_deref().unwrap_or_default();
        assert!(h.contains(hint), "{msg}: hint {h:?} lacks {hint:?}");
        let n = l.intent.segments.len() + l.intent.policies.len() + l.intent.invariants.len();
        assert_eq!(n, 0, "{msg}: a resource with an error is left out");
    }
}

#[test]
fn positions_count_from_the_file_across_documents() {
    let text = format!(
        "{HEAD}kind: Segment\nmetadata: {{name: a}}\nspec: {{podSelector: {{}}}}\n---\n{HEAD}kind: Segment\nmetadata: {{name: b}}\nspec:\n  podSelector: {{}}\n  mdoe: enforce\n"
    );
    let l = load_str("m.yaml", &text);
    assert_eq!(l.intent.segments.len(), 1, "{:?}", l.diagnostics);
    let d = &l.diagnostics[0];
    assert_eq!(
        (d.loc.line, d.loc.column, d.code),
        (11, 3, "unknown-field"),
        "{d}"
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `mode`?"));
}

#[test]
fn reads_every_field_into_the_model() {
    let text = format!(
        "{HEAD}kind: Segment\nmetadata:\n  name: cards\n  namespace: sec\n  labels: {{team: cards}}\nspec:\n  namespaceSelector: {{matchLabels: {{segment: cards}}}}\n  workloadSelector:\n    matchExpressions: [{{key: tier, operator: NotIn, values: [staging]}}]\n  hostSelector: {{matchLabels: {{segment: cards}}}}\n  compliance: [PCI-DSS]\n  owner: cards-team\n  mode: enforce\n---\n{HEAD}kind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  priority: 5\n  rules:\n    - name: r\n      action: pass\n      from: [{{namespace: a}}, {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n      to: [{{segment: cards}}]\n      ports:\n        - {{protocol: UDP, port: 53}}\n        - {{port: \"8000\", endPort: 8080}}\n        - {{port: https}}\n        - {{protocol: SCTP}}\n---\n{HEAD}kind: Invariant\nmetadata: {{name: i}}\nspec:\n  controls: [x]\n  mustAllow:\n    from: [{{segment: cards}}]\n    to: [{{any: true}}]\n"
    );
    let l = load_str("ok.yaml", &text);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    let s = &l.intent.segments[0];
    assert_eq!(s.meta.namespace.as_deref(), Some("sec"));
    assert_eq!(s.compliance, vec!["pci-dss".to_string()], "lowercased");
    assert_eq!(s.mode, Mode::Enforce);
    assert!(
        s.selector.namespaces.is_some() && s.selector.pods.is_some() && s.selector.hosts.is_some()
    );
    let p = &l.intent.policies[0];
    assert_eq!((p.tier, p.priority), (Tier::Application, 5));
    let r = &p.rules[0];
    assert_eq!(r.action, Action::Pass);
    assert_eq!(r.from[0].peer, Peer::Namespace("a".into()));
    match &r.from[1].peer {
        Peer::Cidr(set) => {
            assert!(set.contains("10.2.0.1".parse().unwrap()));
            assert!(!set.contains("10.1.0.1".parse().unwrap()), "except removed");
        }
        other => panic!("{other:?}"),
    }
    let ports = r.ports.as_ref().unwrap();
    assert_eq!(
        ports[0],
        PortMatch::Conns(ConnSet::single(Protocol::Udp, 53))
    );
    assert_eq!(
        ports[1],
        PortMatch::Conns(ConnSet::ports(Protocol::Tcp, RangeSet::range(8000, 8080))),
        "protocol defaults to TCP, quoted numbers are numbers"
    );
    assert_eq!(
        ports[2],
        PortMatch::Named {
            protocol: None,
            name: "https".into()
        }
    );
    assert_eq!(
        ports[3],
        PortMatch::Conns(ConnSet::protocol(Protocol::Sctp))
    );
    assert_eq!(l.intent.invariants[0].kind, InvariantKind::MustAllow);
    assert_eq!(r.loc.line, 23, "rule placed at its first key");
}

#[test]
fn directories_are_read_recursively_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let seg = |n: &str| {
        format!("{HEAD}kind: Segment\nmetadata: {{name: {n}}}\nspec: {{podSelector: {{}}}}\n")
    };
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("b/one.yaml"), seg("two")).unwrap();
    std::fs::write(dir.path().join("a.yml"), seg("one")).unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        format!("{}---\n{}", seg("three"), seg("four")),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
    let l = load_paths(&[dir.path()]);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    let names: Vec<&str> = l.intent.segments.iter().map(|s| s.name()).collect();
    assert_eq!(names, vec!["one", "two", "three", "four"]);
    assert_eq!(l.files, 3);
}

#[test]
fn unreadable_inputs_are_errors_not_empty_policies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let l = load_paths(&[dir.path().join("x.yaml"), dir.path().join("missing.yaml")]);
    let codes: Vec<&str> = l.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["not-utf8", "io"]);
    assert!(l.has_errors());
}

#[test]
fn comment_only_documents_are_skipped_and_api_version_is_checked() {
    let l = load_str("c.yaml", "# nothing\n---\n# still nothing\n");
    assert!(l.diagnostics.is_empty() && l.documents == 0);
    let l = load_str(
        "v.yaml",
        "apiVersion: bulkhead.dev/v1\nkind: Segment\nmetadata: {name: a}\nspec: {podSelector: {}}\n",
    );
    let d = &l.diagnostics[0];
    assert_eq!(
        (d.code, d.loc.line, d.loc.column),
        ("unknown-api-version", 1, 13),
        "{d}"
    );
    assert!(l.intent.segments.is_empty());
}

#[test]
fn the_bank_example_loads_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    let l = load_paths(&[dir]);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    assert_eq!(l.intent.segments.len(), 14, "BANK.md's segments");
    assert!(l.intent.invariants.len() >= 3);
}
