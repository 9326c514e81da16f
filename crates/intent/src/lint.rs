//! Semantic checks of an intent (`bulkhead policy lint`). Codes and meanings are listed in
//! `docs/intent.md`.

use crate::diag::{Diagnostic, Loc, closest};
use crate::eval::Universe;
use crate::model::{Action, EntitySelector, Intent, Peer, PeerAt, PortMatch, Tier};
use bulkhead_core::{ConnSet, IpSet};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// What the lint may use besides the intent.
#[derive(Default)]
pub struct LintOptions<'a, 'e> {
    /// The workloads and hosts of an inventory: segments and selectors that pick none of them
    /// are reported. Without it that check is skipped (and a note says so).
    pub universe: Option<&'a Universe<'e>>,
}

/// Every semantic finding, in file order.
pub fn lint(intent: &Intent, opts: &LintOptions<'_, '_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    duplicates(intent, &mut out);
    references(intent, &mut out);
    shadowing(intent, &mut out);
    open_compliance(intent, &mut out);
    match opts.universe {
        Some(u) => empty_matches(intent, u, &mut out),
        None => out.push(
            Diagnostic::note(
                "no-inventory",
                Loc::default(),
                "segments and selectors were not checked against workloads",
            )
            .with_hint("give --inventory PATH (Kubernetes manifests) and/or --hosts FILE"),
        ),
    }
    for p in &intent.policies {
        if p.rules.is_empty() {
            out.push(Diagnostic::warning(
                "empty-policy",
                p.loc.clone(),
                format!("policy {} has no rules", p.name()),
            ));
        }
    }
    out.sort_by(|a, b| (&a.loc, a.severity).cmp(&(&b.loc, b.severity)));
    out
}

fn duplicates(intent: &Intent, out: &mut Vec<Diagnostic>) {
    let mut check = |kind: &str, items: Vec<(&str, &Loc)>| {
        let mut seen: BTreeMap<&str, &Loc> = BTreeMap::new();
        for (name, loc) in items {
            if let Some(first) = seen.get(name) {
                out.push(
                    Diagnostic::error(
                        "duplicate-name",
                        loc.clone(),
                        format!("{kind} `{name}` is defined twice"),
                    )
                    .with_hint(format!("the first definition is at {first}")),
                );
            } else {
                seen.insert(name, loc);
            }
        }
    };
    check(
        "Segment",
        intent.segments.iter().map(|s| (s.name(), &s.loc)).collect(),
    );
    check(
        "Policy",
        intent.policies.iter().map(|p| (p.name(), &p.loc)).collect(),
    );
    check(
        "Invariant",
        intent
            .invariants
            .iter()
            .map(|i| (i.meta.name.as_str(), &i.loc))
            .collect(),
    );
}

fn all_peers(intent: &Intent) -> impl Iterator<Item = &PeerAt> {
    let rules = intent
        .policies
        .iter()
        .flat_map(|p| p.rules.iter())
        .flat_map(|r| r.from.iter().chain(r.to.iter()));
    let invs = intent
        .invariants
        .iter()
        .flat_map(|i| i.from.iter().chain(i.to.iter()));
    rules.chain(invs)
}

fn references(intent: &Intent, out: &mut Vec<Diagnostic>) {
    for pa in all_peers(intent) {
        if let Peer::Segment(name) = &pa.peer
            && intent.segment(name).is_none()
        {
            let names = intent.segments.iter().map(|s| s.name());
            let hint = match closest(name, names) {
                Some(c) => format!("did you mean `{c}`?"),
                None if intent.segments.is_empty() => "no Segment is defined".to_string(),
                None => format!(
                    "defined segments: {}",
                    intent
                        .segments
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push(
                Diagnostic::error(
                    "unknown-segment",
                    pa.loc.clone(),
                    format!("unknown segment `{name}`"),
                )
                .with_hint(hint),
            );
        }
    }
}

/// The selector a peer stands for, when it is a selector or a known segment.
/// A peer resolved once for the coverage checks (a segment looked up by name once, not for
/// every pair of rules compared).
struct Resolved<'a> {
    peer: &'a Peer,
    selector: Option<&'a EntitySelector>,
}

fn resolve<'a>(segments: &FxHashMap<&str, &'a EntitySelector>, p: &'a Peer) -> Resolved<'a> {
    let selector = match p {
        Peer::Selector(s) => Some(s),
        Peer::Segment(n) => segments.get(n.as_str()).copied(),
        _ => None,
    };
    Resolved { peer: p, selector }
}

/// Does peer `a` hold every identity peer `b` holds, whatever the inventory?
fn peer_covers(a: &Resolved<'_>, b: &Resolved<'_>) -> bool {
    if a.peer == b.peer || *a.peer == Peer::Any {
        return true;
    }
    match (a.peer, b.peer) {
        (Peer::Cidr(x), Peer::Cidr(y)) => IpSet {
            v4: y.v4.subtract(&x.v4),
            v6: y.v6.subtract(&x.v6),
        }
        .is_empty(),
        _ => match (a.selector, b.selector) {
            (Some(x), Some(y)) => x.contains(y),
            _ => false,
        },
    }
}

fn peers_cover(a: &[Resolved<'_>], b: &[Resolved<'_>]) -> bool {
    b.iter().all(|y| a.iter().any(|x| peer_covers(x, y)))
}

/// A rule's ports, prepared once: `None` for every port, else the numbered set and the names.
type Ports<'a> = Option<(ConnSet, Vec<(Option<bulkhead_core::Protocol>, &'a str)>)>;

fn prepare(p: &Option<Vec<PortMatch>>) -> Ports<'_> {
    p.as_deref().map(PortMatch::split)
}

fn ports_cover(a: &Ports<'_>, b: &Ports<'_>) -> bool {
    let Some((ac, an)) = a else { return true };
    if ac.is_all() {
        return true;
    }
    let Some((bc, bn)) = b else { return false };
    bc.subtract(ac).is_empty()
        && bn.iter().all(|(bp, bname)| {
            an.iter()
                .any(|(ap, aname)| aname == bname && (ap.is_none() || ap == bp))
        })
}

/// A rule prepared for the coverage checks.
struct Prepared<'a> {
    from: Vec<Resolved<'a>>,
    to: Vec<Resolved<'a>>,
    ports: Ports<'a>,
}

fn covers(a: &Prepared<'_>, b: &Prepared<'_>) -> bool {
    peers_cover(&a.from, &b.from) && peers_cover(&a.to, &b.to) && ports_cover(&a.ports, &b.ports)
}

fn shadowing<'a>(intent: &'a Intent, out: &mut Vec<Diagnostic>) {
    let segments: FxHashMap<&str, &EntitySelector> = intent
        .segments
        .iter()
        .rev()
        .map(|s| (s.meta.name.as_str(), &s.selector))
        .collect();
    let order = intent.policy_order();
    for tier in Tier::ALL {
        // The tier's rules in evaluation order.
        let rules: Vec<(usize, usize)> = order
            .iter()
            .filter(|&&p| intent.policies[p].tier == tier)
            .flat_map(|&p| (0..intent.policies[p].rules.len()).map(move |r| (p, r)))
            .collect();
        let prepared: Vec<Prepared<'_>> = rules
            .iter()
            .map(|&(p, r)| {
                let rule = &intent.policies[p].rules[r];
                let peers =
                    |v: &'a [PeerAt]| v.iter().map(|x| resolve(&segments, &x.peer)).collect();
                Prepared {
                    from: peers(&rule.from),
                    to: peers(&rule.to),
                    ports: prepare(&rule.ports),
                }
            })
            .collect();
        for (j, &(pj, rj)) in rules.iter().enumerate() {
            let later = &intent.policies[pj].rules[rj];
            let earlier = (0..j).find(|&i| covers(&prepared[i], &prepared[j]));
            let Some((pi, ri)) = earlier.map(|i| rules[i]) else {
                continue;
            };
            let first = &intent.policies[pi].rules[ri];
            let who = format!(
                "{} of policy {} ({})",
                intent.policies[pi].rule_label(ri),
                intent.policies[pi].name(),
                first.loc
            );
            let me = format!(
                "{} of policy {}",
                intent.policies[pj].rule_label(rj),
                intent.policies[pj].name()
            );
            let act = |a: Action| a.to_string().to_lowercase();
            if first.action == later.action && first.action != Action::Pass
                || first.action == Action::Pass && later.action == Action::Pass
            {
                out.push(
                    Diagnostic::warning(
                        "redundant-rule",
                        later.loc.clone(),
                        format!(
                            "{me} is redundant: {who} already {}s every connection it matches",
                            act(first.action)
                        ),
                    )
                    .with_hint("remove it, or narrow the earlier rule"),
                );
            } else {
                out.push(
                    Diagnostic::error(
                        "shadowed-rule",
                        later.loc.clone(),
                        format!(
                            "{me} ({}) never takes effect: {who} matches every connection it matches first and {}s it",
                            act(later.action),
                            act(first.action)
                        ),
                    )
                    .with_hint("move this rule before the earlier one, or narrow the earlier rule"),
                );
            }
        }
    }
}

/// Is this peer everyone (any, 0.0.0.0/0 or ::/0, or a selector of everything)?
fn is_everyone(p: &Peer) -> bool {
    match p {
        Peer::Any => true,
        Peer::Cidr(set) => {
            let all = IpSet::all();
            set.v4 == all.v4 || set.v6 == all.v6
        }
        Peer::Selector(s) => s.selects_everything(),
        _ => false,
    }
}

fn open_compliance(intent: &Intent, out: &mut Vec<Diagnostic>) {
    for p in &intent.policies {
        for (i, r) in p.rules.iter().enumerate() {
            if r.action != Action::Allow || !r.from.iter().any(|f| is_everyone(&f.peer)) {
                continue;
            }
            for t in &r.to {
                let scoped: Vec<(&str, &[String])> = match &t.peer {
                    Peer::Segment(n) => intent
                        .segment(n)
                        .filter(|s| !s.compliance.is_empty())
                        .map(|s| vec![(s.name(), s.compliance.as_slice())])
                        .unwrap_or_default(),
                    Peer::Any => intent
                        .segments
                        .iter()
                        .filter(|s| !s.compliance.is_empty())
                        .map(|s| (s.name(), s.compliance.as_slice()))
                        .collect(),
                    _ => Vec::new(),
                };
                for (seg, scopes) in scoped {
                    let msg = format!(
                        "{} of {} policy {} allows everyone to reach segment {seg} (compliance scope {})",
                        p.rule_label(i),
                        p.tier,
                        p.name(),
                        scopes.join(", ")
                    );
                    let hint =
                        "name the sources that need access (segments or selectors) and the ports";
                    out.push(if p.tier == Tier::Guardrail {
                        Diagnostic::error("open-compliance-scope", r.loc.clone(), msg)
                            .with_hint(hint)
                    } else {
                        Diagnostic::warning("open-compliance-scope", r.loc.clone(), msg)
                            .with_hint(hint)
                    });
                }
            }
        }
    }
}

fn empty_matches(intent: &Intent, u: &Universe<'_>, out: &mut Vec<Diagnostic>) {
    for s in &intent.segments {
        if u.select_entities(&s.selector).is_empty() {
            out.push(
                Diagnostic::warning(
                    "empty-segment",
                    s.loc.clone(),
                    format!(
                        "segment {} ({}) matches no workload or host of the inventory",
                        s.name(),
                        s.selector
                    ),
                )
                .with_hint("check the labels against the inventory (`bulkhead map` shows them)"),
            );
        }
    }
    for pa in all_peers(intent) {
        if !matches!(pa.peer, Peer::Selector(_) | Peer::Namespace(_)) {
            continue;
        }
        if u.select(intent, &pa.peer).is_some_and(|b| b.is_empty()) {
            out.push(
                Diagnostic::warning(
                    "matches-nothing",
                    pa.loc.clone(),
                    format!("{} matches no workload or host of the inventory", pa.peer),
                )
                .with_hint("check the labels or the namespace name against the inventory"),
            );
        }
    }
}
