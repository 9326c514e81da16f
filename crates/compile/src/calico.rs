//! The `calico` target.

use crate::{CompileError, Compiled, Options, Target};
use bulkhead_intent::Intent;

/// Compiles `intent` for `calico`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let _ = (intent, opts);
    Err(CompileError::Limit {
        target: Target::Calico,
        what: "not built yet".to_string(),
    })
}
