//! `bulkhead agent` end to end in network namespaces: apply and verify with a foreign table
//! present, a rejected apply keeping the previous ruleset, the lost policy source (keep and
//! fail-closed), drift repaired by the running agent, observe counters reported as "would
//! block", and every change in the audit log. Needs root; skipped with a message otherwise.

mod agent_lab;
#[path = "../../nft/tests/common/netns.rs"]
mod netns;

use agent_lab::{Running, audit_actions_of};
use bulkhead_nft::{ModeOverride, NormalForm};
use netns::Lab;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

macro_rules! need_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: agent tests need root (network namespaces and nft)");
            return;
        }
    };
}

const POLICY: &str = "apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  hostSelector: {matchLabels: {segment: web}}
  mode: MODE
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: web}
spec:
  tier: application
  rules:
    - name: clients
      action: allow
      from: [{cidr: 10.0.0.0/8}]
      to: [{segment: web}]
      ports: [{protocol: TCP, port: PORT}]
";

struct Setup {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    hosts: PathBuf,
    data: PathBuf,
}

/// h1 of the lab is `web-1` (segment web), h0 `client-1` (no segment).
fn setup(lab: &Lab, mode: &str, port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    let hosts = dir.path().join("hosts.yaml");
    std::fs::write(
        &hosts,
        format!(
            "hosts:\n  - name: client-1\n    addresses: [{}]\n    labels: {{app: client}}\n  - name: web-1\n    addresses: [{}]\n    labels: {{segment: web}}\n",
            lab.v4[0], lab.v4[1]
        ),
    )
    .unwrap();
    let s = Setup {
        data: dir.path().join("data"),
        _dir: dir,
        policy,
        hosts,
    };
    write_policy(&s, mode, port);
    s
}

fn write_policy(s: &Setup, mode: &str, port: u16) {
    std::fs::write(
        s.policy.join("policy.yaml"),
        POLICY
            .replace("MODE", mode)
            .replace("PORT", &port.to_string()),
    )
    .unwrap();
}

fn agent_cmd(s: &Setup, ns: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    c.args(["agent", "--host", "web-1", "--policy"])
        .arg(&s.policy)
        .arg("--hosts")
        .arg(&s.hosts)
        .args(["--netns", ns, "--data-dir"])
        .arg(&s.data)
        .args(extra);
    c
}

fn once(s: &Setup, ns: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--once"];
    args.extend_from_slice(extra);
    agent_cmd(s, ns, &args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn audit_actions(data: &Path) -> Vec<String> {
    audit_actions_of(data, true)
}

fn compiled(s: &Setup) -> NormalForm {
    let inv: Vec<bulkhead_intent::Identity> = bulkhead_identity::load_hosts(&s.hosts)
        .unwrap()
        .into_iter()
        .map(|h| {
            bulkhead_intent::Identity::host(
                &h.name,
                h.labels.into_iter().collect(),
                h.addresses.iter().map(|n| n.addr()).collect(),
            )
        })
        .collect();
    let l = bulkhead_intent::load_paths(&[&s.policy]);
    assert!(!l.has_errors());
    let opts = bulkhead_compile::Options {
        inventory: inv,
        ..Default::default()
    };
    NormalForm::of(
        &bulkhead_nft::compile_host(&l.intent, &opts, "web-1", ModeOverride::Segments).unwrap(),
    )
}

#[test]
fn once_applies_verifies_keeps_foreign_tables_and_audits() {
    need_root!();
    let lab = Lab::new(2);
    let s = setup(&lab, "enforce", 8080);
    let foreign = "table ip foreign {\n\tchain c {\n\t\ttype filter hook input priority 5; policy accept;\n\t\ttcp dport 9 counter accept\n\t}\n}\n";
    lab.nft(1).apply_text(foreign).unwrap();
    let before = lab
        .nft(1)
        .run(&["list", "table", "ip", "foreign"], None)
        .unwrap();
    let o = once(&s, &lab.hosts[1], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("agent: applied"), "{}", text(&o));
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(compiled(&s)));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    assert!(!lab.connects(0, IpAddr::V4(lab.v4[1]), false, 80));
    let after = lab
        .nft(1)
        .run(&["list", "table", "ip", "foreign"], None)
        .unwrap();
    assert_eq!(before, after, "the foreign table is untouched");
    // Again: already in place, nothing applied or recorded.
    let o = once(&s, &lab.hosts[1], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("agent: in place"), "{}", text(&o));
    assert_eq!(audit_actions(&s.data), vec!["agent.apply"]);
}

#[test]
fn a_rejected_apply_keeps_the_previous_ruleset_and_is_recorded() {
    need_root!();
    let lab = Lab::new(2);
    let s = setup(&lab, "enforce", 8080);
    assert_eq!(once(&s, &lab.hosts[1], &[]).status.code(), Some(0));
    let first = compiled(&s);
    write_policy(&s, "enforce", 443);
    let o = agent_cmd(&s, &lab.hosts[1], &["--once"])
        .env("BULKHEAD_AGENT_FAULT", "commit")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("previous ruleset kept"), "{}", text(&o));
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(first));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    assert!(!lab.connects(0, IpAddr::V4(lab.v4[1]), false, 443));
    // Without the fault the change goes in.
    assert_eq!(once(&s, &lab.hosts[1], &[]).status.code(), Some(0));
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(compiled(&s)));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 443));
    assert_eq!(
        audit_actions(&s.data),
        vec!["agent.apply", "agent.failure", "agent.apply"]
    );
}

#[test]
fn a_lost_policy_source_keeps_the_ruleset_or_fails_closed() {
    need_root!();
    let lab = Lab::new(2);
    let s = setup(&lab, "enforce", 8080);
    assert_eq!(once(&s, &lab.hosts[1], &[]).status.code(), Some(0));
    let good = compiled(&s);
    // An invalid policy: exit 3, and with keep (the default) the table stays.
    std::fs::write(s.policy.join("policy.yaml"), "kind: Policy\nspec: [\n").unwrap();
    let o = once(&s, &lab.hosts[1], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("policy source lost"), "{}", text(&o));
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(good));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    // fail-closed: replies, loopback and management (TCP 22, none listens here) only.
    let o = once(&s, &lab.hosts[1], &["--on-loss", "fail-closed"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(
        lab.nft(1).read_back().unwrap(),
        Some(NormalForm::of(&bulkhead_nft::fail_closed("web-1", &[22])))
    );
    assert!(!lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    assert!(!lab.connects(1, IpAddr::V4(lab.v4[0]), false, 80));
    // A missing directory is a lost source too.
    let gone = Setup {
        policy: s.policy.join("missing"),
        hosts: s.hosts.clone(),
        data: s.data.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(once(&gone, &lab.hosts[1], &[]).status.code(), Some(3));
    let actions = audit_actions(&s.data);
    assert_eq!(
        actions,
        vec![
            "agent.apply",
            "agent.failure",
            "agent.failure",
            "agent.apply",
            "agent.failure"
        ]
    );
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_running_agent_repairs_drift_and_follows_policy_changes() {
    need_root!();
    let lab = Lab::new(2);
    let s = setup(&lab, "enforce", 8080);
    let _agent = Running(
        agent_cmd(
            &s,
            &lab.hosts[1],
            &["--interval", "100", "--drift-interval", "100"],
        )
        .stdout(std::fs::File::create(s.data.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(s.data.with_extension("err")).unwrap())
        .spawn()
        .unwrap(),
    );
    let nft = lab.nft(1);
    let want = compiled(&s);
    // The agent records each change after verifying it: tampering only once the record is
    // there keeps the test from racing the agent's own read-back.
    let records =
        |n: usize, what: &str| wait_until(what, || audit_actions_of(&s.data, false).len() >= n);
    records(1, "the first apply");
    assert_eq!(nft.read_back().unwrap(), Some(want.clone()));
    // Drift: someone flushes the base chain.
    nft.run(&["flush", "chain", "inet", "bulkhead", "input"], None)
        .unwrap();
    records(3, "the drift repair");
    assert_eq!(nft.read_back().unwrap(), Some(want.clone()));
    // Drift: someone deletes the table.
    nft.delete_table().unwrap();
    records(5, "the table back");
    assert_eq!(nft.read_back().unwrap(), Some(want.clone()));
    // A policy change.
    write_policy(&s, "enforce", 443);
    let next = compiled(&s);
    records(6, "the policy change");
    assert_eq!(nft.read_back().unwrap(), Some(next));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 443));
    drop(_agent);
    let actions = audit_actions(&s.data);
    let log = std::fs::read_to_string(s.data.with_extension("out")).unwrap()
        + &std::fs::read_to_string(s.data.with_extension("err")).unwrap();
    assert_eq!(
        actions,
        vec![
            "agent.apply",
            "agent.drift",
            "agent.apply",
            "agent.drift",
            "agent.apply",
            "agent.apply"
        ],
        "{log}"
    );
}

#[test]
fn observe_mode_reports_what_it_would_block() {
    need_root!();
    let lab = Lab::new(2);
    let s = setup(&lab, "enforce", 8080);
    // --mode observe overrides the enforced segment: nothing is dropped.
    let o = once(&s, &lab.hosts[1], &["--mode", "observe"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("would block: input"), "{}", text(&o));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 80));
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    let o = once(&s, &lab.hosts[1], &["--mode", "observe"]);
    let out = text(&o);
    assert!(out.contains("agent: in place"), "{out}");
    // Port 80 (no rule) counted once per packet of the new connection; 8080 is allowed.
    let line = out
        .lines()
        .find(|l| l.starts_with("would block: input default"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(": 1 packets"), "{line}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("would block: input"))
            .count(),
        1,
        "{out}"
    );
}
