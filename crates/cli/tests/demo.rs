//! `bulkhead demo` end to end, at a small size: every step runs, the report's figures agree
//! with what the simulator says it produced and with the worked policy's documented holes, and
//! the demo directory is handled safely.

use std::path::Path;
use std::process::{Command, Output};

fn demo(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["demo", "--workloads", "60", "--rate", "0.05", "--dir"])
        .arg(dir)
        .output()
        .expect("run bulkhead")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

/// The report without its timing line (the only part that may differ between runs).
fn without_timings(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.starts_with("Took "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_demo_runs_every_step_and_reports_what_the_steps_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let report = stdout(&demo(&dir));

    // The simulator reports on standard error what it produced for each format; the demo's
    // ingest counts must be exactly those (Hubble: events, which ingest reads one by one).
    for (format, field) in [
        ("hubble", "hubble_events"),
        ("vpc", "vpc"),
        ("zeek", "zeek"),
        ("netflow", "netflow"),
    ] {
        let err = std::fs::read_to_string(
            dir.join("logs")
                .join(format!("ingest-{format}.producer.stderr")),
        )
        .expect("simulator log");
        let line = err.lines().find(|l| l.starts_with('{')).expect("summary");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let n = v[field].as_u64().expect("count");
        assert!(n > 0, "{format}: the simulator produced nothing");
        assert!(
            report.contains(&format!("{format} {}", thousands(n))),
            "{format}: {n} flows not in the report:\n{report}"
        );
    }
    // The recommendation allows every flow of its training day (the requirement), and
    // a proposal exists where the report says it is, loadable by the policy tools.
    assert!(report.contains("cover 100.0 % of its flows"), "{report}");
    let lint = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["policy", "lint"])
        .arg(dir.join("recommended"))
        .output()
        .expect("lint");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    // The worked bank policy's two documented holes (examples/intent/bank, see the README):
    // the card scheme reaches the HSM on 8583, and core-ledger reaches ledger-db on SSH.
    assert!(report.contains("5 of 7 invariants hold"), "{report}");
    assert!(
        report.contains("only-cards-reach-the-hsm: external 198.51.100.20 -> hsm-"),
        "{report}"
    );
    assert!(report.contains("ssh-only-from-bastion: "), "{report}");
    assert!(report.contains("TCP 22"), "{report}");
    // Enforcing it would block recorded traffic (Prometheus scraping the regulated hosts).
    let rehearse = report
        .lines()
        .find(|l| l.starts_with("4. Rehearse"))
        .expect("rehearse line");
    assert!(!rehearse.contains("newly block 0 edges"), "{rehearse}");
    // So the plan fails on the invariants (exit 1), and lists the blocked traffic too, since the
    // default budget is no newly blocked flow at all.
    assert!(
        report.contains("bulkhead plan exits 1 (invariant-violated, blocked-traffic)"),
        "{report}"
    );
    let sarif: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/plan.sarif")).expect("SARIF"),
    )
    .expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    // Every file the report points at exists.
    for f in [
        "reports/map.dot",
        "reports/compliance.md",
        "reports/verify.json",
        "reports/simulate.json",
        "intent/bank/guardrails.yaml",
        "store",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let dot = std::fs::read_to_string(dir.join("reports/map.dot")).expect("map");
    assert!(dot.starts_with("digraph"), "{dot}");

    // A second run re-creates the directory and finds the same (the simulator is seeded).
    let again = stdout(&demo(&dir));
    assert_eq!(without_timings(&report), without_timings(&again));
}

#[test]
fn the_demo_refuses_a_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keep = tmp.path().join("precious.txt");
    std::fs::write(&keep, "do not delete").expect("write");
    let o = demo(tmp.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not an earlier demo"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&keep).expect("still there"),
        "do not delete"
    );
}
