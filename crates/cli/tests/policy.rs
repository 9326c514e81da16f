//! `bulkhead policy lint` end to end: compiler-like text and JSON (golden files), exit codes,
//! and the worked bank example over the simulated bank's inventory.

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

const BROKEN: &str = "crates/cli/tests/intent/broken";
const WARNINGS: &str = "crates/cli/tests/intent/warnings";

#[test]
fn lint_errors_print_like_a_compiler_and_exit_1() {
    let o = bulkhead(&["policy", "lint", BROKEN]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains("crates/cli/tests/intent/broken/policy.yaml:10:7: error[unknown-field]"),
        "{text}"
    );
    assert!(text.contains("  = hint: did you mean `action`?"), "{text}");
    golden("lint-broken.txt", &text);
    let o = bulkhead(&["policy", "lint", BROKEN, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["errors"].as_u64(), Some(11));
    let first = &v["diagnostics"][0];
    assert_eq!(first["line"], 10);
    assert_eq!(first["column"], 7);
    assert_eq!(first["code"], "unknown-field");
    assert_eq!(first["hint"], "did you mean `action`?");
    golden("lint-broken.json", &stdout(&o));
}

#[test]
fn warnings_exit_0_unless_denied() {
    let o = bulkhead(&["policy", "lint", WARNINGS]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("warning[redundant-rule]"),
        "{}",
        stdout(&o)
    );
    let o = bulkhead(&["policy", "lint", WARNINGS, "--deny-warnings"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn input_errors_exit_3() {
    let o = bulkhead(&["policy", "lint", "no/such/dir"]);
    assert_eq!(o.status.code(), Some(3));
    let o = bulkhead(&[
        "policy",
        "lint",
        "examples/intent/bank",
        "--hosts",
        "no/such/hosts.yaml",
    ]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn bank_example_is_clean_over_the_simulated_bank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args([
            "simulate-bank",
            "--workloads",
            "60",
            "--days",
            "1",
            "--rate",
            "0.01",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(sim.status.success());
    let inv = dir.path().join("inventory");
    let hosts = dir.path().join("hosts.yaml");
    let o = bulkhead(&[
        "policy",
        "lint",
        "examples/intent/bank",
        "--inventory",
        inv.to_str().unwrap(),
        "--hosts",
        hosts.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(
        (v["errors"].as_u64(), v["warnings"].as_u64()),
        (Some(0), Some(0)),
        "{v:#}"
    );
    assert_eq!(v["segments"], 14);
    assert!(v["inventory"].as_u64().unwrap_or(0) > 50, "{v:#}");
    // Without the inventory, the check is skipped and said so.
    let o = bulkhead(&["policy", "lint", "examples/intent/bank"]);
    assert!(stdout(&o).contains("note[no-inventory]"), "{}", stdout(&o));
    // A segment nobody carries is reported once the inventory is given.
    let extra = dir.path().join("policy");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("ghost.yaml"),
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {name: ghost}\nspec:\n  podSelector: {matchLabels: {segment: ghost}}\n",
    )
    .unwrap();
    let o = bulkhead(&[
        "policy",
        "lint",
        "examples/intent/bank",
        extra.to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("warning[empty-segment]: segment ghost"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bench_intent_counts_every_decision() {
    let o = bulkhead(&[
        "bench",
        "intent",
        "--workloads",
        "60",
        "--rules",
        "20",
        "--decisions",
        "1000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let sum: u64 = ["allow", "deny", "would_block"]
        .iter()
        .map(|k| v[k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sum, 1000, "{v:#}");
    assert_eq!(v["identities"], 60);
}
