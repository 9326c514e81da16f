//! The `bulkhead` binary end to end: formats (golden files with a drift test), `eval`,
//! errors and exit codes.

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

#[test]
fn connectivity_formats_match_their_golden_files() {
    for fmt in ["txt", "json", "csv", "md", "dot"] {
        let o = bulkhead(&["connectivity", "examples/bank", "--format", fmt]);
        assert!(o.status.success(), "{fmt}: {}", stderr(&o));
        golden(&format!("bank.{fmt}"), &stdout(&o));
    }
}

#[test]
fn formats_carry_the_same_connections() {
    let txt = stdout(&bulkhead(&["connectivity", "examples/bank"]));
    let json: Vec<serde_json::Value> = serde_json::from_str(&stdout(&bulkhead(&[
        "connectivity",
        "examples/bank",
        "-f",
        "json",
    ])))
    .expect("json output parses");
    let csv = stdout(&bulkhead(&["connectivity", "examples/bank", "-f", "csv"]));
    let lines: Vec<&str> = txt.lines().collect();
    assert!(lines.len() > 50, "the example bank has many connections");
    assert_eq!(json.len(), lines.len());
    assert_eq!(csv.lines().count(), lines.len() + 1, "csv has a header");
    assert_eq!(csv.lines().next(), Some("src,dst,conn"));
    for (l, j) in lines.iter().zip(&json) {
        let want = format!(
            "{} => {} : {}",
            j["src"].as_str().unwrap(),
            j["dst"].as_str().unwrap(),
            j["conn"].as_str().unwrap()
        );
        assert_eq!(*l, want);
    }
}

#[test]
fn focus_and_namespace_restrict_the_output() {
    let all = stdout(&bulkhead(&["connectivity", "examples/bank"]));
    let focus = stdout(&bulkhead(&[
        "connectivity",
        "examples/bank",
        "--focus",
        "customer-data/customer-db",
    ]));
    assert!(!focus.is_empty());
    for l in focus.lines() {
        assert!(l.contains("customer-data/customer-db[StatefulSet]"), "{l}");
        assert!(
            all.lines().any(|a| a == l),
            "focused line {l} is in the full output"
        );
    }
    let expected = all
        .lines()
        .filter(|l| l.contains("customer-data/customer-db[StatefulSet]"))
        .count();
    assert_eq!(focus.lines().count(), expected);
    let ns = stdout(&bulkhead(&[
        "connectivity",
        "examples/bank",
        "--namespace",
        "payments",
    ]));
    assert!(ns.lines().all(|l| l.contains("payments/")), "{ns}");
    let bad = bulkhead(&["connectivity", "examples/bank", "--focus", "nope"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("no workload"), "{}", stderr(&bad));
}

#[test]
fn eval_names_the_deciding_rules() {
    let o = bulkhead(&[
        "eval",
        "examples/bank",
        "--src",
        "marketing-analytics/campaign-service",
        "--dst",
        "customer-data/customer-db",
        "--port",
        "5432",
        "-f",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["egress"]["allowed"], false);
    assert_eq!(
        v["egress"]["decided_by"][0]["policy"],
        "marketing-never-reaches-regulated-data"
    );
    assert_eq!(
        v["egress"]["decided_by"][0]["rule"],
        "deny-regulated-segments"
    );
    assert_eq!(v["egress"]["decided_by"][0]["action"], "Deny");

    let o = bulkhead(&[
        "eval",
        "examples/bank",
        "--src",
        "accounts/accounts-service",
        "--dst",
        "customer-data/customer-db",
        "--port",
        "5432",
    ]);
    let t = stdout(&o);
    assert!(t.starts_with("ALLOWED: accounts/accounts-service[Deployment] => customer-data/customer-db[StatefulSet] : TCP 5432"), "{t}");
    assert!(t.contains("customer-data/customer-db-from-accounts"), "{t}");
    assert!(
        t.contains("passed down by AdminNetworkPolicy regulated-segments-delegate-to-owners"),
        "{t}"
    );

    // Isolated by a NetworkPolicy whose rules do not cover the port.
    let o = bulkhead(&[
        "eval",
        "examples/bank",
        "--src",
        "accounts/accounts-service",
        "--dst",
        "customer-data/customer-db",
        "--port",
        "22",
    ]);
    let t = stdout(&o);
    assert!(t.starts_with("DENIED"), "{t}");
    assert!(
        t.contains("select") && t.contains("customer-db-from-accounts"),
        "{t}"
    );

    // An address outside the cluster, and a pod address that resolves to its workload.
    let o = bulkhead(&[
        "eval",
        "examples/bank",
        "--src",
        "203.0.113.9",
        "--dst",
        "edge/api-gateway",
        "--port",
        "443",
    ]);
    assert!(
        stdout(&o).starts_with(
            "ALLOWED: 203.0.113.9-203.0.113.9[External] => edge/api-gateway[Deployment]"
        ),
        "{}",
        stdout(&o)
    );
    let o = bulkhead(&[
        "eval",
        "examples/bank",
        "--src",
        "10.20.3.17",
        "--dst",
        "edge/api-gateway",
        "--port",
        "443",
    ]);
    assert!(
        stdout(&o).contains("core-batch/end-of-day-28571234[Job] => edge/api-gateway"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn malformed_input_fails_with_file_and_line_unless_keep_going() {
    let tmp = TempDir::new("malformed");
    let dir = tmp.0.clone();
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml").unwrap();
    std::fs::write(dir.join("array.json"), "[1,2]").unwrap();
    let p = dir.to_str().unwrap();
    let o = bulkhead(&["connectivity", p]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "bad.yaml:5: NetworkPolicy np: spec.ingress[0].from[0]: ipBlock.cidr: invalid CIDR"
        ),
        "{err}"
    );
    assert!(err.contains("array.json: skipped"), "{err}");
    let o = bulkhead(&["connectivity", p, "--keep-going"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("default/a[Pod]"));
}

/// A scratch directory removed on drop, also when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("bulkhead-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
