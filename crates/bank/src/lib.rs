//! The bank simulator: a digital bank as `/work/shared/BANK.md` describes it — its Kubernetes
//! and host inventory, and flow telemetry in Hubble, VPC Flow Logs, Zeek and IPFIX, with daily
//! cycles, night batch windows, month-end runs, pod churn with address reuse, and (optionally)
//! four labelled attack scenarios with a ground-truth file.
//!
//! Deterministic: the same [`Config`] gives byte-identical output.
#![forbid(unsafe_code)]

mod attacks;
mod inventory;
mod model;
mod time;
mod traffic;
mod write;

pub use attacks::{EXFIL_ADDR, Scenario};
pub use model::{Bank, Kind, PARTNERS, Pod, SEGMENTS, Workload, compliance};
pub use time::{rfc3339, rfc3339_ms};
pub use traffic::{
    End, Outcome, SimFlow, diurnal, is_bank_holiday, is_closed_day, is_month_end, weekday,
};
pub use write::{Fmt, Position};

use serde_json::json;
use std::io;
use std::path::Path;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Workload instances (pods at any time plus VMs).
    pub workloads: usize,
    pub days: u32,
    pub attacks: bool,
    /// First simulated second (UTC, a midnight).
    pub start: i64,
    /// Traffic multiplier (1.0: the default volume, about 1,300 flows per workload per day).
    pub rate: f64,
}

/// 2026-10-30T00:00:00Z: the default two days end on a month end.
pub const DEFAULT_START: i64 = 1_793_318_400;

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            workloads: 300,
            days: 2,
            attacks: false,
            start: DEFAULT_START,
            rate: 1.0,
        }
    }
}

/// What a run wrote.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Connections written per format (hubble, vpc, zeek, netflow): one record each, except
    /// Hubble, where a connection is several events.
    pub flows: [u64; 4],
    /// Hubble events written (several per connection).
    pub hubble_events: u64,
    /// Attack flows injected (written in the formats written).
    pub attack_flows: u64,
    pub workloads: usize,
    pub instances: usize,
    pub pods: usize,
    /// Flow files (relative path, records), in order.
    pub files: Vec<(Fmt, String, u64)>,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.flows.iter().sum()
    }
}

/// Runs a simulation: writes everything under `out` (inventory, hosts, flows, and
/// `ground-truth.json` with attacks), or with `stream` only that format's flows to standard
/// output (and the inventory and ground truth under `out` if given).
pub fn simulate(cfg: &Config, out: Option<&Path>, stream: Option<Fmt>) -> io::Result<Summary> {
    simulate_to(
        cfg,
        out,
        stream.map(|f| (f, Box::new(io::stdout()) as Box<dyn io::Write>)),
    )
}

/// Writes only the inventory (`inventory/*`, `hosts.csv`, `hosts.yaml`) of the bank `cfg`
/// describes: what an ingest of a stream of that bank needs before the stream starts.
pub fn write_inventory(cfg: &Config, out: &Path) -> io::Result<Summary> {
    let bank = Bank::build(cfg);
    std::fs::create_dir_all(out)?;
    inventory::write(&bank, out)?;
    Ok(Summary {
        workloads: bank.workloads.len(),
        instances: bank.workloads.iter().map(|w| w.instances()).sum(),
        pods: bank.pods.len(),
        ..Summary::default()
    })
}

/// The connections a run with `cfg` simulates, in the order it writes them, with the format
/// that records each — the ground truth of everything written (no files are written).
pub fn for_each_connection(cfg: &Config, mut visit: impl FnMut(&Bank, &SimFlow, Fmt)) {
    let bank = Bank::build(cfg);
    let attack = if cfg.attacks {
        attacks::inject(&bank, cfg.seed).1
    } else {
        Vec::new()
    };
    let mut bg = traffic::Background::new(&bank, cfg.seed, cfg.rate);
    let mut buf: Vec<SimFlow> = Vec::new();
    let mut ai = 0;
    let mut t = bank.start;
    while t < bank.end {
        buf.clear();
        minute(&mut bg, &attack, &mut ai, t, &mut buf);
        for f in &buf {
            visit(&bank, f, write::format_of(&bank, f));
        }
        t += 60;
    }
}

/// The flows of the minute from `t`: background and the attack flows due, by start time.
fn minute(
    bg: &mut traffic::Background,
    attack: &[SimFlow],
    ai: &mut usize,
    t: i64,
    buf: &mut Vec<SimFlow>,
) {
    bg.minute(t, buf);
    while *ai < attack.len() && attack[*ai].time_ms < (t + 60) * 1000 {
        buf.push(attack[*ai].clone());
        *ai += 1;
    }
    buf.sort_by_key(|f| f.time_ms);
}

/// [`simulate`], streaming one format to any writer.
pub fn simulate_to(
    cfg: &Config,
    out: Option<&Path>,
    stream: Option<(Fmt, Box<dyn io::Write>)>,
) -> io::Result<Summary> {
    let stream_fmt = stream.as_ref().map(|s| s.0);
    if out.is_none() && stream.is_none() {
        return Err(io::Error::other(
            "nothing to write: give an output directory or a stream",
        ));
    }
    let bank = Bank::build(cfg);
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        inventory::write(&bank, dir)?;
    }
    let (scenarios, attack) = if cfg.attacks {
        attacks::inject(&bank, cfg.seed)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut keys: Vec<Vec<serde_json::Value>> = vec![Vec::new(); scenarios.len()];
    let mut writers = write::Writers::new(&bank, out, stream);
    let mut bg = traffic::Background::new(&bank, cfg.seed, cfg.rate);
    let mut buf: Vec<SimFlow> = Vec::new();
    let mut ai = 0;
    let mut t = bank.start;
    let p = traffic::Picker { bank: &bank };
    while t < bank.end {
        buf.clear();
        minute(&mut bg, &attack, &mut ai, t, &mut buf);
        let day = (t - bank.start) / 86_400;
        for f in &buf {
            let pos = writers.write(f, day)?;
            if let (Some(sc), Some(pos)) = (f.scenario, pos) {
                keys[sc].push(json!({
                    "format": pos.format.name(),
                    "file": pos.file,
                    "line": pos.line,
                    "src": p.addr(f.src).to_string(),
                    "src_port": f.sport,
                    "dst": p.addr(f.dst).to_string(),
                    "dst_port": f.dport,
                    "protocol": f.proto,
                    "time": rfc3339_ms(f.time_ms),
                }));
            }
        }
        t += 60;
    }
    writers.finish()?;
    if let Some(dir) = out
        && cfg.attacks
    {
        let list: Vec<serde_json::Value> = scenarios
            .iter()
            .zip(keys)
            .map(|(s, flows)| {
                json!({
                    "id": s.id,
                    "kind": s.kind,
                    "techniques": s.techniques,
                    "description": s.description,
                    "start": rfc3339_ms(s.start_ms),
                    "end": rfc3339_ms(s.end_ms),
                    "attacker": {"workload": s.attacker.0, "address": s.attacker.1.to_string()},
                    "flow_count": flows.len(),
                    "flows": flows,
                })
            })
            .collect();
        let gt = json!({
            "seed": cfg.seed,
            "workloads": cfg.workloads,
            "days": cfg.days,
            "start": rfc3339(bank.start),
            "end": rfc3339(bank.end),
            "streamed": stream_fmt.map(Fmt::name),
            "scenarios": list,
        });
        let mut text = serde_json::to_string_pretty(&gt).map_err(io::Error::other)?;
        text.push('\n');
        std::fs::write(dir.join("ground-truth.json"), text)?;
    }
    Ok(Summary {
        flows: writers.counts,
        hubble_events: writers.hubble_events,
        attack_flows: attack.len() as u64,
        workloads: bank.workloads.len(),
        instances: bank.workloads.iter().map(|w| w.instances()).sum(),
        pods: bank.pods.len(),
        files: std::mem::take(&mut writers.written),
    })
}
