//! `bulkhead agent`: the host agent. Keeps this host's nftables table (`inet bulkhead`) equal
//! to what the policy compiles to for it: applies atomically, reads back and verifies, repairs
//! drift, keeps the last verified ruleset when an apply fails, handles a lost policy source
//! (`--on-loss keep|fail-closed`), reports observe-mode counters as "would block", and records
//! every apply, drift repair and failure in the audit log. See `docs/agent.md`.

use crate::audit::{record_change, tree_digest};
use anyhow::{Context, Result, anyhow};
use bulkhead_audit::Digest;
use bulkhead_compile::Options;
use bulkhead_intent::{Evaluator, Identity, load_paths};
use bulkhead_nft::{
    CounterKind, ModeOverride, Nft, NormalForm, Ruleset, compile_host, fail_closed, to_json,
};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulkhead_audit::actions::{AGENT_APPLY, AGENT_DRIFT, AGENT_FAILURE};

/// Environment variable for fault injection in tests: `commit` makes every apply carry a rule
/// the kernel rejects at commit (a chain jumping to itself).
pub const FAULT_ENV: &str = "BULKHEAD_AGENT_FAULT";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AgentMode {
    /// The segments decide (enforce where the host is in an enforced segment).
    Enforce,
    /// Count what would be dropped, drop nothing.
    Observe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnLoss {
    /// Keep the last verified ruleset.
    Keep,
    /// Replace it with the fail-closed ruleset (replies, loopback, management access only).
    FailClosed,
}

#[derive(Args, Clone)]
pub struct AgentArgs {
    /// This host's name in the host inventory.
    #[arg(long, value_name = "NAME")]
    pub host: String,
    /// The policy directory (Segment, Policy resources), re-read when it changes.
    #[arg(long, value_name = "DIR")]
    pub policy: PathBuf,
    /// Host inventory files (YAML or CSV): this host's labels and addresses, and its peers'.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub hosts: Vec<PathBuf>,
    /// Apply inside this network namespace (`ip netns exec NS nft …`).
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    #[arg(long, value_enum, default_value = "enforce")]
    pub mode: AgentMode,
    /// When the policy source cannot be read or compiled.
    #[arg(long, value_enum, default_value = "keep")]
    pub on_loss: OnLoss,
    /// TCP ports the fail-closed ruleset still accepts inbound.
    #[arg(long, value_name = "PORT", default_values_t = [22u16], num_args = 1..)]
    pub management_port: Vec<u16>,
    /// Where the audit log is.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    pub data_dir: PathBuf,
    /// Apply (or confirm) once and exit: 0 in place and verified, 1 apply or verification
    /// failed (the previous ruleset stays), 3 the policy source could not be read or compiled.
    #[arg(long)]
    pub once: bool,
    /// Milliseconds between checks of the policy source (and of the counters).
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub interval: u64,
    /// Milliseconds between read-backs of the table to detect drift.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub drift_interval: u64,
    /// Print the ruleset this host would get (nft text, or JSON with `--json`) and exit without
    /// touching nftables: 0, or 3 when the policy source cannot be read or compiled.
    #[arg(long)]
    pub dry_run: bool,
    /// With `--dry-run`: print the nft JSON transaction instead of nft text.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Stop after this many iterations (tests and benchmarks).
    #[arg(long, value_name = "N", hide = true)]
    pub iterations: Option<u64>,
}

/// What one iteration ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The compiled ruleset is in place and verified (applied now or already).
    InPlace,
    /// Applying or verifying failed; the previous ruleset stays.
    ApplyFailed,
    /// The policy source could not be read or compiled.
    SourceLost,
}

struct Applied {
    rs: Ruleset,
    nf: NormalForm,
    digest: Digest,
    /// `None`: the fail-closed ruleset.
    source: Option<Digest>,
}

pub struct Agent {
    args: AgentArgs,
    nft: Nft,
    applied: Option<Applied>,
    /// The source digest last compiled (successfully or not), its result, and when the
    /// earliest quarantine in it expires (the result is stale from then on).
    seen: Option<(Digest, Result<Ruleset, String>, Option<i64>)>,
    /// The last failure recorded, so a repeating one is recorded once.
    last_failure: Option<String>,
    counters: BTreeMap<String, u64>,
}

fn ruleset_digest(nf: &NormalForm) -> Digest {
    Digest::of(nf.canonical().as_bytes())
}

fn short(d: &Digest) -> String {
    d.to_string().chars().take(19).collect()
}

/// The digest of the policy source: the policy tree and the host inventory files.
fn source_digest(policy: &Path, hosts: &[PathBuf]) -> Result<Digest> {
    let mut all = tree_digest(policy)?.to_string();
    for h in hosts {
        all.push_str(&tree_digest(h)?.to_string());
    }
    Ok(Digest::of(all.as_bytes()))
}

/// Loads and compiles the policy for `host`; every problem as one message.
pub fn compile_source(
    policy: &Path,
    hosts: &[PathBuf],
    host: &str,
    force: ModeOverride,
) -> Result<Ruleset, String> {
    compile_source_until(policy, hosts, host, force).map(|(rs, _)| rs)
}

/// [`compile_source`], with the time (seconds since the epoch) the earliest active quarantine
/// of the policy expires: the ruleset is only valid until then, though no file changes.
fn compile_source_until(
    policy: &Path,
    hosts: &[PathBuf],
    host: &str,
    force: ModeOverride,
) -> Result<(Ruleset, Option<i64>), String> {
    if !policy.is_dir() {
        return Err(format!("{}: no such directory", policy.display()));
    }
    let loaded = load_paths(&[policy]);
    if loaded.has_errors() {
        let errs: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .take(3)
            .map(|d| d.to_string())
            .collect();
        return Err(format!("the policy has errors: {}", errs.join("; ")));
    }
    Evaluator::new(&loaded.intent).map_err(|e| format!("the policy has errors: {e}"))?;
    let inventory: Vec<Identity> =
        crate::policy::inventory_identities(&[], hosts).map_err(|e| format!("{e:#}"))?;
    let opts = Options {
        inventory,
        ..Options::default()
    };
    let until = bulkhead_intent::quarantine::list(&loaded.intent)
        .iter()
        .filter_map(|q| q.expires_at)
        .min();
    compile_host(&loaded.intent, &opts, host, force)
        .map(|rs| (rs, until))
        .map_err(|e| e.to_string())
}

impl Agent {
    pub fn new(args: AgentArgs) -> Agent {
        let nft = match &args.netns {
            Some(ns) => Nft::in_netns(ns),
            None => Nft::host(),
        };
        Agent {
            args,
            nft,
            applied: None,
            seen: None,
            last_failure: None,
            counters: BTreeMap::new(),
        }
    }

    fn object(&self) -> String {
        match &self.args.netns {
            Some(ns) => format!("host:{} (netns {ns})", self.args.host),
            None => format!("host:{}", self.args.host),
        }
    }

    fn audit(&self, action: &str, reason: &str, before: Option<Digest>, after: Option<Digest>) {
        if let Err(e) = record_change(
            &self.args.data_dir,
            action,
            &self.object(),
            reason,
            before,
            after,
        ) {
            eprintln!("error: cannot record {action} in the audit log: {e:#}");
        }
    }

    fn failure(&mut self, msg: String, after: Option<Digest>) {
        eprintln!("agent: failure: {msg}");
        if self.last_failure.as_deref() != Some(msg.as_str()) {
            let before = self.applied.as_ref().map(|a| a.digest);
            self.audit(AGENT_FAILURE, &msg, before, after);
            self.last_failure = Some(msg);
        }
    }

    /// Applies `rs` atomically, reads it back and verifies it. On success it becomes the
    /// applied ruleset; on failure the previous one stays (nft transactions are atomic).
    fn apply(&mut self, rs: Ruleset, source: Option<Digest>, why: &str) -> bool {
        let nf = NormalForm::of(&rs);
        let digest = ruleset_digest(&nf);
        let mut json = to_json(&rs);
        if std::env::var(FAULT_ENV).is_ok_and(|v| v == "commit") {
            json = inject_commit_fault(&json);
        }
        if let Err(e) = self.nft.apply_json(&json) {
            self.failure(
                format!(
                    "apply of {} rejected, previous ruleset kept: {e}",
                    short(&digest)
                ),
                Some(digest),
            );
            return false;
        }
        match self.nft.read_back() {
            Ok(Some(back)) if back == nf => {}
            Ok(Some(back)) => {
                self.failure(
                    format!(
                        "verification failed after apply: {}",
                        nf.diff(&back).join(", ")
                    ),
                    Some(digest),
                );
                return false;
            }
            Ok(None) => {
                self.failure(
                    "verification failed: the table is missing after apply".into(),
                    Some(digest),
                );
                return false;
            }
            Err(e) => {
                self.failure(format!("cannot read the table back: {e}"), Some(digest));
                return false;
            }
        }
        let before = self.applied.as_ref().map(|a| a.digest);
        let reason = format!(
            "{why}; mode {}, {} rules, {} sets, {} elements, verified",
            rs.mode.as_str(),
            rs.chains.iter().map(|c| c.rules.len()).sum::<usize>(),
            rs.sets.len(),
            rs.element_count()
        );
        println!("agent: applied {} ({reason})", short(&digest));
        self.audit(AGENT_APPLY, &reason, before, Some(digest));
        self.last_failure = None;
        self.counters.clear();
        self.applied = Some(Applied {
            rs,
            nf,
            digest,
            source,
        });
        true
    }

    /// When the table already holds exactly `rs` (an agent restarted, `--once` run again),
    /// takes it as applied without replacing it: nothing changes, so nothing is recorded, and
    /// the counters keep their values.
    fn adopt(&mut self, rs: &Ruleset, source: Digest) -> bool {
        let nf = NormalForm::of(rs);
        if !matches!(self.nft.read_back(), Ok(Some(back)) if back == nf) {
            return false;
        }
        let digest = ruleset_digest(&nf);
        println!(
            "agent: in place {} (policy {}, verified)",
            short(&digest),
            short(&source)
        );
        self.applied = Some(Applied {
            rs: rs.clone(),
            nf,
            digest,
            source: Some(source),
        });
        true
    }

    /// One iteration: read the source, apply what changed, repair drift, report counters.
    pub fn step(&mut self) -> Outcome {
        self.step_with(true)
    }

    /// One iteration; the table is read back for drift only when `check_drift` (reading a
    /// large table back costs more than reading the policy source).
    pub fn step_with(&mut self, check_drift: bool) -> Outcome {
        let force = match self.args.mode {
            AgentMode::Enforce => ModeOverride::Segments,
            AgentMode::Observe => ModeOverride::Observe,
        };
        let source = source_digest(&self.args.policy, &self.args.hosts);
        let compiled = match source {
            Err(e) => Err((None, format!("cannot read the policy source: {e:#}"))),
            Ok(d) => {
                let now = bulkhead_intent::load::now_secs();
                let expired = matches!(&self.seen, Some((s, _, Some(t))) if *s == d && *t <= now);
                let fresh = !matches!(&self.seen, Some((s, _, _)) if *s == d) || expired;
                if fresh {
                    let (r, until) = match compile_source_until(
                        &self.args.policy,
                        &self.args.hosts,
                        &self.args.host,
                        force,
                    ) {
                        Ok((rs, until)) => (Ok(rs), until),
                        Err(e) => (Err(e), None),
                    };
                    self.seen = Some((d, r, until));
                    if expired {
                        println!("agent: a quarantine expired; recompiled without it");
                        // The applied ruleset was compiled with the quarantine: mark it as
                        // from no current source, so the new one is applied.
                        if let Some(a) = &mut self.applied
                            && a.source.is_some()
                        {
                            a.source = Some(Digest::of(b"a quarantine in it expired"));
                        }
                    }
                }
                match &self.seen {
                    Some((_, Ok(rs), _)) => Ok((d, rs.clone())),
                    Some((_, Err(e), _)) => Err((Some(d), e.clone())),
                    None => Err((Some(d), "not compiled".into())),
                }
            }
        };
        match compiled {
            Ok((d, rs)) => {
                let current = self.applied.as_ref().is_some_and(|a| a.source == Some(d));
                if !current && self.adopt(&rs, d) {
                    Outcome::InPlace
                } else if !current {
                    let ok = self.apply(rs, Some(d), &format!("policy {}", short(&d)));
                    if ok {
                        Outcome::InPlace
                    } else {
                        Outcome::ApplyFailed
                    }
                } else if check_drift {
                    self.repair_drift()
                } else {
                    Outcome::InPlace
                }
            }
            Err((d, msg)) => {
                self.source_lost(d, msg, check_drift);
                Outcome::SourceLost
            }
        }
    }

    fn source_lost(&mut self, d: Option<Digest>, msg: String, check_drift: bool) {
        match self.args.on_loss {
            OnLoss::Keep => {
                let what = match &self.applied {
                    Some(a) => format!("keeping the last verified ruleset {}", short(&a.digest)),
                    None => "nothing applied yet, the table is left as it is".into(),
                };
                self.failure(format!("policy source lost ({msg}); {what}"), d);
                if self.applied.is_some() && check_drift {
                    self.repair_drift();
                }
            }
            OnLoss::FailClosed => {
                let closed = self.applied.as_ref().is_some_and(|a| a.source.is_none());
                if closed {
                    if check_drift {
                        self.repair_drift();
                    }
                } else {
                    self.failure(
                        format!("policy source lost ({msg}); applying the fail-closed ruleset"),
                        d,
                    );
                    let rs = fail_closed(&self.args.host, &self.args.management_port);
                    self.apply(rs, None, "fail-closed: the policy source is lost");
                }
            }
        }
    }

    /// Reads the table back; when it differs from the applied ruleset, records the drift and
    /// re-applies.
    fn repair_drift(&mut self) -> Outcome {
        let Some(a) = &self.applied else {
            return Outcome::ApplyFailed;
        };
        let back = match self.nft.read_back() {
            Ok(b) => b,
            Err(e) => {
                self.failure(format!("cannot read the table back: {e}"), None);
                return Outcome::ApplyFailed;
            }
        };
        if back.as_ref() == Some(&a.nf) {
            return Outcome::InPlace;
        }
        let what = match &back {
            None => "the table is missing".to_string(),
            Some(b) => a.nf.diff(b).join(", "),
        };
        let found = back.as_ref().map(ruleset_digest);
        eprintln!("agent: drift: {what}; re-applying");
        self.audit(
            AGENT_DRIFT,
            &format!("drift: {what}; re-applying"),
            found,
            Some(a.digest),
        );
        let (rs, source) = (a.rs.clone(), a.source);
        if self.apply(rs, source, "drift repair") {
            Outcome::InPlace
        } else {
            Outcome::ApplyFailed
        }
    }

    /// Prints counters that moved (all non-zero ones with `all`): "would block" in observe
    /// mode, "blocked" in enforce mode.
    pub fn report_counters(&mut self, all: bool) {
        let Some(a) = &self.applied else { return };
        let Ok(values) = self.nft.counters() else {
            return;
        };
        for v in values {
            let Some(info) = a.rs.counters.iter().find(|c| c.name == v.name) else {
                continue;
            };
            let prev = self.counters.insert(v.name.clone(), v.packets).unwrap_or(0);
            if v.packets > prev || (all && v.packets > 0) {
                let verdict = match info.kind {
                    CounterKind::WouldBlock => "would block",
                    CounterKind::Blocked => "blocked",
                };
                let at = if info.at.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", info.at)
                };
                println!(
                    "{verdict}: {} {}{at}: {} packets ({} bytes), +{} since the last report",
                    info.direction,
                    info.rule,
                    v.packets,
                    v.bytes,
                    v.packets - prev.min(v.packets)
                );
            }
        }
    }
}

/// Appends a rule that makes a chain jump to itself: nft accepts it, the kernel rejects the
/// whole transaction at commit.
fn inject_commit_fault(json: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_string();
    };
    if let Some(a) = v["nftables"].as_array_mut() {
        a.push(
            serde_json::json!({"add": {"rule": {"family": "inet", "table": "bulkhead",
            "chain": "input", "expr": [{"jump": {"target": "input"}}]}}}),
        );
    }
    v.to_string()
}

pub fn run(args: AgentArgs) -> ExitCode {
    match run_inner(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run_inner(args: AgentArgs) -> Result<ExitCode> {
    if args.dry_run {
        let force = match args.mode {
            AgentMode::Enforce => ModeOverride::Segments,
            AgentMode::Observe => ModeOverride::Observe,
        };
        return Ok(
            match compile_source(&args.policy, &args.hosts, &args.host, force) {
                Ok(rs) => {
                    let out = if args.json {
                        to_json(&rs)
                    } else {
                        bulkhead_nft::to_text(&rs)
                    };
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(3)
                }
            },
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let once = args.once;
    let interval = Duration::from_millis(args.interval.max(10));
    let iterations = args.iterations;
    let args_drift = args.drift_interval;
    let mut agent = Agent::new(args);
    if once {
        let o = agent.step();
        agent.report_counters(true);
        return Ok(match o {
            Outcome::InPlace => ExitCode::SUCCESS,
            Outcome::ApplyFailed => ExitCode::from(1),
            Outcome::SourceLost => ExitCode::from(3),
        });
    }
    let drift_every = Duration::from_millis(args_drift);
    let mut last_drift: Option<Instant> = None;
    let mut n = 0u64;
    loop {
        let t = Instant::now();
        let check = last_drift.is_none_or(|l| l.elapsed() >= drift_every);
        if check {
            last_drift = Some(t);
        }
        agent.step_with(check);
        agent.report_counters(false);
        n += 1;
        if iterations.is_some_and(|max| n >= max) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(interval.saturating_sub(t.elapsed()));
    }
}

/// Used by `bench agent`: the error of a source as anyhow.
pub fn compile_or_bail(policy: &Path, hosts: &[PathBuf], host: &str) -> Result<Ruleset> {
    compile_source(policy, hosts, host, ModeOverride::Segments).map_err(|e| anyhow!(e))
}
