//! THE property test of the `k8s` target: random intents (segments by pod or namespace labels,
//! enforce or observe; rules in all three tiers with allow, deny and pass; workload, namespace,
//! `any`, CIDR and host peers; numbered, ranged, per-protocol and named ports) over random small
//! clusters (namespaces with labels, pods with labels and named container ports, hosts,
//! external addresses). Each intent is compiled for `--k8s-api anp` and `cnp`, the manifests and
//! the cluster are re-imported with the Kubernetes engine, and every pair with a pod on one end
//! is compared on every protocol at every port boundary: allowed by Kubernetes exactly when the
//! evaluator's verdict is not `Deny`. An intent the compiler refuses must be refused with
//! `Unsupported`; the generator mostly makes expressible ones and the test checks that most
//! compiled.
//!
//! `K8S_CASES=2000 cargo test -p bulkhead-compile --test k8s_meaning` runs more cases
//! (default 256); `K8S_SEED` changes the seed.

mod common;

use bulkhead_compile::{CompileError, K8sApi, Options, Target, compile};
use bulkhead_core::{Labels, NamedPort, Protocol};
use bulkhead_intent::{Identity, load_str};
use common::reimport::compare;
use std::fmt::Write as _;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const SEGS: &[&str] = &["s0", "s1", "s2"];
const APPS: &[&str] = &["a0", "a1", "a2"];
const TEAMS: &[&str] = &["t0", "t1"];
const NSS: &[&str] = &["ns0", "ns1", "ns2"];
const CIDRS: &[&str] = &[
    "198.51.100.0/24",
    "198.51.100.0/25",
    "10.0.0.0/8",
    "192.0.2.0/24",
    "2001:db8::/32",
];

/// A random cluster: pods in namespaces, hosts, external addresses.
fn cluster(rng: &mut Rng) -> Vec<Identity> {
    let mut ns_labels: Vec<Labels> = Vec::new();
    for n in NSS {
        let mut l = Labels::new();
        l.insert("kubernetes.io/metadata.name".into(), n.to_string());
        if rng.chance(70) {
            l.insert("team".into(), rng.pick(TEAMS).into());
        }
        ns_labels.push(l);
    }
    let mut ids = Vec::new();
    for i in 0..2 + rng.below(6) {
        let n = rng.below(NSS.len());
        let mut labels = Labels::new();
        if rng.chance(80) {
            labels.insert("seg".into(), rng.pick(SEGS).into());
        }
        if rng.chance(70) {
            labels.insert("app".into(), rng.pick(APPS).into());
        }
        let mut id = Identity::workload(NSS[n], &format!("p{i}"), labels, ns_labels[n].clone());
        if rng.chance(60) {
            id.named_ports.push(NamedPort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: [80u16, 8080, 8050][rng.below(3)],
            });
        }
        if rng.chance(30) {
            id.named_ports.push(NamedPort {
                name: "dns".into(),
                protocol: Protocol::Udp,
                port: 53,
            });
        }
        ids.push(id);
    }
    for i in 0..1 + rng.below(2) {
        let mut labels = Labels::new();
        labels.insert("app".into(), rng.pick(APPS).into());
        ids.push(Identity::host(
            &format!("h{i}"),
            labels,
            vec![format!("192.0.2.{}", 10 + i).parse().unwrap()],
        ));
    }
    for a in [
        "198.51.100.7",
        "198.51.100.200",
        "10.1.2.3",
        "192.0.2.99",
        "2001:db8::5",
        "203.0.113.1",
    ] {
        if rng.chance(60) {
            ids.push(Identity::external(a.parse().unwrap()));
        }
    }
    ids
}

fn peer(rng: &mut Rng, segs: usize, addresses: bool) -> String {
    let k = rng.below(if addresses { 10 } else { 7 });
    match k {
        0..=2 => format!("{{segment: g{}}}", rng.below(segs)),
        3 => format!(
            "{{selector: {{podSelector: {{matchLabels: {{app: {}}}}}}}}}",
            rng.pick(APPS)
        ),
        4 => format!("{{namespace: {}}}", rng.pick(NSS)),
        5 => format!(
            "{{selector: {{namespaceSelector: {{matchLabels: {{team: {}}}}}}}}}",
            rng.pick(TEAMS)
        ),
        6 => "{any: true}".to_string(),
        7 | 8 => format!("{{cidr: {}}}", rng.pick(CIDRS)),
        _ => format!(
            "{{selector: {{hostSelector: {{matchLabels: {{app: {}}}}}}}}}",
            rng.pick(APPS)
        ),
    }
}

fn ports(rng: &mut Rng, named: bool) -> Option<String> {
    if rng.chance(30) {
        return None;
    }
    let mut v = Vec::new();
    for _ in 0..1 + rng.below(2) {
        v.push(match rng.below(if named { 7 } else { 5 }) {
            0 => "{protocol: TCP, port: 80}".to_string(),
            1 => "{protocol: TCP, port: 8000, endPort: 8100}".to_string(),
            2 => "{protocol: UDP, port: 53}".to_string(),
            3 => "{protocol: SCTP}".to_string(),
            4 | 5 => "{protocol: TCP, port: 8080}".to_string(),
            _ => "{port: http}".to_string(),
        });
    }
    Some(format!("[{}]", v.join(", ")))
}

/// A random intent over the cluster's labels.
fn intent_yaml(rng: &mut Rng) -> String {
    let mut y = String::new();
    let segs = 1 + rng.below(3);
    for (g, seg) in SEGS.iter().enumerate().take(segs) {
        let sel = if rng.chance(75) {
            format!("podSelector: {{matchLabels: {{seg: {seg}}}}}")
        } else {
            format!(
                "namespaceSelector: {{matchLabels: {{team: {}}}}}",
                rng.pick(TEAMS)
            )
        };
        let mode = if rng.chance(70) { "enforce" } else { "observe" };
        let _ = write!(
            y,
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: g{g}}}\nspec:\n  {sel}\n  mode: {mode}\n"
        );
    }
    for (t, tier) in ["guardrail", "application", "baseline"].iter().enumerate() {
        for p in 0..rng.below(3) {
            let _ = write!(
                y,
                "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {tier}-{p}}}\nspec:\n  tier: {tier}\n  priority: {}\n  rules:\n",
                rng.below(3)
            );
            for _ in 0..1 + rng.below(3) {
                // Guardrails: allow, deny and pass freely; the other tiers mostly allow (a
                // deny or pass there is expressible only when no later allow overlaps).
                let action = if t == 0 {
                    ["allow", "deny", "pass", "deny", "pass"][rng.below(5)]
                } else if rng.chance(92) {
                    "allow"
                } else {
                    ["deny", "pass"][rng.below(2)]
                };
                let nf = 1 + rng.below(2);
                let from: Vec<String> = (0..nf).map(|_| peer(rng, segs, true)).collect();
                let nt = 1 + rng.below(2);
                let to: Vec<String> = (0..nt).map(|_| peer(rng, segs, true)).collect();
                let _ = write!(
                    y,
                    "    - action: {action}\n      from: [{}]\n      to: [{}]\n",
                    from.join(", "),
                    to.join(", ")
                );
                let named = t != 0 || rng.chance(10);
                if let Some(p) = ports(rng, named) {
                    let _ = writeln!(y, "      ports: {p}");
                }
            }
        }
    }
    y
}

fn cases() -> usize {
    std::env::var("K8S_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

#[test]
fn compiled_k8s_keeps_the_evaluators_meaning() {
    let seed: u64 = std::env::var("K8S_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut rng = Rng(seed);
    let n = cases();
    let (mut compiled, mut refused, mut pairs) = (0usize, 0usize, 0usize);
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for case in 0..n {
        let ids = cluster(&mut rng);
        let yaml = intent_yaml(&mut rng);
        let loaded = load_str("intent.yaml", &yaml);
        assert!(
            !loaded.has_errors(),
            "generator: {:?}\n{yaml}",
            loaded.diagnostics
        );
        let intent = loaded.intent;
        for api in [K8sApi::Anp, K8sApi::Cnp] {
            let opts = Options {
                k8s_api: api,
                inventory: ids.clone(),
            };
            match compile(&intent, Target::K8s, &opts) {
                Ok(c) => {
                    compiled += 1;
                    let errs = common::schema::validate_files(&c.files);
                    assert!(errs.is_empty(), "case {case} ({api:?}): {errs:#?}\n{yaml}");
                    match compare(&intent, &ids, &c.files) {
                        Ok(p) => pairs += p,
                        Err((bad, why)) => panic!(
                            "case {case} ({api:?}): the compiled policy disagrees with the evaluator: {why}\n{bad:#?}\nintent:\n{yaml}\ncluster: {ids:#?}\ncompiled:\n{}",
                            c.files.values().cloned().collect::<Vec<_>>().join("\n")
                        ),
                    }
                }
                Err(CompileError::Unsupported { what, .. }) => {
                    refused += 1;
                    let key: String = what
                        .split(':')
                        .next_back()
                        .unwrap_or("")
                        .chars()
                        .take(60)
                        .collect();
                    *reasons.entry(key).or_default() += 1;
                }
                Err(e) => panic!("case {case} ({api:?}): not Unsupported: {e}\n{yaml}"),
            }
        }
    }
    eprintln!(
        "{n} cases × 2 APIs: {compiled} compiled and re-imported equal ({pairs} pairs), {refused} refused: {reasons:#?}"
    );
    assert!(
        compiled * 10 >= (compiled + refused) * 6,
        "the generator should mostly make expressible intents: {compiled} compiled, {refused} refused"
    );
}
