//! Times reading manifests and converting them to the core model, in wall and CPU time:
//! `cargo run --release -p bulkhead-k8s --example load_time -- PATH...`.
use bulkhead_k8s::{Manifests, build};
use std::time::Instant;

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (Linux; 0
/// elsewhere).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks; 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let (t0, c0) = (Instant::now(), cpu_s());
    let m = Manifests::load_paths(&paths);
    let (t1, c1) = (Instant::now(), cpu_s());
    let (objects, errors, warnings) = (m.objects.len(), m.errors.len(), m.warnings.len());
    let loaded = build(m);
    let (t2, c2) = (Instant::now(), cpu_s());
    println!(
        "{objects} objects, {errors} errors, {warnings} warnings, {} workloads; read {:.3} s (cpu {:.2} s), convert {:.3} s (cpu {:.2} s)",
        loaded.cluster.workloads.len(),
        (t1 - t0).as_secs_f64(),
        c1 - c0,
        (t2 - t1).as_secs_f64(),
        c2 - c1,
    );
}
