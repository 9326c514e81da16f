//! `bulkhead quarantine`, `--list` and `bulkhead release` end to end on the bank example and the
//! simulated bank's inventory: the files written, refusals, expiry, and the audit records.

use std::path::Path;
use std::process::{Command, Output};

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .env("USER", "soc-analyst")
        .output()
        .expect("runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> (tempfile::TempDir, String, String, String, String) {
    let d = tempfile::tempdir().unwrap();
    let bank = d.path().join("bank");
    let o = bulkhead(&[
        "simulate-bank",
        "--out",
        bank.to_str().unwrap(),
        "--inventory-only",
        "--workloads",
        "120",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let pol = d.path().join("policy");
    std::fs::create_dir_all(&pol).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    for e in std::fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pol.join(e.file_name())).unwrap();
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    (
        d,
        s(&pol),
        s(&bank.join("inventory")),
        s(&bank.join("hosts.yaml")),
        s(&bank.parent().unwrap().join("data")),
    )
}

#[test]
fn quarantine_list_release_and_audit() {
    let (_d, pol, inv, hosts, data) = setup();
    let base = [
        "--policy",
        &pol,
        "--inventory",
        &inv,
        "--hosts",
        &hosts,
        "--data-dir",
        &data,
    ];
    // Unknown workload: refused, exit 1, nothing written.
    let mut a = vec!["quarantine", "payments/nope", "--reason", "x"];
    a.extend(base);
    let o = bulkhead(&a);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("payments/nope: no such workload or host"));
    assert!(!Path::new(&pol).join("quarantine").exists());
    // A bad duration.
    let mut a = vec![
        "quarantine",
        "payments/payment-orchestrator",
        "--reason",
        "x",
        "--expires",
        "4 hours",
    ];
    a.extend(base);
    assert_eq!(bulkhead(&a).status.code(), Some(1));
    // The workload and a host.
    let mut a = vec![
        "quarantine",
        "payments/payment-orchestrator",
        "--allow-to",
        "shared-infra",
        "--expires",
        "4h",
        "--reason",
        "INC-7: beaconing",
    ];
    a.extend(base);
    let o = bulkhead(&a);
    assert!(o.status.success(), "{}", text(&o));
    let file = Path::new(&pol).join("quarantine/quarantine-payments.payment-orchestrator.yaml");
    let y = std::fs::read_to_string(&file).unwrap();
    assert!(y.contains("bulkhead.dev/who: \"soc-analyst\""), "{y}");
    assert!(y.contains("bulkhead.dev/reason: \"INC-7: beaconing\""));
    let mut a = vec!["quarantine", "hsm-01", "--reason", "INC-8"];
    a.extend(base);
    let o = bulkhead(&a);
    assert!(o.status.success(), "{}", text(&o));
    // Twice: refused.
    let o = bulkhead(&a);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already"), "{}", text(&o));
    // The policy with both lints clean.
    let o = bulkhead(&[
        "policy",
        "lint",
        &pol,
        "--inventory",
        &inv,
        "--hosts",
        &hosts,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Listed as active.
    let o = bulkhead(&[
        "quarantine",
        "--list",
        "--policy",
        &pol,
        "--data-dir",
        &data,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["quarantines"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["state"] == "active"));
    // The host's quarantine expires (its annotation moved to the past): --list releases it.
    let hf = Path::new(&pol).join("quarantine/quarantine-hsm-01.yaml");
    let h = std::fs::read_to_string(&hf).unwrap();
    let h = h.replace(
        "    bulkhead.dev/created:",
        "    bulkhead.dev/expires: \"2000-01-01T00:00:00Z\"\n    bulkhead.dev/created:",
    );
    std::fs::write(&hf, h).unwrap();
    let o = bulkhead(&[
        "quarantine",
        "--list",
        "--policy",
        &pol,
        "--data-dir",
        &data,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("hsm-01  expired"), "{}", text(&o));
    assert!(!hf.exists(), "released by itself");
    // Release the workload.
    let o = bulkhead(&[
        "release",
        "payments/payment-orchestrator",
        "--policy",
        &pol,
        "--reason",
        "INC-7 closed",
        "--data-dir",
        &data,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!file.exists());
    let o = bulkhead(&[
        "release",
        "payments/payment-orchestrator",
        "--policy",
        &pol,
        "--reason",
        "again",
        "--data-dir",
        &data,
    ]);
    assert_eq!(o.status.code(), Some(1));
    // The audit log: add, add, expire, release — in that order, by the analyst.
    let o = bulkhead(&["audit", "--data-dir", &data, "log", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    let actions: Vec<&str> = ["quarantine.add", "quarantine.expire", "quarantine.release"]
        .into_iter()
        .filter(|a| log.contains(a))
        .collect();
    assert_eq!(actions.len(), 3, "{log}");
    let pos = |s: &str| log.find(s).unwrap();
    assert!(pos("quarantine.add") < pos("quarantine.expire"));
    assert!(pos("quarantine.expire") < pos("quarantine.release"));
    assert!(log.contains("soc-analyst"));
    assert_eq!(log.matches("quarantine.add").count(), 2, "{log}");
}
