//! The `calico` target: reasoning tests on small intents, schema validation of every object,
//! a reference interpreter of the emitted policies (Calico's documented tier/order/first-match
//! semantics) checked against the evaluator on random intents and clusters, and the golden files
//! of the bank example.

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

/// Calico's selector syntax, the subset the compiler writes: `all()`, or terms joined by `&&`:
/// `k == 'v'`, `k != 'v'`, `k in {..}`, `k not in {..}`, `has(k)`, `!has(k)`.
fn sel_matches(expr: &str, l: &Labels) -> bool {
    let expr = expr.trim();
    if expr == "all()" || expr.is_empty() {
        return true;
    }
    // `(a && b) || (c)`: the compiler joins segments' selectors with `||`.
    expr.split(" || ").any(|alt| {
        let alt = alt.trim();
        let alt = alt
            .strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .filter(|_| expr.contains(" || "))
            .unwrap_or(alt);
        alt == "all()" || alt.split(" && ").all(|t| term_matches(t.trim(), l))
    })
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '\'' || c == '"').to_string()
}

fn set_of(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .map(unquote)
        .collect()
}

fn term_matches(t: &str, l: &Labels) -> bool {
    if let Some(k) = t.strip_prefix("!has(") {
        return !l.contains_key(k.trim_end_matches(')'));
    }
    if let Some(k) = t.strip_prefix("has(") {
        return l.contains_key(k.trim_end_matches(')'));
    }
    if let Some((k, v)) = t.split_once(" == ") {
        return l.get(k.trim()) == Some(&unquote(v));
    }
    if let Some((k, v)) = t.split_once(" != ") {
        return l.get(k.trim()) != Some(&unquote(v));
    }
    if let Some((k, v)) = t.split_once(" not in ") {
        return l.get(k.trim()).is_none_or(|x| !set_of(v).contains(x));
    }
    if let Some((k, v)) = t.split_once(" in ") {
        return l.get(k.trim()).is_some_and(|x| set_of(v).contains(x));
    }
    panic!("selector term the interpreter does not know: {t:?}")
}

fn nets_contain(nets: &Value, ip: IpAddr) -> bool {
    nets.as_array().unwrap().iter().any(|c| {
        let s = c.as_str().unwrap();
        bulkhead_core::IpSet::cidr(s).unwrap().contains(ip)
    })
}

/// Calico's labels of a workload endpoint: its own plus the ones Calico adds.
fn endpoint_labels(n: &Node) -> Option<(Labels, Labels)> {
    match &n.id.kind {
        IdentityKind::Workload {
            namespace,
            namespace_labels,
        } => {
            let mut l = n.id.labels.clone();
            l.insert("projectcalico.org/orchestrator".into(), "k8s".into());
            l.insert("projectcalico.org/namespace".into(), namespace.clone());
            Some((l, namespace_labels.clone()))
        }
        // No HostEndpoints or network sets in the test cluster: hosts and external addresses
        // are plain addresses to Calico.
        _ => None,
    }
}

/// Does a rule's `source`/`destination` match node `n` seen at address `ip`? A selector
/// without `namespaceSelector` (in a global policy) also matches global network sets: the
/// addresses in the `nets` of those whose labels it matches.
fn entity_matches(e: Option<&Value>, n: &Node, ip: IpAddr, docs: &[Value]) -> bool {
    let Some(e) = e else { return true };
    let ep = endpoint_labels(n);
    if let Some(nets) = e.get("nets")
        && !nets_contain(nets, ip)
    {
        return false;
    }
    if let Some(s) = e.get("selector").and_then(Value::as_str) {
        let ns = e.get("namespaceSelector").and_then(Value::as_str);
        let endpoint = match (&ep, ns) {
            (Some((l, nsl)), Some(ns)) => sel_matches(ns, nsl) && sel_matches(s, l),
            (Some((l, _)), None) => sel_matches(s, l),
            (None, _) => false,
        };
        // Without a namespaceSelector, global network sets match too, by address.
        let in_set = ns.is_none()
            && docs.iter().any(|d| {
                d["kind"] == "GlobalNetworkSet"
                    && sel_matches(s, &labels_of(&d["metadata"]["labels"]))
                    && nets_contain(&d["spec"]["nets"], ip)
            });
        if !(endpoint || in_set) {
            return false;
        }
    }
    if let Some(s) = e.get("notSelector").and_then(Value::as_str)
        && ep.as_ref().is_some_and(|(l, _)| sel_matches(s, l))
    {
        return false;
    }
    true
}

fn labels_of(v: &Value) -> Labels {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn port_matches(ports: Option<&Value>, dst: &Node, p: Protocol, port: u16) -> bool {
    let Some(ports) = ports else { return true };
    ports.as_array().unwrap().iter().any(|v| match v {
        Value::Number(n) => n.as_u64() == Some(port as u64),
        Value::String(s) => match s.split_once(':') {
            Some((a, b)) => (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&port),
            None => dst
                .id
                .named_ports
                .iter()
                .any(|np| np.name == *s && np.protocol == p && np.port == port),
        },
        _ => false,
    })
}

fn rule_matches(r: &Value, c: &Conn, docs: &[Value]) -> bool {
    if let Some(p) = r.get("protocol").and_then(Value::as_str)
        && p != c.proto.as_str()
    {
        return false;
    }
    if let Some(v) = r.get("ipVersion").and_then(Value::as_u64)
        && (v == 6) != c.v6
    {
        return false;
    }
    let (sip, dip) = (c.src.ips(c.v6)[0], c.dst.ips(c.v6)[0]);
    let d = r.get("destination");
    entity_matches(r.get("source"), c.src, sip, docs)
        && entity_matches(d, c.dst, dip, docs)
        && port_matches(d.and_then(|d| d.get("ports")), c.dst, c.proto, c.port)
}

/// One side (`egress` of the source or `ingress` of the destination) under the enforcing objects:
/// tiers by order, the policies of a tier that select the endpoint by order then name, first
/// matching rule; `Pass` goes to the next tier, a tier with selecting policies but no match takes
/// its `defaultAction`; after the last tier (or with no selecting policy) the rest of the
/// cluster's defaults apply, i.e. allow. Staged policies are ignored.
fn side(docs: &[Value], ep: &Node, dir: &str, c: &Conn) -> Out {
    let Some((l, nsl)) = endpoint_labels(ep) else {
        return Out::Allow;
    };
    let mut tiers: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Tier").collect();
    tiers.sort_by(|a, b| {
        let o = |d: &Value| d["spec"]["order"].as_f64().unwrap_or(f64::INFINITY);
        o(a).partial_cmp(&o(b)).unwrap().then(
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str()),
        )
    });
    for t in tiers {
        let tname = t["metadata"]["name"].as_str().unwrap();
        let mut pols: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "GlobalNetworkPolicy" && d["spec"]["tier"] == tname)
            .filter(|d| {
                let s = &d["spec"];
                let types = s["types"].as_array().unwrap();
                let ty = if dir == "ingress" {
                    "Ingress"
                } else {
                    "Egress"
                };
                types.iter().any(|t| t == ty)
                    && s["namespaceSelector"]
                        .as_str()
                        .is_none_or(|e| sel_matches(e, &nsl))
                    && sel_matches(s["selector"].as_str().unwrap_or("all()"), &l)
            })
            .collect();
        if pols.is_empty() {
            continue;
        }
        pols.sort_by(|a, b| {
            let o = |d: &Value| d["spec"]["order"].as_f64().unwrap_or(f64::INFINITY);
            o(a).partial_cmp(&o(b)).unwrap().then(
                a["metadata"]["name"]
                    .as_str()
                    .cmp(&b["metadata"]["name"].as_str()),
            )
        });
        let mut passed = false;
        'policies: for p in pols {
            for r in p["spec"][dir].as_array().into_iter().flatten() {
                if rule_matches(r, c, docs) {
                    match r["action"].as_str().unwrap() {
                        "Allow" => return Out::Allow,
                        "Deny" => return Out::Deny,
                        "Pass" => {
                            passed = true;
                            break 'policies;
                        }
                        a => panic!("action {a}"),
                    }
                }
            }
        }
        if !passed && t["spec"]["defaultAction"].as_str().unwrap_or("Deny") == "Deny" {
            return Out::Deny;
        }
    }
    Out::Allow
}

/// Would Calico drop the connection?
fn drops(docs: &[Value], src: &Node, dst: &Node, p: Protocol, port: u16) -> bool {
    interp::drops(side, docs, src, dst, p, port)
}

/// Compares the interpreter with the evaluator on every pair and connection of `nodes`.
fn agree(intent: &Intent, nodes: &[Node]) -> Result<(), String> {
    let opts = Options {
        inventory: inventory(nodes),
        ..Default::default()
    };
    let compiled = compile(intent, Target::Calico, &opts).map_err(|e| format!("compile: {e}"))?;
    interp::pairwise(side, "calico", intent, &compiled, nodes)
}

// ---------------------------------------------------------------- reasoning tests

fn calico_drops(intent: &Intent, src: &str, dst: &str, p: Protocol, port: u16) -> bool {
    interp::compiled_drops(Target::Calico, side, intent, src, dst, p, port)
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
    assert!(!calico_drops(&i, "/p0", "/p1", Protocol::Tcp, 5432));
    // web → db:80: the guardrail denies before the application allow.
    assert!(calico_drops(&i, "/p0", "/p1", Protocol::Tcp, 80));
    // db → web: nothing allows it; both are enforced: default deny.
    assert!(calico_drops(&i, "/p1", "/p0", Protocol::Tcp, 80));
    agree(&i, &nodes()).unwrap();
}

#[test]
fn observe_never_drops_and_is_staged_and_unmanaged_is_never_a_subject() {
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
    assert!(!calico_drops(&i, "/p2", "/p3", Protocol::Tcp, 80));
    assert!(!calico_drops(&i, "/p3", "/p2", Protocol::Udp, 53));
    // web (enforced) → unmanaged: dropped on web's egress.
    assert!(calico_drops(&i, "/p0", "/p3", Protocol::Tcp, 80));
    let c = compile(&i, Target::Calico, &Options::default()).unwrap();
    let docs = all_docs(&c);
    // The observe segment's subjects are only in staged objects.
    for d in &docs {
        if d["metadata"]["annotations"]["bulkhead.dev/segment"]
            .as_str()
            .is_some_and(|s| s.split(',').any(|s| s == "watch"))
        {
            assert_eq!(d["kind"], "StagedGlobalNetworkPolicy", "{d}");
        }
        // No enforcing object selects what no enforced segment selects.
        if d["kind"] == "GlobalNetworkPolicy" {
            let s = d["spec"]["selector"].as_str().unwrap();
            assert_eq!(s, "(app == 'b') || (app == 'a')");
        }
    }
    assert!(c.notes.iter().any(|n| n.contains("Staged")));
    // What observe mode would block is shown, staged, including the default deny.
    assert!(docs.iter().any(|d| d["kind"] == "StagedGlobalNetworkPolicy"
        && d["metadata"]["name"] == "bulkhead-enforce.default-deny.watch"));
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
    assert!(calico_drops(&i, "/p0", "/p1", Protocol::Tcp, 80));
    assert!(!calico_drops(&i, "/p0", "/p1", Protocol::Tcp, 443));
    assert!(!calico_drops(&i, "/p1", "/p0", Protocol::Tcp, 80));
    assert!(agree(&i, &nodes()).is_ok());
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
    assert!(calico_drops(&i, "/p0", "/p1", Protocol::Udp, 53));
    // web → unmanaged UDP/53: allowed by the baseline.
    assert!(!calico_drops(&i, "/p0", "/p3", Protocol::Udp, 53));
    agree(&i, &nodes()).unwrap();
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
    assert!(calico_drops(&i, "/p0", "/p3", Protocol::Tcp, 80));
    let ns = nodes();
    let ext = ns.iter().find(|n| n.id.name == "203.0.113.7").unwrap();
    let c = compile(&i, Target::Calico, &Options::default()).unwrap();
    assert!(!drops(
        &all_docs(&c),
        node(&ns, "/p0"),
        ext,
        Protocol::Tcp,
        80
    ));
    agree(&i, &ns).unwrap();
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
    let e = compile(&i, Target::Calico, &Options::default()).unwrap_err();
    assert!(matches!(e, CompileError::Unsupported { .. }));
    let msg = e.to_string();
    assert!(msg.starts_with("intent.yaml:"), "{msg}");
    assert!(
        msg.contains("to-vms") && msg.contains("without an inventory"),
        "{msg}"
    );
}

#[test]
fn long_names_are_refused() {
    let long = "x".repeat(250);
    let i = load(&format!(
        "apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata: {{name: {long}}}\nspec: {{podSelector: {{}}, mode: enforce}}\n---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  tier: application\n  rules:\n    - {{action: allow, from: [{{any: true}}], to: [{{any: true}}]}}\n"
    ));
    let e = compile(&i, Target::Calico, &Options::default()).unwrap_err();
    assert!(matches!(e, CompileError::Limit { .. }), "{e}");
}

// ---------------------------------------------------------------- the bank, goldens

fn bank() -> Compiled {
    let intent = bank_intent();
    let opts = Options {
        inventory: bank_hosts(&intent),
        ..Default::default()
    };
    compile(&intent, Target::Calico, &opts).unwrap()
}

#[test]
fn bank_validates_against_the_published_schemas() {
    let c = bank();
    let errs = validate_files(&c.files);
    assert!(errs.is_empty(), "{errs:#?}");
    let docs = all_docs(&c);
    assert!(docs.iter().any(|d| d["kind"] == "Tier"));
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "StagedGlobalNetworkPolicy")
    );
    // Every object says where it came from.
    for d in &docs {
        if d["kind"] != "Tier" {
            let src = d["metadata"]["annotations"]["bulkhead.dev/source"]
                .as_str()
                .unwrap();
            assert!(src.contains(".yaml:"), "{src}");
        }
    }
}

#[test]
fn bank_golden() {
    interp::golden("calico", &bank());
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// On random intents and clusters Calico drops exactly what the evaluator denies (on the
    /// workloads' sides), every object validates, and compile never panics.
    #[test]
    fn interpreter_equals_evaluator(y in intent_yaml(), pods in pods()) {
        let l = bulkhead_intent::load_str("intent.yaml", &y);
        prop_assume!(!l.has_errors());
        let nodes = cluster(&pods);
        if let Err(e) = agree(&l.intent, &nodes) {
            prop_assert!(false, "{e}\n{y}");
        }
    }

    /// Compile never panics, with or without an inventory, and what it emits validates.
    #[test]
    fn never_panics_and_validates(y in intent_yaml()) {
        let l = bulkhead_intent::load_str("intent.yaml", &y);
        prop_assume!(!l.has_errors());
        if let Ok(c) = compile(&l.intent, Target::Calico, &Options::default()) {
            let errs = validate_files(&c.files);
            prop_assert!(errs.is_empty(), "{errs:#?}");
        }
    }
}
