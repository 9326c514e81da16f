//! `bulkhead bench ingest` and `bulkhead bench map`: the ingest pipeline and the map query on
//! synthetic data, one thread.

use crate::see::{self, Aggregator, IngestArgs, MapArgs, MapFormat};
use crate::telemetry::FormatArg;
use anyhow::{Context, Result, bail};
use bulkhead_identity::Index;
use bulkhead_k8s::Loaded;
use bulkhead_store::{Batch, EdgeKey, EdgeStats, NodeCache, SourceKey, Store, VerdictClass};
use bulkhead_telemetry::{Format, Parser};
use rustc_hash::FxHashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `bulkhead bench ingest`.
#[derive(clap::Args)]
pub struct BenchIngestArgs {
    /// Synthetic flow records to generate.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// hubble, vpc or netflow (the telemetry generator's shapes; netflow is IPFIX messages
    /// back to back).
    #[arg(long, value_enum, default_value = "hubble")]
    format: FormatArg,
    /// Workloads in the synthetic inventory (each with one running pod and one finished
    /// predecessor on the same address); the generator's flows use the first 200 (Hubble) or
    /// 5,000 (VPC, IPFIX) addresses.
    #[arg(long, default_value_t = 10_000)]
    workloads: u64,
    /// VPC and IPFIX traffic shape: each client address sends to this many servers of its own
    /// (a service and its dependencies); 0 sends to any of 5,000 addresses at random, so
    /// almost every flow is its own edge (the worst case for aggregation).
    #[arg(long, default_value_t = 10)]
    peers: u64,
    /// Which phases: `aggregate` (parse + resolve + aggregate, no store), `resolve` (resolve +
    /// aggregate alone over flows parsed beforehand), `store` (the whole ingest into a fresh
    /// store), or `all`. Peak memory is per process, so measure `store`
    /// alone for its peak.
    #[arg(long, default_value = "all")]
    phase: String,
    /// Raw-flow window for the store phase (0 keeps no raw flows).
    #[arg(long, default_value = "24h")]
    raw_window: String,
    /// Work directory (a temporary one by default; kept when given).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `bulkhead bench map`.
#[derive(clap::Args)]
pub struct BenchMapArgs {
    /// Edge rows to write.
    #[arg(long, default_value_t = 1_000_000)]
    edges: u64,
    /// Nodes the edges run between.
    #[arg(long, default_value_t = 5_000)]
    nodes: u32,
    /// Hourly buckets the edges are spread over.
    #[arg(long, default_value_t = 24)]
    buckets: u64,
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The telemetry generator's pod addresses (crates/telemetry/src/bench.rs, `pod_ip`).
pub(crate) fn pod_ip(w: u64) -> String {
    format!("10.{}.{}.{}", (w >> 8) & 0x0f, w & 0xff, 10 + w % 7)
}

/// A `kubectl get pods -o json`-shaped inventory: per workload a Deployment's running pod and
/// a finished predecessor on the same address; and one Service per 100 workloads.
pub(crate) fn write_inventory(path: &Path, workloads: u64) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(w, r#"{{"apiVersion":"v1","kind":"List","items":["#)?;
    for i in 0..workloads {
        // The generator's flows use the first 5,000 addresses (distinct: past 4,096 the
        // last octet differs); the rest come from 10.128/9.
        let ip = if i < 5000 {
            pod_ip(i)
        } else {
            format!("10.{}.{}.{}", 128 + (i >> 16), (i >> 8) & 0xff, i & 0xff)
        };
        let ns = format!("ns-{:03}", i % 200);
        let sep = if i == 0 { "" } else { "," };
        write!(
            w,
            r#"{sep}{{"kind":"Pod","metadata":{{"name":"wl-{i}-old","namespace":"{ns}","labels":{{"app":"wl-{i}","team":"team-{t}"}},"ownerReferences":[{{"kind":"ReplicaSet","name":"wl-{i}-5d4f","controller":true}}]}},"status":{{"phase":"Succeeded","podIP":"{ip}","startTime":"2025-11-26T00:00:00Z","containerStatuses":[{{"state":{{"terminated":{{"finishedAt":"2025-11-26T12:00:00Z"}}}}}}]}}}}"#,
            t = i % 40
        )?;
        write!(
            w,
            r#",{{"kind":"Pod","metadata":{{"name":"wl-{i}-new","namespace":"{ns}","labels":{{"app":"wl-{i}","team":"team-{t}"}},"ownerReferences":[{{"kind":"ReplicaSet","name":"wl-{i}-5d4f","controller":true}}]}},"status":{{"phase":"Running","podIP":"{ip}","startTime":"2025-11-26T12:00:01Z"}}}}"#,
            t = i % 40
        )?;
        if i % 100 == 0 {
            write!(
                w,
                r#",{{"kind":"Service","metadata":{{"name":"svc-{i}","namespace":"{ns}"}},"spec":{{"clusterIP":"10.96.{}.{}","selector":{{"app":"wl-{i}"}}}}}}"#,
                (i >> 8) & 0xff,
                i & 0xff
            )?;
        }
    }
    writeln!(w, "]}}")?;
    w.flush()?;
    Ok(())
}

/// Adds the aggregator's batch to the running totals, as a commit would add it to the store,
/// and gives the batch's memory back to the aggregator.
fn merge_batch(agg: &mut Aggregator, total: &mut FxHashMap<EdgeKey, EdgeStats>) {
    let b = agg.take();
    for (k, v) in &b.edges {
        total.entry(*k).or_default().merge(v);
    }
    agg.recycle(b);
}

fn json_line(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

pub fn run_ingest_bench(a: BenchIngestArgs) -> Result<()> {
    let format: Format = a.format.into();
    if !matches!(format, Format::Hubble | Format::Vpc | Format::Netflow) {
        bail!("--format: hubble, vpc or netflow (IPFIX)");
    }
    // The generated NetFlow file holds IPFIX messages back to back (RFC 5655 file format).
    let opts = bulkhead_telemetry::Options {
        netflow_stream: format == Format::Netflow,
        ..Default::default()
    };
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    let flows = dir.join(format!("flows-{}-p{}.{format}", a.records, a.peers));
    let t = Instant::now();
    if !flows.exists() {
        bulkhead_telemetry::bench::generate_with(format, a.records, &flows, a.peers)
            .with_context(|| format!("cannot write {}", flows.display()))?;
    }
    let gen_s = t.elapsed().as_secs_f64();
    let inv = dir.join("inventory.json");
    write_inventory(&inv, a.workloads)?;
    let t = Instant::now();
    let loaded = Loaded::from_paths(&[&inv]);
    let mut index = Index::new();
    index.add_kubernetes(&loaded);
    let index_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&flows)?.len();
    let mut out = vec![
        ("records", a.records.to_string()),
        ("format", format!("\"{format}\"")),
        ("file_mib", format!("{:.1}", size as f64 / 1048576.0)),
        ("generate_s", format!("{gen_s:.2}")),
        ("workloads", a.workloads.to_string()),
        ("peers", a.peers.to_string()),
        ("pods", loaded.pods.len().to_string()),
        ("inventory_load_and_index_s", format!("{index_s:.3}")),
    ];
    if a.phase == "all" || a.phase == "aggregate" {
        let (t, c) = (Instant::now(), cpu_secs());
        let mut agg = Aggregator::new(&index, 3600 * 1_000_000_000, false);
        let mut total: FxHashMap<EdgeKey, EdgeStats> = FxHashMap::default();
        let mut parser = Parser::new(opts.clone());
        parser.parse_path(&flows, format, &mut |f| {
            agg.add(&f);
            if agg.batch.flows >= see::DEFAULT_BATCH as u64 {
                merge_batch(&mut agg, &mut total);
            }
        })?;
        merge_batch(&mut agg, &mut total);
        let wall = t.elapsed().as_secs_f64();
        let cpu = c.zip(cpu_secs()).map(|(a, b)| b - a);
        let res = agg.resolution();
        out.push(("aggregate_wall_s", format!("{wall:.3}")));
        out.push((
            "aggregate_flows_per_s_wall",
            format!("{:.0}", a.records as f64 / wall),
        ));
        if let Some(cpu) = cpu {
            out.push(("aggregate_cpu_s", format!("{cpu:.2}")));
            out.push((
                "aggregate_flows_per_s_cpu",
                format!("{:.0}", a.records as f64 / cpu.max(0.01)),
            ));
        }
        out.push(("edges", total.len().to_string()));
        out.push(("resolved_share", format!("{:.4}", res.resolved_share())));
        out.push((
            "peak_mib_after_aggregate",
            format!("{:.0}", peak_mib().unwrap_or(0.0)),
        ));
    }
    if a.phase == "all" || a.phase == "resolve" {
        // Resolve + aggregate alone, over flows parsed beforehand (at most 2 million, held
        // in memory: this phase's peak memory says nothing about ingest).
        let mut flows_mem = Vec::new();
        let mut parser = Parser::new(opts.clone());
        parser.parse_path(&flows, format, &mut |f| {
            if flows_mem.len() < 2_000_000 {
                flows_mem.push(f)
            }
        })?;
        let (t, c) = (Instant::now(), cpu_secs());
        let mut agg = Aggregator::new(&index, 3600 * 1_000_000_000, false);
        let mut total: FxHashMap<EdgeKey, EdgeStats> = FxHashMap::default();
        for f in &flows_mem {
            agg.add(f);
            if agg.batch.flows >= see::DEFAULT_BATCH as u64 {
                merge_batch(&mut agg, &mut total);
            }
        }
        merge_batch(&mut agg, &mut total);
        let wall = t.elapsed().as_secs_f64();
        let n = flows_mem.len() as f64;
        out.push((
            "resolve_aggregate_flows_per_s_wall",
            format!("{:.0}", n / wall.max(1e-9)),
        ));
        if let Some(cpu) = c.zip(cpu_secs()).map(|(a, b)| b - a) {
            out.push((
                "resolve_aggregate_flows_per_s_cpu",
                format!("{:.0}", n / cpu.max(0.01)),
            ));
        }
    }
    if format == Format::Netflow && a.phase == "store" {
        bail!(
            "--phase store: `bulkhead ingest` reads a NetFlow file as one payload, not the back-to-back IPFIX messages generated here"
        );
    }
    if format != Format::Netflow && (a.phase == "all" || a.phase == "store") {
        let data = dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        let (t, c) = (Instant::now(), cpu_secs());
        let s = see::ingest(&IngestArgs {
            files: vec![flows.clone()],
            format: a.format,
            inventory: vec![inv.clone()],
            hosts: vec![],
            external: vec![],
            data_dir: data.clone(),
            bucket: "1h".into(),
            raw_window: a.raw_window.clone(),
            batch: see::DEFAULT_BATCH,
            abort_after_batches: None,
            netflow_stream: false,
            json: false,
            quiet: true,
        })?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = c.zip(cpu_secs()).map(|(a, b)| b - a);
        out.push(("ingest_wall_s", format!("{wall:.3}")));
        out.push((
            "ingest_flows_per_s_wall",
            format!("{:.0}", a.records as f64 / wall),
        ));
        if let Some(cpu) = cpu {
            out.push(("ingest_cpu_s", format!("{cpu:.2}")));
        }
        out.push(("ingest_edges", s.store.edges.to_string()));
        out.push(("ingest_raw_flows", s.store.raw_flows.to_string()));
        let db = std::fs::metadata(data.join(bulkhead_store::DB_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        out.push(("store_mib", format!("{:.1}", db as f64 / 1048576.0)));
        out.push((
            "peak_mib_after_ingest",
            format!("{:.0}", peak_mib().unwrap_or(0.0)),
        ));
    }
    println!("{}", json_line(&out));
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("bulkhead-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub fn run_map_bench(a: BenchMapArgs) -> Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    let data = dir.join("map-data");
    let _ = std::fs::remove_dir_all(&data);
    let store = Store::open(&data, None)?;
    let t0: i64 = 1_764_201_600 * 1_000_000_000;
    let hour = 3600 * 1_000_000_000i64;
    let nodes = a.nodes.max(2);
    let info = |e: u32| -> (String, String) {
        let key = format!("ns-{:03}/wl-{e}[Deployment]", e % 200);
        let json = format!(
            r#"{{"kind":"workload","key":"{key}","namespace":"ns-{:03}","labels":{{"team":"team-{}","app":"wl-{e}"}}}}"#,
            e % 200,
            e % 40
        );
        (key, json)
    };
    let t = Instant::now();
    let mut cache = NodeCache::default();
    let mut rng = bulkhead_synth::SplitMix64::new(11);
    let mut written = 0u64;
    let per_bucket = a.edges.div_ceil(a.buckets.max(1));
    let key = SourceKey {
        sha256: [7; 32],
        size: 0,
    };
    while written < a.edges {
        let mut batch = Batch::default();
        while batch.edges.len() < 200_000 && written + (batch.edges.len() as u64) < a.edges {
            let i = written + batch.edges.len() as u64;
            let bucket_t = t0 + (i / per_bucket) as i64 * hour;
            let r = rng.next_u64();
            let k = EdgeKey {
                bucket: store.bucket_of(Some(bucket_t)),
                src: (r % nodes as u64) as u32,
                dst: ((r >> 20) % nodes as u64) as u32,
                proto: 6,
                port: [443u16, 8443, 5432, 9092, 53, 9090][(r >> 40) as usize % 6],
            };
            batch.add(
                k,
                &EdgeStats::one(
                    Some(bucket_t + (r >> 44) as i64 % hour),
                    None,
                    (r >> 8) % 100_000,
                    (r >> 16) % 100,
                    VerdictClass::Allowed,
                ),
            );
        }
        written += batch.edges.len() as u64;
        store.commit_batch(&batch, &mut cache, &info, &key, written, None, 0)?;
    }
    let write_s = t.elapsed().as_secs_f64();
    let rows = store.stats()?.edges;
    let mut out = vec![
        ("edges_requested", a.edges.to_string()),
        ("edge_rows", rows.to_string()),
        ("nodes", nodes.to_string()),
        ("write_s", format!("{write_s:.2}")),
    ];
    drop(store);
    for (name, group_by, last) in [
        ("map_all", vec![], None),
        ("map_group_by_team", vec!["team".to_string()], None),
        ("map_last_6h", vec![], Some("6h".to_string())),
    ] {
        let t = Instant::now();
        let store = Store::open(&data, None)?;
        let m = see::build_map(
            &store,
            &MapArgs {
                data_dir: data.clone(),
                group_by,
                window: None,
                last,
                format: MapFormat::Txt,
                min_flows: 1,
            },
        )?;
        let s = t.elapsed().as_secs_f64();
        out.push((name, format!("{s:.3}")));
        if name == "map_all" {
            let t = Instant::now();
            let text = see::render_map(&m, MapFormat::Txt);
            out.push((
                "map_all_render_txt_s",
                format!("{:.3}", t.elapsed().as_secs_f64()),
            ));
            out.push((
                "map_all_txt_mib",
                format!("{:.1}", text.len() as f64 / 1048576.0),
            ));
        }
        out.push(match name {
            "map_all" => ("map_all_edges", m.edges.len().to_string()),
            "map_group_by_team" => ("map_group_by_team_edges", m.edges.len().to_string()),
            _ => ("map_last_6h_edges", m.edges.len().to_string()),
        });
    }
    out.push(("peak_mib", format!("{:.0}", peak_mib().unwrap_or(0.0))));
    println!("{}", json_line(&out));
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
