//! The loader never panics, on arbitrary bytes or on mutated policy YAML; what it accepts,
//! lint and the evaluator take without panicking either.

use bulkhead_intent::{Evaluator, LintOptions, lint, load_str};
use proptest::prelude::*;

const SEED: &str = "apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: p, labels: {a: b}}
spec:
  tier: guardrail
  priority: 3
  rules:
    - name: r
      action: pass
      from: [{segment: s}, {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
      to:
        - selector:
            namespaceSelector: {matchLabels: {x: y}}
            podSelector:
              matchExpressions: [{key: k, operator: In, values: [v]}]
            hostSelector: {}
      ports: [{protocol: UDP, port: 53}, {port: 80, endPort: 90}, {port: web}]
--- {apiVersion: bulkhead.dev/v1alpha1, kind: Segment, metadata: {name: s}, spec: {podSelector: {}, mode: enforce, compliance: [pci-dss]}}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Invariant
metadata: {name: i}
spec:
  only: {from: [{any: true}], to: [{namespace: n}], ports: [{protocol: SCTP}]}
";

fn check(text: &str) {
    let l = load_str("f.yaml", text);
    for d in &l.diagnostics {
        let _ = d.to_string();
    }
    let _ = lint(&l.intent, &LintOptions::default());
    if let Ok(ev) = Evaluator::new(&l.intent) {
        let id = bulkhead_intent::Identity::external("10.0.0.1".parse().unwrap());
        let _ = ev.decide(&id, &id, bulkhead_core::Protocol::Tcp, 80);
    }
}

#[test]
fn the_seed_loads_clean() {
    let l = load_str("f.yaml", SEED);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    assert_eq!(l.documents, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_like_text(s in "[a-zA-Z0-9:{}\\[\\],\\- \n#'\"/.&*!|>]{0,300}") {
        check(&s);
    }

    #[test]
    fn mutated_policies(cut in 0usize..1200, len in 0usize..40, ins in "[a-z0-9:{}\\[\\],\\- \n/.\"]{0,12}") {
        let cut = cut.min(SEED.len());
        let end = (cut + len).min(SEED.len());
        if SEED.is_char_boundary(cut) && SEED.is_char_boundary(end) {
            let text = format!("{}{}{}", &SEED[..cut], ins, &SEED[end..]);
            check(&text);
        }
    }
}
