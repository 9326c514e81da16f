//! Quarantine on the kernel: `bulkhead agent` runs for a host in a network namespace, then
//! `bulkhead quarantine` isolates that host and `bulkhead release` (or the expiry) lifts it. The
//! quarantine must win over every application allow while the management segment keeps its
//! access, and releasing must restore exactly what was allowed before. Needs root; skipped with
//! a message otherwise.

mod agent_lab;
#[path = "../../nft/tests/common/netns.rs"]
mod netns;

use agent_lab::{Running, audit_actions_of};
use netns::Lab;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

macro_rules! need_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: quarantine kernel tests need root (network namespaces and nft)");
            return;
        }
    };
}

/// web is enforced; anything from 10.0.0.0/8 may reach it on TCP 8080 and 443 (an application
/// allow the quarantine must beat); mgmt is the management segment (label
/// `bulkhead.dev/access: management`) that keeps access to quarantined workloads.
const POLICY: &str = "apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  hostSelector: {matchLabels: {segment: web}}
  mode: enforce
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata:
  name: mgmt
  labels: {bulkhead.dev/access: management}
spec:
  hostSelector: {matchLabels: {segment: mgmt}}
  mode: observe
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
      ports: [{protocol: TCP, port: 8080}, {protocol: TCP, port: 443}]
    - name: web-to-clients
      action: allow
      from: [{segment: web}]
      to: [{cidr: 10.0.0.0/8}]
      ports: [{protocol: TCP, port: 80}]
";

struct Setup {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    hosts: PathBuf,
    data: PathBuf,
}

/// h0 `client-1` (no segment), h1 `web-1` (web), h2 `admin-1` (mgmt).
fn setup(lab: &Lab) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::write(policy.join("policy.yaml"), POLICY).unwrap();
    let hosts = dir.path().join("hosts.yaml");
    std::fs::write(
        &hosts,
        format!(
            "hosts:\n  - name: client-1\n    addresses: [{}]\n    labels: {{app: client}}\n  - name: web-1\n    addresses: [{}]\n    labels: {{segment: web}}\n  - name: admin-1\n    addresses: [{}]\n    labels: {{segment: mgmt}}\n",
            lab.v4[0], lab.v4[1], lab.v4[2]
        ),
    )
    .unwrap();
    Setup {
        data: dir.path().join("data"),
        _dir: dir,
        policy,
        hosts,
    }
}

fn bulkhead(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

fn start_agent(s: &Setup, ns: &str) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args(["agent", "--host", "web-1", "--policy"])
            .arg(&s.policy)
            .arg("--hosts")
            .arg(&s.hosts)
            .args(["--netns", ns, "--data-dir"])
            .arg(&s.data)
            .args(["--interval", "100", "--drift-interval", "500"])
            .stdout(std::fs::File::create(s.data.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(s.data.with_extension("err")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `agent.apply` entries recorded so far (the agent records each apply after verifying it).
fn applies(s: &Setup) -> usize {
    audit_actions_of(&s.data, false)
        .iter()
        .filter(|a| *a == "agent.apply")
        .count()
}

fn wait_for_applies(s: &Setup, n: usize, what: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        if applies(s) >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(s.data.with_extension("out")).unwrap_or_default()
        + &std::fs::read_to_string(s.data.with_extension("err")).unwrap_or_default();
    panic!("timed out waiting for {what} ({n} applies)\n{log}");
}

/// What the probes of the test see: client→web 8080, client→web 443, admin→web 8080,
/// web→client 80, web→admin 80.
fn probes(lab: &Lab) -> Vec<bool> {
    let v4 = |i: usize| IpAddr::V4(lab.v4[i]);
    lab.connects_all(&[
        (0, v4(1), false, 8080),
        (0, v4(1), false, 443),
        (2, v4(1), false, 8080),
        (1, v4(0), false, 80),
        (1, v4(2), false, 80),
    ])
}

#[test]
fn quarantine_wins_over_application_allows_on_the_kernel_and_release_restores() {
    need_root!();
    let lab = Lab::new(3);
    let s = setup(&lab);
    let _agent = start_agent(&s, &lab.hosts[1]);
    wait_for_applies(&s, 1, "the first apply");
    let before = probes(&lab);
    // Reasoned from the policy: the application allows every probe (clients in 10/8 reach web
    // on 8080 and 443; web reaches 10/8 on 80).
    assert_eq!(before, vec![true; 5], "before the quarantine");

    let q = ok(bulkhead(
        &[
            "quarantine",
            "web-1",
            "--reason",
            "suspected lateral movement",
        ],
        &[
            ("--policy", &s.policy),
            ("--hosts", &s.hosts),
            ("--data-dir", &s.data),
        ],
    ));
    assert!(q.contains("web-1"), "{q}");
    wait_for_applies(&s, 2, "the quarantine");
    // The quarantine's deny comes first: only the management segment keeps access, both ways.
    assert_eq!(
        probes(&lab),
        vec![false, false, true, false, true],
        "during the quarantine"
    );

    ok(bulkhead(
        &["release", "web-1", "--reason", "host reimaged"],
        &[("--policy", &s.policy), ("--data-dir", &s.data)],
    ));
    wait_for_applies(&s, 3, "the release");
    assert_eq!(probes(&lab), before, "after the release");

    // An expiring quarantine is lifted by itself: the agent notices the expiry though no file
    // changes.
    let t0 = Instant::now();
    ok(bulkhead(
        &[
            "quarantine",
            "web-1",
            "--expires",
            "6s",
            "--reason",
            "short",
        ],
        &[
            ("--policy", &s.policy),
            ("--hosts", &s.hosts),
            ("--data-dir", &s.data),
        ],
    ));
    wait_for_applies(&s, 4, "the expiring quarantine");
    let during = probes(&lab);
    // Only judged when the probes ended well before the expiry (a loaded machine may be slower).
    if t0.elapsed() < Duration::from_secs(5) {
        assert_eq!(
            during,
            vec![false, false, true, false, true],
            "before the expiry"
        );
    } else {
        eprintln!("note: probes ended after 5 s; the state before the expiry was not judged");
    }
    wait_for_applies(&s, 5, "the expiry");
    // `expires` is written in whole seconds: 6 s after the quarantine's second began.
    assert!(
        t0.elapsed() >= Duration::from_secs(5),
        "released {:?} after the quarantine, before it expired",
        t0.elapsed()
    );
    assert_eq!(probes(&lab), before, "after the expiry");
    drop(_agent);
    let verify = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("audit")
        .arg("--data-dir")
        .arg(&s.data)
        .arg("verify")
        .output()
        .unwrap();
    ok(verify);
}
