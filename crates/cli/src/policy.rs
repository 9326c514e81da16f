//! `bulkhead policy …`: policy as code. `policy lint` checks intent resources (schema and
//! semantics) and `bench intent` measures the evaluator.
//!
//! Exit codes of `policy lint`: 0 no error (warnings allowed, unless `--deny-warnings`), 1 the
//! policy has errors (schema or semantic), 3 the command's other inputs could not be read (a
//! missing policy path, an unreadable or malformed `--inventory` or `--hosts`). `bulkhead plan`
//! reports lint errors as its own exit 3, an input error of the plan.

use crate::verify::plural;
use anyhow::{Context, Result};
use bulkhead_core::{Labels, Protocol};
use bulkhead_intent::{
    Diagnostic, Evaluator, Identity, Intent, LintOptions, Severity, Universe, Verdict, lint,
    load_paths,
};
use bulkhead_synth::SplitMix64;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check intent resources (Segment, Policy, Invariant): schema errors with file, line and
    /// column, unknown segments, shadowed and redundant rules, guardrails opening a compliance
    /// scope to everyone, and (with an inventory) selectors that match no workload.
    Lint(LintArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct LintArgs {
    /// Policy files or directories (read recursively for .yaml and .yml, in name order).
    #[arg(required = true, value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Kubernetes manifests (files or directories) whose workloads selectors are checked against.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories (YAML or CSV) whose hosts selectors are checked against.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    format: LintFormat,
    /// Exit 1 on warnings too.
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Lint(a) => match run_lint(&a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(3)
            }
        },
    }
}

/// Workloads of Kubernetes manifests and hosts of host inventories as identities.
pub fn inventory_identities(manifests: &[PathBuf], hosts: &[PathBuf]) -> Result<Vec<Identity>> {
    let mut ids = Vec::new();
    if !manifests.is_empty() {
        for p in manifests {
            anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
        }
        let loaded = bulkhead_k8s::Loaded::from_paths(manifests);
        if let Some(e) = loaded.errors.first() {
            anyhow::bail!(
                "--inventory: {e} ({} malformed object{})",
                loaded.errors.len(),
                if loaded.errors.len() == 1 { "" } else { "s" }
            );
        }
        let c = &loaded.cluster;
        for w in &c.workloads {
            let mut id = Identity::workload(
                &w.namespace,
                &w.name,
                w.labels.clone(),
                c.ns_labels(&w.namespace).clone(),
            );
            id.named_ports = w.named_ports.clone();
            id.service_account = w.service_account.clone();
            ids.push(id);
        }
    }
    for h in hosts {
        let list = bulkhead_identity::load_hosts(h).map_err(|errs| {
            anyhow::anyhow!(
                "--hosts: {}",
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        for host in list {
            let labels: Labels = host.labels.into_iter().collect();
            ids.push(Identity::host(
                &host.name,
                labels,
                host.addresses.iter().map(|n| n.addr()).collect(),
            ));
        }
    }
    Ok(ids)
}

/// What `policy lint` finds: the diagnostics of the loader and the semantic checks, in file order
/// (notes without a place last), with the intent that parsed.
pub struct Linted {
    pub files: usize,
    pub intent: Intent,
    pub diagnostics: Vec<Diagnostic>,
    /// Workloads and hosts the selectors were checked against (`None`: not checked).
    pub inventory: Option<usize>,
}

impl Linted {
    pub fn count(&self, s: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == s).count()
    }
}

/// Loads and lints the policy at `paths`; with `ids`, selectors are checked against them.
/// Paths that do not exist are reported as `io` errors by the loader (callers that want an
/// input error check first).
pub fn lint_paths(paths: &[PathBuf], ids: Option<Vec<Identity>>) -> Linted {
    let with_inventory = ids.is_some();
    let loaded = load_paths(paths);
    let mut diags = loaded.diagnostics.clone();
    let intent: &Intent = &loaded.intent;
    // Semantic checks run on the resources that parsed; an evaluator is only built (for the
    // inventory check) when no reference is broken.
    let ev = Evaluator::new(intent).ok();
    let universe = match (&ev, ids) {
        (Some(ev), Some(ids)) => Some(Universe::new(ev, ids)),
        _ => None,
    };
    let mut sem = lint(
        intent,
        &LintOptions {
            universe: universe.as_ref(),
        },
    );
    if with_inventory && universe.is_none() {
        // The evaluator refused the intent (unknown segments, reported above): say why the
        // inventory check did not run instead of the generic note.
        sem.retain(|d| d.code != "no-inventory");
        sem.push(Diagnostic::note(
            "no-inventory",
            Default::default(),
            "selectors were not checked against the inventory: fix the unknown segments first",
        ));
    }
    diags.extend(sem);
    // In file order; notes without a place last.
    diags.sort_by(|a, b| {
        (a.loc.file.is_empty(), &a.loc, a.severity).cmp(&(
            b.loc.file.is_empty(),
            &b.loc,
            b.severity,
        ))
    });
    let inventory = universe.as_ref().map(|u| u.identities.len());
    drop(universe);
    Linted {
        files: loaded.files,
        intent: loaded.intent,
        diagnostics: diags,
        inventory,
    }
}

fn run_lint(a: &LintArgs) -> Result<ExitCode> {
    for p in &a.paths {
        anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
    }
    let with_inventory = !a.inventory.is_empty() || !a.hosts.is_empty();
    let ids = if with_inventory {
        Some(inventory_identities(&a.inventory, &a.hosts)?)
    } else {
        None
    };
    let linted = lint_paths(&a.paths, ids);
    let (diags, intent) = (&linted.diagnostics, &linted.intent);
    let errors = linted.count(Severity::Error);
    let warnings = linted.count(Severity::Warning);
    let resources = intent.segments.len() + intent.policies.len() + intent.invariants.len();
    let text = match a.format {
        LintFormat::Json => {
            let v = serde_json::json!({
                "files": linted.files,
                "resources": resources,
                "segments": intent.segments.len(),
                "policies": intent.policies.len(),
                "invariants": intent.invariants.len(),
                "inventory": linted.inventory,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diags,
            });
            serde_json::to_string_pretty(&v)? + "\n"
        }
        LintFormat::Text => {
            let mut s = String::new();
            for d in diags {
                s.push_str(&d.to_string());
                s.push('\n');
            }
            s.push_str(&format!(
                "policy lint: {} file{}, {} segment{}, {} polic{}, {} invariant{}{}: {errors} error{}, {warnings} warning{}\n",
                linted.files,
                plural(linted.files),
                intent.segments.len(),
                plural(intent.segments.len()),
                intent.policies.len(),
                if intent.policies.len() == 1 { "y" } else { "ies" },
                intent.invariants.len(),
                plural(intent.invariants.len()),
                linted
                    .inventory
                    .map(|n| format!(" over {n} workloads and hosts"))
                    .unwrap_or_default(),
                plural(errors),
                plural(warnings),
            ));
            s
        }
    };
    crate::write_output(None, &text)?;
    Ok(if errors > 0 || (a.deny_warnings && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct BenchIntentArgs {
    /// Policy directory (default: the worked bank example).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    /// Synthetic workloads and hosts (bank-like labels: `segment`, `app`).
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    /// Synthetic application rules added to the policy (segment or app selectors, 1–3 ports).
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    /// Decisions to time.
    #[arg(long, default_value_t = 2_000_000)]
    decisions: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) const BENCH_SEGMENTS: &[&str] = &[
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

pub(crate) fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The benchmark's synthetic shape: the policy at `policy` plus `rules` application rules between
/// segments or apps, and `workloads` identities (70 % pods, 30 % hosts) spread over the bank's
/// segments. Shared by `bench intent` and `bench verify`.
pub fn synthetic(
    policy: &std::path::Path,
    workloads: usize,
    rules: usize,
    rng: &mut SplitMix64,
) -> Result<(Intent, Vec<Identity>)> {
    let loaded = load_paths(&[policy.to_path_buf()]);
    if loaded.has_errors() {
        let first = loaded
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(ToString::to_string)
            .unwrap_or_default();
        anyhow::bail!("{}: the policy has errors: {first}", policy.display());
    }
    let mut intent = loaded.intent;
    let apps_per_segment = (workloads / BENCH_SEGMENTS.len()).max(1);
    // Synthetic application rules between segments or apps.
    let mut yaml = String::from(
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: synthetic}\nspec:\n  tier: application\n  rules:\n",
    );
    for _ in 0..rules {
        let side = |rng: &mut SplitMix64| {
            let seg = BENCH_SEGMENTS[rng.below(BENCH_SEGMENTS.len())];
            if rng.chance(50) {
                format!("{{segment: {seg}}}")
            } else {
                let app = format!("{seg}-app-{}", rng.below(apps_per_segment));
                format!(
                    "{{selector: {{podSelector: {{matchLabels: {{app: {app}}}}}, hostSelector: {{matchLabels: {{app: {app}}}}}}}}}"
                )
            }
        };
        let (f, t) = (side(rng), side(rng));
        let ports: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!("{{port: {}}}", 1000 + rng.below(9000)))
            .collect();
        yaml.push_str(&format!(
            "    - action: allow\n      from: [{f}]\n      to: [{t}]\n      ports: [{}]\n",
            ports.join(", ")
        ));
    }
    let extra = bulkhead_intent::load_str("synthetic.yaml", &yaml);
    anyhow::ensure!(
        !extra.has_errors(),
        "synthetic rules: {:?}",
        extra.diagnostics.first()
    );
    intent.policies.extend(extra.intent.policies);
    // Identities: 70 % pods, 30 % hosts, spread over the segments.
    let mut ids = Vec::with_capacity(workloads);
    for i in 0..workloads {
        let seg = BENCH_SEGMENTS[i % BENCH_SEGMENTS.len()];
        let app = format!(
            "{seg}-app-{}",
            (i / BENCH_SEGMENTS.len()) % apps_per_segment
        );
        let labels: Labels = [
            ("segment".to_string(), seg.to_string()),
            ("app".to_string(), app.clone()),
        ]
        .into_iter()
        .collect();
        if i % 10 < 7 {
            let ns: Labels = [("segment".to_string(), seg.to_string())]
                .into_iter()
                .collect();
            ids.push(Identity::workload(seg, &format!("{app}-{i}"), labels, ns));
        } else {
            let ip = std::net::Ipv4Addr::from(0x0A32_0000u32 + i as u32);
            ids.push(Identity::host(
                &format!("{app}-{i}"),
                labels,
                vec![ip.into()],
            ));
        }
    }
    Ok((intent, ids))
}

/// `bulkhead bench intent`: compile the intent over synthetic identities, then time decisions
/// on random edges; prints JSON.
pub fn run_bench(a: BenchIntentArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let (intent, ids) = synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    let n = ids.len();
    let (c0, t0) = (cpu_secs(), Instant::now());
    let ev = Evaluator::new(&intent).context("compile")?;
    let universe = Universe::new(&ev, ids);
    let (c1, t1) = (cpu_secs(), Instant::now());
    let edges: Vec<(usize, usize, u16)> = (0..a.decisions.min(1 << 20))
        .map(|_| {
            let port = if rng.chance(50) {
                1000 + rng.below(9000) as u16
            } else {
                [53u16, 443, 8443, 9090, 22][rng.below(5)]
            };
            (rng.below(n), rng.below(n), port)
        })
        .collect();
    let (c2, t2) = (cpu_secs(), Instant::now());
    let mut counts = [0usize; 3];
    for k in 0..a.decisions {
        let (s, d, port) = edges[k % edges.len()];
        let dec = universe.decide_edge(s, d, Protocol::Tcp, port);
        counts[match dec.verdict {
            Verdict::Allow => 0,
            Verdict::Deny => 1,
            Verdict::WouldBlock => 2,
        }] += 1;
    }
    let (c3, t3) = (cpu_secs(), Instant::now());
    let cpu = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let decide_cpu = cpu(c2, c3);
    let v = serde_json::json!({
        "identities": n,
        "rules": ev.rule_count(),
        "segments": intent.segments.len(),
        "compile_wall_s": (t1 - t0).as_secs_f64(),
        "compile_cpu_s": cpu(c0, c1),
        "decisions": a.decisions,
        "decide_wall_s": (t3 - t2).as_secs_f64(),
        "decide_cpu_s": decide_cpu,
        "decisions_per_cpu_s": decide_cpu.filter(|&c| c > 0.0).map(|c| (a.decisions as f64 / c).round()),
        "allow": counts[0],
        "deny": counts[1],
        "would_block": counts[2],
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
