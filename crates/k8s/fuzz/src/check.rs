//! Loading text and the invariants every load must hold, whatever the input.

use bulkhead_core::{Cluster, Endpoint, Engine, IpRange};
use bulkhead_k8s::{LoadError, Loaded, Manifests, build};

/// What one load gave: the objects and errors of the loader, and the built result.
pub struct Outcome {
    /// Objects the loader read (list items counted one by one).
    pub objects: usize,
    /// The loader's own errors (before `build`); `loaded.errors` starts with them.
    pub load_errors: Vec<LoadError>,
    pub loaded: Loaded,
}

impl Outcome {
    /// The errors `build` added (conversion problems), after the loader's.
    pub fn build_errors(&self) -> &[LoadError] {
        &self.loaded.errors[self.load_errors.len()..]
    }
}

/// Lines as YAML (and editors) count them: `\n`, `\r\n` and a lone `\r` each end one.
pub fn line_count(s: &str) -> usize {
    s.replace("\r\n", "\n").replace('\r', "\n").lines().count()
}

/// Loads `text` as the file `file`, builds the cluster and checks [`invariants`].
pub fn load(file: &str, text: &str) -> Outcome {
    let mut m = Manifests::default();
    m.load_str(file, text);
    let objects = m.objects.len();
    let load_errors = m.errors.clone();
    let loaded = build(m);
    invariants(file, text, &loaded);
    assert!(
        loaded.errors.starts_with(&load_errors),
        "build dropped or reordered the loader's errors"
    );
    Outcome {
        objects,
        load_errors,
        loaded,
    }
}

/// Every error names the file, has a reason and a line inside the input (0: the whole file, and
/// then no column); every warning says something; everything built points into the input.
pub fn invariants(file: &str, text: &str, loaded: &Loaded) {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let line_texts: Vec<&str> = unified.lines().collect();
    let lines = line_texts.len();
    for e in &loaded.errors {
        assert_eq!(e.file, file, "error names another file: {e:?}");
        assert!(!e.reason.trim().is_empty(), "error without a reason: {e:?}");
        assert!(
            e.line <= lines,
            "error points at line {} of a {lines}-line input: {e:?}",
            e.line
        );
        if e.line == 0 {
            assert_eq!(e.column, 0, "a column without a line: {e:?}");
        } else if e.column > 0 {
            // Columns count characters, as editors do; one past the end is the end of the line.
            let width = line_texts[e.line - 1].chars().count();
            assert!(
                e.column <= width + 1,
                "error at column {} of a {width}-character line {:?}: {e:?}",
                e.column,
                line_texts[e.line - 1]
            );
        }
        assert!(!e.to_string().is_empty());
    }
    for w in &loaded.warnings {
        assert!(!w.trim().is_empty(), "empty warning");
    }
    let origins = loaded
        .cluster
        .workloads
        .iter()
        .map(|w| &w.origin)
        .chain(loaded.cluster.policies.iter().map(|p| &p.origin));
    for o in origins {
        assert_eq!(o.file, file, "object from another file: {o}");
        assert!(
            (1..=lines).contains(&o.line),
            "object at line {} of a {lines}-line input",
            o.line
        );
    }
    for (name, labels) in &loaded.cluster.namespaces {
        assert_eq!(
            labels.get(bulkhead_core::NAMESPACE_NAME_LABEL),
            Some(name),
            "namespace {name:?} without its name label"
        );
    }
}

/// A document put before the text: the text's errors are the same, three lines further down.
const PREFIX: &str = "kind: Namespace\nmetadata: {name: bulkhead-fuzz-prefix}\n---\n";
const PREFIX_LINES: usize = 3;

/// Documents are read one by one: putting one before `text` moves every error of the text down
/// by the lines it takes, and changes nothing else about them. (Not for text the loader reads
/// as a whole: JSON, a bare array, or text starting with a byte-order mark.)
pub fn prefix_shifts_errors(file: &str, text: &str, alone: &Outcome) {
    if text.starts_with('\u{feff}') || text.trim_start().starts_with(['{', '[']) {
        return;
    }
    let with = load(file, &format!("{PREFIX}{text}"));
    let shifted: Vec<LoadError> = alone
        .loaded
        .errors
        .iter()
        .map(|e| LoadError {
            line: e.line + PREFIX_LINES,
            ..e.clone()
        })
        .collect();
    assert_eq!(
        with.loaded.errors, shifted,
        "a document before the text changes its errors"
    );
}

/// Whatever was built, the engine answers over it without panicking (a few workloads and one
/// external address, every pair).
pub fn engine_answers(cluster: &Cluster) {
    let engine = Engine::new(cluster);
    let n = cluster.workloads.len().min(4);
    let ext = Endpoint::External(IpRange::V4(0x0a00_0001, 0x0a00_0001));
    let eps: Vec<Endpoint> = (0..n)
        .map(Endpoint::Workload)
        .chain(std::iter::once(ext))
        .collect();
    for &s in &eps {
        for &d in &eps {
            let _ = engine.allowed(s, d);
        }
    }
}
