//! Golden files for the formats other tools read: the export and the published checkpoint.
//! `BULKHEAD_UPDATE_GOLDEN=1 cargo test -p bulkhead-audit` rewrites them — review the diff.

use bulkhead_audit::{
    AuditLog, Digest, Event, FixedClock, KeySource, LogReader, SigningKey, actions,
};
use std::path::Path;

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
    assert_eq!(got, want, "{} changed", path.display());
}

#[test]
fn export_and_checkpoint_formats_do_not_drift() {
    let t = tempfile::tempdir().unwrap();
    // A fixed key (Ed25519 signatures are deterministic) and a fixed clock.
    let key = SigningKey::from_seed("golden.example/audit", &[5; 32]).unwrap();
    let key_file = t.path().join("golden.key");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        use std::io::Write;
        o.open(&key_file)
            .unwrap()
            .write_all(key.to_secret_text().as_bytes())
            .unwrap();
    }
    let dir = t.path().join("data");
    let mut log = AuditLog::open_with_clock(
        &dir,
        KeySource::Path(key_file),
        Box::new(FixedClock(1_795_755_662_345)),
    )
    .unwrap();
    let mut e = Event::new(
        "alice",
        actions::POLICY_APPLY,
        "payments/pci@v2",
        "CHG-1 \"urgent\"",
    );
    e.before = Some(Digest::of(b"v1"));
    e.after = Some(Digest::of(b"v2"));
    log.record(e).unwrap();
    log.append_batch(&[
        Event::new(
            "soc",
            actions::QUARANTINE,
            "prod/web-7f9c",
            "ALERT-42: lateral movement",
        ),
        Event::new("soc", actions::RELEASE, "prod/web-7f9c", "fixed, é ünïcode"),
    ])
    .unwrap();
    let cp = log.publish_checkpoint().unwrap();
    drop(log);
    golden("checkpoint.txt", &cp);
    let out = t.path().join("export.jsonl");
    LogReader::open(&dir).unwrap().export(&out).unwrap();
    golden("export.jsonl", &std::fs::read_to_string(&out).unwrap());
    golden("public.key", &format!("{}\n", key.verifier()));
}
