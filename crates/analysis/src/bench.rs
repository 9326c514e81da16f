//! Measuring the connectivity engine: load, build, full connectivity, single evaluations and
//! incremental policy updates. `bulkhead bench connectivity DIR` prints these figures.

use bulkhead_core::model::{Layer, Policy, PortMatch};
use bulkhead_core::{Cluster, ConnSet, Endpoint, Engine, Protocol, RangeSet};
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
    /// Runs after loading; with more than one, every time below is the least of the runs.
    pub runs: usize,
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
    /// Peak resident memory after loading, build and full connectivity, in MiB (measure it
    /// with one run: with more, the first run's, while the loaded cluster is kept for the
    /// others).
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
    /// Updates that took more than 10 ms of CPU time (the target for one update).
    pub cpu_over_10_ms: usize,
    /// Updates that moved the external pieces (included above).
    pub pieces_moved: usize,
    /// Mean number of (subject, peer) direction verdicts that changed per update
    /// ([`bulkhead_core::engine::Update::changed_pairs`], read after the timed update).
    pub mean_changed_pairs: f64,
    /// Mean number of (subject, peer) direction verdicts the update names as affected
    /// ([`bulkhead_core::engine::Update::affected_pairs`], counted inside the timed update).
    pub mean_affected_pairs: f64,
    /// CPU time of reading each update's exact changes after it was made (its report's
    /// changes worked out against the layers below admin, and their pairs counted), per update
    /// at its least over the runs: mean, 99th percentile, most; and of the update and that
    /// read together, the most and how many took over 10 ms.
    pub read_cpu_mean_ms: f64,
    pub read_cpu_p99_ms: f64,
    pub read_cpu_max_ms: f64,
    pub with_read_cpu_max_ms: f64,
    pub with_read_cpu_over_10_ms: usize,
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
///
/// With `runs` above 1, everything after loading is done that many times, each time on a fresh
/// engine in the same way (the same seed: the same decisions and updates from the same states),
/// and each time is the least of the runs: engine build and full connectivity by run, decisions
/// and updates one by one before their statistics are taken. On a shared machine other work
/// only ever adds time, so the least of several runs is the closest to the engine's own cost.
pub fn run(
    path: &Path,
    evals: usize,
    updates: usize,
    seed: u64,
    every: bool,
    runs: usize,
) -> Result<EngineBench, String> {
    let t0 = Instant::now();
    let cluster = load(path)?;
    let load = t0.elapsed();
    let (workloads, namespaces, policies) = (
        cluster.workloads.len(),
        cluster.namespaces.len(),
        cluster.policies.len(),
    );
    // The last run takes the loaded cluster, the others a copy.
    let runs = runs.max(1);
    let mut cluster = Some(cluster);
    let passes: Vec<Pass> = (0..runs)
        .filter_map(|r| {
            let c = if r + 1 == runs {
                cluster.take()
            } else {
                cluster.clone()
            };
            Some(pass(c?, evals, updates, seed, every))
        })
        .collect();
    let first = &passes[0];
    // Build and full connectivity as one run did them: the run where they took least.
    let best = (passes.iter())
        .min_by_key(|p| p.build + p.connectivity)
        .expect("at least one run");
    let mut eval_us = least(passes.iter().map(|p| &p.eval_us));
    let eval_mean_us = eval_us.iter().sum::<f64>() / eval_us.len().max(1) as f64;
    let updates_of = |f: fn(&Pass) -> Option<&UpdateSamples>| {
        (passes.iter().map(f).collect::<Option<Vec<_>>>()).map(|runs| figures(&runs))
    };
    Ok(EngineBench {
        workloads,
        namespaces,
        policies,
        runs: passes.len(),
        load_ms: ms(load),
        build_ms: ms(best.build),
        connectivity_ms: ms(best.connectivity),
        total_ms: ms(load + best.build + best.connectivity),
        allowed_pairs: first.allowed_pairs,
        classes: first.classes,
        class_blocks: first.blocks[0],
        admin_blocks: first.blocks[1],
        lower_blocks: first.blocks[2],
        peak_rss_connectivity_mib: first.rss_after_connectivity,
        eval_samples: eval_us.len(),
        eval_mean_us,
        eval_p99_us: percentile(&mut eval_us, 0.99),
        np_updates: updates_of(|p| Some(&p.np)).unwrap_or_default(),
        anp_updates: updates_of(|p| Some(&p.anp)).unwrap_or_default(),
        anp_every: updates_of(|p| p.every.as_ref()),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The manifests under `path`, or the first error loading them.
fn load(path: &Path) -> Result<Cluster, String> {
    let loaded = Loaded::from_paths(&[path]);
    match loaded.errors.first() {
        Some(e) => Err(format!(
            "{} error(s) loading {}: first: {e}",
            loaded.errors.len(),
            path.display()
        )),
        None => Ok(loaded.cluster),
    }
}

/// One run of the benchmark after loading.
struct Pass {
    build: Duration,
    connectivity: Duration,
    allowed_pairs: u64,
    classes: [usize; 2],
    /// Class, admin-layer and lower-layer blocks after full connectivity.
    blocks: [usize; 3],
    rss_after_connectivity: f64,
    eval_us: Vec<f64>,
    np: UpdateSamples,
    anp: UpdateSamples,
    every: Option<UpdateSamples>,
}

/// Element by element, the least of equally long lists of times.
fn least<'a>(runs: impl Iterator<Item = &'a Vec<f64>>) -> Vec<f64> {
    runs.fold(None::<Vec<f64>>, |acc, v| match acc {
        None => Some(v.clone()),
        Some(mut acc) => {
            debug_assert_eq!(acc.len(), v.len());
            for (a, &x) in acc.iter_mut().zip(v) {
                *a = a.min(x);
            }
            Some(acc)
        }
    })
    .unwrap_or_default()
}

fn pass(cluster: Cluster, evals: usize, updates: usize, seed: u64, every: bool) -> Pass {
    let workloads = cluster.workloads.len();
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
    let blocks = engine.cached_blocks();
    let rss_after_connectivity = peak_rss_mib();
    std::hint::black_box(checksum);

    let mut rng = SplitMix(seed);
    let n = workloads.max(1);
    let mut eval_us = Vec::with_capacity(evals);
    for _ in 0..evals {
        let (s, d, proto, port) = eval_draw(&mut rng, n);
        let t = Instant::now();
        let dec = engine.decide(Endpoint::Workload(s), Endpoint::Workload(d), proto, port);
        eval_us.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(dec);
    }

    let np = measure_updates(&mut engine, Layer::Namespaced, updates, &mut rng);
    let anp = measure_updates(&mut engine, Layer::Admin, updates, &mut rng);
    let every = every.then(|| measure_every(&mut engine, Layer::Admin, &mut rng));
    Pass {
        build,
        connectivity,
        allowed_pairs,
        classes: engine.class_counts(),
        blocks,
        rss_after_connectivity,
        eval_us,
        np,
        anp,
        every,
    }
}

/// The flow of one timed decision: source, destination, protocol and port.
fn eval_draw(rng: &mut SplitMix, n: usize) -> (usize, usize, Protocol, u16) {
    let (s, d) = (rng.below(n), rng.below(n));
    let proto = Protocol::ALL[rng.below(3)];
    let port = [53u16, 80, 443, 5432, 8080, 9090, 9100][rng.below(7)];
    (s, d, proto, port)
}

/// Figures of `bench update`: one policy's update done again and again from the same state.
#[derive(Clone, Debug, Serialize)]
pub struct OneUpdateBench {
    /// "change of anp-0043" or "removal of anp-0043".
    pub update: String,
    /// Whether the state was the one `bench connectivity`'s sample leaves (with its seed).
    pub after_sample: Option<u64>,
    pub reps: usize,
    /// Direction verdict pairs the update changes, the changes its report holds, and the
    /// pairs it names as affected ([`bulkhead_core::engine::Update::affected_pairs`]).
    pub changed_pairs: usize,
    pub changes: usize,
    pub affected_pairs: usize,
    /// Thread CPU milliseconds of each repetition (the update and counting its affected pairs,
    /// as `bench connectivity` times them), and their least, median and most.
    pub cpu_ms: Vec<f64>,
    pub cpu_least_ms: f64,
    pub cpu_median_ms: f64,
    pub cpu_max_ms: f64,
    /// Wall milliseconds, least of the repetitions.
    pub wall_least_ms: f64,
    /// Thread CPU milliseconds of reading the update's exact changes after it was made (as
    /// `bench connectivity` times it, apart): least and median of the repetitions.
    pub read_cpu_least_ms: f64,
    pub read_cpu_median_ms: f64,
}

/// The decisions and the updates per layer of the sample `bench update --after-sample` replays.
const SAMPLE_EVALS: usize = 2000;
const SAMPLE_UPDATES: usize = 200;

/// Times one update of the policy named `policy` (`remove`: its removal, else a change of its
/// first rule's ports) `reps` times, each from the same state (put back untimed in between,
/// compacted when the engine asks): the engine after full connectivity, as `bench connectivity`
/// leaves it. With `after_sample = Some(seed)`, that state is the one
/// `bench connectivity --evals 2000 --updates 200 --seed SEED` reaches before its
/// `--every-admin` sweep (its decisions drawn and its sampled updates applied, untimed): the
/// place to look at one update that the sweep reports as slow.
pub fn one_update(
    path: &Path,
    policy: &str,
    remove: bool,
    reps: usize,
    after_sample: Option<u64>,
) -> Result<OneUpdateBench, String> {
    let mut engine = Engine::owned(load(path)?);
    engine.for_each_connection(|_, _, _| {});
    if let Some(seed) = after_sample {
        let mut rng = SplitMix(seed);
        let n = engine.cluster().workloads.len().max(1);
        for _ in 0..SAMPLE_EVALS {
            eval_draw(&mut rng, n);
        }
        for layer in [Layer::Namespaced, Layer::Admin] {
            measure_updates(&mut engine, layer, SAMPLE_UPDATES, &mut rng);
        }
    }
    let index = (0..engine.cluster().policies.len())
        .find(|&i| engine.cluster().policies[i].name == policy)
        .ok_or_else(|| format!("{}: no policy named {policy}", path.display()))?;
    let reps = reps.max(1);
    let kind = usize::from(remove);
    let mut rng = SplitMix(1);
    let samples = time_updates(&mut engine, reps, |_, _| (index, kind), &mut rng);
    let mut cpu = samples.cpu.clone();
    cpu.sort_by(f64::total_cmp);
    let mut read = samples.read_cpu.clone();
    read.sort_by(f64::total_cmp);
    // One more, untimed, for the size of its report.
    let old = engine.cluster().policies[index].clone();
    let new = (!remove).then(|| with_first_rule_port(&old, 1000));
    let up = engine.set_policy(index, new);
    let (changed_pairs, changes) = (up.changed_pairs(), up.change_count());
    let affected_pairs = up.affected_pairs();
    engine.set_policy(index, Some(old));
    Ok(OneUpdateBench {
        update: samples.what[0].clone(),
        after_sample,
        reps,
        changed_pairs,
        changes,
        affected_pairs,
        cpu_least_ms: cpu[0],
        cpu_median_ms: cpu[cpu.len() / 2],
        cpu_max_ms: cpu[cpu.len() - 1],
        cpu_ms: samples.cpu,
        wall_least_ms: samples.times.iter().copied().fold(f64::INFINITY, f64::min),
        read_cpu_least_ms: read[0],
        read_cpu_median_ms: read[read.len() / 2],
    })
}

/// `p` with its first rule (ingress if it has one, else egress) allowing only TCP `port`.
fn with_first_rule_port(p: &Policy, port: u16) -> Policy {
    let mut p = p.clone();
    let ports = Some(vec![PortMatch::Conns(ConnSet::ports(
        Protocol::Tcp,
        RangeSet::range(port, port),
    ))]);
    if let Some(r) = p.ingress.as_mut().and_then(|r| r.first_mut()) {
        r.ports = ports;
    } else if let Some(r) = p.egress.as_mut().and_then(|r| r.first_mut()) {
        r.ports = ports;
    }
    p
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
) -> UpdateSamples {
    let indices = of_layer(engine, layer);
    if indices.is_empty() {
        return UpdateSamples::default();
    }
    let plan = |rng: &mut SplitMix, k: usize| (indices[rng.below(indices.len())], k % 3);
    time_updates(engine, count, plan, rng)
}

/// Times a change of the first rule's ports and a removal of every policy of one layer.
fn measure_every(engine: &mut Engine<'_>, layer: Layer, rng: &mut SplitMix) -> UpdateSamples {
    let indices = of_layer(engine, layer);
    let plan = |_: &mut SplitMix, k: usize| (indices[k / 2], k % 2);
    time_updates(engine, 2 * indices.len(), plan, rng)
}

/// The timings of one run of updates, update by update.
#[derive(Default)]
struct UpdateSamples {
    /// Wall and thread CPU milliseconds.
    times: Vec<f64>,
    cpu: Vec<f64>,
    /// What each update was ("removal of anp-0043").
    what: Vec<String>,
    pieces_moved: usize,
    changed: usize,
    affected: usize,
    /// Thread CPU milliseconds of reading each update's exact changes.
    read_cpu: Vec<f64>,
    /// CPU milliseconds of each compaction run between updates.
    compactions: Vec<f64>,
}

/// The figures of the same updates timed in one or more runs: per update, the least of its
/// times.
fn figures(runs: &[&UpdateSamples]) -> UpdateFigures {
    let first = runs[0];
    if first.times.is_empty() {
        return UpdateFigures::default();
    }
    let mut times = least(runs.iter().map(|r| &r.times));
    let mut cpu = least(runs.iter().map(|r| &r.cpu));
    let mut read = least(runs.iter().map(|r| &r.read_cpu));
    // The update and the read together, per run, then at their least.
    let sums: Vec<Vec<f64>> = (runs.iter())
        .map(|r| r.cpu.iter().zip(&r.read_cpu).map(|(a, b)| a + b).collect())
        .collect();
    let with_read = least(sums.iter());
    // Compactions come where the engine asks, the same in every run.
    let compactions = if runs
        .iter()
        .all(|r| r.compactions.len() == first.compactions.len())
    {
        least(runs.iter().map(|r| &r.compactions))
    } else {
        first.compactions.clone()
    };
    let slowest = (0..cpu.len()).max_by(|&a, &b| cpu[a].total_cmp(&cpu[b]));
    let count = times.len();
    UpdateFigures {
        samples: count,
        mean_ms: times.iter().sum::<f64>() / count as f64,
        max_ms: times.iter().copied().fold(0.0, f64::max),
        cpu_mean_ms: cpu.iter().sum::<f64>() / count as f64,
        cpu_max_ms: cpu.iter().copied().fold(0.0, f64::max),
        cpu_over_10_ms: cpu.iter().filter(|&&t| t > 10.0).count(),
        slowest: slowest.map(|k| first.what[k].clone()).unwrap_or_default(),
        cpu_p50_ms: percentile(&mut cpu, 0.5),
        cpu_p99_ms: percentile(&mut cpu, 0.99),
        p50_ms: percentile(&mut times, 0.5),
        p99_ms: percentile(&mut times, 0.99),
        pieces_moved: first.pieces_moved,
        mean_changed_pairs: first.changed as f64 / count as f64,
        mean_affected_pairs: first.affected as f64 / count as f64,
        read_cpu_mean_ms: read.iter().sum::<f64>() / count as f64,
        read_cpu_max_ms: read.iter().copied().fold(0.0, f64::max),
        read_cpu_p99_ms: percentile(&mut read, 0.99),
        with_read_cpu_max_ms: with_read.iter().copied().fold(0.0, f64::max),
        with_read_cpu_over_10_ms: with_read.iter().filter(|&&t| t > 10.0).count(),
        compactions: compactions.len(),
        compaction_max_ms: compactions.iter().copied().fold(0.0, f64::max),
    }
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
) -> UpdateSamples {
    let mut out = UpdateSamples::default();
    let maintain = |engine: &mut Engine<'_>, compactions: &mut Vec<f64>| {
        if engine.wants_compaction() {
            let c = thread_cpu_ms();
            engine.compact();
            compactions.push(thread_cpu_ms() - c);
        }
    };
    for k in 0..count {
        let (i, kind) = plan(rng, k);
        let old = engine.cluster().policies[i].clone();
        let (idx, new) = match kind {
            0 => (
                i,
                Some(with_first_rule_port(&old, 1000 + rng.below(60000) as u16)),
            ),
            1 => (i, None),
            _ => (engine.cluster().policies.len(), Some(old.clone())),
        };
        // The affected pairs are counted inside the timed region: the count is part of what
        // an update reports. Reading its exact changes (the layers below admin applied to
        // what it names) is timed apart.
        let (t, c) = (Instant::now(), thread_cpu_ms());
        let up = engine.set_policy(idx, new);
        out.affected += up.affected_pairs();
        out.cpu.push(thread_cpu_ms() - c);
        out.times.push(ms(t.elapsed()));
        let c = thread_cpu_ms();
        out.changed += up.changed_pairs();
        out.read_cpu.push(thread_cpu_ms() - c);
        let what = ["change of", "removal of", "copy of"][kind.min(2)];
        out.what.push(format!("{what} {}", old.name));
        out.pieces_moved += usize::from(up.pieces_moved);
        maintain(engine, &mut out.compactions);
        if kind != 2 {
            engine.set_policy(i, Some(old));
            maintain(engine, &mut out.compactions);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(cpu: &[f64], what: &[&str]) -> UpdateSamples {
        UpdateSamples {
            times: cpu.iter().map(|t| t + 0.5).collect(),
            cpu: cpu.to_vec(),
            what: what.iter().map(|w| w.to_string()).collect(),
            pieces_moved: 1,
            changed: 30,
            affected: 45,
            read_cpu: cpu.iter().map(|t| t / 2.0).collect(),
            compactions: vec![2.0],
        }
    }

    /// Each update's time is its least over the runs, and the statistics are taken over those:
    /// a slow run of one update does not make it the slowest.
    #[test]
    fn figures_take_each_update_at_its_least() {
        let what = ["change of a", "removal of b", "copy of c"];
        let a = samples(&[1.0, 12.0, 3.0], &what);
        let b = samples(&[4.0, 11.0, 30.0], &what);
        let f = figures(&[&a, &b]);
        assert_eq!(f.samples, 3);
        assert_eq!(f.cpu_max_ms, 12.0 - 1.0);
        assert_eq!(f.cpu_mean_ms, (1.0 + 11.0 + 3.0) / 3.0);
        assert_eq!(f.max_ms, 11.5);
        assert_eq!(f.cpu_over_10_ms, 1);
        assert_eq!(f.slowest, "removal of b");
        assert_eq!(f.mean_changed_pairs, 10.0);
        assert_eq!(f.mean_affected_pairs, 15.0);
        assert_eq!((f.pieces_moved, f.compactions), (1, 1));
        // Reading the changes: each update's least, and with the update, the least of their
        // sums per run (12 + 6 in the first run, 11 + 5.5 in the second).
        assert_eq!(f.read_cpu_max_ms, 5.5);
        assert_eq!(f.read_cpu_mean_ms, (0.5 + 5.5 + 1.5) / 3.0);
        assert_eq!(f.with_read_cpu_max_ms, 16.5);
        assert_eq!(f.with_read_cpu_over_10_ms, 1);
        // One run: its own times.
        let one = figures(&[&b]);
        assert_eq!((one.cpu_max_ms, one.slowest.as_str()), (30.0, "copy of c"));
        assert_eq!(one.cpu_over_10_ms, 2);
    }

    #[test]
    fn least_is_element_by_element() {
        let runs = [
            vec![3.0, 1.0, 5.0],
            vec![2.0, 4.0, 5.0],
            vec![9.0, 0.5, 6.0],
        ];
        assert_eq!(least(runs.iter()), vec![2.0, 0.5, 5.0]);
        assert!(least(std::iter::empty()).is_empty());
    }
}
