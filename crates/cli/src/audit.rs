//! `bulkhead audit`: the tamper-evident audit log (crate `bulkhead-audit`).
//!
//! Exit codes: 0 ok, 1 a verification failure (what kind of change, and where), 2 usage or I/O
//! errors.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bulkhead_audit::{
    AuditError, AuditLog, Digest, Entry, Event, KeySource, LogReader, Proof, SignedCheckpoint,
    VerifierKey, VerifyError, default_trusted_key, merkle, note_error, verify_dir, verify_export,
};
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The data directory; the log lives in its `audit/` folder.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "./bulkhead-data"
    )]
    data_dir: PathBuf,
    /// Sign with this private key file (mode 0600) instead of `audit/signing.key`.
    #[arg(long, global = true, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// The log's name (its checkpoints' origin), used only when the first key is generated.
    #[arg(long, global = true, value_name = "NAME")]
    origin: Option<String>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fmt {
    Txt,
    Json,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// List entries.
    Log {
        #[arg(long, short, value_enum, default_value = "txt")]
        format: Fmt,
        /// First entry to list.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many entries to list at most.
        #[arg(long, default_value_t = u64::MAX, hide_default_value = true)]
        limit: u64,
    },
    /// Show one entry, its leaf hash and its inclusion proof in the latest checkpoint.
    Show {
        index: u64,
        #[arg(long, short, value_enum, default_value = "txt")]
        format: Fmt,
    },
    /// Verify the log (or an export): every entry, every checkpoint signature, the key chain,
    /// and with --since that the log only grew since an older checkpoint.
    Verify {
        /// Verify this export file instead of the data directory.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// The trusted public key: a verifier key string (name+id+base64) or a file holding
        /// one. Defaults to the data directory's own `audit/trust.pub`.
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
        /// A checkpoint kept from earlier (`audit checkpoint --out`): prove by a consistency
        /// proof that the log only grew since.
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        #[arg(long, short, value_enum, default_value = "txt")]
        format: Fmt,
    },
    /// Print an inclusion proof (--index [--size]) or a consistency proof (--from --to) as
    /// JSON.
    Prove {
        /// Entry to prove included.
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        index: Option<u64>,
        /// Tree size to prove against (default: the latest checkpoint's).
        #[arg(long, requires = "index")]
        size: Option<u64>,
        /// Older tree size.
        #[arg(long, requires = "to")]
        from: Option<u64>,
        /// Newer tree size.
        #[arg(long, requires = "from")]
        to: Option<u64>,
    },
    /// Check a proof printed by `prove` (offline): its arithmetic, and with --checkpoint that a
    /// checkpoint signed by --public-key names the same tree size and root.
    CheckProof {
        /// The proof's JSON file.
        #[arg(long, value_name = "FILE")]
        proof: PathBuf,
        /// A signed checkpoint the proof must end in.
        #[arg(long, value_name = "FILE", requires = "public_key")]
        checkpoint: Option<PathBuf>,
        /// The key that must sign the checkpoint (verifier key string or file).
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
    },
    /// Write a self-contained export (entries and checkpoints), verifiable with only the
    /// public key.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the latest signed checkpoint (C2SP signed note) for publishing outside the log.
    Checkpoint {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Replace the signing key; the rotation is a logged event signed by the old and new key.
    RotateKey {
        /// Who rotates (default: $USER).
        #[arg(long)]
        actor: Option<String>,
        #[arg(long, default_value = "key rotation")]
        reason: String,
    },
    /// Record an event (for tools outside Bulkhead).
    Record {
        /// What was done, e.g. policy.load, policy.apply, quarantine, release, approval.
        #[arg(long)]
        action: String,
        /// What it was done to.
        #[arg(long)]
        object: String,
        /// Why: a ticket or change request.
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long)]
        actor: Option<String>,
        /// The object's state before the change: its SHA-256 is recorded.
        #[arg(long, value_name = "FILE", conflicts_with = "before")]
        before_file: Option<PathBuf>,
        /// The object's state after the change: its SHA-256 is recorded.
        #[arg(long, value_name = "FILE", conflicts_with = "after")]
        after_file: Option<PathBuf>,
        /// A digest given directly: sha256:<64 hex>.
        #[arg(long, value_name = "DIGEST")]
        before: Option<String>,
        #[arg(long, value_name = "DIGEST")]
        after: Option<String>,
    },
}

/// Runs an audit command; reports errors itself to choose the exit code.
pub fn run(args: AuditArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            let verification = e
                .downcast_ref::<AuditError>()
                .is_some_and(AuditError::is_verification_failure);
            if verification {
                eprintln!("FAILED: {e:#}");
                ExitCode::from(1)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    }
}

fn key_source(args: &AuditArgs) -> KeySource {
    match (&args.signing_key, &args.origin) {
        (Some(p), _) => KeySource::Path(p.clone()),
        (None, Some(o)) => KeySource::DataDirNamed(o.clone()),
        (None, None) => KeySource::DataDir,
    }
}

/// Who is acting, from the environment: `$USER`, else `$LOGNAME`.
pub(crate) fn env_actor() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
}

fn actor(a: Option<String>) -> Result<String> {
    match a.or_else(env_actor) {
        Some(a) => Ok(a),
        None => bail!("give --actor (no $USER or $LOGNAME in the environment)"),
    }
}

fn digest(file: Option<&PathBuf>, given: Option<&String>) -> Result<Option<Digest>> {
    if let Some(f) = file {
        let b = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        return Ok(Some(Digest::of(&b)));
    }
    given
        .map(|d| d.parse::<Digest>().with_context(|| format!("digest {d}")))
        .transpose()
}

fn trusted_key(arg: Option<&String>, data_dir: &Path, export: bool) -> Result<(VerifierKey, bool)> {
    match arg {
        Some(s) => {
            if let Ok(k) = s.parse::<VerifierKey>() {
                return Ok((k, false));
            }
            let text = std::fs::read_to_string(s).with_context(|| {
                format!(
                    "--public-key {s}: neither a verifier key (name+id+base64) nor a readable file"
                )
            })?;
            let k = text
                .trim()
                .parse::<VerifierKey>()
                .with_context(|| format!("--public-key {s}"))?;
            Ok((k, false))
        }
        None if export => {
            bail!("--public-key is required with --export (the auditor's copy of the log's key)")
        }
        None => Ok((default_trusted_key(data_dir)?, true)),
    }
}

fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

fn entry_txt(i: u64, e: &Entry) -> String {
    let d = |d: &Option<Digest>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "#{i} {} {} {} {} before={} after={} reason={:?}\n",
        e.time,
        e.event.actor,
        e.event.action,
        e.event.object,
        d(&e.event.before),
        d(&e.event.after),
        e.event.reason
    )
}

fn run_inner(args: AuditArgs) -> Result<ExitCode> {
    let dir = args.data_dir.clone();
    let source = key_source(&args);
    match args.command {
        AuditCommand::Log {
            format,
            from,
            limit,
        } => {
            let r = LogReader::open(&dir)?;
            let mut s = String::new();
            for (i, e) in r.entries(from, limit)? {
                match format {
                    Fmt::Txt => s.push_str(&entry_txt(i, &e)),
                    Fmt::Json => {
                        s.push_str(&e.canonical());
                        s.push('\n');
                    }
                }
            }
            out(&s)?;
        }
        AuditCommand::Show { index, format } => {
            let r = LogReader::open(&dir)?;
            let (bytes, e) = r.entry(index)?;
            let leaf = merkle::leaf_hash(&bytes);
            let latest = r.latest_parsed()?;
            let proof = match &latest {
                Some(c) if index < c.checkpoint.size => Some((
                    c.checkpoint.size,
                    r.tree().inclusion_proof(index, c.checkpoint.size)?,
                )),
                _ => None,
            };
            match format {
                Fmt::Txt => {
                    let mut s = entry_txt(index, &e);
                    s.push_str(&format!("leaf hash: {}\n", B64.encode(leaf)));
                    match &proof {
                        Some((size, p)) => s.push_str(&format!(
                            "included in the signed tree of size {size} (proof of {} hashes; `bulkhead audit prove --index {index}`)\n",
                            p.len()
                        )),
                        None => s.push_str("not yet covered by a signed checkpoint\n"),
                    }
                    out(&s)?;
                }
                Fmt::Json => {
                    let v = serde_json::json!({
                        "index": index,
                        "entry": serde_json::from_slice::<serde_json::Value>(&bytes)?,
                        "leaf_hash": B64.encode(leaf),
                        "signed_size": proof.as_ref().map(|p| p.0),
                    });
                    out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
                }
            }
        }
        AuditCommand::Verify {
            export,
            public_key,
            since,
            format,
        } => {
            let (key, from_dir) = trusted_key(public_key.as_ref(), &dir, export.is_some())?;
            let since_text = since
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read --since {}", p.display()))
                })
                .transpose()?;
            let mut report = match &export {
                Some(f) => verify_export(f, &key, since_text.as_deref())?,
                None => verify_dir(&dir, &key, since_text.as_deref())?,
            };
            if from_dir {
                report.warnings.push(
                    "trusted key taken from the data directory's own audit/trust.pub; an auditor passes --public-key"
                        .into(),
                );
            }
            match format {
                Fmt::Json => out(&(serde_json::to_string_pretty(&report)? + "\n"))?,
                Fmt::Txt => {
                    let mut s = format!(
                        "ok: {} entries; signed checkpoint of size {} with root {}\n",
                        report.entries, report.signed_size, report.root
                    );
                    if let Some(o) = &report.origin {
                        s.push_str(&format!("origin: {o}\n"));
                    }
                    for (i, k) in report.keys.iter().enumerate() {
                        s.push_str(&format!(
                            "{}: {k}\n",
                            if i == 0 { "trusted key" } else { "rotated to" }
                        ));
                    }
                    s.push_str(&format!("checkpoints checked: {}\n", report.checkpoints));
                    if let Some(si) = &report.since {
                        s.push_str(&format!(
                            "since: the checkpoint of size {} is a prefix of this log (consistency proof of {} hashes)\n",
                            si.size,
                            si.proof.len()
                        ));
                    }
                    out(&s)?;
                }
            }
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
        }
        AuditCommand::Prove {
            index,
            size,
            from,
            to,
        } => {
            let r = LogReader::open(&dir)?;
            let latest = r.latest_parsed()?;
            let proof = match (index, from, to) {
                (Some(index), _, _) => {
                    let size = match (size, &latest) {
                        (Some(s), _) => s,
                        (None, Some(c)) => c.checkpoint.size,
                        (None, None) => r.len(),
                    };
                    let (bytes, _) = r.entry(index)?;
                    Proof::Inclusion {
                        index,
                        tree_size: size,
                        leaf_hash: merkle::leaf_hash(&bytes),
                        root: r.tree().root_at(size)?,
                        proof: r.tree().inclusion_proof(index, size)?,
                    }
                }
                (None, Some(m), Some(n)) => Proof::Consistency {
                    first: m,
                    second: n,
                    first_root: r.tree().root_at(m)?,
                    second_root: r.tree().root_at(n)?,
                    proof: r.tree().consistency_proof(m, n)?,
                },
                _ => bail!("give --index N [--size M], or --from M --to N"),
            };
            proof.verify()?;
            out(&proof.to_json())?;
        }
        AuditCommand::CheckProof {
            proof,
            checkpoint,
            public_key,
        } => {
            let text = std::fs::read_to_string(&proof)
                .with_context(|| format!("cannot read {}", proof.display()))?;
            let fail = |d: String| AuditError::Verify(VerifyError::Proof(d));
            let p = Proof::parse(&text).map_err(|e| fail(format!("{}: {e}", proof.display())))?;
            p.verify()
                .map_err(|e| fail(format!("{}: {e}", proof.display())))?;
            let (size, root) = p.tree_head();
            let mut msg = format!(
                "ok: the proof holds for the tree of size {size} with root {}\n",
                B64.encode(root)
            );
            if let Some(cp_path) = checkpoint {
                let (key, _) = trusted_key(public_key.as_ref(), &dir, true)?;
                let cp_text = std::fs::read_to_string(&cp_path)
                    .with_context(|| format!("cannot read {}", cp_path.display()))?;
                let what = format!("checkpoint {}", cp_path.display());
                let cp = SignedCheckpoint::parse(&cp_text).map_err(|e| {
                    AuditError::Verify(VerifyError::Malformed {
                        what: what.clone(),
                        detail: e.to_string(),
                    })
                })?;
                cp.note
                    .verify(std::slice::from_ref(&key))
                    .map_err(|e| AuditError::Verify(note_error(&what, e)))?;
                if (cp.checkpoint.size, cp.checkpoint.root) != (size, root) {
                    return Err(fail(format!(
                        "the {what} signs size {} with another root or size than the proof",
                        cp.checkpoint.size
                    ))
                    .into());
                }
                msg.push_str(&format!("and {what} signed by {key} names that tree\n"));
            }
            out(&msg)?;
        }
        AuditCommand::Export { out: file } => {
            let r = LogReader::open(&dir)?;
            let n = r.export(&file)?;
            let key = default_trusted_key(&dir)?;
            out(&format!(
                "exported {n} entries to {}\nverify with: bulkhead audit verify --export {} --public-key '{key}'\n",
                file.display(),
                file.display()
            ))?;
        }
        AuditCommand::Checkpoint { out: file } => {
            let mut log = AuditLog::open(&dir, source)?;
            let text = log.publish_checkpoint()?;
            std::fs::write(&file, &text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            out(&format!(
                "checkpoint of size {} written to {}\n",
                log.latest().checkpoint.size,
                file.display()
            ))?;
        }
        AuditCommand::RotateKey { actor: a, reason } => {
            let a = actor(a)?;
            let mut log = AuditLog::open(&dir, source)?;
            let (index, key) = log.rotate_key(&a, &reason)?;
            out(&format!(
                "rotated the signing key at entry {index}; new public key:\n{key}\n"
            ))?;
        }
        AuditCommand::Record {
            action,
            object,
            reason,
            actor: a,
            before_file,
            after_file,
            before,
            after,
        } => {
            let mut ev = Event::new(&actor(a)?, &action, &object, &reason);
            ev.before = digest(before_file.as_ref(), before.as_ref())?;
            ev.after = digest(after_file.as_ref(), after.as_ref())?;
            let mut log = AuditLog::open(&dir, source)?;
            let i = log.record(ev)?;
            out(&format!("recorded entry {i}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a state-changing command (accepting a recommendation, planning a policy version,
/// compiling, applying …) in the data directory's audit log, creating the log and its key on
/// first use. The actor is `$USER`, else `$LOGNAME`, else `bulkhead`. Returns the entry's index.
pub(crate) fn record_change(
    data_dir: &Path,
    action: &str,
    object: &str,
    reason: &str,
    before: Option<Digest>,
    after: Option<Digest>,
) -> Result<u64> {
    let mut ev = Event::new(
        &env_actor().unwrap_or_else(|| "bulkhead".into()),
        action,
        object,
        reason,
    );
    ev.before = before;
    ev.after = after;
    let mut log = open_waiting(data_dir, LOCK_WAIT)
        .with_context(|| format!("opening the audit log in {}", data_dir.display()))?;
    let i = log
        .record(ev)
        .with_context(|| format!("recording `{action}` in the audit log"))?;
    Ok(i)
}

/// How long [`record_change`] waits for another process recording in the same log (a command
/// holds the log only while it records: an agent applying a policy that a `release` has just
/// written may ask while the `release` is still recording it).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the data directory's audit log for writing, waiting up to `wait` while another
/// process holds it; after that, the log's own error ([`AuditError::Locked`]) says who to look
/// for.
fn open_waiting(data_dir: &Path, wait: std::time::Duration) -> Result<AuditLog, AuditError> {
    let start = std::time::Instant::now();
    loop {
        match AuditLog::open(data_dir, KeySource::DataDir) {
            Err(AuditError::Locked { .. }) if start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// The digest of a policy version: SHA-256 over every file under `path` (or the file itself),
/// in sorted relative-path order, each as its path, a NUL, its length and its bytes — so a
/// renamed, added, removed or edited file changes it, and the walk order does not.
pub(crate) fn tree_digest(path: &Path) -> Result<Digest> {
    use sha2::{Digest as _, Sha256};
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
        let rd =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, p));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, path, &mut files)?;
    } else {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        files.push((name.unwrap_or_default(), path.to_path_buf()));
    }
    files.sort();
    let mut h = Sha256::new();
    for (rel, p) in files {
        let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        h.update(rel.as_bytes());
        h.update([0]);
        h.update((b.len() as u64).to_be_bytes());
        h.update(&b);
    }
    Ok(Digest(h.finalize().into()))
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use bulkhead_audit::actions;

    #[test]
    fn tree_digest_sees_renames_edits_and_additions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a.yaml"), "x: 1\n").unwrap();
        std::fs::write(d.path().join("sub/b.yaml"), "y: 2\n").unwrap();
        let first = tree_digest(d.path()).unwrap();
        assert_eq!(first, tree_digest(d.path()).unwrap());
        std::fs::write(d.path().join("a.yaml"), "x: 2\n").unwrap();
        let edited = tree_digest(d.path()).unwrap();
        assert_ne!(first, edited);
        std::fs::rename(d.path().join("a.yaml"), d.path().join("c.yaml")).unwrap();
        let renamed = tree_digest(d.path()).unwrap();
        assert_ne!(edited, renamed);
        std::fs::write(d.path().join("sub/new.yaml"), "").unwrap();
        assert_ne!(renamed, tree_digest(d.path()).unwrap());
    }

    #[test]
    fn record_change_waits_for_another_writer_to_finish() {
        let d = tempfile::tempdir().unwrap();
        let held = AuditLog::open(d.path(), KeySource::DataDir).unwrap();
        // While held, a writer that does not wait is refused, one that waits gives up in time.
        assert!(matches!(
            open_waiting(d.path(), std::time::Duration::ZERO),
            Err(AuditError::Locked { .. })
        ));
        let t = std::time::Instant::now();
        let late = open_waiting(d.path(), std::time::Duration::from_millis(100));
        assert!(matches!(late, Err(AuditError::Locked { .. })), "{late:?}");
        assert!(t.elapsed() >= std::time::Duration::from_millis(100));
        // Released while a change waits: the change is recorded.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let i = record_change(
            d.path(),
            actions::POLICY_PLAN,
            "policy:x",
            "test",
            None,
            None,
        );
        releaser.join().unwrap();
        assert_eq!(i.unwrap(), 0);
    }

    #[test]
    fn record_change_appends_a_verifiable_entry() {
        let d = tempfile::tempdir().unwrap();
        let i = record_change(
            d.path(),
            actions::POLICY_PLAN,
            "policy:x",
            "test",
            None,
            None,
        )
        .unwrap();
        let j = record_change(
            d.path(),
            actions::POLICY_PLAN,
            "policy:y",
            "test",
            None,
            None,
        )
        .unwrap();
        assert_eq!(j, i + 1);
        let r = LogReader::open(d.path()).unwrap();
        let entries = r.entries(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].1.event.object, "policy:y");
    }
}
