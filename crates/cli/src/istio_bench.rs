//! `bulkhead bench istio`: compile the bank policy plus synthetic rules over synthetic workloads
//! to Istio AuthorizationPolicies; prints JSON with CPU seconds and the load average.

use crate::policy::{cpu_secs, synthetic};
use anyhow::Result;
use bulkhead_compile::{Options, Target, compile};
use bulkhead_intent::IdentityKind;
use bulkhead_synth::SplitMix64;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct BenchIstioArgs {
    /// Policy directory (default: the worked bank example).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    /// Synthetic workloads and hosts (70 % / 30 %), each workload with its own service account.
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    /// Synthetic application rules added to the policy.
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the compiled files here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

pub fn run(a: BenchIstioArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let (intent, mut ids) = synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    for id in &mut ids {
        if let IdentityKind::Workload { .. } = id.kind {
            id.service_account = Some(id.name.rsplit('/').next().unwrap_or("sa").to_string());
        }
    }
    let rules: usize = intent.policies.iter().map(|p| p.rules.len()).sum();
    let opts = Options {
        inventory: ids,
        ..Options::default()
    };
    let (c0, t0) = (cpu_secs(), Instant::now());
    let out = compile(&intent, Target::Istio, &opts)?;
    let (c1, t1) = (cpu_secs(), Instant::now());
    let objects: usize = out
        .files
        .values()
        .map(|t| t.matches("kind: ").count())
        .sum();
    let bytes: usize = out.files.values().map(String::len).sum();
    let v = serde_json::json!({
        "identities": opts.inventory.len(),
        "rules": rules,
        "compile_cpu_s": c0.zip(c1).map(|(a, b)| b - a),
        "compile_wall_s": (t1 - t0).as_secs_f64(),
        "files": out.files.len(),
        "objects": objects,
        "bytes": bytes,
        "notes": out.notes.len(),
        "loadavg": loadavg(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    if let Some(dir) = &a.out {
        for (rel, text) in &out.files {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, text)?;
        }
    }
    Ok(())
}
