//! The `calico` target: Calico `projectcalico.org/v3` tiers and (staged) global network policies.
//!
//! Calico evaluates, per endpoint and direction, its tiers in `order`; in a tier the policies that
//! select the endpoint in `order` (then name), rules in order. The first rule that matches decides:
//! `Allow` and `Deny` end the evaluation, `Pass` skips the rest of the tier. An endpoint selected by
//! some policy of a tier that matches no rule gets the tier's `defaultAction`; a tier none of whose
//! policies selects the endpoint is skipped. That is the evaluator's first match with `pass`, so the
//! intent maps rule for rule:
//!
//! - three tiers `bulkhead-guardrail` (order 100), `bulkhead-application` (200) and
//!   `bulkhead-baseline` (300), ahead of `kube-admin` (AdminNetworkPolicy, 1000), the `default`
//!   tier (Kubernetes NetworkPolicies and Calico policies, 1,000,000) and `kube-baseline`
//!   (10,000,000): Bulkhead decides its enforced workloads before anything else. The three end
//!   with `defaultAction: Pass` (an unmatched connection goes on to the next tier, as in the
//!   evaluator); a fourth tier `bulkhead-enforce` (order 400, `defaultAction: Deny`) holds one
//!   policy per enforced segment that denies everything (`bulkhead-enforce.default-deny.<seg>`):
//!   the default deny of enforced segments, reached also after a `pass` in the baseline tier;
//! - one `GlobalNetworkPolicy` per intent policy and enforced segment, in the intent policy's
//!   tier, `order` = its position in the tier, selecting the segment's workloads
//!   (`namespaceSelector` + `selector`; `namespaceSelector: all()` when the segment has none, so
//!   host endpoints are never subjects), with the same rules on ingress and egress. Each rule
//!   names both ends (`source` and `destination`), so on the egress side the `source` matches the
//!   subject itself and on the ingress side the `destination` does: the rule chain is the
//!   evaluator's for the pair on both sides;
//! - observe-mode segments get the same policies, and the default deny, as
//!   `StagedGlobalNetworkPolicy`: Calico shows what they would do and enforces nothing. Workloads in no enforced segment are never a
//!   subject of an enforcing policy, so they never hit a `Deny`;
//! - peers: workloads → `namespaceSelector` (`all()` when none) + `selector` (pods only, never
//!   host endpoints or global network sets); hosts → a `GlobalNetworkSet` per host selector
//!   (`bulkhead-hosts-<n>`, labelled `bulkhead.dev/hosts: hosts-<n>`) holding their inventory
//!   addresses, selected by that label (no `namespaceSelector`: global network sets match);
//!   CIDRs → `nets` with `notSelector: projectcalico.org/orchestrator == 'k8s'` (CIDR peers never
//!   match pods); `any` → no criteria. A peer list is a union, so a rule becomes one Calico rule
//!   per (source peer, destination peer, protocol, IP version) in a row with the same action —
//!   first match is unchanged.
//!
//! Hosts in enforced segments are enforced by the `nftables` target on the hosts themselves; the
//! Calico output selects workloads only (a note says so).

use crate::lower::{LPeer, LRule, Lowered, WorkloadSel, check_name, workload_part, yaml_doc};
use crate::{CompileError, Compiled, Options, Target};
use bulkhead_core::{IpSet, Operator, Protocol, Selector};
use bulkhead_intent::{Action, IdentityKind, Intent, Segment, Tier};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const API: &str = "projectcalico.org/v3";
/// Tier orders (see the module documentation).
pub const TIER_ORDER: [(Tier, u32); 3] = [
    (Tier::Guardrail, 100),
    (Tier::Application, 200),
    (Tier::Baseline, 300),
];
/// The tier holding the default deny of enforced segments, after the intent's tiers: a `pass`
/// in the baseline tier skips the rest of that tier, but must still end in the default deny.
pub const ENFORCE_TIER: &str = "bulkhead-enforce";
pub const ENFORCE_ORDER: u32 = 400;
/// Calico's selector fields are at most this long (the CRD's `maxLength`).
const MAX_SELECTOR: usize = 1024;
/// Calico rules per policy object; longer intent policies are split into consecutive objects
/// (keeps each object well below the API server's request size limit).
pub const MAX_RULES_PER_OBJECT: usize = 400;
/// The label Calico puts on every Kubernetes workload endpoint.
pub const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";

pub fn tier_name(t: Tier) -> String {
    format!("bulkhead-{}", t.as_str())
}

/// Compiles `intent` for `calico`.
pub fn compile(intent: &Intent, opts: &Options) -> Result<Compiled, CompileError> {
    let low = Lowered::new(intent, Target::Calico, opts)?;
    let mut notes = Vec::new();
    let has_hosts = opts.inventory.iter().any(|i| i.kind == IdentityKind::Host);

    let subjects = |segs: &[&'_ Segment]| -> Vec<(String, WorkloadSel)> {
        segs.iter()
            .filter_map(|s| workload_part(&s.selector).map(|w| (s.name().to_string(), w)))
            .collect()
    };
    let enforced = subject_groups(subjects(&low.enforced))?;
    let observed = subject_groups(subjects(&low.observed))?;
    for s in low.enforced.iter().chain(&low.observed) {
        if s.selector.hosts.is_some() {
            notes.push(format!(
                "calico: segment {} selects hosts: Calico policies here select its Kubernetes workloads only; its hosts are enforced by the nftables target",
                s.name()
            ));
        }
    }
    if !low.observed.is_empty() {
        notes.push(format!(
            "calico: observe-mode segments ({}) are compiled to StagedGlobalNetworkPolicy: shown by Calico, never enforced",
            low.observed
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Rules of each intent policy, in evaluation order.
    let mut groups: Vec<(Tier, Vec<&LRule>)> = Vec::new();
    for r in &low.rules {
        match groups.last_mut() {
            Some((_, v)) if std::ptr::eq(v[0].policy, r.policy) => v.push(r),
            _ => groups.push((r.tier, vec![r])),
        }
    }

    let mut docs: BTreeMap<&'static str, Vec<(String, Value)>> = BTreeMap::new();
    // Tiers.
    let tiers = TIER_ORDER
        .iter()
        .map(|&(t, o)| (tier_name(t), t.as_str(), o, "Pass"))
        .chain([(ENFORCE_TIER.to_string(), "enforce", ENFORCE_ORDER, "Deny")]);
    for (name, what, order, default) in tiers {
        docs.entry("tiers").or_default().push((
            name.clone(),
            json!({"apiVersion": API, "kind": "Tier",
                   "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                                "annotations": {"bulkhead.dev/tier": what}},
                   "spec": {"order": order, "defaultAction": default}}),
        ));
    }
    let mut position: BTreeMap<Tier, usize> = BTreeMap::new();
    let mut sets = HostSets::default();
    for (tier, rules) in &groups {
        let policy = rules[0].policy;
        let mut crules = Vec::new();
        for r in rules {
            let expanded = rule(r, has_hosts, &mut sets)?;
            if expanded.is_empty() {
                notes.push(format!(
                    "calico: {} ({}) matches nothing here (a peer picks no host of the inventory): no Calico rule",
                    r.label(),
                    r.loc()
                ));
            }
            crules.extend(expanded);
        }
        let chunks: Vec<&[Value]> = if crules.is_empty() {
            vec![&[][..]]
        } else {
            crules.chunks(MAX_RULES_PER_OBJECT).collect()
        };
        for chunk in chunks {
            let pos = position.entry(*tier).or_insert(0);
            *pos += 1;
            let order = *pos * 10;
            for (kind, file, segs) in [
                ("GlobalNetworkPolicy", "globalnetworkpolicies", &enforced),
                (
                    "StagedGlobalNetworkPolicy",
                    "stagedglobalnetworkpolicies",
                    &observed,
                ),
            ] {
                for Subject {
                    key,
                    segments: seg,
                    spec: sel,
                } in segs.iter()
                {
                    let name = format!("{}.{:04}-{}.{}", tier_name(*tier), pos, policy.name(), key);
                    check_name(Target::Calico, &name)?;
                    let mut spec = sel.clone();
                    spec.insert("tier".into(), json!(tier_name(*tier)));
                    spec.insert("order".into(), json!(order));
                    spec.insert("types".into(), json!(["Ingress", "Egress"]));
                    spec.insert("ingress".into(), Value::Array(chunk.to_vec()));
                    spec.insert("egress".into(), Value::Array(chunk.to_vec()));
                    if kind.starts_with("Staged") {
                        spec.insert("stagedAction".into(), json!("Set"));
                    }
                    let doc = json!({"apiVersion": API, "kind": kind,
                        "metadata": {"name": name,
                            "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                            "annotations": {
                                "bulkhead.dev/source": policy.loc.to_string(),
                                "bulkhead.dev/policy": policy.name(),
                                "bulkhead.dev/segment": seg,
                            }},
                        "spec": spec});
                    docs.entry(file).or_default().push((name, doc));
                }
            }
        }
    }
    // The default deny of enforced segments, in a tier of its own after the intent's three;
    // staged for observe-mode segments (what they would block).
    for (kind, file, subjects, segs) in [
        (
            "GlobalNetworkPolicy",
            "globalnetworkpolicies",
            &enforced,
            &low.enforced,
        ),
        (
            "StagedGlobalNetworkPolicy",
            "stagedglobalnetworkpolicies",
            &observed,
            &low.observed,
        ),
    ] {
        for Subject {
            key,
            segments: seg,
            spec: sel,
        } in subjects.iter()
        {
            let name = format!("{ENFORCE_TIER}.default-deny.{key}");
            check_name(Target::Calico, &name)?;
            let mut spec = sel.clone();
            spec.insert("tier".into(), json!(ENFORCE_TIER));
            spec.insert("order".into(), json!(10));
            spec.insert("types".into(), json!(["Ingress", "Egress"]));
            spec.insert("ingress".into(), json!([{"action": "Deny"}]));
            spec.insert("egress".into(), json!([{"action": "Deny"}]));
            if kind.starts_with("Staged") {
                spec.insert("stagedAction".into(), json!("Set"));
            }
            let seg_loc = segs
                .iter()
                .filter(|s| seg.split(',').any(|n| n == s.name()))
                .map(|s| s.loc.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            docs.entry(file).or_default().push((
                name.clone(),
                json!({"apiVersion": API, "kind": kind,
                    "metadata": {"name": name,
                        "labels": {"app.kubernetes.io/managed-by": "bulkhead"},
                        "annotations": {"bulkhead.dev/source": seg_loc, "bulkhead.dev/segment": seg}},
                    "spec": spec}),
            ));
        }
    }

    for (i, (sel, addrs, loc)) in sets.0.iter().enumerate() {
        let label = format!("hosts-{}", i + 1);
        let name = format!("bulkhead-{label}");
        docs.entry("globalnetworksets").or_default().push((
            name.clone(),
            json!({"apiVersion": API, "kind": "GlobalNetworkSet",
                "metadata": {"name": name,
                    "labels": {"app.kubernetes.io/managed-by": "bulkhead", HOSTS_LABEL: label},
                    "annotations": {"bulkhead.dev/source": loc,
                                    "bulkhead.dev/host-selector": sel.to_string()}},
                "spec": {"nets": addrs.cidrs()}}),
        ));
    }
    let mut files = BTreeMap::new();
    for (file, mut objs) in docs {
        if file != "tiers" {
            objs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut text = format!(
            "# Generated by `bulkhead compile --target calico` from the intent; do not edit.\n# {} {} object(s). See docs/compile.md, \"Calico\".\n",
            objs.len(),
            file
        );
        for (_, d) in &objs {
            text.push_str("---\n");
            text.push_str(&yaml_doc(d));
        }
        files.insert(format!("calico/{file}.yaml"), text);
    }
    Ok(Compiled { files, notes })
}

/// A subject of policies: `key` names objects, `segments` lists the segments (annotation).
struct Subject {
    key: String,
    segments: String,
    spec: Map<String, Value>,
}

/// The subjects of the policies: segments without a namespace selector share one object (their
/// pod selectors joined by `||`, while it fits Calico's selector length); the others get one
/// each. `(name, spec with namespaceSelector and selector)`; the name is the segment's, or
/// `segments` for the shared one (the annotation lists them).
fn subject_groups(segs: Vec<(String, WorkloadSel)>) -> Result<Vec<Subject>, CompileError> {
    let mut out = Vec::new();
    let mut shared: Vec<(String, String)> = Vec::new();
    for (name, w) in segs {
        if w.namespaces.is_none() {
            shared.push((name, selector_expr(w.pods.as_ref())?));
        } else {
            out.push(Subject {
                key: name.clone(),
                segments: name,
                spec: subject(&w)?,
            });
        }
    }
    // Joined in groups that fit the selector length.
    let mut group: Vec<(String, String)> = Vec::new();
    let mut shared_n = 0;
    let mut flush = |group: &mut Vec<(String, String)>, out: &mut Vec<Subject>| {
        if group.is_empty() {
            return;
        }
        let names: Vec<&str> = group.iter().map(|g| g.0.as_str()).collect();
        let expr = if group.len() == 1 {
            group[0].1.clone()
        } else {
            group
                .iter()
                .map(|g| format!("({})", g.1))
                .collect::<Vec<_>>()
                .join(" || ")
        };
        let mut m = Map::new();
        m.insert("namespaceSelector".into(), json!("all()"));
        m.insert("selector".into(), json!(expr));
        let key = if group.len() == 1 {
            group[0].0.clone()
        } else {
            shared_n += 1;
            format!("segments-{shared_n}")
        };
        out.push(Subject {
            key,
            segments: names.join(","),
            spec: m,
        });
        group.clear();
    };
    for g in shared {
        let len: usize = group.iter().map(|g| g.1.len() + 6).sum::<usize>() + g.1.len() + 6;
        if len > MAX_SELECTOR {
            flush(&mut group, &mut out);
        }
        group.push(g);
    }
    flush(&mut group, &mut out);
    Ok(out)
}

/// `spec.namespaceSelector` and `spec.selector` for the workloads of `w` (never host endpoints).
fn subject(w: &WorkloadSel) -> Result<Map<String, Value>, CompileError> {
    let mut m = Map::new();
    m.insert(
        "namespaceSelector".into(),
        json!(selector_expr(w.namespaces.as_ref())?),
    );
    m.insert("selector".into(), json!(selector_expr(w.pods.as_ref())?));
    Ok(m)
}

fn quote(v: &str) -> Result<String, CompileError> {
    if !v.contains('\'') {
        Ok(format!("'{v}'"))
    } else if !v.contains('"') {
        Ok(format!("\"{v}\""))
    } else {
        Err(CompileError::Limit {
            target: Target::Calico,
            what: format!(
                "label value {v:?} holds both quote characters, which Calico selectors cannot write"
            ),
        })
    }
}

/// A label selector in Calico's selector syntax (`all()` for none or `{}`).
pub fn selector_expr(s: Option<&Selector>) -> Result<String, CompileError> {
    let Some(s) = s.filter(|s| !s.is_everything()) else {
        return Ok("all()".to_string());
    };
    let mut parts = Vec::new();
    for r in s.requirements() {
        let set = || -> Result<String, CompileError> {
            Ok(r.values
                .iter()
                .map(|v| quote(v))
                .collect::<Result<Vec<_>, _>>()?
                .join(", "))
        };
        parts.push(match r.op {
            Operator::In if r.values.len() == 1 => format!("{} == {}", r.key, quote(&r.values[0])?),
            Operator::In => format!("{} in {{{}}}", r.key, set()?),
            Operator::NotIn if r.values.len() == 1 => {
                format!("{} != {}", r.key, quote(&r.values[0])?)
            }
            Operator::NotIn => format!("{} not in {{{}}}", r.key, set()?),
            Operator::Exists => format!("has({})", r.key),
            Operator::DoesNotExist => format!("!has({})", r.key),
        });
    }
    let e = parts.join(" && ");
    if e.len() > MAX_SELECTOR {
        return Err(CompileError::Limit {
            target: Target::Calico,
            what: format!(
                "selector {s} is {} characters in Calico syntax (at most {MAX_SELECTOR})",
                e.len()
            ),
        });
    }
    Ok(e)
}

/// One side of a Calico rule: the entity criteria and the IP version its `nets` need.
#[derive(Clone)]
struct Entity {
    crit: Map<String, Value>,
    ip_version: Option<u8>,
}

/// The `GlobalNetworkSet`s holding hosts' inventory addresses, one per host selector, in order of
/// first use: `(selector, addresses, first rule's place)`.
#[derive(Default)]
struct HostSets(Vec<(Selector, IpSet, String)>);

impl HostSets {
    /// The label value naming the set of `sel`.
    fn name(&mut self, sel: &Selector, addrs: &IpSet, loc: &str) -> String {
        let i = match self.0.iter().position(|(s, _, _)| s == sel) {
            Some(i) => i,
            None => {
                self.0.push((sel.clone(), addrs.clone(), loc.to_string()));
                self.0.len() - 1
            }
        };
        format!("hosts-{}", i + 1)
    }
}

/// The label that names Bulkhead's host network sets.
pub const HOSTS_LABEL: &str = "bulkhead.dev/hosts";

fn entities(
    peers: &[LPeer],
    r: &LRule,
    has_hosts: bool,
    sets: &mut HostSets,
) -> Result<Vec<Entity>, CompileError> {
    let mut out = Vec::new();
    let nets = |set: &IpSet, out: &mut Vec<Entity>, not_pods: bool| {
        let v4 = IpSet {
            v4: set.v4.clone(),
            v6: Default::default(),
        };
        let v6 = IpSet {
            v4: Default::default(),
            v6: set.v6.clone(),
        };
        for (ver, part) in [(4u8, v4), (6u8, v6)] {
            if part.is_empty() {
                continue;
            }
            let mut crit = Map::new();
            crit.insert("nets".into(), json!(part.cidrs()));
            if not_pods {
                crit.insert(
                    "notSelector".into(),
                    json!(format!("{ORCHESTRATOR_LABEL} == 'k8s'")),
                );
            }
            out.push(Entity {
                crit,
                ip_version: Some(ver),
            });
        }
    };
    for p in peers {
        match p {
            LPeer::Any => out.push(Entity {
                crit: Map::new(),
                ip_version: None,
            }),
            LPeer::Workloads(w) => {
                let mut crit = Map::new();
                crit.insert(
                    "namespaceSelector".into(),
                    json!(selector_expr(w.namespaces.as_ref())?),
                );
                crit.insert("selector".into(), json!(selector_expr(w.pods.as_ref())?));
                out.push(Entity {
                    crit,
                    ip_version: None,
                });
            }
            LPeer::Hosts {
                selector,
                addresses,
            } => {
                if !has_hosts {
                    return Err(r.hosts_without_inventory(Target::Calico, selector));
                }
                // A selector without namespaceSelector in a GlobalNetworkPolicy rule matches
                // global network sets: the hosts' addresses, by our own label.
                if !addresses.is_empty() {
                    let name = sets.name(selector, addresses, &r.loc().to_string());
                    let mut crit = Map::new();
                    crit.insert(
                        "selector".into(),
                        json!(format!("{HOSTS_LABEL} == '{name}'")),
                    );
                    out.push(Entity {
                        crit,
                        ip_version: None,
                    });
                }
            }
            LPeer::Addresses(set) => nets(set, &mut out, true),
        }
    }
    Ok(out)
}

/// Calico's protocol groups of a rule's ports: `(protocol, ports)`; `None`: every protocol.
fn port_groups(r: &LRule) -> Vec<(Option<Protocol>, Vec<Value>)> {
    let Some(ps) = &r.ports else {
        return vec![(None, Vec::new())];
    };
    let mut by: BTreeMap<Protocol, Vec<Value>> = BTreeMap::new();
    let mut whole: Vec<Protocol> = Vec::new();
    for &(p, a, b) in &ps.ranges {
        if a <= 1 && b == u16::MAX {
            whole.push(p);
        } else if a == b {
            by.entry(p).or_default().push(json!(a));
        } else {
            by.entry(p).or_default().push(json!(format!("{a}:{b}")));
        }
    }
    for (p, name) in &ps.named {
        let protos: Vec<Protocol> = match p {
            Some(p) => vec![*p],
            None => Protocol::ALL.to_vec(),
        };
        for p in protos {
            if !whole.contains(&p) {
                by.entry(p).or_default().push(json!(name));
            }
        }
    }
    let mut out: Vec<(Option<Protocol>, Vec<Value>)> =
        whole.into_iter().map(|p| (Some(p), Vec::new())).collect();
    out.extend(by.into_iter().map(|(p, v)| (Some(p), v)));
    out.sort_by_key(|a| a.0);
    out
}

/// The Calico rules of one intent rule, in a row.
fn rule(r: &LRule, has_hosts: bool, sets: &mut HostSets) -> Result<Vec<Value>, CompileError> {
    let action = match r.action {
        Action::Allow => "Allow",
        Action::Deny => "Deny",
        Action::Pass => "Pass",
    };
    let srcs = entities(&r.from, r, has_hosts, sets)?;
    let dsts = entities(&r.to, r, has_hosts, sets)?;
    let groups = port_groups(r);
    let mut out = Vec::new();
    for s in &srcs {
        for d in &dsts {
            let ver = match (s.ip_version, d.ip_version) {
                (Some(a), Some(b)) if a != b => continue,
                (a, b) => a.or(b),
            };
            for (proto, ports) in &groups {
                let mut m = Map::new();
                m.insert("action".into(), json!(action));
                if let Some(p) = proto {
                    m.insert("protocol".into(), json!(p.as_str()));
                }
                if let Some(v) = ver {
                    m.insert("ipVersion".into(), json!(v));
                }
                if !s.crit.is_empty() {
                    m.insert("source".into(), Value::Object(s.crit.clone()));
                }
                let mut dc = d.crit.clone();
                if !ports.is_empty() {
                    dc.insert("ports".into(), Value::Array(ports.clone()));
                }
                if !dc.is_empty() {
                    m.insert("destination".into(), Value::Object(dc));
                }
                m.insert(
                    "metadata".into(),
                    json!({"annotations": {
                        "bulkhead.dev/rule": r.label(),
                        "bulkhead.dev/source": r.loc().to_string(),
                    }}),
                );
                out.push(Value::Object(m));
            }
        }
    }
    Ok(out)
}
