//! The generated manifests load with Bulkhead's own loader, with the counts asked for, and the
//! same parameters always give the same bytes.

use bulkhead_k8s::Loaded;
use bulkhead_synth::{Generated, Params, generate, write_dir};
use std::path::PathBuf;

fn params(workloads: usize, namespaces: usize, policies: usize, anps: usize, seed: u64) -> Params {
    Params {
        workloads,
        namespaces,
        policies,
        anps,
        banp: true,
        seed,
    }
}

/// A fresh scratch directory under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bulkhead-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn load(g: &Generated, name: &str) -> Loaded {
    let dir = scratch(name);
    write_dir(g, &dir, false).expect("writes");
    let loaded = Loaded::from_paths(&[&dir]);
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let p = params(400, 12, 80, 6, 42);
    let a = generate(&p).expect("generates");
    let b = generate(&p).expect("generates");
    assert_eq!(a, b, "generating twice with one seed gives identical files");
    let c = generate(&Params {
        seed: 43,
        ..p.clone()
    })
    .expect("generates");
    assert_ne!(a.files, c.files, "another seed gives another cluster");

    // And through the file system, byte for byte.
    let (d1, d2) = (scratch("det1"), scratch("det2"));
    write_dir(&a, &d1, false).expect("writes");
    write_dir(&b, &d2, false).expect("writes");
    for f in &a.files {
        let x = std::fs::read(d1.join(&f.name)).expect("reads");
        let y = std::fs::read(d2.join(&f.name)).expect("reads");
        assert!(x == y, "{} differs between two runs", f.name);
    }
    let _ = std::fs::remove_dir_all(&d1);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn parts_draw_from_their_own_streams() {
    let a = generate(&params(300, 10, 50, 4, 9)).expect("generates");
    let b = generate(&params(300, 10, 120, 20, 9)).expect("generates");
    let file = |g: &Generated, n: &str| {
        g.files
            .iter()
            .find(|f| f.name == n)
            .map(|f| f.text.clone())
            .expect("file exists")
    };
    // The header names the parameters; the objects after it must be identical.
    let body = |t: String| {
        t.split_once('\n')
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    for n in ["namespaces.yaml", "workloads.yaml"] {
        assert_eq!(
            body(file(&a, n)),
            body(file(&b, n)),
            "{n} does not depend on the number of policies"
        );
    }
}

#[test]
fn loads_without_errors_with_the_right_counts() {
    for (w, ns, np, anps, seed) in [
        (1, 1, 1, 1, 0),
        (50, 4, 10, 2, 1),
        (600, 12, 120, 15, 7),
        (30, 40, 0, 0, 3),
    ] {
        let p = params(w, ns, np, anps, seed);
        let g = generate(&p).expect("generates");
        let loaded = load(&g, &format!("counts-{w}-{ns}-{np}-{anps}"));
        let what = format!("{p:?}");
        assert!(
            loaded.errors.is_empty(),
            "{what}: errors: {:?}",
            loaded
                .errors
                .iter()
                .take(3)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        assert!(
            loaded.warnings.is_empty(),
            "{what}: warnings: {:?}",
            &loaded.warnings[..loaded.warnings.len().min(3)]
        );
        let c = &loaded.cluster;
        assert_eq!(c.workloads.len(), w, "{what}: workloads");
        assert_eq!(c.namespaces.len(), ns, "{what}: namespaces");
        let count = |kind: &str| c.policies.iter().filter(|p| p.kind == kind).count();
        assert_eq!(count("NetworkPolicy"), np, "{what}: NetworkPolicies");
        assert_eq!(count("AdminNetworkPolicy"), anps, "{what}: ANPs");
        assert_eq!(count("BaselineAdminNetworkPolicy"), 1, "{what}: the BANP");
        for pol in c.policies.iter().filter(|p| p.kind == "NetworkPolicy") {
            for (dir, rules) in [("ingress", &pol.ingress), ("egress", &pol.egress)] {
                let n = rules.as_ref().map_or(0, |r| r.len());
                assert!(
                    (1..=3).contains(&n),
                    "{what}: {} has {n} {dir} rules",
                    pol.display_name()
                );
            }
        }
    }
}

#[test]
fn the_shape_holds_in_the_large() {
    let p = params(1200, 30, 600, 40, 11);
    let g = generate(&p).expect("generates");
    let loaded = load(&g, "shape");
    assert!(loaded.errors.is_empty(), "no errors");
    let c = &loaded.cluster;
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of as f64;

    for w in &c.workloads {
        for key in ["app", "tier", "team", "env"] {
            assert!(
                w.labels.contains_key(key),
                "{} lacks label {key}",
                w.display_name()
            );
        }
        assert!(
            (1..=3).contains(&w.named_ports.len()),
            "{} has {} named ports",
            w.display_name(),
            w.named_ports.len()
        );
    }
    let mut apps: Vec<&String> = c
        .workloads
        .iter()
        .filter_map(|w| w.labels.get("app"))
        .collect();
    apps.sort();
    apps.dedup();
    assert_eq!(apps.len(), c.workloads.len(), "app is unique per workload");
    for (name, labels) in &c.namespaces {
        assert!(
            labels.contains_key("team") && labels.contains_key("env"),
            "namespace {name} has team and env"
        );
    }

    // Proportions, on the text of a bigger cluster (loading it would be slow in debug builds).
    let big = generate(&params(4000, 80, 4000, 60, 11)).expect("generates");
    let text = |name: &str| {
        &big.files
            .iter()
            .find(|f| f.name == name)
            .expect("file exists")
            .text
    };
    let pci = text("workloads.yaml").matches("pci: \"true\"").count();
    let pci = pct(pci, 4000);
    assert!(
        (4.0..=6.0).contains(&pci),
        "pci on {pci:.1} % of workloads, want about 5"
    );
    let docs: Vec<&str> = text("netpols.yaml").split("---\n").skip(1).collect();
    assert_eq!(docs.len(), 4000);
    let with = |needle: &str| {
        pct(
            docs.iter().filter(|d| d.contains(needle)).count(),
            docs.len(),
        )
    };
    let ips = with("ipBlock");
    assert!(
        (8.5..=11.5).contains(&ips),
        "ipBlocks in {ips:.1} % of policies, want about 10"
    );
    let named = docs
        .iter()
        .filter(|d| {
            d.lines().any(|l| {
                l.trim_start().starts_with("- {") && l.contains("port: ") && {
                    let v = l.split("port: ").nth(1).unwrap_or("");
                    v.starts_with(|ch: char| ch.is_ascii_alphabetic())
                }
            })
        })
        .count();
    let named = pct(named, docs.len());
    assert!(
        (3.0..=7.0).contains(&named),
        "named ports in {named:.1} % of policies, want about 5"
    );
    for needle in [
        "endPort",
        "matchExpressions",
        "except",
        "protocol: UDP",
        "protocol: SCTP",
    ] {
        assert!(with(needle) > 0.0, "some policy uses {needle}");
    }
    let anps = &big
        .files
        .iter()
        .find(|f| f.name == "anps.yaml")
        .expect("anps")
        .text;
    for needle in [
        "action: Allow",
        "action: Deny",
        "action: Pass",
        "portRange",
        "namedPort",
        "networks",
    ] {
        assert!(anps.contains(needle), "some ANP uses {needle}");
    }
}

#[test]
fn big_clusters_are_split_and_force_replaces_them() {
    let big = generate(&params(12_000, 30, 0, 0, 1)).expect("generates");
    let names: Vec<&str> = big.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "namespaces.yaml",
            "workloads-001.yaml",
            "workloads-002.yaml",
            "workloads-003.yaml",
            "anps.yaml"
        ]
    );
    let dir = scratch("force");
    write_dir(&big, &dir, false).expect("writes");
    std::fs::write(dir.join("mine.txt"), "kept").expect("writes");
    let small = generate(&params(20, 2, 5, 0, 1)).expect("generates");
    assert!(
        write_dir(&small, &dir, false).is_err(),
        "a non-empty directory is refused"
    );
    write_dir(&small, &dir, true).expect("--force replaces");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .expect("lists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "anps.yaml",
            "mine.txt",
            "namespaces.yaml",
            "netpols.yaml",
            "workloads.yaml"
        ],
        "old workload files are gone, other files are kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
