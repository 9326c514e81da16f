//! `bulkhead recommend` end to end on the simulated bank: two days ending on a month end, ingest,
//! recommend, lint (0 errors), simulate the proposal over the training window (nothing newly
//! blocked, nothing would block), the month-end batch kept, the audit records of proposing and
//! accepting.

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

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("JSON")
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn the_bank_recommended_from_two_days_ending_on_a_month_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = dir.path().join("bank");
    let data = dir.path().join("data");
    ok(&bulkhead(&[
        "simulate-bank",
        "--out",
        &s(&bank),
        "--days",
        "2",
        "--rate",
        "0.01",
    ]));
    let mut files: Vec<String> = Vec::new();
    for f in ["hubble", "vpc", "zeek"] {
        for e in std::fs::read_dir(bank.join("flows").join(f)).unwrap() {
            files.push(s(&e.unwrap().path()));
        }
    }
    let (inv, hosts, d) = (
        s(&bank.join("inventory")),
        s(&bank.join("hosts.csv")),
        s(&data),
    );
    let mut args = vec!["ingest", "--quiet", "--data-dir", &d];
    args.extend(["--inventory", &inv, "--hosts", &hosts]);
    args.extend(files.iter().map(String::as_str));
    ok(&bulkhead(&args));

    // The proposal over everything recorded.
    let out = dir.path().join("proposal");
    let o = s(&out);
    let v = json(&bulkhead(&[
        "recommend",
        "--data-dir",
        &d,
        "--inventory",
        &inv,
        "--hosts",
        &hosts,
        "--out",
        &o,
        "--format",
        "json",
    ]));
    let r = &v["recommended"];
    assert_eq!(r["training"]["blocked_flows"], 0, "{v:#}");
    assert_eq!(r["training"]["covered_flow_share"], 1.0, "{v:#}");
    assert!(
        r["training"]["allowed_flows"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    // Fewer rules than one per edge, and some generalisation beyond what was seen.
    let (rules, naive) = (
        r["rules"].as_u64().unwrap(),
        v["naive"]["rules"].as_u64().unwrap(),
    );
    assert!(rules < naive, "{rules} rules, naive {naive}");
    assert!(r["over_permissive_share"].as_f64().unwrap() > 0.0);
    assert_eq!(v["naive"]["over_permissive_share"], 0.0);

    // Lint: 0 errors over the inventory.
    let lint = bulkhead(&["policy", "lint", &o, "--inventory", &inv, "--hosts", &hosts]);
    let text = ok(&lint);
    assert!(text.contains(": 0 errors"), "{text}");

    // The twin over the training window: nothing newly blocked, nothing would block.
    let sim = |policy: &str| {
        json(&bulkhead(&[
            "simulate",
            "--policy",
            policy,
            "--data-dir",
            &d,
            "--inventory",
            &inv,
            "--hosts",
            &hosts,
            "--format",
            "json",
        ]))
    };
    let t = sim(&o);
    for class in ["newly_blocked", "would_block", "still_blocked"] {
        assert_eq!(t["classes"][class]["edges"], 0, "{class}: {t:#}");
    }
    assert!(t["classes"]["still_allowed"]["edges"].as_u64().unwrap() > 0);

    // The month-end batch (batch scheduler → ledger database on DB2 50000, only on the last
    // day of the month after 20:00) was recorded, and is kept.
    let map = json(&bulkhead(&["map", "--data-dir", &d, "--format", "json"]));
    let month_end = map["edges"].as_array().unwrap().iter().any(|e| {
        e["src"]
            .as_str()
            .unwrap()
            .starts_with("host:batch-scheduler")
            && e["dst"].as_str().unwrap().starts_with("host:ledger-db")
            && e["port"] == 50000
    });
    assert!(month_end, "the simulated month end is in the store");
    let policies = std::fs::read_to_string(out.join("policies.yaml")).unwrap();
    let rule = policies
        .split("\n    - name: ")
        .find(|r| {
            r.contains("from: [{segment: hosts.batch-scheduler}]")
                && r.contains("to: [{segment: hosts.ledger-db}]")
        })
        .expect("a rule from the batch scheduler to the ledger database");
    assert!(rule.contains("port: 50000"), "{rule}");
    // DNS for every segment.
    assert!(policies.contains("name: infrastructure-dns"));
    assert!(policies.contains("{protocol: UDP, port: 53}, {protocol: TCP, port: 53}"));

    // Enforced, still nothing newly blocked in the training window.
    let out2 = dir.path().join("enforce");
    let o2 = s(&out2);
    ok(&bulkhead(&[
        "recommend",
        "--data-dir",
        &d,
        "--inventory",
        &inv,
        "--hosts",
        &hosts,
        "--out",
        &o2,
        "--mode",
        "enforce",
    ]));
    let segs = std::fs::read_to_string(out2.join("segments.yaml")).unwrap();
    assert!(segs.contains("mode: enforce") && !segs.contains("mode: observe"));
    let t = sim(&o2);
    for class in ["newly_blocked", "would_block", "still_blocked"] {
        assert_eq!(t["classes"][class]["edges"], 0, "enforced, {class}: {t:#}");
    }

    // Held out: the last 4 hours (the month-end run) against the rest.
    let out3 = dir.path().join("held");
    let v = json(&bulkhead(&[
        "recommend",
        "--data-dir",
        &d,
        "--inventory",
        &inv,
        "--hosts",
        &hosts,
        "--out",
        &s(&out3),
        "--holdout-last",
        "4h",
        "--format",
        "json",
    ]));
    let h = &v["recommended"]["holdout"];
    assert!(h["edges"].as_u64().unwrap() > 0, "{v:#}");
    // Split on a bucket boundary (hourly buckets): the windows share no bucket.
    let w = v["window"].as_str().unwrap();
    assert!(w.starts_with("..") && w.ends_with(":00:00Z"), "{v:#}");
    // Blocking is no worse than the naive policy's, which allows only exact edges seen.
    assert!(
        h["blocked_flows"].as_u64().unwrap()
            <= v["naive"]["holdout"]["blocked_flows"].as_u64().unwrap(),
        "{v:#}"
    );

    // The audit log: the proposal, then its acceptance with the same digest.
    let accept = ok(&bulkhead(&[
        "recommend",
        "accept",
        &o,
        "--data-dir",
        &d,
        "--reason",
        "CHG-1234 reviewed",
    ]));
    assert!(accept.contains("as proposed"), "{accept}");
    let log = ok(&bulkhead(&[
        "audit",
        "--data-dir",
        &d,
        "log",
        "--format",
        "json",
    ]));
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let proposed = entries
        .iter()
        .find(|e| e["action"] == "policy.recommend" && e["object"] == format!("recommendation:{o}"))
        .expect("policy.recommend recorded");
    let accepted = entries
        .iter()
        .find(|e| e["action"] == "recommendation.accept")
        .expect("recommendation.accept recorded");
    assert_eq!(proposed["after"], accepted["after"]);
    assert_eq!(accepted["before"], proposed["after"]);
    assert_eq!(accepted["reason"], "CHG-1234 reviewed");
    ok(&bulkhead(&["audit", "--data-dir", &d, "verify"]));

    // An edited proposal is accepted as edited; a broken one is refused (exit 3).
    std::fs::write(
        out.join("policies.yaml"),
        policies.replace("port: 50000", "port: 50001"),
    )
    .unwrap();
    let again = ok(&bulkhead(&[
        "recommend",
        "accept",
        &o,
        "--data-dir",
        &d,
        "--reason",
        "edited",
    ]));
    assert!(again.contains("edited since it was proposed"), "{again}");
    std::fs::write(out.join("policies.yaml"), "kind: Policy\nbogus: 1\n").unwrap();
    let bad = bulkhead(&["recommend", "accept", &o, "--data-dir", &d, "--reason", "x"]);
    assert_eq!(bad.status.code(), Some(3));
}

#[test]
fn no_store_is_an_input_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = bulkhead(&[
        "recommend",
        "--data-dir",
        &s(&dir.path().join("nothing")),
        "--out",
        &s(&dir.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no store here"));
    assert!(!dir.path().join("out").exists(), "nothing written");
}
