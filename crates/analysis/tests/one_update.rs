//! `bench update` times one policy's update again and again: its counts must be the update's own,
//! the same from every repetition, and equal to a count made without the incremental engine.

use bulkhead_analysis::bench::one_update;
use bulkhead_core::model::{Direction, Layer, Peer};
use bulkhead_core::{Endpoint, Engine};
use bulkhead_k8s::Loaded;
use std::path::PathBuf;

/// A directory removed when dropped, also when a test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small generated cluster written to a directory of its own.
fn cluster_dir(tag: &str) -> TempDir {
    let p = bulkhead_synth::Params {
        workloads: 90,
        namespaces: 6,
        policies: 25,
        anps: 6,
        banp: true,
        seed: 5,
    };
    let g = bulkhead_synth::generate(&p).expect("generate");
    let dir =
        std::env::temp_dir().join(format!("bulkhead-one-update-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = TempDir(dir);
    for f in &g.files {
        std::fs::write(dir.0.join(&f.name), &f.text).expect("write");
    }
    dir
}

/// Direction verdicts (subject, peer) that differ between two engines over the same universe.
fn differing(a: &Engine<'_>, b: &Engine<'_>) -> usize {
    let n = a.cluster().workloads.len();
    let mut count = 0;
    for dir in [Direction::Ingress, Direction::Egress] {
        let pieces = a.external_pieces(dir);
        assert_eq!(pieces, b.external_pieces(dir), "the universes differ");
        let peers = (0..n)
            .map(Endpoint::Workload)
            .chain(pieces.into_iter().map(Endpoint::External));
        for peer in peers.collect::<Vec<_>>() {
            for s in 0..n {
                if a.direction_allowed(dir, s, peer) != b.direction_allowed(dir, s, peer) {
                    count += 1;
                }
            }
        }
    }
    count
}

#[test]
fn a_removal_counts_what_removing_the_policy_changes() {
    let tmp = cluster_dir("removal");
    let dir = &tmp.0;
    let cluster = Loaded::from_paths(&[dir.as_path()]).cluster;
    // Admin policies without address peers (removing one leaves the external pieces alone, so
    // both engines share one universe), tried until one changes something.
    let admin: Vec<usize> = (0..cluster.policies.len())
        .filter(|&i| {
            let p = &cluster.policies[i];
            p.layer == Layer::Admin
                && [Direction::Ingress, Direction::Egress].iter().all(|&d| {
                    (p.rules(d).unwrap_or_default().iter())
                        .all(|r| !r.peers.iter().any(|x| matches!(x, Peer::Ips(_))))
                })
        })
        .collect();
    assert!(
        !admin.is_empty(),
        "the generated cluster has admin policies"
    );
    let with = Engine::new(&cluster);
    let mut checked = 0;
    for i in admin {
        let name = cluster.policies[i].name.clone();
        let mut without = cluster.clone();
        without.policies.remove(i);
        let expected = differing(&with, &Engine::new(&without));
        let b = one_update(dir, &name, true, 3, None).expect("bench update");
        assert_eq!(b.update, format!("removal of {name}"));
        assert_eq!((b.reps, b.cpu_ms.len()), (3, 3));
        assert!(b.cpu_least_ms <= b.cpu_median_ms && b.cpu_median_ms <= b.cpu_max_ms);
        assert_eq!(b.changed_pairs, expected, "removal of {name}");
        checked += usize::from(expected > 0);
        if checked == 2 {
            break;
        }
    }
    assert!(checked > 0, "no removal changed anything");
}

#[test]
fn after_the_sample_and_unknown_names() {
    let tmp = cluster_dir("sample");
    let dir = &tmp.0;
    let fresh = one_update(dir, "anp-0001", false, 2, None).expect("bench update");
    let sampled = one_update(dir, "anp-0001", false, 2, Some(11)).expect("after the sample");
    assert_eq!(fresh.update, "change of anp-0001");
    assert_eq!(sampled.after_sample, Some(11));
    assert_eq!((fresh.after_sample, fresh.cpu_ms.len()), (None, 2));
    let err = one_update(dir, "no-such-policy", true, 1, None).unwrap_err();
    assert!(err.contains("no policy named no-such-policy"), "{err}");
}
