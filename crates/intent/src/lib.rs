//! Policy as code: Bulkhead's own intent resources (`Segment`, `Policy`, `Invariant`), read from
//! YAML with every problem placed at file, line and column; the semantic checks of
//! `bulkhead policy lint`; the evaluator that decides a connection between two identities; the
//! exact verification of invariants (`bulkhead verify`); and the digital twin ([`Twin`],
//! [`diff`]) that compares two intents over recorded edges and over every pair.
//!
//! Pure apart from the loader reading files and directories ([`load`]). The schema and the
//! semantics are documented in `docs/intent.md`.
#![forbid(unsafe_code)]

mod diag;
mod eval;
mod lint;
pub mod load;
mod model;
pub mod quarantine;
pub mod recommend;
mod schema;
mod simulate;
mod verify;

pub use diag::{Diagnostic, Loc, Severity, closest};
pub use eval::{
    Decision, EvalError, Evaluator, Identity, IdentityKind, Profile, Reason, RuleRef, Side,
    SideMode, Universe, Verdict,
};
pub use lint::{LintOptions, lint};
pub use load::{Loaded, load_paths, load_paths_at, load_str};
pub use model::{
    API_VERSION, Action, EntitySelector, Intent, Invariant, InvariantKind, Meta, Mode, Peer,
    PeerAt, Policy, PortMatch, Rule, Segment, Tier,
};
pub use simulate::{Change, Classes, DiffRow, Twin, diff, port_intervals};
pub use verify::{
    ChainStep, InvariantResult, Piece, Reach, Status, VerifyOptions, Violation, chain_step,
    external_representatives, verify,
};
