//! `cargo run --release -p bulkhead-analysis --example engine_bench -- DIR`
fn main() {
    let dir = std::env::args().nth(1).expect("usage: engine_bench DIR");
    match bulkhead_analysis::bench::run(std::path::Path::new(&dir), 2000, 60, 7) {
        Ok(b) => println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default()),
        Err(e) => eprintln!("{e}"),
    }
}
