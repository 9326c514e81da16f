//! Quarantine: an isolation overlay written as ordinary intent resources, so every compiler,
//! `verify`, `plan` and the host agent pick it up without knowing about it.
//!
//! A quarantine of one Kubernetes workload (`namespace/name`) or one inventory host is two
//! resources, written to `POLICY_DIR/quarantine/<name>.yaml` by `bulkhead quarantine`:
//!
//! - a `Segment` in `enforce` mode selecting exactly that workload (its namespace by
//!   `kubernetes.io/metadata.name`, its pods by their own labels — replicas of a workload share
//!   them and are quarantined together) or that host (by the implicit label
//!   [`HOST_NAME_LABEL`] every host identity carries);
//! - a guardrail `Policy` with the lowest priority value ([`PRIORITY`], so it is evaluated
//!   before every other rule) that allows the forensic and management access — the `--allow-to`
//!   segments and every segment labelled [`ACCESS_LABEL`]` : management|forensics`, both
//!   directions — and then denies everything to and from the quarantined segment.
//!
//! Since the first deciding rule is the quarantine's deny and the quarantined side is enforced,
//! every other connection to or from the workload is `Deny`, whatever the application allows.
//! Both resources carry the annotations [`ANN_QUARANTINE`] (the target), `reason`, `who`,
//! `created` and optionally `expires` (RFC 3339). [`drop_expired`] removes quarantines whose
//! `expires` is past; the loader applies it ([`crate::load::load_paths`]), so an expired
//! quarantine is released by itself everywhere.

use crate::eval::{Identity, IdentityKind};
use crate::model::{Intent, Meta};
use crate::{Loc, closest};
use bulkhead_core::Labels;
use std::fmt::Write as _;

/// Annotation naming what a resource quarantines (`namespace/name` or a host name).
pub const ANN_QUARANTINE: &str = "bulkhead.dev/quarantine";
pub const ANN_REASON: &str = "bulkhead.dev/reason";
pub const ANN_WHO: &str = "bulkhead.dev/who";
pub const ANN_CREATED: &str = "bulkhead.dev/created";
pub const ANN_EXPIRES: &str = "bulkhead.dev/expires";
/// The implicit label of every host identity: its name ([`Identity::host`] adds it).
pub const HOST_NAME_LABEL: &str = "bulkhead.dev/host";
/// Segments labelled with it (`management` or `forensics`) keep access to quarantined
/// workloads.
pub const ACCESS_LABEL: &str = "bulkhead.dev/access";
/// The subdirectory of the policy directory quarantines are written to.
pub const DIR: &str = "quarantine";
/// The quarantine policy's priority: before every other guardrail.
pub const PRIORITY: i32 = i32::MIN;
/// Audit actions.
pub const AUDIT_ADD: &str = "quarantine.add";
pub const AUDIT_RELEASE: &str = "quarantine.release";
pub const AUDIT_EXPIRE: &str = "quarantine.expire";

/// Why a quarantine cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuarantineError {
    #[error("{target}: no such workload or host in the inventory{hint}")]
    Unknown { target: String, hint: String },
    #[error("--allow-to {0}: no such segment in the policy")]
    UnknownSegment(String),
    #[error(
        "{target}: its selector ({selector}) would also select {others}; quarantine isolates one workload or host only"
    )]
    NotExact {
        target: String,
        selector: String,
        others: String,
    },
    #[error("{0}: already quarantined (release it first)")]
    Already(String),
    #[error("{0}")]
    Invalid(String),
}

/// What is quarantined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Workload {
        namespace: String,
        name: String,
        labels: Labels,
    },
    Host {
        name: String,
    },
}

impl Subject {
    /// `namespace/name` or the host's name.
    pub fn target(&self) -> String {
        match self {
            Subject::Workload {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
            Subject::Host { name } => name.clone(),
        }
    }

    /// Finds `target` (`namespace/name` of a Kubernetes workload, or a host name) in the
    /// inventory.
    pub fn find(target: &str, inventory: &[Identity]) -> Result<Subject, QuarantineError> {
        for id in inventory {
            if id.name != target {
                continue;
            }
            match &id.kind {
                IdentityKind::Workload { namespace, .. } => {
                    let name = target.rsplit('/').next().unwrap_or(target).to_string();
                    return Ok(Subject::Workload {
                        namespace: namespace.clone(),
                        name,
                        labels: id.labels.clone(),
                    });
                }
                IdentityKind::Host => {
                    return Ok(Subject::Host {
                        name: target.to_string(),
                    });
                }
                IdentityKind::External => {}
            }
        }
        let names: Vec<&str> = inventory
            .iter()
            .filter(|i| i.kind != IdentityKind::External)
            .map(|i| i.name.as_str())
            .collect();
        // A bare workload name: the workloads of that name in any namespace.
        let same_name: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.contains('/') && n.rsplit('/').next() == Some(target))
            .collect();
        let hint = if !same_name.is_empty() {
            format!(
                " (workloads are named namespace/name: did you mean {}?)",
                same_name.join(" or ")
            )
        } else {
            match closest(target, names.iter().copied()) {
                Some(c) => format!(" (did you mean {c}?)"),
                None => String::new(),
            }
        };
        Err(QuarantineError::Unknown {
            target: target.to_string(),
            hint,
        })
    }

    fn selector_yaml(&self) -> String {
        match self {
            Subject::Workload {
                namespace, labels, ..
            } => format!(
                "  namespaceSelector:\n    matchLabels: {{{}: {}}}\n  podSelector:\n    matchLabels: {}\n",
                crate::quarantine::NS_LABEL,
                q(namespace),
                flow_map(labels)
            ),
            Subject::Host { name } => format!(
                "  hostSelector:\n    matchLabels: {{{HOST_NAME_LABEL}: {}}}\n",
                q(name)
            ),
        }
    }

    fn matches(&self, id: &Identity) -> bool {
        match (self, &id.kind) {
            (
                Subject::Workload {
                    namespace, labels, ..
                },
                IdentityKind::Workload { namespace: ns, .. },
            ) => ns == namespace && labels.iter().all(|(k, v)| id.labels.get(k) == Some(v)),
            (Subject::Host { name }, IdentityKind::Host) => {
                id.labels.get(HOST_NAME_LABEL) == Some(name)
            }
            _ => false,
        }
    }
}

const NS_LABEL: &str = "kubernetes.io/metadata.name";

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn flow_map(l: &Labels) -> String {
    let items: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{}: {}", q(k), q(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The resource name of a quarantine: `quarantine-` and the target in the characters names
/// allow (`/` becomes `.`).
pub fn name_for(target: &str) -> String {
    let mut s: String = target
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            '/' => '.',
            _ => '-',
        })
        .collect();
    s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    let mut name = format!("quarantine-{s}");
    name.truncate(253);
    name
}

/// A quarantine to write.
#[derive(Clone, Debug)]
pub struct Request {
    pub subject: Subject,
    /// Segments that keep access both ways (besides those labelled [`ACCESS_LABEL`]).
    pub allow_to: Vec<String>,
    pub reason: String,
    pub who: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// Seconds since the epoch.
    pub expires: Option<i64>,
}

/// The file of a quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The resources' name.
    pub name: String,
    /// Relative to the policy directory: `quarantine/<name>.yaml`.
    pub path: String,
    pub yaml: String,
    /// The segments that keep access, in name order.
    pub access: Vec<String>,
    /// Other inventory workloads the selector picks that belong to the workload (its
    /// ReplicaSets and pods, named `NAME-…`): isolated with it.
    pub also: Vec<String>,
}

/// Writes the quarantine of `req.subject` as intent resources (YAML), checking that the
/// subject's selector picks it alone among the inventory and that `--allow-to` segments exist.
pub fn render(
    intent: &Intent,
    inventory: &[Identity],
    req: &Request,
) -> Result<Rendered, QuarantineError> {
    let target = req.subject.target();
    let name = name_for(&target);
    if req.reason.trim().is_empty() {
        return Err(QuarantineError::Invalid(
            "a quarantine needs a reason (--reason)".into(),
        ));
    }
    if intent.segment(&name).is_some() || intent.policies.iter().any(|p| p.name() == name) {
        return Err(QuarantineError::Already(target));
    }
    let mut access: Vec<String> = Vec::new();
    for s in &req.allow_to {
        if intent.segment(s).is_none() {
            return Err(QuarantineError::UnknownSegment(s.clone()));
        }
        access.push(s.clone());
    }
    for s in &intent.segments {
        let labelled = matches!(
            s.meta.labels.get(ACCESS_LABEL).map(String::as_str),
            Some("management" | "forensics")
        );
        if labelled && !is_quarantine(&s.meta) {
            access.push(s.name().to_string());
        }
    }
    access.sort();
    access.dedup();
    // Workloads the selector also picks: its own ReplicaSets and pods (named `NAME-…` by their
    // controllers, carrying its template's labels and more) are part of it; anything else
    // means the selector is not exact.
    let (own, others): (Vec<&Identity>, Vec<&Identity>) = inventory
        .iter()
        .filter(|id| id.name != target && req.subject.matches(id))
        .partition(|id| {
            matches!(req.subject, Subject::Workload { .. })
                && id.name.starts_with(&format!("{target}-"))
        });
    let also: Vec<String> = own.iter().map(|id| id.name.clone()).collect();
    let others: Vec<&str> = others.iter().map(|id| id.name.as_str()).collect();
    if !others.is_empty() {
        let selector = match &req.subject {
            Subject::Workload {
                namespace, labels, ..
            } => format!("namespace {namespace}, pod labels {}", flow_map(labels)),
            Subject::Host { name } => format!("{HOST_NAME_LABEL}={name}"),
        };
        return Err(QuarantineError::NotExact {
            target,
            selector,
            others: others.join(", "),
        });
    }
    let when = |t: i64| bulkhead_core::time::rfc3339(t.saturating_mul(1_000_000_000));
    let mut ann = format!(
        "  annotations:\n    {ANN_QUARANTINE}: {}\n    {ANN_REASON}: {}\n    {ANN_WHO}: {}\n    {ANN_CREATED}: {}\n",
        q(&target),
        q(&req.reason),
        q(&req.who),
        q(&when(req.created))
    );
    if let Some(e) = req.expires {
        let _ = writeln!(ann, "    {ANN_EXPIRES}: {}", q(&when(e)));
    }
    let mut y = String::new();
    let _ = write!(
        y,
        "# Quarantine of {target}, written by `bulkhead quarantine`; `bulkhead release {target}` removes it.\n\
         apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata:\n  name: {name}\n{ann}spec:\n  description: {}\n{}  mode: enforce\n",
        q(&format!("Quarantine of {target}: {}", req.reason)),
        req.subject.selector_yaml(),
    );
    let _ = write!(
        y,
        "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\n{ann}spec:\n  tier: guardrail\n  priority: {PRIORITY}\n  description: {}\n  rules:\n",
        q(&format!(
            "Isolates {target}: forensic and management access only, then nothing."
        ))
    );
    if !access.is_empty() {
        let peers: Vec<String> = access
            .iter()
            .map(|s| format!("{{segment: {}}}", q(s)))
            .collect();
        let peers = peers.join(", ");
        let _ = write!(
            y,
            "    - name: access-to-quarantined\n      action: allow\n      from: [{peers}]\n      to: [{{segment: {name}}}]\n\
             \x20   - name: quarantined-to-access\n      action: allow\n      from: [{{segment: {name}}}]\n      to: [{peers}]\n"
        );
    }
    let _ = write!(
        y,
        "    - name: isolate-inbound\n      action: deny\n      from: [{{any: true}}]\n      to: [{{segment: {name}}}]\n\
         \x20   - name: isolate-outbound\n      action: deny\n      from: [{{segment: {name}}}]\n      to: [{{any: true}}]\n"
    );
    Ok(Rendered {
        path: format!("{DIR}/{name}.yaml"),
        name,
        yaml: y,
        access,
        also,
    })
}

/// True for resources written by `bulkhead quarantine`.
pub fn is_quarantine(meta: &Meta) -> bool {
    meta.annotations.contains_key(ANN_QUARANTINE)
}

/// A quarantine found in an intent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Info {
    pub name: String,
    pub target: String,
    pub reason: String,
    pub who: String,
    pub created: String,
    pub expires: Option<String>,
    /// `expires` in seconds since the epoch (`None`: never, or unreadable — then it stays).
    #[serde(skip)]
    pub expires_at: Option<i64>,
    /// Where its segment was read.
    #[serde(skip)]
    pub loc: Loc,
}

impl Info {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

fn info(meta: &Meta, loc: &Loc) -> Option<Info> {
    let a = &meta.annotations;
    let target = a.get(ANN_QUARANTINE)?.clone();
    let expires = a.get(ANN_EXPIRES).cloned();
    Some(Info {
        name: meta.name.clone(),
        target,
        reason: a.get(ANN_REASON).cloned().unwrap_or_default(),
        who: a.get(ANN_WHO).cloned().unwrap_or_default(),
        created: a.get(ANN_CREATED).cloned().unwrap_or_default(),
        expires_at: expires.as_deref().and_then(parse_rfc3339),
        expires,
        loc: loc.clone(),
    })
}

/// Every quarantine of the intent (one per quarantine segment), expired or not.
pub fn list(intent: &Intent) -> Vec<Info> {
    let mut v: Vec<Info> = intent
        .segments
        .iter()
        .filter_map(|s| info(&s.meta, &s.loc))
        .collect();
    // A policy whose segment is missing is listed too (so it can be released).
    for p in &intent.policies {
        if !v.iter().any(|i| i.name == p.meta.name)
            && let Some(i) = info(&p.meta, &p.loc)
        {
            v.push(i);
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Removes the quarantines whose `expires` is at or before `now` (seconds since the epoch):
/// their segments and policies. Returns them.
pub fn drop_expired(intent: &mut Intent, now: i64) -> Vec<Info> {
    let gone: Vec<Info> = list(intent)
        .into_iter()
        .filter(|i| i.is_expired(now))
        .collect();
    if gone.is_empty() {
        return gone;
    }
    let expired = |m: &Meta| {
        is_quarantine(m)
            && m.annotations
                .get(ANN_EXPIRES)
                .and_then(|e| parse_rfc3339(e))
                .is_some_and(|e| e <= now)
    };
    intent.segments.retain(|s| !expired(&s.meta));
    intent.policies.retain(|p| !expired(&p.meta));
    gone
}

/// The intent with expired quarantines removed.
pub fn active(intent: &Intent, now: i64) -> Intent {
    let mut i = intent.clone();
    drop_expired(&mut i, now);
    i
}

/// `30s`, `30m`, `4h`, `2d`, `1w` → seconds.
pub fn parse_duration(s: &str) -> Result<i64, QuarantineError> {
    let bad = || {
        QuarantineError::Invalid(format!(
            "--expires {s:?}: expected a number and a unit s, m, h, d or w (30m, 4h, 2d)"
        ))
    };
    let s = s.trim();
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(mult).ok_or_else(bad)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`bulkhead_core::time::rfc3339`] writes; also a `+00:00`
/// offset and fractional seconds) → seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let secs = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
        (t, sign * secs)
    };
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_with_the_shared_formatter() {
        for t in [0i64, 951_782_400, 1_793_394_376, 4_102_444_800] {
            let s = bulkhead_core::time::rfc3339(t * 1_000_000_000);
            assert_eq!(parse_rfc3339(&s), Some(t), "{s}");
        }
        assert_eq!(
            parse_rfc3339("2026-10-30T23:06:16+02:00"),
            Some(1_793_394_376)
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("30m", 1800),
            ("4h", 14_400),
            ("2d", 172_800),
            ("90s", 90),
            ("1w", 604_800),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "m",
            "4",
            "4x",
            "-1h",
            "0m",
            "1.5h",
            "99999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            name_for("payments/Pay_Orch"),
            "quarantine-payments.pay-orch"
        );
        assert_eq!(name_for("hsm-01"), "quarantine-hsm-01");
    }
}
