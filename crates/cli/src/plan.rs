//! `bulkhead plan`: lint, verify and simulate a policy change in one CI command, with one exit
//! code and one report (text, JSON, JUnit XML or SARIF 2.1.0).
//!
//! Steps, each reusing its own command's code: lint the policy (and the baseline, whose errors
//! count too); verify every invariant over the inventory (or, without one, over the workloads and
//! hosts the store recorded); simulate the store's recent traffic under the policy against the
//! baseline (or against no Bulkhead policy). Every finding is collected, whatever failed before;
//! a step that cannot run says why as a `skipped` finding — a policy with errors is never
//! verified or simulated, so never taken for "allow all".
//!
//! Exit codes: 0 safe; 1 an invariant is violated; 2 more newly blocked flows than
//! `--max-blocked`; 3 input error (lint errors included). Several at once: 3 wins over 1, 1 over 2.

use crate::policy::{Linted, inventory_identities, lint_paths};
use crate::see::human_bytes;
use crate::simulate::{Ctx, Edges, open_store, proto_name, read_edges, simulate};
use crate::verify::{plural, verify_intent};
use bulkhead_intent::{Change, Evaluator, Identity, IdentityKind, Intent, Loc, Severity, Status};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Junit,
    Sarif,
}

/// `bulkhead plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// The proposed policy (files or a directory).
    #[arg(long, value_name = "DIR", required = true)]
    policy: PathBuf,
    /// The policy in force, to compare with (default: no Bulkhead policy, everything allowed).
    /// A baseline with errors is an input error.
    #[arg(long, value_name = "DIR")]
    baseline: Option<PathBuf>,
    /// The data directory: the flow store, and the audit log the plan is recorded in.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    data_dir: PathBuf,
    /// Kubernetes manifests (files or directories): the workloads to verify over (default: the
    /// workloads and hosts of the store's window).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories (YAML or CSV).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
    /// Only traffic in `FROM..TO` (RFC 3339 times, either side may be empty).
    #[arg(long, value_name = "FROM..TO", conflicts_with = "last")]
    window: Option<String>,
    /// Only the last DURATION of recorded traffic, behind the newest record stored (default 7d).
    #[arg(long, value_name = "DURATION")]
    last: Option<String>,
    /// Newly blocked flows allowed: a count (`25`) or a percentage of the window's flows
    /// (`0.5%`). Default 0: any newly blocked flow fails the plan (exit 2).
    #[arg(long, value_name = "N|N%", default_value = "0")]
    max_blocked: Budget,
    /// Lint and verify only; no store is read (verification then needs --inventory/--hosts).
    #[arg(long, conflicts_with_all = ["window", "last"])]
    no_traffic: bool,
    #[arg(long, short, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Why (a ticket or change request), recorded in the audit log (default: a summary).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Do not record the plan in the data directory's audit log.
    #[arg(long)]
    no_record: bool,
    /// Counterexamples per violated invariant and edges per blocked group in the report.
    #[arg(long, value_name = "N", default_value_t = 3)]
    examples: usize,
}

/// `--max-blocked`: newly blocked flows allowed, as a count or a percentage of the window's flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Flows(u64),
    /// `num / scale` percent (`0.5%` is 5 / 10), kept exact.
    Percent {
        num: u64,
        scale: u64,
    },
}

impl FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "{s:?}: expected a number of flows (25) or a percentage of the window's flows (0.5%)"
            )
        };
        match t.strip_suffix('%') {
            Some(p) => {
                let (int, frac) = p.trim().split_once('.').unwrap_or((p.trim(), ""));
                let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
                if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
                    return Err(bad());
                }
                if frac.len() > 6 {
                    return Err(format!("{s:?}: at most 6 decimals"));
                }
                let scale = 10u64.pow(frac.len() as u32);
                let num: u64 = format!("0{int}{frac}").parse().map_err(|_| bad())?;
                if num > 100 * scale {
                    return Err(format!("{s:?}: a percentage is at most 100%"));
                }
                Ok(Budget::Percent { num, scale })
            }
            None => t.parse().map(Budget::Flows).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Budget::Flows(n) => write!(f, "{n}"),
            Budget::Percent { num, scale } => {
                let decimals = scale.ilog10() as usize;
                if decimals == 0 {
                    write!(f, "{num}%")
                } else {
                    write!(f, "{}.{:0w$}%", num / scale, num % scale, w = decimals)
                }
            }
        }
    }
}

impl Budget {
    /// The most newly blocked flows allowed out of `total` in the window: a percentage is
    /// rounded down, so "at most p % of the flows" holds exactly.
    pub fn limit(self, total: u64) -> u64 {
        match self {
            Budget::Flows(n) => n,
            Budget::Percent { num, scale } => {
                (u128::from(num) * u128::from(total) / (100 * u128::from(scale))) as u64
            }
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An input could not be read (missing path, store, inventory) or the plan not recorded.
    Input,
    /// A diagnostic of `policy lint` (the policy's, or the baseline's errors).
    Lint,
    /// A result of `verify`.
    Invariant,
    /// A result of `simulate`: newly blocked or would-block traffic, the budget.
    Blocked,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Input => "input",
            Kind::Lint => "lint",
            Kind::Invariant => "invariant",
            Kind::Blocked => "blocked",
        }
    }
}

/// One finding of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// Stable code: a lint code (`unknown-field`), `invariant-violated`, `newly-blocked`,
    /// `blocked-budget`, `skipped`, …
    pub code: String,
    pub severity: Severity,
    pub message: String,
    /// `file:line:col`, `file:line` or `file`.
    pub location: Option<String>,
    #[serde(skip)]
    pub loc: Option<Loc>,
    pub details: Value,
}

/// Whether a step ran.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StepState {
    Ran,
    Skipped(String),
}

/// The whole plan: findings and what each step saw.
pub struct Plan {
    policy: String,
    baseline: Option<String>,
    findings: Vec<Finding>,
    lint: StepState,
    verify: StepState,
    simulate: StepState,
    /// Every invariant verified: name, status, place.
    invariants: Vec<(String, Status, Option<Loc>)>,
    /// Per step, what it counted (the JSON `steps`).
    steps: BTreeMap<&'static str, Value>,
    /// Newly blocked flows, the limit, and whether the budget holds (simulation ran).
    budget: Option<(u64, u64, bool)>,
    max_blocked: Budget,
    /// The first policy file, where findings without a place point in SARIF.
    anchor: String,
}

/// Exit codes and their names, most important first.
const CONDITIONS: [(u8, &str); 3] = [
    (3, "input-error"),
    (1, "invariant-violated"),
    (2, "blocked-traffic"),
];

impl Plan {
    fn push(
        &mut self,
        kind: Kind,
        code: &str,
        severity: Severity,
        message: String,
        loc: Option<Loc>,
        details: Value,
    ) {
        let loc = loc.filter(|l| !l.file.is_empty());
        self.findings.push(Finding {
            kind,
            code: code.to_string(),
            severity,
            message,
            location: loc.as_ref().map(ToString::to_string),
            loc,
            details,
        });
    }

    fn input(&mut self, code: &str, message: String) {
        self.push(
            Kind::Input,
            code,
            Severity::Error,
            message,
            None,
            Value::Null,
        );
    }

    fn skip(&mut self, kind: Kind, step: &'static str, why: &str) {
        let message = format!("{step} skipped: {why}");
        self.push(
            kind,
            "skipped",
            Severity::Note,
            message,
            None,
            json!({ "step": step }),
        );
        let state = StepState::Skipped(why.to_string());
        match step {
            "lint" => self.lint = state,
            "verify" => self.verify = state,
            _ => self.simulate = state,
        }
        self.steps
            .insert(step, json!({ "status": "skipped", "reason": why }));
    }

    /// Every exit condition that applies (3 input error, 1 invariant violated, 2 blocked
    /// traffic), in precedence order.
    pub fn conditions(&self) -> Vec<(u8, &'static str)> {
        let err = |k: &[Kind]| {
            self.findings
                .iter()
                .any(|f| f.severity == Severity::Error && k.contains(&f.kind))
        };
        let hit = [
            err(&[Kind::Input, Kind::Lint]),
            err(&[Kind::Invariant]),
            err(&[Kind::Blocked]),
        ];
        CONDITIONS
            .iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|(c, _)| *c)
            .collect()
    }

    pub fn exit_code(&self) -> u8 {
        self.conditions().first().map_or(0, |c| c.0)
    }

    fn status(&self) -> &'static str {
        self.conditions().first().map_or("safe", |c| c.1)
    }
}

pub fn run(a: PlanArgs) -> ExitCode {
    let mut plan = build(&a);
    if !a.no_record
        && let Err(e) = record(&a, &plan)
    {
        plan.input("not-recorded", format!("{e:#}"));
    }
    let code = plan.exit_code();
    let text = match a.format {
        PlanFormat::Text => text(&plan),
        PlanFormat::Json => {
            serde_json::to_string_pretty(&to_json(&plan)).unwrap_or_default() + "\n"
        }
        PlanFormat::Junit => junit(&plan),
        PlanFormat::Sarif => serde_json::to_string_pretty(&sarif(&plan)).unwrap_or_default() + "\n",
    };
    if let Err(e) = crate::write_output(a.out.as_ref(), &text) {
        eprintln!("error: {e:#}");
        return ExitCode::from(3);
    }
    if a.format != PlanFormat::Text || a.out.is_some() {
        eprintln!("{}", verdict_line(&plan));
    }
    ExitCode::from(code)
}

/// Records the plan in the data directory's audit log (`policy.plan`).
fn record(a: &PlanArgs, plan: &Plan) -> anyhow::Result<u64> {
    anyhow::ensure!(
        a.data_dir.is_dir(),
        "{}: no such directory; the plan could not be recorded in its audit log (pass --data-dir, or --no-record)",
        a.data_dir.display()
    );
    let reason = a.reason.clone().unwrap_or_else(|| {
        format!(
            "plan: exit {} ({} finding{})",
            plan.exit_code(),
            plan.findings.len(),
            if plan.findings.len() == 1 { "" } else { "s" }
        )
    });
    let after = crate::audit::tree_digest(&a.policy).ok();
    let before = a
        .baseline
        .as_ref()
        .and_then(|b| crate::audit::tree_digest(b).ok());
    let i = crate::audit::record_change(
        &a.data_dir,
        bulkhead_audit::actions::POLICY_PLAN,
        &format!("policy:{}", a.policy.display()),
        &reason,
        before,
        after,
    )?;
    eprintln!(
        "plan: recorded in the audit log of {} as entry {i}",
        a.data_dir.display()
    );
    Ok(i)
}

/// Lints one policy; its intent if it has no errors. The baseline contributes its errors only.
fn lint_one(
    plan: &mut Plan,
    path: &Path,
    role: &str,
    ids: Option<Vec<Identity>>,
) -> (Option<Intent>, Value) {
    if !path.exists() {
        plan.input(
            "unreadable-policy",
            format!("--{role} {}: no such file or directory", path.display()),
        );
        return (None, json!({ "status": "unreadable" }));
    }
    let linted: Linted = lint_paths(&[path.to_path_buf()], ids);
    let errors = linted.count(Severity::Error);
    let warnings = linted.count(Severity::Warning);
    for d in &linted.diagnostics {
        if role == "baseline" && d.severity != Severity::Error {
            continue;
        }
        let message = if role == "baseline" {
            format!("baseline: {}", d.message)
        } else {
            d.message.clone()
        };
        plan.push(
            Kind::Lint,
            d.code,
            d.severity,
            message,
            Some(d.loc.clone()),
            json!({ "hint": d.hint, "source": role }),
        );
    }
    let i = &linted.intent;
    let resources = i.segments.len() + i.policies.len() + i.invariants.len();
    let empty = errors == 0 && resources == 0;
    if empty && role == "baseline" {
        // Comparing with nothing is the default (no Bulkhead policy): the stricter comparison.
        plan.push(
            Kind::Lint,
            "empty-baseline",
            Severity::Note,
            format!(
                "baseline: --baseline {} holds no Segment, Policy or Invariant: the change is compared with no Bulkhead policy",
                path.display()
            ),
            None,
            json!({ "source": role }),
        );
        return (
            Some(linted.intent),
            json!({ "status": "empty", "files": linted.files, "errors": 0 }),
        );
    }
    if empty {
        // A path that holds no policy (a wrong directory, files not yet written) is not an
        // empty policy to plan: that would be "allow all".
        plan.input(
            "no-resources",
            format!(
                "--{role} {}: no Segment, Policy or Invariant in {} file{} (.yaml, .yml); an empty policy is not planned as \"allow all\"",
                path.display(),
                linted.files,
                plural(linted.files as u64)
            ),
        );
    }
    let summary = json!({
        "status": if errors > 0 { "errors" } else { "ok" },
        "files": linted.files,
        "segments": i.segments.len(),
        "policies": i.policies.len(),
        "invariants": i.invariants.len(),
        "inventory": linted.inventory,
        "errors": errors,
        "warnings": warnings,
    });
    ((errors == 0 && !empty).then_some(linted.intent), summary)
}

/// The first YAML file of a policy path (or the path itself), where placeless findings point.
fn anchor(p: &Path) -> String {
    if p.is_dir() {
        let mut files = Vec::new();
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let q = e.path();
                if q.is_dir() {
                    stack.push(q);
                } else if q.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(q);
                }
            }
        }
        files.sort();
        if let Some(f) = files.first() {
            return f.display().to_string();
        }
    }
    p.display().to_string()
}

fn build(a: &PlanArgs) -> Plan {
    let mut plan = Plan {
        policy: a.policy.display().to_string(),
        baseline: a.baseline.as_ref().map(|b| b.display().to_string()),
        findings: Vec::new(),
        lint: StepState::Ran,
        verify: StepState::Ran,
        simulate: StepState::Ran,
        invariants: Vec::new(),
        steps: BTreeMap::new(),
        budget: None,
        max_blocked: a.max_blocked,
        anchor: anchor(&a.policy),
    };
    // The inventory.
    let with_inventory = !a.inventory.is_empty() || !a.hosts.is_empty();
    let mut inventory_ok = true;
    let ids = if with_inventory {
        match inventory_identities(&a.inventory, &a.hosts) {
            Ok(ids) => Some(ids),
            Err(e) => {
                plan.input("unreadable-inventory", format!("{e:#}"));
                inventory_ok = false;
                None
            }
        }
    } else {
        None
    };
    // 1. Lint.
    let (intent, lint_summary) = lint_one(&mut plan, &a.policy, "policy", ids.clone());
    let policy_readable = a.policy.exists();
    let mut lint_step = json!({ "status": "ran", "policy": lint_summary.clone() });
    let baseline: Option<Option<Intent>> = a.baseline.as_ref().map(|b| {
        let (i, s) = lint_one(&mut plan, b, "baseline", None);
        lint_step["baseline"] = s;
        i
    });
    if policy_readable {
        plan.steps.insert("lint", lint_step);
    } else {
        plan.skip(Kind::Lint, "lint", "the policy could not be read");
    }
    let why_not = if !policy_readable {
        "the policy could not be read"
    } else if lint_summary["errors"] == 0 {
        "the policy holds no resources"
    } else {
        "the policy has errors"
    };
    // The traffic (read even when the policy has errors, so its problems are reported too).
    let edges: Option<Edges> = if a.no_traffic || !inventory_ok {
        None
    } else {
        let last = a
            .last
            .as_deref()
            .or(if a.window.is_none() { Some("7d") } else { None });
        let read = open_store(&a.data_dir)
            .map_err(|e| ("no-store", e))
            .and_then(|store| {
                read_edges(
                    &store,
                    &a.data_dir,
                    a.window.as_deref(),
                    last,
                    ids.clone().unwrap_or_default(),
                )
                .map_err(|e| ("unreadable-traffic", e))
            });
        match read {
            Ok(e) if e.rows.is_empty() => {
                plan.input(
                    "no-traffic",
                    format!(
                        "{}: no recorded traffic in the window ({}); a plan over no traffic proves nothing (widen --window/--last, ingest flows, or pass --no-traffic)",
                        a.data_dir.display(),
                        match (&a.window, last) {
                            (Some(w), _) => format!("--window {w}"),
                            (None, Some(l)) => format!("--last {l}"),
                            _ => "all".into(),
                        }
                    ),
                );
                None
            }
            Ok(e) => Some(e),
            Err((code, e)) => {
                plan.input(code, format!("{e:#}"));
                None
            }
        }
    };
    // 2. Verify.
    match &intent {
        None => plan.skip(Kind::Invariant, "verify", why_not),
        Some(_) if !inventory_ok => {
            plan.skip(Kind::Invariant, "verify", "the inventory could not be read")
        }
        Some(intent) => {
            let (vids, from) = match (&ids, &edges) {
                (Some(ids), _) => (Some(ids.clone()), "inventory"),
                (None, Some(e)) => (
                    Some(
                        e.identities
                            .iter()
                            .filter(|i| !matches!(i.kind, IdentityKind::External))
                            .cloned()
                            .collect(),
                    ),
                    "store",
                ),
                (None, None) if intent.invariants.is_empty() => (Some(Vec::new()), "none"),
                (None, None) => (None, "none"),
            };
            match vids {
                None => {
                    plan.input(
                        "no-identities",
                        "the invariants cannot be verified over nothing: give --inventory and/or --hosts, or a store to take the workloads from".into(),
                    );
                    plan.skip(Kind::Invariant, "verify", "no workloads to verify over");
                }
                Some(vids) => verify_step(&mut plan, intent, vids, from, a.examples),
            }
        }
    }
    // 3. Simulate.
    let old = match &baseline {
        None => Some(Intent::default()),
        Some(b) => b.clone(),
    };
    match (&intent, &old, &edges) {
        (None, _, _) => plan.skip(Kind::Blocked, "simulate", why_not),
        (_, None, _) => plan.skip(
            Kind::Blocked,
            "simulate",
            "the baseline could not be read or has errors: nothing to compare with",
        ),
        (_, _, None) if a.no_traffic => plan.skip(Kind::Blocked, "simulate", "--no-traffic"),
        (_, _, None) if !inventory_ok => {
            plan.skip(Kind::Blocked, "simulate", "the inventory could not be read")
        }
        (_, _, None) => plan.skip(Kind::Blocked, "simulate", "no recorded traffic to replay"),
        (Some(new), Some(old), Some(edges)) => simulate_step(&mut plan, a, new, old, edges),
    }
    plan
}

fn verify_step(plan: &mut Plan, intent: &Intent, ids: Vec<Identity>, from: &str, examples: usize) {
    let v = match verify_intent(intent, ids, examples) {
        Ok(v) => v,
        Err(e) => {
            plan.input("policy", format!("{e:#}"));
            plan.skip(
                Kind::Invariant,
                "verify",
                "the evaluator refused the policy",
            );
            return;
        }
    };
    for r in &v.results {
        let loc = intent
            .invariants
            .iter()
            .find(|i| i.meta.name == r.name)
            .map(|i| i.loc.clone());
        plan.invariants
            .push((r.name.clone(), r.status, loc.clone()));
        let details = serde_json::to_value(r).unwrap_or(Value::Null);
        if r.status == Status::Violated {
            let mut m = format!(
                "invariant {} ({}) is violated: {} of {} pairs",
                r.name, r.kind, r.violating_pairs, r.pairs_checked
            );
            for e in &r.examples {
                let _ = write!(
                    m,
                    "; e.g. {} -> {} {} {} ({}: {})",
                    e.src,
                    e.dst,
                    e.protocol,
                    e.port,
                    if r.kind == "mustAllow" {
                        "not allowed"
                    } else {
                        "allowed"
                    },
                    e.explanation
                );
            }
            plan.push(
                Kind::Invariant,
                "invariant-violated",
                Severity::Error,
                m,
                loc,
                details,
            );
        } else if r.sources == 0 || r.destinations == 0 {
            plan.push(
                Kind::Invariant,
                "vacuous-invariant",
                Severity::Note,
                format!(
                    "invariant {} ({}) holds vacuously: it selects no source or no destination among the {} workloads and hosts",
                    r.name, r.kind, from
                ),
                loc,
                details,
            );
        } else if !r.holds_today {
            plan.push(
                Kind::Invariant,
                "holds-when-enforced",
                Severity::Note,
                format!(
                    "invariant {} ({}) holds when enforced, not yet today: {} pairs pass while their segments are in observe mode",
                    r.name, r.kind, r.violating_pairs_today
                ),
                loc,
                details,
            );
        }
    }
    let violated = v.violated();
    plan.steps.insert(
        "verify",
        json!({
            "status": "ran",
            "invariants": v.results.len(),
            "holding": v.results.len() - violated,
            "violated": violated,
            "identities": v.identities,
            "identities_from": from,
            "external_ranges": v.external_ranges,
            "rules": v.rules,
            "evaluated_as": "enforced",
        }),
    );
}

fn simulate_step(plan: &mut Plan, a: &PlanArgs, new: &Intent, old: &Intent, edges: &Edges) {
    let (en, eo) = match (Evaluator::new(new), Evaluator::new(old)) {
        (Ok(en), Ok(eo)) => (en, eo),
        (Err(e), _) | (_, Err(e)) => {
            plan.input("policy", format!("the evaluator refused a policy: {e}"));
            plan.skip(Kind::Blocked, "simulate", "the evaluator refused a policy");
            return;
        }
    };
    let ctx = Ctx {
        new,
        old,
        en: &en,
        eo: &eo,
        policy: plan.policy.clone(),
        against: plan
            .baseline
            .clone()
            .unwrap_or_else(|| "no Bulkhead policy (everything allowed)".into()),
    };
    let report = simulate(&ctx, edges, a.examples);
    let tally = |c: Change| report.classes.get(&c).copied().unwrap_or_default();
    let total_flows: u64 =
        report.classes.values().map(|t| t.flows).sum::<u64>() + report.other_protocol.flows;
    let blocked = tally(Change::NewlyBlocked);
    let limit = a.max_blocked.limit(total_flows);
    let ok = blocked.flows <= limit;
    // Where a group is decided: the deciding rule; with no rule (default deny or would-block),
    // the segment that puts the denying side under that mode.
    let place = |g: &crate::simulate::Group| -> (Option<Loc>, Option<String>) {
        if let Some(r) = g.new.rule {
            let loc = new
                .policies
                .get(r.policy)
                .and_then(|p| p.rules.get(r.rule))
                .map(|x| x.loc.clone());
            return (loc, None);
        }
        let (Some(side), Some(&i)) = (g.new.side, g.top.first()) else {
            return (None, None);
        };
        let r = &edges.rows[i];
        let node = match side {
            bulkhead_intent::Side::Egress => r.src,
            bulkhead_intent::Side::Ingress => r.dst,
        };
        let mode = if g.new.verdict == bulkhead_intent::Verdict::Deny {
            bulkhead_intent::Mode::Enforce
        } else {
            bulkhead_intent::Mode::Observe
        };
        let seg = edges.nodes[node as usize].1.first().and_then(|&id| {
            let id = &edges.identities[id];
            new.segments
                .iter()
                .find(|s| s.mode == mode && s.selector.matches(id))
        });
        (
            seg.map(|s| s.loc.clone()),
            seg.map(|s| s.name().to_string()),
        )
    };
    let mut worst: Option<(u64, Option<Loc>)> = None;
    for g in &report.groups {
        let (code, severity, what) = match g.change {
            Change::NewlyBlocked => ("newly-blocked", Severity::Warning, "newly blocked"),
            Change::WouldBlock => (
                "would-block",
                Severity::Note,
                "would be blocked once enforced (observe mode today, not counted toward --max-blocked)",
            ),
            _ => continue,
        };
        let (loc, segment) = place(g);
        if g.change == Change::NewlyBlocked && worst.as_ref().is_none_or(|w| g.tally.flows > w.0) {
            worst = Some((g.tally.flows, loc.clone()));
        }
        let mut m = format!(
            "{} flow{} ({} edge{}, {}) {what}: {}",
            g.tally.flows,
            plural(g.tally.flows),
            g.tally.edges,
            plural(g.tally.edges),
            human_bytes(g.tally.bytes),
            en.describe(new, &g.new)
        );
        if let Some(seg) = &segment {
            let _ = write!(m, " (segment {seg})");
        }
        for &i in &g.top {
            let r = &edges.rows[i];
            let _ = write!(
                m,
                "; e.g. {} -> {} {}/{} ({} flow{})",
                edges.nodes[r.src as usize].0,
                edges.nodes[r.dst as usize].0,
                proto_name(r.proto),
                r.port,
                r.flows,
                plural(r.flows)
            );
        }
        let details = json!({
            "edges": g.tally.edges,
            "flows": g.tally.flows,
            "bytes": g.tally.bytes,
            "verdict": g.new.verdict,
            "rule": ctx.rule_json(new, &g.new),
            "segment": segment,
            "before": g.old.verdict,
            "top": g.top.iter().map(|&i| {
                let r = &edges.rows[i];
                json!({
                    "src": edges.nodes[r.src as usize].0,
                    "dst": edges.nodes[r.dst as usize].0,
                    "protocol": proto_name(r.proto),
                    "port": r.port,
                    "flows": r.flows,
                })
            }).collect::<Vec<_>>(),
        });
        plan.push(Kind::Blocked, code, severity, m, loc, details);
    }
    if !ok {
        plan.push(
            Kind::Blocked,
            "blocked-budget",
            Severity::Error,
            format!(
                "{} flow{} newly blocked of {} in the window: more than --max-blocked {} allows ({} flow{})",
                blocked.flows,
                plural(blocked.flows),
                total_flows,
                a.max_blocked,
                limit,
                plural(limit)
            ),
            worst.and_then(|w| w.1),
            json!({ "newly_blocked_flows": blocked.flows, "window_flows": total_flows, "limit": limit, "max_blocked": a.max_blocked.to_string() }),
        );
    }
    plan.budget = Some((blocked.flows, limit, ok));
    let classes: serde_json::Map<String, Value> = report
        .classes
        .iter()
        .map(|(c, t)| (c.as_str().replace(' ', "_"), json!(t)))
        .collect();
    plan.steps.insert(
        "simulate",
        json!({
            "status": "ran",
            "against": ctx.against,
            "window": edges.window,
            "edges": edges.rows.len(),
            "flows": total_flows,
            "classes": classes,
            "other_protocol": report.other_protocol,
            "budget": {
                "max_blocked": a.max_blocked.to_string(),
                "limit": limit,
                "newly_blocked_flows": blocked.flows,
                "ok": ok,
                "counts": "newly blocked flows; would-block (observe mode) is reported, not counted",
            },
        }),
    );
}

/// Findings in report order: by kind (input, lint, invariant, blocked), then severity, then place.
fn ordered(plan: &Plan) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = plan.findings.iter().collect();
    v.sort_by(|a, b| (a.kind, a.severity, &a.loc).cmp(&(b.kind, b.severity, &b.loc)));
    v
}

fn verdict_line(plan: &Plan) -> String {
    let c = plan.conditions();
    let mut s = format!("plan: exit {} ({})", plan.exit_code(), plan.status());
    if c.len() > 1 {
        let rest: Vec<&str> = c[1..].iter().map(|c| c.1).collect();
        let _ = write!(s, "; also {}", rest.join(", "));
    }
    let n = plan.findings.len();
    let _ = write!(s, "; {n} finding{}", plural(n as u64));
    s
}

fn text(plan: &Plan) -> String {
    let mut s = format!(
        "plan: {} against {}\n",
        plan.policy,
        plan.baseline
            .as_deref()
            .unwrap_or("no Bulkhead policy (everything allowed)")
    );
    let skipped = |st: &StepState| match st {
        StepState::Skipped(w) => Some(format!("skipped: {w}")),
        StepState::Ran => None,
    };
    let st = |k: &str| plan.steps.get(k).cloned().unwrap_or(Value::Null);
    let lint = st("lint");
    let line = match skipped(&plan.lint) {
        Some(w) => w,
        None => {
            let p = &lint["policy"];
            let n = |k: &str| p[k].as_u64().unwrap_or(0);
            let mut l = format!(
                "{} file{}, {} segment{}, {} polic{}, {} invariant{}: {} error{}, {} warning{}",
                n("files"),
                plural(n("files")),
                n("segments"),
                plural(n("segments")),
                n("policies"),
                if n("policies") == 1 { "y" } else { "ies" },
                n("invariants"),
                plural(n("invariants")),
                n("errors"),
                plural(n("errors")),
                n("warnings"),
                plural(n("warnings")),
            );
            if let Some(b) = lint.get("baseline") {
                let _ = write!(
                    l,
                    "; baseline: {}",
                    if b["status"] == "unreadable" {
                        "unreadable".to_string()
                    } else {
                        format!("{} errors", b["errors"])
                    }
                );
            }
            l
        }
    };
    let _ = writeln!(s, "lint:     {line}");
    let v = st("verify");
    let line = match skipped(&plan.verify) {
        Some(w) => w,
        None => format!(
            "{} invariant{} over {} workloads and hosts (from the {}) and {} external address ranges, as enforced: {} hold, {} violated",
            v["invariants"],
            plural(v["invariants"].as_u64().unwrap_or(0)),
            v["identities"],
            v["identities_from"].as_str().unwrap_or(""),
            v["external_ranges"],
            v["holding"],
            v["violated"]
        ),
    };
    let _ = writeln!(s, "verify:   {line}");
    let m = st("simulate");
    let line = match skipped(&plan.simulate) {
        Some(w) => w,
        None => {
            let window = match m["window"].as_array() {
                Some(w) => format!(
                    " in {}..{}",
                    w.first().and_then(Value::as_str).unwrap_or(""),
                    w.get(1).and_then(Value::as_str).unwrap_or("")
                ),
                None => String::new(),
            };
            let c = &m["classes"];
            format!(
                "{} edges, {} flows{window}: {} flows newly blocked (budget {}: at most {}, {}), {} would block (observe mode, not counted), {} newly allowed",
                m["edges"],
                m["flows"],
                c["newly_blocked"]["flows"],
                m["budget"]["max_blocked"].as_str().unwrap_or(""),
                m["budget"]["limit"],
                if m["budget"]["ok"] == true {
                    "ok"
                } else {
                    "exceeded"
                },
                c["would_block"]["flows"],
                c["newly_allowed"]["flows"],
            )
        }
    };
    let _ = writeln!(s, "simulate: {line}");
    let fs = ordered(plan);
    if !fs.is_empty() {
        s.push_str("\nfindings:\n");
    }
    for f in fs {
        if let Some(l) = &f.location {
            let _ = write!(s, "{l}: ");
        }
        let _ = writeln!(
            s,
            "{}[{}/{}]: {}",
            f.severity,
            f.kind.as_str(),
            f.code,
            f.message
        );
        if let Some(h) = f.details.get("hint").and_then(Value::as_str) {
            let _ = writeln!(s, "  = hint: {h}");
        }
    }
    let _ = writeln!(s, "\n{}", verdict_line(plan));
    s
}

fn to_json(plan: &Plan) -> Value {
    json!({
        "schema": "bulkhead.plan/v1",
        "status": plan.status(),
        "exit_code": plan.exit_code(),
        "conditions": plan.conditions().iter().map(|c| json!({"exit_code": c.0, "status": c.1})).collect::<Vec<_>>(),
        "policy": plan.policy,
        "baseline": plan.baseline,
        "steps": plan.steps,
        "findings": ordered(plan),
    })
}

/// The lint codes (`docs/intent.md`), each a JUnit testcase.
pub const LINT_CODES: &[(&str, &str)] = &[
    ("yaml", "the file is valid YAML"),
    (
        "unknown-kind",
        "every resource is a Segment, Policy or Invariant",
    ),
    (
        "unknown-api-version",
        "every resource is bulkhead.dev/v1alpha1",
    ),
    ("unknown-field", "no unknown fields"),
    ("unknown-value", "no unknown values"),
    ("missing-field", "no missing required fields"),
    ("bad-type", "values have the right type"),
    ("bad-name", "names are valid"),
    ("bad-cidr", "CIDRs are valid"),
    ("bad-port", "ports are in range"),
    ("bad-protocol", "protocols are TCP, UDP or SCTP"),
    ("bad-peer", "a peer names exactly one kind"),
    ("bad-selector", "selectors are valid"),
    ("empty-selector", "no empty selectors"),
    ("empty-peers", "no empty peer lists"),
    ("bad-invariant", "invariants are well formed"),
    ("not-utf8", "files are UTF-8"),
    ("io", "files are readable"),
    ("duplicate-name", "names are unique per kind"),
    ("unknown-segment", "every segment named exists"),
    ("shadowed-rule", "no rule is shadowed by an earlier one"),
    ("redundant-rule", "no rule is redundant with an earlier one"),
    (
        "open-compliance-scope",
        "no allow from everyone into a compliance scope",
    ),
    ("empty-segment", "every segment selects a workload or host"),
    (
        "matches-nothing",
        "every selector selects a workload or host",
    ),
    ("empty-policy", "no policy without rules"),
    ("no-inventory", "selectors checked against an inventory"),
];

/// What each non-lint code means (SARIF rule descriptions).
const CODES: &[(Kind, &str, &str)] = &[
    (
        Kind::Lint,
        "empty-baseline",
        "The baseline holds policy resources",
    ),
    (
        Kind::Input,
        "unreadable-policy",
        "The policy or baseline path can be read",
    ),
    (
        Kind::Input,
        "unreadable-inventory",
        "The inventory can be read",
    ),
    (Kind::Input, "no-store", "The flow store can be read"),
    (
        Kind::Input,
        "unreadable-traffic",
        "The window's traffic can be read from the store",
    ),
    (
        Kind::Input,
        "no-resources",
        "The policy path holds policy resources",
    ),
    (
        Kind::Input,
        "no-traffic",
        "The window holds recorded traffic",
    ),
    (
        Kind::Input,
        "no-identities",
        "There are workloads to verify over",
    ),
    (
        Kind::Input,
        "not-recorded",
        "The plan is recorded in the audit log",
    ),
    (Kind::Input, "policy", "The evaluator accepts the policy"),
    (
        Kind::Invariant,
        "invariant-violated",
        "Every invariant holds (as enforced)",
    ),
    (
        Kind::Invariant,
        "vacuous-invariant",
        "The invariant selects sources and destinations",
    ),
    (
        Kind::Invariant,
        "holds-when-enforced",
        "The invariant holds today, not only once enforced",
    ),
    (
        Kind::Blocked,
        "newly-blocked",
        "Observed traffic the change blocks",
    ),
    (
        Kind::Blocked,
        "would-block",
        "Observed traffic blocked once observe-mode segments are enforced",
    ),
    (
        Kind::Blocked,
        "blocked-budget",
        "Newly blocked flows within --max-blocked",
    ),
];

fn describe(kind: Kind, code: &str) -> String {
    if code == "skipped" {
        return format!("A {} step that could not run", kind.as_str());
    }
    if kind == Kind::Lint
        && let Some((_, d)) = LINT_CODES.iter().find(|(c, _)| *c == code)
    {
        let mut d = d.to_string();
        if let Some(f) = d.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        return d;
    }
    CODES
        .iter()
        .find(|(k, c, _)| *k == kind && *c == code)
        .map_or_else(|| format!("{} {code}", kind.as_str()), |x| x.2.to_string())
}

/// Escapes text for XML (attributes and content); characters XML 1.0 cannot hold become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn finding_line(f: &Finding) -> String {
    match &f.location {
        Some(l) => format!("{l}: {}: {}", f.severity, f.message),
        None => format!("{}: {}", f.severity, f.message),
    }
}

/// A JUnit testcase: name, failures (message lines), notes for system-out, skipped reason.
struct Case {
    name: String,
    failures: Vec<String>,
    out: Vec<String>,
    skipped: Option<String>,
}

impl Case {
    fn new(name: &str) -> Self {
        Case {
            name: name.to_string(),
            failures: Vec::new(),
            out: Vec::new(),
            skipped: None,
        }
    }
}

fn junit(plan: &Plan) -> String {
    let fs = ordered(plan);
    let of = |k: Kind| fs.iter().copied().filter(move |f| f.kind == k);
    let mut suites: Vec<(&str, Vec<Case>)> = Vec::new();
    // Inputs.
    let mut cases: Vec<Case> = of(Kind::Input)
        .map(|f| {
            let mut c = Case::new(&f.code);
            c.failures.push(finding_line(f));
            c
        })
        .collect();
    if cases.is_empty() {
        cases.push(Case::new("inputs readable"));
    }
    suites.push(("inputs", cases));
    // A step that did not run: one skipped case.
    let skipped_suite = |st: &StepState, name: &str| -> Option<Vec<Case>> {
        match st {
            StepState::Skipped(w) => {
                let mut c = Case::new(name);
                c.skipped = Some(w.clone());
                Some(vec![c])
            }
            StepState::Ran => None,
        }
    };
    // Lint: a case per code.
    let cases = skipped_suite(&plan.lint, "lint").unwrap_or_else(|| {
        let mut codes: Vec<&str> = LINT_CODES.iter().map(|c| c.0).collect();
        for f in of(Kind::Lint) {
            if !codes.contains(&f.code.as_str()) {
                codes.push(&f.code);
            }
        }
        codes
            .iter()
            .map(|code| {
                let mut c = Case::new(code);
                for f in of(Kind::Lint).filter(|f| f.code == *code) {
                    if f.severity == Severity::Error {
                        c.failures.push(finding_line(f));
                    } else {
                        c.out.push(finding_line(f));
                    }
                }
                c
            })
            .collect()
    });
    suites.push(("lint", cases));
    // Verify: a case per invariant.
    let cases = skipped_suite(&plan.verify, "verify").unwrap_or_else(|| {
        plan.invariants
            .iter()
            .map(|(name, _, _)| {
                let mut c = Case::new(name);
                for f in of(Kind::Invariant).filter(|f| f.details["name"] == name.as_str()) {
                    if f.severity == Severity::Error {
                        c.failures.push(finding_line(f));
                    } else {
                        c.out.push(finding_line(f));
                    }
                }
                c
            })
            .collect()
    });
    suites.push(("verify", cases));
    // Simulate: the budget, and the would-block report.
    let cases = skipped_suite(&plan.simulate, "blocked-traffic budget").unwrap_or_else(|| {
        let mut budget = Case::new("blocked-traffic budget");
        let mut observe = Case::new("would-block (observe mode, not counted)");
        for f in of(Kind::Blocked) {
            match f.code.as_str() {
                "blocked-budget" => budget.failures.insert(0, finding_line(f)),
                "would-block" => observe.out.push(finding_line(f)),
                _ if budget.failures.is_empty() => budget.out.push(finding_line(f)),
                _ => budget.failures.push(finding_line(f)),
            }
        }
        if let Some((b, l, _)) = plan.budget {
            budget.out.insert(
                0,
                format!(
                    "{b} newly blocked flows; --max-blocked {} allows {l}",
                    plan.max_blocked
                ),
            );
        }
        vec![budget, observe]
    });
    suites.push(("simulate", cases));

    let count = |f: fn(&Case) -> bool| -> usize {
        suites
            .iter()
            .map(|(_, cs)| cs.iter().filter(|c| f(c)).count())
            .sum()
    };
    let tests = count(|_| true);
    let failures = count(|c| !c.failures.is_empty());
    let skipped = count(|c| c.skipped.is_some());
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"bulkhead plan\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    for (name, cases) in &suites {
        let _ = writeln!(
            s,
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">",
            cases.len(),
            cases.iter().filter(|c| !c.failures.is_empty()).count(),
            cases.iter().filter(|c| c.skipped.is_some()).count()
        );
        for c in cases {
            let _ = write!(
                s,
                "    <testcase name=\"{}\" classname=\"bulkhead.plan.{name}\"",
                xml_escape(&c.name)
            );
            if c.failures.is_empty() && c.out.is_empty() && c.skipped.is_none() {
                s.push_str("/>\n");
                continue;
            }
            s.push_str(">\n");
            if let Some(w) = &c.skipped {
                let _ = writeln!(s, "      <skipped message=\"{}\"/>", xml_escape(w));
            }
            if let Some(first) = c.failures.first() {
                let _ = writeln!(
                    s,
                    "      <failure message=\"{}\" type=\"{name}\">{}</failure>",
                    xml_escape(first),
                    xml_escape(&c.failures.join("\n"))
                );
            }
            if !c.out.is_empty() {
                let _ = writeln!(
                    s,
                    "      <system-out>{}</system-out>",
                    xml_escape(&c.out.join("\n"))
                );
            }
            s.push_str("    </testcase>\n");
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// A SARIF artifact URI: relative to the git work tree that holds the file (base `%SRCROOT%`)
/// when there is one, else the path as given if relative, else a `file://` URI.
fn artifact(file: &str) -> Value {
    let p = Path::new(file);
    let abs = std::fs::canonicalize(p)
        .ok()
        .or_else(|| std::env::current_dir().ok().map(|d| d.join(p)));
    if let Some(abs) = &abs
        && let Some(root) = abs.ancestors().skip(1).find(|d| d.join(".git").exists())
        && let Ok(rel) = abs.strip_prefix(root)
    {
        let rel: Vec<String> = rel
            .components()
            .map(|c| uri_encode(&c.as_os_str().to_string_lossy()))
            .collect();
        return json!({ "uri": rel.join("/"), "uriBaseId": "%SRCROOT%" });
    }
    if p.is_relative() {
        let rel: Vec<String> = p
            .components()
            .map(|c| uri_encode(&c.as_os_str().to_string_lossy()))
            .collect();
        return json!({ "uri": rel.join("/"), "uriBaseId": "%SRCROOT%" });
    }
    let abs = abs.unwrap_or_else(|| p.to_path_buf());
    let parts: Vec<String> = abs
        .components()
        .filter(|c| !matches!(c, std::path::Component::RootDir))
        .map(|c| uri_encode(&c.as_os_str().to_string_lossy()))
        .collect();
    json!({ "uri": format!("file:///{}", parts.join("/")) })
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
fn uri_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn sarif(plan: &Plan) -> Value {
    let fs = ordered(plan);
    let mut rules: Vec<(String, Kind, String)> = Vec::new();
    let mut results = Vec::new();
    for f in &fs {
        let id = format!("{}/{}", f.kind.as_str(), f.code);
        let index = match rules.iter().position(|r| r.0 == id) {
            Some(i) => i,
            None => {
                rules.push((id.clone(), f.kind, f.code.clone()));
                rules.len() - 1
            }
        };
        let (file, line, col) = match &f.loc {
            Some(l) => (l.file.clone(), l.line, l.column),
            None => (plan.anchor.clone(), 0, 0),
        };
        let mut physical = json!({ "artifactLocation": artifact(&file) });
        if line > 0 {
            let mut region = json!({ "startLine": line });
            if col > 0 {
                region["startColumn"] = json!(col);
            }
            physical["region"] = region;
        }
        let mut message = f.message.clone();
        if let Some(h) = f.details.get("hint").and_then(Value::as_str) {
            let _ = write!(message, " (hint: {h})");
        }
        results.push(json!({
            "ruleId": id,
            "ruleIndex": index,
            "level": level(f.severity),
            "message": { "text": message },
            "locations": [{ "physicalLocation": physical }],
        }));
    }
    let rules: Vec<Value> = rules
        .iter()
        .map(|(id, kind, code)| {
            json!({
                "id": id,
                "name": code,
                "shortDescription": { "text": describe(*kind, code) },
                "properties": { "kind": kind.as_str() },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "bulkhead",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "exitCode": plan.exit_code(),
            }],
            "results": results,
            "properties": { "status": plan.status() },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_bound_exactly() {
        // (input, total flows, most allowed, why)
        let cases: &[(&str, u64, u64, &str)] = &[
            ("0", 1000, 0, "the default: nothing may be newly blocked"),
            ("25", 10, 25, "a count ignores the total"),
            ("25%", 12, 3, "25 % of 12 is exactly 3"),
            ("24.99%", 12, 2, "just under 3: rounded down to 2"),
            ("0.5%", 1000, 5, "decimals"),
            ("0.5%", 999, 4, "4.995 rounds down"),
            ("100%", 7, 7, "everything"),
            (".5%", 200, 1, "no integer part"),
            ("10%", 0, 0, "an empty window allows nothing"),
        ];
        for (s, total, want, why) in cases {
            let b: Budget = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(b.limit(*total), *want, "{s} of {total}: {why}");
        }
        for bad in ["-1", "x", "%", "101%", "1.2345678%", "5 flows", ""] {
            assert!(bad.parse::<Budget>().is_err(), "{bad:?} must be refused");
        }
        assert_eq!("0.50%".parse::<Budget>().unwrap().to_string(), "0.50%");
        assert_eq!("7".parse::<Budget>().unwrap().to_string(), "7");
    }

    proptest::proptest! {
        /// The limit is the largest flow count within P % of the total: L·100·scale ≤ num·total
        /// and (L+1)·100·scale > num·total, i.e. exactly at the budget passes and one more fails.
        #[test]
        fn percent_limit_is_exact(int in 0u64..=100, frac in 0u64..10_000, decimals in 0u32..=4, total in 0u64..1u64 << 40) {
            let scale = 10u64.pow(decimals);
            let num = (int * scale + frac % scale).min(100 * scale);
            let s = if decimals == 0 {
                format!("{num}%")
            } else {
                format!("{}.{:0w$}%", num / scale, num % scale, w = decimals as usize)
            };
            let b: Budget = s.parse().unwrap();
            proptest::prop_assert_eq!(b, Budget::Percent { num, scale });
            proptest::prop_assert_eq!(b.to_string(), s);
            let l = u128::from(b.limit(total));
            let (n, t, d) = (u128::from(num), u128::from(total), 100 * u128::from(scale));
            proptest::prop_assert!(l * d <= n * t);
            proptest::prop_assert!((l + 1) * d > n * t);
        }

        /// Any text either parses or is refused; never a panic.
        #[test]
        fn budgets_never_panic(s in ".{0,12}") {
            let _ = s.parse::<Budget>();
        }
    }

    #[test]
    fn xml_escape_leaves_no_markup() {
        let e = xml_escape("a<b>&\"c\"'d'\u{1}\n");
        assert_eq!(e, "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{FFFD}\n");
    }

    #[test]
    fn lint_codes_are_the_documented_ones() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/intent.md"),
        )
        .expect("docs/intent.md");
        for (code, _) in LINT_CODES {
            assert!(
                doc.contains(&format!("`{code}`")),
                "{code} is not in docs/intent.md"
            );
        }
    }

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(uri_encode("a b#c.yaml"), "a%20b%23c.yaml");
    }
}
