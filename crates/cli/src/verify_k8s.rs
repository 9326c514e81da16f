//! `bulkhead verify --policy DIR --k8s PATH…`: brownfield compliance — the intent's Segments
//! and Invariants checked against what a cluster's existing Kubernetes policies allow
//! (`bulkhead_analysis::verify_k8s`); `bulkhead bench verify-k8s`: the same at scale.
//!
//! Exit codes as `verify`: 0 every invariant holds, 1 one is violated, 3 input error (the
//! intent has errors, a manifest is malformed). With `--keep-going` malformed objects are
//! skipped and the rest verified; a violation still exits 1, but "everything holds" on a
//! partly read cluster is not claimed: it exits 3.

use crate::policy::cpu_secs;
use crate::verify::{
    Control, VerifyArgs, VerifyFormat, compliance, load_intent, markdown_body, plural, text_results,
};
use anyhow::{Context, Result};
use bulkhead_analysis::{K8sVerification, verify_k8s};
use bulkhead_core::{Cluster, Engine};
use bulkhead_intent::{Intent, Status, VerifyOptions};
use bulkhead_synth::SplitMix64;
use clap::Args;
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Kubernetes policies by kind, for the header.
fn policy_counts(c: &Cluster) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for kind in [
        "NetworkPolicy",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
    ] {
        let n = c.policies.iter().filter(|p| p.kind == kind).count();
        m.insert(kind.to_string(), json!(n));
    }
    serde_json::Value::Object(m)
}

pub fn run(a: &VerifyArgs) -> Result<ExitCode> {
    let intent = load_intent(&a.src.policy)?;
    let loaded = crate::load(&crate::Input {
        paths: a.k8s.clone(),
        keep_going: a.keep_going,
        quiet: a.quiet,
    })
    .context("--k8s")?;
    let skipped = loaded.errors.len();
    let engine = Engine::new(&loaded.cluster);
    let v = verify_k8s(
        &intent,
        &engine,
        VerifyOptions {
            max_examples: a.examples,
        },
    )?;
    let warnings: Vec<String> = v
        .empty_segments
        .iter()
        .map(|(name, at)| {
            format!("segment {name} at {at} selects no workload of the cluster (host selectors select nothing with --k8s)")
        })
        .collect();
    if !a.quiet {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let violated = v
        .results
        .iter()
        .filter(|r| r.status == Status::Violated)
        .count();
    let c = &loaded.cluster;
    let summary = json!({
        "mode": "k8s",
        "policy": a.src.policy,
        "k8s": a.k8s,
        "intent_policies_ignored": intent.policies.len(),
        "kubernetes_policies": policy_counts(c),
        "workloads": c.workloads.len(),
        "namespaces": c.namespaces.len(),
        "external_source_ranges": v.external_sources,
        "external_destination_ranges": v.external_destinations,
        "malformed_objects_skipped": skipped,
        "invariants": v.results.len(),
        "holding": v.results.len() - violated,
        "violated": violated,
        "evaluated_as": "the cluster's Kubernetes policies as written",
        "warnings": warnings,
    });
    let mut controls = compliance(&intent, &v.results);
    // Segment modes mean nothing here: say how many workloads each segment selects instead.
    for ctl in &mut controls {
        for (name, what) in &mut ctl.segments {
            let k = v
                .segment_workloads
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, k)| *k);
            *what = format!("{k} workload{}", plural(k as u64));
        }
    }
    let full = |summary: &serde_json::Value| -> Result<String> {
        let mut j = summary.clone();
        j["results"] = serde_json::to_value(&v.results)?;
        j["compliance"] = serde_json::to_value(&controls)?;
        Ok(serde_json::to_string_pretty(&j)? + "\n")
    };
    let text = match a.format {
        VerifyFormat::Json => full(&summary)?,
        VerifyFormat::Markdown => markdown(&intent, &summary, &v, &controls),
        VerifyFormat::Text => text(&summary, &v),
    };
    crate::write_output(a.out.as_ref(), &text)?;
    if let Some(p) = &a.report {
        let report = if p.extension().is_some_and(|e| e == "json") {
            full(&summary)?
        } else {
            markdown(&intent, &summary, &v, &controls)
        };
        crate::write_output(Some(p), &report)?;
    }
    Ok(if violated > 0 {
        ExitCode::FAILURE
    } else if skipped > 0 {
        eprintln!(
            "error: every invariant holds over what was read, but {skipped} malformed object{} {} skipped (--keep-going): compliance is not confirmed",
            plural(skipped as u64),
            if skipped == 1 { "was" } else { "were" }
        );
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The opening lines: where segments, invariants and policies come from.
fn header(summary: &serde_json::Value) -> String {
    let k = &summary["kubernetes_policies"];
    let mut s = format!(
        "verify --k8s: segments and invariants from {}; its {} Policy resource{} {} ignored: what is allowed is what the Kubernetes policies of {} allow ({} NetworkPolicies, {} AdminNetworkPolicies, {} BaselineAdminNetworkPolicy) over {} workloads in {} namespaces",
        join(&summary["policy"]),
        summary["intent_policies_ignored"],
        if summary["intent_policies_ignored"] == 1 {
            ""
        } else {
            "s"
        },
        if summary["intent_policies_ignored"] == 1 {
            "is"
        } else {
            "are"
        },
        join(&summary["k8s"]),
        k["NetworkPolicy"],
        k["AdminNetworkPolicy"],
        k["BaselineAdminNetworkPolicy"],
        summary["workloads"],
        summary["namespaces"],
    );
    if summary["malformed_objects_skipped"] != 0 {
        let _ = write!(
            s,
            " — PARTLY READ: {} malformed object(s) skipped (--keep-going)",
            summary["malformed_objects_skipped"]
        );
    }
    s
}

fn join(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn text(summary: &serde_json::Value, v: &K8sVerification) -> String {
    let mut s = header(summary) + "\n";
    s.push_str(&text_results(&v.results));
    let _ = writeln!(
        s,
        "verify --k8s: {} invariant{} over {} workloads (+{} external source and {} external destination address ranges), every pair and every port: {} hold, {} violated",
        summary["invariants"],
        if summary["invariants"] == 1 { "" } else { "s" },
        summary["workloads"],
        summary["external_source_ranges"],
        summary["external_destination_ranges"],
        summary["holding"],
        summary["violated"],
    );
    s
}

fn markdown(
    intent: &Intent,
    summary: &serde_json::Value,
    v: &K8sVerification,
    controls: &[Control],
) -> String {
    let mut s =
        String::from("# Compliance report: network segmentation of a Kubernetes cluster\n\n");
    let _ = writeln!(
        s,
        "{}. {} invariants verified exactly (every pair, every port of TCP, UDP and SCTP) over {} workloads, {} external source and {} external destination address ranges. **{} hold, {} violated.**",
        header(summary)
            .trim_start_matches("verify --k8s: ")
            .replace(
                "segments and invariants from ",
                "Segments and invariants from "
            ),
        summary["invariants"],
        summary["workloads"],
        summary["external_source_ranges"],
        summary["external_destination_ranges"],
        summary["holding"],
        summary["violated"],
    );
    for w in summary["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "\nWarning: {}.", w.as_str().unwrap_or_default());
    }
    s + &markdown_body(intent, &v.results, controls, false)
}

#[derive(Args)]
pub struct BenchVerifyK8sArgs {
    /// Kubernetes manifests (e.g. from `bulkhead bench generate`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Intent directory with segments and invariants (default: synthetic segments over the
    /// standard shape's labels, and `--invariants` synthetic invariants).
    #[arg(long, value_name = "DIR")]
    policy: Option<PathBuf>,
    /// Synthetic invariants (without --policy): never, only and mustAllow in turn.
    #[arg(long, default_value_t = 20)]
    invariants: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Segments over the labels of the standard shape (`crates/synth`).
const SHAPE_SEGMENTS: &[(&str, &str)] = &[
    ("pci", "podSelector: {matchLabels: {pci: \"true\"}}"),
    ("frontend", "podSelector: {matchLabels: {tier: frontend}}"),
    ("api", "podSelector: {matchLabels: {tier: api}}"),
    ("backend", "podSelector: {matchLabels: {tier: backend}}"),
    ("data", "podSelector: {matchLabels: {tier: data}}"),
    ("messaging", "podSelector: {matchLabels: {tier: messaging}}"),
    ("batch", "podSelector: {matchLabels: {tier: batch}}"),
    ("prod", "namespaceSelector: {matchLabels: {env: prod}}"),
    ("dev", "namespaceSelector: {matchLabels: {env: dev}}"),
    (
        "team-03-data",
        "namespaceSelector: {matchLabels: {team: team-03}}\n  podSelector: {matchLabels: {tier: data}}",
    ),
    (
        "team-07",
        "namespaceSelector: {matchLabels: {team: team-07}}",
    ),
];

/// A synthetic intent for the standard shape: segments, then `never`, `only` (some with a
/// CIDR among the allowed sources) and `mustAllow` invariants between random segments.
fn shape_intent(invariants: usize, rng: &mut SplitMix64) -> Result<Intent> {
    let mut y = String::new();
    for (name, sel) in SHAPE_SEGMENTS {
        let _ = write!(
            y,
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: {name}}}\nspec:\n  {sel}\n"
        );
    }
    for k in 0..invariants {
        let seg = |rng: &mut SplitMix64| SHAPE_SEGMENTS[rng.below(SHAPE_SEGMENTS.len())].0;
        let (f, t) = (seg(rng), seg(rng));
        let body = match k % 3 {
            0 => format!("never:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n"),
            1 if k % 2 == 1 => format!(
                "only:\n    from: [{{segment: {f}}}, {{cidr: 10.0.0.0/8}}]\n    to: [{{segment: {t}}}]\n"
            ),
            1 => format!("only:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n"),
            _ => format!(
                "mustAllow:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n    ports: [{{port: {}}}]\n",
                [8080, 8443, 9090, 5432, 9100][rng.below(5)]
            ),
        };
        let _ = write!(
            y,
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {{name: synthetic-{k}}}\nspec:\n  {body}"
        );
    }
    let loaded = bulkhead_intent::load_str("synthetic-intent.yaml", &y);
    anyhow::ensure!(
        !loaded.has_errors(),
        "synthetic intent: {:?}",
        loaded.diagnostics.first()
    );
    Ok(loaded.intent)
}

/// `bulkhead bench verify-k8s`: load, build the engine, verify; prints JSON with CPU seconds.
pub fn run_bench(a: BenchVerifyK8sArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let intent = match &a.policy {
        Some(p) => load_intent(std::slice::from_ref(p))?,
        None => shape_intent(a.invariants, &mut rng)?,
    };
    let (c0, t0) = (cpu_secs(), Instant::now());
    let loaded = crate::load(&crate::Input {
        paths: a.paths.clone(),
        keep_going: false,
        quiet: true,
    })?;
    let (c1, t1) = (cpu_secs(), Instant::now());
    let engine = Engine::new(&loaded.cluster);
    let (c2, t2) = (cpu_secs(), Instant::now());
    let v = verify_k8s(&intent, &engine, VerifyOptions::default())?;
    let (c3, t3) = (cpu_secs(), Instant::now());
    let cpu = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let r = &v.results;
    let out = json!({
        "workloads": loaded.cluster.workloads.len(),
        "kubernetes_policies": policy_counts(&loaded.cluster),
        "classes_in_eg": engine.class_counts(),
        "invariants": r.len(),
        "violated": r.iter().filter(|r| r.status == Status::Violated).count(),
        "pairs_checked": r.iter().map(|r| r.pairs_checked).sum::<u64>(),
        "groups_judged": r.iter().map(|r| r.class_pairs).sum::<u64>(),
        "external_source_ranges": v.external_sources,
        "external_destination_ranges": v.external_destinations,
        "load_wall_s": (t1 - t0).as_secs_f64(),
        "load_cpu_s": cpu(c0, c1),
        "engine_wall_s": (t2 - t1).as_secs_f64(),
        "engine_cpu_s": cpu(c1, c2),
        "verify_wall_s": (t3 - t2).as_secs_f64(),
        "verify_cpu_s": cpu(c2, c3),
        "total_wall_s": (t3 - t0).as_secs_f64(),
        "total_cpu_s": cpu(c0, c3),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
