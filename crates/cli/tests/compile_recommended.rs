//! Meaning preserved on the bank simulator's recommended policy: simulate the bank, ingest its
//! flows, `bulkhead recommend --mode enforce`, `bulkhead compile --target k8s` (both APIs), then
//! re-import the manifests with the Kubernetes engine and compare with the intent evaluator on
//! every workload pair and port boundary (the pods' sides: hosts' own sides are the nftables
//! target's).

#[path = "../../compile/tests/common/reimport.rs"]
mod reimport;

use bulkhead_intent::{Identity, load_paths};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
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

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The inventory's workloads and hosts as the compiler and the evaluator see them.
fn identities(inventory: &Path, hosts: &Path) -> Vec<Identity> {
    let loaded = bulkhead_k8s::Loaded::from_paths(&[inventory]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let c = &loaded.cluster;
    let mut ids = Vec::new();
    for w in &c.workloads {
        let mut id = Identity::workload(
            &w.namespace,
            &w.name,
            w.labels.clone(),
            c.ns_labels(&w.namespace).clone(),
        );
        id.named_ports = w.named_ports.clone();
        ids.push(id);
    }
    for h in bulkhead_identity::load_hosts(hosts).unwrap() {
        ids.push(Identity::host(
            &h.name,
            h.labels.into_iter().collect(),
            h.addresses.iter().map(|n| n.addr()).collect(),
        ));
    }
    ids
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_recommended_bank_policy_compiled_to_k8s_keeps_its_meaning_on_every_pair() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("bank");
    let data = dir.path().join("data");
    ok(&bulkhead(&[
        "simulate-bank",
        "--out",
        &s(&bank),
        "--days",
        "1",
        "--rate",
        "0.02",
        "--workloads",
        "120",
    ]));
    let mut files: Vec<String> = Vec::new();
    for f in ["hubble", "vpc", "zeek"] {
        for e in std::fs::read_dir(bank.join("flows").join(f)).unwrap() {
            files.push(s(&e.unwrap().path()));
        }
    }
    let (inv, hosts, d) = (bank.join("inventory"), bank.join("hosts.yaml"), s(&data));
    let (inv_s, hosts_s) = (s(&inv), s(&hosts));
    let mut args = vec!["ingest", "--quiet", "--data-dir", &d];
    args.extend(["--inventory", &inv_s, "--hosts", &hosts_s]);
    args.extend(files.iter().map(String::as_str));
    ok(&bulkhead(&args));
    let proposal: PathBuf = dir.path().join("proposal");
    ok(&bulkhead(&[
        "recommend",
        "--data-dir",
        &d,
        "--inventory",
        &inv_s,
        "--hosts",
        &hosts_s,
        "--mode",
        "enforce",
        "--out",
        &s(&proposal),
    ]));
    let loaded = load_paths(&[&proposal]);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let intent = loaded.intent;
    assert!(
        intent.policies.iter().map(|p| p.rules.len()).sum::<usize>() > 20,
        "a recommendation with rules"
    );
    let ids = identities(&inv, &hosts);
    for api in ["anp", "cnp"] {
        let out = dir.path().join(format!("k8s-{api}"));
        ok(&bulkhead(&[
            "compile",
            "--policy",
            &s(&proposal),
            "--target",
            "k8s",
            "--k8s-api",
            api,
            "--inventory",
            &inv_s,
            "--hosts",
            &hosts_s,
            "--out",
            &s(&out),
        ]));
        let compiled = read_dir(&out);
        assert!(!compiled.is_empty(), "{api}: nothing written");
        match reimport::compare_sides(&intent, &ids, &compiled, true) {
            Ok(pairs) => assert!(pairs > 1000, "{api}: only {pairs} pairs compared"),
            Err((bad, why)) => panic!("{api}: {why}\n{bad:#?}"),
        }
    }
}
