//! Benchmarks of host enforcement: `bench nft-apply` (an atomic apply of a large set),
//! `bench agent` (the agent's reaction to a policy change) and `bench nft-compile` (compiling
//! one host of a large intent). Each prints JSON with wall and CPU seconds and the load average.

use crate::agent::{Agent, AgentArgs, AgentMode, OnLoss, compile_or_bail};
use anyhow::{Context, Result, bail};
use bulkhead_compile::Options;
use bulkhead_core::{IpRange, Protocol};
use bulkhead_intent::IdentityKind;
use bulkhead_nft::ruleset::{End, Family, Hook, Match, NChain, NRule, NSet, NVerdict, Ruleset};
use bulkhead_nft::{HostMode, ModeOverride, Nft, NormalForm, compile_host, to_json, to_text};
use bulkhead_synth::SplitMix64;
use clap::Args;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// (own CPU, waited-for children's CPU) in seconds, from /proc/self/stat.
fn cpu() -> (f64, f64) {
    let read = || -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // Counted from the state letter: utime 11, stime 12, cutime 13, cstime 14 (proc(5)).
        let n = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
        Some(((n(11)? + n(12)?) / 100.0, (n(13)? + n(14)?) / 100.0))
    };
    read().unwrap_or((0.0, 0.0))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A scratch network namespace, deleted on drop.
struct ScratchNs(String);

impl ScratchNs {
    fn new(tag: &str) -> Result<ScratchNs> {
        let name = format!("bhbench-{tag}-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .context("cannot run ip (iproute2)")?;
        if !st.success() {
            bail!("ip netns add {name} failed (root is needed)");
        }
        Ok(ScratchNs(name))
    }
}

impl Drop for ScratchNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[derive(Args)]
pub struct NftApplyArgs {
    /// Set elements (distinct IPv4 addresses, none adjacent).
    #[arg(long, default_value_t = 50_000)]
    elements: usize,
    /// Applies per input format (the first creates the table, the others replace it).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn big_ruleset(elements: usize) -> Ruleset {
    let elems: Vec<IpRange> = (0..elements as u32)
        .map(|i| {
            let a = 0x0a00_0000u32.wrapping_add(i * 2);
            IpRange::V4(a, a)
        })
        .collect();
    Ruleset {
        host: "bench".into(),
        mode: HostMode::Enforce,
        sets: vec![NSet {
            name: "a0_v4".into(),
            family: Family::V4,
            elems,
        }],
        chains: vec![NChain {
            name: "input".into(),
            hook: Some(Hook::Input),
            rules: vec![NRule {
                matches: vec![
                    Match::Set(End::Src, Family::V4, "a0_v4".into()),
                    Match::Ports(Protocol::Tcp, vec![(443, 443)]),
                ],
                counter: None,
                verdict: NVerdict::Accept,
                comment: Some("bench".into()),
            }],
        }],
        counters: vec![],
        notes: vec![],
    }
}

pub fn run_nft_apply(a: NftApplyArgs) -> Result<()> {
    let ns = ScratchNs::new("apply")?;
    let nft = Nft::in_netns(&ns.0);
    let rs = big_ruleset(a.elements);
    let (c0, _) = cpu();
    let t = Instant::now();
    let json = to_json(&rs);
    let text = to_text(&rs);
    let render_wall = t.elapsed().as_secs_f64();
    let render_cpu = cpu().0 - c0;
    let mut results = Vec::new();
    for (format, body) in [("json", &json), ("text", &text)] {
        let mut runs = Vec::new();
        for i in 0..a.runs {
            let (_, k0) = cpu();
            let t = Instant::now();
            if format == "json" {
                nft.apply_json(body)?;
            } else {
                nft.apply_text(body)?;
            }
            let wall = t.elapsed().as_secs_f64();
            let nft_cpu = cpu().1 - k0;
            runs.push(serde_json::json!({"run": i, "wall_s": wall, "nft_cpu_s": nft_cpu}));
        }
        let back = nft
            .read_back()?
            .context("the table is missing after apply")?;
        let verified = back == NormalForm::of(&rs);
        results.push(serde_json::json!({"format": format, "bytes": body.len(), "runs": runs, "verified": verified}));
        nft.delete_table()?;
    }
    let v = serde_json::json!({
        "elements": a.elements,
        "render_wall_s": render_wall,
        "render_cpu_s": render_cpu,
        "applies": results,
        "target_s": 1.0,
        "loadavg": loadavg(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// A scratch directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Args)]
pub struct AgentBenchArgs {
    /// Policy changes to time.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The agent's `--interval` in milliseconds.
    #[arg(long, default_value_t = 250)]
    interval: u64,
}

const BENCH_POLICY: &str = "apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  hostSelector: {matchLabels: {segment: web}}
  mode: enforce
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: web}
spec:
  tier: application
  rules:
    - name: clients
      action: allow
      from: [{cidr: 10.0.0.0/8}]
      to: [{segment: web}]
      ports: [{protocol: TCP, port: PORT}]
";

pub fn run_agent_bench(a: AgentBenchArgs) -> Result<()> {
    let ns = ScratchNs::new("agent")?;
    let dir =
        ScratchDir(std::env::temp_dir().join(format!("bhbench-agent-{}", std::process::id())));
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy)?;
    let hosts = dir.path().join("hosts.yaml");
    std::fs::write(
        &hosts,
        "hosts:\n  - name: web-1\n    addresses: [10.1.0.1]\n    labels: {segment: web}\n",
    )?;
    let write = |port: u32| {
        std::fs::write(
            policy.join("policy.yaml"),
            BENCH_POLICY.replace("PORT", &port.to_string()),
        )
    };
    write(1000)?;
    let args = AgentArgs {
        host: "web-1".into(),
        policy: policy.clone(),
        hosts: vec![hosts.clone()],
        netns: Some(ns.0.clone()),
        mode: AgentMode::Enforce,
        on_loss: OnLoss::Keep,
        management_port: vec![22],
        data_dir: dir.path().join("data"),
        once: false,
        interval: a.interval,
        drift_interval: 2000,
        iterations: None,
        dry_run: false,
        json: false,
    };
    std::fs::create_dir_all(&args.data_dir)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let interval = Duration::from_millis(a.interval);
    let agent = std::thread::spawn(move || {
        let mut agent = Agent::new(args);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            agent.step_with(false);
            std::thread::sleep(interval.saturating_sub(t.elapsed()));
        }
    });
    let nft = Nft::in_netns(&ns.0);
    let wait_for = |want: &NormalForm| -> Result<f64> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if nft.read_back()?.as_ref() == Some(want) {
                return Ok(t.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the agent did not apply the change within 10 s")
    };
    let first = NormalForm::of(&compile_or_bail(
        &policy,
        std::slice::from_ref(&hosts),
        "web-1",
    )?);
    let result = (|| -> Result<Vec<f64>> {
        wait_for(&first)?;
        let mut times = Vec::new();
        for i in 0..a.runs {
            // Do not start right after a check: a change lands anywhere in the interval.
            std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7)));
            write(2000 + i as u32)?;
            let want = NormalForm::of(&compile_or_bail(
                &policy,
                std::slice::from_ref(&hosts),
                "web-1",
            )?);
            times.push(wait_for(&want)?);
        }
        Ok(times)
    })();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = agent.join();
    let times = result?;
    let max = times.iter().cloned().fold(0.0, f64::max);
    let v = serde_json::json!({
        "interval_ms": a.interval,
        "reaction_s": times,
        "reaction_max_s": max,
        "target_s": 1.0,
        "loadavg": loadavg(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

#[derive(Args)]
pub struct NftCompileArgs {
    /// Policy directory (default: the worked bank example).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    /// Hosts to compile (the first N hosts of the synthetic inventory).
    #[arg(long, default_value_t = 5)]
    hosts: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run_nft_compile(a: NftCompileArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let (intent, ids) = crate::policy::synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    let hosts: Vec<String> = ids
        .iter()
        .filter(|i| i.kind == IdentityKind::Host)
        .take(a.hosts)
        .map(|i| i.name.clone())
        .collect();
    let n_ids = ids.len();
    let opts = Options {
        inventory: ids,
        ..Options::default()
    };
    let mut per_host = Vec::new();
    for h in &hosts {
        let (c0, _) = cpu();
        let t = Instant::now();
        let rs = compile_host(&intent, &opts, h, ModeOverride::Segments)?;
        let json = to_json(&rs);
        let wall = t.elapsed().as_secs_f64();
        per_host.push(serde_json::json!({
            "host": h,
            "mode": rs.mode.as_str(),
            "nft_rules": rs.chains.iter().map(|c| c.rules.len()).sum::<usize>(),
            "sets": rs.sets.len(),
            "elements": rs.element_count(),
            "json_bytes": json.len(),
            "wall_s": wall,
            "cpu_s": cpu().0 - c0,
        }));
    }
    let v = serde_json::json!({
        "identities": n_ids,
        "intent_rules": intent.policies.iter().map(|p| p.rules.len()).sum::<usize>(),
        "hosts": per_host,
        "target_s": 2.0,
        "loadavg": loadavg(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
