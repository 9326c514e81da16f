//! `bulkhead simulate-bank` end to end: files that `flows parse` reads, and a stream on stdout.

use std::process::Command;

fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

#[test]
fn writes_files_and_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bulkhead()
        .args(["simulate-bank", "--workloads", "20", "--days", "1"])
        .args(["--rate", "0.05", "--attacks", "--out"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("\"flows\":"),
        "summary on stderr: {summary}"
    );
    for f in ["ground-truth.json", "hosts.csv", "inventory/pods.json"] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    let parse = bulkhead()
        .args(["flows", "parse"])
        .arg(dir.path().join("flows/hubble/day-01.jsonl"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&parse.stdout);
    assert!(
        parse.status.success() && text.contains(" 0 skipped"),
        "{text}"
    );

    let stream = bulkhead()
        .args(["simulate-bank", "--stream", "vpc", "--workloads", "20"])
        .args(["--days", "1", "--rate", "0.05"])
        .output()
        .expect("runs");
    assert!(stream.status.success());
    let text = String::from_utf8_lossy(&stream.stdout);
    assert!(text.starts_with("version account-id"), "VPC header first");
    assert!(text.lines().count() > 10);

    let none = bulkhead().args(["simulate-bank"]).output().expect("runs");
    assert!(
        !none.status.success(),
        "neither --out nor --stream is an error"
    );
}
