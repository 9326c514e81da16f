//! Shared helpers: where the outside test data lives.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/testdata/telemetry`, beside the repository. Fails loudly when missing.
pub fn testdata() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/telemetry");
    assert!(
        d.is_dir(),
        "test data missing: {} (the repository expects ../shared/testdata beside it)",
        d.display()
    );
    d
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
