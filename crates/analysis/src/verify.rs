//! Brownfield verification (`bulkhead verify --policy DIR --k8s PATH`): the `Invariant`s of a
//! Bulkhead intent checked against what a cluster's own Kubernetes policies (NetworkPolicy,
//! AdminNetworkPolicy, BaselineAdminNetworkPolicy) allow today — "is my cluster compliant?".
//!
//! - Segments and invariants come from the intent; its `Policy` resources play no part.
//! - Segment selectors pick Kubernetes workloads by namespace labels and pod labels (as the
//!   engine sees them: the workload's labels); host selectors pick nothing here.
//! - What is allowed is the connectivity engine's answer over the manifests, exactly as
//!   `bulkhead connectivity` computes it, as connection sets per pair (every port of TCP, UDP
//!   and SCTP at once — nothing is sampled).
//! - Addresses outside the cluster are the engine's external pieces cut further at every CIDR
//!   the invariants name, so each range is either wholly inside or wholly outside each
//!   invariant's and each policy's address sets, and one representative stands for all of it.
//! - Pairs are not visited one by one: [`Engine::for_each_reach`] groups, per destination, the
//!   sources that reach it with the same connections (through the engine's equivalence
//!   classes), and each group is judged once.
//!
//! The results are the intent verifier's own types ([`InvariantResult`], [`Violation`]), so the
//! same text, JSON and compliance report render them. Each violation names a concrete source,
//! destination, protocol and port, every offending connection between that pair, and the
//! Kubernetes policies and rules that decided it (from [`crate::explain`]).

use crate::explain::{DecidedBy, DirectionReport, Explanation, explain};
use bulkhead_core::{
    Bitset, ConnSet, Direction, Endpoint, Endpoints, Engine, IpRange, IpSet, PortMatch, SpansPieces,
};
use bulkhead_intent::{
    ChainStep, Evaluator, Identity, Intent, InvariantKind, InvariantResult, Peer, Status, Universe,
    Verdict, VerifyOptions, Violation,
};

/// The outcome of [`verify_k8s`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sVerification {
    pub results: Vec<InvariantResult>,
    /// Segments that select no workload of the cluster: name and `file:line:column`.
    pub empty_segments: Vec<(String, String)>,
    /// How many workloads each segment selects, by segment name.
    pub segment_workloads: Vec<(String, usize)>,
    /// External address ranges considered as sources (ingress side) and as destinations.
    pub external_sources: usize,
    pub external_destinations: usize,
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Pieces(#[from] SpansPieces),
    #[error("the intent: {0}")]
    Intent(#[from] bulkhead_intent::EvalError),
}

/// The CIDRs the invariants name.
fn invariant_cidrs(intent: &Intent) -> Vec<&IpSet> {
    intent
        .invariants
        .iter()
        .flat_map(|i| i.from.iter().chain(&i.to))
        .filter_map(|pa| match &pa.peer {
            Peer::Cidr(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn external_identity(r: IpRange) -> Identity {
    let mut id = Identity::external(r.first());
    id.name = format!("{r}[External]");
    id
}

/// Checks every invariant of `intent` against what `engine` (over a cluster's manifests)
/// allows. `intent`'s policies are ignored.
pub fn verify_k8s(
    intent: &Intent,
    engine: &Engine<'_>,
    opts: VerifyOptions,
) -> Result<K8sVerification, VerifyError> {
    let cluster = engine.cluster();
    let n = cluster.workloads.len();
    let mut ids: Vec<Identity> = cluster
        .workloads
        .iter()
        .map(|w| {
            let mut id = Identity::workload(
                &w.namespace,
                &w.name,
                w.labels.clone(),
                cluster.ns_labels(&w.namespace).clone(),
            );
            id.name = w.display_name();
            id.named_ports = w.named_ports.clone();
            id
        })
        .collect();
    let cidrs = invariant_cidrs(intent);
    let src_cuts = engine.external_cuts(Direction::Ingress, &cidrs);
    let dst_cuts = engine.external_cuts(Direction::Egress, &cidrs);
    let (ns, nd) = (src_cuts.len(), dst_cuts.len());
    ids.extend(src_cuts.iter().map(|&r| external_identity(r)));
    ids.extend(dst_cuts.iter().map(|&r| external_identity(r)));
    // Segments only: the intent's own policies play no part here.
    let segments_only = Intent {
        segments: intent.segments.clone(),
        policies: Vec::new(),
        invariants: Vec::new(),
    };
    let ev = Evaluator::new(&segments_only)?;
    let u = Universe::new(&ev, ids);
    let segment_workloads: Vec<(String, usize)> = intent
        .segments
        .iter()
        .map(|s| {
            let sel = u.select_entities(&s.selector);
            (s.name().to_string(), sel.ones_in(0, n).count())
        })
        .collect();
    let empty_segments = intent
        .segments
        .iter()
        .zip(&segment_workloads)
        .filter(|(_, (_, k))| *k == 0)
        .map(|(s, _)| (s.name().to_string(), s.loc.to_string()))
        .collect();
    let split = |b: &Bitset, ext: &[IpRange], base: usize| Endpoints {
        workloads: {
            let mut w = Bitset::empty(n);
            b.ones_in(0, n).for_each(|i| w.insert(i));
            w
        },
        external: b
            .ones_in(base, base + ext.len())
            .map(|i| ext[i - base])
            .collect(),
    };
    let mut results = Vec::new();
    for inv in &intent.invariants {
        let from = u.select_all(intent, &inv.from);
        let to = u.select_all(intent, &inv.to);
        let from = match inv.kind {
            InvariantKind::Only => from.complement(),
            _ => from,
        };
        let srcs = split(&from, &src_cuts, n);
        let dsts = split(&to, &dst_cuts, n + ns);
        let (inv_conns, inv_named) = match &inv.ports {
            None => (ConnSet::all(), Vec::new()),
            Some(ps) => PortMatch::split(ps),
        };
        // The invariant's connections towards a destination (named ports resolved against it).
        let start = |d: Endpoint| -> ConnSet {
            let mut c = inv_conns.clone();
            if let Endpoint::Workload(i) = d {
                for (proto, name) in &inv_named {
                    for np in &cluster.workloads[i].named_ports {
                        if np.name == *name && proto.is_none_or(|p| p == np.protocol) {
                            c = c.union(&ConnSet::single(np.protocol, np.port));
                        }
                    }
                }
            }
            c
        };
        let mut res = InvariantResult {
            name: inv.meta.name.clone(),
            kind: inv.kind.to_string(),
            at: inv.loc.to_string(),
            controls: inv.controls.clone(),
            description: inv.description.clone(),
            status: Status::Holds,
            holds_today: true,
            sources: srcs.workloads.count() + srcs.external.len(),
            destinations: dsts.workloads.count() + dsts.external.len(),
            pairs_checked: 0,
            class_pairs: 0,
            violating_pairs: 0,
            violating_pairs_today: 0,
            examples: Vec::new(),
        };
        let mut last_dst: Option<(Endpoint, ConnSet)> = None;
        engine.for_each_reach(&srcs, &dsts, |g| {
            res.pairs_checked += g.sources;
            res.class_pairs += 1;
            let wanted = match &last_dst {
                Some((d, c)) if *d == g.dst => c.clone(),
                _ => {
                    let c = start(g.dst);
                    last_dst = Some((g.dst, c.clone()));
                    c
                }
            };
            let bad = match inv.kind {
                InvariantKind::Never | InvariantKind::Only => g.conns.intersect(&wanted),
                InvariantKind::MustAllow => wanted.subtract(g.conns),
            };
            let Some((proto, port)) = bad.first() else {
                return;
            };
            res.status = Status::Violated;
            res.holds_today = false;
            res.violating_pairs += g.sources;
            res.violating_pairs_today += g.sources;
            if res.examples.len() < opts.max_examples {
                let ex = explain(engine, g.example, g.dst, proto, port);
                res.examples.push(violation(&ex, &bad));
            }
        })?;
        results.push(res);
    }
    Ok(K8sVerification {
        results,
        empty_segments,
        segment_workloads,
        external_sources: ns,
        external_destinations: nd,
    })
}

fn step(direction: &str, d: &DecidedBy) -> ChainStep {
    let prio = d
        .priority
        .map(|p| format!(" (priority {p})"))
        .unwrap_or_default();
    ChainStep {
        tier: direction.to_string(),
        policy: format!("{} {}{prio}", d.kind, d.policy),
        rule: format!("{:?}", d.rule),
        action: d.action.to_lowercase(),
        at: d.origin.clone(),
    }
}

/// The Kubernetes rules behind one direction's decision: the admin rule that passed it down,
/// then the rules that decided, or the NetworkPolicies that isolate the workload.
fn chain_of(d: &DirectionReport) -> Vec<ChainStep> {
    let mut out: Vec<ChainStep> = d
        .passed_by
        .iter()
        .chain(&d.decided_by)
        .map(|x| step(&d.direction, x))
        .collect();
    for iso in &d.isolated_by {
        let (policy, at) = iso.rsplit_once(" at ").unwrap_or((iso.as_str(), ""));
        out.push(ChainStep {
            tier: d.direction.clone(),
            policy: format!("NetworkPolicy {policy}"),
            rule: "(no rule allows it)".to_string(),
            action: "isolate".to_string(),
            at: at.to_string(),
        });
    }
    out
}

fn violation(ex: &Explanation, bad: &ConnSet) -> Violation {
    let dirs = || [&ex.egress, &ex.ingress].into_iter().flatten();
    Violation {
        src: ex.src.clone(),
        dst: ex.dst.clone(),
        protocol: ex.protocol,
        port: ex.port,
        conns: bad.to_string(),
        verdict: if ex.allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        chain: dirs().flat_map(chain_of).collect(),
        explanation: dirs()
            .map(|d| format!("{} of {}: {}", d.direction, d.workload, d.summary))
            .collect::<Vec<_>>()
            .join("; "),
    }
}
