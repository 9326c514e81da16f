//! Host enforcement with nftables.
//!
//! - [`compile_host`]: the intent (with the host inventory) compiled for one host into the
//!   table `inet bulkhead` ([`Ruleset`]), rendered as an nft JSON transaction ([`to_json`]) and
//!   as nft text ([`to_text`]). Pure.
//! - [`Nft`]: runs `nft` (optionally inside `ip netns exec NS`) to apply a ruleset atomically,
//!   read the table back, compare it with what was applied in a normal form ([`NormalForm`]),
//!   and read the named counters.
//!
//! The ruleset's shape and the agent built on it are documented in `docs/agent.md`.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod json;
pub mod normal;
pub mod ruleset;
pub mod text;

pub use adapter::{CounterValue, Nft};
pub use json::to_json;
pub use normal::NormalForm;
pub use ruleset::{
    CounterInfo, CounterKind, HostMode, ModeOverride, Ruleset, TABLE, compile_host, host_mode,
};
pub use text::to_text;

/// What can go wrong compiling or applying a host's ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("no host {0:?} in the host inventory")]
    UnknownHost(String),
    #[error(transparent)]
    Compile(#[from] bulkhead_compile::CompileError),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{command} failed (exit {code:?}): {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("cannot read nft's JSON output: {0}")]
    Output(String),
}
