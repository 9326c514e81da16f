//! `bulkhead plan` end to end: a small fixture built here (4 workloads, 12 flows) with the policy
//! of `tests/intent/plan`, every exit code alone and together, the `--max-blocked` boundary,
//! the four formats (golden files), the audit entry, and the worked bank example.
//!
//! The fixture's traffic, and what the fixture policy does with it (reasoned from the YAML):
//! - channels/web -> payments/pay TCP 8443, 7 flows: allowed by `web-to-pay` (still allowed);
//! - channels/web -> ledger/db TCP 5432, 3 flows: ledger is enforced and no rule allows it
//!   (newly blocked, against no policy);
//! - marketing/mkt -> channels/web TCP 9000, 2 flows: both segments observe and no rule allows
//!   it (would block; not counted toward --max-blocked).
//!
//! So 12 flows in the window, 3 newly blocked. `channels-never-reach-payments` is violated (the
//! 8443 allow) and `marketing-never-reaches-ledger` holds (ledger denies by default).

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

fn p(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
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

const POLICY: &str = "crates/cli/tests/intent/plan";

const INVENTORY: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: channels
    labels: {app: web, segment: channels}
    ownerReferences: [{kind: ReplicaSet, name: web, controller: true}]
  status: {phase: Running, podIP: 10.0.0.1, startTime: "2026-01-01T00:00:00Z"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: pay-1
    namespace: payments
    labels: {app: pay, segment: payments}
    ownerReferences: [{kind: ReplicaSet, name: pay, controller: true}]
  status: {phase: Running, podIP: 10.0.0.2, startTime: "2026-01-01T00:00:00Z"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: db-1
    namespace: ledger
    labels: {app: db, segment: ledger}
    ownerReferences: [{kind: ReplicaSet, name: db, controller: true}]
  status: {phase: Running, podIP: 10.0.0.3, startTime: "2026-01-01T00:00:00Z"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: mkt-1
    namespace: marketing
    labels: {app: mkt, segment: marketing}
    ownerReferences: [{kind: ReplicaSet, name: mkt, controller: true}]
  status: {phase: Running, podIP: 10.0.0.4, startTime: "2026-01-01T00:00:00Z"}
"#;

/// One Hubble flow (a new connection: its own source port).
fn hubble(minute: u32, src: &str, sport: u16, dst: &str, dport: u16) -> String {
    let time = format!("2026-01-01T00:{minute:02}:00Z");
    format!(
        r#"{{"flow":{{"time":"{time}","verdict":"FORWARDED","IP":{{"source":"{src}","destination":"{dst}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{sport},"destination_port":{dport}}}}},"Type":"L3_L4","is_reply":false}},"time":"{time}"}}"#
    ) + "\n"
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    inventory: PathBuf,
}

/// The inventory, the 12 flows, ingested into `data`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let inventory = root.join("pods.yaml");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let mut flows = String::new();
    let mut sport = 40000;
    for (n, src, dst, port) in [
        (7, "10.0.0.1", "10.0.0.2", 8443),
        (3, "10.0.0.1", "10.0.0.3", 5432),
        (2, "10.0.0.4", "10.0.0.1", 9000),
    ] {
        for k in 0..n {
            flows.push_str(&hubble(k, src, sport, dst, port));
            sport += 1;
        }
    }
    let f = root.join("flows.json");
    std::fs::write(&f, flows).unwrap();
    let data = root.join("data");
    let o = bulkhead(&[
        "ingest",
        p(&f),
        "--inventory",
        p(&inventory),
        "--data-dir",
        p(&data),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Fixture {
        _dir: dir,
        root,
        data,
        inventory,
    }
}

impl Fixture {
    /// A policy directory: the fixture's segments and policy, with `invariants` (YAML) instead
    /// of the fixture's invariants, and `extra` files.
    fn policy(&self, name: &str, invariants: &str, extra: &[(&str, &str)]) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["segments.yaml", "policy.yaml"] {
            std::fs::copy(repo().join(POLICY).join(f), d.join(f)).unwrap();
        }
        std::fs::write(d.join("invariants.yaml"), invariants).unwrap();
        for (f, text) in extra {
            std::fs::write(d.join(f), text).unwrap();
        }
        d
    }

    /// The fixture policy with only the invariant that holds.
    fn holding(&self) -> PathBuf {
        self.policy("holding", HOLDS, &[])
    }

    /// `plan --format json` with the fixture's store and inventory, no audit record.
    fn plan(&self, policy: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut a = vec![
            "plan",
            "--policy",
            policy,
            "--data-dir",
            p(&self.data),
            "--inventory",
            p(&self.inventory),
            "--format",
            "json",
        ];
        if !extra.contains(&"--record") {
            a.push("--no-record");
        }
        a.extend(extra.iter().filter(|x| **x != "--record"));
        let o = bulkhead(&a);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                stdout(&o),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        assert_eq!(o.status.code(), v["exit_code"].as_i64().map(|c| c as i32));
        (o.status.code(), v)
    }
}

const HOLDS: &str = "apiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {name: marketing-never-reaches-ledger}\nspec:\n  never:\n    from: [{segment: marketing}]\n    to: [{segment: ledger}]\n";

const BROKEN: &str = "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: broken}\nspec:\n  tier: application\n  rules:\n    - acton: allow\n";

fn conditions(v: &serde_json::Value) -> Vec<i64> {
    v["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["exit_code"].as_i64().unwrap())
        .collect()
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f["kind"].as_str().unwrap(),
                f["code"].as_str().unwrap()
            )
        })
        .collect()
}

fn has(v: &serde_json::Value, code: &str) -> bool {
    codes(v).iter().any(|c| c == code)
}

#[test]
fn each_exit_code_alone() {
    let fx = fixture();
    let holding = fx.holding();
    // 0: nothing violated, the 3 newly blocked flows within a budget of 3.
    let (code, v) = fx.plan(p(&holding), &["--max-blocked", "3"]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["status"], "safe");
    assert!(conditions(&v).is_empty());
    assert_eq!(v["steps"]["simulate"]["flows"], 12, "{v:#}");
    assert_eq!(
        v["steps"]["simulate"]["classes"]["newly_blocked"]["flows"],
        3
    );
    assert_eq!(v["steps"]["simulate"]["classes"]["would_block"]["flows"], 2);
    assert_eq!(v["steps"]["verify"]["violated"], 0);
    // Within budget, the blocked traffic is still reported (a warning at the deciding place).
    assert!(has(&v, "blocked/newly-blocked"), "{v:#}");
    assert!(has(&v, "blocked/would-block"), "{v:#}");
    assert!(has(&v, "lint/redundant-rule"), "{v:#}");
    // 1: the fixture's violated invariant, budget kept.
    let (code, v) = fx.plan(POLICY, &["--max-blocked", "3"]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(conditions(&v), [1]);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "invariant-violated")
        .unwrap();
    assert_eq!(
        f["location"], "crates/cli/tests/intent/plan/invariants.yaml:13:18",
        "the loader places an invariant at its name (the second's is on line 13): {f:#}"
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("channels/web -> payments/pay TCP 8443"),
        "{f:#}"
    );
    // 2: nothing violated, default budget 0.
    let (code, v) = fx.plan(p(&holding), &[]);
    assert_eq!(code, Some(2), "{v:#}");
    assert_eq!(v["status"], "blocked-traffic");
    assert!(has(&v, "blocked/blocked-budget"));
    // 3: a lint error; verification and simulation are skipped, never run as "allow all".
    let broken = fx.policy("broken", HOLDS, &[("broken.yaml", BROKEN)]);
    let (code, v) = fx.plan(p(&broken), &["--max-blocked", "100%"]);
    assert_eq!(code, Some(3), "{v:#}");
    assert!(has(&v, "lint/unknown-field"), "{v:#}");
    assert_eq!(v["steps"]["verify"]["status"], "skipped");
    assert_eq!(v["steps"]["verify"]["reason"], "the policy has errors");
    assert_eq!(v["steps"]["simulate"]["status"], "skipped");
    assert!(
        codes(&v).iter().filter(|c| c.ends_with("/skipped")).count() == 2,
        "{v:#}"
    );
    // 3: an unreadable policy directory.
    let (code, v) = fx.plan("no/such/policy", &[]);
    assert_eq!(code, Some(3));
    assert!(has(&v, "input/unreadable-policy"), "{v:#}");
    assert_eq!(v["steps"]["lint"]["status"], "skipped");
    // 3: a missing store (an empty data directory), and a window with no traffic.
    let empty = fx.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = bulkhead(&[
        "plan",
        "--policy",
        p(&holding),
        "--data-dir",
        p(&empty),
        "--no-record",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("no store here"), "{}", stdout(&o));
    let (code, v) = fx.plan(
        p(&holding),
        &["--window", "2020-01-01T00:00:00Z..2020-01-02T00:00:00Z"],
    );
    assert_eq!(code, Some(3));
    assert!(has(&v, "input/no-traffic"), "{v:#}");
}

#[test]
fn bad_input_is_an_input_error_never_a_crash_nor_allow_all() {
    let fx = fixture();
    let dir = |name: &str, files: &[(&str, &[u8])]| {
        let d = fx.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (f, bytes) in files {
            std::fs::write(d.join(f), bytes).unwrap();
        }
        d
    };
    // The fixture's policy cut inside its first rule's action (`action: al`).
    let whole = std::fs::read_to_string(repo().join(POLICY).join("policy.yaml")).unwrap();
    let cut = whole.find("action: allow").unwrap() + "action: al".len();
    let truncated = &whole.as_bytes()[..cut];
    let cases: Vec<(PathBuf, &str, &str)> = vec![
        (
            dir("empty", &[]),
            "input/no-resources",
            "an empty directory is not an empty policy",
        ),
        (
            dir("readme-only", &[("README.md", b"# policy\n")]),
            "input/no-resources",
            "no YAML files",
        ),
        (
            dir(
                "latin1",
                &[("p.yaml", b"kind: Policy\nmetadata: {name: caf\xe9}\n")],
            ),
            "lint/not-utf8",
            "not UTF-8",
        ),
        (
            dir("garbage", &[("p.yaml", b"\x00\x01{{[[: :\n\t- ]]")]),
            "lint/yaml",
            "binary garbage",
        ),
        (
            dir("truncated", &[("policy.yaml", truncated)]),
            "lint/",
            "a file cut in the middle: partly read",
        ),
    ];
    for (policy, code, why) in &cases {
        let (exit, v) = fx.plan(p(policy), &["--max-blocked", "100%"]);
        assert_eq!(exit, Some(3), "{why}: {v:#}");
        assert!(
            codes(&v).iter().any(|c| c.starts_with(code)),
            "{why}: {code} expected in {:?}",
            codes(&v)
        );
        assert_eq!(v["steps"]["simulate"]["status"], "skipped", "{why}");
        assert_eq!(v["steps"]["verify"]["status"], "skipped", "{why}");
    }
    // A store that is not one, and a window that does not parse.
    let junk = dir("junk-store", &[("bulkhead.redb", b"not a database at all")]);
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--data-dir",
        p(&junk),
        "--inventory",
        p(&fx.inventory),
        "--format",
        "json",
        "--no-record",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o.status.code(), Some(3), "{v:#}");
    assert!(has(&v, "input/no-store"), "{:?}", codes(&v));
    let (exit, v) = fx.plan(POLICY, &["--window", "yesterday..today"]);
    assert_eq!(exit, Some(3));
    assert!(has(&v, "input/unreadable-traffic"), "{:?}", codes(&v));
}

#[test]
fn reports_of_a_broken_policy_are_well_formed() {
    let fx = fixture();
    // A message with every character XML and JSON must escape, in a lint error.
    let nasty = "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: nasty}\nspec:\n  tier: application\n  rules:\n    - \"a<b>&'\\\"c\": allow\n";
    let broken = fx.policy("nasty", HOLDS, &[("nasty.yaml", nasty)]);
    let run = |format: &str| {
        let o = bulkhead(&[
            "plan",
            "--policy",
            p(&broken),
            "--data-dir",
            p(&fx.data),
            "--inventory",
            p(&fx.inventory),
            "--format",
            format,
            "--no-record",
        ]);
        assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
        stdout(&o)
    };
    let xml = run("junit");
    let root = parse_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suite = |name: &str| {
        root.children
            .iter()
            .find(|s| s.attr("name") == name)
            .unwrap()
    };
    let unknown_field = suite("lint")
        .children
        .iter()
        .find(|c| c.attr("name") == "unknown-field")
        .unwrap();
    assert!(
        unknown_field.children.iter().any(|x| x.name == "failure"),
        "{xml}"
    );
    for step in ["verify", "simulate"] {
        let cases = &suite(step).children;
        assert_eq!(cases.len(), 1, "{xml}");
        assert!(
            cases[0].children.iter().any(|x| x.name == "skipped"),
            "{xml}"
        );
        assert_eq!(suite(step).attr("skipped"), "1");
    }
    let s: serde_json::Value = serde_json::from_str(&run("sarif")).unwrap();
    let results = s["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "lint/unknown-field"
        && r["message"]["text"].as_str().unwrap().contains("a<b>&'\"c")));
    // Code scanning refuses a result without a location: the skipped steps point at the
    // policy's first file.
    for r in results {
        assert!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .is_some_and(|u| u.ends_with(".yaml")),
            "{r:#}"
        );
    }
}

#[test]
fn precedence_lists_every_condition() {
    let fx = fixture();
    // 3 and 1: a missing store, and the violated invariant (verified over the inventory).
    let empty = fx.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--data-dir",
        p(&empty),
        "--inventory",
        p(&fx.inventory),
        "--format",
        "json",
        "--no-record",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o.status.code(), Some(3), "{v:#}");
    assert_eq!(conditions(&v), [3, 1], "{v:#}");
    assert!(has(&v, "input/no-store") && has(&v, "invariant/invariant-violated"));
    // 3 and 1: a broken baseline; the policy is still verified, the simulation has nothing to
    // compare with.
    let baseline = fx.policy("broken-baseline", HOLDS, &[("broken.yaml", BROKEN)]);
    let (code, v) = fx.plan(POLICY, &["--baseline", p(&baseline)]);
    assert_eq!(code, Some(3), "{v:#}");
    assert_eq!(conditions(&v), [3, 1]);
    let lint_err = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unknown-field")
        .unwrap();
    assert!(
        lint_err["message"]
            .as_str()
            .unwrap()
            .starts_with("baseline: ")
    );
    assert!(
        lint_err["location"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml:7:7"),
        "{lint_err:#}"
    );
    assert_eq!(v["steps"]["simulate"]["status"], "skipped");
    // 1 and 2: the fixture as it is.
    let (code, v) = fx.plan(POLICY, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(conditions(&v), [1, 2]);
    assert!(has(&v, "invariant/invariant-violated") && has(&v, "blocked/blocked-budget"));
    // An empty baseline is no Bulkhead policy (the default, and the stricter comparison): the
    // same conditions as without one, and a note says so.
    let (code, v) = fx.plan(POLICY, &["--baseline", p(&empty)]);
    assert_eq!((code, conditions(&v)), (Some(1), vec![1, 2]), "{v:#}");
    assert!(has(&v, "lint/empty-baseline"));
    assert_eq!(
        v["steps"]["simulate"]["classes"]["newly_blocked"]["flows"],
        3
    );
    // A baseline equal to the policy blocks nothing new: only 1 is left.
    let (code, v) = fx.plan(POLICY, &["--baseline", POLICY]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(conditions(&v), [1]);
    assert_eq!(
        v["steps"]["simulate"]["classes"]["still_blocked"]["flows"],
        3
    );
}

#[test]
fn max_blocked_boundary() {
    let fx = fixture();
    let holding = fx.holding();
    // 3 of 12 flows are newly blocked: exactly at the budget passes, one flow less fails.
    let cases: &[(&str, i32, &str)] = &[
        ("3", 0, "a budget of exactly 3 flows"),
        ("2", 2, "one flow over"),
        ("25%", 0, "25 % of 12 flows is exactly 3"),
        ("24.99%", 2, "24.99 % of 12 is 2.9988: 3 is over"),
        ("100%", 0, "everything"),
    ];
    for (budget, want, why) in cases {
        let (code, v) = fx.plan(p(&holding), &["--max-blocked", budget]);
        assert_eq!(code, Some(*want), "--max-blocked {budget}: {why}\n{v:#}");
        assert_eq!(v["steps"]["simulate"]["budget"]["max_blocked"], *budget);
    }
    // Bad budgets are usage errors, before anything runs.
    let o = bulkhead(&["plan", "--policy", POLICY, "--max-blocked", "150%"]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
}

#[test]
fn no_traffic_lints_and_verifies_only() {
    let fx = fixture();
    let (code, v) = fx.plan(POLICY, &["--no-traffic"]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["steps"]["simulate"]["reason"], "--no-traffic");
    // Without an inventory nor a store there is nothing to verify the invariants over.
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--no-traffic",
        "--no-record",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o.status.code(), Some(3), "{v:#}");
    assert!(has(&v, "input/no-identities"));
    // Without an inventory, with a store: the store's workloads (with their recorded labels).
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--data-dir",
        p(&fx.data),
        "--no-record",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    assert_eq!(v["steps"]["verify"]["identities_from"], "store");
    assert_eq!(v["steps"]["verify"]["identities"], 4);
}

#[test]
fn formats_on_the_fixture() {
    let fx = fixture();
    let run = |format: &str| {
        let o = bulkhead(&[
            "plan",
            "--policy",
            POLICY,
            "--data-dir",
            p(&fx.data),
            "--inventory",
            p(&fx.inventory),
            "--format",
            format,
            "--no-record",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        stdout(&o)
    };
    let text = run("text");
    assert!(
        text.contains(
            "crates/cli/tests/intent/plan/policy.yaml:15:7: warning[lint/redundant-rule]"
        ),
        "{text}"
    );
    // No rule decides web -> db: the place is the segment that enforces at db's ingress,
    // `ledger` (segments.yaml line 19, its name).
    assert!(
        text.contains(
            "crates/cli/tests/intent/plan/segments.yaml:19:18: warning[blocked/newly-blocked]"
        ),
        "{text}"
    );
    // Five findings: the redundant rule (warning), the violated invariant, the newly blocked
    // group (web -> db), the would-block group (mkt -> web) and the exceeded budget.
    assert!(
        text.ends_with("plan: exit 1 (invariant-violated); also blocked-traffic; 5 findings\n"),
        "{text}"
    );
    golden("plan.txt", &text);
    let json = run("json");
    golden("plan.json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema"], "bulkhead.plan/v1");
    for f in v["findings"].as_array().unwrap() {
        for k in ["kind", "code", "severity", "message", "location", "details"] {
            assert!(f.get(k).is_some(), "{k} missing in {f:#}");
        }
    }
    // JUnit: well-formed XML, a suite per step, a case per lint code, per invariant, and the
    // budget.
    let xml = run("junit");
    golden("plan.junit.xml", &xml);
    let root = parse_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(root.name, "testsuites");
    let suites: Vec<&str> = root.children.iter().map(|s| s.attr("name")).collect();
    assert_eq!(suites, ["inputs", "lint", "verify", "simulate"]);
    let verify = &root.children[2];
    let cases: Vec<(&str, bool)> = verify
        .children
        .iter()
        .map(|c| {
            (
                c.attr("name"),
                c.children.iter().any(|x| x.name == "failure"),
            )
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("marketing-never-reaches-ledger", false),
            ("channels-never-reach-payments", true)
        ]
    );
    let budget = &root.children[3].children[0];
    assert_eq!(budget.attr("name"), "blocked-traffic budget");
    assert!(budget.children.iter().any(|x| x.name == "failure"));
    let lint = &root.children[1];
    assert!(lint.children.len() >= 20, "a case per lint code");
    assert!(
        lint.children
            .iter()
            .all(|c| !c.children.iter().any(|x| x.name == "failure"))
    );
    let failures: usize = root.attr("failures").parse().unwrap();
    assert_eq!(failures, 2, "the invariant and the budget");
    // SARIF 2.1.0: the fields code scanning requires.
    let sarif = run("sarif");
    golden("plan.sarif.json", &sarif);
    let s: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert!(s["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run0 = &s["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "bulkhead");
    let rules: Vec<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in run0["results"].as_array().unwrap() {
        let id = r["ruleId"].as_str().unwrap();
        assert_eq!(rules[r["ruleIndex"].as_u64().unwrap() as usize], id);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("crates/cli/tests/intent/plan/"),
            "relative to the repository: {uri}"
        );
        if let Some(line) = loc["region"]["startLine"].as_u64() {
            assert!(line >= 1);
        }
    }
    let violated = run0["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "invariant/invariant-violated")
        .unwrap();
    assert_eq!(violated["level"], "error");
    assert_eq!(
        violated["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 13, "startColumn": 18})
    );
    // --out writes the report there; the verdict goes to standard error.
    let out = fx.root.join("report.sarif");
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--data-dir",
        p(&fx.data),
        "--inventory",
        p(&fx.inventory),
        "--format",
        "sarif",
        "--out",
        p(&out),
        "--no-record",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), sarif);
    assert!(String::from_utf8_lossy(&o.stderr).contains("plan: exit 1 (invariant-violated)"));
}

#[test]
fn each_plan_is_recorded_in_the_audit_log() {
    use sha2::{Digest, Sha256};
    let fx = fixture();
    let (code, _) = fx.plan(POLICY, &["--record", "--reason", "CHG-1234"]);
    assert_eq!(code, Some(1));
    let (code, v) = fx.plan(
        POLICY,
        &["--record", "--baseline", POLICY, "--max-blocked", "1"],
    );
    assert_eq!(code, Some(1));
    let n = v["findings"].as_array().unwrap().len();
    let o = bulkhead(&[
        "audit",
        "log",
        "--data-dir",
        p(&fx.data),
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    let entries: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "policy.plan")
        .collect();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    // The policy's digest, as docs/audit.md defines a directory's: every file in relative-path
    // order, each as path, NUL, length (u64 big-endian), bytes.
    let mut files: Vec<String> = std::fs::read_dir(repo().join(POLICY))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        let b = std::fs::read(repo().join(POLICY).join(f)).unwrap();
        h.update(f.as_bytes());
        h.update([0]);
        h.update((b.len() as u64).to_be_bytes());
        h.update(&b);
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let digest = format!("sha256:{digest}");
    assert_eq!(entries[0]["object"], format!("policy:{POLICY}"));
    assert_eq!(entries[0]["reason"], "CHG-1234");
    assert_eq!(entries[0]["after"], digest.as_str());
    assert!(
        entries[0].get("before").is_none_or(|b| b.is_null()),
        "no baseline: {:#}",
        entries[0]
    );
    assert_eq!(entries[1]["reason"], format!("plan: exit 1 ({n} findings)"));
    assert_eq!(
        entries[1]["before"],
        digest.as_str(),
        "the baseline is the same tree"
    );
    let o = bulkhead(&["audit", "verify", "--data-dir", p(&fx.data)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // --no-record leaves the log alone; a data directory that does not exist is not created.
    let (_, _) = fx.plan(POLICY, &[]);
    let o = bulkhead(&[
        "audit",
        "log",
        "--data-dir",
        p(&fx.data),
        "--format",
        "json",
    ]);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.contains("policy.plan"))
            .count(),
        2
    );
    let nowhere = fx.root.join("nowhere");
    let o = bulkhead(&[
        "plan",
        "--policy",
        POLICY,
        "--data-dir",
        p(&nowhere),
        "--no-traffic",
        "--inventory",
        p(&fx.inventory),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("not-recorded"), "{}", stdout(&o));
    assert!(!nowhere.exists());
}

#[test]
fn the_bank_example_over_a_simulated_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = dir.path().join("bank");
    let data = dir.path().join("data");
    let o = bulkhead(&[
        "simulate-bank",
        "--out",
        p(&bank),
        "--days",
        "1",
        "--rate",
        "0.01",
    ]);
    assert!(o.status.success());
    let mut args: Vec<String> = ["ingest", "--quiet", "--data-dir", p(&data), "--inventory"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(p(&bank.join("inventory")).into());
    args.push("--hosts".into());
    args.push(p(&bank.join("hosts.csv")).into());
    for f in ["hubble", "vpc", "zeek"] {
        for e in std::fs::read_dir(bank.join("flows").join(f)).unwrap() {
            args.push(p(&e.unwrap().path()).into());
        }
    }
    let o = bulkhead(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success());
    let (inv, hosts) = (bank.join("inventory"), bank.join("hosts.csv"));
    let plan = |extra: &[&str]| {
        let mut a = vec![
            "plan",
            "--policy",
            "examples/intent/bank",
            "--data-dir",
            p(&data),
            "--inventory",
            p(&inv),
            "--hosts",
            p(&hosts),
            "--format",
            "json",
        ];
        a.extend(extra);
        let o = bulkhead(&a);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        (o.status.code(), v)
    };
    // tests/verify.rs reasons out the two violated invariants; tests/simulate.rs the
    // monitoring scrapes of the HSMs that `hsm-only-from-cards` newly blocks.
    let (code, v) = plan(&[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(conditions(&v), [1, 2]);
    assert_eq!(v["steps"]["verify"]["violated"], 2);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "newly-blocked"
                && f["details"]["rule"]["name"] == "hsm-only-from-cards")
    );
    // The bank policy against itself blocks nothing new.
    let (code, v) = plan(&["--baseline", "examples/intent/bank", "--no-record"]);
    assert_eq!(code, Some(1));
    assert_eq!(conditions(&v), [1]);
    assert_eq!(
        v["steps"]["simulate"]["classes"]["newly_blocked"]["edges"],
        0
    );
    let o = bulkhead(&["audit", "verify", "--data-dir", p(&data)]);
    assert_eq!(o.status.code(), Some(0));
}

/// A minimal XML reader for the JUnit test: elements, attributes (quoted), text, the five
/// predefined entities and character references; anything else is an error. Enough to prove
/// the report is well formed and to walk its structure.
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Elem>,
}

impl Elem {
    fn attr(&self, k: &str) -> &str {
        self.attrs
            .iter()
            .find(|a| a.0 == k)
            .map(|a| a.1.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {k}", self.name))
    }
}

fn check_text(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find('&') {
        let end = rest[i..].find(';').ok_or("unterminated entity")? + i;
        let ent = &rest[i + 1..end];
        let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
            || ent
                .strip_prefix("#x")
                .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
            || ent
                .strip_prefix('#')
                .is_some_and(|d| d.parse::<u32>().is_ok());
        if !ok {
            return Err(format!("unknown entity &{ent};"));
        }
        rest = &rest[end + 1..];
    }
    if t.contains('<') {
        return Err("raw < in text".into());
    }
    if t.chars()
        .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err("control character".into());
    }
    Ok(())
}

fn parse_xml(s: &str) -> Result<Elem, String> {
    let s = s
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .ok_or("no XML declaration")?;
    let mut stack: Vec<Elem> = Vec::new();
    let mut root = None;
    let mut rest = s;
    loop {
        let Some(i) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err("text after the root".into());
            }
            break;
        };
        let text = &rest[..i];
        check_text(text)?;
        if stack.is_empty() && !text.trim().is_empty() {
            return Err("text outside the root".into());
        }
        let end = rest[i..].find('>').ok_or("unterminated tag")? + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let e = stack.pop().ok_or("close without open")?;
            if e.name != name {
                return Err(format!("</{name}> closes <{}>", e.name));
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(e),
                None if root.is_none() => root = Some(e),
                None => return Err("two roots".into()),
            }
            continue;
        }
        let (body, empty) = match tag.strip_suffix('/') {
            Some(b) => (b, true),
            None => (tag, false),
        };
        let (name, mut attrs_text) = body.split_once(' ').unwrap_or((body, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad element name {name:?}"));
        }
        let mut attrs = Vec::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let (k, v) = attrs_text
                .split_once("=\"")
                .ok_or("attribute without a quoted value")?;
            let close = v.find('"').ok_or("unterminated attribute")?;
            check_text(&v[..close])?;
            if attrs.iter().any(|(a, _): &(String, String)| a == k) {
                return Err(format!("duplicate attribute {k}"));
            }
            attrs.push((k.to_string(), v[..close].to_string()));
            attrs_text = &v[close + 1..];
        }
        let e = Elem {
            name: name.to_string(),
            attrs,
            children: Vec::new(),
        };
        if empty {
            match stack.last_mut() {
                Some(parent) => parent.children.push(e),
                None => return Err("empty root".into()),
            }
        } else {
            stack.push(e);
        }
    }
    if !stack.is_empty() {
        return Err(format!("<{}> not closed", stack[stack.len() - 1].name));
    }
    root.ok_or_else(|| "no root".to_string())
}

#[test]
fn the_xml_checker_refuses_broken_xml() {
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    let cases: &[(&str, bool, &str)] = &[
        ("<a x=\"1\"><b/></a>", true, "well formed"),
        ("<a><b></a>", false, "unclosed child"),
        ("<a>x < y</a>", false, "raw <"),
        ("<a>x & y</a>", false, "raw &"),
        ("<a x=\"a\"b\"/>", false, "quote in attribute"),
        ("<a>&bogus;</a>", false, "unknown entity"),
        ("<a>&amp;&#65;&#x41;</a>", true, "entities"),
        ("<a/><b/>", false, "two roots"),
    ];
    for (x, ok, why) in cases {
        assert_eq!(parse_xml(&format!("{head}{x}")).is_ok(), *ok, "{why}: {x}");
    }
}
