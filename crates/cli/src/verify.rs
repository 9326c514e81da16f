//! `bulkhead verify`: every Invariant checked exactly over an inventory, with counterexamples
//! and a compliance report (PCI-DSS v4.0 requirement 1, GDPR data-segment isolation);
//! `bulkhead query can-reach`: the connections allowed between two identities; `bulkhead bench
//! verify`: the verifier at scale.
//!
//! Exit codes of `verify`: 0 every invariant holds, 1 an invariant is violated, 3 input error
//! (a policy with errors, a missing or malformed inventory). `query can-reach`: 0, or 3.
//!
//! Verification judges the policy as it will be when enforced: observe-mode segments count as
//! enforced. Whether an invariant also holds today (observe mode does not block) is reported next
//! to it.

use crate::policy::{BENCH_SEGMENTS, cpu_secs, inventory_identities, synthetic};
use anyhow::{Context, Result, bail};
use bulkhead_core::{ConnSet, Protocol};
use bulkhead_intent::{
    Evaluator, Identity, Intent, InvariantKind, InvariantResult, Peer, Status, Universe, Verdict,
    VerifyOptions, chain_step, external_representatives, load_paths, verify,
};
use bulkhead_synth::SplitMix64;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VerifyFormat {
    Text,
    Json,
    /// The compliance report.
    Markdown,
}

/// Where the policy and the identities come from.
#[derive(Args)]
pub struct Sources {
    /// Policy files or directories (read recursively for .yaml and .yml).
    #[arg(long, required = true, value_name = "DIR", num_args = 1..)]
    pub(crate) policy: Vec<PathBuf>,
    /// Kubernetes manifests (files or directories): the workloads to verify over.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories (YAML or CSV): the hosts to verify over.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub(crate) src: Sources,
    /// Brownfield: verify against these Kubernetes manifests (files or directories) — their
    /// workloads and their NetworkPolicies, AdminNetworkPolicies and
    /// BaselineAdminNetworkPolicy — instead of the intent's own Policy resources.
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with_all = ["inventory", "hosts"])]
    pub(crate) k8s: Vec<PathBuf>,
    /// With --k8s: report malformed objects as warnings and verify the rest (as
    /// `connectivity --keep-going`; the report then says the input was partly read).
    #[arg(long, requires = "k8s")]
    pub(crate) keep_going: bool,
    /// With --k8s: do not print the manifest loader's warnings.
    #[arg(long, short, requires = "k8s")]
    pub(crate) quiet: bool,
    /// text (per invariant, with counterexamples), json (everything), markdown (the compliance
    /// report).
    #[arg(long, short, value_enum, default_value = "text")]
    pub(crate) format: VerifyFormat,
    /// Write the output to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Also write the compliance report here (JSON if the name ends in .json, else markdown).
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Counterexamples printed per violated invariant.
    #[arg(long, default_value_t = 3)]
    pub(crate) examples: usize,
}

#[derive(Subcommand)]
pub enum QueryCommand {
    /// The connections the policy allows from SRC to DST (port ranges per protocol and the
    /// rules that decide them), or the deciding rule for one port.
    CanReach(CanReachArgs),
}

#[derive(Args)]
pub struct CanReachArgs {
    /// `namespace/workload`, a host name, or an IP address.
    src: String,
    /// `namespace/workload`, a host name, or an IP address.
    dst: String,
    /// One connection, `PORT/PROTO` (`443/TCP`; the protocol defaults to TCP).
    #[arg(long, value_name = "PORT/PROTO")]
    port: Option<String>,
    #[command(flatten)]
    sources: Sources,
    #[arg(long, short, value_enum, default_value = "text")]
    format: crate::policy::LintFormat,
}

/// Exit 3 on input errors, as `docs/intent.md` says.
pub fn run(a: VerifyArgs) -> ExitCode {
    exit3(run_verify(&a))
}

pub fn run_query(q: QueryCommand) -> ExitCode {
    match q {
        QueryCommand::CanReach(a) => exit3(run_can_reach(&a)),
    }
}

pub(crate) fn exit3(r: Result<ExitCode>) -> ExitCode {
    r.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(3)
    })
}

/// Loads the policy, refusing one with errors (an invalid policy is never "allow all").
pub(crate) fn load_intent(paths: &[PathBuf]) -> Result<Intent> {
    for p in paths {
        anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
    }
    let loaded = load_paths(paths);
    if loaded.has_errors() {
        for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{d}");
        }
        bail!("the policy has errors (see `bulkhead policy lint`); nothing was verified");
    }
    Ok(loaded.intent)
}

fn load(s: &Sources) -> Result<(Intent, Vec<Identity>)> {
    let intent = load_intent(&s.policy)?;
    anyhow::ensure!(
        !s.inventory.is_empty() || !s.hosts.is_empty(),
        "give the workloads to verify over: --inventory PATH… and/or --hosts FILE…"
    );
    let ids = inventory_identities(&s.inventory, &s.hosts)?;
    Ok((intent, ids))
}

/// "s" unless `n` is one.
pub(crate) fn plural(n: impl TryInto<u64>) -> &'static str {
    if n.try_into().ok() == Some(1) {
        ""
    } else {
        "s"
    }
}

/// What `verify` finds: every invariant's result over the identities (plus a representative of
/// each external address range the policy names).
pub struct Verified {
    pub results: Vec<InvariantResult>,
    /// Workloads and hosts verified over (without the external ranges).
    pub identities: usize,
    pub external_ranges: usize,
    pub rules: usize,
}

impl Verified {
    pub fn violated(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.status == Status::Violated)
            .count()
    }
}

/// Verifies every invariant of `intent` over `ids`, keeping `examples` counterexamples each.
/// Fails only when the evaluator refuses the intent (a reference lint reports as an error).
pub fn verify_intent(intent: &Intent, mut ids: Vec<Identity>, examples: usize) -> Result<Verified> {
    let identities = ids.len();
    let externals = external_representatives(intent, &ids);
    let external_ranges = externals.len();
    ids.extend(externals);
    let ev = Evaluator::new(intent).context("the policy")?;
    let u = Universe::new(&ev, ids);
    let results = verify(
        intent,
        &u,
        VerifyOptions {
            max_examples: examples,
        },
    );
    Ok(Verified {
        results,
        identities,
        external_ranges,
        rules: ev.rule_count(),
    })
}

fn run_verify(a: &VerifyArgs) -> Result<ExitCode> {
    if !a.k8s.is_empty() {
        return crate::verify_k8s::run(a);
    }
    let (intent, ids) = load(&a.src)?;
    let v = verify_intent(&intent, ids, a.examples)?;
    let violated = v.violated();
    let results = v.results;
    let compliance = compliance(&intent, &results);
    let summary = json!({
        "policy": a.src.policy,
        "identities": v.identities,
        "external_ranges": v.external_ranges,
        "rules": v.rules,
        "invariants": results.len(),
        "holding": results.len() - violated,
        "violated": violated,
        "evaluated_as": "enforced",
    });
    let text = match a.format {
        VerifyFormat::Json => {
            let mut v = summary.clone();
            v["results"] = serde_json::to_value(&results)?;
            v["compliance"] = serde_json::to_value(&compliance)?;
            serde_json::to_string_pretty(&v)? + "\n"
        }
        VerifyFormat::Markdown => markdown(&intent, &summary, &results, &compliance),
        VerifyFormat::Text => text(&summary, &results),
    };
    crate::write_output(a.out.as_ref(), &text)?;
    if let Some(p) = &a.report {
        let report = if p.extension().is_some_and(|e| e == "json") {
            let mut v = summary.clone();
            v["compliance"] = serde_json::to_value(&compliance)?;
            v["results"] = serde_json::to_value(&results)?;
            serde_json::to_string_pretty(&v)? + "\n"
        } else {
            markdown(&intent, &summary, &results, &compliance)
        };
        crate::write_output(Some(p), &report)?;
    }
    Ok(if violated > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn text(summary: &serde_json::Value, results: &[InvariantResult]) -> String {
    let mut s = text_results(results);
    let _ = writeln!(
        s,
        "verify: {} invariant{} over {} workloads and hosts (+{} external address ranges), {} rules, every segment as enforced: {} hold, {} violated",
        summary["invariants"],
        if summary["invariants"] == 1 { "" } else { "s" },
        summary["identities"],
        summary["external_ranges"],
        summary["rules"],
        summary["holding"],
        summary["violated"],
    );
    s
}

/// Each invariant's outcome with its counterexamples (the text format without its summary).
pub(crate) fn text_results(results: &[InvariantResult]) -> String {
    let mut s = String::new();
    for r in results {
        let status = match (r.status, r.holds_today) {
            (Status::Violated, _) => "VIOLATED",
            (Status::Holds, true) => "holds",
            (Status::Holds, false) => "holds when enforced",
        };
        let _ = writeln!(
            s,
            "{status}: {} ({}) at {}: {} pair{} checked over every port{}",
            r.name,
            r.kind,
            r.at,
            r.pairs_checked,
            plural(r.pairs_checked),
            if r.sources == 0 || r.destinations == 0 {
                " (vacuous: it selects no source or no destination)"
            } else {
                ""
            }
        );
        if r.status == Status::Holds && !r.holds_today {
            let _ = writeln!(
                s,
                "  not yet today: {} pair{} pass while their segments are in observe mode",
                r.violating_pairs_today,
                plural(r.violating_pairs_today)
            );
        }
        if r.status == Status::Violated {
            let _ = writeln!(
                s,
                "  {} violating pair{} of {}",
                r.violating_pairs,
                plural(r.violating_pairs),
                r.pairs_checked
            );
        }
        for e in &r.examples {
            let what = if r.kind == InvariantKind::MustAllow.to_string() {
                "not allowed"
            } else {
                "allowed"
            };
            let _ = writeln!(
                s,
                "  e.g. {} -> {} {} {} ({what} between them: {})",
                e.src, e.dst, e.protocol, e.port, e.conns
            );
            let _ = writeln!(s, "    {}", e.explanation);
            for c in &e.chain {
                let _ = writeln!(
                    s,
                    "    chain: {} policy {} {} ({}) at {}",
                    c.tier, c.policy, c.rule, c.action, c.at
                );
            }
        }
    }
    s
}

/// One control of the compliance report.
#[derive(serde::Serialize)]
pub(crate) struct Control {
    framework: &'static str,
    id: &'static str,
    title: &'static str,
    /// `holds`, `holds when enforced`, `violated` or `no evidence`.
    status: &'static str,
    /// Invariants that evidence the control, and why they were mapped to it.
    invariants: Vec<(String, &'static str)>,
    /// Segments in the control's scope, with their mode (with `--k8s`: how many workloads
    /// they select).
    pub(crate) segments: Vec<(String, String)>,
    note: &'static str,
}

fn names_scope(intent: &Intent, peers: &[bulkhead_intent::PeerAt], scope: &str) -> bool {
    peers.iter().any(|p| match &p.peer {
        Peer::Segment(s) => intent
            .segment(s)
            .is_some_and(|s| s.compliance.iter().any(|c| c == scope)),
        _ => false,
    })
}

fn names_outside(peers: &[bulkhead_intent::PeerAt]) -> bool {
    peers
        .iter()
        .any(|p| matches!(p.peer, Peer::Any | Peer::Cidr(_)))
}

/// Maps PCI-DSS v4.0 requirement 1 and GDPR data-segment isolation to the invariants.
pub(crate) fn compliance(intent: &Intent, results: &[InvariantResult]) -> Vec<Control> {
    type Rule = fn(&Intent, &bulkhead_intent::Invariant) -> Option<&'static str>;
    let scoped = |scope: &str| -> Vec<(String, String)> {
        intent
            .segments
            .iter()
            .filter(|s| s.compliance.iter().any(|c| c == scope))
            .map(|s| (s.name().to_string(), s.mode.to_string()))
            .collect()
    };
    let defs: Vec<(&str, &str, &str, &str, &str, Rule)> = vec![
        (
            "PCI-DSS v4.0",
            "1.2",
            "Network security controls (NSCs) are configured and maintained",
            "pci-dss",
            "The NSC configuration is this policy, reviewed in git, linted and verified; every invariant tagged with a PCI-DSS control is evidence.",
            |_, inv| {
                inv.controls
                    .iter()
                    .any(|c| c.to_ascii_lowercase().starts_with("pci-dss"))
                    .then_some("tagged with a PCI-DSS control")
            },
        ),
        (
            "PCI-DSS v4.0",
            "1.3.1",
            "Inbound traffic to the CDE is restricted to only that which is necessary; all other traffic is specifically denied",
            "pci-dss",
            "Mapped: invariants tagged 1.3.1, and `never`/`only` invariants whose destination is a `pci-dss` segment.",
            |intent, inv| {
                if inv
                    .controls
                    .iter()
                    .any(|c| c.to_ascii_lowercase().ends_with(":1.3.1"))
                {
                    Some("tagged 1.3.1")
                } else if matches!(inv.kind, InvariantKind::Never | InvariantKind::Only)
                    && names_scope(intent, &inv.to, "pci-dss")
                {
                    Some("restricts traffic into a pci-dss segment")
                } else {
                    None
                }
            },
        ),
        (
            "PCI-DSS v4.0",
            "1.3.2",
            "Outbound traffic from the CDE is restricted to only that which is necessary; all other traffic is specifically denied",
            "pci-dss",
            "Mapped: invariants tagged 1.3.2, and `never` invariants whose source is a `pci-dss` segment.",
            |intent, inv| {
                if inv
                    .controls
                    .iter()
                    .any(|c| c.to_ascii_lowercase().ends_with(":1.3.2"))
                {
                    Some("tagged 1.3.2")
                } else if inv.kind == InvariantKind::Never
                    && names_scope(intent, &inv.from, "pci-dss")
                {
                    Some("restricts traffic out of a pci-dss segment")
                } else {
                    None
                }
            },
        ),
        (
            "PCI-DSS v4.0",
            "1.4",
            "Network connections between trusted and untrusted networks are controlled",
            "pci-dss",
            "Mapped: invariants tagged 1.4.x, `only` invariants into a `pci-dss` segment (verification covers every external address range, so they bound what untrusted networks reach), and invariants naming addresses or `any`.",
            |intent, inv| {
                if inv
                    .controls
                    .iter()
                    .any(|c| c.to_ascii_lowercase().contains(":1.4"))
                {
                    Some("tagged 1.4")
                } else if inv.kind == InvariantKind::Only && names_scope(intent, &inv.to, "pci-dss")
                {
                    Some("bounds every source, external addresses included, into a pci-dss segment")
                } else if names_outside(&inv.from) || names_outside(&inv.to) {
                    Some("names external addresses or any")
                } else {
                    None
                }
            },
        ),
        (
            "GDPR",
            "Art. 25 / Art. 32",
            "Data protection by design; security of processing: personal-data segments isolated",
            "gdpr",
            "Mapped: invariants tagged gdpr, and `never`/`only` invariants whose destination is a `gdpr` segment.",
            |intent, inv| {
                if inv
                    .controls
                    .iter()
                    .any(|c| c.to_ascii_lowercase().starts_with("gdpr"))
                {
                    Some("tagged gdpr")
                } else if matches!(inv.kind, InvariantKind::Never | InvariantKind::Only)
                    && names_scope(intent, &inv.to, "gdpr")
                {
                    Some("restricts traffic into a gdpr segment")
                } else {
                    None
                }
            },
        ),
    ];
    defs.into_iter()
        .map(|(framework, id, title, scope, note, rule)| {
            let invariants: Vec<(String, &'static str)> = intent
                .invariants
                .iter()
                .filter_map(|inv| rule(intent, inv).map(|why| (inv.meta.name.clone(), why)))
                .collect();
            let of = |name: &str| results.iter().find(|r| r.name == name);
            let status = if invariants.is_empty() {
                "no evidence"
            } else if invariants
                .iter()
                .any(|(n, _)| of(n).is_some_and(|r| r.status == Status::Violated))
            {
                "violated"
            } else if invariants
                .iter()
                .any(|(n, _)| of(n).is_some_and(|r| !r.holds_today))
            {
                "holds when enforced"
            } else {
                "holds"
            };
            Control {
                framework,
                id,
                title,
                status,
                invariants,
                segments: scoped(scope),
                note,
            }
        })
        .collect()
}

fn markdown(
    intent: &Intent,
    summary: &serde_json::Value,
    results: &[InvariantResult],
    controls: &[Control],
) -> String {
    let mut s = String::from("# Compliance report: network segmentation\n\n");
    let _ = writeln!(
        s,
        "Policy `{}`: {} invariants verified exactly (every pair, every port of TCP, UDP and SCTP) over {} workloads and hosts and {} external address ranges, {} rules, every segment evaluated as enforced. **{} hold, {} violated.**",
        summary["policy"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        summary["invariants"],
        summary["identities"],
        summary["external_ranges"],
        summary["rules"],
        summary["holding"],
        summary["violated"],
    );
    s + &markdown_body(intent, results, controls, true)
}

/// The compliance report after its opening paragraph: the controls, the invariants and their
/// counterexamples. `observe_note`: name the pci-dss/gdpr segments still in observe mode.
pub(crate) fn markdown_body(
    intent: &Intent,
    results: &[InvariantResult],
    controls: &[Control],
    observe_note: bool,
) -> String {
    let mut s = String::from("\n");
    s.push_str("## Controls\n\n| Framework | Control | Status | Invariants | Segments in scope |\n|---|---|---|---|---|\n");
    for c in controls {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {} | {} |",
            c.framework,
            c.id,
            c.title,
            c.status,
            if c.invariants.is_empty() {
                "—".to_string()
            } else {
                c.invariants
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            c.segments
                .iter()
                .map(|(n, m)| format!("{n} ({m})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s.push('\n');
    for c in controls {
        let _ = writeln!(s, "- **{} {}**: {}", c.framework, c.id, c.note);
        for (n, why) in &c.invariants {
            let _ = writeln!(s, "  - `{n}`: {why}");
        }
    }
    let observed: Vec<&str> = intent
        .segments
        .iter()
        .filter(|x| {
            x.mode == bulkhead_intent::Mode::Observe
                && x.compliance.iter().any(|c| c == "pci-dss" || c == "gdpr")
        })
        .map(|x| x.name())
        .collect();
    if observe_note && !observed.is_empty() {
        let _ = writeln!(
            s,
            "\nSegments in a pci-dss or gdpr scope still in observe mode (not blocking today): {}.",
            observed.join(", ")
        );
    }
    s.push_str("\n## Invariants\n\n| Invariant | Kind | Status | Holds today | Pairs checked | Violating pairs | Controls |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.kind,
            match r.status {
                Status::Holds => "holds",
                Status::Violated => "**violated**",
            },
            if r.holds_today { "yes" } else { "no" },
            r.pairs_checked,
            r.violating_pairs,
            r.controls.join(", ")
        );
    }
    for r in results.iter().filter(|r| !r.examples.is_empty()) {
        let _ = writeln!(s, "\n### `{}` ({}, {})\n", r.name, r.kind, r.at);
        for e in &r.examples {
            let _ = writeln!(
                s,
                "- {} → {} {} {} ({}): {}",
                e.src, e.dst, e.protocol, e.port, e.conns, e.explanation
            );
            for c in &e.chain {
                let _ = writeln!(
                    s,
                    "  - {} policy `{}` {} ({}) at `{}`",
                    c.tier, c.policy, c.rule, c.action, c.at
                );
            }
        }
    }
    s
}

/// An identity by `namespace/name`, host name, unique workload name, or address (a host's, or
/// an external one appended to `ids`).
fn resolve(ids: &mut Vec<Identity>, s: &str) -> Result<usize> {
    if let Some(i) = ids.iter().position(|id| id.name == s) {
        return Ok(i);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        if let Some(i) = ids.iter().position(|id| id.addresses.contains(&ip)) {
            return Ok(i);
        }
        ids.push(Identity::external(ip));
        return Ok(ids.len() - 1);
    }
    let hits: Vec<usize> = (0..ids.len())
        .filter(|&i| ids[i].name.rsplit('/').next() == Some(s))
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => bail!("{s:?}: no such workload or host in the inventory (write namespace/name)"),
        many => bail!(
            "{s:?} is ambiguous: {}",
            many.iter()
                .map(|&i| ids[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn parse_port(s: &str) -> Result<(Protocol, u16)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "TCP"));
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .with_context(|| format!("--port {s}: not a port in 1-65535"))?;
    let proto: Protocol = proto.parse().with_context(|| format!("--port {s}"))?;
    Ok((proto, port))
}

fn run_can_reach(a: &CanReachArgs) -> Result<ExitCode> {
    let (intent, mut ids) = load(&a.sources)?;
    let one = a.port.as_deref().map(parse_port).transpose()?;
    let s = resolve(&mut ids, &a.src)?;
    let d = resolve(&mut ids, &a.dst)?;
    let ev = Evaluator::new(&intent).context("the policy")?;
    let u = Universe::new(&ev, ids);
    let (sn, dn) = (&u.identities[s].name, &u.identities[d].name);
    let reach = u.reach(s, d);
    let json_mode = matches!(a.format, crate::policy::LintFormat::Json);
    let mut out = String::new();
    if let Some((proto, port)) = one {
        let dec = u.decide_edge(s, d, proto, port);
        let chain: Vec<_> = u
            .trace(s, d, proto, port)
            .iter()
            .map(|r| chain_step(&intent, r))
            .collect();
        let enforced = reach.enforced.contains(proto, port);
        if json_mode {
            out = serde_json::to_string_pretty(&json!({
                "src": sn, "dst": dn, "protocol": proto, "port": port,
                "verdict": dec.verdict, "allowed_when_enforced": enforced,
                "explanation": ev.describe(&intent, &dec), "chain": chain,
            }))? + "\n";
        } else {
            let _ = writeln!(
                out,
                "{sn} -> {dn} {proto} {port}: {}",
                ev.describe(&intent, &dec)
            );
            for c in &chain {
                let _ = writeln!(
                    out,
                    "  chain: {} policy {} {} ({}) at {}",
                    c.tier, c.policy, c.rule, c.action, c.at
                );
            }
            if dec.verdict == Verdict::WouldBlock {
                let _ = writeln!(out, "  when enforced: deny");
            }
        }
    } else {
        let pieces: Vec<_> = reach
            .pieces
            .iter()
            .map(|p| {
                json!({
                    "conns": p.conns.to_string(),
                    "action": p.action.to_string().to_lowercase(),
                    "rule": chain_step(&intent, &ev.rule_ref(p.rule)),
                })
            })
            .collect();
        let show = |c: &ConnSet| {
            if c.is_empty() {
                "nothing".to_string()
            } else {
                c.to_string()
            }
        };
        if json_mode {
            out = serde_json::to_string_pretty(&json!({
                "src": sn, "dst": dn,
                "src_mode": reach.src_mode, "dst_mode": reach.dst_mode,
                "allowed_when_enforced": reach.enforced.to_string(),
                "passing_today": reach.today.to_string(),
                "decided_by": pieces,
            }))? + "\n";
        } else {
            let _ = writeln!(
                out,
                "{sn} -> {dn} (source {:?}, destination {:?})",
                reach.src_mode, reach.dst_mode
            );
            let _ = writeln!(out, "allowed when enforced: {}", show(&reach.enforced));
            let _ = writeln!(out, "passing today:         {}", show(&reach.today));
            for p in &reach.pieces {
                let c = chain_step(&intent, &ev.rule_ref(p.rule));
                let _ = writeln!(
                    out,
                    "  {}: {} policy {} {} ({}) at {}",
                    p.conns, c.tier, c.policy, c.rule, c.action, c.at
                );
            }
            let decided = reach
                .pieces
                .iter()
                .fold(ConnSet::none(), |acc, p| acc.union(&p.conns));
            let rest = ConnSet::all().subtract(&decided);
            if !rest.is_empty() {
                let _ = writeln!(out, "  {rest}: no rule decided");
            }
        }
    }
    crate::write_output(None, &out)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct BenchVerifyArgs {
    /// Policy directory (default: the worked bank example, with its invariants).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    /// Synthetic workloads and hosts (the shape of `bench intent`).
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    /// Synthetic application rules added to the policy.
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    /// Invariants in all: the policy's own, then synthetic `never`, `only` and `mustAllow`
    /// between the bank's segments.
    #[arg(long, default_value_t = 20)]
    invariants: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `bulkhead bench verify`: verifies synthetic invariants over the synthetic shape of `bench
/// intent`; prints JSON with CPU seconds.
pub fn run_bench(a: BenchVerifyArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let (mut intent, mut ids) = synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    intent.invariants.truncate(a.invariants);
    let mut yaml = String::new();
    for k in intent.invariants.len()..a.invariants {
        let seg = |rng: &mut SplitMix64| BENCH_SEGMENTS[rng.below(BENCH_SEGMENTS.len())];
        let (f, t) = (seg(&mut rng), seg(&mut rng));
        let body = match k % 3 {
            0 => format!("never:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n"),
            1 => format!("only:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n"),
            _ => format!(
                "mustAllow:\n    from: [{{segment: {f}}}]\n    to: [{{segment: {t}}}]\n    ports: [{{port: {}}}]\n",
                1000 + rng.below(9000)
            ),
        };
        let _ = write!(
            yaml,
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Invariant\nmetadata: {{name: synthetic-{k}}}\nspec:\n  {body}"
        );
    }
    let extra = bulkhead_intent::load_str("synthetic-invariants.yaml", &yaml);
    anyhow::ensure!(
        !extra.has_errors(),
        "synthetic invariants: {:?}",
        extra.diagnostics.first()
    );
    intent.invariants.extend(extra.intent.invariants);
    let (c0, t0) = (cpu_secs(), Instant::now());
    let ev = Evaluator::new(&intent).context("compile")?;
    let externals = external_representatives(&intent, &ids);
    let n_ext = externals.len();
    ids.extend(externals);
    let n = ids.len();
    let u = Universe::new(&ev, ids);
    let (c1, t1) = (cpu_secs(), Instant::now());
    let results = verify(&intent, &u, VerifyOptions::default());
    let (c2, t2) = (cpu_secs(), Instant::now());
    let cpu = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let v = json!({
        "identities": n,
        "external_ranges": n_ext,
        "rules": ev.rule_count(),
        "invariants": results.len(),
        "violated": results.iter().filter(|r| r.status == Status::Violated).count(),
        "pairs_checked": results.iter().map(|r| r.pairs_checked).sum::<u64>(),
        "class_pairs": results.iter().map(|r| r.class_pairs).sum::<u64>(),
        "compile_wall_s": (t1 - t0).as_secs_f64(),
        "compile_cpu_s": cpu(c0, c1),
        "verify_wall_s": (t2 - t1).as_secs_f64(),
        "verify_cpu_s": cpu(c1, c2),
        "total_cpu_s": cpu(c0, c2),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
