//! Fuzzing Bulkhead's Kubernetes manifest loader and the value parsers of `bulkhead-core`.
//!
//! The logic lives here, in this library; each target in `fuzz_targets/` is one line that hands
//! libFuzzer's bytes to one of the functions below. So the checks can be read, unit-tested and
//! replayed on stable (`cargo test --manifest-path crates/k8s/fuzz/Cargo.toml` replays the seed
//! corpus), and only the fuzzing itself needs nightly (`cargo +nightly fuzz run TARGET`).
//!
//! * [`load_manifest`]: any bytes, read as (lossy) UTF-8 text, through
//!   `Manifests::load_str` and `build`: no panic, every error and warning holds the invariants
//!   in [`check`], and a document put before the text moves its errors down and changes nothing
//!   else about them.
//! * [`load_manifest_structured`]: bytes mapped onto a skeleton of Kubernetes objects
//!   (NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, Pod, workloads, Namespace,
//!   List, …) whose values come mostly from small vocabularies, so that most inputs get past the
//!   parser into the conversion code. Each skeleton is written as block YAML, flow YAML and
//!   JSON; the three must load to the same cluster (see [`skeleton`]).
//! * [`fast_reader`]: any bytes, as (lossy) UTF-8 text cut at `---` lines, each document read
//!   by the loader's fast reader for the plain YAML subset and by serde-saphyr: whatever the
//!   fast reader takes, both must read the same (it hands everything else to serde-saphyr).
//! * [`parse_values`]: the `FromStr`-style parsers of `bulkhead-core` (`ConnSet`, `Protocol`,
//!   `IpSet::cidr`, `Operator`, and label requirements): no panic, and what parses prints back
//!   to text that parses to the same value.

pub mod check;
pub mod seeds;
pub mod skeleton;
pub mod values;

/// The file name the fuzzed text is loaded under.
pub const FILE: &str = "fuzz.yaml";

/// Target `load_manifest`: arbitrary bytes as lossy UTF-8 text through the loader and `build`.
pub fn load_manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let out = check::load(FILE, &text);
    check::prefix_shifts_errors(FILE, &text, &out);
    check::engine_answers(&out.loaded.cluster);
}

/// Target `load_manifest_structured`: bytes mapped onto a skeleton of Kubernetes objects.
pub fn load_manifest_structured(data: &[u8]) {
    use arbitrary::Arbitrary;
    let Ok(input) = skeleton::Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    skeleton::check(&input);
}

/// Target `fast_reader`: the fast YAML reader agrees with serde-saphyr on what it takes. The
/// text is cut at lines that are exactly `---` and each piece read as one document.
pub fn fast_reader(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut doc = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            agree(&doc);
            doc.clear();
        } else {
            doc.push_str(line);
        }
    }
    agree(&doc);
}

fn agree(doc: &str) {
    if let Err(e) = bulkhead_k8s::agrees_with_serde_saphyr(doc) {
        panic!("{e}");
    }
}

/// Target `parse_values`: the core value parsers, with round trips.
pub fn parse_values(data: &[u8]) {
    values::check(&String::from_utf8_lossy(data));
}
