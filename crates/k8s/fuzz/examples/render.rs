//! Prints what a `load_manifest_structured` input stands for: the skeleton's three renderings
//! (block YAML, flow YAML, JSON), for reading a crash artifact or a seed.
//!
//! `cargo run --manifest-path crates/k8s/fuzz/Cargo.toml --example render -- FILE...`

use arbitrary::{Arbitrary, Unstructured};
use bulkhead_k8s_fuzz::skeleton::{self, Input};

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("==> {path}");
        let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            println!("(not a skeleton: the target ignores it)");
            continue;
        };
        let r = skeleton::values(&input);
        println!(
            "# {} document(s); values outside the vocabularies: {}; expected objects: {}, list-item errors: {}",
            r.docs.len(),
            r.raw,
            r.expected_objects,
            r.expected_item_errors
        );
        println!(
            "--- block YAML:\n{}",
            skeleton::render_block(&r.docs, input.layout).text
        );
        println!(
            "--- flow YAML:\n{}",
            skeleton::render_flow(&r.docs, input.layout).text
        );
        println!(
            "--- JSON:\n{}",
            skeleton::render_json(&r.docs, input.layout).text
        );
    }
}
