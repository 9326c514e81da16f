//! Verification of a whole log, from a data directory or an export: every leaf hash is
//! recomputed from the stored event bytes, the tree head is compared with the signed
//! checkpoints, the chain of keys is followed from the trusted key, and an older checkpoint the
//! auditor kept is linked to the latest one by a consistency proof.

use crate::event::{Digest, Entry, check_canonical};
use crate::merkle::{Hash, Tree, empty_root, leaf_hash, verify_consistency};
use crate::note::{NoteError, SignedCheckpoint, VerifierKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

/// A verification failure: what kind of change, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("modified: entry {index}: {detail}")]
    Modified { index: u64, detail: String },
    #[error(
        "deleted: entry {index} has seq {seq}; entries {index}..{seq} are missing from the log"
    )]
    Deleted { index: u64, seq: u64 },
    #[error("reordered: entry {index} has seq {seq} (entries were moved or duplicated)")]
    Reordered { index: u64, seq: u64 },
    #[error(
        "truncated: the {what} signs {signed} entries but the log holds only {have}; entries {have}..{signed} are missing"
    )]
    Truncated {
        what: String,
        signed: u64,
        have: u64,
    },
    #[error(
        "modified: the entries do not give the root signed for size {size}; an entry in {lo}..{size} was modified, deleted or reordered"
    )]
    RootMismatch { size: u64, lo: u64 },
    #[error("bad signature: {what}: {detail}")]
    BadSignature { what: String, detail: String },
    #[error("unknown key: {what} is not signed by the trusted key chain ({detail})")]
    UnknownKey { what: String, detail: String },
    #[error("key rotation at entry {index}: {detail}")]
    Rotation { index: u64, detail: String },
    #[error("not consistent: the log was rewritten since the checkpoint of size {size}: {detail}")]
    NotConsistent { size: u64, detail: String },
    #[error("malformed {what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("proof: {0}")]
    Proof(String),
    #[error("no signed checkpoint covers the {entries} entries of the log")]
    NoCheckpoint { entries: u64 },
}

/// What a successful verification established.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// The log's origin (the checkpoint's first line).
    pub origin: Option<String>,
    /// Entries read.
    pub entries: u64,
    /// Tree size of the latest checkpoint: entries below it are proven.
    pub signed_size: u64,
    /// Root hash (base64) at `signed_size`.
    pub root: String,
    /// The chain of keys followed, from the trusted key.
    pub keys: Vec<String>,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The older checkpoint proven to be a prefix, if one was given.
    pub since: Option<SinceReport>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SinceReport {
    pub size: u64,
    pub root: String,
    /// The consistency proof from `size` to the signed size (base64 hashes).
    pub proof: Vec<String>,
}

/// A key rotation read from the log.
struct Rotation {
    index: u64,
    new_key: VerifierKey,
    before: Option<Digest>,
    after: Option<Digest>,
}

/// One entry, checked.
struct Checked {
    leaf: Hash,
    seq: u64,
    rotation: Option<Rotation>,
}

/// Hashes one entry, compares the hash with the stored checksum, and reads it.
fn check_one(index: u64, bytes: &[u8], stored: Option<&Hash>) -> Result<Checked, VerifyError> {
    let leaf = leaf_hash(bytes);
    if let Some(s) = stored
        && *s != leaf
    {
        return Err(VerifyError::Modified {
            index,
            detail: "the event bytes do not match the checksum stored with them".into(),
        });
    }
    let bad = |e: crate::event::EventError| VerifyError::Modified {
        index,
        detail: format!("not a canonical audit event: {e}"),
    };
    let (seq, rotate) = check_canonical(bytes).map_err(bad)?;
    let rotation = if rotate {
        let entry = Entry::parse(bytes).map_err(bad)?;
        let new_key =
            entry
                .event
                .object
                .parse::<VerifierKey>()
                .map_err(|e| VerifyError::Rotation {
                    index,
                    detail: format!("the object is not a verifier key: {e}"),
                })?;
        Some(Rotation {
            index,
            new_key,
            before: entry.event.before,
            after: entry.event.after,
        })
    } else {
        None
    };
    Ok(Checked {
        leaf,
        seq,
        rotation,
    })
}

/// Streams entries in, then checks them against checkpoints.
pub struct Verifier {
    trusted: VerifierKey,
    leaves: Vec<Hash>,
    seqs: Vec<u64>,
    rotations: Vec<Rotation>,
}

impl Verifier {
    pub fn new(trusted: VerifierKey) -> Self {
        Verifier {
            trusted,
            leaves: Vec::new(),
            seqs: Vec::new(),
            rotations: Vec::new(),
        }
    }

    /// Entries read so far.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Takes the next entry's bytes (and the checksum stored beside it, if the format has one).
    pub fn entry(&mut self, bytes: &[u8], stored: Option<&Hash>) -> Result<(), VerifyError> {
        let c = check_one(self.len(), bytes, stored)?;
        self.push(c);
        Ok(())
    }

    /// Takes the next entries, checked on several threads (the expensive part of verification
    /// is hashing and reading every entry; the order of the results is kept).
    pub fn entries(&mut self, recs: &[(&[u8], Option<&Hash>)]) -> Result<(), VerifyError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        if threads < 2 || recs.len() < 2048 {
            for (b, h) in recs {
                self.entry(b, *h)?;
            }
            return Ok(());
        }
        let base = self.len();
        let chunk = recs.len().div_ceil(threads);
        let results: Vec<Result<Vec<Checked>, VerifyError>> = std::thread::scope(|s| {
            let handles: Vec<_> = recs
                .chunks(chunk)
                .enumerate()
                .map(|(k, part)| {
                    s.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(j, (b, h))| check_one(base + (k * chunk + j) as u64, b, *h))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(VerifyError::Malformed {
                            what: "entries".into(),
                            detail: "a verification thread failed".into(),
                        })
                    })
                })
                .collect()
        });
        // The first error in chunk order is the one at the lowest index.
        for r in results {
            for c in r? {
                self.push(c);
            }
        }
        Ok(())
    }

    fn push(&mut self, c: Checked) {
        self.leaves.push(c.leaf);
        self.seqs.push(c.seq);
        if let Some(r) = c.rotation {
            self.rotations.push(r);
        }
    }

    /// Checks the entries read against the latest checkpoint, the kept checkpoints (key
    /// rotations, published checkpoints) and, if given, an older checkpoint an auditor kept.
    pub fn finish(
        self,
        latest: Option<&str>,
        kept: &[String],
        since: Option<&str>,
    ) -> Result<Report, VerifyError> {
        let n = self.len();
        let mut warnings = Vec::new();
        // 1. Positions: every entry carries its index.
        if let Some(i) = (0..n).find(|&i| self.seqs[i as usize] != i) {
            let seq = self.seqs[i as usize];
            let moved = self.seqs[i as usize..].contains(&i);
            return Err(if seq > i && !moved {
                VerifyError::Deleted { index: i, seq }
            } else {
                VerifyError::Reordered { index: i, seq }
            });
        }
        let tree = Tree::from_leaves(self.leaves);

        // 2. Checkpoints, parsed.
        let parse = |what: &str, text: &str| {
            SignedCheckpoint::parse(text).map_err(|e| VerifyError::Malformed {
                what: what.to_string(),
                detail: e.to_string(),
            })
        };
        let latest = match latest {
            Some(t) => Some(parse("latest checkpoint", t)?),
            None => None,
        };
        let mut kept_cps = Vec::new();
        for (i, t) in kept.iter().enumerate() {
            kept_cps.push(parse(&format!("kept checkpoint {}", i + 1), t)?);
        }
        let Some(latest) = latest else {
            // An auditor's checkpoint of a non-empty tree against a log with no checkpoint at
            // all: everything it covered is gone.
            if let Some(old) = since.and_then(|t| SignedCheckpoint::parse(t).ok())
                && old.checkpoint.size > n
            {
                let what = format!("--since checkpoint of size {}", old.checkpoint.size);
                old.note
                    .verify(std::slice::from_ref(&self.trusted))
                    .map_err(|e| note_error(&what, e))?;
                return Err(VerifyError::Truncated {
                    what: format!("--since checkpoint of size {}", old.checkpoint.size),
                    signed: old.checkpoint.size,
                    have: n,
                });
            }
            if n == 0 && since.is_none() {
                return Ok(Report {
                    origin: None,
                    entries: 0,
                    signed_size: 0,
                    root: B64.encode(empty_root()),
                    keys: vec![self.trusted.to_string()],
                    checkpoints: 0,
                    since: None,
                    warnings: vec!["the log is empty and has no checkpoint".into()],
                });
            }
            return Err(VerifyError::NoCheckpoint { entries: n });
        };
        let signed = latest.checkpoint.size;
        if signed > n {
            return Err(VerifyError::Truncated {
                what: "latest checkpoint".into(),
                signed,
                have: n,
            });
        }

        // 3. The chain of keys: (valid from tree size, key).
        let mut chain: Vec<(u64, VerifierKey)> = vec![(0, self.trusted.clone())];
        for r in self.rotations.iter().filter(|r| r.index < signed) {
            let Some((_, old)) = chain.last().cloned() else {
                break;
            };
            let bad = |d: &str| VerifyError::Rotation {
                index: r.index,
                detail: d.to_string(),
            };
            if r.new_key.name() != old.name() {
                return Err(bad("the new key has another name than the log's key"));
            }
            if r.before != Some(Digest::of(old.public_key())) {
                return Err(bad("the before digest does not name the key in force"));
            }
            if r.after != Some(Digest::of(r.new_key.public_key())) {
                return Err(bad("the after digest does not name the new key"));
            }
            let size = r.index + 1;
            let both = [old.clone(), r.new_key.clone()];
            let endorsed = kept_cps.iter().any(|c| {
                c.checkpoint.size == size
                    && c.note.verify(&both).map(|v| v.len() == 2).unwrap_or(false)
                    && tree.root_at(size).ok() == Some(c.checkpoint.root)
            });
            if !endorsed {
                return Err(bad(&format!(
                    "no checkpoint of size {size} signed by both the old key {} and the new key {}",
                    old, r.new_key
                )));
            }
            chain.push((size, r.new_key.clone()));
        }
        for r in self.rotations.iter().filter(|r| r.index >= signed) {
            warnings.push(format!(
                "key rotation at entry {} is after the latest checkpoint and not yet in force",
                r.index
            ));
        }
        let key_at = |size: u64| -> &VerifierKey {
            let mut k = &chain[0].1;
            for (from, key) in &chain {
                if *from <= size {
                    k = key;
                }
            }
            k
        };

        // 4. Every checkpoint: signed by the key in force at its size, of this log, and matching
        //    the entries. Root mismatches are narrowed down with the checkpoints that match.
        let mut all: Vec<(&str, &SignedCheckpoint)> = vec![("latest checkpoint", &latest)];
        all.extend(kept_cps.iter().map(|c| ("kept checkpoint", c)));
        let mut good_sizes = vec![0u64];
        let mut bad_sizes = Vec::new();
        for (what, c) in &all {
            let what = format!("{what} of size {}", c.checkpoint.size);
            let key = key_at(c.checkpoint.size);
            check_signature(&what, c, key)?;
            if c.checkpoint.origin != key.name() {
                return Err(VerifyError::UnknownKey {
                    what,
                    detail: format!(
                        "origin {:?} is not the key's name {:?}",
                        c.checkpoint.origin,
                        key.name()
                    ),
                });
            }
            if c.checkpoint.size > n {
                return Err(VerifyError::Truncated {
                    what,
                    signed: c.checkpoint.size,
                    have: n,
                });
            }
            if tree.root_at(c.checkpoint.size).ok() == Some(c.checkpoint.root) {
                good_sizes.push(c.checkpoint.size);
            } else {
                bad_sizes.push(c.checkpoint.size);
            }
        }
        if let Some(&size) = bad_sizes.iter().min() {
            let lo = good_sizes
                .iter()
                .copied()
                .filter(|&g| g < size)
                .max()
                .unwrap_or(0);
            return Err(VerifyError::RootMismatch { size, lo });
        }
        if n > signed {
            warnings.push(format!(
                "entries {signed}..{n} are not yet covered by a signed checkpoint (not acknowledged, or written after the last checkpoint)"
            ));
        }

        // 5. The auditor's older checkpoint: the log only grew since.
        let since = match since {
            None => None,
            Some(t) => {
                let old = parse("--since checkpoint", t)?;
                let size = old.checkpoint.size;
                let what = format!("--since checkpoint of size {size}");
                // Signed by any key of the chain: the auditor may have kept it before a rotation.
                let keys: Vec<VerifierKey> = chain.iter().map(|(_, k)| k.clone()).collect();
                old.note.verify(&keys).map_err(|e| note_error(&what, e))?;
                if old.checkpoint.origin != self.trusted.name() {
                    return Err(VerifyError::NotConsistent {
                        size,
                        detail: format!("it is of another log ({:?})", old.checkpoint.origin),
                    });
                }
                if size > signed {
                    return Err(VerifyError::Truncated {
                        what,
                        signed: size,
                        have: signed,
                    });
                }
                let proof = if size == 0 {
                    if old.checkpoint.root != empty_root() {
                        return Err(VerifyError::NotConsistent {
                            size,
                            detail: "an empty tree with a non-empty root".into(),
                        });
                    }
                    Vec::new()
                } else {
                    let proof = tree.consistency_proof(size, signed).map_err(|e| {
                        VerifyError::NotConsistent {
                            size,
                            detail: e.to_string(),
                        }
                    })?;
                    verify_consistency(
                        size,
                        signed,
                        &old.checkpoint.root,
                        &latest.checkpoint.root,
                        &proof,
                    )
                    .map_err(|e| VerifyError::NotConsistent {
                        size,
                        detail: format!("the consistency proof fails ({e})"),
                    })?;
                    proof
                };
                Some(SinceReport {
                    size,
                    root: B64.encode(old.checkpoint.root),
                    proof: proof.iter().map(|h| B64.encode(h)).collect(),
                })
            }
        };

        Ok(Report {
            origin: Some(latest.checkpoint.origin.clone()),
            entries: n,
            signed_size: signed,
            root: B64.encode(latest.checkpoint.root),
            keys: chain.iter().map(|(_, k)| k.to_string()).collect(),
            checkpoints: all.len(),
            since,
            warnings,
        })
    }
}

/// A note verification error as a finding about `what`.
pub fn note_error(what: &str, e: NoteError) -> VerifyError {
    match e {
        NoteError::BadSignature(d) => VerifyError::BadSignature {
            what: what.to_string(),
            detail: format!("the signature of {d} does not verify"),
        },
        NoteError::NoKnownSignature(d) => VerifyError::UnknownKey {
            what: what.to_string(),
            detail: format!("signed by {d}"),
        },
        e => VerifyError::Malformed {
            what: what.to_string(),
            detail: e.to_string(),
        },
    }
}

fn check_signature(what: &str, c: &SignedCheckpoint, key: &VerifierKey) -> Result<(), VerifyError> {
    c.note
        .verify(std::slice::from_ref(key))
        .map(|_| ())
        .map_err(|e| note_error(what, e))
}
