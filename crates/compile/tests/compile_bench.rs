//! Compile time of the `cilium` and `calico` targets at the issue's scale: the bank example plus
//! 5,000 synthetic application rules (the shape of `bulkhead bench intent`: segment or `app`
//! peers, 1–3 ports) over 10,000 identities (70 % pods, 30 % hosts whose addresses the rules'
//! host selectors resolve to). Ignored: a measurement, not a test (no timing assertion). Run:
//!
//! ```sh
//! cargo test --release -p bulkhead-compile --test compile_bench -- --ignored --nocapture
//! ```

mod support;

use bulkhead_compile::{Options, Target, compile};
use bulkhead_core::Labels;
use bulkhead_intent::Identity;
use std::time::Instant;

const RUNS: usize = 3;
const SEGMENTS: &[&str] = &[
    "channels",
    "edge",
    "identity",
    "accounts",
    "payments",
    "cards",
    "core-ledger",
    "customer-data",
    "fraud",
    "messaging",
    "notifications",
    "marketing-analytics",
    "reporting",
    "shared-infra",
];

/// CPU seconds of this process (user + system), from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let f: Vec<&str> = rest.split(' ').collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
#[ignore]
fn compile_10k_workloads_5k_rules() {
    let (workloads, rules) = (10_000usize, 5_000usize);
    let mut rng = Rng(1);
    let mut intent = support::bank_intent();
    let apps = (workloads / SEGMENTS.len()).max(1);
    let mut y = String::from(
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: synthetic}\nspec:\n  tier: application\n  rules:\n",
    );
    for _ in 0..rules {
        let side = |rng: &mut Rng| {
            let seg = SEGMENTS[rng.below(SEGMENTS.len())];
            if rng.below(2) == 0 {
                format!("{{segment: {seg}}}")
            } else {
                let app = format!("{seg}-app-{}", rng.below(apps));
                format!(
                    "{{selector: {{podSelector: {{matchLabels: {{app: {app}}}}}, hostSelector: {{matchLabels: {{app: {app}}}}}}}}}"
                )
            }
        };
        let (f, t) = (side(&mut rng), side(&mut rng));
        let ports: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!("{{port: {}}}", 1000 + rng.below(9000)))
            .collect();
        y.push_str(&format!(
            "    - action: allow\n      from: [{f}]\n      to: [{t}]\n      ports: [{}]\n",
            ports.join(", ")
        ));
    }
    intent.policies.extend(support::load(&y).policies);
    let mut inventory = Vec::new();
    for i in 0..workloads {
        let seg = SEGMENTS[i % SEGMENTS.len()];
        let app = format!("{seg}-app-{}", (i / SEGMENTS.len()) % apps);
        let labels: Labels = support::labels(&[("segment", seg), ("app", &app)]);
        if i % 10 >= 7 {
            let ip = std::net::Ipv4Addr::from(0x0A32_0000u32 + i as u32);
            inventory.push(Identity::host(
                &format!("{app}-{i}"),
                labels,
                vec![ip.into()],
            ));
        }
    }
    let rule_count: usize = intent.policies.iter().map(|p| p.rules.len()).sum();
    let opts = Options {
        inventory,
        ..Default::default()
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} workloads ({} hosts in the inventory), {rule_count} rules; load average {}",
        workloads,
        opts.inventory.len(),
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    for run in 1..=RUNS {
        let (c0, t0) = (cpu_secs(), Instant::now());
        let low =
            bulkhead_compile::lower::Lowered::new(&intent, Target::Cilium, &opts).expect("lowers");
        println!(
            "lowering alone (peers resolved, hosts' addresses from the inventory) run {run}: {:.2} s CPU, {:.2} s wall, {} rules",
            cpu_secs() - c0,
            t0.elapsed().as_secs_f64(),
            low.rules.len()
        );
    }
    for target in [Target::Cilium, Target::Calico] {
        for run in 1..=RUNS {
            let (c0, t0) = (cpu_secs(), Instant::now());
            let out = compile(&intent, target, &opts).expect("compiles");
            let (cpu, wall) = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
            let bytes: usize = out.files.values().map(String::len).sum();
            let objects: usize = out
                .files
                .values()
                .map(|t| t.matches("\n---\n").count())
                .sum();
            println!(
                "{target} run {run}: {cpu:.2} s CPU, {wall:.2} s wall, {objects} objects, {:.1} MB",
                bytes as f64 / 1e6
            );
        }
    }
}
