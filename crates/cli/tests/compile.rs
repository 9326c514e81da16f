//! `bulkhead compile`: exit codes, the output directory's safety (atomic replace, foreign
//! directories refused), lint errors and refusals with their place, the audit record.

use std::path::Path;
use std::process::{Command, Output};

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .expect("bulkhead runs")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const POLICY: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec: {podSelector: {matchLabels: {seg: db}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{selector: {podSelector: {matchLabels: {app: web}}}}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}]}
"#;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {seg: db}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: x}]}
"#;

struct Fx {
    dir: tempfile::TempDir,
}

impl Fx {
    fn new(policy: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policy")).unwrap();
        std::fs::write(dir.path().join("policy/p.yaml"), policy).unwrap();
        std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
        Fx { dir }
    }
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    fn compile(&self, out: &str, extra: &[&str]) -> Output {
        let (pol, inv, out) = (
            self.path("policy"),
            self.path("cluster.yaml"),
            self.path(out),
        );
        let mut args = vec![
            "compile",
            "--policy",
            p(&pol),
            "--target",
            "k8s",
            "--out",
            p(&out),
            "--inventory",
            p(&inv),
        ];
        args.extend(extra);
        bulkhead(&args)
    }
}

#[test]
fn compiles_and_replaces_its_own_output_atomically() {
    let fx = Fx::new(POLICY);
    let o = fx.compile("out", &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("NetworkPolicy"), "{text}");
    let np = std::fs::read_to_string(fx.path("out/networkpolicies.yaml")).unwrap();
    assert!(np.contains("bulkhead-default-deny.db"), "{np}");
    assert!(fx.path("out/.bulkhead-compile").is_file());
    // No admin objects without guardrails.
    assert!(!fx.path("out/adminnetworkpolicies.yaml").exists());
    // A second run replaces the directory it wrote; nothing is left beside it.
    std::fs::write(fx.path("out/stale.yaml"), "x").unwrap();
    let o = fx.compile("out", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The default deny and db's ingress allow (no pod is both web and in db, so no egress allow).
    assert_eq!(v["objects"]["NetworkPolicy"], 2, "{v:#}");
    assert!(!fx.path("out/stale.yaml").exists());
    let left: Vec<_> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_directory_compile_did_not_write_is_refused_and_untouched() {
    let fx = Fx::new(POLICY);
    std::fs::create_dir(fx.path("mine")).unwrap();
    std::fs::write(fx.path("mine/keep.txt"), "mine").unwrap();
    let o = fx.compile("mine", &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not write"));
    assert_eq!(
        std::fs::read_to_string(fx.path("mine/keep.txt")).unwrap(),
        "mine"
    );
    assert!(!fx.path("mine/networkpolicies.yaml").exists());
}

#[test]
fn lint_errors_and_what_k8s_cannot_say_exit_3_with_their_place() {
    let fx = Fx::new(&POLICY.replace(
        "podSelector: {matchLabels: {seg",
        "podSelektor: {matchLabels: {seg",
    ));
    let o = fx.compile("out", &[]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("p.yaml:5:") && err.contains("podSelektor"),
        "{err}"
    );
    assert!(!fx.path("out").exists());
    // An application deny before an overlapping allow: NetworkPolicy only allows.
    let denied = POLICY.replace(
        "  rules:\n",
        "  rules:\n    - {action: deny, from: [{namespace: shop}], to: [{segment: db}], ports: [{protocol: TCP, port: 5432}]}\n",
    );
    let fx = Fx::new(&denied);
    let o = fx.compile("out", &[]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("p.yaml:13:") && err.contains("k8s cannot express"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!fx.path("out").exists());
    // nftables rulesets are per host: without a host inventory there is nothing to compile for.
    let (pol, out) = (fx.path("policy"), fx.path("out"));
    let o = bulkhead(&[
        "compile",
        "--policy",
        p(&pol),
        "--target",
        "nftables",
        "--out",
        p(&out),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--hosts"));
    assert!(!out.exists());
}

#[test]
fn nftables_writes_one_ruleset_per_host() {
    let fx = Fx::new(POLICY);
    let hosts = fx.path("hosts.yaml");
    std::fs::write(
        &hosts,
        "hosts:\n  - name: ledger-1\n    addresses: [10.1.0.5]\n  - name: ledger-2\n    addresses: [10.1.0.6]\n",
    )
    .unwrap();
    let (pol, out) = (fx.path("policy"), fx.path("out"));
    let o = bulkhead(&[
        "compile",
        "--policy",
        p(&pol),
        "--target",
        "nftables",
        "--out",
        p(&out),
        "--hosts",
        p(&hosts),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for h in ["ledger-1", "ledger-2"] {
        let text = std::fs::read_to_string(out.join(format!("{h}.nft"))).unwrap();
        assert!(text.contains("table inet bulkhead"), "{text}");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{h}.nft.json"))).unwrap(),
        )
        .unwrap();
        assert!(json["nftables"].is_array(), "{json}");
    }
    // One host only.
    let one = fx.path("one");
    let o = bulkhead(&[
        "compile",
        "--policy",
        p(&pol),
        "--target",
        "nftables",
        "--out",
        p(&one),
        "--hosts",
        p(&hosts),
        "--host",
        "ledger-2",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(one.join("ledger-2.nft").exists() && !one.join("ledger-1.nft").exists());
}

#[test]
fn a_compile_is_recorded_in_the_audit_log() {
    let fx = Fx::new(POLICY);
    std::fs::create_dir(fx.path("data")).unwrap();
    let data = fx.path("data");
    let o = fx.compile("out", &["--data-dir", p(&data), "--reason", "CHG-7"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bulkhead(&["audit", "log", "--data-dir", p(&data), "--format", "json"]);
    assert!(o.status.success());
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "policy.compile")
        .collect();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["reason"], "CHG-7");
    let o = bulkhead(&["audit", "verify", "--data-dir", p(&data)]);
    assert!(o.status.success());
}
