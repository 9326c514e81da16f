//! Shared by the tests that run `bulkhead agent` on the kernel (`agent.rs`,
//! `quarantine_kernel.rs`): the agent process as a guard, and the audit log's actions.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The agent process, killed on drop (also when an assertion fails).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The actions of the audit log under `data`, in order; with `verify`, `bulkhead audit verify`
/// and the log must succeed.
pub fn audit_actions_of(data: &Path, verify: bool) -> Vec<String> {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("audit")
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .output()
            .unwrap();
        if verify {
            assert!(
                o.status.success(),
                "audit {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    if verify {
        run(&["verify"]);
    }
    // One JSON entry per line.
    run(&["log", "--format", "json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| {
            e.pointer("/event/action")
                .or_else(|| e.get("action"))
                .and_then(|a| a.as_str())
                .map(String::from)
        })
        .collect()
}
