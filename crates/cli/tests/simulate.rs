//! `bulkhead simulate` end to end on the simulated bank: ingest a day, then classify every
//! recorded edge under the worked bank policy (`examples/intent/bank`).

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

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

#[test]
fn the_bank_under_its_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = dir.path().join("bank");
    let data = dir.path().join("data");
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let o = bulkhead(&[
        "simulate-bank",
        "--out",
        &s(&bank),
        "--days",
        "1",
        "--rate",
        "0.01",
    ]);
    assert!(o.status.success());
    let mut files: Vec<String> = Vec::new();
    for f in ["hubble", "vpc", "zeek"] {
        for e in std::fs::read_dir(bank.join("flows").join(f)).unwrap() {
            files.push(s(&e.unwrap().path()));
        }
    }
    let (inv, hosts) = (s(&bank.join("inventory")), s(&bank.join("hosts.csv")));
    let mut args = vec!["ingest", "--quiet", "--data-dir"];
    let d = s(&data);
    args.push(&d);
    args.extend(["--inventory", &inv, "--hosts", &hosts]);
    args.extend(files.iter().map(String::as_str));
    assert!(bulkhead(&args).status.success());
    let sim = |extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "--policy",
            "examples/intent/bank",
            "--data-dir",
            &d,
            "--inventory",
            &inv,
            "--hosts",
            &hosts,
            "--format",
            "json",
            "--top",
            "1000000",
        ];
        a.extend(extra);
        json(&bulkhead(&a))
    };
    let v = sim(&[]);
    // Every edge is in exactly one class.
    let classes = v["classes"].as_object().unwrap();
    let total: u64 = classes
        .values()
        .map(|t| t["edges"].as_u64().unwrap())
        .sum::<u64>()
        + v["other_protocol"]["edges"].as_u64().unwrap();
    assert_eq!(total, v["edges"].as_u64().unwrap(), "{v:#}");
    assert!(v["edges"].as_u64().unwrap() > 100);
    // Against no policy nothing was denied, so nothing is newly allowed or still blocked.
    assert_eq!(classes["newly_allowed"]["edges"], 0);
    assert_eq!(classes["still_blocked"]["edges"], 0);
    let changes = v["changes"].as_array().unwrap();
    let mut hsm = 0;
    for c in changes {
        for e in c["top"].as_array().unwrap() {
            let (src, dst) = (e["src"].as_str().unwrap(), e["dst"].as_str().unwrap());
            // DNS is allowed by the baseline tier (`dns`) and no guardrail denies it.
            assert!(
                !(e["port"] == 53 && c["class"] == "newly-blocked"),
                "DNS blocked: {e} {c:#}"
            );
            // guardrails.yaml: `hsm-only-from-cards` denies every source outside cards.
            if dst.starts_with("host:hsm-") && !src.starts_with("cards/") {
                hsm += 1;
                assert_eq!(c["class"], "newly-blocked", "{c:#}");
                assert_eq!(c["rule"]["name"], "hsm-only-from-cards", "{c:#}");
            }
            // guardrails.yaml: marketing never reaches cards, the ledger or customer data.
            if src.starts_with("marketing-analytics/")
                && ["cards/", "core-ledger/", "customer-data/"]
                    .iter()
                    .any(|p| dst.starts_with(p))
            {
                assert_eq!(c["class"], "newly-blocked", "{c:#}");
            }
        }
    }
    assert!(
        hsm > 0,
        "the simulated day has monitoring scrapes of the HSMs"
    );
    // The policy against itself: nothing changes.
    let same = sim(&["--against", "examples/intent/bank"]);
    for k in ["newly_allowed", "newly_blocked"] {
        assert_eq!(same["classes"][k]["edges"], 0, "{k}");
    }
    assert_eq!(
        same["classes"]["still_blocked"]["edges"],
        classes["newly_blocked"]["edges"]
    );
    // The semantic diff of the policy against itself is empty; against no policy it is not.
    let diff = |extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "--policy",
            "examples/intent/bank",
            "--diff",
            "--inventory",
            &inv,
            "--hosts",
            &hosts,
            "--format",
            "json",
        ];
        a.extend(extra);
        json(&bulkhead(&a))
    };
    assert_eq!(diff(&["--against", "examples/intent/bank"])["changes"], 0);
    assert!(diff(&[])["changes"].as_u64().unwrap() > 0);
}

#[test]
fn a_broken_policy_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  tier: application\n  rules:\n    - acton: allow\n",
    )
    .unwrap();
    let o = bulkhead(&[
        "simulate",
        "--policy",
        dir.path().to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not simulated"));
}
