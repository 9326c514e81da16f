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
    CounterInfo, CounterKind, HostMode, ModeOverride, Ruleset, TABLE, compile_host, fail_closed,
    host_mode,
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

/// `bulkhead compile --target nftables`: every inventory host (or only `host`) compiled, as
/// files `HOST.nft.json` (the JSON transaction) and `HOST.nft` (the same in nft's language),
/// with every host's notes prefixed by its name.
pub fn compile(
    intent: &bulkhead_intent::Intent,
    opts: &bulkhead_compile::Options,
    host: Option<&str>,
    force: ModeOverride,
) -> Result<bulkhead_compile::Compiled, NftError> {
    let mut out = bulkhead_compile::Compiled::default();
    let hosts: Vec<&str> = match host {
        Some(h) => vec![h],
        None => opts
            .inventory
            .iter()
            .filter(|i| i.kind == bulkhead_intent::IdentityKind::Host)
            .map(|i| i.name.as_str())
            .collect(),
    };
    for h in hosts {
        let rs = compile_host(intent, opts, h, force)?;
        out.files.insert(format!("{h}.nft.json"), to_json(&rs));
        out.files.insert(format!("{h}.nft"), to_text(&rs));
        out.notes.extend(
            rs.notes
                .iter()
                .map(|n| format!("{h} ({}): {n}", rs.mode.as_str())),
        );
    }
    Ok(out)
}
