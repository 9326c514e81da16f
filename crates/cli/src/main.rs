//! `bulkhead`: the microsegmentation control plane's command line.
#![forbid(unsafe_code)]

mod agent;
mod audit;
mod bank;
mod bench;
mod compile;
mod demo;
mod istio_bench;
mod nft_bench;
mod plan;
mod policy;
mod quarantine;
mod recommend;
mod see;
mod see_bench;
mod simulate;
mod telemetry;
mod verify;
mod verify_k8s;

use anyhow::{Context, Result, bail};
use bulkhead_analysis::{Format, Options, connectivity, explain, render};
use bulkhead_core::{Endpoint, Engine, IpRange, Protocol};
use bulkhead_k8s::Loaded;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than the system allocator: the engine makes and drops many small bit sets
/// and connection sets, and glibc's malloc spent a third of an AdminNetworkPolicy update's
/// time on them (`bulkhead bench connectivity`). Built without transparent huge pages (the
/// `no_thp` feature): faulting in huge pages made single NetworkPolicy updates take 8–13 ms
/// instead of 2–3 ms now and then.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Microsegmentation control plane: see, propose, prove, enforce and account for network policy."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How Kubernetes manifests are read.
#[derive(clap::Args)]
struct Input {
    /// Manifest files or directories (read recursively for .yaml, .yml and .json).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Report malformed objects as warnings and go on with the rest, instead of failing.
    #[arg(long)]
    keep_going: bool,
    /// Do not print warnings (skipped files and kinds, unmodelled fields).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConnFormat {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
enum EvalFormat {
    Txt,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Subcommand)]
enum Command {
    /// Print the allowed connectivity between all workloads and external address ranges.
    Connectivity {
        #[command(flatten)]
        input: Input,
        /// Output format: txt (np-guard's), json, csv, md or dot.
        #[arg(long, short, value_enum, default_value = "txt")]
        format: ConnFormat,
        /// Only connections from or to this workload (`name`, `namespace/name` or `namespace/name[Kind]`).
        #[arg(long, value_name = "WORKLOAD")]
        focus: Option<String>,
        /// Only connections from or to workloads in this namespace.
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Also list IPv6 external ranges (txt in np-guard's spelling lists IPv4 only).
        #[arg(long)]
        ipv6: bool,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Decide one flow and name the policy and rule that decided each direction.
    Eval {
        #[command(flatten)]
        input: Input,
        /// Source: `namespace/name`, `namespace/name[Kind]`, or an IP address.
        #[arg(long, value_name = "PEER")]
        src: String,
        /// Destination: `namespace/name`, `namespace/name[Kind]`, or an IP address.
        #[arg(long, value_name = "PEER")]
        dst: String,
        /// Destination port.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        #[arg(long, value_enum, default_value = "tcp")]
        protocol: Proto,
        #[arg(long, short, value_enum, default_value = "txt")]
        format: EvalFormat,
    },
    /// The tamper-evident audit log: record, list, prove, export, verify.
    Audit(audit::AuditArgs),
    /// Flow telemetry: parse Hubble, VPC Flow Logs, Zeek and NetFlow/IPFIX files.
    Flows {
        #[command(subcommand)]
        command: telemetry::FlowsCommand,
    },
    /// Ingest flow files into the store: resolve addresses to workloads over time, aggregate
    /// into edges per time bucket.
    Ingest(see::IngestArgs),
    /// The dependency map from the store: workloads or label groups, edges with protocols,
    /// ports and volumes.
    Map(see::MapArgs),
    /// Receive NetFlow v5/v9/IPFIX over UDP and decode it per exporter.
    Collect(telemetry::CollectArgs),
    /// Simulate the reference bank: inventory, flows in four formats, labelled attacks.
    SimulateBank(bank::SimulateBankArgs),
    /// Policy as code: lint intent resources (Segment, Policy, Invariant).
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Check every Invariant exactly over an inventory (every pair, every port), with
    /// counterexamples and a compliance report. Exit 0 all hold, 1 violated, 3 input error.
    Verify(verify::VerifyArgs),
    /// Questions to the policy: what may reach what.
    Query {
        #[command(subcommand)]
        command: verify::QueryCommand,
    },
    /// The digital twin: recorded edges classified under a proposed policy (still allowed,
    /// newly blocked, newly allowed, would block, still blocked) with the deciding rules; or, with
    /// `--diff`, every workload pair and port whose verdict changes between two versions.
    Simulate(simulate::SimulateArgs),
    /// Least-privilege intent from observed traffic: segments per label group, allow rules with
    /// merged ports and their evidence, DNS always kept; a quality report against one rule per
    /// edge. `recommend accept DIR` records the reviewed proposal in the audit log.
    Recommend(recommend::RecommendArgs),
    /// Lint, verify and simulate a policy change in one CI command: exit 0 safe, 1 an invariant
    /// is violated, 2 more traffic newly blocked than --max-blocked, 3 input error (3 > 1 > 2);
    /// text, JSON, JUnit or SARIF.
    Plan(plan::PlanArgs),
    /// Isolate one workload or host now: an overlay in the guardrail tier of the policy (every
    /// target compiles it) keeping forensic and management access; `--list` shows them.
    Quarantine(quarantine::QuarantineArgs),
    /// Remove a quarantine.
    Release(quarantine::ReleaseArgs),
    /// Compile the intent to an enforcement target's manifests (k8s: NetworkPolicy with
    /// AdminNetworkPolicy or ClusterNetworkPolicy). Exit 0 compiled, 3 input error or an
    /// intent the target cannot express.
    Compile(compile::CompileArgs),
    /// Bulkhead's whole job on the reference bank from an empty store: simulate, ingest, map,
    /// recommend, verify, rehearse a risky change; a short report and where the files are.
    Demo(demo::DemoArgs),
    /// The host agent: keeps this host's nftables table (`inet bulkhead`) equal to the policy,
    /// atomically, verified, drift repaired, every change audited. Exit codes with --once: 0 in
    /// place, 1 apply failed (previous ruleset kept), 3 policy source unreadable or invalid.
    Agent(agent::AgentArgs),
    /// Synthetic clusters and engine measurements.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the input, prints warnings and errors; fails on errors unless `--keep-going`.
fn load(input: &Input) -> Result<Loaded> {
    for p in &input.paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let loaded = Loaded::from_paths(&input.paths);
    if !input.quiet {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
    }
    for e in &loaded.errors {
        eprintln!(
            "{}: {e}",
            if input.keep_going { "warning" } else { "error" }
        );
    }
    if !loaded.errors.is_empty() && !input.keep_going {
        bail!(
            "{} malformed object{} in the input (use --keep-going to analyse the rest)",
            loaded.errors.len(),
            if loaded.errors.len() == 1 { "" } else { "s" }
        );
    }
    Ok(loaded)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Connectivity {
            input,
            format,
            focus,
            namespace,
            ipv6,
            output,
        } => {
            let loaded = load(&input)?;
            let engine = Engine::new(&loaded.cluster);
            if let Some(f) = &focus {
                resolve_workload(&engine, f).with_context(|| format!("--focus {f}"))?;
            }
            if let Some(ns) = &namespace
                && !loaded.cluster.namespaces.contains_key(ns)
            {
                bail!("--namespace {ns}: no such namespace in the input");
            }
            let opts = Options {
                ipv6,
                focus,
                namespace,
            };
            let format = match format {
                ConnFormat::Txt => Format::Txt,
                ConnFormat::Json => Format::Json,
                ConnFormat::Csv => Format::Csv,
                ConnFormat::Md => Format::Md,
                ConnFormat::Dot => Format::Dot,
            };
            let text = render(&connectivity(&engine, &opts), format, &engine);
            write_output(output.as_ref(), &text)?;
        }
        Command::Eval {
            input,
            src,
            dst,
            port,
            protocol,
            format,
        } => {
            let loaded = load(&input)?;
            let engine = Engine::new(&loaded.cluster);
            let s = resolve_peer(&engine, &src).with_context(|| format!("--src {src}"))?;
            let d = resolve_peer(&engine, &dst).with_context(|| format!("--dst {dst}"))?;
            let proto = match protocol {
                Proto::Tcp => Protocol::Tcp,
                Proto::Udp => Protocol::Udp,
                Proto::Sctp => Protocol::Sctp,
            };
            let ex = explain(&engine, s, d, proto, port);
            let text = match format {
                EvalFormat::Txt => ex.to_text(),
                EvalFormat::Json => serde_json::to_string_pretty(&ex)? + "\n",
            };
            write_output(None, &text)?;
        }
        Command::Bench { command } => bench::run(command)?,
        // 0 in place, 1 apply failed, 3 policy source lost (with --once).
        Command::Agent(args) => return Ok(agent::run(args)),
        Command::Demo(args) => demo::run(args)?,
        Command::SimulateBank(args) => bank::run(args)?,
        // Chooses its own exit codes (1: verification failure, 2: usage or I/O).
        Command::Audit(args) => return Ok(audit::run(args)),
        // Chooses its own exit codes (1: the policy has errors, 3: other input errors).
        Command::Policy { command } => return Ok(policy::run(command)),
        // 0 hold, 1 an invariant is violated, 3 input error.
        Command::Verify(args) => return Ok(verify::run(args)),
        Command::Query { command } => return Ok(verify::run_query(command)),
        // Exit 3 on input errors (an invalid policy is never simulated).
        Command::Simulate(args) => return Ok(simulate::run(args)),
        // Exit 3 on input errors (a proposal that would not load and lint is never written).
        Command::Recommend(args) => return Ok(recommend::run(args)),
        // 0 safe, 1 invariant violated, 2 too much blocked, 3 input error.
        Command::Plan(args) => return Ok(plan::run(args)),
        // 0 done, 1 refused, 3 input error.
        Command::Quarantine(args) => return Ok(quarantine::run(args)),
        Command::Release(args) => return Ok(quarantine::run_release(args)),
        Command::Compile(args) => return Ok(compile::run(args)),
        Command::Flows { command } => {
            if !telemetry::run_flows(command)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Collect(args) => telemetry::run_collect(args)?,
        Command::Ingest(args) => {
            if !see::run_ingest(args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Map(args) => see::run_map(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_output(path: Option<&PathBuf>, text: &str) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                // A closed pipe (`| head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("cannot write to standard output"),
            }
        }
    }
}

/// A peer: a workload by `namespace/name`, `namespace/name[Kind]` or `name`, or an IP address
/// (a pod's address resolves to its workload; any other address is outside the cluster).
fn resolve_peer(engine: &Engine<'_>, s: &str) -> Result<Endpoint> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        let owner = engine
            .cluster()
            .workloads
            .iter()
            .position(|w| w.addresses.contains(&ip));
        return Ok(match owner {
            Some(i) => Endpoint::Workload(i),
            None => Endpoint::External(match ip {
                IpAddr::V4(a) => IpRange::V4(a.into(), a.into()),
                IpAddr::V6(a) => IpRange::V6(a.into(), a.into()),
            }),
        });
    }
    resolve_workload(engine, s).map(Endpoint::Workload)
}

fn resolve_workload(engine: &Engine<'_>, s: &str) -> Result<usize> {
    let (path, kind) = match s.strip_suffix(']').and_then(|x| x.split_once('[')) {
        Some((p, k)) => (p, Some(k)),
        None => (s, None),
    };
    let (ns, name) = match path.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, path),
    };
    let ws = &engine.cluster().workloads;
    let hits: Vec<usize> = (0..ws.len())
        .filter(|&i| {
            let w = &ws[i];
            w.name == name
                && ns.is_none_or(|n| n == w.namespace)
                && kind.is_none_or(|k| k == w.kind)
        })
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => {
            let mut near: Vec<String> = ws
                .iter()
                .filter(|w| w.name.contains(name))
                .map(|w| w.display_name())
                .collect();
            near.truncate(5);
            if near.is_empty() {
                bail!(
                    "no workload {s:?} in the input (write namespace/name, as connectivity prints it)"
                )
            }
            bail!(
                "no workload {s:?} in the input; did you mean {}?",
                near.join(", ")
            )
        }
        many => bail!(
            "{s:?} is ambiguous: {} (add the namespace or [Kind])",
            many.iter()
                .map(|&i| ws[i].display_name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
