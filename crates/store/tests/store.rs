//! The store on its own: aggregation sums, window queries, the source registry and progress,
//! the raw window, format checks and corrupt files.

use bulkhead_store::{
    Batch, EdgeKey, EdgeStats, NodeCache, RawFlow, SourceKey, SourceStatus, Store, VerdictClass,
    Window,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const H: i64 = 3600 * 1_000_000_000;
const T0: i64 = 1_764_201_600 * 1_000_000_000; // 2025-11-27T00:00:00Z

fn info(e: u32) -> (String, String) {
    (format!("node-{e}"), format!("{{\"e\":{e}}}"))
}

fn key(n: u8) -> SourceKey {
    SourceKey {
        sha256: [n; 32],
        size: n as u64,
    }
}

fn batch(store: &Store, flows: &[(i64, u32, u32, u16, u64, VerdictClass)]) -> Batch {
    let mut b = Batch::default();
    for &(t, s, d, port, bytes, v) in flows {
        b.add(
            EdgeKey {
                bucket: store.bucket_of(Some(t)),
                src: s,
                dst: d,
                proto: 6,
                port,
            },
            &EdgeStats::one(Some(t), None, bytes, 1, v),
        );
        b.raw.push(RawFlow {
            time: t,
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: 40000,
            dst_port: port,
            proto: 6,
            bytes,
            packets: 1,
            verdict: 1,
            src_node: s,
            dst_node: d,
        });
        b.flows += 1;
    }
    b
}

/// (src, dst, port) → (flows, bytes, first, last, denied).
type Edges = BTreeMap<(String, String, u16), (u64, u64, i64, i64, u64)>;

fn edges(store: &Store, w: Window) -> Edges {
    let names: BTreeMap<u32, String> = store
        .nodes()
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.key))
        .collect();
    let mut out = BTreeMap::new();
    store
        .for_each_edge(w, &mut |k, v| {
            let e = out
                .entry((names[&k.src].clone(), names[&k.dst].clone(), k.port))
                .or_insert((0, 0, i64::MAX, i64::MIN, 0));
            e.0 += v.flows;
            e.1 += v.bytes;
            e.2 = e.2.min(v.first);
            e.3 = e.3.max(v.last);
            e.4 += v.denied;
        })
        .unwrap();
    out
}

#[test]
fn aggregation_sums_across_batches_and_windows_sum_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let mut cache = NodeCache::default();
    use VerdictClass::*;
    let b1 = batch(
        &store,
        &[
            (T0 + 10, 1, 2, 443, 100, Allowed),
            (T0 + 20, 1, 2, 443, 50, Denied),
            (T0 + H + 5, 1, 2, 443, 7, Allowed),
        ],
    );
    let b2 = batch(
        &store,
        &[
            (T0 + 2 * H + 1, 1, 2, 443, 3, Allowed),
            (T0 + 30, 3, 2, 53, 1, Unknown),
        ],
    );
    store
        .commit_batch(&b1, &mut cache, &info, &key(1), 3, None, 24 * H)
        .unwrap();
    assert_eq!(
        store.source_status(&key(1)).unwrap(),
        SourceStatus::Partial(3)
    );
    store
        .commit_batch(&b2, &mut cache, &info, &key(1), 5, Some("f.json"), 24 * H)
        .unwrap();
    match store.source_status(&key(1)).unwrap() {
        SourceStatus::Done(r) => {
            assert_eq!((r.name.as_str(), r.flows, r.ingest_id), ("f.json", 5, 1))
        }
        s => panic!("{s:?}"),
    }
    let all = edges(&store, Window::All);
    let k = ("node-1".to_string(), "node-2".to_string(), 443);
    assert_eq!(
        all[&k],
        (4, 160, T0 + 10, T0 + 2 * H + 1, 1),
        "sums over buckets"
    );
    // The first hour only.
    let first = edges(&store, Window::Between(T0, T0 + H));
    assert_eq!(first[&k], (2, 150, T0 + 10, T0 + 20, 1));
    assert_eq!(first.len(), 2);
    // A window covering the second and third hours.
    let later = edges(&store, Window::Between(T0 + H, T0 + 3 * H));
    assert_eq!(later[&k].0, 2);
    assert_eq!(later.len(), 1);
    // Reopening keeps everything; a different bucket is refused.
    drop(store);
    let store = Store::open(dir.path(), None).unwrap();
    assert_eq!(edges(&store, Window::All), all);
    assert_eq!(store.stats().unwrap().raw_flows, 5);
    drop(store);
    let e = Store::open(
        dir.path(),
        Some(bulkhead_store::Options {
            bucket_ns: 60 * 1_000_000_000,
        }),
    )
    .err()
    .expect("bucket mismatch");
    assert!(e.to_string().contains("3600 s buckets"), "{e}");
}

#[test]
fn raw_window_is_pruned_behind_the_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).unwrap();
    let mut cache = NodeCache::default();
    let b = batch(
        &store,
        &[
            (T0, 1, 2, 80, 1, VerdictClass::Allowed),
            (T0 + 5 * H, 1, 2, 80, 1, VerdictClass::Allowed),
            (T0 + 6 * H, 1, 2, 80, 1, VerdictClass::Allowed),
        ],
    );
    let r = store
        .commit_batch(&b, &mut cache, &info, &key(2), 3, None, 2 * H)
        .unwrap();
    assert_eq!((r.raw_written, r.raw_pruned), (3, 1));
    let mut times = Vec::new();
    store.for_each_raw(&mut |f| times.push(f.time)).unwrap();
    assert_eq!(times, [T0 + 5 * H, T0 + 6 * H]);
    // Edges are not pruned.
    assert_eq!(edges(&store, Window::All).values().next().unwrap().0, 3);
    // A later batch prunes inside an earlier one, flow by flow.
    let b = batch(
        &store,
        &[(T0 + 7 * H + 30, 1, 2, 80, 1, VerdictClass::Allowed)],
    );
    let r = store
        .commit_batch(&b, &mut cache, &info, &key(2), 4, None, 2 * H)
        .unwrap();
    assert_eq!((r.raw_written, r.raw_pruned), (1, 1));
    let mut times = Vec::new();
    store.for_each_raw(&mut |f| times.push(f.time)).unwrap();
    assert_eq!(times, [T0 + 6 * H, T0 + 7 * H + 30]);
    assert_eq!(store.stats().unwrap().raw_flows, 2);
}

#[test]
fn a_truncated_or_foreign_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), None).unwrap();
        let mut cache = NodeCache::default();
        let b = batch(&store, &[(T0, 1, 2, 80, 1, VerdictClass::Allowed)]);
        store
            .commit_batch(&b, &mut cache, &info, &key(3), 1, Some("x"), H)
            .unwrap();
    }
    let db = dir.path().join(bulkhead_store::DB_FILE);
    let bytes = std::fs::read(&db).unwrap();
    for cut in [0usize, 7, 100, 512, 4096, bytes.len() / 2] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(bulkhead_store::DB_FILE),
            &bytes[..cut.min(bytes.len())],
        )
        .unwrap();
        // An empty file becomes a fresh store; any other cut is an error, never a panic.
        let r = Store::open(d.path(), None).and_then(|s| s.stats());
        if cut == 0 {
            assert!(r.is_ok(), "empty file: {r:?}");
        } else {
            let e = r.err().unwrap_or_else(|| panic!("cut at {cut} opened"));
            assert!(e.to_string().contains(bulkhead_store::DB_FILE), "{e}");
        }
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join(bulkhead_store::DB_FILE),
        b"this is not a database at all, just text\n".repeat(100),
    )
    .unwrap();
    assert!(
        Store::open(d.path(), None).is_err(),
        "a foreign file must not open"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// A file cut at any length (what a crash or a full disk leaves): open and read give errors
    /// or data, never a panic. (Arbitrary bit flips inside redb's pages are not covered: redb
    /// asserts on some of them, and its objects' destructors panic again while unwinding, which
    /// aborts; see docs/see.md.)
    #[test]
    fn truncated_files_never_panic(cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), None).unwrap();
            let mut cache = NodeCache::default();
            let b = batch(&store, &[(T0, 1, 2, 80, 1, VerdictClass::Allowed), (T0 + H, 2, 1, 53, 9, VerdictClass::Denied)]);
            store.commit_batch(&b, &mut cache, &info, &key(4), 2, Some("y"), H).unwrap();
        }
        let db = dir.path().join(bulkhead_store::DB_FILE);
        let mut bytes = std::fs::read(&db).unwrap();
        bytes.truncate(cut.index(bytes.len()));
        std::fs::write(&db, &bytes).unwrap();
        if let Ok(s) = Store::open(dir.path(), None) {
            let _ = s.nodes();
            let _ = s.for_each_edge(Window::All, &mut |_, _| {});
            let _ = s.for_each_raw(&mut |_| {});
            let _ = s.sources();
        }
    }
}
