//! `bulkhead verify` and `bulkhead query can-reach` end to end: the worked bank example over the
//! simulated bank, with each invariant's expected outcome reasoned from the YAML; exit codes.

use std::path::PathBuf;
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

#[test]
fn bank_example_invariants_over_the_simulated_bank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = bulkhead(&[
        "simulate-bank",
        "--days",
        "1",
        "--rate",
        "0.01",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(sim.status.success());
    let inv = dir.path().join("inventory");
    let hosts = dir.path().join("hosts.yaml");
    let (inv, hosts) = (inv.to_str().unwrap(), hosts.to_str().unwrap());
    let report = dir.path().join("compliance.md");
    let o = bulkhead(&[
        "verify",
        "--policy",
        "examples/intent/bank",
        "--inventory",
        inv,
        "--hosts",
        hosts,
        "--format",
        "json",
        "--report",
        report.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    // Two invariants are violated (below): exit 1.
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    let status = |name: &str| {
        let r = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(r["pairs_checked"].as_u64().unwrap() > 0, "{r:#}");
        r.clone()
    };
    // marketing-isolation (guardrail) denies marketing -> core-ledger, cards and customer-data
    // on every port; the only earlier guardrail (pci-cde-boundary) denies marketing -> cards
    // too. Nothing passes marketing to the application tier: both `never` hold.
    assert_eq!(status("marketing-never-reaches-ledger")["status"], "holds");
    assert_eq!(
        status("marketing-never-reaches-regulated-data")["status"],
        "holds"
    );
    // pci-cde-boundary passes payments and cards (and the card scheme's address on TCP 8583)
    // and denies everyone else -> cards, external addresses included (`any: true`).
    assert_eq!(status("only-payments-reach-cards")["status"], "holds");
    // hsm-only-from-cards denies pods and non-cards hosts, but a selector never matches an
    // external address: the card scheme (198.51.100.20) passes `card-scheme-to-cards`, and the
    // application rule `card-scheme-inbound` allows it into segment cards on TCP 8583 — the HSM
    // host carries `segment: cards`.
    let hsm = status("only-cards-reach-the-hsm");
    assert_eq!(hsm["status"], "violated");
    let e = &hsm["examples"][0];
    assert_eq!(
        (
            e["src"].as_str(),
            e["protocol"].as_str(),
            e["port"].as_u64()
        ),
        (Some("external 198.51.100.20"), Some("TCP"), Some(8583)),
        "{hsm:#}"
    );
    assert!(e["dst"].as_str().unwrap().starts_with("hsm"), "{hsm:#}");
    assert_eq!(e["chain"][1]["rule"], "rules[7] \"card-scheme-inbound\"");
    // ledger-database (guardrail priority 400) passes core-ledger -> ledger-db on every port
    // before ssh-from-bastion (priority 500) is reached, and core-ledger-internal allows
    // core-ledger -> core-ledger on every port: SSH to the ledger database from core-ledger.
    let ssh = status("ssh-only-from-bastion");
    assert_eq!(ssh["status"], "violated");
    let e = &ssh["examples"][0];
    assert_eq!(
        (e["protocol"].as_str(), e["port"].as_u64()),
        (Some("TCP"), Some(22))
    );
    assert!(
        e["dst"].as_str().unwrap().starts_with("ledger-db"),
        "{ssh:#}"
    );
    assert_eq!(e["chain"][0]["policy"], "ledger-database");
    assert_eq!(e["chain"][1]["rule"], "rules[0] \"core-ledger-internal\"");
    // customer-journeys `edge-to-backends` allows edge -> payments on TCP 8443; payments-to-fraud
    // allows TCP 9090; no guardrail stands in the way.
    assert_eq!(status("gateway-reaches-payments")["status"], "holds");
    assert_eq!(status("payments-reach-fraud")["status"], "holds");
    let md = std::fs::read_to_string(&report).expect("report written");
    assert!(
        md.contains("| PCI-DSS v4.0 | 1.3.1 Inbound traffic to the CDE"),
        "{md}"
    );
    assert!(md.contains("| GDPR | Art. 25 / Art. 32"), "{md}");

    // can-reach: the whole allowed set, and one port with its deciding rule.
    let a = [
        "--policy",
        "examples/intent/bank",
        "--inventory",
        inv,
        "--hosts",
        hosts,
    ];
    let o = bulkhead(
        &[
            &["query", "can-reach", "198.51.100.20", "hsm-01"][..],
            &a[..],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("allowed when enforced: TCP 8583\n"),
        "{}",
        stdout(&o)
    );
    let o = bulkhead(
        &[
            &[
                "query",
                "can-reach",
                "edge/api-gateway",
                "payments/payment-orchestrator",
                "--port",
                "22/TCP",
            ][..],
            &a[..],
        ]
        .concat(),
    );
    assert!(
        stdout(&o).contains("deny at the destination ingress: guardrail policy ssh-from-bastion"),
        "{}",
        stdout(&o)
    );
    // Unknown names and a policy with errors are input errors.
    let o = bulkhead(&[&["query", "can-reach", "nope", "hsm-01"][..], &a[..]].concat());
    assert_eq!(o.status.code(), Some(3));
    let o = bulkhead(&[
        "verify",
        "--policy",
        "crates/cli/tests/intent/broken",
        "--inventory",
        inv,
    ]);
    assert_eq!(o.status.code(), Some(3));
    let o = bulkhead(&["verify", "--policy", "examples/intent/bank"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "no inventory: nothing to verify over"
    );
}

#[test]
fn bench_verify_reports_cpu_time() {
    let o = bulkhead(&[
        "bench",
        "verify",
        "--workloads",
        "300",
        "--rules",
        "100",
        "--invariants",
        "10",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["invariants"], 10);
    assert!(v["verify_cpu_s"].is_number(), "{v:#}");
}
