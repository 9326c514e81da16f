//! `bulkhead ingest` and `bulkhead map`: flows in, resolved to identities, aggregated into
//! edges in the embedded store; the dependency map out.

use crate::telemetry::FormatArg;
use anyhow::{Context, Result, bail};
use bulkhead_core::time::rfc3339;
use bulkhead_identity::{
    Connections, Entity, EntityKind, How, Index, LookupCache, Resolved, load_hosts, orient,
    parse_net,
};
use bulkhead_k8s::Loaded;
use bulkhead_store::{
    Batch, EdgeKey, EdgeStats, NodeCache, RawFlow, SourceKey, SourceStatus, Store, VerdictClass,
    Window,
};
use bulkhead_telemetry::{Flow, Parser, Report, Verdict};
use clap::ValueEnum;
use rustc_hash::FxHashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flows per write transaction.
pub const DEFAULT_BATCH: usize = 50_000;
/// Inputs larger than this get a progress line (when standard error is a terminal).
const PROGRESS_BYTES: u64 = 16 << 20;

/// `bulkhead ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    /// Flow files (plain or gzip), or `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Input format; auto detects per file.
    #[arg(long, short, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Kubernetes objects (`kubectl get pods,services -o json|yaml` dumps or manifest
    /// directories) for resolving pod and Service addresses.
    #[arg(long, value_name = "PATH")]
    pub inventory: Vec<PathBuf>,
    /// Host inventory (YAML or CSV: name, addresses, labels) for VMs and legacy hosts.
    #[arg(long, value_name = "FILE")]
    pub hosts: Vec<PathBuf>,
    /// An external group: `NAME=CIDR` (repeatable; several CIDRs may share a name).
    #[arg(long, value_name = "NAME=CIDR")]
    pub external: Vec<String>,
    /// The store's directory.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    pub data_dir: PathBuf,
    /// Edge bucket length (fixed when the store is created), e.g. 1h, 15m, 1d.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub bucket: String,
    /// How much raw flow to keep behind the newest record (0 keeps none), e.g. 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub raw_window: String,
    /// Flows per write transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH, hide = true)]
    pub batch: usize,
    /// Testing: abort the process (no cleanup, like a crash) right after this many batch
    /// commits.
    #[arg(long, hide = true)]
    pub abort_after_batches: Option<u64>,
    /// NetFlow/IPFIX files hold export packets back to back (RFC 5655 IPFIX files), not one
    /// UDP payload each (always so for standard input).
    #[arg(long)]
    pub netflow_stream: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Parses `90s`, `15m`, `1h`, `7d` (or a bare number of seconds) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?}: expected a duration such as 30m, 1h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("{s:?}: unknown unit {unit:?} (s, m, h, d)"),
    };
    n.checked_mul(mult * 1_000_000_000)
        .context("duration too long")
}

/// Builds the identity index from the inventory flags.
pub fn build_index(
    inventory: &[PathBuf],
    hosts: &[PathBuf],
    external: &[String],
) -> Result<(Index, Vec<String>)> {
    let mut index = Index::new();
    let mut warnings = Vec::new();
    if !inventory.is_empty() {
        for p in inventory {
            if !p.exists() {
                bail!("{}: no such file or directory", p.display());
            }
        }
        let loaded = Loaded::from_paths(inventory);
        warnings.extend(loaded.warnings.iter().cloned());
        warnings.extend(loaded.errors.iter().map(|e| e.to_string()));
        index.add_kubernetes(&loaded);
    }
    for h in hosts {
        match load_hosts(h) {
            Ok(list) => index.add_hosts(&list),
            Err(errs) => {
                for e in &errs {
                    eprintln!("error: {e}");
                }
                bail!(
                    "{}: {} error(s) in the host inventory",
                    h.display(),
                    errs.len()
                );
            }
        }
    }
    for e in external {
        let (name, cidr) = e
            .split_once('=')
            .with_context(|| format!("--external {e}: expected NAME=CIDR"))?;
        let net = parse_net(cidr).map_err(|m| anyhow::anyhow!("--external {e}: {m}"))?;
        if name.is_empty() {
            bail!("--external {e}: the group has no name");
        }
        index.add_external(name, net);
    }
    warnings.extend(index.warnings.iter().cloned());
    Ok((index, warnings))
}

fn verdict_class(v: Option<Verdict>) -> VerdictClass {
    match v {
        None => VerdictClass::Unknown,
        Some(v) if v.is_blocked() => VerdictClass::Denied,
        Some(_) => VerdictClass::Allowed,
    }
}

/// Resolution counts over both ends of every flow.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resolution {
    /// Flow ends by how they were resolved.
    pub ends: BTreeMap<String, u64>,
    /// Flows without a usable time (resolved against the inventory as it stands).
    pub flows_without_time: u64,
    /// Flows flipped into the connection's direction (replies).
    pub flows_flipped: u64,
    /// Hubble records folded into a connection counted already (its other events).
    pub records_folded: u64,
}

impl Resolution {
    /// Share of flow ends attributed to a workload, Service or host.
    pub fn resolved_share(&self) -> f64 {
        let total: u64 = self.ends.values().sum();
        let resolved: u64 = self
            .ends
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "external" | "unknown"))
            .map(|(_, v)| v)
            .sum();
        if total == 0 {
            0.0
        } else {
            resolved as f64 / total as f64
        }
    }
}

/// Flows held between [`Aggregator::add`] and their resolution: resolving a run of flows in
/// one tight loop, then adding them to the edge map in another, lets the processor overlap the
/// cache misses of several flows (the lookup cache and the edge map are larger than L2; one
/// flow at a time, each miss is waited for in turn).
const PENDING: usize = 256;

/// What resolution and aggregation need of one flow (decided in order at `add`).
#[derive(Clone, Copy)]
struct Pending {
    client: IpAddr,
    server: IpAddr,
    time: Option<i64>,
    end: Option<i64>,
    client_hint: Option<Resolved>,
    server_hint: Option<Resolved>,
    bucket: u64,
    bytes: u64,
    packets: u64,
    /// The record's own ports (for raw flows).
    src_port: u16,
    dst_port: u16,
    /// The server's port.
    port: u16,
    proto: u8,
    verdict: VerdictClass,
    flipped: bool,
    /// Whether the flow starts a connection (counts on its edge).
    starts: bool,
}

/// A small direct-mapped cache in front of [`Index::lookup_pod`] for records that name their
/// pods (Hubble). Parsers intern namespace and pod names, so the records of one pod share the
/// same `Arc`s: a slot is found by the pod name's address and matches only the very same
/// strings (`Arc::ptr_eq`; the slot holds a clone, so the address cannot be reused by another
/// string while it is cached). No string is hashed or compared on a hit.
struct PodCache {
    slots: Vec<Option<PodSlot>>,
}

struct PodSlot {
    namespace: Arc<str>,
    pod: Arc<str>,
    answer: Option<Resolved>,
}

impl Default for PodCache {
    fn default() -> Self {
        PodCache {
            slots: (0..PodCache::SLOTS).map(|_| None).collect(),
        }
    }
}

impl PodCache {
    const SLOTS: usize = 1024;

    #[inline]
    fn lookup(
        &mut self,
        index: &Index,
        ep: &bulkhead_telemetry::EndpointIdentity,
    ) -> Option<Resolved> {
        let (ns, pod) = (ep.namespace.as_ref()?, ep.pod.as_ref()?);
        let addr = Arc::as_ptr(pod) as *const u8 as usize;
        let i = (addr >> 4).wrapping_mul(0x9e37_79b9) % Self::SLOTS;
        let Some(slot) = self.slots.get_mut(i) else {
            return index.lookup_pod(ns, pod);
        };
        if let Some(s) = slot
            && Arc::ptr_eq(&s.pod, pod)
            && Arc::ptr_eq(&s.namespace, ns)
        {
            return s.answer;
        }
        let answer = index.lookup_pod(ns, pod);
        *slot = Some(PodSlot {
            namespace: ns.clone(),
            pod: pod.clone(),
            answer,
        });
        answer
    }
}

/// Resolves and aggregates flows into a batch (no I/O): the hot path of ingest.
pub struct Aggregator<'a> {
    pub index: &'a Index,
    pub bucket_ns: i64,
    pub keep_raw: bool,
    pub batch: Batch,
    how: [u64; 8],
    pub without_time: u64,
    pub flipped: u64,
    spare: Option<Batch>,
    /// In front of `index` (the only index this aggregator reads).
    cache: LookupCache,
    /// Hubble records folded into a connection already counted.
    pub folded: u64,
    conns: Connections,
    /// In front of `index.lookup_pod`.
    pods: PodCache,
    /// Flows added but not yet resolved into `batch` (see [`PENDING`]).
    pending: Vec<Pending>,
    resolved: Vec<(Resolved, Resolved)>,
    /// The last time bucket computed: times in `[from, until)` fall in `bucket` (records
    /// mostly come in time order, so this saves a 64-bit division per record).
    last_bucket: (i64, i64, u64),
}

fn how_slot(h: How) -> usize {
    match h {
        How::PodAtTime => 0,
        How::PodNow => 1,
        How::ServiceWorkload => 2,
        How::Service => 3,
        How::Host => 4,
        How::External => 5,
        How::Unknown => 6,
        How::PodName => 7,
    }
}

const HOW_NAMES: [&str; 8] = [
    "pod-at-time",
    "pod-now",
    "service-workload",
    "service",
    "host",
    "external",
    "unknown",
    "pod-name",
];

impl<'a> Aggregator<'a> {
    pub fn new(index: &'a Index, bucket_ns: i64, keep_raw: bool) -> Self {
        Aggregator {
            index,
            bucket_ns,
            keep_raw,
            batch: Batch::default(),
            how: [0; 8],
            without_time: 0,
            flipped: 0,
            spare: None,
            cache: LookupCache::default(),
            folded: 0,
            conns: Connections::new(),
            pods: PodCache::default(),
            pending: Vec::with_capacity(PENDING),
            resolved: Vec::with_capacity(PENDING),
            last_bucket: (0, 0, 0),
        }
    }

    /// The bucket of time `t` (as [`bulkhead_store::bucket_of`]), remembering the last one.
    #[inline]
    fn bucket(&mut self, t: Option<i64>) -> u64 {
        let Some(time) = t else {
            return bulkhead_store::bucket_of(None, self.bucket_ns);
        };
        let (from, until, b) = self.last_bucket;
        if from <= time && time < until {
            return b;
        }
        let b = bulkhead_store::bucket_of(t, self.bucket_ns);
        let len = self.bucket_ns.max(1);
        // Every time in the bucket's span has the same quotient, hence the same bucket;
        // a span that overflows is not remembered.
        let from = time.div_euclid(len).checked_mul(len);
        if let Some((from, until)) = from.and_then(|f| Some((f, f.checked_add(len)?))) {
            self.last_bucket = (from, until, b);
        }
        b
    }

    /// Adds one flow. It is counted in `batch.flows` at once; its resolution and its edge
    /// follow with the next run of flows (at the latest at [`Aggregator::take`]).
    #[inline]
    pub fn add(&mut self, f: &Flow) {
        let o = orient(f);
        let t = f.time;
        if t.is_none() {
            self.without_time += 1;
        }
        self.flipped += o.flipped as u64;
        // A record that names its pods (Hubble) is taken at its word when the inventory
        // knows the pod; otherwise the address at the time decides.
        let (src_hint, dst_hint) = match f.identity.as_deref() {
            Some(id) => (
                self.pods.lookup(self.index, &id.src),
                self.pods.lookup(self.index, &id.dst),
            ),
            None => (None, None),
        };
        let (client_hint, server_hint) = if o.flipped {
            (dst_hint, src_hint)
        } else {
            (src_hint, dst_hint)
        };
        // A connection's later Hubble events (its SYN seen again at the server, replies,
        // FINs) are kept as raw records but do not count it again.
        let starts = self.conns.starts(f, &o);
        self.folded += u64::from(!starts);
        let bucket = self.bucket(t);
        self.pending.push(Pending {
            client: o.client,
            server: o.server,
            time: t,
            end: f.end_time,
            client_hint,
            server_hint,
            bucket,
            bytes: f.bytes,
            packets: f.packets,
            src_port: f.src_port,
            dst_port: f.dst_port,
            port: o.port,
            proto: f.protocol,
            verdict: verdict_class(f.verdict),
            flipped: o.flipped,
            starts,
        });
        self.batch.flows += 1;
        if self.pending.len() >= PENDING {
            self.flush();
        }
    }

    /// Resolves the pending flows and adds them to the batch, in the order they came.
    fn flush(&mut self) {
        self.resolved.clear();
        for p in &self.pending {
            let c = match p.client_hint {
                Some(r) => r,
                None => self.cache.lookup(self.index, p.client, p.time),
            };
            let s = match p.server_hint {
                Some(r) => r,
                None => self.cache.lookup(self.index, p.server, p.time),
            };
            self.resolved.push((c, s));
        }
        for (p, &(c, s)) in self.pending.iter().zip(&self.resolved) {
            self.how[how_slot(c.how)] += 1;
            self.how[how_slot(s.how)] += 1;
            if p.starts {
                self.batch.add(
                    EdgeKey {
                        bucket: p.bucket,
                        src: c.entity,
                        dst: s.entity,
                        proto: p.proto,
                        port: p.port,
                    },
                    &EdgeStats::one(p.time, p.end, p.bytes, p.packets, p.verdict),
                );
            }
            if self.keep_raw
                && let Some(time) = p.time
            {
                let (src, dst, sn, dn) = if p.flipped {
                    (p.server, p.client, s.entity, c.entity)
                } else {
                    (p.client, p.server, c.entity, s.entity)
                };
                self.batch.raw.push(RawFlow {
                    time,
                    src,
                    dst,
                    src_port: p.src_port,
                    dst_port: p.dst_port,
                    proto: p.proto,
                    bytes: p.bytes,
                    packets: p.packets,
                    verdict: match p.verdict {
                        VerdictClass::Unknown => 0,
                        VerdictClass::Allowed => 1,
                        VerdictClass::Denied => 2,
                    },
                    src_node: sn,
                    dst_node: dn,
                });
            }
        }
        self.pending.clear();
    }

    /// Takes the batch, leaving an empty one (with the capacity of a batch given back by
    /// [`Aggregator::recycle`], if any).
    pub fn take(&mut self) -> Batch {
        self.flush();
        let spare = self.spare.take().unwrap_or_default();
        std::mem::replace(&mut self.batch, spare)
    }

    /// Gives a taken batch back once it is written, so the next batch reuses its memory
    /// instead of growing a new edge map from nothing.
    pub fn recycle(&mut self, mut b: Batch) {
        b.edges.clear();
        b.raw.clear();
        b.flows = 0;
        self.spare = Some(b);
    }

    /// The resolution counts so far (of every flow added: pending ones are resolved first).
    pub fn resolution(&mut self) -> Resolution {
        self.flush();
        Resolution {
            ends: HOW_NAMES
                .iter()
                .zip(self.how)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            flows_without_time: self.without_time,
            flows_flipped: self.flipped,
            records_folded: self.folded,
        }
    }
}

/// sha256 and size of a file.
pub fn hash_file(path: &Path) -> Result<SourceKey> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(SourceKey {
        sha256: h.finalize().into(),
        size,
    })
}

/// What one file contributed.
#[derive(Clone, Debug, Serialize)]
pub struct FileOutcome {
    pub file: String,
    /// `ingested`, `resumed`, `duplicate` or `error`.
    pub status: String,
    /// Flows committed by this run.
    pub flows: u64,
    /// Flows skipped because an interrupted earlier run had committed them.
    pub resumed_after: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The ingest summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub files: Vec<FileOutcome>,
    pub report: Report,
    pub resolution: Resolution,
    pub resolved_share: f64,
    pub edges_new: u64,
    pub edges_updated: u64,
    pub raw_written: u64,
    pub raw_pruned: u64,
    pub duplicates_skipped: u64,
    pub store: bulkhead_store::Stats,
}

/// Runs an ingest; returns the summary (errors of single files are in it). Every file that added
/// flows to the store is recorded in the audit log (`store.ingest`, with the file's SHA-256).
pub fn ingest(args: &IngestArgs) -> Result<Summary> {
    let mut audit_events: Vec<bulkhead_audit::Event> = Vec::new();
    let bucket_ns = parse_duration(&args.bucket).context("--bucket")?;
    if bucket_ns <= 0 {
        bail!("--bucket must be positive");
    }
    let raw_window_ns = parse_duration(&args.raw_window).context("--raw-window")?;
    let (index, warnings) = build_index(&args.inventory, &args.hosts, &args.external)?;
    if !args.quiet {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let store = Store::open(&args.data_dir, Some(bulkhead_store::Options { bucket_ns }))?;
    let bucket_ns = store.bucket_ns();
    let entity_json: Vec<String> = index
        .entities
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect();
    let info = |e: u32| -> (String, String) {
        let i = e as usize;
        (
            index
                .entities
                .get(i)
                .map(|x| x.key.clone())
                .unwrap_or_default(),
            entity_json.get(i).cloned().unwrap_or_default(),
        )
    };
    // Standard input cannot hold one payload per file: NetFlow/IPFIX on it is read as export
    // packets back to back (as `simulate-bank --stream netflow` writes them), and so are files
    // with --netflow-stream.
    let mut parser = Parser::new(bulkhead_telemetry::Options {
        netflow_stream: args.netflow_stream || args.files.iter().any(|f| f.as_os_str() == "-"),
        ..Default::default()
    });
    let mut agg = Aggregator::new(&index, bucket_ns, raw_window_ns > 0);
    let mut cache = NodeCache::default();
    let mut files = Vec::new();
    let (mut edges_new, mut edges_updated, mut raw_written, mut raw_pruned, mut dups) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let batch_size = args.batch.max(1) as u64;
    let mut commits = 0u64;
    for file in &args.files {
        // Standard input is spooled to a file in the data directory first, so that it is
        // hashed (and deduplicated) like any other input.
        let spooled;
        let path: &Path = if file.as_os_str() == "-" {
            let p = args.data_dir.join(format!(".stdin-{}", std::process::id()));
            let mut out = std::fs::File::create(&p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            std::io::copy(&mut std::io::stdin().lock(), &mut out)
                .context("cannot read standard input")?;
            spooled = Some(p);
            spooled.as_deref().unwrap_or(file)
        } else {
            spooled = None;
            file
        };
        let name = if spooled.is_some() {
            "-".to_string()
        } else {
            file.display().to_string()
        };
        let key = match hash_file(path) {
            Ok(k) => k,
            Err(e) => {
                files.push(FileOutcome {
                    file: name,
                    status: "error".into(),
                    flows: 0,
                    resumed_after: 0,
                    error: Some(format!("{e:#}")),
                });
                continue;
            }
        };
        let skip = match store.source_status(&key)? {
            SourceStatus::Done(rec) => {
                dups += 1;
                files.push(FileOutcome {
                    file: name,
                    status: "duplicate".into(),
                    flows: 0,
                    resumed_after: 0,
                    error: Some(format!(
                        "already ingested as #{} ({}, {} flows)",
                        rec.ingest_id, rec.name, rec.flows
                    )),
                });
                if let Some(p) = &spooled {
                    let _ = std::fs::remove_file(p);
                }
                continue;
            }
            SourceStatus::Partial(n) => n,
            SourceStatus::New => 0,
        };
        let bar = (!args.quiet && std::io::stderr().is_terminal() && key.size > PROGRESS_BYTES)
            .then(|| {
                let b = indicatif::ProgressBar::new_spinner();
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {msg}: {human_pos} flows ({per_sec}) {elapsed}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.set_message(name.clone());
                b
            });
        let mut seen = 0u64;
        let mut done = skip;
        let mut failure: Option<bulkhead_store::Error> = None;
        let mut commit = |agg: &mut Aggregator, done: u64, finished: Option<&str>| {
            let batch = agg.take();
            let r = store.commit_batch(
                &batch,
                &mut cache,
                &info,
                &key,
                done,
                finished,
                raw_window_ns,
            );
            agg.recycle(batch);
            r
        };
        let parsed = {
            let mut sink = |f: Flow| {
                seen += 1;
                if seen <= skip || failure.is_some() {
                    return;
                }
                agg.add(&f);
                done += 1;
                if agg.batch.flows >= batch_size {
                    match commit(&mut agg, done, None) {
                        Ok(r) => {
                            commits += 1;
                            if args.abort_after_batches == Some(commits) {
                                std::process::abort();
                            }
                            edges_new += r.new_edges;
                            edges_updated += r.updated_edges;
                            raw_written += r.raw_written;
                            raw_pruned += r.raw_pruned;
                        }
                        Err(e) => failure = Some(e),
                    }
                    if let Some(b) = &bar {
                        b.set_position(done);
                    }
                }
            };
            parser.parse_path(path, args.format.into(), &mut sink)
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        if let Some(e) = failure {
            return Err(e.into());
        }
        let outcome = match parsed {
            Ok(()) => {
                let r = commit(&mut agg, done, Some(&name))?;
                edges_new += r.new_edges;
                edges_updated += r.updated_edges;
                raw_written += r.raw_written;
                raw_pruned += r.raw_pruned;
                FileOutcome {
                    file: name,
                    status: if skip > 0 { "resumed" } else { "ingested" }.into(),
                    flows: done - skip,
                    resumed_after: skip,
                    error: None,
                }
            }
            Err(e) => {
                // What was read before the error is kept (and the file is not registered, so
                // a later run resumes after it).
                let r = commit(&mut agg, done, None)?;
                edges_new += r.new_edges;
                edges_updated += r.updated_edges;
                FileOutcome {
                    file: name,
                    status: "error".into(),
                    flows: done - skip,
                    resumed_after: skip,
                    error: Some(e.to_string()),
                }
            }
        };
        // What reached the store is a state change: one audit event per file.
        if outcome.flows > 0 {
            let mut ev = bulkhead_audit::Event::new(
                // Who is acting: `$USER`, else `$LOGNAME`, else `bulkhead`.
                &crate::audit::env_actor().unwrap_or_else(|| "bulkhead".into()),
                bulkhead_audit::actions::STORE_INGEST,
                &format!("store:{}", args.data_dir.display()),
                &format!(
                    "bulkhead ingest {}: {} {} flows{}",
                    outcome.file,
                    outcome.status,
                    outcome.flows,
                    outcome
                        .error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            );
            ev.after = Some(bulkhead_audit::Digest(key.sha256));
            audit_events.push(ev);
        }
        files.push(outcome);
        if let Some(p) = &spooled {
            let _ = std::fs::remove_file(p);
        }
    }
    if !audit_events.is_empty() {
        let mut log =
            bulkhead_audit::AuditLog::open(&args.data_dir, bulkhead_audit::KeySource::DataDir)
                .context("opening the audit log to record the ingest")?;
        log.append_batch(&audit_events)
            .context("recording the ingest in the audit log")?;
    }
    let resolution = agg.resolution();
    Ok(Summary {
        files,
        report: parser.finish(),
        resolved_share: resolution.resolved_share(),
        resolution,
        edges_new,
        edges_updated,
        raw_written,
        raw_pruned,
        duplicates_skipped: dups,
        store: store.stats()?,
    })
}

/// The summary as text.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let r = &s.report;
    let skipped: u64 = r.skipped.values().map(|k| k.count).sum();
    out += &format!(
        "records read {}, parsed {}, skipped {}\n",
        r.read, r.parsed, skipped
    );
    for (reason, k) in &r.skipped {
        out += &format!("  skipped {} × {reason}\n", k.count);
        for e in &k.examples {
            out += &format!("    {e}\n");
        }
    }
    for (note, n) in &r.notes {
        out += &format!("  note: {n} × {note}\n");
    }
    for f in &s.files {
        out += &format!("{}: {}, {} flows", f.file, f.status, f.flows);
        if f.resumed_after > 0 {
            out += &format!(" (resumed after {} committed earlier)", f.resumed_after);
        }
        if let Some(e) = &f.error {
            out += &format!(": {e}");
        }
        out += "\n";
    }
    let ends: u64 = s.resolution.ends.values().sum();
    out += &format!(
        "resolved to workloads, Services or hosts: {:.1} % of {} flow ends",
        s.resolved_share * 100.0,
        ends
    );
    let parts: Vec<String> = s
        .resolution
        .ends
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out += &format!(" ({})\n", parts.join(", "));
    out += &format!(
        "flows without a usable time: {} (resolved against the inventory as it stands); replies flipped: {}; Hubble events folded into their connections: {}\n",
        s.resolution.flows_without_time, s.resolution.flows_flipped, s.resolution.records_folded
    );
    out += &format!(
        "edges written: {} new, {} updated; raw flows kept {} (pruned {}); duplicate files skipped {}\n",
        s.edges_new, s.edges_updated, s.raw_written, s.raw_pruned, s.duplicates_skipped
    );
    out += &format!(
        "store: {} nodes, {} edge rows, {} raw flows, {} sources ({} partial)\n",
        s.store.nodes, s.store.edges, s.store.raw_flows, s.store.sources, s.store.partial_sources
    );
    out
}

/// `bulkhead ingest`: prints the summary; false when a file failed.
pub fn run_ingest(args: IngestArgs) -> Result<bool> {
    let s = ingest(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", summary_text(&s));
    }
    std::io::stdout().flush().ok();
    Ok(s.files.iter().all(|f| f.status != "error"))
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MapFormat {
    Txt,
    Json,
    Dot,
}

/// `bulkhead map`.
#[derive(clap::Args)]
pub struct MapArgs {
    /// The store's directory.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    pub data_dir: PathBuf,
    /// Group workloads and hosts by these labels (`namespace` groups by namespace); peers
    /// without the label stay themselves.
    #[arg(long, value_name = "LABEL")]
    pub group_by: Vec<String>,
    /// Only flows in `FROM..TO` (RFC 3339 times, either side may be empty).
    #[arg(long, value_name = "FROM..TO", conflicts_with = "last")]
    pub window: Option<String>,
    /// Only the last DURATION of recorded traffic (behind the newest record stored), e.g. 24h.
    #[arg(long, value_name = "DURATION")]
    pub last: Option<String>,
    #[arg(long, short, value_enum, default_value = "txt")]
    pub format: MapFormat,
    /// Leave out edges with fewer flows.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_flows: u64,
}

/// One edge of the map.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MapEdge {
    pub src: String,
    pub dst: String,
    pub protocol: String,
    pub port: u16,
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    pub allowed: u64,
    pub denied: u64,
    pub unknown_verdict: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// One node of the map.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MapNode {
    pub name: String,
    pub kind: EntityKind,
    /// Entities in the group (for label groups).
    pub members: usize,
}

/// The map: nodes sorted by name, edges as rows over node positions, sorted by source,
/// destination, protocol name and port (names are made only when rendering).
#[derive(Clone, Debug)]
pub struct Map {
    pub window: Option<(String, String)>,
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapRow>,
}

/// One edge of the map over node positions.
#[derive(Clone, Copy, Debug)]
pub struct MapRow {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub port: u16,
    pub stats: EdgeStats,
}

impl Map {
    /// The edge with names, as `json` prints it.
    pub fn edge(&self, r: &MapRow) -> MapEdge {
        let v = &r.stats;
        let seen = v.seen();
        MapEdge {
            src: self.nodes[r.src as usize].name.clone(),
            dst: self.nodes[r.dst as usize].name.clone(),
            protocol: proto_name(r.proto),
            port: r.port,
            flows: v.flows,
            bytes: v.bytes,
            packets: v.packets,
            allowed: v.allowed,
            denied: v.denied,
            unknown_verdict: v.unknown,
            first_seen: seen.map(|(a, _)| rfc3339(a)),
            last_seen: seen.map(|(_, b)| rfc3339(b)),
        }
    }
}

#[derive(Serialize)]
struct MapJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    window: &'a Option<(String, String)>,
    nodes: &'a [MapNode],
    edges: Vec<MapEdge>,
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        0 => "unknown".into(),
        n => format!("proto-{n}"),
    }
}

fn parse_time(s: &str) -> Result<i64> {
    bulkhead_telemetry::time::parse_rfc3339(s)
        .with_context(|| format!("{s:?}: expected an RFC 3339 time such as 2026-11-27T00:00:00Z"))
}

/// Builds the map from a store.
pub fn build_map(store: &Store, args: &MapArgs) -> Result<Map> {
    let nodes = store.nodes()?;
    let mut window = Window::All;
    if let Some(w) = &args.window {
        let (a, b) = w
            .split_once("..")
            .with_context(|| format!("--window {w}: expected FROM..TO"))?;
        let from = if a.is_empty() {
            i64::MIN
        } else {
            parse_time(a)?
        };
        let until = if b.is_empty() {
            i64::MAX
        } else {
            parse_time(b)?
        };
        window = Window::Between(from, until);
    }
    if let Some(l) = &args.last {
        let d = parse_duration(l).context("--last")?;
        let newest = store.newest()?.unwrap_or(i64::MIN);
        if newest != i64::MIN {
            window = Window::Between(newest.saturating_sub(d), newest.saturating_add(1));
        }
    }
    // Node id → group index.
    let mut groups: Vec<MapNode> = Vec::new();
    let mut group_of_name: FxHashMap<String, usize> = FxHashMap::default();
    let mut group_of_node: FxHashMap<u32, usize> = FxHashMap::default();
    for n in &nodes {
        let e: Option<Entity> = serde_json::from_str(&n.info).ok();
        let kind = e.as_ref().map_or(EntityKind::Unknown, |e| e.kind);
        let mut name = n.key.clone();
        if let Some(e) = &e
            && !args.group_by.is_empty()
            && matches!(
                e.kind,
                EntityKind::Workload | EntityKind::Host | EntityKind::Service
            )
        {
            let vals: Vec<String> = args
                .group_by
                .iter()
                .filter_map(|l| {
                    if l == "namespace" {
                        e.namespace.as_ref().map(|v| format!("namespace={v}"))
                    } else {
                        e.labels.get(l).map(|v| format!("{l}={v}"))
                    }
                })
                .collect();
            if !vals.is_empty() {
                name = vals.join(",");
            }
        }
        let g = match group_of_name.get(&name) {
            Some(&g) => {
                groups[g].members += 1;
                g
            }
            None => {
                groups.push(MapNode {
                    name: name.clone(),
                    kind,
                    members: 1,
                });
                group_of_name.insert(name, groups.len() - 1);
                groups.len() - 1
            }
        };
        group_of_node.insert(n.id, g);
    }
    // Every group ranked by name; rows are collected over ranks, sorted and merged (a sort of
    // fixed-size rows is cheaper than a hash map over a million keys).
    let mut by_name: Vec<usize> = (0..groups.len()).collect();
    by_name.sort_by(|&a, &b| groups[a].name.cmp(&groups[b].name));
    let mut rank = vec![0u32; groups.len()];
    for (r, &g) in by_name.iter().enumerate() {
        rank[g] = r as u32;
    }
    let mut node_rank: FxHashMap<u32, u32> = FxHashMap::default();
    for (n, g) in &group_of_node {
        node_rank.insert(*n, rank[*g]);
    }
    // Protocols sort by name, as printed.
    let mut proto_rank = [0u8; 256];
    let mut protos: Vec<u8> = (0..=255u8).collect();
    protos.sort_by_key(|&p| proto_name(p));
    for (r, p) in protos.into_iter().enumerate() {
        proto_rank[p as usize] = r as u8;
    }
    let key = |r: &MapRow| (r.src, r.dst, proto_rank[r.proto as usize], r.port);
    // Sorts and merges equal rows in place.
    let compact = |rows: &mut Vec<MapRow>| {
        rows.sort_unstable_by_key(key);
        let mut w = 0usize;
        for i in 0..rows.len() {
            if w > 0 && key(&rows[w - 1]) == key(&rows[i]) {
                let st = rows[i].stats;
                rows[w - 1].stats.merge(&st);
            } else {
                rows[w] = rows[i];
                w += 1;
            }
        }
        rows.truncate(w);
    };
    let mut rows: Vec<MapRow> = Vec::new();
    // Rows are compacted whenever they double past the last compaction (at least 1M apart),
    // so memory follows the map's size rather than the store's when grouping merges rows.
    let mut next_compaction = 1usize << 20;
    let mut missing = false;
    store.for_each_edge(window, &mut |k, v| {
        match (node_rank.get(&k.src), node_rank.get(&k.dst)) {
            (Some(&s), Some(&d)) => rows.push(MapRow {
                src: s,
                dst: d,
                proto: k.proto,
                port: k.port,
                stats: v,
            }),
            _ => missing = true,
        }
        if rows.len() >= next_compaction {
            compact(&mut rows);
            next_compaction = (rows.len() * 2).max(1 << 20);
        }
    })?;
    if missing {
        bail!("the store has edges of unknown nodes: it is corrupt");
    }
    compact(&mut rows);
    let mut merged = rows;
    merged.retain(|r| r.stats.flows >= args.min_flows);
    // Nodes in use, in name order; rows renumbered over them (order is kept).
    let mut used = vec![false; groups.len()];
    for r in &merged {
        used[r.src as usize] = true;
        used[r.dst as usize] = true;
    }
    let mut pos = vec![u32::MAX; groups.len()];
    let mut nodes: Vec<MapNode> = Vec::new();
    for (r, &g) in by_name.iter().enumerate() {
        if used[r] {
            pos[r] = nodes.len() as u32;
            nodes.push(groups[g].clone());
        }
    }
    let mut edges = merged;
    for r in &mut edges {
        r.src = pos[r.src as usize];
        r.dst = pos[r.dst as usize];
    }
    Ok(Map {
        window: match window {
            Window::All => None,
            Window::Between(a, b) => Some((
                if a == i64::MIN {
                    String::new()
                } else {
                    rfc3339(a)
                },
                if b == i64::MAX {
                    String::new()
                } else {
                    rfc3339(b)
                },
            )),
        },
        nodes,
        edges,
    })
}

pub(crate) fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn dot_id(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// Renders the map.
pub fn render_map(m: &Map, format: MapFormat) -> String {
    match format {
        MapFormat::Json => {
            let j = MapJson {
                window: &m.window,
                nodes: &m.nodes,
                edges: m.edges.iter().map(|r| m.edge(r)).collect(),
            };
            serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"
        }
        MapFormat::Txt => {
            let mut out = String::new();
            for r in &m.edges {
                let e = m.edge(r);
                out += &format!(
                    "{} => {} : {} {} : {} flows, {}, {} packets",
                    e.src,
                    e.dst,
                    e.protocol,
                    e.port,
                    e.flows,
                    human_bytes(e.bytes),
                    e.packets
                );
                if e.denied > 0 {
                    out += &format!(", {} denied", e.denied);
                }
                out += "\n";
            }
            out
        }
        MapFormat::Dot => {
            let mut out = String::from("digraph map {\n  rankdir=LR;\n  node [shape=box];\n");
            for n in &m.nodes {
                let shape = match n.kind {
                    EntityKind::External => "ellipse",
                    EntityKind::Unknown => "diamond",
                    EntityKind::Host => "box3d",
                    _ => "box",
                };
                out += &format!("  {} [shape={shape}];\n", dot_id(&n.name));
            }
            // One arrow per pair, labelled with its protocols/ports and flows.
            let mut pairs: BTreeMap<(u32, u32), (Vec<String>, u64, u64)> = BTreeMap::new();
            for e in &m.edges {
                let p = pairs.entry((e.src, e.dst)).or_default();
                p.0.push(format!("{} {}", proto_name(e.proto), e.port));
                p.1 += e.stats.flows;
                p.2 += e.stats.bytes;
            }
            for ((s, d), (ports, flows, bytes)) in pairs {
                let (s, d) = (&m.nodes[s as usize].name, &m.nodes[d as usize].name);
                out += &format!(
                    "  {} -> {} [label={}];\n",
                    dot_id(s),
                    dot_id(d),
                    dot_id(&format!(
                        "{}\n{flows} flows, {}",
                        ports.join(", "),
                        human_bytes(bytes)
                    ))
                );
            }
            out + "}\n"
        }
    }
}

/// `bulkhead map`.
pub fn run_map(args: MapArgs) -> Result<()> {
    let db = args.data_dir.join(bulkhead_store::DB_FILE);
    if !db.exists() {
        bail!(
            "{}: no store here (run bulkhead ingest first, or pass --data-dir)",
            db.display()
        );
    }
    let store = Store::open(&args.data_dir, None)?;
    let m = build_map(&store, &args)?;
    crate::write_output(None, &render_map(&m, args.format))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The aggregator (flows resolved in runs, the lookup and pod caches, the remembered
    /// bucket) gives exactly what resolving each flow on its own against the index gives:
    /// the same edges, raw flows in the same order, and the same resolution counts.
    #[test]
    fn aggregator_equals_flow_by_flow_resolution() {
        use bulkhead_telemetry::{EndpointIdentity, FlowIdentity};
        use bulkhead_telemetry::{FlowOrigin, SourceFormat};
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("inventory.json");
        crate::see_bench::write_inventory(&inv, 300).unwrap();
        let mut index = Index::new();
        index.add_kubernetes(&Loaded::from_paths(&[&inv]));
        index.add_external("partners", parse_net("198.51.100.0/24").unwrap());
        let bucket_ns = 600 * 1_000_000_000;
        // A small deterministic generator (xorshift), so that a failure can be replayed.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let ns: Vec<Arc<str>> = (0..200).map(|i| Arc::from(format!("ns-{i:03}"))).collect();
        let pods: Vec<Arc<str>> = (0..300).map(|i| Arc::from(format!("wl-{i}-new"))).collect();
        let mut flows = Vec::new();
        let mut t = 1_764_201_600i64 * 1_000_000_000; // 2025-11-27, pods from the 26th
        for i in 0..20_000u64 {
            // Mostly forward in time, sometimes back across a bucket boundary.
            t += (next(3_000) as i64) * 1_000_000;
            let time = match next(20) {
                0 => None,
                1 => Some(t - next(900_000) as i64 * 1_000_000),
                _ => Some(t),
            };
            let addr = |w: u64| -> IpAddr {
                match w % 50 {
                    0 => IpAddr::from([198, 51, 100, (w % 200) as u8]),
                    1 => "2001:db8::7".parse().unwrap(),
                    2 => IpAddr::from([192, 0, 2, 9]),
                    _ => crate::see_bench::pod_ip(w % 320).parse().unwrap(),
                }
            };
            let (a, b) = (next(400), next(400));
            let (sp, dp) = match next(3) {
                0 => (40_000 + next(1000) as u16, 443),
                1 => (8443, 50_000 + next(1000) as u16),
                _ => (5000, 6000),
            };
            let hubble = next(2) == 0;
            let format = if hubble {
                SourceFormat::Hubble
            } else {
                SourceFormat::VpcFlowLogs
            };
            let mut f = Flow::new(
                addr(a),
                addr(b),
                if next(10) == 0 { 17 } else { 6 },
                sp,
                dp,
                FlowOrigin {
                    format,
                    source: 0,
                    record: i + 1,
                },
            );
            f.time = time;
            f.end_time = time.filter(|_| next(2) == 0).map(|t| t + 5_000_000_000);
            f.bytes = next(10_000);
            f.packets = next(100);
            f.verdict = match next(3) {
                0 => None,
                1 => Some(Verdict::Forwarded),
                _ => Some(Verdict::Dropped),
            };
            if hubble {
                f.is_reply = [None, Some(false), Some(true)][next(3) as usize];
                // Interned names (the same Arcs), fresh copies of them, and unknown pods.
                let ep = |w: u64, next: &mut dyn FnMut(u64) -> u64| {
                    let w = w % 320;
                    let (n, p): (Arc<str>, Arc<str>) = match next(5) {
                        0 => (
                            Arc::from(&*ns[(w % 200) as usize]),
                            Arc::from(format!("wl-{w}-new")),
                        ),
                        1 => (ns[(w % 200) as usize].clone(), Arc::from("no-such-pod")),
                        // The pod's own name in another namespace: not that pod.
                        2 => (
                            ns[((w + 1) % 200) as usize].clone(),
                            pods[(w % 300) as usize].clone(),
                        ),
                        _ => (
                            ns[(w % 200) as usize].clone(),
                            pods[(w % 300) as usize].clone(),
                        ),
                    };
                    EndpointIdentity {
                        namespace: Some(n),
                        pod: Some(p),
                        ..Default::default()
                    }
                };
                let (src, dst) = (ep(a, &mut next), ep(b, &mut next));
                f.identity = Some(Box::new(FlowIdentity { src, dst }));
            }
            flows.push(f);
        }

        let mut agg = Aggregator::new(&index, bucket_ns, true);
        let mut got = Batch::default();
        for (i, f) in flows.iter().enumerate() {
            agg.add(f);
            if i % 7_000 == 6_999 {
                let b = agg.take();
                for (k, v) in &b.edges {
                    got.edges.entry(*k).or_default().merge(v);
                }
                got.raw.extend_from_slice(&b.raw);
                got.flows += b.flows;
                agg.recycle(b);
            }
        }
        let b = agg.take();
        for (k, v) in &b.edges {
            got.edges.entry(*k).or_default().merge(v);
        }
        got.raw.extend_from_slice(&b.raw);
        got.flows += b.flows;
        let res = agg.resolution();

        // Flow by flow, straight from the index.
        let mut want = Batch::default();
        let mut how = BTreeMap::<String, u64>::new();
        let mut conns = Connections::new();
        for f in &flows {
            let o = orient(f);
            let named = |ep: &EndpointIdentity| {
                index.lookup_pod(ep.namespace.as_deref()?, ep.pod.as_deref()?)
            };
            let (sh, dh) = match f.identity.as_deref() {
                Some(id) => (named(&id.src), named(&id.dst)),
                None => (None, None),
            };
            let (ch, svh) = if o.flipped { (dh, sh) } else { (sh, dh) };
            let c = ch.unwrap_or_else(|| index.lookup(o.client, f.time));
            let s = svh.unwrap_or_else(|| index.lookup(o.server, f.time));
            for r in [c, s] {
                *how.entry(HOW_NAMES[how_slot(r.how)].to_string())
                    .or_default() += 1;
            }
            let v = verdict_class(f.verdict);
            if conns.starts(f, &o) {
                want.add(
                    EdgeKey {
                        bucket: bulkhead_store::bucket_of(f.time, bucket_ns),
                        src: c.entity,
                        dst: s.entity,
                        proto: f.protocol,
                        port: o.port,
                    },
                    &EdgeStats::one(f.time, f.end_time, f.bytes, f.packets, v),
                );
            }
            if let Some(time) = f.time {
                let (sn, dn) = if o.flipped {
                    (s.entity, c.entity)
                } else {
                    (c.entity, s.entity)
                };
                want.raw.push(RawFlow {
                    time,
                    src: f.src,
                    dst: f.dst,
                    src_port: f.src_port,
                    dst_port: f.dst_port,
                    proto: f.protocol,
                    bytes: f.bytes,
                    packets: f.packets,
                    verdict: match v {
                        VerdictClass::Unknown => 0,
                        VerdictClass::Allowed => 1,
                        VerdictClass::Denied => 2,
                    },
                    src_node: sn,
                    dst_node: dn,
                });
            }
        }
        assert_eq!(got.flows, flows.len() as u64, "flows counted");
        assert_eq!(res.ends, how, "resolution counts");
        assert!(
            how.contains_key("pod-name") && how.contains_key("pod-at-time"),
            "the case exercises named pods and addresses: {how:?}"
        );
        assert!(got.edges.len() > 1000, "many edges: {}", got.edges.len());
        let sorted = |b: &Batch| {
            b.edges
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(sorted(&got), sorted(&want), "edges");
        assert_eq!(got.raw, want.raw, "raw flows, in order");
    }

    #[test]
    fn durations_and_times() {
        for (s, want) in [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 604_800),
            ("30", 30),
        ] {
            assert_eq!(parse_duration(s).unwrap(), want * 1_000_000_000, "{s}");
        }
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        for s in [
            "2026-11-27T06:45:00Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
        ] {
            let t = bulkhead_telemetry::time::parse_rfc3339(s).unwrap();
            assert_eq!(rfc3339(t), s);
        }
    }
}
