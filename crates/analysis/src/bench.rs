//! Measuring the connectivity engine: load, build, full connectivity, single evaluations and
//! incremental policy updates. `bulkhead bench connectivity DIR` prints these figures.

use bulkhead_core::model::{Layer, PortMatch};
use bulkhead_core::{ConnSet, Endpoint, Engine, Protocol, RangeSet};
use bulkhead_k8s::Loaded;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// Figures of one benchmark run. Times in milliseconds unless the name says otherwise.
#[derive(Clone, Debug, Serialize)]
pub struct EngineBench {
    pub workloads: usize,
    pub namespaces: usize,
    pub policies: usize,
    pub load_ms: f64,
    pub build_ms: f64,
    pub connectivity_ms: f64,
    /// Load + build + connectivity: the "full connectivity, loading included".
    pub total_ms: f64,
    /// Ordered pairs (workloads and external ranges) with something allowed.
    pub allowed_pairs: u64,
    /// Subject classes per direction `[ingress, egress]`.
    pub classes: [usize; 2],
    /// Blocks (bit sets) held by class verdicts, by the admin-layer cache and by the cache of
    /// the layers below admin.
    pub class_blocks: usize,
    pub admin_blocks: usize,
    pub lower_blocks: usize,
    /// Peak resident memory after loading, build and full connectivity, in MiB.
    pub peak_rss_connectivity_mib: f64,
    pub eval_samples: usize,
    pub eval_mean_us: f64,
    pub eval_p99_us: f64,
    /// Single NetworkPolicy changes, removals and additions.
    pub np_updates: UpdateFigures,
    /// Single AdminNetworkPolicy changes, removals and additions.
    pub anp_updates: UpdateFigures,
    /// With `every`: a change of the first rule's ports and a removal of every
    /// AdminNetworkPolicy (after the sampled updates above, and the copies they added).
    pub anp_every: Option<UpdateFigures>,
    /// Peak resident memory of the process (VmHWM), in MiB.
    pub peak_rss_mib: f64,
}

/// Timings of incremental updates of one kind of policy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpdateFigures {
    pub samples: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The same figures in CPU time of the updating thread (what one core spends, without
    /// the waits of a shared machine).
    pub cpu_mean_ms: f64,
    pub cpu_p50_ms: f64,
    pub cpu_p99_ms: f64,
    pub cpu_max_ms: f64,
    /// Updates that moved the external pieces (included above).
    pub pieces_moved: usize,
    /// Mean number of (subject, peer) direction verdicts that changed per update.
    pub mean_changed_pairs: f64,
    /// Compactions run between updates when the engine asked for one
    /// ([`Engine::wants_compaction`]), as a caller applying a stream of changes would: how
    /// many, and their CPU time (not in the figures above).
    pub compactions: usize,
    pub compaction_max_ms: f64,
    /// The update that took the most CPU time.
    pub slowest: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time this thread has used, in milliseconds: on a machine shared with other work the
/// wall clock counts waiting for a core too.
fn thread_cpu_ms() -> f64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// A small deterministic generator, so runs are repeatable.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Peak resident memory so far, from `/proc/self/status` (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs the benchmark on manifests under `path`: `evals` single decisions, `updates` sampled
/// updates of each layer and, with `every`, a change and a removal of every admin policy.
pub fn run(
    path: &Path,
    evals: usize,
    updates: usize,
    seed: u64,
    every: bool,
) -> Result<EngineBench, String> {
    let t0 = Instant::now();
    let loaded = Loaded::from_paths(&[path]);
    if let Some(e) = loaded.errors.first() {
        return Err(format!(
            "{} error(s) loading {}: first: {e}",
            loaded.errors.len(),
            path.display()
        ));
    }
    let load = t0.elapsed();
    let cluster = loaded.cluster;
    let (workloads, namespaces, policies) = (
        cluster.workloads.len(),
        cluster.namespaces.len(),
        cluster.policies.len(),
    );

    let t1 = Instant::now();
    let mut engine = Engine::owned(cluster);
    let build = t1.elapsed();

    let t2 = Instant::now();
    let mut allowed_pairs = 0u64;
    let mut checksum = 0u64;
    engine.for_each_connection(|s, d, c| {
        allowed_pairs += 1;
        if let (Endpoint::Workload(a), Endpoint::Workload(b)) = (s, d) {
            checksum = checksum.wrapping_add(
                (a as u64) << 20 ^ b as u64 ^ c.ports_of(Protocol::Tcp).ranges().len() as u64,
            );
        }
    });
    let connectivity = t2.elapsed();
    let [class_blocks, admin_blocks, lower_blocks] = engine.cached_blocks();
    let rss_after_connectivity = peak_rss_mib();
    std::hint::black_box(checksum);

    let mut rng = SplitMix(seed);
    let n = workloads.max(1);
    let mut eval_us = Vec::with_capacity(evals);
    for _ in 0..evals {
        let (s, d) = (rng.below(n), rng.below(n));
        let proto = Protocol::ALL[rng.below(3)];
        let port = [53u16, 80, 443, 5432, 8080, 9090, 9100][rng.below(7)];
        let t = Instant::now();
        let dec = engine.decide(Endpoint::Workload(s), Endpoint::Workload(d), proto, port);
        eval_us.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(dec);
    }

    let np_updates = measure_updates(&mut engine, Layer::Namespaced, updates, &mut rng);
    let anp_updates = measure_updates(&mut engine, Layer::Admin, updates, &mut rng);
    let anp_every = every.then(|| measure_every(&mut engine, Layer::Admin, &mut rng));
    let eval_mean_us = eval_us.iter().sum::<f64>() / eval_us.len().max(1) as f64;
    Ok(EngineBench {
        workloads,
        namespaces,
        policies,
        load_ms: ms(load),
        build_ms: ms(build),
        connectivity_ms: ms(connectivity),
        total_ms: ms(load + build + connectivity),
        allowed_pairs,
        classes: engine.class_counts(),
        class_blocks,
        admin_blocks,
        lower_blocks,
        peak_rss_connectivity_mib: rss_after_connectivity,
        eval_samples: eval_us.len(),
        eval_mean_us,
        eval_p99_us: percentile(&mut eval_us, 0.99),
        np_updates,
        anp_updates,
        anp_every,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The policies of one layer, by index.
fn of_layer(engine: &Engine<'_>, layer: Layer) -> Vec<usize> {
    (0..engine.cluster().policies.len())
        .filter(|&i| engine.cluster().policies[i].layer == layer)
        .collect()
}

/// Times `count` single-policy updates of policies chosen at random from one layer: in turn a
/// change of the first rule's ports, a removal, and an addition of a copy.
fn measure_updates(
    engine: &mut Engine<'_>,
    layer: Layer,
    count: usize,
    rng: &mut SplitMix,
) -> UpdateFigures {
    let indices = of_layer(engine, layer);
    if indices.is_empty() {
        return UpdateFigures::default();
    }
    let plan = |rng: &mut SplitMix, k: usize| (indices[rng.below(indices.len())], k % 3);
    time_updates(engine, count, plan, rng)
}

/// Times a change of the first rule's ports and a removal of every policy of one layer.
fn measure_every(engine: &mut Engine<'_>, layer: Layer, rng: &mut SplitMix) -> UpdateFigures {
    let indices = of_layer(engine, layer);
    let plan = |_: &mut SplitMix, k: usize| (indices[k / 2], k % 2);
    time_updates(engine, 2 * indices.len(), plan, rng)
}

/// Times `count` updates, the `k`th as `plan` says: a policy index and a kind, 0 a change of
/// the first rule's ports, 1 a removal, 2 an addition of a copy. Changed and removed policies
/// are put back (untimed) so every update starts from the generated state (but for the copies
/// added).
fn time_updates(
    engine: &mut Engine<'_>,
    count: usize,
    mut plan: impl FnMut(&mut SplitMix, usize) -> (usize, usize),
    rng: &mut SplitMix,
) -> UpdateFigures {
    if count == 0 {
        return UpdateFigures::default();
    }
    let mut times = Vec::with_capacity(count);
    let mut cpu = Vec::with_capacity(count);
    let (mut pieces_moved, mut changed) = (0, 0usize);
    let mut compactions = Vec::new();
    let mut maintain = |engine: &mut Engine<'_>| {
        if engine.wants_compaction() {
            let c = thread_cpu_ms();
            engine.compact();
            compactions.push(thread_cpu_ms() - c);
        }
    };
    let mut slowest = (0.0, String::new());
    for k in 0..count {
        let (i, kind) = plan(rng, k);
        let old = engine.cluster().policies[i].clone();
        let (idx, new) = match kind {
            0 => {
                let mut p = old.clone();
                let port = 1000 + rng.below(60000) as u16;
                let ports = Some(vec![PortMatch::Conns(ConnSet::ports(
                    Protocol::Tcp,
                    RangeSet::range(port, port),
                ))]);
                if let Some(r) = p.ingress.as_mut().and_then(|r| r.first_mut()) {
                    r.ports = ports;
                } else if let Some(r) = p.egress.as_mut().and_then(|r| r.first_mut()) {
                    r.ports = ports;
                }
                (i, Some(p))
            }
            1 => (i, None),
            _ => (engine.cluster().policies.len(), Some(old.clone())),
        };
        // The affected pairs are counted inside the timed region: a change report may name
        // shared sets whose intersections are only worked out when asked for.
        let (t, c) = (Instant::now(), thread_cpu_ms());
        let up = engine.set_policy(idx, new);
        changed += up.changed_pairs();
        let spent = thread_cpu_ms() - c;
        cpu.push(spent);
        if spent > slowest.0 {
            let what = ["change of", "removal of", "copy of"][kind.min(2)];
            slowest = (spent, format!("{what} {}", old.name));
        }
        times.push(ms(t.elapsed()));
        pieces_moved += usize::from(up.pieces_moved);
        maintain(engine);
        if kind != 2 {
            engine.set_policy(i, Some(old));
            maintain(engine);
        }
    }
    let mean_ms = times.iter().sum::<f64>() / times.len() as f64;
    let max_ms = times.iter().copied().fold(0.0, f64::max);
    let cpu_mean_ms = cpu.iter().sum::<f64>() / cpu.len() as f64;
    let cpu_max_ms = cpu.iter().copied().fold(0.0, f64::max);
    UpdateFigures {
        cpu_mean_ms,
        cpu_p50_ms: percentile(&mut cpu, 0.5),
        cpu_p99_ms: percentile(&mut cpu, 0.99),
        cpu_max_ms,
        samples: times.len(),
        mean_ms,
        p50_ms: percentile(&mut times, 0.5),
        p99_ms: percentile(&mut times, 0.99),
        max_ms,
        pieces_moved,
        mean_changed_pairs: changed as f64 / count.max(1) as f64,
        compactions: compactions.len(),
        compaction_max_ms: compactions.iter().copied().fold(0.0, f64::max),
        slowest: slowest.1,
    }
}
