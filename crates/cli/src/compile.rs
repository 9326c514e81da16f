//! `bulkhead compile`: the intent to an enforcement target's manifests, and `bulkhead bench
//! compile`.

use crate::policy::{LintFormat, cpu_secs, inventory_identities, lint_paths, synthetic};
use anyhow::{Context, Result};
use bulkhead_compile::{CompileError, Compiled, K8sApi, Options, Target};
use bulkhead_intent::Severity;
use bulkhead_synth::SplitMix64;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Marks an output directory as written by `bulkhead compile`, so a later run may replace it.
pub const MARKER: &str = ".bulkhead-compile";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    K8s,
    Cilium,
    Calico,
    Istio,
    Nftables,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::K8s => Target::K8s,
            TargetArg::Cilium => Target::Cilium,
            TargetArg::Calico => Target::Calico,
            TargetArg::Istio => Target::Istio,
            TargetArg::Nftables => Target::Nftables,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum K8sApiArg {
    /// AdminNetworkPolicy / BaselineAdminNetworkPolicy, policy.networking.k8s.io/v1alpha1.
    Anp,
    /// ClusterNetworkPolicy, policy.networking.k8s.io/v1alpha2.
    Cnp,
}

#[derive(Args)]
pub struct CompileArgs {
    /// Policy files or directories (Segment, Policy; Invariants are not compiled).
    #[arg(long, value_name = "DIR", num_args = 1.., required = true)]
    policy: Vec<PathBuf>,
    /// The enforcement target.
    #[arg(long, value_enum)]
    target: TargetArg,
    /// Output directory: created, or replaced if an earlier `compile` wrote it; refused if it
    /// holds anything else.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Kubernetes manifests of the cluster (files or directories): the namespaces to place
    /// NetworkPolicies in, workloads for targets that resolve identities.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories: hosts' addresses for rules that name hosts.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
    /// k8s: the cluster-scoped API for the guardrail tier.
    #[arg(long, value_enum, default_value = "anp")]
    k8s_api: K8sApiArg,
    /// nftables: compile only this host of the host inventory (default: every host).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    #[arg(long, short, value_enum, default_value = "text")]
    format: LintFormat,
    /// Record `policy.compile` in this data directory's audit log.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The audit entry's reason (default: a summary).
    #[arg(long)]
    reason: Option<String>,
}

/// Exit 0 compiled, 3 input error (lint errors, an intent the target cannot express, I/O).
pub fn run(a: CompileArgs) -> ExitCode {
    match run_inner(&a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run_inner(a: &CompileArgs) -> Result<ExitCode> {
    for p in &a.policy {
        anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
    }
    let ids = if a.inventory.is_empty() && a.hosts.is_empty() {
        None
    } else {
        Some(inventory_identities(&a.inventory, &a.hosts)?)
    };
    let linted = lint_paths(&a.policy, ids.clone());
    let errors = linted.count(Severity::Error);
    if errors > 0 {
        for d in linted
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
        {
            eprintln!("{d}");
        }
        eprintln!(
            "error: the policy has {errors} error{}: nothing compiled",
            if errors == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(3));
    }
    let target: Target = a.target.into();
    anyhow::ensure!(
        a.host.is_none() || target == Target::Nftables,
        "--host is for --target nftables"
    );
    let opts = Options {
        k8s_api: match a.k8s_api {
            K8sApiArg::Anp => K8sApi::Anp,
            K8sApiArg::Cnp => K8sApi::Cnp,
        },
        inventory: ids.unwrap_or_default(),
    };
    let compiled = match compile_target(&linted.intent, target, &opts, a.host.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            if let CompileError::Unsupported { hint: Some(h), .. } = &e {
                eprintln!("  = hint: {h}");
            }
            eprintln!("error: nothing compiled");
            return Ok(ExitCode::from(3));
        }
    };
    write_atomically(&a.out, &compiled, target)?;
    let kinds = object_counts(&compiled);
    let objects: usize = kinds.values().sum();
    if let Some(dir) = &a.data_dir {
        anyhow::ensure!(
            dir.is_dir(),
            "{}: no such directory (the compile was written to {} but not recorded)",
            dir.display(),
            a.out.display()
        );
        let before = a
            .policy
            .first()
            .and_then(|p| crate::audit::tree_digest(p).ok());
        let after = crate::audit::tree_digest(&a.out).ok();
        let reason = a.reason.clone().unwrap_or_else(|| {
            format!(
                "compile --target {target}: {objects} object{} in {}",
                if objects == 1 { "" } else { "s" },
                a.out.display()
            )
        });
        let object = format!(
            "policy:{}",
            a.policy
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        crate::audit::record_change(
            dir,
            bulkhead_audit::actions::POLICY_COMPILE,
            &object,
            &reason,
            before,
            after,
        )?;
    }
    let mut out = String::new();
    match a.format {
        LintFormat::Json => {
            let v = serde_json::json!({
                "target": target.as_str(),
                "k8s_api": match a.k8s_api { K8sApiArg::Anp => "anp", K8sApiArg::Cnp => "cnp" },
                "out": a.out,
                "files": compiled.files.keys().collect::<Vec<_>>(),
                "objects": kinds,
                "notes": compiled.notes,
            });
            out.push_str(&(serde_json::to_string_pretty(&v)? + "\n"));
        }
        LintFormat::Text => {
            let _ = writeln!(
                out,
                "compiled {} for {target} into {}: {objects} object{}",
                a.policy
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                a.out.display(),
                if objects == 1 { "" } else { "s" }
            );
            for (k, n) in &kinds {
                let _ = writeln!(out, "  {n:>6}  {k}");
            }
            for f in compiled.files.keys() {
                let _ = writeln!(out, "  wrote {}", a.out.join(f).display());
            }
            for n in &compiled.notes {
                let _ = writeln!(out, "note: {n}");
            }
        }
    }
    // A closed pipe (`| head`) is not an error of the compile, which is written already.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// Objects per kind, read from the files' top-level `kind:` lines.
pub fn object_counts(c: &Compiled) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for text in c.files.values() {
        for l in text.lines() {
            if let Some(k) = l.strip_prefix("kind: ") {
                *m.entry(k.trim().to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}

/// Writes the files into a sibling temporary directory, then puts it in place of `out`: the
/// output directory is never half-written. A non-empty `out` without the marker is refused.
fn write_atomically(out: &Path, c: &Compiled, target: Target) -> Result<()> {
    if out.exists() {
        anyhow::ensure!(out.is_dir(), "--out {}: not a directory", out.display());
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        anyhow::ensure!(
            empty || out.join(MARKER).is_file(),
            "--out {}: the directory holds files `bulkhead compile` did not write; choose an empty or new directory",
            out.display()
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let base = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let tmp = parent.join(format!(".{base}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove a stale {}", tmp.display()))?;
    }
    let written = (|| -> Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        for (rel, text) in &c.files {
            let p = tmp.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
            }
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        }
        std::fs::write(
            tmp.join(MARKER),
            format!("written by bulkhead compile --target {target}\n"),
        )
        .with_context(|| format!("cannot write {}", tmp.join(MARKER).display()))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{base}.old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move {} aside", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if old.exists() {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot move the output into {}", out.display()));
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the previous {}", old.display()))?;
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchCompileArgs {
    /// Policy directory (default: the worked bank example).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    /// Synthetic workloads and hosts (the shape of `bench intent`).
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    /// Synthetic application rules added to the policy.
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    /// `all` or one target.
    #[arg(long, default_value = "all")]
    target: String,
    /// k8s: anp or cnp.
    #[arg(long, value_enum, default_value = "anp")]
    k8s_api: K8sApiArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write each target's output under DIR/TARGET (after timing), to compare outputs
    /// across builds (`diff -r`).
    #[arg(long, value_name = "DIR", hide = true)]
    keep: Option<PathBuf>,
}

/// Compiles for any target: the cluster targets through `bulkhead-compile`, hosts' nftables
/// rulesets (every inventory host, or `host`) through `bulkhead-nft`.
fn compile_target(
    intent: &bulkhead_intent::Intent,
    target: Target,
    opts: &Options,
    host: Option<&str>,
) -> Result<bulkhead_compile::Compiled, CompileError> {
    if target != Target::Nftables {
        return bulkhead_compile::compile(intent, target, opts);
    }
    if !opts
        .inventory
        .iter()
        .any(|i| i.kind == bulkhead_intent::IdentityKind::Host)
    {
        return Err(CompileError::Intent(
            "--target nftables compiles one ruleset per host of the host inventory: give --hosts FILE"
                .to_string(),
        ));
    }
    bulkhead_nft::compile(intent, opts, host, bulkhead_nft::ModeOverride::Segments).map_err(|e| {
        match e {
            bulkhead_nft::NftError::Compile(c) => c,
            other => CompileError::Intent(other.to_string()),
        }
    })
}

/// `bulkhead bench compile`: the synthetic intent of `bench intent` compiled per target, CPU
/// seconds each; prints JSON.
pub fn run_bench(a: BenchCompileArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let (intent, mut ids) = synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    // One service account per workload, as a mesh that authorises by identity runs (Istio
    // refuses a principal shared with workloads a rule does not select).
    for id in &mut ids {
        if let bulkhead_intent::IdentityKind::Workload { .. } = id.kind {
            id.service_account = Some(id.name.rsplit('/').next().unwrap_or("sa").to_string());
        }
    }
    let targets: Vec<Target> = if a.target == "all" {
        Target::ALL.to_vec()
    } else {
        vec![
            Target::ALL
                .into_iter()
                .find(|t| t.as_str() == a.target)
                .with_context(|| format!("--target {}: not a target", a.target))?,
        ]
    };
    let rules: usize = intent.policies.iter().map(|p| p.rules.len()).sum();
    let opts = Options {
        k8s_api: match a.k8s_api {
            K8sApiArg::Anp => K8sApi::Anp,
            K8sApiArg::Cnp => K8sApi::Cnp,
        },
        inventory: ids,
    };
    let mut results = Vec::new();
    for t in targets {
        let (c0, t0) = (cpu_secs(), std::time::Instant::now());
        // nftables rulesets are per host: one host is timed (every host compiles alike).
        let host = (t == Target::Nftables)
            .then(|| {
                opts.inventory
                    .iter()
                    .find(|i| i.kind == bulkhead_intent::IdentityKind::Host)
                    .map(|i| i.name.clone())
            })
            .flatten();
        if t == Target::Nftables && host.is_none() {
            continue;
        }
        let r = compile_target(&intent, t, &opts, host.as_deref());
        let (c1, t1) = (cpu_secs(), std::time::Instant::now());
        let cpu = c0.zip(c1).map(|(a, b)| b - a);
        if let (Some(dir), Ok(c)) = (&a.keep, &r) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            write_atomically(&dir.join(t.as_str()), c, t)?;
        }
        results.push(match r {
            Ok(c) => serde_json::json!({
                "target": t.as_str(),
                "host": host,
                "cpu_s": cpu,
                "wall_s": (t1 - t0).as_secs_f64(),
                "objects": object_counts(&c),
                "bytes": c.files.values().map(String::len).sum::<usize>(),
            }),
            Err(e) => serde_json::json!({
                "target": t.as_str(),
                "cpu_s": cpu,
                "error": e.to_string(),
            }),
        });
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string));
    let v = serde_json::json!({
        "identities": opts.inventory.len(),
        "rules": rules,
        "segments": intent.segments.len(),
        "load_average_1m": load,
        "targets": results,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
