//! Shared by the nft tests: the bank example with the simulated bank's host inventory.
#![allow(dead_code)]

use bulkhead_compile::Options;
use bulkhead_intent::{Identity, Intent, load_paths};
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bank example, read by a path relative to the crate (where cargo runs tests), so the
/// places in comments and notes do not depend on the checkout's location.
pub fn bank_intent() -> Intent {
    let l = load_paths(&[Path::new("../../examples/intent/bank")]);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.intent
}

/// The simulated bank's hosts (seed 1, the default size), as the CLI reads them.
pub fn bank_hosts() -> Vec<Identity> {
    let d = tempfile::tempdir().unwrap();
    bulkhead_bank::write_inventory(&bulkhead_bank::Config::default(), d.path()).unwrap();
    let hosts = bulkhead_identity::load_hosts(&d.path().join("hosts.yaml")).unwrap();
    hosts
        .into_iter()
        .map(|h| {
            Identity::host(
                &h.name,
                h.labels.into_iter().collect(),
                h.addresses.iter().map(|n| n.addr()).collect(),
            )
        })
        .collect()
}

pub fn bank_options() -> Options {
    Options {
        inventory: bank_hosts(),
        ..Options::default()
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
