//! The `cilium` target.

use crate::{CompileError, Compiled, Options, Target};
use bulkhead_intent::Intent;

/// Compiles `intent` for `cilium`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let _ = (intent, opts);
    Err(CompileError::Limit {
        target: Target::Cilium,
        what: "not built yet".to_string(),
    })
}
