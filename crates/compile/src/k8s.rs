//! The `k8s` target.

use crate::{CompileError, Compiled, Options, Target};
use bulkhead_intent::Intent;

/// Compiles `intent` for `k8s`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let _ = (intent, opts);
    Err(CompileError::Limit {
        target: Target::K8s,
        what: "not built yet".to_string(),
    })
}
