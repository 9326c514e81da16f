//! Bulkhead's tamper-evident audit log.
//!
//! Every state change Bulkhead makes is one entry in an append-only log kept as an RFC 6962 /
//! RFC 9162 Merkle tree. Each leaf is an [`Event`] in canonical JSON (see [`event`]); the log
//! signs C2SP checkpoints (tree size and root hash, Ed25519) after every append, and proves
//! inclusion and consistency. Anyone holding the public key can verify the log or an export of
//! it with the `bulkhead` binary alone.
//!
//! # The one way in
//! Every command that changes state records it through [`AuditLog::record`] (or
//! [`AuditLog::append_batch`] for many at once, with one fsync):
//!
//! ```no_run
//! use bulkhead_audit::{AuditLog, Digest, Event, KeySource, actions};
//! # fn main() -> Result<(), bulkhead_audit::AuditError> {
//! let mut log = AuditLog::open("bulkhead-data".as_ref(), KeySource::DataDir)?;
//! let mut ev = Event::new("alice", actions::POLICY_LOAD, "policies/pci.yaml", "CHG-1234");
//! ev.after = Some(Digest::of(b"...the policy bytes..."));
//! let index = log.record(ev)?; // on disk and signed when this returns
//! # let _ = index; Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod event;
pub mod merkle;
pub mod note;
mod proof;
mod store;
mod verify;

pub use event::{Clock, Digest, Entry, Event, EventError, FixedClock, SystemClock, actions};
pub use merkle::{Hash, ProofError, Tree};
pub use note::{Checkpoint, Note, NoteError, SignedCheckpoint, SigningKey, VerifierKey};
pub use proof::{Proof, ProofFormatError};
pub use store::{
    AuditError, AuditLog, ENTRIES_HEADER, EXPORT_FORMAT, KeySource, LogReader, Paths,
    default_trusted_key, verify_dir, verify_export,
};
pub use verify::{Report, SinceReport, Verifier, VerifyError, note_error};
