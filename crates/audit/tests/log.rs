//! The log on disk: round trips, proofs, every kind of tampering, key rotation, witnessing with
//! an old checkpoint, torn tails.

use bulkhead_audit::merkle::{verify_consistency, verify_inclusion};
use bulkhead_audit::{
    AuditError, AuditLog, Digest, Event, FixedClock, KeySource, LogReader, Paths, SigningKey,
    VerifyError, actions, verify_dir, verify_export,
};
use std::fs;
use std::path::{Path, PathBuf};

const ORIGIN: &str = "test.example/audit";

fn open(dir: &Path) -> AuditLog {
    AuditLog::open_with_clock(
        dir,
        KeySource::DataDirNamed(ORIGIN.into()),
        Box::new(FixedClock(1_795_755_662_345)),
    )
    .expect("open")
}

fn event(i: u64) -> Event {
    let mut e = Event::new(
        "alice",
        actions::POLICY_LOAD,
        &format!("policies/p{i}.yaml"),
        &format!("CHG-{i}"),
    );
    e.before = (i > 0).then(|| Digest::of(format!("v{}", i - 1).as_bytes()));
    e.after = Some(Digest::of(format!("v{i}").as_bytes()));
    e
}

/// A log of `n` entries in a fresh directory.
fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("data");
    let mut log = open(&dir);
    for i in 0..n {
        assert_eq!(log.record(event(i)).expect("record"), i);
    }
    (t, dir)
}

fn trusted(dir: &Path) -> bulkhead_audit::VerifierKey {
    bulkhead_audit::default_trusted_key(dir).expect("trust.pub")
}

fn verify(dir: &Path) -> Result<bulkhead_audit::Report, AuditError> {
    verify_dir(dir, &trusted(dir), None)
}

/// The records of entries.log: (header, [record bytes]).
fn records(dir: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let b = fs::read(Paths::new(dir).entries).expect("entries");
    let h = bulkhead_audit::ENTRIES_HEADER.len();
    let mut out = Vec::new();
    let mut off = h;
    while off < b.len() {
        let len = u32::from_be_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        out.push(b[off..off + 4 + len + 32].to_vec());
        off += 4 + len + 32;
    }
    (b[..h].to_vec(), out)
}

fn write_records(dir: &Path, header: &[u8], recs: &[Vec<u8>]) {
    let mut b = header.to_vec();
    for r in recs {
        b.extend_from_slice(r);
    }
    fs::write(Paths::new(dir).entries, b).expect("write entries");
}

/// Rewrites the event bytes of a record (and, if asked, its checksum).
fn rewrite(rec: &[u8], f: impl Fn(&str) -> String, fix_sum: bool) -> Vec<u8> {
    let len = u32::from_be_bytes(rec[..4].try_into().unwrap()) as usize;
    let ev = std::str::from_utf8(&rec[4..4 + len]).unwrap();
    let new = f(ev);
    let mut out = (new.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(new.as_bytes());
    if fix_sum {
        out.extend_from_slice(&bulkhead_audit::merkle::leaf_hash(new.as_bytes()));
    } else {
        out.extend_from_slice(&rec[4 + len..]);
    }
    out
}

fn verify_err(dir: &Path) -> VerifyError {
    match verify(dir) {
        Err(AuditError::Verify(e)) => e,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn a_log_verifies_and_proves_every_entry() {
    let (_t, dir) = log_with(21);
    let r = verify(&dir).expect("verify");
    assert_eq!((r.entries, r.signed_size), (21, 21));
    assert_eq!(r.origin.as_deref(), Some(ORIGIN));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    let reader = LogReader::open(&dir).expect("reader");
    let latest = reader.latest_parsed().unwrap().unwrap();
    assert_eq!(latest.checkpoint.size, 21);
    assert_eq!(latest.checkpoint.root, reader.tree().root());
    let entries = reader.entries(0, 100).unwrap();
    assert_eq!(entries.len(), 21);
    for (i, e) in &entries {
        assert_eq!(e.seq, *i);
        assert_eq!(e.event, event(*i));
        assert_eq!(e.time, "2026-11-27T05:01:02.345Z");
        let (bytes, _) = reader.entry(*i).unwrap();
        let p = reader.tree().inclusion_proof(*i, 21).unwrap();
        let leaf = bulkhead_audit::merkle::leaf_hash(&bytes);
        verify_inclusion(*i, 21, &leaf, &p, &latest.checkpoint.root).expect("inclusion");
    }
    for m in 1..=21 {
        let p = reader.tree().consistency_proof(m, 21).unwrap();
        let r1 = reader.tree().root_at(m).unwrap();
        verify_consistency(m, 21, &r1, &latest.checkpoint.root, &p).expect("consistency");
    }
    assert!(reader.entry(21).is_err());
}

#[test]
fn an_export_verifies_with_only_the_public_key() {
    let (t, dir) = log_with(9);
    let out = t.path().join("export.jsonl");
    assert_eq!(LogReader::open(&dir).unwrap().export(&out).unwrap(), 9);
    let key: bulkhead_audit::VerifierKey = fs::read_to_string(Paths::new(&dir).signing_pub)
        .unwrap()
        .parse()
        .unwrap();
    // Nothing of the data directory is needed.
    fs::remove_dir_all(&dir).unwrap();
    let r = verify_export(&out, &key, None).expect("export verifies");
    assert_eq!((r.entries, r.signed_size), (9, 9));
}

#[test]
fn batches_are_numbered_and_acknowledged_together() {
    let t = tempfile::tempdir().unwrap();
    let mut log = open(t.path());
    let evs: Vec<Event> = (0..100).map(event).collect();
    assert_eq!(log.append_batch(&evs).unwrap(), 0..100);
    assert_eq!(log.append_batch(&evs[..3]).unwrap(), 100..103);
    assert_eq!(log.latest().checkpoint.size, 103);
    drop(log);
    assert_eq!(verify(t.path()).unwrap().signed_size, 103);
    // A second writer is refused while one is open.
    let _w = open(t.path());
    let second = AuditLog::open(t.path(), KeySource::DataDir);
    assert!(
        matches!(second, Err(AuditError::Locked { .. })),
        "{second:?}"
    );
}

#[test]
fn invalid_events_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let mut log = open(t.path());
    for (e, msg) in [
        (Event::new("", "alert", "x", "r"), "empty actor"),
        (Event::new("a", "", "x", "r"), "empty action"),
        (
            Event::new("a", "Policy Load", "x", "r"),
            "action with capitals and a space",
        ),
        (Event::new("a", "alert", "", "r"), "empty object"),
        (
            Event::new("a", actions::KEY_ROTATE, "x", "r"),
            "key.rotate by hand",
        ),
        (
            Event::new("a", "alert", "x", &"r".repeat(70_000)),
            "too large",
        ),
    ] {
        assert!(log.record(e).is_err(), "{msg}");
    }
    assert_eq!(log.len(), 0);
}

#[test]
fn a_modified_byte_is_detected_at_its_index() {
    let (_t, dir) = log_with(6);
    let (h, mut recs) = records(&dir);
    recs[3] = rewrite(&recs[3], |e| e.replace("CHG-3", "CHG-9"), false);
    write_records(&dir, &h, &recs);
    match verify(&dir) {
        Err(AuditError::Verify(VerifyError::Modified { index: 3, .. })) => {}
        other => panic!("{other:?}"),
    }
    // The writer refuses to append to it too.
    assert!(AuditLog::open(&dir, KeySource::DataDir).is_err());
}

#[test]
fn a_modification_with_a_recomputed_checksum_breaks_the_signed_root() {
    let (_t, dir) = log_with(6);
    let (h, mut recs) = records(&dir);
    recs[2] = rewrite(&recs[2], |e| e.replace("alice", "mallory"), true);
    write_records(&dir, &h, &recs);
    assert_eq!(
        verify_err(&dir),
        VerifyError::RootMismatch { size: 6, lo: 0 }
    );
}

#[test]
fn a_deleted_entry_is_named() {
    let (_t, dir) = log_with(6);
    let (h, mut recs) = records(&dir);
    recs.remove(2);
    write_records(&dir, &h, &recs);
    assert_eq!(verify_err(&dir), VerifyError::Deleted { index: 2, seq: 3 });
}

#[test]
fn swapped_entries_are_named() {
    let (_t, dir) = log_with(6);
    let (h, mut recs) = records(&dir);
    recs.swap(1, 4);
    write_records(&dir, &h, &recs);
    assert_eq!(
        verify_err(&dir),
        VerifyError::Reordered { index: 1, seq: 4 }
    );
}

#[test]
fn a_truncated_log_is_detected() {
    let (_t, dir) = log_with(6);
    let (h, recs) = records(&dir);
    write_records(&dir, &h, &recs[..4]);
    assert_eq!(
        verify_err(&dir),
        VerifyError::Truncated {
            what: "latest checkpoint".into(),
            signed: 6,
            have: 4
        }
    );
    // The writer refuses to go on from a truncated log.
    assert!(AuditLog::open(&dir, KeySource::DataDir).is_err());
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let (_t, dir) = log_with(4);
    let p = Paths::new(&dir);
    let reader = LogReader::open(&dir).unwrap();
    let cp = reader.latest_parsed().unwrap().unwrap().checkpoint;
    let forger = SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap();
    let forged = bulkhead_audit::SignedCheckpoint::sign(cp, &[&forger]);
    fs::write(&p.checkpoint, forged.to_note_text()).unwrap();
    assert!(matches!(verify_err(&dir), VerifyError::UnknownKey { .. }));
    // A corrupted signature by the right key is a bad signature.
    let good = reader.latest_checkpoint().unwrap().to_string();
    let sig_start = good.rfind(' ').unwrap() + 10;
    let mut bad = good.into_bytes();
    bad[sig_start] = if bad[sig_start] == b'A' { b'B' } else { b'A' };
    fs::write(&p.checkpoint, bad).unwrap();
    assert!(matches!(verify_err(&dir), VerifyError::BadSignature { .. }));
    // And a missing checkpoint leaves the entries unproven.
    fs::remove_file(&p.checkpoint).unwrap();
    assert_eq!(verify_err(&dir), VerifyError::NoCheckpoint { entries: 4 });
}

#[test]
fn a_rewritten_and_resigned_log_is_caught_by_an_older_checkpoint() {
    let (t, dir) = log_with(5);
    // The auditor keeps the checkpoint they saw.
    let old = open(&dir).publish_checkpoint().unwrap();
    {
        let mut log = open(&dir);
        log.record(event(5)).unwrap();
    }
    let r = verify_dir(&dir, &trusted(&dir), Some(&old)).expect("an honest log grew");
    assert_eq!(r.since.as_ref().map(|s| s.size), Some(5));

    // The administrator rewrites entry 1 and re-signs everything with the same host key.
    let p = Paths::new(&dir);
    let key_copy = t.path().join("stolen.key");
    fs::copy(&p.signing_key, &key_copy).unwrap();
    let forged_dir = t.path().join("forged");
    {
        let mut log = AuditLog::open_with_clock(
            &forged_dir,
            KeySource::Path(key_copy),
            Box::new(FixedClock(1_795_755_662_345)),
        )
        .unwrap();
        for i in 0..6 {
            let mut e = event(i);
            if i == 1 {
                e.reason = "nothing to see".into();
            }
            log.record(e).unwrap();
        }
    }
    let fp = Paths::new(&forged_dir);
    fs::copy(&fp.entries, &p.entries).unwrap();
    fs::copy(&fp.checkpoint, &p.checkpoint).unwrap();
    fs::remove_file(&p.kept).unwrap();
    // On its own the forged log looks fine: the same key signed it.
    verify(&dir).expect("a re-signed log verifies without witnessing");
    // The auditor's old checkpoint shows the rewrite.
    match verify_dir(&dir, &trusted(&dir), Some(&old)) {
        Err(AuditError::Verify(VerifyError::NotConsistent { size: 5, .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_rotation_is_logged_endorsed_and_followed() {
    let (t, dir) = log_with(3);
    let first = trusted(&dir);
    let (idx, new_key) = {
        let mut log = open(&dir);
        let r = log.rotate_key("alice", "yearly rotation").unwrap();
        log.record(event(4)).unwrap();
        r
    };
    assert_eq!(idx, 3);
    assert_ne!(new_key, first);
    let r = verify_dir(&dir, &first, None).expect("chain from the first key");
    assert_eq!(r.keys, vec![first.to_string(), new_key.to_string()]);
    assert_eq!(r.signed_size, 5);
    let reader = LogReader::open(&dir).unwrap();
    let (_, e) = reader.entry(3).unwrap();
    assert_eq!(e.event.action, actions::KEY_ROTATE);
    assert_eq!(e.event.object, new_key.to_string());
    // The same through an export.
    let out = t.path().join("x.jsonl");
    reader.export(&out).unwrap();
    verify_export(&out, &first, None).expect("export after rotation");
    // Trusting only the new key does not verify the old part of the chain.
    assert!(verify_dir(&dir, &new_key, None).is_err());
    // Without the old key's endorsement the rotation is refused.
    fs::remove_file(Paths::new(&dir).kept).unwrap();
    assert!(matches!(
        verify_dir(&dir, &first, None),
        Err(AuditError::Verify(VerifyError::Rotation { index: 3, .. }))
    ));
}

#[test]
fn keys_are_private_and_never_in_the_public_files() {
    let (_t, dir) = log_with(1);
    let p = Paths::new(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&p.signing_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::set_permissions(&p.signing_key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = AuditLog::open(&dir, KeySource::DataDir).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&p.signing_key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let secret = fs::read_to_string(&p.signing_key).unwrap();
    // PRIVATE+KEY+name+keyid+base64, where the base64 may itself hold '+' (taking the part
    // after the last '+' made this test fail by chance when that part was a few characters).
    let b64 = secret.trim().splitn(5, '+').nth(4).unwrap().to_string();
    assert_eq!(
        b64.len(),
        44,
        "the whole key: a type byte and a 32-byte seed"
    );
    for f in [&p.signing_pub, &p.trust_pub, &p.checkpoint, &p.entries] {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).to_string();
        assert!(
            !text.contains(&b64),
            "{} holds the private key",
            f.display()
        );
    }
    let log = open(&dir);
    assert!(!format!("{log:?}").contains(&b64));
}

#[test]
fn a_torn_tail_is_unacknowledged_and_dropped() {
    let (_t, dir) = log_with(4);
    let p = Paths::new(&dir);
    let mut b = fs::read(&p.entries).unwrap();
    let whole = b.len();
    // Half of a fifth record, as a crash in the middle of the write leaves it.
    b.extend_from_slice(&200u32.to_be_bytes());
    b.extend_from_slice(b"{\"action\":\"alert\",\"actor\":\"x");
    fs::write(&p.entries, &b).unwrap();
    let r = verify(&dir).expect("a torn tail is not tampering");
    assert_eq!(r.signed_size, 4);
    assert!(
        r.warnings.iter().any(|w| w.contains("torn")),
        "{:?}",
        r.warnings
    );
    // The writer cuts it off and goes on.
    let mut log = open(&dir);
    assert_eq!(fs::metadata(&p.entries).unwrap().len() as usize, whole);
    assert_eq!(log.record(event(4)).unwrap(), 4);
    drop(log);
    assert_eq!(verify(&dir).unwrap().signed_size, 5);
    // A zero-filled tail (power loss) is torn as well.
    let mut b = fs::read(&p.entries).unwrap();
    b.extend_from_slice(&[0u8; 100]);
    fs::write(&p.entries, &b).unwrap();
    assert_eq!(verify(&dir).unwrap().signed_size, 5);
}

#[test]
fn tampered_exports_are_refused_with_the_kind_of_change() {
    let (t, dir) = log_with(6);
    let out = t.path().join("e.jsonl");
    LogReader::open(&dir).unwrap().export(&out).unwrap();
    let key = trusted(&dir);
    let text = fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let check = |name: &str, new: Vec<String>| -> AuditError {
        let p = t.path().join(format!("{name}.jsonl"));
        fs::write(&p, new.join("\n") + "\n").unwrap();
        verify_export(&p, &key, None).expect_err(name)
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let mut m = owned(&lines);
    m[3] = m[3].replace("alice", "mallory");
    let e = check("modified", m);
    assert!(
        matches!(e, AuditError::Verify(VerifyError::RootMismatch { .. })),
        "{e}"
    );

    let mut d = owned(&lines);
    d.remove(3);
    let e = check("deleted", d);
    assert!(
        matches!(
            e,
            AuditError::Verify(VerifyError::Deleted { index: 2, seq: 3 })
        ),
        "{e}"
    );

    let mut s = owned(&lines);
    s.swap(2, 3);
    let e = check("swapped", s);
    assert!(
        matches!(
            e,
            AuditError::Verify(VerifyError::Reordered { index: 1, seq: 2 })
        ),
        "{e}"
    );

    let mut tr = owned(&lines);
    tr.drain(5..7);
    let e = check("truncated", tr);
    assert!(
        matches!(e, AuditError::Verify(VerifyError::Truncated { .. })),
        "{e}"
    );

    let mut nc = owned(&lines);
    nc[1] = nc[1].replacen(":", ": ", 1);
    let e = check("not canonical", nc);
    assert!(
        matches!(
            e,
            AuditError::Verify(VerifyError::Modified { index: 0, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");

    let other = SigningKey::from_seed(ORIGIN, &[1; 32]).unwrap();
    let e = verify_export(&out, other.verifier(), None).expect_err("other key");
    assert!(
        matches!(e, AuditError::Verify(VerifyError::UnknownKey { .. })),
        "{e}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn export_and_entries_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), prefix in any::<bool>()) {
            let t = tempfile::tempdir().unwrap();
            let key = SigningKey::from_seed(ORIGIN, &[3; 32]).unwrap();
            let p = t.path().join("x");
            let mut b = if prefix { b"{\"format\":\"bulkhead-audit-export\",\"version\":1,\"entries\":1,\"kept_checkpoints\":0}\n".to_vec() } else { vec![] };
            b.extend_from_slice(&bytes);
            fs::write(&p, &b).unwrap();
            let _ = verify_export(&p, key.verifier(), None);
            let paths = Paths::new(t.path());
            fs::create_dir_all(&paths.dir).unwrap();
            let mut e = if prefix { bulkhead_audit::ENTRIES_HEADER.to_vec() } else { vec![] };
            e.extend_from_slice(&bytes);
            fs::write(&paths.entries, &e).unwrap();
            let _ = verify_dir(t.path(), key.verifier(), Some(&String::from_utf8_lossy(&bytes)));
            let _ = LogReader::open(t.path());
        }
    }
}

#[test]
fn large_logs_are_checked_in_parallel_and_report_the_first_change() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    {
        let mut log = open(&dir);
        let evs: Vec<Event> = (0..5000).map(event).collect();
        log.append_batch(&evs).unwrap();
    }
    assert_eq!(verify(&dir).unwrap().signed_size, 5000);
    let out = t.path().join("e.jsonl");
    LogReader::open(&dir).unwrap().export(&out).unwrap();
    verify_export(&out, &trusted(&dir), None).expect("large export");

    // Two modified entries, in different threads' shares: the lower index is reported.
    let (h, mut recs) = records(&dir);
    for i in [4100usize, 1200] {
        recs[i] = rewrite(&recs[i], |e| e.replace("alice", "mallo"), false);
    }
    write_records(&dir, &h, &recs);
    assert!(matches!(
        verify_err(&dir),
        VerifyError::Modified { index: 1200, .. }
    ));

    // In an export, a non-canonical line is named by entry and line.
    let text = fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3001] = lines[3001].replacen(":", ": ", 1);
    fs::write(&out, lines.join("\n") + "\n").unwrap();
    match verify_export(&out, &trusted(&dir), None) {
        Err(AuditError::Verify(VerifyError::Modified {
            index: 3000,
            detail,
        })) => {
            assert!(detail.starts_with("line 3002:"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rotation_cut_short_by_a_crash_is_completed_or_discarded_on_open() {
    let (_t, dir) = log_with(2);
    let p = Paths::new(&dir);
    let first = trusted(&dir);
    let staged = p.signing_key.with_extension("key.new");
    // A staged key that no entry names (crash before the event): discarded.
    fs::copy(&p.signing_key, &staged).unwrap();
    drop(open(&dir));
    assert!(!staged.exists());

    // Crash after the key.rotate entry, before the endorsement and the switch of keys.
    let old_key = fs::read(&p.signing_key).unwrap();
    let old_cp = fs::read(&p.checkpoint).unwrap();
    open(&dir).rotate_key("alice", "rotation").unwrap();
    fs::rename(&p.signing_key, &staged).unwrap();
    fs::write(&p.signing_key, &old_key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p.signing_key, fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::write(&p.checkpoint, &old_cp).unwrap();
    let _ = fs::remove_file(&p.kept);
    // Until then the rotation entry is an unacknowledged tail, not in force.
    let half = verify_dir(&dir, &first, None).expect("the signed part verifies");
    assert_eq!((half.signed_size, half.keys.len()), (2, 1));
    assert!(
        half.warnings.iter().any(|w| w.contains("not yet in force")),
        "{:?}",
        half.warnings
    );
    let log = open(&dir);
    assert!(!staged.exists());
    assert_eq!(log.latest().checkpoint.size, 3);
    drop(log);
    let r = verify_dir(&dir, &first, None).expect("completed rotation verifies");
    assert_eq!(r.keys.len(), 2);
}

#[test]
fn the_writer_refuses_a_key_that_is_not_the_logs() {
    let (t, dir) = log_with(2);
    let p = Paths::new(&dir);
    // Another key given by path.
    let other = t.path().join("other.key");
    {
        let k = SigningKey::from_seed(ORIGIN, &[9; 32]).unwrap();
        let mut o = fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        use std::io::Write;
        o.open(&other)
            .unwrap()
            .write_all(k.to_secret_text().as_bytes())
            .unwrap();
    }
    let e = AuditLog::open(&dir, KeySource::Path(other)).unwrap_err();
    assert!(e.to_string().contains("not by this signing key"), "{e}");
    // A lost key is not silently replaced.
    fs::remove_file(&p.signing_key).unwrap();
    let e = AuditLog::open(&dir, KeySource::DataDir).unwrap_err();
    assert!(e.to_string().contains("already has entries"), "{e}");
    assert!(!p.signing_key.exists());
}

#[test]
fn an_emptied_log_is_caught_by_an_older_checkpoint() {
    let (_t, dir) = log_with(3);
    let old = open(&dir).publish_checkpoint().unwrap();
    let key = trusted(&dir);
    let p = Paths::new(&dir);
    for f in [&p.entries, &p.checkpoint, &p.kept] {
        fs::remove_file(f).unwrap();
    }
    fs::write(&p.entries, bulkhead_audit::ENTRIES_HEADER).unwrap();
    // On its own an empty log verifies (with a warning)...
    assert_eq!(verify_dir(&dir, &key, None).unwrap().entries, 0);
    // ...but not against the checkpoint the auditor kept.
    match verify_dir(&dir, &key, Some(&old)) {
        Err(AuditError::Verify(VerifyError::Truncated {
            signed: 3, have: 0, ..
        })) => {}
        other => panic!("{other:?}"),
    }
}
