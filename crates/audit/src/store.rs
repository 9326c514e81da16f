//! The log on disk, in `<data dir>/audit/`:
//!
//! | file | content |
//! |---|---|
//! | `entries.log` | header `bulkhead-audit-entries v1\n`, then records `u32 BE length ‖ canonical event ‖ SHA-256(0x00 ‖ event)` |
//! | `checkpoint` | the latest signed checkpoint (C2SP signed note), replaced after each append |
//! | `checkpoints.jsonl` | kept checkpoints, one `{"note":…}` a line: key rotations (signed by the old and the new key) and published ones |
//! | `signing.key` | the Ed25519 private key, mode 0600, `PRIVATE+KEY+name+id+base64` (never printed) |
//! | `signing.pub` | the current verifier key (`name+id+base64`) |
//! | `trust.pub` | the first verifier key of this log, the default trust anchor of `verify` |
//!
//! An append is acknowledged only after the entries file is fsynced. A record cut short by a
//! crash (it runs past the end of the file, or the tail is zero-filled) is unacknowledged: the
//! writer truncates it on open and `verify` ignores it with a warning. Anything else that does
//! not match its checksum is reported as a modification, never repaired.

use crate::event::{
    Clock, Digest, Entry, Event, EventError, MAX_EVENT_BYTES, SystemClock, actions, rfc3339_millis,
};
use crate::merkle::{Hash, ProofError, Tree, leaf_hash};
use crate::note::{Checkpoint, NoteError, SignedCheckpoint, SigningKey, VerifierKey};
use crate::verify::{Report, Verifier, VerifyError};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The entries file's first line: the format and its version.
pub const ENTRIES_HEADER: &[u8] = b"bulkhead-audit-entries v1\n";
/// The export file's format name (first line: `{"format":…,"version":1,…}`).
pub const EXPORT_FORMAT: &str = "bulkhead-audit-export";

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: entry {index} at byte {offset}: {detail}")]
    Corrupt {
        path: PathBuf,
        index: u64,
        offset: u64,
        detail: String,
    },
    #[error("{path}: line {line}: {detail}")]
    Format {
        path: PathBuf,
        line: u64,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("invalid event: {0}")]
    Event(EventError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("verification failed: {0}")]
    Verify(VerifyError),
    #[error("{path}: the log is open for writing by another process")]
    Locked { path: PathBuf },
    #[error("{0}")]
    State(String),
}

impl From<VerifyError> for AuditError {
    fn from(e: VerifyError) -> Self {
        AuditError::Verify(e)
    }
}

impl From<EventError> for AuditError {
    fn from(e: EventError) -> Self {
        AuditError::Event(e)
    }
}

impl AuditError {
    /// True when the failure is a verification finding (exit code 1), not a usage or I/O
    /// problem.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            AuditError::Verify(_) | AuditError::Corrupt { .. } | AuditError::Format { .. }
        )
    }
}

type Result<T> = std::result::Result<T, AuditError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `audit/signing.key` in the data directory, generated on first use (mode 0600) with a
    /// fresh origin name `bulkhead/audit-<8 hex>`.
    DataDir,
    /// `audit/signing.key`, generated on first use with this key name (the log's origin).
    DataDirNamed(String),
    /// A private key file (`PRIVATE+KEY+…`) kept elsewhere; it must exist and be mode 0600.
    Path(PathBuf),
}

/// Paths of the files in `<data dir>/audit/`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub entries: PathBuf,
    pub checkpoint: PathBuf,
    pub kept: PathBuf,
    pub signing_key: PathBuf,
    pub signing_pub: PathBuf,
    pub trust_pub: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("audit");
        Paths {
            entries: dir.join("entries.log"),
            checkpoint: dir.join("checkpoint"),
            kept: dir.join("checkpoints.jsonl"),
            signing_key: dir.join("signing.key"),
            signing_pub: dir.join("signing.pub"),
            trust_pub: dir.join("trust.pub"),
            dir,
        }
    }
}

/// What scanning the entries file found.
struct Scan {
    leaves: Vec<Hash>,
    offsets: Vec<u64>,
    /// Bytes of header and whole, valid records.
    good_len: u64,
    /// A torn (unacknowledged) tail that follows them, if any.
    torn: Option<String>,
}

/// Reads the entries file record by record, giving each record to `each` (index, bytes,
/// stored checksum). A bad checksum is the caller's to judge (`check_sums`).
fn scan_entries(
    path: &Path,
    check_sums: bool,
    mut each: impl FnMut(u64, &[u8], &Hash) -> Result<()>,
) -> Result<Scan> {
    let file = File::open(path).map_err(io(path))?;
    let total = file.metadata().map_err(io(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = vec![0u8; ENTRIES_HEADER.len()];
    let got = read_up_to(&mut r, &mut header).map_err(io(path))?;
    if got < header.len() || header != ENTRIES_HEADER {
        if total == 0 {
            return Ok(Scan {
                leaves: vec![],
                offsets: vec![],
                good_len: 0,
                torn: None,
            });
        }
        return Err(AuditError::Corrupt {
            path: path.into(),
            index: 0,
            offset: 0,
            detail: format!(
                "not an audit entries file (expected header {:?})",
                String::from_utf8_lossy(ENTRIES_HEADER)
            ),
        });
    }
    let mut off = ENTRIES_HEADER.len() as u64;
    let mut scan = Scan {
        leaves: Vec::new(),
        offsets: Vec::new(),
        good_len: off,
        torn: None,
    };
    let mut buf = Vec::new();
    loop {
        let index = scan.leaves.len() as u64;
        let remaining = total - off;
        if remaining == 0 {
            break;
        }
        let corrupt = |detail: String| AuditError::Corrupt {
            path: path.into(),
            index,
            offset: off,
            detail,
        };
        let mut len4 = [0u8; 4];
        if remaining < 4 {
            scan.torn = Some(format!(
                "{remaining} bytes of an incomplete record at byte {off}"
            ));
            break;
        }
        r.read_exact(&mut len4).map_err(io(path))?;
        let len = u32::from_be_bytes(len4) as u64;
        if len == 0 || len > MAX_EVENT_BYTES as u64 {
            if len == 0 && tail_is_zero(&mut r).map_err(io(path))? {
                scan.torn = Some(format!(
                    "a zero-filled tail of {remaining} bytes at byte {off}"
                ));
                break;
            }
            return Err(corrupt(format!("record length {len} is out of range")));
        }
        if remaining < 4 + len + 32 {
            scan.torn = Some(format!(
                "an incomplete record at byte {off} ({remaining} of {} bytes)",
                4 + len + 32
            ));
            break;
        }
        buf.resize(len as usize, 0);
        r.read_exact(&mut buf).map_err(io(path))?;
        let mut sum = [0u8; 32];
        r.read_exact(&mut sum).map_err(io(path))?;
        if check_sums && leaf_hash(&buf) != sum {
            return Err(corrupt(
                "the event bytes do not match the checksum stored with them (modified)".into(),
            ));
        }
        each(index, &buf, &sum)?;
        scan.leaves.push(sum);
        scan.offsets.push(off);
        off += 4 + len + 32;
        scan.good_len = off;
    }
    Ok(scan)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn tail_is_zero(r: &mut impl Read) -> std::io::Result<bool> {
    let mut b = [0u8; 8192];
    loop {
        match r.read(&mut b)? {
            0 => return Ok(true),
            k if b[..k].iter().all(|&x| x == 0) => continue,
            _ => return Ok(false),
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::Io {
            path: path.into(),
            source: e,
        }),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptLine {
    note: String,
}

/// Reads `checkpoints.jsonl`; a torn last line (no newline) is ignored.
fn read_kept(path: &Path) -> Result<Vec<String>> {
    let Some(text) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        let k: KeptLine = serde_json::from_str(line).map_err(|e| AuditError::Format {
            path: path.into(),
            line: i as u64 + 1,
            detail: e.to_string(),
        })?;
        out.push(k.note);
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Writes a file that must stay private (mode 0600), failing if it exists.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(io(path))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(io(path))
}

fn load_key(path: &Path) -> Result<SigningKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(AuditError::Key {
                path: path.into(),
                detail: format!(
                    "the private key is readable by others (mode {:o}); run chmod 600",
                    mode & 0o777
                ),
            });
        }
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    SigningKey::from_secret_text(&text).map_err(|e| AuditError::Key {
        path: path.into(),
        detail: e.to_string(),
    })
}

/// Replaces a small file by writing a temporary one and renaming it over.
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Read-only access to a log in a data directory (`log`, `show`, `prove`, `export`).
pub struct LogReader {
    paths: Paths,
    tree: Tree,
    offsets: Vec<u64>,
    latest: Option<String>,
    kept: Vec<String>,
    torn: Option<String>,
}

impl LogReader {
    /// Opens the log for reading; checks every record's checksum.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let paths = Paths::new(data_dir);
        if !paths.entries.exists() {
            return Err(AuditError::State(format!(
                "{}: no audit log here (record an event first, or give --data-dir)",
                paths.entries.display()
            )));
        }
        let scan = scan_entries(&paths.entries, true, |_, _, _| Ok(()))?;
        Ok(LogReader {
            tree: Tree::from_leaves(scan.leaves),
            offsets: scan.offsets,
            latest: read_optional(&paths.checkpoint)?,
            kept: read_kept(&paths.kept)?,
            torn: scan.torn,
            paths,
        })
    }

    pub fn len(&self) -> u64 {
        self.tree.size()
    }
    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
    /// A torn, unacknowledged tail that was ignored.
    pub fn torn_tail(&self) -> Option<&str> {
        self.torn.as_deref()
    }
    /// The latest signed checkpoint note, as stored.
    pub fn latest_checkpoint(&self) -> Option<&str> {
        self.latest.as_deref()
    }
    /// The latest checkpoint, parsed (not verified).
    pub fn latest_parsed(&self) -> Result<Option<SignedCheckpoint>> {
        self.latest
            .as_deref()
            .map(SignedCheckpoint::parse)
            .transpose()
            .map_err(AuditError::from)
    }

    /// The raw bytes and the parsed entry at `index`.
    pub fn entry(&self, index: u64) -> Result<(Vec<u8>, Entry)> {
        let Some(&off) = self.offsets.get(index as usize) else {
            return Err(AuditError::State(format!(
                "no entry {index}: the log has {} entries",
                self.len()
            )));
        };
        read_entry_at(&self.paths.entries, off, index)
    }

    /// Entries `[from, from + limit)`.
    pub fn entries(&self, from: u64, limit: u64) -> Result<Vec<(u64, Entry)>> {
        let end = from.saturating_add(limit).min(self.len());
        let mut out = Vec::new();
        if from >= end {
            return Ok(out);
        }
        let path = &self.paths.entries;
        let mut f = File::open(path).map_err(io(path))?;
        f.seek(SeekFrom::Start(self.offsets[from as usize]))
            .map_err(io(path))?;
        let mut r = BufReader::new(f);
        for index in from..end {
            let mut len4 = [0u8; 4];
            r.read_exact(&mut len4).map_err(io(path))?;
            let mut buf = vec![0u8; u32::from_be_bytes(len4) as usize];
            r.read_exact(&mut buf).map_err(io(path))?;
            let mut sum = [0u8; 32];
            r.read_exact(&mut sum).map_err(io(path))?;
            let e = Entry::parse(&buf).map_err(|e| AuditError::Corrupt {
                path: path.clone(),
                index,
                offset: self.offsets[index as usize],
                detail: e.to_string(),
            })?;
            out.push((index, e));
        }
        Ok(out)
    }

    /// Writes an export: every entry the latest checkpoint covers, the kept checkpoints and
    /// the latest one. Returns the number of entries written.
    pub fn export(&self, out: &Path) -> Result<u64> {
        let latest = self.latest_parsed()?.ok_or_else(|| {
            AuditError::State("the log has no signed checkpoint yet; nothing to export".into())
        })?;
        let size = latest.checkpoint.size;
        if size > self.len() {
            return Err(AuditError::Verify(VerifyError::Truncated {
                what: "latest checkpoint".into(),
                signed: size,
                have: self.len(),
            }));
        }
        let kept: Vec<&String> = self
            .kept
            .iter()
            .filter(|k| {
                SignedCheckpoint::parse(k)
                    .map(|c| c.checkpoint.size <= size)
                    .unwrap_or(true)
            })
            .collect();
        let f = File::create(out).map_err(io(out))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let header = serde_json::json!({
            "format": EXPORT_FORMAT,
            "version": 1,
            "entries": size,
            "kept_checkpoints": kept.len(),
        });
        let write =
            |w: &mut BufWriter<File>, b: &[u8]| -> Result<()> { w.write_all(b).map_err(io(out)) };
        write(&mut w, header.to_string().as_bytes())?;
        write(&mut w, b"\n")?;
        if size > 0 {
            let path = &self.paths.entries;
            let mut f = File::open(path).map_err(io(path))?;
            f.seek(SeekFrom::Start(self.offsets[0])).map_err(io(path))?;
            let mut r = BufReader::with_capacity(1 << 20, f);
            let mut buf = Vec::new();
            for _ in 0..size {
                let mut len4 = [0u8; 4];
                r.read_exact(&mut len4).map_err(io(path))?;
                buf.resize(u32::from_be_bytes(len4) as usize, 0);
                r.read_exact(&mut buf).map_err(io(path))?;
                let mut sum = [0u8; 32];
                r.read_exact(&mut sum).map_err(io(path))?;
                write(&mut w, &buf)?;
                write(&mut w, b"\n")?;
            }
        }
        for k in kept {
            let line = serde_json::json!({ "kept": k });
            write(&mut w, line.to_string().as_bytes())?;
            write(&mut w, b"\n")?;
        }
        let line = serde_json::json!({ "latest": latest.to_note_text() });
        write(&mut w, line.to_string().as_bytes())?;
        write(&mut w, b"\n")?;
        let f = w.into_inner().map_err(|e| AuditError::Io {
            path: out.into(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(io(out))?;
        Ok(size)
    }
}

fn read_entry_at(path: &Path, off: u64, index: u64) -> Result<(Vec<u8>, Entry)> {
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(off)).map_err(io(path))?;
    let mut len4 = [0u8; 4];
    f.read_exact(&mut len4).map_err(io(path))?;
    let mut buf = vec![0u8; u32::from_be_bytes(len4) as usize];
    f.read_exact(&mut buf).map_err(io(path))?;
    let e = Entry::parse(&buf).map_err(|e| AuditError::Corrupt {
        path: path.into(),
        index,
        offset: off,
        detail: e.to_string(),
    })?;
    Ok((buf, e))
}

/// The trusted key of a data directory when none is given: `audit/trust.pub`.
pub fn default_trusted_key(data_dir: &Path) -> Result<VerifierKey> {
    let p = Paths::new(data_dir).trust_pub;
    let text = fs::read_to_string(&p).map_err(io(&p))?;
    text.trim().parse().map_err(|e: NoteError| AuditError::Key {
        path: p.clone(),
        detail: e.to_string(),
    })
}

/// Verifies the log in a data directory: recomputes every leaf from the stored event bytes,
/// checks them against the stored checksums, the latest and kept checkpoints and the key chain
/// from `trusted`, and, with `since`, that the log only grew since that checkpoint.
pub fn verify_dir(data_dir: &Path, trusted: &VerifierKey, since: Option<&str>) -> Result<Report> {
    let paths = Paths::new(data_dir);
    if !paths.entries.exists() {
        return Err(AuditError::State(format!(
            "{}: no audit log here",
            paths.entries.display()
        )));
    }
    let mut v = Verifier::new(trusted.clone());
    let mut batch = Batch::default();
    let scan = scan_entries(&paths.entries, false, |_, bytes, sum| {
        batch.add(bytes, Some(*sum));
        if batch.full() {
            batch.flush(&mut v)?;
        }
        Ok(())
    })?;
    batch.flush(&mut v)?;
    let latest = read_optional(&paths.checkpoint)?;
    let kept = read_kept(&paths.kept)?;
    let mut report = v.finish(latest.as_deref(), &kept, since)?;
    if let Some(t) = scan.torn {
        report.warnings.push(format!(
            "ignored a torn, unacknowledged record at the end of {}: {t}",
            paths.entries.display()
        ));
    }
    Ok(report)
}

/// Entries gathered for [`Verifier::entries`], which checks them on several threads.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    recs: Vec<(usize, usize, Option<Hash>)>,
}

impl Batch {
    fn add(&mut self, b: &[u8], sum: Option<Hash>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        self.recs.push((start, self.bytes.len(), sum));
    }
    fn full(&self) -> bool {
        self.bytes.len() >= 8 << 20
    }
    fn flush(&mut self, v: &mut Verifier) -> Result<()> {
        let recs: Vec<(&[u8], Option<&Hash>)> = self
            .recs
            .iter()
            .map(|(s, e, h)| (&self.bytes[*s..*e], h.as_ref()))
            .collect();
        v.entries(&recs)?;
        self.bytes.clear();
        self.recs.clear();
        Ok(())
    }
}

/// Verifies an export file with only the trusted public key.
pub fn verify_export(path: &Path, trusted: &VerifierKey, since: Option<&str>) -> Result<Report> {
    let f = File::open(path).map_err(io(path))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let fmt_err = |line: u64, detail: String| AuditError::Format {
        path: path.into(),
        line,
        detail,
    };
    let mut line = Vec::new();
    let read_line = |r: &mut BufReader<File>, line: &mut Vec<u8>| -> Result<bool> {
        line.clear();
        let n = r.read_until(b'\n', line).map_err(io(path))?;
        if n == 0 {
            return Ok(false);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(true)
    };
    if !read_line(&mut r, &mut line)? {
        return Err(fmt_err(1, "empty file; not an audit export".into()));
    }
    #[derive(serde::Deserialize)]
    struct Header {
        format: String,
        version: u64,
        entries: u64,
        kept_checkpoints: u64,
    }
    let h: Header = serde_json::from_slice(&line)
        .map_err(|e| fmt_err(1, format!("not an audit export header: {e}")))?;
    if h.format != EXPORT_FORMAT || h.version != 1 {
        return Err(fmt_err(
            1,
            format!(
                "format {:?} version {} (expected {EXPORT_FORMAT} 1)",
                h.format, h.version
            ),
        ));
    }
    let mut v = Verifier::new(trusted.clone());
    let mut batch = Batch::default();
    let mut first_line = 0u64;
    // Entry errors name the line: entries are consecutive lines from `first` on.
    let flush_lines = |batch: &mut Batch, v: &mut Verifier, first: u64| -> Result<()> {
        let base = v.len();
        batch.flush(v).map_err(|e| match e {
            AuditError::Verify(VerifyError::Modified { index, detail }) => {
                AuditError::Verify(VerifyError::Modified {
                    index,
                    detail: format!("line {}: {detail}", first + (index - base)),
                })
            }
            e => e,
        })
    };
    let mut lineno = 1u64;
    let mut kept = Vec::new();
    let mut latest = None;
    while read_line(&mut r, &mut line)? {
        lineno += 1;
        if line.first() == Some(&b'{') && line.get(1..3) == Some(b"\"a") {
            // An entry: canonical JSON starts with {"action".
            if batch.recs.is_empty() {
                first_line = lineno;
            }
            batch.add(&line, None);
            if batch.full() {
                flush_lines(&mut batch, &mut v, first_line)?;
            }
            continue;
        }
        flush_lines(&mut batch, &mut v, first_line)?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Cp {
            kept: Option<String>,
            latest: Option<String>,
        }
        let c: Cp = serde_json::from_slice(&line)
            .map_err(|e| fmt_err(lineno, format!("neither an entry nor a checkpoint: {e}")))?;
        match (c.kept, c.latest) {
            (Some(k), None) => kept.push(k),
            (None, Some(l)) if latest.is_none() => latest = Some(l),
            _ => {
                return Err(fmt_err(
                    lineno,
                    "expected one kept or one latest checkpoint".into(),
                ));
            }
        }
    }
    flush_lines(&mut batch, &mut v, first_line)?;
    let have = v.len();
    let report = v.finish(latest.as_deref(), &kept, since)?;
    // Checked after the entries themselves, whose findings (deleted, reordered) are sharper.
    if have != h.entries {
        return Err(AuditError::Verify(VerifyError::Truncated {
            what: "export header".into(),
            signed: h.entries,
            have,
        }));
    }
    if kept.len() as u64 != h.kept_checkpoints {
        return Err(fmt_err(
            1,
            format!(
                "the header announces {} kept checkpoints, the file holds {}",
                h.kept_checkpoints,
                kept.len()
            ),
        ));
    }
    Ok(report)
}

/// The writer: appends events, signs checkpoints, rotates keys. One per data directory at a
/// time (an exclusive lock on `entries.log`).
pub struct AuditLog {
    paths: Paths,
    file: File,
    tree: Tree,
    offsets: Vec<u64>,
    end: u64,
    key: SigningKey,
    key_source: KeySource,
    clock: Box<dyn Clock>,
    latest: SignedCheckpoint,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.paths.dir)
            .field("size", &self.tree.size())
            .field("key", &self.key.verifier())
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `<data_dir>/audit/` with the system clock.
    pub fn open(data_dir: &Path, key: KeySource) -> Result<Self> {
        Self::open_with_clock(data_dir, key, Box::new(SystemClock))
    }

    /// Opens with an injected clock (tests).
    pub fn open_with_clock(
        data_dir: &Path,
        source: KeySource,
        clock: Box<dyn Clock>,
    ) -> Result<Self> {
        let paths = Paths::new(data_dir);
        if !paths.dir.exists() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(&paths.dir).map_err(io(&paths.dir))?;
        }
        // The key.
        let key = match &source {
            KeySource::Path(p) => load_key(p)?,
            KeySource::DataDir | KeySource::DataDirNamed(_) => {
                if paths.signing_key.exists() {
                    load_key(&paths.signing_key)?
                } else if fs::metadata(&paths.entries)
                    .is_ok_and(|m| m.len() > ENTRIES_HEADER.len() as u64)
                {
                    // A new key for an existing log would sign checkpoints no auditor trusts.
                    return Err(AuditError::Key {
                        path: paths.signing_key.clone(),
                        detail: "missing, and the log already has entries: restore it or give --signing-key".into(),
                    });
                } else {
                    let name = match &source {
                        KeySource::DataDirNamed(n) => n.clone(),
                        _ => {
                            let mut r = [0u8; 4];
                            getrandom::fill(&mut r).map_err(|e| {
                                AuditError::State(format!("no randomness from the system: {e}"))
                            })?;
                            format!("bulkhead/audit-{:08x}", u32::from_be_bytes(r))
                        }
                    };
                    let k = SigningKey::generate(&name)?;
                    write_private(&paths.signing_key, &k.to_secret_text())?;
                    replace_file(&paths.signing_pub, &format!("{}\n", k.verifier()))?;
                    sync_dir(&paths.dir)?;
                    k
                }
            }
        };
        if !paths.trust_pub.exists() {
            replace_file(&paths.trust_pub, &format!("{}\n", key.verifier()))?;
        }
        // The entries file, locked.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.entries)
            .map_err(io(&paths.entries))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked {
                    path: paths.entries.clone(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&paths.entries)(e)),
        }
        let len = file.metadata().map_err(io(&paths.entries))?.len();
        if len == 0 {
            (&file)
                .write_all(ENTRIES_HEADER)
                .and_then(|_| file.sync_all())
                .map_err(io(&paths.entries))?;
            sync_dir(&paths.dir)?;
        }
        let scan = scan_entries(&paths.entries, true, |_, _, _| Ok(()))?;
        if scan.torn.is_some() {
            file.set_len(scan.good_len)
                .and_then(|_| file.sync_all())
                .map_err(io(&paths.entries))?;
        }
        let tree = Tree::from_leaves(scan.leaves);
        let mut log = AuditLog {
            latest: SignedCheckpoint::sign(
                Checkpoint {
                    origin: key.name().to_string(),
                    size: 0,
                    root: tree.root_at(0)?,
                    extensions: vec![],
                },
                &[&key],
            ),
            file,
            offsets: scan.offsets,
            end: scan.good_len,
            tree,
            key,
            key_source: source,
            clock,
            paths,
        };
        log.recover_rotation()?;
        log.check_latest()?;
        Ok(log)
    }

    /// Checks the stored latest checkpoint against the entries and signs a new one if entries
    /// were written after it (a crash between the fsync and the checkpoint).
    fn check_latest(&mut self) -> Result<()> {
        let n = self.tree.size();
        if let Some(text) = read_optional(&self.paths.checkpoint)?
            && let Ok(cp) = SignedCheckpoint::parse(&text)
        {
            let size = cp.checkpoint.size;
            if cp
                .note
                .verify(std::slice::from_ref(self.key.verifier()))
                .is_err()
            {
                return Err(AuditError::Key {
                    path: self.paths.checkpoint.clone(),
                    detail: format!(
                        "the latest checkpoint is signed by {}, not by this signing key ({}); use the log's key",
                        cp.note.signers(),
                        self.key.verifier()
                    ),
                });
            }
            if size > n {
                return Err(AuditError::Verify(VerifyError::Truncated {
                    what: format!("latest checkpoint ({})", self.paths.checkpoint.display()),
                    signed: size,
                    have: n,
                }));
            }
            if self.tree.root_at(size)? != cp.checkpoint.root {
                return Err(AuditError::Verify(VerifyError::RootMismatch {
                    size,
                    lo: 0,
                }));
            }
            if size == n {
                self.latest = cp;
                return Ok(());
            }
        }
        self.sign_latest(&[])
    }

    fn sign_latest(&mut self, extra: &[&SigningKey]) -> Result<()> {
        let cp = Checkpoint {
            origin: self.key.name().to_string(),
            size: self.tree.size(),
            root: self.tree.root(),
            extensions: vec![],
        };
        let mut keys: Vec<&SigningKey> = extra.to_vec();
        keys.push(&self.key);
        self.latest = SignedCheckpoint::sign(cp, &keys);
        replace_file(&self.paths.checkpoint, &self.latest.to_note_text())
    }

    pub fn len(&self) -> u64 {
        self.tree.size()
    }
    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
    pub fn verifier(&self) -> &VerifierKey {
        self.key.verifier()
    }
    pub fn paths(&self) -> &Paths {
        &self.paths
    }
    /// The latest signed checkpoint.
    pub fn latest(&self) -> &SignedCheckpoint {
        &self.latest
    }

    /// Records one event; returns its index once it is on disk (fsynced) and signed.
    pub fn record(&mut self, event: Event) -> Result<u64> {
        Ok(self.append_batch(std::slice::from_ref(&event))?.start)
    }

    /// Records events with one fsync and one checkpoint for the whole batch; returns their
    /// indices. Either all are acknowledged or the call fails.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<std::ops::Range<u64>> {
        for e in events {
            e.validate()?;
            if e.action == actions::KEY_ROTATE {
                return Err(AuditError::Event(EventError::Invalid(
                    "key.rotate is written by rotate-key only".into(),
                )));
            }
        }
        let r = self.append_raw(events)?;
        self.sign_latest(&[])?;
        Ok(r)
    }

    fn append_raw(&mut self, events: &[Event]) -> Result<std::ops::Range<u64>> {
        let start = self.tree.size();
        let time = rfc3339_millis(self.clock.now_millis());
        let mut buf = Vec::with_capacity(events.len() * 300);
        let mut new = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let entry = Entry {
                seq: start + i as u64,
                time: time.clone(),
                event: e.clone(),
            };
            let c = entry.canonical();
            if c.len() > MAX_EVENT_BYTES {
                return Err(AuditError::Event(EventError::Invalid(format!(
                    "event of {} bytes is larger than {MAX_EVENT_BYTES}",
                    c.len()
                ))));
            }
            let h = leaf_hash(c.as_bytes());
            new.push((self.end + buf.len() as u64, h));
            buf.extend_from_slice(&(c.len() as u32).to_be_bytes());
            buf.extend_from_slice(c.as_bytes());
            buf.extend_from_slice(&h);
        }
        let path = &self.paths.entries;
        let written = (&self.file)
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| (&self.file).write_all(&buf))
            .and_then(|_| self.file.sync_data());
        if let Err(e) = written {
            // Leave no partial batch behind.
            let _ = self.file.set_len(self.end);
            return Err(io(path)(e));
        }
        self.end += buf.len() as u64;
        for (off, h) in new {
            self.offsets.push(off);
            self.tree.push(h);
        }
        Ok(start..self.tree.size())
    }

    /// Keeps the latest checkpoint in `checkpoints.jsonl` (for `checkpoint --out`) and returns
    /// its note text.
    pub fn publish_checkpoint(&mut self) -> Result<String> {
        let text = self.latest.to_note_text();
        self.keep(&text)?;
        Ok(text)
    }

    fn keep(&self, note: &str) -> Result<()> {
        let p = &self.paths.kept;
        let line = serde_json::to_string(&KeptLine { note: note.into() })
            .map_err(|e| AuditError::State(e.to_string()))?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(io(p))?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(io(p))
    }

    /// Replaces the signing key: logs a `key.rotate` event naming the new key, signs the
    /// checkpoint that includes it with both the old and the new key (kept in
    /// `checkpoints.jsonl`), then switches to the new key. Returns the event's index and the
    /// new verifier key.
    pub fn rotate_key(&mut self, actor: &str, reason: &str) -> Result<(u64, VerifierKey)> {
        if let KeySource::Path(p) = &self.key_source {
            return Err(AuditError::Key {
                path: p.clone(),
                detail: "rotate-key replaces the key in the data directory; this log's key is given by path".into(),
            });
        }
        let new = SigningKey::generate(self.key.name())?;
        let staged = self.paths.signing_key.with_extension("key.new");
        if staged.exists() {
            fs::remove_file(&staged).map_err(io(&staged))?;
        }
        write_private(&staged, &new.to_secret_text())?;
        let mut ev = Event::new(
            actor,
            actions::KEY_ROTATE,
            &new.verifier().to_string(),
            reason,
        );
        ev.before = Some(Digest::of(self.key.verifier().public_key()));
        ev.after = Some(Digest::of(new.verifier().public_key()));
        ev.validate()?;
        let r = self.append_raw(std::slice::from_ref(&ev))?;
        self.finish_rotation(new, staged)?;
        Ok((r.start, self.key.verifier().clone()))
    }

    fn finish_rotation(&mut self, new: SigningKey, staged: PathBuf) -> Result<()> {
        let old = std::mem::replace(&mut self.key, new);
        self.sign_latest(&[&old])?;
        self.keep(&self.latest.to_note_text())?;
        fs::rename(&staged, &self.paths.signing_key).map_err(io(&self.paths.signing_key))?;
        replace_file(
            &self.paths.signing_pub,
            &format!("{}\n", self.key.verifier()),
        )?;
        sync_dir(&self.paths.dir)
    }

    /// Completes a rotation a crash interrupted: a staged `signing.key.new` that the last entry
    /// names is endorsed and put in force; one that no entry names is discarded.
    fn recover_rotation(&mut self) -> Result<()> {
        let staged = self.paths.signing_key.with_extension("key.new");
        if !staged.exists() {
            return Ok(());
        }
        let new = load_key(&staged)?;
        let named = match self.offsets.last() {
            Some(&off) => {
                let (_, e) = read_entry_at(&self.paths.entries, off, self.len() - 1)?;
                e.event.action == actions::KEY_ROTATE
                    && e.event.object == new.verifier().to_string()
            }
            None => false,
        };
        if named {
            self.finish_rotation(new, staged)
        } else {
            fs::remove_file(&staged).map_err(io(&staged))
        }
    }
}
