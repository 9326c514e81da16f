//! The `k8s` target on small hand-written intents (each expectation reasoned from the intent's
//! semantics in `docs/intent.md`, checked on the re-imported manifests), on the worked bank
//! example (schemas, meaning on every pair of a simulated bank, golden files).

mod common;

use bulkhead_compile::{CompileError, Compiled, K8sApi, Options, Target, compile};
use bulkhead_core::{Labels, NamedPort, Protocol};
use bulkhead_intent::{Identity, Intent, load_paths, load_str};
use common::reimport::{Reimported, compare_sides};
use common::schema::validate_files;
use std::path::{Path, PathBuf};

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(ns: &str, name: &str, kv: &[(&str, &str)]) -> Identity {
    let nsl = labels(&[("kubernetes.io/metadata.name", ns)]);
    Identity::workload(ns, name, labels(kv), nsl)
}

/// web and db pods in `shop` (segments web and db, enforced unless said), an observed pod, an
/// unmanaged pod, a DNS pod in kube-system, one host.
fn cluster() -> Vec<Identity> {
    let mut db = pod("shop", "db", &[("seg", "db")]);
    db.named_ports.push(NamedPort {
        name: "pg".into(),
        protocol: TCP,
        port: 5432,
    });
    vec![
        pod("shop", "web", &[("seg", "web")]),
        db,
        pod("shop", "obs", &[("seg", "obs")]),
        pod("shop", "free", &[]),
        pod("other", "free2", &[]),
        pod("kube-system", "coredns", &[("app", "coredns")]),
        Identity::host(
            "backup",
            labels(&[("app", "backup")]),
            vec!["192.0.2.10".parse().unwrap()],
        ),
    ]
}

const SEGMENTS: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec: {podSelector: {matchLabels: {seg: web}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec: {podSelector: {matchLabels: {seg: db}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: obs}
spec: {podSelector: {matchLabels: {seg: obs}}, mode: observe}
"#;

fn intent(policies: &str) -> Intent {
    let l = load_str("intent.yaml", &format!("{SEGMENTS}---\n{policies}"));
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.intent
}

fn build(i: &Intent, api: K8sApi) -> Result<Compiled, CompileError> {
    compile(
        i,
        Target::K8s,
        &Options {
            k8s_api: api,
            inventory: cluster(),
        },
    )
}

/// Compiles for both APIs, checks the schemas, re-imports, and runs `check` on each.
fn both(i: &Intent, check: impl Fn(&Reimported)) {
    for api in [K8sApi::Anp, K8sApi::Cnp] {
        let c = build(i, api).unwrap_or_else(|e| panic!("{api:?}: {e}"));
        let errs = validate_files(&c.files);
        assert!(errs.is_empty(), "{api:?}: {errs:#?}");
        check(&Reimported::new(&cluster(), &c.files));
    }
}

#[test]
fn a_guardrail_deny_beats_an_application_allow() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: deny, from: [{segment: web}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}, {protocol: TCP, port: 8080}]}
"#,
    );
    both(&i, |k| {
        // The guardrail decides 5432 first; 8080 is the application's allow.
        assert!(!k.allows("shop/web", "shop/db", TCP, 5432));
        assert!(k.allows("shop/web", "shop/db", TCP, 8080));
        // Nothing else reaches the enforced db, nor leaves the enforced web.
        assert!(!k.allows("shop/web", "shop/db", TCP, 8081));
        assert!(!k.allows("shop/free", "shop/db", TCP, 8080));
        assert!(!k.allows("shop/web", "shop/free", TCP, 80));
        // Neither end enforced: untouched.
        assert!(k.allows("shop/free", "other/free2", TCP, 5432));
    });
}

#[test]
fn pass_hands_over_to_the_application_tier() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: boundary}
spec:
  tier: guardrail
  rules:
    - {action: pass, from: [{segment: web}], to: [{segment: db}]}
    - {action: deny, from: [{any: true}], to: [{segment: db}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{segment: db}], ports: [{port: pg}]}
    - {action: allow, from: [{segment: obs}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}]}
"#,
    );
    both(&i, |k| {
        // web passes the boundary and the application allows the named port pg (5432).
        assert!(k.allows("shop/web", "shop/db", TCP, 5432));
        assert!(!k.allows("shop/web", "shop/db", TCP, 5433));
        // obs is denied by the boundary although the application would allow it.
        assert!(!k.allows("shop/obs", "shop/db", TCP, 5432));
        // So is an address, at the boundary's `any`.
        assert!(!k.allows("192.0.2.10", "shop/db", TCP, 5432));
    });
}

#[test]
fn observed_and_unmanaged_workloads_are_never_dropped() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: deny, from: [{any: true}], to: [{any: true}], ports: [{protocol: TCP, port: 22}]}
"#,
    );
    both(&i, |k| {
        // obs is only observed, free is in no segment: the deny has no enforcement point.
        assert!(k.allows("shop/obs", "shop/free", TCP, 22));
        assert!(k.allows("shop/free", "shop/obs", TCP, 22));
        assert!(k.allows("shop/obs", "192.0.2.10", TCP, 22));
        assert!(k.allows("203.0.113.9", "shop/obs", TCP, 22));
        // With no rule allowing anything, obs still talks on every other port.
        assert!(k.allows("shop/obs", "other/free2", UDP, 53));
        // An enforced end drops: the deny on 22, the default deny elsewhere.
        assert!(!k.allows("shop/web", "shop/free", TCP, 22));
        assert!(!k.allows("shop/free", "shop/web", TCP, 80));
        assert!(!k.allows("shop/obs", "shop/web", UDP, 53));
    });
}

#[test]
fn baseline_allows_reach_enforced_workloads_and_addresses() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: base}
spec:
  tier: baseline
  rules:
    - {action: allow, from: [{any: true}], to: [{selector: {podSelector: {matchLabels: {app: coredns}}}}], ports: [{protocol: UDP, port: 53}]}
    - {action: allow, from: [{selector: {hostSelector: {matchLabels: {app: backup}}}}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}]}
"#,
    );
    both(&i, |k| {
        assert!(k.allows("shop/web", "kube-system/coredns", UDP, 53));
        assert!(!k.allows("shop/web", "kube-system/coredns", TCP, 53));
        // The backup host's address reaches db on 5432 only; another address does not.
        assert!(k.allows("192.0.2.10", "shop/db", TCP, 5432));
        assert!(!k.allows("192.0.2.11", "shop/db", TCP, 5432));
        assert!(!k.allows("192.0.2.10", "shop/db", TCP, 22));
    });
}

#[test]
fn an_application_deny_before_an_overlapping_allow_is_refused_with_its_place() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: deny, from: [{segment: web}], to: [{segment: db}], ports: [{protocol: TCP, port: 22}]}
    - {action: allow, from: [{segment: web}], to: [{segment: db}]}
"#,
    );
    let e = build(&i, K8sApi::Anp).unwrap_err();
    match &e {
        CompileError::Unsupported { loc, what, .. } => {
            assert_eq!(loc.file, "intent.yaml");
            // The deny rule's line: the segments take 17 lines and `---`, then the policy.
            assert!(loc.line > 17, "{loc}");
            assert!(what.contains("NetworkPolicy can only allow"), "{what}");
        }
        e => panic!("{e}"),
    }
    // The same deny after the allow changes nothing (the allow decides first): compiled.
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{segment: db}], ports: [{protocol: TCP, port: 80}]}
    - {action: deny, from: [{segment: web}], to: [{segment: db}], ports: [{protocol: TCP, port: 22}]}
"#,
    );
    both(&i, |k| {
        assert!(k.allows("shop/web", "shop/db", TCP, 80));
        assert!(!k.allows("shop/web", "shop/db", TCP, 22));
    });
}

#[test]
fn hosts_without_a_host_inventory_and_no_inventory_are_refused() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{selector: {hostSelector: {matchLabels: {app: backup}}}}], to: [{segment: db}]}
"#,
    );
    let pods: Vec<Identity> = cluster()
        .into_iter()
        .filter(|i| i.namespace().is_some())
        .collect();
    let e = compile(
        &i,
        Target::K8s,
        &Options {
            k8s_api: K8sApi::Anp,
            inventory: pods,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("names hosts"), "{e}");
    let e = compile(&i, Target::K8s, &Options::default()).unwrap_err();
    assert!(
        e.to_string().contains("--inventory") || matches!(e, CompileError::Unsupported { .. }),
        "{e}"
    );
}

#[test]
fn guardrail_named_ports_need_the_cluster_network_policy_api() {
    let i = intent(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: deny, from: [{segment: web}], to: [{segment: db}], ports: [{port: pg}]}
"#,
    );
    // AdminNetworkPolicy v1alpha1's standard channel has no named ports.
    assert!(matches!(
        build(&i, K8sApi::Anp),
        Err(CompileError::Unsupported { .. })
    ));
    let c = build(&i, K8sApi::Cnp).unwrap();
    assert!(validate_files(&c.files).is_empty());
    let k = Reimported::new(&cluster(), &c.files);
    assert!(!k.allows("shop/web", "shop/db", TCP, 5432));
}

// ---------------------------------------------------------------------------------------------
// The worked bank example.

fn bank_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank")
}

/// The simulated bank's workloads and hosts, as `bulkhead compile --inventory --hosts` reads them.
fn bank_inventory(dir: &Path) -> Vec<Identity> {
    let cfg = bulkhead_bank::Config {
        workloads: 40,
        ..Default::default()
    };
    bulkhead_bank::write_inventory(&cfg, dir).unwrap();
    let loaded = bulkhead_k8s::Loaded::from_paths(&[dir.join("inventory")]);
    assert!(loaded.errors.is_empty());
    let c = &loaded.cluster;
    let mut ids = Vec::new();
    for w in &c.workloads {
        let mut id = Identity::workload(
            &w.namespace,
            &w.name,
            w.labels.clone(),
            c.ns_labels(&w.namespace).clone(),
        );
        id.named_ports = w.named_ports.clone();
        ids.push(id);
    }
    for h in bulkhead_identity::load_hosts(&dir.join("hosts.yaml")).unwrap() {
        ids.push(Identity::host(
            &h.name,
            h.labels.into_iter().collect(),
            h.addresses.iter().map(|n| n.addr()).collect(),
        ));
    }
    ids
}

fn bank_intent() -> Intent {
    // Relative to the crate, so the places in annotations are the same on every machine.
    let l = load_paths(&[PathBuf::from("../../examples/intent/bank")]);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    assert!(bank_dir().is_dir());
    l.intent
}

#[test]
fn the_bank_compiles_validates_and_keeps_its_meaning_on_every_pair() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = bank_inventory(dir.path());
    // The addresses the policy names, and one it does not.
    for a in [
        "198.51.100.20",
        "198.51.100.40",
        "203.0.113.80",
        "203.0.113.5",
        "192.0.2.7",
        "8.8.8.8",
    ] {
        ids.push(Identity::external(a.parse().unwrap()));
    }
    let intent = bank_intent();
    for api in [K8sApi::Anp, K8sApi::Cnp] {
        let c = compile(
            &intent,
            Target::K8s,
            &Options {
                k8s_api: api,
                inventory: ids.clone(),
            },
        )
        .unwrap_or_else(|e| panic!("{api:?}: {e}"));
        let errs = validate_files(&c.files);
        assert!(errs.is_empty(), "{api:?}: {errs:#?}");
        // Hosts' own sides are the nftables target's: compare the pods' sides.
        match compare_sides(&intent, &ids, &c.files, true) {
            Ok(pairs) => assert!(pairs > 1000, "{pairs}"),
            Err((bad, why)) => panic!("{api:?}: {why} {bad:#?}"),
        }
    }
}

/// Golden files of the bank for both APIs, over a fixed small inventory (the simulated bank's,
/// 40 workloads): a drift test. `UPDATE_GOLDEN=1` rewrites them.
#[test]
fn bank_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let ids = bank_inventory(dir.path());
    let intent = bank_intent();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/k8s");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (api, sub) in [(K8sApi::Anp, "anp"), (K8sApi::Cnp, "cnp")] {
        let c = compile(
            &intent,
            Target::K8s,
            &Options {
                k8s_api: api,
                inventory: ids.clone(),
            },
        )
        .unwrap();
        let d = golden.join(sub);
        let mut files = c.files.clone();
        files.insert("NOTES.txt".into(), c.notes.join("\n") + "\n");
        if update {
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            for (rel, text) in &files {
                std::fs::write(d.join(rel), text).unwrap();
            }
            continue;
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", d.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk,
            files.keys().cloned().collect::<Vec<_>>(),
            "{sub}: files"
        );
        for (rel, text) in &files {
            let want = std::fs::read_to_string(d.join(rel)).unwrap();
            assert!(
                want == *text,
                "{sub}/{rel} drifted from the golden file (UPDATE_GOLDEN=1 rewrites it after review)"
            );
        }
    }
}

#[test]
fn more_guardrail_objects_than_priorities_is_a_limit_error() {
    // Each rule needs one admin object (subject db); priorities run 0-1000, so 1,001 rules fit
    // and 1,002 do not.
    let rules = |n: usize| {
        let mut y = String::from(
            "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: g}\nspec:\n  tier: guardrail\n  rules:\n",
        );
        for i in 0..n {
            y.push_str(&format!(
                "    - {{action: deny, from: [{{segment: web}}], to: [{{segment: db}}], ports: [{{protocol: TCP, port: {}}}]}}\n",
                i + 1
            ));
        }
        intent(&y)
    };
    // from web to db: ingress subject db, egress subject web: two objects per rule.
    let c = build(&rules(500), K8sApi::Anp).unwrap();
    assert_eq!(
        c.files["adminnetworkpolicies.yaml"]
            .matches("kind: AdminNetworkPolicy")
            .count(),
        1000
    );
    // 1,002 objects would need priority 1001.
    assert!(matches!(
        build(&rules(501), K8sApi::Anp),
        Err(CompileError::Limit { .. })
    ));
}
