//! `bulkhead verify --policy DIR --k8s PATH`: invariants checked against a cluster's own
//! Kubernetes policies. Small hand-written clusters whose outcome is reasoned from the YAML
//! (each kind of invariant holding and violated), the example bank against
//! `examples/intent/brownfield`, golden files for the three formats, and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run bulkhead")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Compares with a golden file; `BULKHEAD_UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BULKHEAD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with BULKHEAD_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        got == want,
        "{name} drifted from its golden file; review the diff and rerun with BULKHEAD_UPDATE_GOLDEN=1 if intended.\n--- got ---\n{got}"
    );
}

/// Two namespaces: `front` (app `web`) and `back` (apps `db` and `cache`, each with a named
/// port), and no policy: the cases add theirs.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: front, labels: {zone: front}}
---
apiVersion: v1
kind: Namespace
metadata: {name: back, labels: {zone: back}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: front}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{name: http, containerPort: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: back}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        ports: [{name: postgres, containerPort: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: back}
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers:
      - name: cache
        ports: [{name: redis, containerPort: 6379}]
"#;

const SEGMENTS: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  namespaceSelector: {matchLabels: {zone: front}}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec:
  namespaceSelector: {matchLabels: {zone: back}}
  podSelector: {matchLabels: {app: db}}
  compliance: [pci-dss]
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: back}
spec:
  namespaceSelector: {matchLabels: {zone: back}}
"#;

/// Writes the cluster plus `policies`, and the segments plus `invariants`; runs verify with
/// JSON output. Returns the exit code and the parsed output.
fn run(policies: &str, invariants: &str) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k8s = dir.path().join("k8s");
    let intent = dir.path().join("intent");
    std::fs::create_dir_all(&k8s).unwrap();
    std::fs::create_dir_all(&intent).unwrap();
    std::fs::write(k8s.join("cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(k8s.join("policies.yaml"), policies).unwrap();
    std::fs::write(intent.join("segments.yaml"), SEGMENTS).unwrap();
    std::fs::write(intent.join("invariants.yaml"), invariants).unwrap();
    let o = bulkhead(&[
        "verify",
        "--policy",
        intent.to_str().unwrap(),
        "--k8s",
        k8s.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code(), v, stderr(&o))
}

fn invariant(name: &str, kind: &str, from: &str, to: &str, ports: &str) -> String {
    let ports = if ports.is_empty() {
        String::new()
    } else {
        format!("\n    ports: {ports}")
    };
    format!(
        "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {{name: {name}}}\nspec:\n  {kind}:\n    from: {from}\n    to: {to}{ports}\n"
    )
}

fn result<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {v:#}"))
}

/// db accepts web on TCP 5432 only; web's egress is not isolated.
const DB_FROM_WEB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: back}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {zone: front}}
    ports: [{protocol: TCP, port: 5432}]
"#;

#[test]
fn a_network_policy_opening_one_port_violates_never_on_exactly_that_port() {
    let invs = [
        invariant("web-never-db", "never", "[{segment: web}]", "[{segment: db}]", ""),
        // Every port but TCP 5432: nothing else is open from web to db.
        invariant(
            "web-never-db-but-5432",
            "never",
            "[{segment: web}]",
            "[{segment: db}]",
            "[{port: 1, endPort: 5431}, {port: 5433, endPort: 65535}, {protocol: UDP}, {protocol: SCTP}]",
        ),
        // The same port by the destination's own name for it.
        invariant(
            "web-never-postgres",
            "never",
            "[{segment: web}]",
            "[{segment: db}]",
            "[{port: postgres}]",
        ),
    ]
    .concat();
    let (code, v, err) = run(DB_FROM_WEB, &invs);
    assert_eq!(code, Some(1), "{v:#}\n{err}");
    let r = result(&v, "web-never-db");
    assert_eq!(r["status"], "violated");
    assert_eq!(r["pairs_checked"], 1, "web -> db is the only pair");
    assert_eq!(r["violating_pairs"], 1);
    let e = &r["examples"][0];
    assert_eq!(e["src"], "front/web[Deployment]");
    assert_eq!(e["dst"], "back/db[Deployment]");
    assert_eq!(e["protocol"], "TCP");
    assert_eq!(e["port"], 5432);
    assert_eq!(e["conns"], "TCP 5432", "exactly that port, nothing else");
    let chain = serde_json::to_string(&e["chain"]).unwrap();
    assert!(
        chain.contains("NetworkPolicy back/db-from-web") && chain.contains("policies.yaml:1\""),
        "the allowing policy with file:line: {chain}"
    );
    assert_eq!(result(&v, "web-never-db-but-5432")["status"], "holds");
    let named = result(&v, "web-never-postgres");
    assert_eq!(named["status"], "violated");
    assert_eq!(named["examples"][0]["conns"], "TCP 5432");
}

#[test]
fn default_deny_and_an_admin_deny_make_never_hold() {
    // back isolates ingress, then lets front in on every port; an AdminNetworkPolicy denies
    // front -> back on every port, and admin rules come before NetworkPolicies.
    let policies = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: back}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-front, namespace: back}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {zone: front}}}]
"#;
    let anp = r#"
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: front-never-back}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {zone: back}}}
  ingress:
  - name: deny-front
    action: Deny
    from: [{namespaces: {matchLabels: {zone: front}}}]
"#;
    let inv = invariant(
        "front-never-back",
        "never",
        "[{segment: web}]",
        "[{segment: back}]",
        "",
    );
    let (code, v, err) = run(&format!("{policies}{anp}"), &inv);
    assert_eq!(code, Some(0), "{v:#}\n{err}");
    let r = result(&v, "front-never-back");
    assert_eq!(r["status"], "holds");
    assert_eq!(r["pairs_checked"], 2, "web -> db, web -> cache");
    // Without the admin policy, from-front opens every port: violated on both pairs.
    let (code, v, _) = run(policies, &inv);
    assert_eq!(code, Some(1));
    let r = result(&v, "front-never-back");
    assert_eq!(r["violating_pairs"], 2);
    assert_eq!(r["examples"][0]["conns"], "All Connections");
}

#[test]
fn only_is_violated_by_an_ip_block_from_anywhere() {
    let policies = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web-and-anywhere, namespace: back}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {zone: front}}
    - ipBlock: {cidr: 0.0.0.0/0}
    ports: [{protocol: TCP, port: 5432}]
"#;
    let invs = [
        invariant(
            "only-web-to-db",
            "only",
            "[{segment: web}]",
            "[{segment: db}]",
            "",
        ),
        invariant(
            "only-web-and-anywhere-v4-to-db",
            "only",
            "[{segment: web}, {cidr: 0.0.0.0/0}]",
            "[{segment: db}]",
            "",
        ),
    ]
    .concat();
    let (code, v, err) = run(policies, &invs);
    assert_eq!(code, Some(1), "{v:#}\n{err}");
    let r = result(&v, "only-web-to-db");
    assert_eq!(r["status"], "violated");
    // Sources: cache (db's own namespace, isolated out) and the external ranges. The only
    // CIDR is 0.0.0.0/0, so outside the cluster there are two ranges, all of IPv4 (allowed on
    // TCP 5432) and all of IPv6 (not in the ipBlock: denied).
    assert_eq!(r["violating_pairs"], 1, "{r:#}");
    let e = &r["examples"][0];
    assert_eq!(e["src"], "0.0.0.0-255.255.255.255[External]");
    assert_eq!(e["conns"], "TCP 5432");
    assert_eq!(e["port"], 5432);
    assert_eq!(
        result(&v, "only-web-and-anywhere-v4-to-db")["status"],
        "holds"
    );
}

#[test]
fn must_allow_is_violated_by_a_default_deny() {
    let policies = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-default-deny, namespace: back}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
"#;
    let invs = [
        invariant(
            "web-reaches-db",
            "mustAllow",
            "[{segment: web}]",
            "[{segment: db}]",
            "[{port: 5432}]",
        ),
        // cache is selected by no policy: default allow.
        invariant(
            "web-reaches-back",
            "mustAllow",
            "[{segment: web}]",
            "[{segment: back}]",
            "[{port: 6379}]",
        ),
    ]
    .concat();
    let (code, v, err) = run(policies, &invs);
    assert_eq!(code, Some(1), "{v:#}\n{err}");
    let r = result(&v, "web-reaches-db");
    assert_eq!(r["status"], "violated");
    let e = &r["examples"][0];
    assert_eq!(
        (e["protocol"].as_str(), e["port"].as_u64()),
        (Some("TCP"), Some(5432))
    );
    assert_eq!(e["conns"], "TCP 5432", "what should be allowed and is not");
    assert_eq!(e["verdict"], "Deny");
    let chain = serde_json::to_string(&e["chain"]).unwrap();
    assert!(
        chain.contains("back/db-default-deny") && chain.contains("isolate"),
        "{chain}"
    );
    // web-reaches-back: web -> cache holds on 6379; web -> db does not.
    let r = result(&v, "web-reaches-back");
    assert_eq!(
        (r["pairs_checked"].as_u64(), r["violating_pairs"].as_u64()),
        (Some(2), Some(1))
    );
    // Without the default deny everything is allowed: both hold, exit 0.
    let (code, v, _) = run("", &invs);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["violated"], 0);
}

#[test]
fn malformed_manifests_exit_3_and_partly_read_input_never_passes() {
    let broken = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: back}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]
"#;
    let inv = invariant(
        "web-never-db",
        "never",
        "[{segment: web}]",
        "[{segment: db}]",
        "[{port: 1}]",
    );
    let dir = tempfile::tempdir().unwrap();
    let (k8s, intent) = (dir.path().join("k8s"), dir.path().join("intent"));
    std::fs::create_dir_all(&k8s).unwrap();
    std::fs::create_dir_all(&intent).unwrap();
    std::fs::write(k8s.join("cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(k8s.join("np.yaml"), broken).unwrap();
    std::fs::write(intent.join("segments.yaml"), SEGMENTS).unwrap();
    std::fs::write(intent.join("invariants.yaml"), &inv).unwrap();
    let (i, k) = (intent.to_str().unwrap(), k8s.to_str().unwrap());
    let o = bulkhead(&["verify", "--policy", i, "--k8s", k]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("np.yaml:"),
        "file:line of the error: {}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "nothing verified: {}", stdout(&o));
    // --keep-going: the broken policy is skipped; web -> db on TCP 1 is then open (nothing
    // isolates db), so the invariant is violated: exit 1.
    let o = bulkhead(&["verify", "--policy", i, "--k8s", k, "--keep-going"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("PARTLY READ"), "{}", stdout(&o));
    // An invariant that holds over what was read is still not confirmed: exit 3.
    std::fs::write(
        intent.join("invariants.yaml"),
        invariant(
            "web-reaches-db",
            "mustAllow",
            "[{segment: web}]",
            "[{segment: db}]",
            "[{port: 1}]",
        ),
    )
    .unwrap();
    let o = bulkhead(&["verify", "--policy", i, "--k8s", k, "--keep-going"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stderr(&o).contains("not confirmed"), "{}", stderr(&o));
    // An intent with errors: exit 3.
    std::fs::write(
        intent.join("invariants.yaml"),
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {name: typo}\nspec:\n  nevr: {from: [{segment: web}], to: [{segment: db}]}\n",
    )
    .unwrap();
    let o = bulkhead(&["verify", "--policy", i, "--k8s", k]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // --k8s and --inventory do not mix.
    let o = bulkhead(&["verify", "--policy", i, "--k8s", k, "--inventory", k]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn bank(format: &str) -> Output {
    bulkhead(&[
        "verify",
        "--policy",
        "examples/intent/brownfield",
        "--k8s",
        "examples/bank",
        "--format",
        format,
    ])
}

#[test]
fn the_example_bank_against_its_brownfield_intent() {
    let o = bank("json");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["intent_policies_ignored"], 1,
        "policies.yaml is ignored and counted"
    );
    assert!(
        stderr(&o).contains("segment hsm") && stderr(&o).contains("selects no workload"),
        "{}",
        stderr(&o)
    );
    let status = |n: &str| result(&v, n)["status"].as_str().unwrap().to_string();
    // The AdminNetworkPolicy marketing-never-reaches-regulated-data (priority 10) denies
    // marketing's egress to every namespace labelled compliance pci-dss or gdpr, on every port,
    // before anything else is asked.
    assert_eq!(status("marketing-never-reaches-regulated-data"), "holds");
    // Every workload of payments, customer-data, accounts and identity is isolated for ingress
    // by a NetworkPolicy none of whose rules names an ipBlock; the admin rules that reach them
    // (prometheus scrapes, the Pass for pods) never match an address outside the cluster.
    assert_eq!(status("no-internet-into-regulated-data"), "holds");
    // cluster-dns-and-monitoring (priority 20) allows prometheus into every namespace on the
    // named port metrics (TCP 9100), before payments-ingress is consulted: both payments
    // workloads, 2 violating pairs.
    assert_eq!(status("only-gateway-reaches-payments"), "violated");
    let r = result(&v, "only-gateway-reaches-payments");
    assert_eq!(r["violating_pairs"], 2);
    let e = &r["examples"][0];
    assert_eq!(e["src"], "shared-infra/prometheus[StatefulSet]");
    assert_eq!(
        (e["port"].as_u64(), e["conns"].as_str()),
        (Some(9100), Some("TCP 9100"))
    );
    assert!(
        serde_json::to_string(&e["chain"])
            .unwrap()
            .contains("cluster-dns-and-monitoring"),
        "{e:#}"
    );
    // With monitoring among the allowed sources: payments-ingress lets only the gateway in
    // (TCP 8443) and isolates the rest, addresses outside the cluster included.
    assert_eq!(
        status("only-gateway-and-monitoring-reach-payments"),
        "holds"
    );
    // payments-ingress allows egress to namespace messaging on TCP 9092-9093; nothing selects
    // kafka for ingress, and messaging is not a regulated namespace (no baseline deny).
    assert_eq!(status("payments-reach-kafka"), "holds");
    // allow-dns (priority 20) allows every namespace's egress to coredns on UDP and TCP 53;
    // the only earlier rule (marketing's deny) targets regulated namespaces, and coredns's
    // ingress is selected by nothing.
    assert_eq!(status("everyone-resolves-names"), "holds");
    // Every workload with a metrics port has it at TCP 9100, so the scrape rule admits
    // prometheus there; the end-of-day job has no such port, but no NetworkPolicy or baseline
    // rule selects its namespace: default allow. prometheus's egress is not isolated.
    assert_eq!(status("monitoring-scrapes-everything"), "holds");
    // The HSM is a host: no workload is selected, so the invariant holds vacuously.
    assert_eq!(status("only-payments-reach-the-hsm"), "holds");
    assert_eq!(result(&v, "only-payments-reach-the-hsm")["destinations"], 0);
    assert_eq!(v["violated"], 1);
}

#[test]
fn bank_formats_match_their_golden_files() {
    for (format, ext) in [("text", "txt"), ("json", "json"), ("markdown", "md")] {
        let o = bank(format);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        golden(&format!("verify-k8s-bank.{ext}"), &stdout(&o));
    }
}
