//! "Why was this flow allowed or dropped?": a decision with the policy and rule of each
//! direction, for people (`txt`) and machines (`json`).

use crate::connectivity::endpoint_name;
use bulkhead_core::{Decision, DirDecision, Endpoint, Engine, Protocol, Reason, RuleRef};
use serde::Serialize;
use std::fmt::Write;

/// The rule that decided one direction, spelled out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecidedBy {
    /// `AdminNetworkPolicy`, `NetworkPolicy`, `BaselineAdminNetworkPolicy`.
    pub kind: String,
    /// `namespace/name` or `name`.
    pub policy: String,
    /// The rule's name (`ingress[0]` for unnamed rules).
    pub rule: String,
    /// `Allow`, `Deny` or `Pass`.
    pub action: String,
    /// Admin priority, for AdminNetworkPolicy rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `file:line` of the policy.
    pub origin: String,
}

/// One direction of an explained decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectionReport {
    /// `egress` of the source or `ingress` of the destination.
    pub direction: String,
    /// The workload whose policies were asked.
    pub workload: String,
    pub allowed: bool,
    /// `admin`, `network-policy`, `network-policy-isolation`, `baseline` or `default`.
    pub layer: String,
    /// The rules that decided (several NetworkPolicy rules may allow the same flow).
    pub decided_by: Vec<DecidedBy>,
    /// The NetworkPolicies that isolate the workload when none of their rules allows the flow.
    pub isolated_by: Vec<String>,
    /// The admin rule whose Pass handed the decision to the NetworkPolicy layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed_by: Option<DecidedBy>,
    /// A sentence for people.
    pub summary: String,
}

/// An explained decision for one flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub src: String,
    pub dst: String,
    pub protocol: Protocol,
    pub port: u16,
    pub allowed: bool,
    pub egress: Option<DirectionReport>,
    pub ingress: Option<DirectionReport>,
}

fn decided_by(engine: &Engine<'_>, dir: bulkhead_core::Direction, r: RuleRef) -> DecidedBy {
    let p = &engine.cluster().policies[r.policy];
    let rule = &p.rules(dir).unwrap_or_default()[r.rule];
    DecidedBy {
        kind: p.kind.clone(),
        policy: p.display_name(),
        rule: rule.name.clone(),
        action: rule.action.to_string(),
        priority: (p.layer == bulkhead_core::Layer::Admin).then_some(p.priority),
        origin: p.origin.to_string(),
    }
}

fn describe(d: &DecidedBy) -> String {
    let prio = d
        .priority
        .map(|p| format!(" (priority {p})"))
        .unwrap_or_default();
    format!(
        "{} {}{prio}, rule {:?} ({}) at {}",
        d.kind, d.policy, d.rule, d.action, d.origin
    )
}

fn direction_report(engine: &Engine<'_>, d: &DirDecision, workload: String) -> DirectionReport {
    let dir = d.direction;
    let passed_by = d.passed_by.map(|r| decided_by(engine, dir, r));
    let verdict = if d.allowed { "allowed" } else { "denied" };
    let (layer, decided, isolated, mut summary) = match &d.reason {
        Reason::Admin { rule, .. } => {
            let by = decided_by(engine, dir, *rule);
            let s = format!("{verdict} by {}", describe(&by));
            ("admin", vec![by], vec![], s)
        }
        Reason::NetworkPolicyAllow { rules } => {
            let by: Vec<DecidedBy> = rules.iter().map(|r| decided_by(engine, dir, *r)).collect();
            let s = format!(
                "allowed by {}",
                by.iter().map(describe).collect::<Vec<_>>().join("; ")
            );
            ("network-policy", by, vec![], s)
        }
        Reason::NetworkPolicyIsolated { policies } => {
            let names: Vec<String> = policies
                .iter()
                .map(|&p| {
                    let p = &engine.cluster().policies[p];
                    format!("{} at {}", p.display_name(), p.origin)
                })
                .collect();
            let s = format!(
                "denied: NetworkPolicy {} select{} the workload for {dir}, and no rule of {} allows this flow",
                names.join(", "),
                if names.len() == 1 { "s" } else { "" },
                if names.len() == 1 { "it" } else { "them" }
            );
            ("network-policy-isolation", vec![], names, s)
        }
        Reason::Baseline { rule, .. } => {
            let by = decided_by(engine, dir, *rule);
            let s = format!("{verdict} by {}", describe(&by));
            ("baseline", vec![by], vec![], s)
        }
        Reason::Default => (
            "default",
            vec![],
            vec![],
            format!("allowed: no policy selects the workload for {dir} (default allow)"),
        ),
    };
    if let Some(p) = &passed_by {
        let _ = write!(summary, "; passed down by {}", describe(p));
    }
    DirectionReport {
        direction: dir.to_string(),
        workload,
        allowed: d.allowed,
        layer: layer.to_string(),
        decided_by: decided,
        isolated_by: isolated,
        passed_by,
        summary,
    }
}

/// Decides a flow and explains both directions.
pub fn explain(
    engine: &Engine<'_>,
    src: Endpoint,
    dst: Endpoint,
    proto: Protocol,
    port: u16,
) -> Explanation {
    let Decision {
        allowed,
        egress,
        ingress,
    } = engine.decide(src, dst, proto, port);
    let src_name = endpoint_name(engine, src);
    let dst_name = endpoint_name(engine, dst);
    Explanation {
        egress: egress
            .as_ref()
            .map(|d| direction_report(engine, d, src_name.clone())),
        ingress: ingress
            .as_ref()
            .map(|d| direction_report(engine, d, dst_name.clone())),
        src: src_name,
        dst: dst_name,
        protocol: proto,
        port,
        allowed,
    }
}

impl Explanation {
    /// The text form: a verdict line, then one line per direction.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}: {} => {} : {} {}\n",
            if self.allowed { "ALLOWED" } else { "DENIED" },
            self.src,
            self.dst,
            self.protocol,
            self.port
        );
        if self.egress.is_none() && self.ingress.is_none() {
            s.push_str("  both ends are outside the cluster: no policy applies\n");
        }
        for d in [&self.egress, &self.ingress].into_iter().flatten() {
            let _ = writeln!(s, "  {:<7} of {}: {}", d.direction, d.workload, d.summary);
        }
        s
    }
}
