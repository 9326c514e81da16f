//! Replays the seed corpus through the fuzz checks (on stable, no libFuzzer), and keeps the
//! hand-written seeds meaningful as the loader changes.

use bulkhead_k8s_fuzz::{check, seeds};
use std::path::{Path, PathBuf};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(seeds_dir().join(target))
        .unwrap_or_else(|e| panic!("seeds/{target}: {e}"))
        .map(|e| {
            let p = e.expect("a directory entry").path();
            let bytes = std::fs::read(&p).expect("a seed file");
            (p.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn seed_corpus_replays_through_every_target() {
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 4] = [
        ("load_manifest", bulkhead_k8s_fuzz::load_manifest),
        (
            "load_manifest_structured",
            bulkhead_k8s_fuzz::load_manifest_structured,
        ),
        ("parse_values", bulkhead_k8s_fuzz::parse_values),
        ("fast_reader", bulkhead_k8s_fuzz::fast_reader),
    ];
    for (target, run) in targets {
        let files = files(target);
        assert!(!files.is_empty(), "seeds/{target} is empty");
        for (name, bytes) in files {
            eprintln!("{target}: {name}");
            run(&bytes);
        }
    }
}

#[test]
fn seed_files_match_their_sources() {
    for (name, text, _) in seeds::MANIFESTS {
        let on_disk = std::fs::read(seeds_dir().join("load_manifest").join(name))
            .unwrap_or_else(|e| panic!("seeds/load_manifest/{name}: {e}"));
        assert_eq!(
            on_disk,
            text.as_bytes(),
            "seeds/load_manifest/{name} is stale: run write_seeds"
        );
    }
    for (name, text) in seeds::VALUES {
        let on_disk = std::fs::read(seeds_dir().join("parse_values").join(name))
            .unwrap_or_else(|e| panic!("seeds/parse_values/{name}: {e}"));
        assert_eq!(
            on_disk,
            text.as_bytes(),
            "seeds/parse_values/{name} is stale: run write_seeds"
        );
    }
}

#[test]
fn hand_written_manifests_load_as_intended() {
    for (name, text, clean) in seeds::MANIFESTS {
        let out = check::load(name, text);
        let l = &out.loaded;
        assert!(out.objects > 0, "{name}: no object read: {:?}", l.errors);
        if *clean {
            assert!(
                l.errors.is_empty() && l.warnings.is_empty(),
                "{name}: {:?} {:?}",
                l.errors,
                l.warnings
            );
        } else {
            assert!(
                !l.errors.is_empty() || !l.warnings.is_empty(),
                "{name}: expected problems"
            );
        }
    }
}

/// `cargo test --manifest-path crates/k8s/fuzz/Cargo.toml -- --ignored write_seeds`
#[test]
#[ignore = "writes the seed corpus"]
fn write_seeds() {
    seeds::write_seeds(&seeds_dir()).expect("writing seeds");
    for t in ["load_manifest", "load_manifest_structured", "parse_values"] {
        eprintln!("seeds/{t}: {} files", files(t).len());
    }
}
