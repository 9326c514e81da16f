//! The `istio` target against a reference interpreter of AuthorizationPolicy written from
//! Istio's documented semantics (istio.io, "Authorization Policy"):
//!
//! 1. policies apply to a workload when they are in its namespace (or the root namespace) and
//!    their `selector.matchLabels` is a subset of its labels (no selector: every workload);
//! 2. CUSTOM first (never emitted here), then if any DENY policy matches the request: deny;
//! 3. if no ALLOW policy applies to the workload: allow; if any ALLOW policy matches: allow;
//!    else deny. A policy matches when one of its `rules` does; a policy without rules matches
//!    nothing; a rule matches when each of `from`, `to` (each a list: any item) matches; in a
//!    `source`/`operation` every field present must match; `principals` need a peer identity
//!    (`*` is a presence match: any non-empty value), `notPrincipals` match when no pattern does
//!    (a plaintext peer has no principal, so it matches no pattern), `namespaces` /
//!    `notNamespaces` likewise on the namespace of the peer's identity, `ipBlocks` hold the
//!    source address, `ports` are strings compared with the destination port.
//!
//! The property test: for random small intents × clusters, the interpreter over the compiled
//! policies equals the evaluator's destination-side verdict (for a destination in an enforced
//! segment: the deciding rule is an `allow`; otherwise: allowed) for TCP, for every source
//! (workloads with their principals and pod addresses, hosts and external addresses by address)
//! and port at the rules' boundaries.

mod common;

use bulkhead_compile::istio::{IstioOptions, compile_with};
use bulkhead_compile::{CompileError, Options};
use bulkhead_core::{IpSet, Labels, NamedPort, Protocol};
use bulkhead_intent::{Action, Evaluator, Identity, IdentityKind, Intent, Mode, Severity};
use proptest::prelude::*;
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// The reference interpreter.

/// A request as the destination's sidecar sees it.
struct Req<'a> {
    principal: Option<&'a str>,
    ip: IpAddr,
    port: u16,
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Istio's string match: exact, `*` (presence), `prefix*`, `*suffix`.
fn str_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(p) = pattern.strip_suffix('*') {
        value.starts_with(p)
    } else if let Some(s) = pattern.strip_prefix('*') {
        value.ends_with(s)
    } else {
        pattern == value
    }
}

fn ip_in(blocks: &Value, ip: IpAddr) -> bool {
    strs(blocks).iter().any(|b| {
        let b = if b.contains('/') {
            b.to_string()
        } else if b.contains(':') {
            format!("{b}/128")
        } else {
            format!("{b}/32")
        };
        IpSet::cidr(&b).expect("a valid ipBlock").contains(ip)
    })
}

fn ns_of(principal: Option<&str>) -> Option<&str> {
    let p = principal?;
    let rest = &p[p.find("/ns/")? + 4..];
    Some(&rest[..rest.find("/sa/")?])
}

fn source_matches(s: &Value, r: &Req<'_>) -> bool {
    let m = s.as_object().expect("source is an object");
    m.iter().all(|(k, v)| match k.as_str() {
        "principals" => r
            .principal
            .is_some_and(|p| strs(v).iter().any(|pat| str_match(pat, p))),
        "notPrincipals" => !r
            .principal
            .is_some_and(|p| strs(v).iter().any(|pat| str_match(pat, p))),
        // The source namespace comes from the peer certificate (`TD/ns/NS/sa/SA`).
        "namespaces" => {
            ns_of(r.principal).is_some_and(|n| strs(v).iter().any(|pat| str_match(pat, n)))
        }
        "notNamespaces" => {
            !ns_of(r.principal).is_some_and(|n| strs(v).iter().any(|pat| str_match(pat, n)))
        }
        "ipBlocks" => ip_in(v, r.ip),
        "notIpBlocks" => !ip_in(v, r.ip),
        other => panic!("the interpreter does not model source.{other}"),
    })
}

fn operation_matches(o: &Value, r: &Req<'_>) -> bool {
    let port = r.port.to_string();
    let m = o.as_object().expect("operation is an object");
    m.iter().all(|(k, v)| match k.as_str() {
        "ports" => strs(v).contains(&port.as_str()),
        "notPorts" => !strs(v).contains(&port.as_str()),
        other => panic!("the interpreter does not model operation.{other}"),
    })
}

fn rule_matches(rule: &Value, r: &Req<'_>) -> bool {
    let m = rule.as_object().expect("a rule is an object");
    m.iter().all(|(k, v)| {
        let items = v.as_array().expect("a list");
        match k.as_str() {
            "from" => items.is_empty() || items.iter().any(|i| source_matches(&i["source"], r)),
            "to" => items.is_empty() || items.iter().any(|i| operation_matches(&i["operation"], r)),
            other => panic!("the interpreter does not model rules[].{other}"),
        }
    })
}

fn policy_matches(p: &Value, r: &Req<'_>) -> bool {
    p["spec"]["rules"]
        .as_array()
        .is_some_and(|rules| rules.iter().any(|rule| rule_matches(rule, r)))
}

fn applies(p: &Value, root: &str, ns: &str, labels: &Labels) -> bool {
    if p["kind"] != "AuthorizationPolicy" {
        return false;
    }
    let pns = p["metadata"]["namespace"].as_str().expect("namespaced");
    if pns != ns && pns != root {
        return false;
    }
    assert!(p["spec"].get("targetRefs").is_none());
    match p["spec"]["selector"]["matchLabels"].as_object() {
        None => true,
        Some(m) => m
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()),
    }
}

/// Istio's decision for a request to a workload of namespace `ns` with `labels`.
fn istio_allows(docs: &[Value], root: &str, ns: &str, labels: &Labels, r: &Req<'_>) -> bool {
    let mine: Vec<&Value> = docs
        .iter()
        .filter(|p| applies(p, root, ns, labels))
        .collect();
    let action = |p: &Value| p["spec"]["action"].as_str().unwrap_or("ALLOW").to_string();
    assert!(mine.iter().all(|p| action(p) != "CUSTOM"));
    if mine
        .iter()
        .any(|p| action(p) == "DENY" && policy_matches(p, r))
    {
        return false;
    }
    let allows: Vec<&&Value> = mine.iter().filter(|p| action(p) == "ALLOW").collect();
    allows.is_empty() || allows.iter().any(|p| policy_matches(p, r))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn docs_of(files: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    files
        .values()
        .flat_map(|t| common::schema::documents(t))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str) -> Intent {
    let loaded = bulkhead_intent::load_str("p.yaml", text);
    let errs: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:#?}\n{text}");
    loaded.intent
}

fn principal_of(id: &Identity) -> Option<String> {
    match &id.kind {
        IdentityKind::Workload { namespace, .. } => Some(format!(
            "cluster.local/ns/{namespace}/sa/{}",
            id.service_account.as_deref().unwrap_or("default")
        )),
        _ => None,
    }
}

/// The evaluator's destination side: a destination in an enforced segment allows exactly what
/// the deciding rule allows; any other destination never drops.
fn dst_side_allows(ev: &Evaluator, intent: &Intent, s: &Identity, d: &Identity, port: u16) -> bool {
    let enforced = intent
        .segments
        .iter()
        .any(|seg| seg.mode == Mode::Enforce && seg.selector.matches(d));
    if !enforced {
        return true;
    }
    let dec = ev.decide(s, d, Protocol::Tcp, port);
    dec.rule.is_some_and(|r| r.action == Action::Allow)
}

/// Checks the compiled policies against the evaluator on every pair and port; returns the first
/// disagreement.
fn disagreement(
    intent: &Intent,
    ids: &[Identity],
    pod_ips: &[IpAddr],
    docs: &[Value],
    ports: &[u16],
) -> Option<String> {
    let ev = Evaluator::new(intent).expect("the intent evaluates");
    for (di, d) in ids.iter().enumerate() {
        let IdentityKind::Workload { namespace, .. } = &d.kind else {
            continue;
        };
        for (si, s) in ids.iter().enumerate() {
            let principal = principal_of(s);
            let ip = match s.kind {
                IdentityKind::Workload { .. } => pod_ips[si],
                _ => s.addresses[0],
            };
            for &port in ports {
                let want = dst_side_allows(&ev, intent, s, d, port);
                let req = Req {
                    principal: principal.as_deref(),
                    ip,
                    port,
                };
                let got = istio_allows(docs, "istio-system", namespace, &d.labels, &req);
                if want != got {
                    return Some(format!(
                        "{} -> {} (#{di}) TCP {port}: evaluator destination side {want}, istio {got}",
                        s.name, d.name
                    ));
                }
            }
        }
    }
    None
}

fn compile(intent: &Intent, ids: &[Identity]) -> Result<bulkhead_compile::Compiled, CompileError> {
    compile_with(
        intent,
        &Options {
            inventory: ids.to_vec(),
            ..Options::default()
        },
        &IstioOptions::default(),
    )
}

fn workload(ns: &str, name: &str, l: &[(&str, &str)], sa: &str) -> Identity {
    let mut id = Identity::workload(
        ns,
        name,
        labels(l),
        labels(&[("kubernetes.io/metadata.name", ns)]),
    );
    id.service_account = Some(sa.to_string());
    id.named_ports = vec![NamedPort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 8080,
    }];
    id
}

// ---------------------------------------------------------------------------------------------
// Reasoning tests.

const TIERS: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  mode: enforce
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  mode: observe
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: guard}
spec:
  tier: guardrail
  rules:
    # The admin tool reaches the database on 5432 whatever comes later: an allow that must
    # win over the overlapping deny below (Istio's DENY would beat it: subtracted exactly).
    - {action: allow, from: [{selector: {podSelector: {matchLabels: {app: admin}}}}], to: [{segment: db}], ports: [{port: 5432}]}
    # Web is passed to the application tier.
    - {action: pass, from: [{segment: web}], to: [{segment: db}]}
    - {action: deny, from: [{any: true}], to: [{segment: db}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{segment: db}], ports: [{port: http}, {protocol: UDP, port: 53}]}
"#;

fn tiers_cluster() -> Vec<Identity> {
    vec![
        workload("shop", "db", &[("app", "db")], "db"),
        workload("shop", "web", &[("app", "web")], "web"),
        workload("shop", "admin", &[("app", "admin")], "admin"),
        workload("shop", "other", &[("app", "other")], "other"),
        Identity::host(
            "bastion",
            labels(&[("role", "bastion")]),
            vec!["192.0.2.1".parse().unwrap()],
        ),
        Identity::external("198.51.100.7".parse().unwrap()),
    ]
}

#[test]
fn first_match_tiers_become_exact_deny_and_allow_policies() {
    let intent = load(TIERS);
    let ids = tiers_cluster();
    let out = compile(&intent, &ids).expect("compiles");
    let docs = docs_of(&out.files);
    let errs = common::schema::validate_files(&out.files);
    assert!(errs.is_empty(), "{errs:#?}");
    let db = &ids[0];
    let ask = |src: usize, port: u16| {
        let s = &ids[src];
        let p = principal_of(s);
        let ip = s
            .addresses
            .first()
            .copied()
            .unwrap_or("10.0.0.9".parse().unwrap());
        istio_allows(
            &docs,
            "istio-system",
            "shop",
            &db.labels,
            &Req {
                principal: p.as_deref(),
                ip,
                port,
            },
        )
    };
    // admin → db 5432: the guardrail allow decides first, although the deny after it matches.
    assert!(ask(2, 5432));
    // admin → db 8080: only the guardrail deny matches.
    assert!(!ask(2, 8080));
    // web → db 8080 (named port http of db): passed to the application tier, allowed there.
    assert!(ask(1, 8080));
    // web → db 5432: passed, and no application rule allows it: the default deny.
    assert!(!ask(1, 5432));
    // other, the bastion host and an external address: denied by the guardrail.
    assert!(!ask(3, 8080) && !ask(4, 5432) && !ask(5, 8080));
    // Nothing selects the observe-mode web workload or the unmanaged ones.
    for p in &docs {
        assert_eq!(p["spec"]["selector"]["matchLabels"]["app"], "db", "{p}");
    }
    // The allow of 5432 was subtracted from the DENY (exactly, not by dropping the deny).
    let deny = docs
        .iter()
        .find(|p| p["spec"]["action"] == "DENY")
        .expect("a DENY policy for the guardrail's deny");
    assert!(deny.to_string().contains("notPrincipals"), "{deny}");
    // The UDP part of the application rule is named in a note.
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("app/rules[0]") && n.contains("UDP")),
        "{:#?}",
        out.notes
    );
    assert!(out.notes.iter().any(|n| n.contains("observe-mode")));
    assert_eq!(
        disagreement(
            &intent,
            &ids,
            &[ip("10.0.0.1"); 6],
            &docs,
            &[53, 5432, 8080, 9]
        ),
        None
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn cidr_peers_never_match_mesh_pods_whatever_their_address() {
    let intent = load(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec: {podSelector: {matchLabels: {app: db}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: p}
spec:
  tier: application
  rules:
    - {action: allow, from: [{cidr: 10.0.0.0/8}], to: [{segment: db}]}
"#,
    );
    let ids = vec![
        workload("shop", "db", &[("app", "db")], "db"),
        workload("shop", "web", &[("app", "web")], "web"),
        Identity::external(ip("10.1.2.3")),
    ];
    let out = compile(&intent, &ids).expect("compiles");
    let docs = docs_of(&out.files);
    // The web pod's address is inside 10.0.0.0/8, yet the intent's CIDR peer never holds pods.
    let pod_ips = [ip("10.9.9.9"), ip("10.9.9.8"), ip("10.1.2.3")];
    assert_eq!(disagreement(&intent, &ids, &pod_ips, &docs, &[80]), None);
    let db = &ids[0];
    let from_web = Req {
        principal: Some("cluster.local/ns/shop/sa/web"),
        ip: ip("10.9.9.8"),
        port: 80,
    };
    assert!(!istio_allows(
        &docs,
        "istio-system",
        "shop",
        &db.labels,
        &from_web
    ));
    let from_ext = Req {
        principal: None,
        ip: ip("10.1.2.3"),
        port: 80,
    };
    assert!(istio_allows(
        &docs,
        "istio-system",
        "shop",
        &db.labels,
        &from_ext
    ));
}

#[test]
fn a_shared_service_account_is_an_identity_limit() {
    let intent = load(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec: {podSelector: {matchLabels: {app: db}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: p}
spec:
  tier: application
  rules:
    - {action: allow, from: [{selector: {podSelector: {matchLabels: {app: web}}}}], to: [{segment: db}]}
"#,
    );
    // web and batch both run as `default`: a principal for web would admit batch too.
    let ids = vec![
        workload("shop", "db", &[("app", "db")], "db"),
        workload("shop", "web", &[("app", "web")], "default"),
        workload("shop", "batch", &[("app", "batch")], "default"),
    ];
    let err = compile(&intent, &ids).expect_err("too broad");
    let msg = err.to_string();
    assert!(msg.starts_with("p.yaml:"), "names the rule's place: {msg}");
    assert!(
        msg.contains("identity limit") && msg.contains("shop/batch"),
        "{msg}"
    );
    // With its own service account, web compiles.
    let mut ids = ids;
    ids[1].service_account = Some("web".into());
    assert!(compile(&intent, &ids).is_ok());
}

#[test]
fn refusals_are_explicit() {
    let seg = |ns_sel: &str| {
        format!(
            "apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: s}}\nspec: {{{ns_sel}, mode: enforce}}\n"
        )
    };
    // No inventory.
    let intent = load(&seg("podSelector: {matchLabels: {app: db}}"));
    let err = compile(&intent, &[]).expect_err("needs an inventory");
    assert!(err.to_string().contains("inventory"), "{err}");
    // An enforced workload in the root namespace.
    let ids = vec![workload("istio-system", "db", &[("app", "db")], "db")];
    let err = compile(&intent, &ids).expect_err("root namespace");
    assert!(err.to_string().contains("root namespace"), "{err}");
    // Two workloads with the same labels decided differently (different named ports): no
    // matchLabels tells them apart.
    let intent = load(&format!(
        "{}---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n    - {{action: allow, from: [{{any: true}}], to: [{{segment: s}}], ports: [{{port: http}}]}}\n",
        seg("podSelector: {matchLabels: {app: db}}")
    ));
    let mut ids = vec![
        workload("shop", "db1", &[("app", "db")], "a"),
        workload("shop", "db2", &[("app", "db"), ("v", "2")], "b"),
    ];
    ids[0].named_ports[0].port = 9000;
    let err = compile(&intent, &ids).expect_err("cannot select db1 alone");
    assert!(err.to_string().contains("matchLabels"), "{err}");
    // A port range too wide to list one by one.
    let intent = load(&format!(
        "{}---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n    - {{action: allow, from: [{{any: true}}], to: [{{segment: s}}], ports: [{{port: 2000, endPort: 40000}}]}}\n",
        seg("podSelector: {matchLabels: {app: db}}")
    ));
    let ids = vec![workload("shop", "db", &[("app", "db")], "db")];
    let err = compile(&intent, &ids).expect_err("too many ports");
    assert!(err.to_string().contains("one by one"), "{err}");
    // A range of ports whose complement is short becomes notPorts.
    let intent = load(&format!(
        "{}---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n    - {{action: allow, from: [{{any: true}}], to: [{{segment: s}}], ports: [{{port: 2, endPort: 65535}}]}}\n",
        seg("podSelector: {matchLabels: {app: db}}")
    ));
    let out = compile(&intent, &ids).expect("compiles");
    let docs = docs_of(&out.files);
    assert!(
        docs[0].to_string().contains(r#""notPorts":["1"]"#),
        "{}",
        docs[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Golden files: the bank example.

fn inventory_from(manifests: &[&Path], hosts: &[&Path]) -> Vec<Identity> {
    let loaded = bulkhead_k8s::Loaded::from_paths(manifests);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let c = &loaded.cluster;
    let mut ids = Vec::new();
    for w in &c.workloads {
        let mut id = Identity::workload(
            &w.namespace,
            &w.name,
            w.labels.clone(),
            c.ns_labels(&w.namespace).clone(),
        );
        id.named_ports = w.named_ports.clone();
        id.service_account = w.service_account.clone();
        ids.push(id);
    }
    for h in hosts {
        for host in bulkhead_identity::load_hosts(h).expect("hosts load") {
            ids.push(Identity::host(
                &host.name,
                host.labels.into_iter().collect(),
                host.addresses.iter().map(|n| n.addr()).collect(),
            ));
        }
    }
    ids
}

fn check_golden(name: &str, out: &bulkhead_compile::Compiled) {
    let mut text = String::new();
    for (path, body) in &out.files {
        text.push_str(&format!("# ==> {path}\n{body}"));
    }
    for n in &out.notes {
        text.push_str(&format!("# note: {n}\n"));
    }
    // Places relative to the repository, whatever the checkout's path.
    let text = text.replace(concat!(env!("CARGO_MANIFEST_DIR"), "/../../"), "");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        want == text,
        "{} drifted; UPDATE_GOLDEN=1 rewrites it after review",
        path.display()
    );
}

fn bank_intent() -> Intent {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    let loaded = bulkhead_intent::load_paths(&[root]);
    assert!(
        !loaded
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    );
    loaded.intent
}

#[test]
fn bank_example_over_its_manifests_golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bank");
    let ids = inventory_from(&[&root], &[]);
    let intent = bank_intent();
    let out = compile(&intent, &ids).expect("the bank compiles for istio");
    assert!(common::schema::validate_files(&out.files).is_empty());
    check_golden("istio-bank-manifests.yaml", &out);
}

#[test]
fn simulated_bank_golden_and_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bulkhead_bank::Config {
        workloads: 120,
        ..bulkhead_bank::Config::default()
    };
    bulkhead_bank::write_inventory(&cfg, dir.path()).unwrap();
    let mut ids = inventory_from(
        &[&dir.path().join("inventory")],
        &[&dir.path().join("hosts.yaml")],
    );
    let intent = bank_intent();
    // As simulated, every pod runs as its namespace's `default` service account: a principal
    // cannot tell coredns from the monitoring agents of shared-infra, and compile says so.
    let err = compile(&intent, &ids).expect_err("default service accounts are shared");
    assert!(err.to_string().contains("identity limit"), "{err}");
    // A bank that gives every workload its own service account (its name) compiles exactly.
    for id in &mut ids {
        if let IdentityKind::Workload { .. } = id.kind {
            id.service_account = Some(id.name.rsplit('/').next().unwrap().to_string());
        }
    }
    let out = compile(&intent, &ids).expect("the simulated bank compiles for istio");
    let errs = common::schema::validate_files(&out.files);
    assert!(errs.is_empty(), "{errs:#?}");
    let docs = docs_of(&out.files);
    assert!(docs.iter().any(|d| d["spec"]["action"] == "ALLOW"));
    let pod_ips: Vec<IpAddr> = (0..ids.len())
        .map(|i| IpAddr::from([10, 244, (i / 250) as u8, (i % 250) as u8 + 1]))
        .collect();
    let ports = [22, 53, 443, 5432, 6379, 8443, 8583, 9090, 9092, 9100, 1];
    assert_eq!(disagreement(&intent, &ids, &pod_ips, &docs, &ports), None);
    check_golden("istio-bank-simulated.yaml", &out);
}

// ---------------------------------------------------------------------------------------------
// The property test.

#[derive(Clone, Debug)]
struct Case {
    yaml: String,
    workloads: Vec<(usize, usize, usize, usize, u16)>, // ns, app, tier, sa, http port
    hosts: Vec<(usize, u8)>,                           // app, last octet
    pod_octets: Vec<u8>,
}

const APPS: [&str; 4] = ["a", "b", "c", "d"];
const TIERS_L: [&str; 2] = ["x", "y"];
const NSS: [&str; 2] = ["n1", "n2"];

fn peer() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..3usize).prop_map(|s| format!("{{segment: s{s}}}")),
        Just("{any: true}".to_string()),
        (0..4usize).prop_map(|a| format!(
            "{{selector: {{podSelector: {{matchLabels: {{app: {}}}}}}}}}",
            APPS[a]
        )),
        (0..2usize).prop_map(|t| format!(
            "{{selector: {{podSelector: {{matchExpressions: [{{key: tier, operator: NotIn, values: [{}]}}]}}, hostSelector: {{matchLabels: {{app: a}}}}}}}}",
            TIERS_L[t]
        )),
        (0..2usize).prop_map(|n| format!("{{namespace: {}}}", NSS[n])),
        prop_oneof![Just("192.0.2.0/30"), Just("198.51.100.0/24"), Just("10.0.0.0/8")]
            .prop_map(|c| format!("{{cidr: {c}}}")),
    ]
}

fn ports() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(", ports: [{port: 80}]".to_string()),
        Just(", ports: [{port: 80, endPort: 90}]".to_string()),
        Just(", ports: [{port: http}]".to_string()),
        Just(", ports: [{protocol: UDP, port: 80}]".to_string()),
        Just(", ports: [{protocol: TCP}]".to_string()),
        Just(", ports: [{port: 85}, {protocol: UDP}]".to_string()),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let segment = (0..4usize, 0..2usize, any::<bool>(), any::<bool>());
    let rule = (
        0..3usize,
        prop::collection::vec(peer(), 1..3),
        prop::collection::vec(peer(), 1..3),
        ports(),
    );
    let policy = (0..3usize, 0..3i32, prop::collection::vec(rule, 1..4));
    (
        prop::collection::vec(segment, 1..4),
        prop::collection::vec(policy, 1..4),
        prop::collection::vec((0..2usize, 0..4usize, 0..2usize, 0..6usize, prop_oneof![Just(80u16), Just(8080)]), 1..6),
        prop::collection::vec((0..4usize, 1..4u8), 0..3),
        prop::collection::vec(prop_oneof![1..4u8, 10..20u8], 6),
    )
        .prop_map(|(segs, pols, workloads, hosts, pod_octets)| {
            let mut y = String::new();
            for i in 0..3 {
                // Three segments always exist so that `segment: sN` peers resolve; extra ones
                // from the generator vary.
                let (app, tier, enforce, expr) = segs.get(i).copied().unwrap_or((i, 0, false, false));
                let pods = if expr {
                    format!("{{matchExpressions: [{{key: tier, operator: In, values: [{}]}}]}}", TIERS_L[tier])
                } else {
                    format!("{{matchLabels: {{app: {}}}}}", APPS[app])
                };
                y.push_str(&format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: s{i}}}\nspec: {{podSelector: {pods}, hostSelector: {{matchLabels: {{app: {}}}}}, mode: {}}}\n",
                    APPS[app],
                    if enforce { "enforce" } else { "observe" }
                ));
            }
            for (pi, (tier, prio, rules)) in pols.iter().enumerate() {
                y.push_str(&format!(
                    "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p{pi}}}\nspec:\n  tier: {}\n  priority: {prio}\n  rules:\n",
                    ["guardrail", "application", "baseline"][*tier]
                ));
                for (action, from, to, ports) in rules {
                    y.push_str(&format!(
                        "    - {{action: {}, from: [{}], to: [{}]{ports}}}\n",
                        ["allow", "deny", "pass"][*action],
                        from.join(", "),
                        to.join(", ")
                    ));
                }
            }
            // Service accounts: 0..4 unique per workload index below, 4 and 5 shared.
            let workloads = workloads
                .into_iter()
                .enumerate()
                .map(|(i, (ns, app, tier, sa, port))| (ns, app, tier, if sa < 4 { 10 + i } else { sa }, port))
                .collect();
            Case { yaml: y, workloads, hosts, pod_octets }
        })
}

fn cluster(c: &Case) -> (Vec<Identity>, Vec<IpAddr>) {
    let mut ids = Vec::new();
    let mut ips = Vec::new();
    for (i, &(ns, app, tier, sa, port)) in c.workloads.iter().enumerate() {
        let mut id = Identity::workload(
            NSS[ns],
            &format!("w{i}"),
            labels(&[
                ("app", APPS[app]),
                ("tier", TIERS_L[tier]),
                ("i", &i.to_string()),
            ]),
            labels(&[("kubernetes.io/metadata.name", NSS[ns])]),
        );
        id.service_account = Some(format!("sa{sa}"));
        id.named_ports = vec![NamedPort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port,
        }];
        ids.push(id);
        // Pod addresses inside and outside the rules' CIDRs: CIDR peers must never hold pods.
        ips.push(IpAddr::from([
            192,
            0,
            2,
            c.pod_octets[i % c.pod_octets.len()],
        ]));
    }
    for (i, &(app, octet)) in c.hosts.iter().enumerate() {
        let a = IpAddr::from([192, 0, 2, 100 + octet + i as u8 * 4]);
        ids.push(Identity::host(
            &format!("h{i}"),
            labels(&[("app", APPS[app])]),
            vec![a],
        ));
        ips.push(a);
    }
    for a in ["198.51.100.9", "203.0.113.1", "10.1.1.1", "192.0.2.2"] {
        ids.push(Identity::external(ip(a)));
        ips.push(ip(a));
    }
    (ids, ips)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn istio_equals_the_evaluators_destination_side(c in case()) {
        let intent = load(&c.yaml);
        let (ids, ips) = cluster(&c);
        let out = match compile(&intent, &ids) {
            Ok(out) => out,
            // Shared service accounts may be too broad: that refusal is tested above.
            Err(CompileError::Unsupported { what, .. }) if what.contains("identity limit") => {
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", c.yaml))),
        };
        let errs = common::schema::validate_files(&out.files);
        prop_assert!(errs.is_empty(), "{errs:#?}");
        let docs = docs_of(&out.files);
        let d = disagreement(&intent, &ids, &ips, &docs, &[1, 79, 80, 85, 90, 91, 8080, 65535]);
        prop_assert!(d.is_none(), "{}\n{}\n{}", d.unwrap_or_default(), c.yaml,
            out.files.values().cloned().collect::<Vec<_>>().join("---\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Quarantine compiled for Istio.

#[test]
fn quarantine_compiles_to_istio_and_wins_over_application_allows() {
    use bulkhead_intent::quarantine::{self as q, Request, Subject};
    let dir = tempfile::tempdir().unwrap();
    let cfg = bulkhead_bank::Config {
        workloads: 120,
        ..bulkhead_bank::Config::default()
    };
    bulkhead_bank::write_inventory(&cfg, dir.path()).unwrap();
    let mut ids = inventory_from(
        &[&dir.path().join("inventory")],
        &[&dir.path().join("hosts.yaml")],
    );
    for id in &mut ids {
        if let IdentityKind::Workload { .. } = id.kind {
            id.service_account = Some(id.name.rsplit('/').next().unwrap().to_string());
        }
    }
    // The bank's policy plus a quarantine of the payment orchestrator, shared-infra keeping
    // access (monitoring, DNS).
    let pol = dir.path().join("policy");
    std::fs::create_dir_all(&pol).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pol.join(e.file_name())).unwrap();
    }
    let base = bulkhead_intent::load_paths(&[&pol]).intent;
    let victim = "payments/payment-orchestrator";
    let req = Request {
        subject: Subject::find(victim, &ids).unwrap(),
        allow_to: vec!["shared-infra".into()],
        reason: "INC-1".into(),
        who: "t".into(),
        created: 0,
        expires: None,
    };
    let r = q::render(&base, &ids, &req).unwrap();
    std::fs::create_dir_all(pol.join(q::DIR)).unwrap();
    std::fs::write(pol.join(&r.path), &r.yaml).unwrap();
    let loaded = bulkhead_intent::load_paths(&[&pol]);
    assert!(
        !loaded
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    );
    let intent = loaded.intent;
    let out = compile(&intent, &ids).expect("compiles with the quarantine");
    assert!(common::schema::validate_files(&out.files).is_empty());
    let docs = docs_of(&out.files);
    // The interpreter agrees with the evaluator everywhere.
    let pod_ips: Vec<IpAddr> = (0..ids.len())
        .map(|i| IpAddr::from([10, 244, (i / 250) as u8, (i % 250) as u8 + 1]))
        .collect();
    let ports = [22, 53, 443, 8443, 9090, 9100];
    assert_eq!(disagreement(&intent, &ids, &pod_ips, &docs, &ports), None);
    // And what it says: the API gateway, allowed to payments on 8443 by the application tier,
    // is now refused by the orchestrator's sidecar; prometheus (shared-infra) still gets in.
    let orch = ids.iter().find(|i| i.name == victim).unwrap();
    let ask = |src: &str, port: u16| {
        let s = ids.iter().find(|i| i.name == src).unwrap();
        let p = principal_of(s);
        istio_allows(
            &docs,
            "istio-system",
            "payments",
            &orch.labels,
            &Req {
                principal: p.as_deref(),
                ip: ip("10.244.9.9"),
                port,
            },
        )
    };
    assert!(!ask("edge/api-gateway", 8443));
    assert!(ask("shared-infra/prometheus", 9100));
    // Before the quarantine the gateway was allowed.
    let before = compile(&base, &ids).unwrap();
    let bdocs = docs_of(&before.files);
    let gw = ids.iter().find(|i| i.name == "edge/api-gateway").unwrap();
    assert!(istio_allows(
        &bdocs,
        "istio-system",
        "payments",
        &orch.labels,
        &Req {
            principal: principal_of(gw).as_deref(),
            ip: ip("10.244.9.9"),
            port: 8443,
        },
    ));
}
