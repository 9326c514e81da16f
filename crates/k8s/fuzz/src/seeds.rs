//! The seed corpus: small hand-written manifests and values, and structured inputs found by a
//! deterministic search. `cargo test --manifest-path crates/k8s/fuzz/Cargo.toml -- --ignored
//! write_seeds` writes them to `seeds/<target>/`; the other tests replay them.

use crate::skeleton::{self, Doc, Input, Obj};
use arbitrary::{Arbitrary, Unstructured};
use std::path::Path;

/// Hand-written manifests: `(file name, text, loads without errors or warnings)`.
pub const MANIFESTS: &[(&str, &str, bool)] = &[
    (
        "networkpolicy.yaml",
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-allow
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: api}}
      namespaceSelector:
        matchExpressions:
        - {key: team, operator: In, values: [red, blue]}
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.1.0.0/16]
    ports:
    - protocol: TCP
      port: 80
      endPort: 90
    - port: http
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{protocol: UDP, port: 53}]
"#,
        true,
    ),
    (
        "networkpolicy-deny-all.yaml",
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#,
        true,
    ),
    (
        "adminnetworkpolicy.yaml",
        r#"apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: cluster-control
spec:
  priority: 20
  subject:
    pods:
      namespaceSelector: {matchLabels: {team: red}}
      podSelector: {matchLabels: {app: web}}
  ingress:
  - name: allow-monitoring
    action: Allow
    from:
    - namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
    ports:
    - portNumber: {protocol: TCP, port: 9100}
    - namedPort: metrics
    - portRange: {protocol: UDP, start: 1000, end: 2000}
  - action: Pass
    from: [{pods: {namespaceSelector: {}, podSelector: {}}}]
  egress:
  - action: Deny
    to:
    - networks: [10.0.0.0/8, "fd00::/8"]
  - action: Allow
    to:
    - nodes: {matchLabels: {role: control-plane}}
"#,
        false, // nodes peers are not modelled: a warning
    ),
    (
        "baselineadminnetworkpolicy.yaml",
        r#"apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
  egress:
  - action: Allow
    to: [{pods: {namespaceSelector: {matchLabels: {team: red}}, podSelector: {}}}]
"#,
        true,
    ),
    (
        "pod.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-abcde
  namespace: shop
  labels: {app: web, tier: frontend}
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: web-7d9f
    controller: true
spec:
  containers:
  - name: main
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 8080
      protocol: TCP
status:
  phase: Running
  podIP: 10.244.1.7
"#,
        true,
    ),
    (
        "workloads.yaml",
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: red}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers: [{name: api, ports: [{name: grpc, containerPort: 9000}]}]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {job: nightly}}
        spec: {containers: [{name: c}]}
...
"#,
        true,
    ),
    (
        "list.yaml",
        r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {team: red}
- kind: Service
  metadata: {name: web, namespace: shop}
- kind: Pod
  metadata: {name: api-0, namespace: shop, labels: {app: api}}
  spec:
    containers:
    - name: c
      ports: [{name: grpc, containerPort: 9000}]
"#,
        true,
    ),
    (
        "podlist.json",
        r#"{
  "apiVersion": "v1",
  "kind": "PodList",
  "items": [
    {"metadata": {"name": "a", "namespace": "shop", "labels": {"app": "web"}},
     "status": {"podIP": "10.244.0.5"}},
    {"kind": "Namespace", "metadata": {"name": "shop"}}
  ]
}
{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "np", "namespace": "shop"},
 "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "8080"}]}]}}
"#,
        true,
    ),
    (
        "flow-on-marker.yaml",
        "--- {kind: Namespace, metadata: {name: a, labels: {x: \"1\",\ty: \"2\"}}}\n--- {kind: Pod, metadata: {name: p, namespace: a}, spec: {containers: [\n\t{name: c}]}}\n",
        true,
    ),
    (
        "crlf.yaml",
        "kind: Namespace\r\nmetadata: {name: a}\r\n---\r\nkind: NetworkPolicy\r\nmetadata: {name: x, namespace: a}\r\nspec:\r\n  podSelector: 7\r\n",
        false, // a malformed NetworkPolicy
    ),
    (
        "conversion-errors.yaml",
        r#"kind: NetworkPolicy
metadata: {name: bad}
spec:
  policyTypes: [Sideways]
---
kind: AdminNetworkPolicy
metadata: {name: bad}
spec:
  priority: 1001
  subject: {namespaces: {}}
---
kind: NetworkPolicy
metadata: {name: ports}
spec:
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]
    ports: [{port: 90, endPort: 80}, {protocol: icmp}]
---
kind: ConfigMap
metadata: {name: skipped}
"#,
        false,
    ),
];

/// Hand-written values for `parse_values`: `(file name, text)`.
pub const VALUES: &[(&str, &str)] = &[
    ("conn-all", "All Connections"),
    ("conn-none", "No Connections"),
    ("conn-tcp80", "TCP 80"),
    (
        "conn-multi",
        "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535",
    ),
    ("conn-lower", "tcp 80,8080-8090, UDP 53"),
    ("proto-udp", "udp"),
    ("cidr-v4", "10.1.2.3/16"),
    ("cidr-v6", "fd00::/8"),
    ("cidr-all", "0.0.0.0/0"),
    ("cidr-mapped", "::ffff:10.0.0.0/104"),
    ("req-in", "app\nIn\nweb\napi"),
    ("req-notin", "team\nNotIn\nred"),
    ("req-exists", "tier\nExists"),
    ("req-doesnotexist", "legacy\nDoesNotExist"),
    ("req-bad", "\nIn"),
];

/// A deterministic byte source for the structured search.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The kinds of structured seed wanted (by the first document).
const STRUCTURED_WANTED: &[&str] = &[
    "NetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "Pod",
    "Workload",
    "List",
];

/// How much of the conversion code a loaded input reaches: rules, peers, ports, selector
/// requirements, named ports and workloads.
fn depth(l: &bulkhead_k8s::Loaded) -> usize {
    use bulkhead_core::{NsMatch, Peer, PodMatch};
    let pod_match = |m: &PodMatch| {
        m.pods.requirements().len()
            + match &m.namespaces {
                NsMatch::Selector(s) => s.requirements().len(),
                NsMatch::Exact(_) => 0,
            }
    };
    let policies: usize = l
        .cluster
        .policies
        .iter()
        .map(|p| {
            let rules = p.ingress.iter().chain(p.egress.iter()).flatten();
            pod_match(&p.subject)
                + rules
                    .map(|r| {
                        1 + r.ports.as_ref().map_or(0, Vec::len)
                            + r.peers
                                .iter()
                                .map(|peer| match peer {
                                    Peer::Pods(m) => 1 + pod_match(m),
                                    Peer::Ips(s) => 1 + s.ranges().count(),
                                    Peer::Any => 0,
                                })
                                .sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum();
    let workloads: usize = l
        .cluster
        .workloads
        .iter()
        .map(|w| 1 + w.labels.len() + w.named_ports.len() + w.addresses.len())
        .sum();
    policies + workloads
}

/// Structured inputs that load cleanly and reach deep: for each kind of first document, the one
/// that reaches deepest ([`depth`]), found by a deterministic search over pseudo-random bytes
/// (what bytes mean depends on the `arbitrary` crate's encoding, so they are searched for
/// rather than written by hand).
pub fn structured_seeds() -> Vec<(String, Vec<u8>)> {
    let mut rng = XorShift(0x5eed_b01c_4ead_f022);
    // kind → the deepest input found (depth, bytes).
    type Best = Option<(usize, Vec<u8>)>;
    let mut best: Vec<(&str, Best)> = STRUCTURED_WANTED.iter().map(|k| (*k, None)).collect();
    // Random inputs first, then small random edits of the deepest of each kind, kept when
    // they reach at least as deep (a little hill climbing).
    for round in 0..160_000 {
        let (bytes, only) = if round < 40_000 {
            let len = 64 + (rng.next() % 960) as usize;
            (
                (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
                None,
            )
        } else {
            let k = round % best.len();
            let Some((_, b)) = &best[k].1 else { continue };
            let mut b = b.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % b.len().max(1);
                match rng.next() % 4 {
                    0 if b.len() > 16 => {
                        b.remove(at);
                    }
                    1 => b.insert(at, rng.next() as u8),
                    _ => {
                        if let Some(x) = b.get_mut(at) {
                            *x = rng.next() as u8;
                        }
                    }
                }
            }
            (b, Some(best[k].0))
        };
        let Some((kind, d)) = evaluate(&bytes) else {
            continue;
        };
        if only.is_some_and(|k| k != kind) {
            continue;
        }
        let slot = &mut best
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .expect("a wanted kind")
            .1;
        if slot
            .as_ref()
            .is_none_or(|(bd, bb)| d > *bd || (d == *bd && bytes.len() <= bb.len()))
        {
            *slot = Some((d, bytes));
        }
    }
    best.into_iter()
        .filter_map(|(k, v)| v.map(|(_, bytes)| (k.to_string(), bytes)))
        .collect()
}

/// The kind of the first document of a structured input that loads cleanly, and how deep it
/// reaches; `None` for other inputs.
fn evaluate(bytes: &[u8]) -> Option<(&'static str, usize)> {
    let input = Input::arbitrary_take_rest(Unstructured::new(bytes)).ok()?;
    let r = skeleton::values(&input);
    if r.raw || r.expected_item_errors > 0 {
        return None;
    }
    let kind = match input.docs.first()? {
        Doc::List(_) => "List",
        Doc::Object(o) => match **o {
            Obj::NetworkPolicy(_) => "NetworkPolicy",
            Obj::AdminNetworkPolicy(_) => "AdminNetworkPolicy",
            Obj::BaselineAdminNetworkPolicy(_) => "BaselineAdminNetworkPolicy",
            Obj::Pod(_) => "Pod",
            Obj::Workload(_) => "Workload",
            _ => return None,
        },
    };
    let text = skeleton::render_block(&r.docs, input.layout).text;
    let out = crate::check::load(crate::FILE, &text);
    if !out.loaded.errors.is_empty() || out.objects == 0 {
        return None;
    }
    Some((kind, depth(&out.loaded)))
}

/// Writes the seed corpus under `dir` (`seeds/<target>/<name>`), replacing what is there.
pub fn write_seeds(dir: &Path) -> std::io::Result<()> {
    let write = |target: &str, files: Vec<(String, Vec<u8>)>| -> std::io::Result<()> {
        let d = dir.join(target);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in files {
            std::fs::write(d.join(name), bytes)?;
        }
        Ok(())
    };
    write(
        "load_manifest",
        MANIFESTS
            .iter()
            .map(|(n, t, _)| (n.to_string(), t.as_bytes().to_vec()))
            .collect(),
    )?;
    write(
        "parse_values",
        VALUES
            .iter()
            .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
            .collect(),
    )?;
    write("load_manifest_structured", structured_seeds())
}
