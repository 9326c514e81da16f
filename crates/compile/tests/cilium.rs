//! The `cilium` target: reasoning tests on small intents, schema validation of every object,
//! a reference interpreter of the emitted policies (Cilium's documented semantics: an endpoint
//! selected by a policy with rules for a direction, or `enableDefaultDeny`, is default-deny; a
//! connection is allowed iff an allow rule matches and no deny rule does) checked against the
//! evaluator on random intents and clusters, and the golden file of the bank example.

mod common;
mod interp;
mod support;

use bulkhead_compile::{CompileError, Compiled, Options, Target, compile};
use bulkhead_core::{Labels, Protocol};
use bulkhead_intent::{IdentityKind, Intent};
use common::schema::validate_files;
use interp::{Conn, Out, all_docs, node, nodes, small};
use proptest::prelude::*;
use serde_json::Value;
use std::net::IpAddr;
use support::*;

// ---------------------------------------------------------------- the reference interpreter

/// Cilium's labels of a pod's endpoint (source `k8s`).
fn endpoint_labels(n: &Node) -> Option<Labels> {
    match &n.id.kind {
        IdentityKind::Workload {
            namespace,
            namespace_labels,
        } => {
            let mut l: Labels =
                n.id.labels
                    .iter()
                    .map(|(k, v)| (format!("k8s:{k}"), v.clone()))
                    .collect();
            for (k, v) in namespace_labels {
                l.insert(format!("k8s:io.cilium.k8s.namespace.labels.{k}"), v.clone());
            }
            l.insert("k8s:io.kubernetes.pod.namespace".into(), namespace.clone());
            Some(l)
        }
        _ => None,
    }
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`) over a label set.
fn sel_matches(sel: &Value, l: &Labels) -> bool {
    let labels_ok = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| l.get(k).map(String::as_str) == v.as_str());
    let exprs_ok = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let v = l.get(e["key"].as_str().unwrap());
            let vals: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| x.as_str().unwrap())
                .collect();
            match e["operator"].as_str().unwrap() {
                "In" => v.is_some_and(|v| vals.contains(&v.as_str())),
                "NotIn" => v.is_none_or(|v| !vals.contains(&v.as_str())),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                o => panic!("operator {o}"),
            }
        });
    labels_ok && exprs_ok
}

/// Does the rule's peer (`to*` on egress, `from*` on ingress) hold node `n` at `ip`? A rule
/// without peers matches nothing.
fn peer_matches(rule: &Value, dir: &str, n: &Node, ip: IpAddr, docs: &[Value]) -> bool {
    let ents = rule[format!("{dir}Entities")]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e == "all"));
    let eps = endpoint_labels(n).is_some_and(|l| {
        rule[format!("{dir}Endpoints")]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| sel_matches(s, &l)))
    });
    // CIDR rules never select cluster endpoints.
    let cidrs = !n.is_pod()
        && rule[format!("{dir}CIDRSet")].as_array().is_some_and(|a| {
            a.iter().any(|c| {
                let contains = |cidr: &Value| {
                    bulkhead_core::IpSet::cidr(cidr.as_str().unwrap())
                        .unwrap()
                        .contains(ip)
                };
                // A CIDR group: the group's external CIDRs.
                let inside = match c.get("cidrGroupRef") {
                    Some(name) => docs.iter().any(|d| {
                        d["kind"] == "CiliumCIDRGroup"
                            && d["metadata"]["name"] == *name
                            && d["spec"]["externalCIDRs"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(contains)
                    }),
                    None => contains(&c["cidr"]),
                };
                let except = c["except"].as_array().into_iter().flatten().any(|x| {
                    bulkhead_core::IpSet::cidr(x.as_str().unwrap())
                        .unwrap()
                        .contains(ip)
                });
                inside && !except
            })
        });
    ents || eps || cidrs
}

fn ports_match(rule: &Value, dst: &Node, p: Protocol, port: u16) -> bool {
    let Some(tp) = rule["toPorts"].as_array() else {
        return true;
    };
    tp.iter()
        .flat_map(|e| e["ports"].as_array().into_iter().flatten())
        .any(|pp| {
            let proto = pp["protocol"].as_str().unwrap_or("ANY");
            if proto != "ANY" && proto != p.as_str() {
                return false;
            }
            let ps = pp["port"].as_str().unwrap();
            match ps.parse::<u16>() {
                Ok(a) => {
                    let b = pp["endPort"].as_u64().map(|b| b as u16).unwrap_or(a);
                    a == 0 || (a..=b).contains(&port)
                }
                Err(_) => dst
                    .id
                    .named_ports
                    .iter()
                    .any(|np| np.name == ps && np.protocol == p && np.port == port),
            }
        })
}

/// One side of a connection: `egress` of the source or `ingress` of the destination.
fn side(docs: &[Value], ep: &Node, dir: &str, c: &Conn) -> Out {
    let Some(l) = endpoint_labels(ep) else {
        return Out::Allow;
    };
    let (pdir, peer) = if dir == "egress" {
        ("to", c.dst)
    } else {
        ("from", c.src)
    };
    let ip = peer.ips(c.v6)[0];
    let selecting: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "CiliumClusterwideNetworkPolicy")
        .filter(|d| sel_matches(&d["spec"]["endpointSelector"], &l))
        .collect();
    let deny_list = format!("{dir}Deny");
    let default_deny = selecting.iter().any(|d| {
        let s = &d["spec"];
        match s["enableDefaultDeny"][dir].as_bool() {
            Some(b) => b,
            None => s.get(dir).is_some() || s.get(&deny_list).is_some(),
        }
    });
    let matches = |list: &str| {
        selecting.iter().any(|d| {
            d["spec"][list].as_array().into_iter().flatten().any(|r| {
                peer_matches(r, pdir, peer, ip, docs) && ports_match(r, c.dst, c.proto, c.port)
            })
        })
    };
    if matches(&deny_list) {
        return Out::Deny;
    }
    if !default_deny || matches(dir) {
        Out::Allow
    } else {
        Out::Deny
    }
}

/// Would Cilium drop the connection?
fn drops(docs: &[Value], src: &Node, dst: &Node, p: Protocol, port: u16) -> bool {
    interp::drops(side, docs, src, dst, p, port)
}

/// Compares the interpreter with the evaluator on every pair and connection of `nodes`.
/// `Ok(false)`: the target refused the intent (an explicit error naming the place).
fn agree(intent: &Intent, nodes: &[Node]) -> Result<bool, String> {
    let opts = Options {
        inventory: inventory(nodes),
        ..Default::default()
    };
    let compiled = match compile(intent, Target::Cilium, &opts) {
        Ok(c) => c,
        Err(CompileError::Unsupported { loc, .. }) if loc.line > 0 => return Ok(false),
        Err(e) => return Err(format!("compile: {e}")),
    };
    interp::pairwise(side, "cilium", intent, &compiled, nodes)?;
    Ok(true)
}

// ---------------------------------------------------------------- reasoning tests

fn cilium_drops(intent: &Intent, src: &str, dst: &str, p: Protocol, port: u16) -> bool {
    interp::compiled_drops(Target::Cilium, side, intent, src, dst, p, port)
}

#[test]
fn guardrail_deny_beats_application_allow_and_pass_reaches_it() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: pass, from: [{segment: web}], to: [{segment: db}], ports: [{port: 5432}]}
    - {action: deny, from: [{any: true}], to: [{segment: db}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{segment: db}]}
"#,
    );
    // web → db:5432 passes the guardrail and the application tier allows it.
    assert!(!cilium_drops(&i, "/p0", "/p1", Protocol::Tcp, 5432));
    // web → db:80: the guardrail denies before the application allow.
    assert!(cilium_drops(&i, "/p0", "/p1", Protocol::Tcp, 80));
    // db → web: nothing allows it; both are enforced: default deny.
    assert!(cilium_drops(&i, "/p1", "/p0", Protocol::Tcp, 80));
    assert!(agree(&i, &nodes()).unwrap());
}

#[test]
fn observe_and_unmanaged_are_never_subjects() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: deny, from: [{any: true}], to: [{any: true}]}
"#,
    );
    // watch (observe) → unlabelled pod (unmanaged): deny rule, but nobody enforced: allowed.
    assert!(!cilium_drops(&i, "/p2", "/p3", Protocol::Tcp, 80));
    assert!(!cilium_drops(&i, "/p3", "/p2", Protocol::Udp, 53));
    // web (enforced) → unmanaged: dropped on web's egress.
    assert!(cilium_drops(&i, "/p0", "/p3", Protocol::Tcp, 80));
    let c = compile(&i, Target::Cilium, &Options::default()).unwrap();
    let docs = all_docs(&c);
    // Every subject is inside an enforced segment (app a or app b), never the observed app c
    // or unlabelled pods.
    for d in &docs {
        let sel = &d["spec"]["endpointSelector"];
        let mut apps: Vec<&str> = sel["matchLabels"]["k8s:app"].as_str().into_iter().collect();
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            if e["key"] == "k8s:app" && e["operator"] == "In" {
                apps.extend(
                    e["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap()),
                );
            }
        }
        assert!(
            !apps.is_empty() && apps.iter().all(|a| ["a", "b"].contains(a)),
            "{sel}"
        );
    }
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("observe-mode segments (watch)"))
    );
}

#[test]
fn a_deny_after_an_allow_skipped_by_a_pass_still_denies() {
    // web → db TCP/80: the guardrail passes it (so its allow is skipped), the application
    // tier denies it; the baseline's allow of everything must not let it through. Other ports:
    // the guardrail's allow.
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {action: pass, from: [{segment: web}], to: [{segment: db}], ports: [{port: 80}]}
    - {action: allow, from: [{segment: web}], to: [{segment: db}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: a}
spec:
  tier: application
  rules:
    - {action: deny, from: [{segment: web}], to: [{segment: db}]}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: b}
spec:
  tier: baseline
  rules:
    - {action: allow, from: [{any: true}], to: [{any: true}]}
"#,
    );
    assert!(cilium_drops(&i, "/p0", "/p1", Protocol::Tcp, 80));
    assert!(!cilium_drops(&i, "/p0", "/p1", Protocol::Tcp, 443));
    assert!(!cilium_drops(&i, "/p1", "/p0", Protocol::Tcp, 80));
    assert!(agree(&i, &nodes()).unwrap());
}

#[test]
fn many_host_addresses_go_to_a_cidr_group() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{selector: {hostSelector: {matchLabels: {app: a}}}}]}
"#,
    );
    let mut ns = nodes();
    for k in 1..=5 {
        ns.push(Node {
            id: bulkhead_intent::Identity::host(
                &format!("vm{k}"),
                labels(&[("app", "a")]),
                vec![format!("192.0.2.{}", k * 20).parse().unwrap()],
            ),
            pod_ips: vec![],
        });
    }
    let c = compile(
        &i,
        Target::Cilium,
        &Options {
            inventory: inventory(&ns),
            ..Default::default()
        },
    )
    .unwrap();
    let groups = &c.files["cilium/ciliumcidrgroups.yaml"];
    assert!(groups.contains("192.0.2.100/32") && groups.contains("192.0.2.10/32"));
    assert!(validate_files(&c.files).is_empty());
    let vm = ns.iter().find(|n| n.id.name == "vm3").unwrap();
    assert!(!drops(
        &all_docs(&c),
        node(&ns, "/p0"),
        vm,
        Protocol::Tcp,
        22
    ));
    assert!(agree(&i, &ns).unwrap());
}

#[test]
fn baseline_pass_still_ends_in_the_default_deny() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: b}
spec:
  tier: baseline
  rules:
    - {action: pass, from: [{any: true}], to: [{segment: db}], ports: [{protocol: UDP, port: 53}]}
    - {action: allow, from: [{any: true}], to: [{any: true}], ports: [{protocol: UDP, port: 53}]}
"#,
    );
    // web → db UDP/53: the baseline passes, nothing after it: the default deny of enforced.
    assert!(cilium_drops(&i, "/p0", "/p1", Protocol::Udp, 53));
    // web → unmanaged UDP/53: allowed by the baseline.
    assert!(!cilium_drops(&i, "/p0", "/p3", Protocol::Udp, 53));
    assert!(agree(&i, &nodes()).unwrap());
}

#[test]
fn cidr_peers_never_match_pods() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - {action: allow, from: [{segment: web}], to: [{cidr: 0.0.0.0/0}]}
"#,
    );
    // The pods' own addresses are inside 0.0.0.0/0, yet the rule does not pick pods.
    assert!(cilium_drops(&i, "/p0", "/p3", Protocol::Tcp, 80));
    let ns = nodes();
    let ext = ns.iter().find(|n| n.id.name == "203.0.113.7").unwrap();
    let c = compile(&i, Target::Cilium, &Options::default()).unwrap();
    assert!(!drops(
        &all_docs(&c),
        node(&ns, "/p0"),
        ext,
        Protocol::Tcp,
        80
    ));
    assert!(agree(&i, &ns).unwrap());
}

#[test]
fn hosts_without_an_inventory_are_refused_with_the_place() {
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: app}
spec:
  tier: application
  rules:
    - name: to-vms
      action: allow
      from: [{segment: web}]
      to: [{selector: {hostSelector: {matchLabels: {app: a}}}}]
"#,
    );
    let e = compile(&i, Target::Cilium, &Options::default()).unwrap_err();
    assert!(matches!(e, CompileError::Unsupported { .. }));
    let msg = e.to_string();
    assert!(msg.starts_with("intent.yaml:"), "{msg}");
    assert!(
        msg.contains("to-vms") && msg.contains("without an inventory"),
        "{msg}"
    );
}

#[test]
fn a_named_port_that_must_be_subtracted_is_refused_naming_both_rules() {
    // The deny must not cover what the pass lets through, but what `http` resolves to depends
    // on the destination: Cilium cannot say "every port but http".
    let i = small(
        r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: g}
spec:
  tier: guardrail
  rules:
    - {name: web-http, action: pass, from: [{segment: web}], to: [{segment: db}], ports: [{port: http}]}
    - {name: nobody-else, action: deny, from: [{any: true}], to: [{segment: db}]}
"#,
    );
    let e = compile(&i, Target::Cilium, &Options::default()).unwrap_err();
    let CompileError::Unsupported { loc, what, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(loc.file, "intent.yaml");
    assert!(loc.line > 0);
    assert!(
        what.contains("\"nobody-else\"")
            && what.contains("\"web-http\"")
            && what.contains("intent.yaml:"),
        "{what}"
    );
    // Calico keeps the order: no refusal there.
    assert!(compile(&i, Target::Calico, &Options::default()).is_ok());
}

#[test]
fn long_names_are_refused() {
    let long = "x".repeat(250);
    let i = load(&format!(
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: {long}}}\nspec: {{podSelector: {{}}, mode: enforce}}\n---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n    - {{action: allow, from: [{{any: true}}], to: [{{any: true}}]}}\n"
    ));
    let e = compile(&i, Target::Cilium, &Options::default()).unwrap_err();
    assert!(matches!(e, CompileError::Limit { .. }), "{e}");
}

// ---------------------------------------------------------------- the bank, goldens

fn bank() -> Compiled {
    let intent = bank_intent();
    let opts = Options {
        inventory: bank_hosts(&intent),
        ..Default::default()
    };
    compile(&intent, Target::Cilium, &opts).unwrap()
}

#[test]
fn bank_validates_against_the_published_schemas() {
    let c = bank();
    let errs = validate_files(&c.files);
    assert!(errs.is_empty(), "{errs:#?}");
    let docs = all_docs(&c);
    assert!(docs.iter().any(|d| d["spec"].get("ingressDeny").is_some()));
    // Every object says where it came from.
    for d in &docs {
        {
            let src = d["metadata"]["annotations"]["bulkhead.dev/source"]
                .as_str()
                .unwrap();
            assert!(src.contains(".yaml:"), "{src}");
        }
    }
}

#[test]
fn bank_golden() {
    interp::golden("cilium", &bank());
}

// ---------------------------------------------------------------- properties

/// Refusals are explicit and rare: most random intents compile (the rewrite is exact for them).
#[test]
fn most_random_intents_compile() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..150 {
        let y = intent_yaml().new_tree(&mut runner).unwrap().current();
        let pods = pods().new_tree(&mut runner).unwrap().current();
        let l = bulkhead_intent::load_str("intent.yaml", &y);
        if l.has_errors() {
            continue;
        }
        match agree(&l.intent, &cluster(&pods)) {
            Ok(true) => ok += 1,
            Ok(false) => refused += 1,
            Err(e) => panic!("{e}\n{y}"),
        }
    }
    eprintln!("compiled {ok}, refused {refused}");
    assert!(
        ok >= 4 * refused && ok > 50,
        "compiled {ok}, refused {refused}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// On random intents and clusters Cilium drops exactly what the evaluator denies (on the
    /// workloads' sides), every object validates, and compile never panics.
    #[test]
    fn interpreter_equals_evaluator(y in intent_yaml(), pods in pods()) {
        let l = bulkhead_intent::load_str("intent.yaml", &y);
        prop_assume!(!l.has_errors());
        let nodes = cluster(&pods);
        // Ok(false): refused with the place named (most_random_intents_compile: how often).
        if let Err(e) = agree(&l.intent, &nodes) {
            prop_assert!(false, "{e}\n{y}");
        }
    }

    /// Compile never panics, with or without an inventory, and what it emits validates.
    #[test]
    fn never_panics_and_validates(y in intent_yaml()) {
        let l = bulkhead_intent::load_str("intent.yaml", &y);
        prop_assume!(!l.has_errors());
        match compile(&l.intent, Target::Cilium, &Options::default()) {
            Ok(c) => {
                let errs = validate_files(&c.files);
                prop_assert!(errs.is_empty(), "{errs:#?}");
            }
            // Every refusal names the rule's place.
            Err(CompileError::Unsupported { loc, .. }) => prop_assert!(loc.line > 0),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
