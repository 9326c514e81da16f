//! Meaning preserved: compiled manifests plus a cluster's namespaces and pods, re-imported with
//! the Kubernetes engine (`bulkhead-k8s` + `bulkhead-core`'s `Engine`), compared with the intent
//! evaluator on every pair and port at every boundary.

#![allow(dead_code)]

use bulkhead_core::{Endpoint, Engine, IpRange, Protocol};
use bulkhead_intent::{Evaluator, Identity, IdentityKind, Intent, SideMode, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The cluster's namespaces (with labels) and pods, as manifests.
pub fn cluster_yaml(ids: &[Identity]) -> String {
    let mut ns: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut out = String::new();
    for id in ids {
        if let IdentityKind::Workload {
            namespace,
            namespace_labels,
        } = &id.kind
        {
            ns.entry(namespace.clone())
                .or_insert_with(|| namespace_labels.clone());
        }
    }
    for (n, labels) in &ns {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n  labels: {}\n",
            serde_json::to_string(labels).unwrap()
        );
    }
    for id in ids {
        let IdentityKind::Workload { namespace, .. } = &id.kind else {
            continue;
        };
        let name = id.name.rsplit('/').next().unwrap();
        let ports: Vec<serde_json::Value> = id
            .named_ports
            .iter()
            .map(|p| {
                serde_json::json!({"name": p.name, "containerPort": p.port, "protocol": p.protocol.as_str()})
            })
            .collect();
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {}\nspec:\n  containers:\n    - name: c\n      image: x\n      ports: {}\n",
            serde_json::to_string(&id.labels).unwrap(),
            serde_json::to_string(&ports).unwrap()
        );
    }
    out
}

/// The ports worth checking for `proto`: every boundary of every rule's ranges (both sides of
/// it), the named ports' numbers, and the ends of the range.
pub fn probe_ports(ev: &Evaluator, ids: &[Identity], proto: Protocol) -> Vec<u16> {
    let mut v: Vec<u32> = vec![1, 2, 65534, 65535];
    for b in ev.port_boundaries(proto) {
        v.extend([b.saturating_sub(1), b, b + 1]);
    }
    for id in ids {
        for p in &id.named_ports {
            v.extend([p.port as u32 - 1, p.port as u32, p.port as u32 + 1]);
        }
    }
    let mut out: Vec<u16> = v
        .into_iter()
        .filter(|&p| (1..=65535).contains(&p))
        .map(|p| p as u16)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// One disagreement.
#[derive(Debug)]
pub struct Mismatch {
    pub src: String,
    pub dst: String,
    pub proto: Protocol,
    pub port: u16,
    pub intent: Verdict,
    pub k8s: bool,
}

/// Writes `files` and the cluster into a temporary directory, loads them with the Kubernetes
/// engine and compares every pair with a pod on at least one end (two addresses are no
/// connection of a cluster) on every probe port of every protocol. Returns the pairs checked
/// and the first mismatches.
pub fn compare(
    intent: &Intent,
    ids: &[Identity],
    files: &BTreeMap<String, String>,
) -> Result<usize, (Vec<Mismatch>, String)> {
    compare_sides(intent, ids, files, false)
}

/// As [`compare`]; with `pod_sides_only`, hosts' own sides (enforced by the nftables target,
/// not by Kubernetes) are left out: expected is "no pod side drops", a pod side dropping when
/// the pod is enforced and the deciding rule is not an `allow`.
pub fn compare_sides(
    intent: &Intent,
    ids: &[Identity],
    files: &BTreeMap<String, String>,
    pod_sides_only: bool,
) -> Result<usize, (Vec<Mismatch>, String)> {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        std::fs::write(dir.path().join(rel), text).unwrap();
    }
    std::fs::write(dir.path().join("cluster.yaml"), cluster_yaml(ids)).unwrap();
    let loaded = bulkhead_k8s::Loaded::from_paths(&[dir.path()]);
    if !loaded.errors.is_empty() {
        return Err((
            Vec::new(),
            format!(
                "re-import errors: {:?}",
                loaded
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        ));
    }
    let engine = Engine::new(&loaded.cluster);
    let wl: BTreeMap<(String, String), usize> = loaded
        .cluster
        .workloads
        .iter()
        .enumerate()
        .map(|(i, w)| ((w.namespace.clone(), w.name.clone()), i))
        .collect();
    let endpoint = |id: &Identity| -> Endpoint {
        match &id.kind {
            IdentityKind::Workload { namespace, .. } => {
                let name = id.name.rsplit('/').next().unwrap().to_string();
                Endpoint::Workload(wl[&(namespace.clone(), name)])
            }
            _ => Endpoint::External(match id.addresses[0] {
                IpAddr::V4(a) => IpRange::V4(u32::from(a), u32::from(a)),
                IpAddr::V6(a) => IpRange::V6(u128::from(a), u128::from(a)),
            }),
        }
    };
    let ev = Evaluator::new(intent).unwrap();
    let ports: Vec<(Protocol, Vec<u16>)> = Protocol::ALL
        .iter()
        .map(|&p| (p, probe_ports(&ev, ids, p)))
        .collect();
    let profiles: Vec<_> = ids.iter().map(|i| ev.profile(i)).collect();
    let mut bad = Vec::new();
    let mut pairs = 0;
    for (si, s) in ids.iter().enumerate() {
        for (di, d) in ids.iter().enumerate() {
            let pod = |i: &Identity| matches!(i.kind, IdentityKind::Workload { .. });
            if si == di || !(pod(s) || pod(d)) {
                continue;
            }
            pairs += 1;
            let allowed = engine.allowed(endpoint(s), endpoint(d));
            for (proto, ps) in &ports {
                for &port in ps {
                    let dec = ev.decide_profiles(&profiles[si], &profiles[di], *proto, port);
                    let v = dec.verdict;
                    let expected = if pod_sides_only {
                        let allow = dec
                            .rule
                            .is_some_and(|r| r.action == bulkhead_intent::Action::Allow);
                        let drops = |i: usize| {
                            pod(&ids[i]) && profiles[i].mode == SideMode::Enforce && !allow
                        };
                        !drops(si) && !drops(di)
                    } else {
                        v != Verdict::Deny
                    };
                    let k = allowed.contains(*proto, port);
                    if expected != k && bad.len() < 5 {
                        bad.push(Mismatch {
                            src: s.name.clone(),
                            dst: d.name.clone(),
                            proto: *proto,
                            port,
                            intent: v,
                            k8s: k,
                        });
                    }
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(pairs)
    } else {
        Err((bad, String::new()))
    }
}

/// Compiled files and a cluster, loaded with the Kubernetes engine, for asking single questions.
pub struct Reimported {
    pub engine: Engine<'static>,
    index: BTreeMap<String, usize>,
}

impl Reimported {
    pub fn new(ids: &[Identity], files: &BTreeMap<String, String>) -> Reimported {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            std::fs::write(dir.path().join(rel), text).unwrap();
        }
        std::fs::write(dir.path().join("cluster.yaml"), cluster_yaml(ids)).unwrap();
        let loaded = bulkhead_k8s::Loaded::from_paths(&[dir.path()]);
        assert!(loaded.errors.is_empty(), "re-import: {:?}", loaded.errors);
        let index = loaded
            .cluster
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("{}/{}", w.namespace, w.name), i))
            .collect();
        Reimported {
            engine: Engine::owned(loaded.cluster),
            index,
        }
    }

    /// `ns/name` of a pod, or an address.
    pub fn allows(&self, src: &str, dst: &str, proto: Protocol, port: u16) -> bool {
        let ep = |s: &str| match self.index.get(s) {
            Some(&i) => Endpoint::Workload(i),
            None => match s.parse::<IpAddr>().expect("a pod name or an address") {
                IpAddr::V4(a) => Endpoint::External(IpRange::V4(u32::from(a), u32::from(a))),
                IpAddr::V6(a) => Endpoint::External(IpRange::V6(u128::from(a), u128::from(a))),
            },
        };
        self.engine.allowed(ep(src), ep(dst)).contains(proto, port)
    }
}
