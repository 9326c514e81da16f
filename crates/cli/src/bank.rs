//! `bulkhead simulate-bank`: the reference bank's inventory and flow telemetry.

use anyhow::{Context, Result, bail};
use bulkhead_bank::{Config, DEFAULT_START, Fmt, simulate};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SimulateBankArgs {
    /// Output directory (inventory, hosts, flows, ground truth). Optional with `--stream`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Workload instances (pods at any time plus VMs); 300 by default, up to 50,000.
    #[arg(long, default_value_t = 300)]
    workloads: usize,
    /// Simulated days from 2026-10-30 (the default two end on a month end).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: u32,
    /// Inject the four labelled attack scenarios and write ground-truth.json.
    #[arg(long)]
    attacks: bool,
    /// Traffic multiplier (1.0: about 1,300 flows per workload instance per day).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// First simulated day (UTC midnight, seconds since the epoch).
    #[arg(long, default_value_t = DEFAULT_START)]
    start: i64,
    /// Write only the inventory (inventory/, hosts.csv, hosts.yaml) to --out, no flows: for
    /// an ingest of a stream, which reads the inventory before the stream starts.
    #[arg(long, requires = "out", conflicts_with_all = ["stream", "attacks"])]
    inventory_only: bool,
    /// Write only this format's flows, to standard output: hubble, vpc or zeek lines, or netflow
    /// (IPFIX messages back to back, as `bulkhead ingest - --format netflow` reads them).
    #[arg(long, value_name = "FORMAT")]
    stream: Option<Fmt>,
}

pub fn run(a: SimulateBankArgs) -> Result<()> {
    if a.out.is_none() && a.stream.is_none() {
        bail!("give --out DIR, or --stream FORMAT");
    }
    if a.workloads == 0 || a.workloads > 60_000 {
        bail!("--workloads must be 1..=60000");
    }
    if !(a.rate > 0.0 && a.rate <= 1_000.0) {
        bail!("--rate must be in (0, 1000]");
    }
    let cfg = Config {
        seed: a.seed,
        workloads: a.workloads,
        days: a.days,
        attacks: a.attacks,
        start: a.start - a.start.rem_euclid(86_400),
        rate: a.rate,
    };
    if a.inventory_only {
        let dir = a.out.as_deref().expect("clap requires --out");
        let s = bulkhead_bank::write_inventory(&cfg, dir)
            .with_context(|| format!("writing the inventory into {}", dir.display()))?;
        eprintln!(
            "{{\"workloads\":{},\"instances\":{},\"pods\":{}}}",
            s.workloads, s.instances, s.pods
        );
        return Ok(());
    }
    let t = Instant::now();
    let s = simulate(&cfg, a.out.as_deref(), a.stream)
        .with_context(|| format!("simulating into {:?}", a.out))?;
    let secs = t.elapsed().as_secs_f64();
    let total = s.total();
    eprintln!(
        "{{\"workloads\":{},\"instances\":{},\"pods\":{},\"flows\":{total},\"hubble\":{},\"hubble_events\":{},\"vpc\":{},\"zeek\":{},\"netflow\":{},\"attack_flows\":{},\"secs\":{secs:.2},\"flows_per_s\":{:.0}}}",
        s.workloads,
        s.instances,
        s.pods,
        s.flows[0],
        s.hubble_events,
        s.flows[1],
        s.flows[2],
        s.flows[3],
        s.attack_flows,
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}
