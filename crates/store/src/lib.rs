//! The embedded flow store: one redb file (`bulkhead.redb`) in a data directory.
//!
//! Tables (format version [`FORMAT_VERSION`], recorded in `meta` when the store is created):
//! - `meta`: `format_version`, `created` (ns since the epoch), `bucket_ns`, counters.
//! - `nodes` (entity key → node id) and `node_info` (node id → the entity as JSON: the
//!   identity snapshot, refreshed when an ingest sees the entity again).
//! - `edges`: (bucket, src node, dst node, protocol, port) → counts, bytes, packets, first and
//!   last seen, verdict counts. Bucket [`UNTIMED`] holds records without a time.
//! - `raw`: (time, sequence) → one compact flow; pruned on each batch to the configured
//!   window behind the newest record stored.
//! - `sources`: sha256 + size of an ingested file → what was ingested (written in the same
//!   transaction as the file's last batch), and `progress`: sha256 + size → flows committed so
//!   far for a file whose ingest has not finished.
//!
//! Every batch is one write transaction (redb: copy-on-write B-trees, a commit is atomic and
//! durable with `Durability::Immediate`), so a crash loses at most the batch in flight and a
//! restart resumes after the last committed flow.
#![forbid(unsafe_code)]

mod codec;

pub use codec::{EdgeKey, EdgeStats, RawFlow, UNTIMED, VerdictClass, bucket_of, bucket_start};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// redb's page cache (its default is 1 GiB, which alone would exceed the ingest's memory
/// budget on large inputs).
pub const CACHE_BYTES: usize = 128 << 20;
/// The database file inside the data directory.
pub const DB_FILE: &str = "bulkhead.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NODES: TableDefinition<&str, u32> = TableDefinition::new("nodes");
const NODE_INFO: TableDefinition<u32, &str> = TableDefinition::new("node_info");
const EDGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("edges");
const RAW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw");
const SOURCES: TableDefinition<&[u8], &str> = TableDefinition::new("sources");
const PROGRESS: TableDefinition<&[u8], u64> = TableDefinition::new("progress");

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot open the store: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("{path}: store format version {found}, this bulkhead reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u64 },
    #[error(
        "{path}: the store was created with {found} s buckets; --bucket {wanted} s does not match (use a new --data-dir)"
    )]
    Bucket {
        path: PathBuf,
        found: i64,
        wanted: i64,
    },
    #[error(
        "{path}: the database file is truncated or damaged (restore it from a backup or start a new --data-dir)"
    )]
    Damaged { path: PathBuf },
    #[error("store: corrupt {what}")]
    Corrupt { what: &'static str },
}

fn dbe<E: Into<redb::Error>>(e: E) -> Error {
    Error::Db(e.into())
}

/// Store settings fixed at creation (the bucket) or used per ingest (the raw window).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Edge bucket length in nanoseconds.
    pub bucket_ns: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bucket_ns: 3600 * 1_000_000_000,
        }
    }
}

/// What the store says about one input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// Never seen.
    New,
    /// An earlier ingest committed this many flows and then stopped (crash or kill).
    Partial(u64),
    /// Ingested completely before.
    Done(SourceRecord),
}

/// A completely ingested file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub ingest_id: u64,
    pub name: String,
    pub flows: u64,
    /// When the ingest finished, ns since the epoch.
    pub at: i64,
}

/// An input file's identity: sha256 of its bytes and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl SourceKey {
    fn bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..32].copy_from_slice(&self.sha256);
        b[32..].copy_from_slice(&self.size.to_be_bytes());
        b
    }

    /// Lowercase hex of the hash.
    pub fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The aggregate of one batch before it is merged: edges keyed by the caller's entity numbers
/// (translated to store node ids at commit), and raw flows.
#[derive(Debug, Default)]
pub struct Batch {
    pub edges: FxHashMap<EdgeKey, EdgeStats>,
    pub raw: Vec<RawFlow>,
    /// Flows in this batch.
    pub flows: u64,
}

impl Batch {
    /// Adds one flow to the edge `key`.
    #[inline]
    pub fn add(&mut self, key: EdgeKey, one: &EdgeStats) {
        self.edges.entry(key).or_default().merge(one);
    }
}

/// The caller's entity number → store node id, for entities already written.
#[derive(Debug, Default)]
pub struct NodeCache {
    ids: FxHashMap<u32, u32>,
}

/// What one committed batch wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Edge rows created (new keys).
    pub new_edges: u64,
    /// Edge rows updated.
    pub updated_edges: u64,
    pub raw_written: u64,
    pub raw_pruned: u64,
}

/// One node as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: u32,
    pub key: String,
    /// The entity as JSON (whatever the writer stored).
    pub info: String,
}

/// Which buckets a query covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Every bucket, the untimed one included.
    All,
    /// Buckets overlapping `[from, until)` (ns since the epoch); the untimed bucket excluded.
    Between(i64, i64),
}

/// Counts of the store's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub format_version: u64,
    pub bucket_ns: i64,
    pub nodes: u64,
    pub edges: u64,
    pub raw_flows: u64,
    pub sources: u64,
    pub partial_sources: u64,
}

/// An open store.
pub struct Store {
    /// Always `Some` until dropped (taken out to drop it under a panic guard).
    db: Option<Database>,
    path: PathBuf,
    bucket_ns: i64,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Drop for Store {
    /// redb commits its allocator state on drop, and on a damaged file that can panic: the
    /// store was only read, so such a panic is contained (and reported on stderr by the hook).
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            if std::thread::panicking() {
                // A second panic while unwinding would abort the process: leave the file as it
                // is (the handle is leaked; the process is on an error path anyway).
                std::mem::forget(db);
            } else {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
            }
        }
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the store if missing. A new store
    /// records `opts.bucket_ns`; an existing one must have been created with the same bucket
    /// when `opts` is given.
    pub fn open(dir: &Path, opts: Option<Options>) -> Result<Store, Error> {
        // redb asserts (panics) on some damaged files instead of returning an error, while
        // opening or in the first write: such a panic is turned into an error naming the file.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::open_unguarded(dir, opts)
        }))
        .unwrap_or_else(|_| {
            Err(Error::Damaged {
                path: dir.join(DB_FILE),
            })
        })
    }

    fn open_unguarded(dir: &Path, opts: Option<Options>) -> Result<Store, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let open_err = |e: redb::Error| Error::Open {
            path: path.clone(),
            source: e,
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| open_err(e.into()))?;
        // Held by a store from here on, so that a damaged file's panic never drops the
        // database while unwinding (see `Drop for Store`).
        let mut store = Store {
            db: Some(db),
            path: path.clone(),
            bucket_ns: 0,
        };
        let want = opts.unwrap_or_default().bucket_ns;
        let txn = store.db().begin_write().map_err(|e| open_err(e.into()))?;
        let bucket_ns;
        {
            let mut meta = txn.open_table(META).map_err(|e| open_err(e.into()))?;
            let version = meta
                .get("format_version")
                .map_err(|e| open_err(e.into()))?
                .map(|v| v.value());
            match version {
                None => {
                    meta.insert("format_version", FORMAT_VERSION).map_err(dbe)?;
                    meta.insert("created", now_ns() as u64).map_err(dbe)?;
                    meta.insert("bucket_ns", want as u64).map_err(dbe)?;
                    bucket_ns = want;
                }
                Some(v) if v != FORMAT_VERSION => {
                    return Err(Error::Version {
                        path: path.clone(),
                        found: v,
                    });
                }
                Some(_) => {
                    let b = meta
                        .get("bucket_ns")
                        .map_err(dbe)?
                        .map(|v| v.value() as i64)
                        .ok_or(Error::Corrupt { what: "meta" })?;
                    if let Some(o) = opts
                        && o.bucket_ns != b
                    {
                        return Err(Error::Bucket {
                            path: path.clone(),
                            found: b / 1_000_000_000,
                            wanted: o.bucket_ns / 1_000_000_000,
                        });
                    }
                    bucket_ns = b;
                }
            }
            // Create every table so that readers find them.
            txn.open_table(NODES).map_err(dbe)?;
            txn.open_table(NODE_INFO).map_err(dbe)?;
            txn.open_table(EDGES).map_err(dbe)?;
            txn.open_table(RAW).map_err(dbe)?;
            txn.open_table(SOURCES).map_err(dbe)?;
            txn.open_table(PROGRESS).map_err(dbe)?;
        }
        txn.commit().map_err(|e| open_err(e.into()))?;
        store.bucket_ns = bucket_ns;
        Ok(store)
    }

    /// The database file.
    /// Runs a store operation, turning a panic inside redb (which asserts on some damaged
    /// files instead of returning an error) into [`Error::Damaged`] naming the file.
    fn guard<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            Err(Error::Damaged {
                path: self.path.clone(),
            })
        })
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is only taken out on drop")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bucket length, ns.
    pub fn bucket_ns(&self) -> i64 {
        self.bucket_ns
    }

    /// The bucket of a time.
    pub fn bucket_of(&self, t: Option<i64>) -> u64 {
        codec::bucket_of(t, self.bucket_ns)
    }

    /// Whether a file was ingested, partly ingested, or never seen.
    pub fn source_status(&self, key: &SourceKey) -> Result<SourceStatus, Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            let k = key.bytes();
            if let Some(v) = r
                .open_table(SOURCES)
                .map_err(dbe)?
                .get(&k[..])
                .map_err(dbe)?
            {
                let rec: SourceRecord = serde_json::from_str(v.value())
                    .map_err(|_| Error::Corrupt { what: "sources" })?;
                return Ok(SourceStatus::Done(rec));
            }
            if let Some(v) = r
                .open_table(PROGRESS)
                .map_err(dbe)?
                .get(&k[..])
                .map_err(dbe)?
            {
                return Ok(SourceStatus::Partial(v.value()));
            }
            Ok(SourceStatus::New)
        })
    }

    /// Merges one batch in one write transaction. `entity_info(e)` gives (key, JSON) of the
    /// caller's entity `e`. `flows_done` is the number of flows of `source` committed once
    /// this batch is; `finished` registers the source as completely ingested (removing its
    /// progress) in the same transaction. Raw flows older than `raw_window_ns` behind the
    /// newest stored are pruned (`0` keeps no raw flows).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_batch(
        &self,
        batch: &Batch,
        cache: &mut NodeCache,
        entity_info: &dyn Fn(u32) -> (String, String),
        source: &SourceKey,
        flows_done: u64,
        finished: Option<&str>,
        raw_window_ns: i64,
    ) -> Result<BatchResult, Error> {
        self.guard(|| {
            let mut res = BatchResult::default();
            let txn = self.db().begin_write().map_err(dbe)?;
            let mut staged: Vec<(u32, u32)> = Vec::new();
            {
                let mut meta = txn.open_table(META).map_err(dbe)?;
                let mut nodes = txn.open_table(NODES).map_err(dbe)?;
                let mut info = txn.open_table(NODE_INFO).map_err(dbe)?;
                let mut next_node =
                    meta.get("next_node").map_err(dbe)?.map_or(0, |v| v.value()) as u32;
                let mut node_of = |e: u32, staged: &mut Vec<(u32, u32)>| -> Result<u32, Error> {
                    if let Some(&n) = cache.ids.get(&e) {
                        return Ok(n);
                    }
                    if let Some(&(_, n)) = staged.iter().find(|(x, _)| *x == e) {
                        return Ok(n);
                    }
                    let (key, json) = entity_info(e);
                    let existing = nodes.get(key.as_str()).map_err(dbe)?.map(|v| v.value());
                    let n = match existing {
                        Some(n) => n,
                        None => {
                            let n = next_node;
                            next_node += 1;
                            nodes.insert(key.as_str(), n).map_err(dbe)?;
                            n
                        }
                    };
                    // The identity snapshot: the latest inventory's view of the entity.
                    info.insert(n, json.as_str()).map_err(dbe)?;
                    staged.push((e, n));
                    Ok(n)
                };
                let mut rows: Vec<([u8; codec::KEY_LEN], &EdgeStats)> =
                    Vec::with_capacity(batch.edges.len());
                for (k, v) in &batch.edges {
                    let mut k = *k;
                    k.src = node_of(k.src, &mut staged)?;
                    k.dst = node_of(k.dst, &mut staged)?;
                    rows.push((k.encode(), v));
                }
                let mut raw_rows = Vec::new();
                if raw_window_ns > 0 {
                    for r in &batch.raw {
                        let mut r = *r;
                        r.src_node = node_of(r.src_node, &mut staged)?;
                        r.dst_node = node_of(r.dst_node, &mut staged)?;
                        raw_rows.push(r);
                    }
                }
                meta.insert("next_node", next_node as u64).map_err(dbe)?;
                let newest_edge = batch
                    .edges
                    .values()
                    .map(|v| v.last)
                    .max()
                    .unwrap_or(i64::MIN);
                if newest_edge != i64::MIN {
                    let old = meta
                        .get("newest_time")
                        .map_err(dbe)?
                        .map_or(i64::MIN, |v| v.value() as i64);
                    if newest_edge > old {
                        meta.insert("newest_time", newest_edge as u64)
                            .map_err(dbe)?;
                    }
                }
                // Sorted keys make B-tree updates local.
                rows.sort_unstable_by_key(|a| a.0);
                let mut edges = txn.open_table(EDGES).map_err(dbe)?;
                for (k, v) in rows {
                    let old = edges
                        .get(&k[..])
                        .map_err(dbe)?
                        .map(|g| EdgeStats::decode(g.value()));
                    let merged = match old {
                        Some(Some(mut o)) => {
                            res.updated_edges += 1;
                            o.merge(v);
                            o
                        }
                        Some(None) => return Err(Error::Corrupt { what: "edge row" }),
                        None => {
                            res.new_edges += 1;
                            *v
                        }
                    };
                    edges.insert(&k[..], &merged.encode()[..]).map_err(dbe)?;
                }
                if raw_window_ns > 0 {
                    // One row per batch: (oldest time, sequence) → newest time + the batch's
                    // flows sorted by time (one B-tree insert per batch, not per flow).
                    let mut raw = txn.open_table(RAW).map_err(dbe)?;
                    let seq = meta.get("next_raw").map_err(dbe)?.map_or(0, |v| v.value());
                    let mut count = meta.get("raw_count").map_err(dbe)?.map_or(0, |v| v.value());
                    let mut newest = meta
                        .get("raw_newest")
                        .map_err(dbe)?
                        .map_or(i64::MIN, |v| v.value() as i64);
                    raw_rows.sort_by_key(|r| r.time);
                    if let (Some(first), Some(last)) = (raw_rows.first(), raw_rows.last()) {
                        let chunk = codec::encode_chunk(&raw_rows);
                        raw.insert(&codec::raw_key(first.time, seq)[..], &chunk[..])
                            .map_err(dbe)?;
                        meta.insert("next_raw", seq + 1).map_err(dbe)?;
                        newest = newest.max(last.time);
                        res.raw_written = raw_rows.len() as u64;
                        count += res.raw_written;
                    }
                    if newest != i64::MIN {
                        meta.insert("raw_newest", newest as u64).map_err(dbe)?;
                        let cut = newest.saturating_sub(raw_window_ns);
                        let cutoff = codec::raw_key(cut, 0);
                        // Chunks starting before the cutoff: dropped whole, or rewritten without
                        // their flows older than the cutoff.
                        let mut touched: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                        for row in raw.range::<&[u8]>(..&cutoff[..]).map_err(dbe)? {
                            let (k, v) = row.map_err(dbe)?;
                            touched.push((k.value().to_vec(), v.value().to_vec()));
                        }
                        let mut pruned = 0u64;
                        for (k, v) in touched {
                            let flows = codec::decode_chunk(&v)
                                .ok_or(Error::Corrupt { what: "raw flows" })?;
                            let keep: Vec<RawFlow> =
                                flows.iter().filter(|f| f.time >= cut).copied().collect();
                            pruned += (flows.len() - keep.len()) as u64;
                            raw.remove(&k[..]).map_err(dbe)?;
                            if let Some(first) = keep.first() {
                                let seq_part: [u8; 8] = k[8..16]
                                    .try_into()
                                    .map_err(|_| Error::Corrupt { what: "raw key" })?;
                                let key = codec::raw_key(first.time, u64::from_be_bytes(seq_part));
                                raw.insert(&key[..], &codec::encode_chunk(&keep)[..])
                                    .map_err(dbe)?;
                            }
                        }
                        count = count.saturating_sub(pruned);
                        res.raw_pruned = pruned;
                    }
                    meta.insert("raw_count", count).map_err(dbe)?;
                }
                let k = source.bytes();
                let mut progress = txn.open_table(PROGRESS).map_err(dbe)?;
                match finished {
                    Some(name) => {
                        progress.remove(&k[..]).map_err(dbe)?;
                        let id = meta
                            .get("next_ingest")
                            .map_err(dbe)?
                            .map_or(1, |v| v.value());
                        meta.insert("next_ingest", id + 1).map_err(dbe)?;
                        let rec = SourceRecord {
                            ingest_id: id,
                            name: name.to_string(),
                            flows: flows_done,
                            at: now_ns(),
                        };
                        let json = serde_json::to_string(&rec).unwrap_or_default();
                        txn.open_table(SOURCES)
                            .map_err(dbe)?
                            .insert(&k[..], json.as_str())
                            .map_err(dbe)?;
                    }
                    None => {
                        progress.insert(&k[..], flows_done).map_err(dbe)?;
                    }
                }
            }
            txn.commit().map_err(dbe)?;
            cache.ids.extend(staged);
            Ok(res)
        })
    }

    /// The newest time of any record stored (end time where records have one).
    pub fn newest(&self) -> Result<Option<i64>, Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            let meta = r.open_table(META).map_err(dbe)?;
            Ok(meta
                .get("newest_time")
                .map_err(dbe)?
                .map(|v| v.value() as i64))
        })
    }

    /// Every node.
    pub fn nodes(&self) -> Result<Vec<Node>, Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            let info = r.open_table(NODE_INFO).map_err(dbe)?;
            let mut out = Vec::new();
            for row in r.open_table(NODES).map_err(dbe)?.iter().map_err(dbe)? {
                let (k, v) = row.map_err(dbe)?;
                let id = v.value();
                let json = info
                    .get(id)
                    .map_err(dbe)?
                    .map(|g| g.value().to_string())
                    .unwrap_or_default();
                out.push(Node {
                    id,
                    key: k.value().to_string(),
                    info: json,
                });
            }
            out.sort_by_key(|n| n.id);
            Ok(out)
        })
    }

    /// Calls `f` for every edge row in the window, in key order (bucket first).
    pub fn for_each_edge(
        &self,
        window: Window,
        f: &mut dyn FnMut(EdgeKey, EdgeStats),
    ) -> Result<(), Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            let t = r.open_table(EDGES).map_err(dbe)?;
            let (lo, hi) = match window {
                Window::All => (0u64, u64::MAX),
                Window::Between(from, until) => {
                    let lo = self.bucket_of(Some(from));
                    let hi = self.bucket_of(Some(until.saturating_sub(1)));
                    (lo, hi)
                }
            };
            let lo_k = EdgeKey::first_of(lo).encode();
            let iter = if hi == u64::MAX {
                t.range::<&[u8]>(&lo_k[..]..).map_err(dbe)?
            } else {
                let hi_k = EdgeKey::first_of(hi + 1).encode();
                t.range::<&[u8]>(&lo_k[..]..&hi_k[..]).map_err(dbe)?
            };
            for row in iter {
                let (k, v) = row.map_err(dbe)?;
                let k = EdgeKey::decode(k.value()).ok_or(Error::Corrupt { what: "edge key" })?;
                let v = EdgeStats::decode(v.value()).ok_or(Error::Corrupt { what: "edge row" })?;
                f(k, v);
            }
            Ok(())
        })
    }

    /// Calls `f` for every raw flow kept, oldest first.
    pub fn for_each_raw(&self, f: &mut dyn FnMut(RawFlow)) -> Result<(), Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            for row in r.open_table(RAW).map_err(dbe)?.iter().map_err(dbe)? {
                let (_, v) = row.map_err(dbe)?;
                for flow in
                    codec::decode_chunk(v.value()).ok_or(Error::Corrupt { what: "raw flows" })?
                {
                    f(flow);
                }
            }
            Ok(())
        })
    }

    /// Ingested sources, by ingest id.
    pub fn sources(&self) -> Result<Vec<SourceRecord>, Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            let mut out = Vec::new();
            for row in r.open_table(SOURCES).map_err(dbe)?.iter().map_err(dbe)? {
                let (_, v) = row.map_err(dbe)?;
                out.push(
                    serde_json::from_str::<SourceRecord>(v.value())
                        .map_err(|_| Error::Corrupt { what: "sources" })?,
                );
            }
            out.sort_by_key(|s| s.ingest_id);
            Ok(out)
        })
    }

    /// Table sizes.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.guard(|| {
            let r = self.db().begin_read().map_err(dbe)?;
            Ok(Stats {
                format_version: FORMAT_VERSION,
                bucket_ns: self.bucket_ns,
                nodes: r.open_table(NODES).map_err(dbe)?.len().map_err(dbe)?,
                edges: r.open_table(EDGES).map_err(dbe)?.len().map_err(dbe)?,
                raw_flows: r
                    .open_table(META)
                    .map_err(dbe)?
                    .get("raw_count")
                    .map_err(dbe)?
                    .map_or(0, |v| v.value()),
                sources: r.open_table(SOURCES).map_err(dbe)?.len().map_err(dbe)?,
                partial_sources: r.open_table(PROGRESS).map_err(dbe)?.len().map_err(dbe)?,
            })
        })
    }
}
