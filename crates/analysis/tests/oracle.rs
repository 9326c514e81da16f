//! np-guard's netpol-analyzer as an outside oracle: every case in
//! `../shared/testdata/netpol-oracle/` goes through the code path of
//! `bulkhead connectivity --format txt` and must match the expected file line by line.

use bulkhead_analysis::{Format, Options, connectivity, render};
use bulkhead_core::Engine;
use bulkhead_k8s::Loaded;
use std::path::PathBuf;

fn oracle_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BULKHEAD_NETPOL_ORACLE") {
        return PathBuf::from(d);
    }
    // crates/analysis → repository root → ../shared
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/netpol-oracle")
}

#[test]
fn every_oracle_case_matches_line_by_line() {
    let dir = oracle_dir();
    let cases = dir.join("cases");
    let entries = std::fs::read_dir(&cases).unwrap_or_else(|e| {
        panic!("the netpol oracle is missing at {} ({e}); it must sit beside the repository as ../shared", cases.display())
    });
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no oracle cases under {}",
        cases.display()
    );
    let mut failures = Vec::new();
    for name in &names {
        let expected_path = dir.join("expected").join(format!("{name}.txt"));
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "expected output {} is missing: {e}",
                expected_path.display()
            )
        });
        let loaded = Loaded::from_paths(&[cases.join(name)]);
        if !loaded.errors.is_empty() {
            failures.push(format!(
                "{name}: load errors: {:?}",
                loaded
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            ));
            continue;
        }
        let engine = Engine::new(&loaded.cluster);
        let got = render(
            &connectivity(&engine, &Options::default()),
            Format::Txt,
            &engine,
        );
        if got != expected {
            let g: Vec<&str> = got.lines().collect();
            let e: Vec<&str> = expected.lines().collect();
            let missing: Vec<&&str> = e.iter().filter(|l| !g.contains(l)).take(5).collect();
            let extra: Vec<&&str> = g.iter().filter(|l| !e.contains(l)).take(5).collect();
            failures.push(format!(
                "{name}: got {} lines, expected {}\n  missing: {missing:#?}\n  unexpected: {extra:#?}",
                g.len(),
                e.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} oracle cases differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    eprintln!("{} oracle cases match", names.len());
}
