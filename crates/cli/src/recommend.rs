//! `bulkhead recommend`: least-privilege intent from the flow store (the pure part is
//! `bulkhead_intent::recommend`), its quality report, the audit records of proposing
//! (`policy.recommend`) and accepting (`recommendation.accept`) it, and `bench recommend`.
//!
//! Exit codes: 0 written (or accepted), 3 an input could not be read or the proposal would not
//! load and lint clean (never written as if it did).

use crate::see::parse_duration;
use crate::simulate::{Edges, open_store, read_edges};
use anyhow::{Context, Result, bail};
use bulkhead_audit::{Digest, LogReader, actions};
use bulkhead_core::time::rfc3339;
use bulkhead_intent::recommend::{
    self as rec, Figures, Input, Observed, Options, Provenance, Quality,
};
use bulkhead_intent::{LintOptions, Mode, Universe, lint, load_paths};
use bulkhead_store::Store;
use clap::{Args, Subcommand, ValueEnum};
use rustc_hash::FxHashMap;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
pub enum RecFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ModeArg {
    Observe,
    Enforce,
}

/// `bulkhead recommend`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecommendArgs {
    #[command(subcommand)]
    command: Option<RecCommand>,
    /// The store's directory (its audit log records the proposal).
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    data_dir: PathBuf,
    /// Kubernetes manifests (files or directories): workload and namespace labels, and the
    /// workloads a group generalises to.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories (YAML or CSV).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
    /// The training window `FROM..TO` (RFC 3339 times, either side may be empty).
    #[arg(long, value_name = "FROM..TO", conflicts_with = "last")]
    window: Option<String>,
    /// The training window: the last DURATION of recorded traffic, e.g. 7d.
    #[arg(long, value_name = "DURATION")]
    last: Option<String>,
    /// Group workloads (per namespace) and hosts by these labels.
    #[arg(long, value_name = "LABEL", num_args = 1.., default_value = "app")]
    group_by: Vec<String>,
    /// The mode proposed for every segment (observe first: nothing is blocked).
    #[arg(long, value_enum, default_value = "observe")]
    mode: ModeArg,
    /// Where segments.yaml and policies.yaml are written (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A held-out window `FROM..TO`: the share of its flows the proposal would block.
    #[arg(long, value_name = "FROM..TO", conflicts_with = "holdout_last")]
    holdout: Option<String>,
    /// Hold out the last DURATION of recorded traffic; the training window then ends where it
    /// starts (unless --window or --last is given).
    #[arg(long, value_name = "DURATION")]
    holdout_last: Option<String>,
    #[arg(long, short, value_enum, default_value = "text")]
    format: RecFormat,
    /// Why (recorded in the audit log).
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "proposed from observed traffic"
    )]
    reason: String,
}

#[derive(Subcommand)]
enum RecCommand {
    /// Accept a reviewed proposal: checks it loads and lints clean and records
    /// `recommendation.accept` with its digest in the audit log.
    Accept {
        /// The proposal's directory (as written by `bulkhead recommend --out`, possibly edited).
        dir: PathBuf,
        /// The data directory holding the audit log.
        #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
        data_dir: PathBuf,
        /// Why (a ticket, a change request).
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
    },
}

pub fn run(a: RecommendArgs) -> ExitCode {
    let r = match &a.command {
        Some(RecCommand::Accept {
            dir,
            data_dir,
            reason,
        }) => accept(dir, data_dir, reason).map(|s| print!("{s}")),
        None => run_inner(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// What a recommendation did.
pub(crate) struct Summary {
    pub quality: Quality,
    pub segments_file: PathBuf,
    pub policies_file: PathBuf,
    /// The audit entry of `policy.recommend`.
    pub audit_index: u64,
    pub digest: Digest,
    pub edges: usize,
    pub window: String,
}

/// Everything a recommendation needs, as plain values.
pub(crate) struct Request<'a> {
    pub data_dir: &'a Path,
    pub inventory: &'a [PathBuf],
    pub hosts: &'a [PathBuf],
    /// `FROM..TO`, or `None` for everything (or the training part of a `holdout_last` split).
    pub window: Option<&'a str>,
    pub last: Option<&'a str>,
    pub group_by: &'a [String],
    pub mode: Mode,
    pub out_dir: &'a Path,
    pub holdout: Option<&'a str>,
    pub holdout_last: Option<&'a str>,
    pub reason: &'a str,
}

/// A CIDR string that the intent loader accepts (`internet`'s "public addresses" is not one).
fn is_cidr(c: &str) -> bool {
    let (a, p) = c.split_once('/').unwrap_or((c, ""));
    let Ok(ip) = a.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    p.is_empty() || p.parse::<u8>().is_ok_and(|n| n <= max)
}

pub(crate) fn load_window(
    store: &Store,
    data_dir: &Path,
    window: Option<String>,
    last: Option<String>,
    inventory: Vec<bulkhead_intent::Identity>,
) -> Result<LoadedEdges> {
    let edges = read_edges(
        store,
        data_dir,
        window.as_deref(),
        last.as_deref(),
        inventory,
    )?;
    let mut cidrs: FxHashMap<usize, Vec<String>> = FxHashMap::default();
    for (i, c) in &edges.external_cidrs {
        let c: Vec<String> = c.iter().filter(|c| is_cidr(c)).cloned().collect();
        if !c.is_empty() {
            cidrs.insert(*i, c);
        }
    }
    let observed = edges
        .rows
        .iter()
        .map(|r| {
            // `read_edges` writes (0, 0) for an edge with no timed record: no first/last seen.
            let (first, last) = if (r.first, r.last) == (0, 0) {
                (i64::MAX, i64::MIN)
            } else {
                (r.first, r.last)
            };
            Observed {
                src: r.src,
                dst: r.dst,
                proto: r.proto,
                port: r.port,
                flows: r.flows,
                bytes: r.bytes,
                first,
                last,
            }
        })
        .collect();
    let node_ids = edges.nodes.iter().map(|(_, v)| v.clone()).collect();
    Ok(LoadedEdges {
        edges,
        observed,
        cidrs,
        node_ids,
    })
}

/// The edges of a window, ready for the pure part.
pub(crate) struct LoadedEdges {
    pub edges: Edges,
    pub observed: Vec<Observed>,
    pub cidrs: FxHashMap<usize, Vec<String>>,
    pub node_ids: Vec<Vec<usize>>,
}

impl LoadedEdges {
    pub fn input(&self) -> Input<'_> {
        Input {
            identities: &self.edges.identities,
            cidrs: &self.cidrs,
            nodes: &self.node_ids,
            edges: &self.observed,
        }
    }
}

fn window_text(w: &Option<(String, String)>) -> String {
    match w {
        Some((a, b)) => format!("{a}..{b}"),
        None => "all recorded traffic".into(),
    }
}

/// The training and held-out windows as `FROM..TO` strings.
fn windows(
    store: &Store,
    r: &Request<'_>,
) -> Result<(Option<String>, Option<String>, Option<String>)> {
    let mut window = r.window.map(str::to_string);
    let mut last = r.last.map(str::to_string);
    let mut holdout = r.holdout.map(str::to_string);
    if let Some(h) = r.holdout_last {
        let d = parse_duration(h).context("--holdout-last")?;
        let newest = store
            .newest()?
            .context("--holdout-last: the store holds no timed records")?;
        // On a bucket boundary: the store keeps edges per time bucket and a window takes every
        // bucket it overlaps, so a split inside a bucket would put that bucket in both windows.
        let start = newest.saturating_sub(d);
        let start = start - start.rem_euclid(store.bucket_ns().max(1));
        holdout = Some(format!("{}..", rfc3339(start)));
        if window.is_none() && last.is_none() {
            window = Some(format!("..{}", rfc3339(start)));
        }
    }
    if let (Some(_), Some(_)) = (&window, &last) {
        last = None;
    }
    Ok((window, last, holdout))
}

pub(crate) fn recommend_request(r: &Request<'_>) -> Result<Summary> {
    let store = open_store(r.data_dir)?;
    let inventory = crate::policy::inventory_identities(r.inventory, r.hosts)?;
    let (window, last, holdout) = windows(&store, r)?;
    let train = load_window(&store, r.data_dir, window, last, inventory.clone())?;
    anyhow::ensure!(
        !train.observed.is_empty(),
        "no recorded edges in the training window: nothing to recommend from"
    );
    let hold = match &holdout {
        Some(h) => Some(load_window(
            &store,
            r.data_dir,
            Some(h.clone()),
            None,
            inventory,
        )?),
        None => None,
    };
    drop(store);
    let opts = Options {
        group_by: r.group_by.to_vec(),
        mode: r.mode,
    };
    let recm = rec::recommend(&train.input(), &opts);
    let wtext = window_text(&train.edges.window);
    let files = recm.to_yaml(&Provenance {
        store: r.data_dir.display().to_string(),
        window: wtext.clone(),
    });
    let quality = rec::quality(
        &recm,
        &train.input(),
        hold.as_ref().map(|h| h.input()).as_ref(),
    );
    // Checked before anything is written: the proposal loads and lints clean.
    check_files(&files, &train.edges.identities)?;
    std::fs::create_dir_all(r.out_dir)
        .with_context(|| format!("cannot create {}", r.out_dir.display()))?;
    let segments_file = r.out_dir.join("segments.yaml");
    let policies_file = r.out_dir.join("policies.yaml");
    for (p, text) in [
        (&segments_file, &files.segments),
        (&policies_file, &files.policies),
    ] {
        std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let digest = crate::audit::tree_digest(r.out_dir)?;
    let audit_index = crate::audit::record_change(
        r.data_dir,
        actions::POLICY_RECOMMEND,
        &format!("recommendation:{}", r.out_dir.display()),
        r.reason,
        None,
        Some(digest),
    )?;
    Ok(Summary {
        quality,
        segments_file,
        policies_file,
        audit_index,
        digest,
        edges: train.observed.len(),
        window: wtext,
    })
}

/// Loads the proposal from its text and lints it over the identities; any error refuses it.
fn check_files(files: &rec::Files, ids: &[bulkhead_intent::Identity]) -> Result<()> {
    let text = format!("{}---\n{}", files.segments, files.policies);
    let loaded = bulkhead_intent::load_str("proposal", &text);
    let errs: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    anyhow::ensure!(
        errs.is_empty(),
        "the proposal does not load (a bug; nothing written):\n{}",
        errs.join("\n")
    );
    let ev = bulkhead_intent::Evaluator::new(&loaded.intent)
        .map_err(|e| anyhow::anyhow!("the proposal does not compile (a bug): {e}"))?;
    let un = Universe::new(&ev, ids.to_vec());
    let errs: Vec<String> = lint(
        &loaded.intent,
        &LintOptions {
            universe: Some(&un),
        },
    )
    .iter()
    .filter(|d| d.is_error())
    .map(ToString::to_string)
    .collect();
    anyhow::ensure!(
        errs.is_empty(),
        "the proposal has lint errors (a bug; nothing written):\n{}",
        errs.join("\n")
    );
    Ok(())
}

fn run_inner(a: &RecommendArgs) -> Result<()> {
    let out = a
        .out
        .as_ref()
        .context("--out DIR is required (where the proposal is written)")?;
    let s = recommend_request(&Request {
        data_dir: &a.data_dir,
        inventory: &a.inventory,
        hosts: &a.hosts,
        window: a.window.as_deref(),
        last: a.last.as_deref(),
        group_by: &a.group_by,
        mode: match a.mode {
            ModeArg::Observe => Mode::Observe,
            ModeArg::Enforce => Mode::Enforce,
        },
        out_dir: out,
        holdout: a.holdout.as_deref(),
        holdout_last: a.holdout_last.as_deref(),
        reason: &a.reason,
    })?;
    let text = match a.format {
        RecFormat::Json => serde_json::to_string_pretty(&summary_json(&s))? + "\n",
        RecFormat::Text => summary_text(&s),
    };
    crate::write_output(None, &text)
}

fn figures_json(f: &Figures) -> serde_json::Value {
    let w = |w: &rec::Window| {
        json!({
            "edges": w.edges,
            "flows": w.flows,
            "allowed_edges": w.allowed_edges,
            "allowed_flows": w.allowed_flows,
            "blocked_edges": w.blocked_edges,
            "blocked_flows": w.blocked_flows,
            "not_ours_edges": w.not_ours_edges,
            "covered_flow_share": w.covered_share(),
            "blocked_flow_share": w.blocked_flow_share(),
            "blocked_edge_share": w.blocked_edge_share(),
        })
    };
    json!({
        "rules": f.rules,
        "training": w(&f.training),
        "holdout": f.holdout.as_ref().map(w),
        "allowed_combinations": f.allowed.to_string(),
        "observed_combinations": f.observed.to_string(),
        "over_permissive_share": f.over_permissive(),
    })
}

pub(crate) fn summary_json(s: &Summary) -> serde_json::Value {
    json!({
        "window": s.window,
        "edges": s.edges,
        "segments_file": s.segments_file,
        "policies_file": s.policies_file,
        "digest": s.digest.to_string(),
        "audit_entry": s.audit_index,
        "segments": s.quality.segments,
        "identities": s.quality.identities,
        "recommended": figures_json(&s.quality.recommended),
        "naive": figures_json(&s.quality.naive),
    })
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// The quality report as text.
pub(crate) fn quality_text(q: &Quality) -> String {
    let (r, n) = (&q.recommended, &q.naive);
    let mut s = format!(
        "{:<40} {:>16} {:>16}\n",
        "", "recommended", "naive (per edge)"
    );
    let mut row = |k: &str, a: String, b: String| {
        s.push_str(&format!("{k:<40} {a:>16} {b:>16}\n"));
    };
    row("rules", r.rules.to_string(), n.rules.to_string());
    row(
        "training flows covered",
        pct(r.training.covered_share()),
        pct(n.training.covered_share()),
    );
    if let (Some(rh), Some(nh)) = (&r.holdout, &n.holdout) {
        row(
            "held-out flows that would be blocked",
            pct(rh.blocked_flow_share()),
            pct(nh.blocked_flow_share()),
        );
        row(
            "held-out edges that would be blocked",
            pct(rh.blocked_edge_share()),
            pct(nh.blocked_edge_share()),
        );
    }
    row(
        "over-permissive (allowed, never seen)",
        pct(r.over_permissive()),
        pct(n.over_permissive()),
    );
    row(
        "allowed (src, dst, proto, port)",
        r.allowed.to_string(),
        n.allowed.to_string(),
    );
    row(
        "observed (src, dst, proto, port)",
        r.observed.to_string(),
        n.observed.to_string(),
    );
    s
}

fn summary_text(s: &Summary) -> String {
    let q = &s.quality;
    let mut t = format!(
        "recommend: {} segments, {} rules from {} recorded edges ({} flows) in {}\n",
        q.segments, q.recommended.rules, s.edges, q.recommended.training.flows, s.window
    );
    t.push_str(&format!(
        "wrote {} and {}\naudit entry {} (policy.recommend), digest {}\n\n",
        s.segments_file.display(),
        s.policies_file.display(),
        s.audit_index,
        s.digest
    ));
    if let Some(h) = &q.recommended.holdout {
        t.push_str(&format!(
            "held-out window: {} edges, {} flows\n",
            h.edges, h.flows
        ));
    }
    t.push_str(&quality_text(q));
    if q.recommended.training.not_ours_edges > 0 {
        t.push_str(&format!(
            "({} training edges are not the policy's to allow: ICMP, or between two addresses outside the inventories)\n",
            q.recommended.training.not_ours_edges
        ));
    }
    t.push_str("\nReview, then: bulkhead policy lint DIR; bulkhead simulate --policy DIR; bulkhead recommend accept DIR --reason TEXT\n");
    t
}

/// `bulkhead recommend accept DIR`: the proposal must load and lint without errors; records
/// `recommendation.accept` with the directory's digest (and, as `before`, the digest the
/// proposal was written with, when the log has it: a reviewer's edits show as a difference).
pub(crate) fn accept(dir: &Path, data_dir: &Path, reason: &str) -> Result<String> {
    anyhow::ensure!(
        dir.is_dir(),
        "{}: no such directory (the proposal written by bulkhead recommend --out)",
        dir.display()
    );
    let loaded = load_paths(&[dir]);
    let mut errs: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if errs.is_empty() {
        errs = lint(&loaded.intent, &LintOptions { universe: None })
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
    }
    if !errs.is_empty() {
        bail!(
            "{}: the proposal has {} error{}; it is not accepted:\n{}",
            dir.display(),
            errs.len(),
            if errs.len() == 1 { "" } else { "s" },
            errs.join("\n")
        );
    }
    let object = format!("recommendation:{}", dir.display());
    let proposed = proposed_digest(data_dir, &object);
    let digest = crate::audit::tree_digest(dir)?;
    let i = crate::audit::record_change(
        data_dir,
        actions::RECOMMENDATION_ACCEPT,
        &object,
        reason,
        proposed,
        Some(digest),
    )?;
    let note = match proposed {
        Some(p) if p == digest => "as proposed".to_string(),
        Some(_) => "edited since it was proposed".to_string(),
        None => "no policy.recommend entry for it in this log".to_string(),
    };
    Ok(format!(
        "accepted {} (digest {digest}, {note}): audit entry {i} (recommendation.accept)\n",
        dir.display()
    ))
}

/// The digest the latest `policy.recommend` of `object` recorded.
fn proposed_digest(data_dir: &Path, object: &str) -> Option<Digest> {
    let r = LogReader::open(data_dir).ok()?;
    let entries = r.entries(0, r.len()).ok()?;
    entries
        .iter()
        .rev()
        .find(|(_, e)| e.event.action == actions::POLICY_RECOMMEND && e.event.object == object)
        .and_then(|(_, e)| e.event.after)
}

/// `bulkhead bench recommend`.
#[derive(Args)]
pub struct BenchRecommendArgs {
    /// Flows aggregated into the store (they become far fewer edge rows).
    #[arg(long, default_value_t = 10_000_000)]
    flows: u64,
    /// Workloads (Deployments), spread over `--apps` apps in 50 namespaces.
    #[arg(long, default_value_t = 5_000)]
    workloads: u32,
    /// Distinct `app` values.
    #[arg(long, default_value_t = 500)]
    apps: u32,
    /// Hourly buckets the flows are spread over.
    #[arg(long, default_value_t = 24)]
    buckets: u32,
    /// Work directory (a temporary one by default; kept when given).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Writes a store of synthetic flows (each workload talks to a few apps' workloads on their
/// ports, and to DNS), then times reading the edges, recommending, writing the YAML, checking
/// it loads and lints, and the quality report; prints JSON with CPU and wall seconds per phase.
pub fn run_bench(a: BenchRecommendArgs) -> Result<()> {
    use bulkhead_store::{Batch, EdgeKey, EdgeStats, NodeCache, SourceKey, VerdictClass};
    let cpu = crate::policy::cpu_secs;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("bulkhead-bench-recommend-{}", std::process::id()))
        }
    };
    let data = dir.join("data");
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&data);
    let store = Store::open(&data, None)?;
    let wl = a.workloads.max(2);
    let apps = a.apps.clamp(2, wl);
    let ns_of = |app: u32| app % 50;
    // Node ids: workloads 0..wl (app = w % apps; app 0 is coredns), then 3 external groups.
    let info = move |e: u32| -> (String, String) {
        if e >= wl {
            let k = e - wl;
            let key = format!("external:partner-{k}");
            let json =
                format!(r#"{{"kind":"external","key":"{key}","cidrs":["198.51.{k}.0/24"]}}"#);
            return (key, json);
        }
        let app = e % apps;
        let app_name = if app == 0 {
            "coredns".to_string()
        } else {
            format!("app-{app}")
        };
        let ns = ns_of(app);
        let key = format!("ns-{ns:02}/{app_name}-{e}[Deployment]");
        let json = format!(
            r#"{{"kind":"workload","key":"{key}","namespace":"ns-{ns:02}","labels":{{"app":"{app_name}"}}}}"#
        );
        (key, json)
    };
    let t0: i64 = 1_764_201_600 * 1_000_000_000;
    let hour = 3600 * 1_000_000_000i64;
    let (wc0, ww0) = (cpu(), Instant::now());
    let mut rng = bulkhead_synth::SplitMix64::new(7);
    let mut cache = NodeCache::default();
    let key = SourceKey {
        sha256: [9; 32],
        size: 0,
    };
    let per_bucket = a.flows.div_ceil(u64::from(a.buckets.max(1)));
    let mut done = 0u64;
    let port_of = |app: u32| -> u16 { [8443u16, 9090, 5432, 9092, 443][app as usize % 5] };
    while done < a.flows {
        let mut batch = Batch::default();
        let n = (a.flows - done).min(1_000_000);
        for i in 0..n {
            let f = done + i;
            let t = t0 + (f / per_bucket) as i64 * hour;
            let r = rng.next_u64();
            let src = (r % u64::from(wl)) as u32;
            let kind = (r >> 32) % 100;
            let (dst, proto, port) = if kind < 10 {
                // DNS to a coredns replica.
                let d = ((r >> 40) % u64::from(wl / apps).max(1)) as u32 * apps;
                (d.min(wl - 1), 17u8, 53u16)
            } else if kind < 12 {
                (wl + ((r >> 40) % 3) as u32, 6, 443)
            } else {
                // One of 4 dependency apps of the source's app, any replica.
                let sapp = src % apps;
                let dep = 1 + (sapp * 7 + ((r >> 40) % 4) as u32 * 13) % (apps - 1);
                let replicas = (wl - dep).div_ceil(apps).max(1);
                let d = dep + ((r >> 48) % u64::from(replicas)) as u32 * apps;
                let port = port_of(dep) + if (r >> 60) & 1 == 1 { 1 } else { 0 };
                (d.min(wl - 1), 6, port)
            };
            batch.add(
                EdgeKey {
                    bucket: store.bucket_of(Some(t)),
                    src,
                    dst,
                    proto,
                    port,
                },
                &EdgeStats::one(
                    Some(t + (r >> 20) as i64 % hour),
                    None,
                    1000 + (r >> 8) % 10_000,
                    10,
                    VerdictClass::Allowed,
                ),
            );
        }
        batch.flows = n;
        done += n;
        store.commit_batch(&batch, &mut cache, &info, &key, done, None, 0)?;
    }
    let (wc1, ww1) = (cpu(), Instant::now());
    let rows = store.stats()?.edges;
    drop(store);
    let mut phases: Vec<(&str, f64, Option<f64>)> = Vec::new();
    let mut mark = |name: &'static str, c: Option<f64>, w: Instant| {
        let (c1, w1) = (cpu(), Instant::now());
        phases.push((name, (w1 - w).as_secs_f64(), c.zip(c1).map(|(a, b)| b - a)));
        (c1, w1)
    };
    let (c, w) = (cpu(), Instant::now());
    let (c_all, w_all) = (c, w);
    let store = Store::open(&data, None)?;
    let train = load_window(&store, &data, None, None, Vec::new())?;
    drop(store);
    let (c, w) = mark("read_store", c, w);
    let recm = rec::recommend(&train.input(), &Options::default());
    let (c, w) = mark("recommend", c, w);
    let files = recm.to_yaml(&Provenance {
        store: data.display().to_string(),
        window: "all recorded traffic".into(),
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("segments.yaml"), &files.segments)?;
    std::fs::write(out.join("policies.yaml"), &files.policies)?;
    let (c, w) = mark("write_yaml", c, w);
    let q = rec::quality(&recm, &train.input(), None);
    let (c, w) = mark("quality", c, w);
    let total_wall = (w - w_all).as_secs_f64();
    let total_cpu = c_all.zip(c).map(|(a, b)| b - a);
    let text = format!("{}---\n{}", files.segments, files.policies);
    let loaded = bulkhead_intent::load_str("proposal", &text);
    anyhow::ensure!(!loaded.has_errors(), "the proposal does not load");
    let (c, w) = mark("check_load", c, w);
    let ev = bulkhead_intent::Evaluator::new(&loaded.intent)
        .map_err(|e| anyhow::anyhow!("the proposal does not compile: {e}"))?;
    let un = Universe::new(&ev, train.edges.identities.clone());
    let (c, w) = mark("check_compile", c, w);
    let errors = lint(
        &loaded.intent,
        &LintOptions {
            universe: Some(&un),
        },
    )
    .iter()
    .filter(|d| d.is_error())
    .count();
    anyhow::ensure!(errors == 0, "the proposal has lint errors");
    let _ = mark("check_lint", c, w);
    let mut v = json!({
        "flows": a.flows,
        "edge_rows_stored": rows,
        "edges_after_merging_buckets": train.observed.len(),
        "identities": train.edges.identities.len(),
        "segments": q.segments,
        "rules": q.recommended.rules,
        "naive_rules": q.naive.rules,
        "over_permissive_share": q.recommended.over_permissive(),
        "covered_flow_share": q.recommended.training.covered_share(),
        "yaml_bytes": files.segments.len() + files.policies.len(),
        "store_write_wall_s": (ww1 - ww0).as_secs_f64(),
        "store_write_cpu_s": wc0.zip(wc1).map(|(a, b)| b - a),
        "recommend_total_wall_s": total_wall,
        "recommend_total_cpu_s": total_cpu,
    });
    for (name, wall, cpu) in phases {
        v[format!("{name}_wall_s")] = json!(wall);
        v[format!("{name}_cpu_s")] = json!(cpu);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_cidr;

    #[test]
    fn only_real_cidrs_become_cidr_peers() {
        for (c, want) in [
            ("198.51.100.0/24", true),
            ("198.51.100.7", true),
            ("2001:db8::/32", true),
            ("10.0.0.0/33", false),
            ("2001:db8::/129", false),
            ("public addresses", false),
            ("", false),
            ("10.0.0.0/x", false),
        ] {
            assert_eq!(is_cidr(c), want, "{c:?}");
        }
    }
}
