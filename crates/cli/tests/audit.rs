//! `bulkhead audit` end to end: record, log, show, prove, checkpoint, export, verify (with only
//! the public key, and with --since), rotate-key, and the exit codes of every kind of failure.

use std::path::Path;
use std::process::{Command, Output};

fn bulkhead(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("audit")
        .args(args)
        .current_dir(dir)
        .env("USER", "tester")
        .output()
        .expect("run bulkhead")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = bulkhead(dir, args);
    assert!(
        o.status.success(),
        "bulkhead audit {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let o = bulkhead(dir, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "bulkhead audit {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn record(dir: &Path, n: usize) {
    for i in 0..n {
        let obj = format!("policies/p{i}.yaml");
        let reason = format!("CHG-{i}");
        let out = ok(
            dir,
            &[
                "record",
                "--action",
                "policy.load",
                "--object",
                &obj,
                "--reason",
                &reason,
            ],
        );
        assert!(out.starts_with("recorded entry"), "{out}");
    }
}

#[test]
fn record_list_show_prove_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("after.yaml"), "kind: Policy\n").unwrap();
    ok(
        d,
        &[
            "record",
            "--action",
            "policy.apply",
            "--object",
            "payments/pci",
            "--reason",
            "CHG-7",
            "--actor",
            "alice",
            "--after-file",
            "after.yaml",
        ],
    );
    record(d, 3);
    let log = ok(d, &["log"]);
    assert_eq!(log.lines().count(), 4, "{log}");
    assert!(log.starts_with("#0 "), "{log}");
    assert!(
        log.contains("alice policy.apply payments/pci before=- after=sha256:"),
        "{log}"
    );
    let json = ok(
        d,
        &["log", "--format", "json", "--from", "1", "--limit", "2"],
    );
    assert_eq!(json.lines().count(), 2);
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["actor"], "tester");
    }
    let show = ok(d, &["show", "0", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["entry"]["seq"], 0);
    assert_eq!(v["signed_size"], 4);

    let p: serde_json::Value = serde_json::from_str(&ok(d, &["prove", "--index", "2"])).unwrap();
    assert_eq!(p["type"], "inclusion");
    assert_eq!(p["tree_size"], 4);
    assert_eq!(p["proof"].as_array().unwrap().len(), 2);
    let c: serde_json::Value =
        serde_json::from_str(&ok(d, &["prove", "--from", "1", "--to", "4"])).unwrap();
    assert_eq!(c["type"], "consistency");
    assert!(!c["proof"].as_array().unwrap().is_empty());

    let v = ok(d, &["verify"]);
    assert!(
        v.starts_with("ok: 4 entries; signed checkpoint of size 4"),
        "{v}"
    );
    // Usage errors exit 2.
    fails(d, &["show", "9"], 2);
    fails(d, &["prove", "--index", "9"], 2);
    fails(
        d,
        &[
            "record",
            "--action",
            "Bad Action",
            "--object",
            "x",
            "--reason",
            "r",
        ],
        2,
    );
    fails(
        d,
        &["verify", "--export", "nope.jsonl", "--public-key", "x"],
        2,
    );
}

#[test]
fn an_auditor_verifies_an_export_with_only_the_public_key() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    record(d, 5);
    let out = ok(d, &["export", "--out", "export.jsonl"]);
    assert!(out.contains("verify with: bulkhead audit verify --export export.jsonl --public-key"));
    let key = std::fs::read_to_string(d.join("bulkhead-data/audit/trust.pub")).unwrap();
    let key = key.trim();
    // The auditor's directory holds only the export and the key.
    let auditor = tempfile::tempdir().unwrap();
    std::fs::copy(d.join("export.jsonl"), auditor.path().join("export.jsonl")).unwrap();
    std::fs::write(auditor.path().join("log.pub"), format!("{key}\n")).unwrap();
    let a = auditor.path();
    let v = ok(
        a,
        &["verify", "--export", "export.jsonl", "--public-key", key],
    );
    assert!(v.starts_with("ok: 5 entries"), "{v}");
    ok(
        a,
        &[
            "verify",
            "--export",
            "export.jsonl",
            "--public-key",
            "log.pub",
        ],
    );

    // A modified entry: exit 1 naming the kind.
    let text = std::fs::read_to_string(a.join("export.jsonl")).unwrap();
    std::fs::write(a.join("m.jsonl"), text.replacen("CHG-2", "CHG-X", 1)).unwrap();
    let e = fails(
        a,
        &["verify", "--export", "m.jsonl", "--public-key", key],
        1,
    );
    assert!(e.contains("FAILED: verification failed: modified:"), "{e}");
    // A deleted entry.
    let lines: Vec<&str> = text.lines().collect();
    let mut del = lines.clone();
    del.remove(2);
    std::fs::write(a.join("d.jsonl"), del.join("\n") + "\n").unwrap();
    let e = fails(
        a,
        &["verify", "--export", "d.jsonl", "--public-key", key],
        1,
    );
    assert!(e.contains("deleted: entry 1 has seq 2"), "{e}");
    // Another log's key: the checkpoints are not signed by it.
    let other = tempfile::tempdir().unwrap();
    record(other.path(), 1);
    let other_key =
        std::fs::read_to_string(other.path().join("bulkhead-data/audit/trust.pub")).unwrap();
    let e = fails(
        a,
        &[
            "verify",
            "--export",
            "export.jsonl",
            "--public-key",
            other_key.trim(),
        ],
        1,
    );
    assert!(e.contains("unknown key"), "{e}");
}

#[test]
fn a_published_checkpoint_catches_a_rewrite_and_rotation_is_followed() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    record(d, 3);
    let first_key = std::fs::read_to_string(d.join("bulkhead-data/audit/trust.pub")).unwrap();
    let first_key = first_key.trim().to_string();
    ok(d, &["checkpoint", "--out", "seen.cp"]);
    let cp = std::fs::read_to_string(d.join("seen.cp")).unwrap();
    assert!(cp.contains("\n3\n"), "{cp}");
    assert!(cp.contains("\n\n\u{2014} bulkhead/audit-"), "{cp}");
    record(d, 2);
    let v = ok(d, &["verify", "--since", "seen.cp"]);
    assert!(
        v.contains("since: the checkpoint of size 3 is a prefix"),
        "{v}"
    );

    let rot = ok(d, &["rotate-key", "--reason", "yearly"]);
    assert!(rot.contains("new public key"), "{rot}");
    record(d, 1);
    let v = ok(d, &["verify", "--since", "seen.cp"]);
    assert!(v.contains("rotated to: "), "{v}");
    let log = ok(d, &["log"]);
    assert!(log.contains(" key.rotate "), "{log}");

    // Starting the log over with the current key (no rotation from the first key in it): the
    // auditor's first key does not sign it.
    let audit = d.join("bulkhead-data/audit");
    for f in [
        "entries.log",
        "checkpoint",
        "checkpoints.jsonl",
        "trust.pub",
    ] {
        std::fs::remove_file(audit.join(f)).unwrap();
    }
    record(d, 1);
    let e = fails(
        d,
        &["verify", "--since", "seen.cp", "--public-key", &first_key],
        1,
    );
    assert!(
        e.contains("FAILED: verification failed: unknown key"),
        "{e}"
    );
    assert_eq!(e.matches("unknown key").count(), 1, "said once: {e}");
}

#[test]
fn the_private_key_is_never_printed() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    record(d, 1);
    let secret = std::fs::read_to_string(d.join("bulkhead-data/audit/signing.key")).unwrap();
    let b64 = secret.trim().rsplit('+').next().unwrap().to_string();
    let mut all = String::new();
    for args in [
        vec!["log"],
        vec!["show", "0"],
        vec!["verify", "--format", "json"],
        vec!["checkpoint", "--out", "c"],
        vec!["export", "--out", "e"],
        vec!["rotate-key"],
    ] {
        let o = bulkhead(d, &args);
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    assert!(!all.contains(&b64));
    assert!(!all.contains("PRIVATE+KEY"));
}

#[test]
fn an_auditor_checks_a_single_proof_against_a_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    record(d, 3);
    ok(d, &["checkpoint", "--out", "old.cp"]);
    record(d, 4);
    ok(d, &["checkpoint", "--out", "cp"]);
    let key = std::fs::read_to_string(d.join("bulkhead-data/audit/trust.pub")).unwrap();
    let key = key.trim();
    std::fs::write(d.join("inc.json"), ok(d, &["prove", "--index", "5"])).unwrap();
    std::fs::write(
        d.join("con.json"),
        ok(d, &["prove", "--from", "3", "--to", "7"]),
    )
    .unwrap();
    let auditor = tempfile::tempdir().unwrap();
    let a = auditor.path();
    for f in ["inc.json", "con.json", "cp", "old.cp"] {
        std::fs::copy(d.join(f), a.join(f)).unwrap();
    }
    for p in ["inc.json", "con.json"] {
        let o = ok(
            a,
            &[
                "check-proof",
                "--proof",
                p,
                "--checkpoint",
                "cp",
                "--public-key",
                key,
            ],
        );
        assert!(
            o.contains("ok: the proof holds for the tree of size 7"),
            "{o}"
        );
        // Against an older checkpoint the tree heads differ.
        let e = fails(
            a,
            &[
                "check-proof",
                "--proof",
                p,
                "--checkpoint",
                "old.cp",
                "--public-key",
                key,
            ],
            1,
        );
        assert!(e.contains("proof:"), "{e}");
    }
    // A changed index no longer proves anything.
    let inc = std::fs::read_to_string(a.join("inc.json")).unwrap();
    std::fs::write(
        a.join("bad.json"),
        inc.replace("\"index\": 5", "\"index\": 4"),
    )
    .unwrap();
    fails(a, &["check-proof", "--proof", "bad.json"], 1);
    std::fs::write(a.join("junk.json"), "{\"type\":\"inclusion\"}").unwrap();
    fails(a, &["check-proof", "--proof", "junk.json"], 1);
}
