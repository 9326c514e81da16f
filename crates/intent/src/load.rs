//! Reading intent resources from files and directories: the only I/O of this crate.
//!
//! Directories are walked recursively, in name order, for `.yaml` and `.yml` files; a file named
//! directly is read whatever its name. A file holds one or more YAML documents (`---`). Every
//! problem becomes a [`Diagnostic`] with file, line and column; a resource with an error is left
//! out of the [`Intent`], so callers must treat [`Loaded::has_errors`] as "no policy" (never as
//! "allow all").

use crate::diag::{Diagnostic, Loc, closest};
use crate::model::{
    API_VERSION, Action, EntitySelector, Intent, Invariant, InvariantKind, Meta, Mode, Peer,
    PeerAt, Policy, PortMatch, Rule, Segment, Tier,
};
use crate::schema;
use bulkhead_core::{ConnSet, IpSet, Operator, Protocol, RangeSet, Requirement, Selector};
use bulkhead_k8s::yaml::{collect_files, first_line_of, split_documents, strip_location};
use serde_saphyr::Spanned;
use std::path::Path;

/// The resource kinds of `bulkhead.dev/v1alpha1`.
pub const KINDS: &[&str] = &["Segment", "Policy", "Invariant"];

/// What was read: the resources without errors, and every diagnostic.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub intent: Intent,
    pub diagnostics: Vec<Diagnostic>,
    /// Files read.
    pub files: usize,
    /// Resources read (including those left out for errors).
    pub documents: usize,
    /// Quarantines left out because their `expires` is past (see [`crate::quarantine`]).
    pub expired_quarantines: Vec<crate::quarantine::Info>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads files and directories (recursively, in name order). Quarantines whose `expires` is
/// past (by the system clock) are left out and listed in [`Loaded::expired_quarantines`].
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    load_paths_at(paths, Some(now_secs()))
}

/// Seconds since the epoch, by the system clock.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// [`load_paths`] with an injected clock: quarantines expired at `now` (seconds since the
/// epoch) are left out; `None` keeps every resource.
pub fn load_paths_at<P: AsRef<Path>>(paths: &[P], now: Option<i64>) -> Loaded {
    let mut out = load_all(paths);
    if let Some(now) = now {
        out.expired_quarantines = crate::quarantine::drop_expired(&mut out.intent, now);
    }
    out
}

fn load_all<P: AsRef<Path>>(paths: &[P]) -> Loaded {
    let mut out = Loaded::default();
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = collect_files(p, &mut files, &["yaml", "yml"]) {
                out.diagnostics.push(Diagnostic::error(
                    "io",
                    Loc::new(&p.display().to_string(), 0, 0),
                    format!("cannot read directory: {e}"),
                ));
            }
            files.sort();
            for f in files {
                load_file(&f, &mut out);
            }
        } else {
            load_file(p, &mut out);
        }
    }
    out
}

fn load_file(path: &Path, out: &mut Loaded) {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_into(&name, &text, out),
            Err(e) => out.diagnostics.push(
                Diagnostic::error(
                    "not-utf8",
                    Loc::new(&name, 0, 0),
                    format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
                )
                .with_hint("policy files are UTF-8 YAML"),
            ),
        },
        Err(e) => out.diagnostics.push(Diagnostic::error(
            "io",
            Loc::new(&name, 0, 0),
            format!("cannot read: {e}"),
        )),
    }
}

/// Reads resources from text; `file` names it in diagnostics.
pub fn load_str(file: &str, text: &str) -> Loaded {
    let mut out = Loaded::default();
    load_into(file, text, &mut out);
    out
}

fn load_into(file: &str, text: &str, out: &mut Loaded) {
    out.files += 1;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let unified;
    let text = if text.contains('\r') {
        unified = text.replace("\r\n", "\n").replace('\r', "\n");
        unified.as_str()
    } else {
        text
    };
    for doc in split_documents(text) {
        let cx = Cx {
            file,
            first_line: doc.first_line,
            last_line: doc.first_line + doc.lines.len().saturating_sub(1),
            diags: Vec::new(),
        };
        load_document(cx, &doc.text(), out);
    }
}

/// Where a document sits in its file, and the diagnostics found in it.
struct Cx<'a> {
    file: &'a str,
    first_line: usize,
    last_line: usize,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn loc<T>(&self, s: &Spanned<T>) -> Loc {
        self.at(s.referenced.line() as usize, s.referenced.column() as usize)
    }

    /// A document position (1-based) as a file position.
    fn at(&self, line: usize, column: usize) -> Loc {
        let line = (line.max(1) + self.first_line - 1).min(self.last_line.max(self.first_line));
        Loc::new(self.file, line, column)
    }

    fn doc_loc(&self) -> Loc {
        Loc::new(self.file, self.first_line, 1)
    }

    fn error(
        &mut self,
        code: &'static str,
        loc: Loc,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::error(code, loc, msg);
        d.hint = hint;
        self.diags.push(d);
    }

    fn serde_error(&mut self, e: &serde_saphyr::Error, what: &str) {
        let loc = match e.location() {
            Some(l) => self.at(l.line() as usize, l.column() as usize),
            None => self.doc_loc(),
        };
        let full = e.to_string();
        let msg = strip_location(first_line_of(&full)).to_string();
        let (code, hint) = explain(&msg);
        self.error(code, loc, format!("{what}: {msg}"), hint);
    }

    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }
}

/// A code and a hint for a parser message.
fn explain(msg: &str) -> (&'static str, Option<String>) {
    let quoted = |s: &str| -> Option<String> {
        let a = s.find('`')?;
        let b = s[a + 1..].find('`')?;
        Some(s[a + 1..a + 1 + b].to_string())
    };
    let expected = |s: &str| -> Vec<String> {
        let Some((_, tail)) = s.split_once("expected ") else {
            return Vec::new();
        };
        let tail = tail.strip_prefix("one of ").unwrap_or(tail);
        tail.split([',', ' '])
            .filter(|w| !w.is_empty() && *w != "or")
            .map(|w| w.trim_matches('`').to_string())
            .collect()
    };
    let suggest = |word: Option<String>, cands: Vec<String>| -> Option<String> {
        let word = word?;
        match closest(&word, cands.iter().map(String::as_str)) {
            Some(c) => Some(format!("did you mean `{c}`?")),
            None if !cands.is_empty() => Some(format!("expected one of: {}", cands.join(", "))),
            None => None,
        }
    };
    if msg.starts_with("unknown field") {
        ("unknown-field", suggest(quoted(msg), expected(msg)))
    } else if msg.starts_with("unknown variant") {
        ("unknown-value", suggest(quoted(msg), expected(msg)))
    } else if msg.starts_with("missing field") {
        let hint = quoted(msg).map(|f| format!("add `{f}:`"));
        ("missing-field", hint)
    } else if msg.contains("invalid type") || msg.starts_with("expected") || msg.contains("invalid")
    {
        (
            "bad-type",
            Some(
                "check the value's type against docs/intent.md (quote label values like \"true\")"
                    .into(),
            ),
        )
    } else {
        ("yaml", None)
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! { with_snippet: false, emit_comments: false };
    serde_saphyr::from_str_with_options(text, options)
}

fn load_document(mut cx: Cx<'_>, text: &str, out: &mut Loaded) {
    // Documents holding only comments or nothing are skipped.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return;
    }
    out.documents += 1;
    let header = match parse::<schema::Header>(text) {
        Ok(h) => h,
        Err(e) => {
            cx.serde_error(&e, "not a resource");
            out.diagnostics.append(&mut cx.diags);
            return;
        }
    };
    match &header.api_version {
        None => {
            let loc = cx.doc_loc();
            cx.error(
                "missing-field",
                loc,
                "missing field `apiVersion`",
                Some(format!("add `apiVersion: {API_VERSION}`")),
            )
        }
        Some(v) if v.value != API_VERSION => {
            let loc = cx.loc(v);
            cx.error(
                "unknown-api-version",
                loc,
                format!("unknown apiVersion `{}`", v.value),
                Some(format!("write `apiVersion: {API_VERSION}`")),
            )
        }
        Some(_) => {}
    }
    let kind = match &header.kind {
        None => {
            let loc = cx.doc_loc();
            cx.error(
                "missing-field",
                loc,
                "missing field `kind`",
                Some("add `kind: Segment`, `kind: Policy` or `kind: Invariant`".into()),
            );
            None
        }
        Some(k) if !KINDS.contains(&k.value.as_str()) => {
            let hint = match closest(&k.value, KINDS.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "expected Segment, Policy or Invariant".to_string(),
            };
            let loc = cx.loc(k);
            cx.error(
                "unknown-kind",
                loc,
                format!("unknown kind `{}`", k.value),
                Some(hint),
            );
            None
        }
        Some(k) => Some(k.value.clone()),
    };
    if let Some(kind) = kind {
        match kind.as_str() {
            "Segment" => match parse::<schema::Doc<schema::SegmentSpec>>(text) {
                Ok(d) => {
                    if let Some(s) = segment(&mut cx, d)
                        && !cx.has_errors()
                    {
                        out.intent.segments.push(s);
                    }
                }
                Err(e) => cx.serde_error(&e, "malformed Segment"),
            },
            "Policy" => match parse::<schema::Doc<schema::PolicySpec>>(text) {
                Ok(d) => {
                    if let Some(p) = policy(&mut cx, d)
                        && !cx.has_errors()
                    {
                        out.intent.policies.push(p);
                    }
                }
                Err(e) => cx.serde_error(&e, "malformed Policy"),
            },
            _ => match parse::<schema::Doc<schema::InvariantSpec>>(text) {
                Ok(d) => {
                    if let Some(i) = invariant(&mut cx, d)
                        && !cx.has_errors()
                    {
                        out.intent.invariants.push(i);
                    }
                }
                Err(e) => cx.serde_error(&e, "malformed Invariant"),
            },
        }
    }
    out.diagnostics.append(&mut cx.diags);
}

fn meta(cx: &mut Cx<'_>, m: schema::Metadata) -> Meta {
    let name = m.name.value.clone();
    if let Err(why) = check_name(&name) {
        let loc = cx.loc(&m.name);
        cx.error(
            "bad-name",
            loc,
            format!("invalid name {name:?}: {why}"),
            Some("names are lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".into()),
        );
    }
    Meta {
        name,
        namespace: m.namespace,
        labels: m.labels,
        annotations: m.annotations,
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("characters other than a-z, 0-9, `-` and `.`");
    }
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(name.as_bytes().first()) || !alnum(name.as_bytes().last()) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn label_selector(cx: &mut Cx<'_>, s: schema::LabelSelector, at: &Loc) -> Selector {
    let mut reqs = Vec::new();
    for r in s.match_expressions {
        let loc = cx.loc(&r);
        let r = r.value;
        let op = match r.operator.parse::<Operator>() {
            Ok(op) => op,
            Err(_) => {
                let ops = ["In", "NotIn", "Exists", "DoesNotExist"];
                let hint = match closest(&r.operator, ops) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "expected In, NotIn, Exists or DoesNotExist".into(),
                };
                cx.error(
                    "bad-selector",
                    loc,
                    format!("unknown operator `{}`", r.operator),
                    Some(hint),
                );
                continue;
            }
        };
        match Requirement::new(r.key, op, r.values) {
            Ok(req) => reqs.push(req),
            Err(e) => cx.error("bad-selector", loc, e.to_string(), None),
        }
    }
    for k in s.match_labels.keys() {
        if k.is_empty() {
            cx.error(
                "bad-selector",
                at.clone(),
                "empty label key in matchLabels",
                None,
            );
        }
    }
    let labels = s.match_labels.into_iter().filter(|(k, _)| !k.is_empty());
    match Selector::new(labels, reqs) {
        Ok(s) => s,
        Err(e) => {
            cx.error("bad-selector", at.clone(), e.to_string(), None);
            Selector::everything()
        }
    }
}

fn entity_selector(
    cx: &mut Cx<'_>,
    ns: Option<schema::LabelSelector>,
    pods: Option<schema::LabelSelector>,
    hosts: Option<schema::LabelSelector>,
    at: &Loc,
) -> EntitySelector {
    let sel = EntitySelector {
        namespaces: ns.map(|s| label_selector(cx, s, at)),
        pods: pods.map(|s| label_selector(cx, s, at)),
        hosts: hosts.map(|s| label_selector(cx, s, at)),
    };
    if sel.namespaces.is_none() && sel.pods.is_none() && sel.hosts.is_none() {
        cx.error(
            "empty-selector",
            at.clone(),
            "the selector selects nothing",
            Some("give a namespaceSelector, podSelector or hostSelector (`{}` selects all)".into()),
        );
    }
    sel
}

fn segment(cx: &mut Cx<'_>, d: schema::Doc<schema::SegmentSpec>) -> Option<Segment> {
    let loc = cx.loc(&d.metadata.name);
    let meta = meta(cx, d.metadata);
    let s = d.spec;
    let selector = entity_selector(
        cx,
        s.namespace_selector,
        s.pod_selector,
        s.host_selector,
        &loc,
    );
    let mut compliance: Vec<String> = s.compliance.iter().map(|c| c.to_lowercase()).collect();
    compliance.sort();
    compliance.dedup();
    Some(Segment {
        meta,
        selector,
        compliance,
        owner: s.owner,
        mode: match s.mode {
            Some(schema::Mode::Enforce) => Mode::Enforce,
            Some(schema::Mode::Observe) | None => Mode::Observe,
        },
        description: s.description,
        loc,
    })
}

fn policy(cx: &mut Cx<'_>, d: schema::Doc<schema::PolicySpec>) -> Option<Policy> {
    let loc = cx.loc(&d.metadata.name);
    let meta = meta(cx, d.metadata);
    let s = d.spec;
    let rules = s
        .rules
        .into_iter()
        .map(|r| {
            let rloc = cx.loc(&r);
            let r = r.value;
            let from = peers(cx, r.from, &rloc, "from");
            let to = peers(cx, r.to, &rloc, "to");
            let ports = r.ports.map(|p| ports(cx, p));
            Rule {
                name: r.name,
                action: match r.action {
                    schema::Action::Allow => Action::Allow,
                    schema::Action::Deny => Action::Deny,
                    schema::Action::Pass => Action::Pass,
                },
                from,
                to,
                ports,
                description: r.description,
                loc: rloc,
            }
        })
        .collect();
    Some(Policy {
        meta,
        tier: match s.tier {
            schema::Tier::Guardrail => Tier::Guardrail,
            schema::Tier::Application => Tier::Application,
            schema::Tier::Baseline => Tier::Baseline,
        },
        priority: s.priority.unwrap_or(1000),
        rules,
        description: s.description,
        loc,
    })
}

fn invariant(cx: &mut Cx<'_>, d: schema::Doc<schema::InvariantSpec>) -> Option<Invariant> {
    let loc = cx.loc(&d.metadata.name);
    let meta = meta(cx, d.metadata);
    let s = d.spec;
    let mut given: Vec<(InvariantKind, Spanned<schema::Assertion>)> = Vec::new();
    if let Some(a) = s.never {
        given.push((InvariantKind::Never, a));
    }
    if let Some(a) = s.only {
        given.push((InvariantKind::Only, a));
    }
    if let Some(a) = s.must_allow {
        given.push((InvariantKind::MustAllow, a));
    }
    if given.len() != 1 {
        cx.error(
            "bad-invariant",
            loc,
            format!(
                "an Invariant asserts exactly one of never, only, mustAllow ({} given)",
                given.len()
            ),
            Some("write one Invariant per assertion".into()),
        );
        return None;
    }
    let (kind, a) = given.pop()?;
    let aloc = cx.loc(&a);
    let a = a.value;
    let from = peers(cx, a.from, &aloc, "from");
    let to = peers(cx, a.to, &aloc, "to");
    let ports = a.ports.map(|p| ports(cx, p));
    Some(Invariant {
        meta,
        kind,
        from,
        to,
        ports,
        controls: s.controls,
        description: s.description,
        loc,
    })
}

fn peers(cx: &mut Cx<'_>, v: Vec<Spanned<schema::Peer>>, at: &Loc, side: &str) -> Vec<PeerAt> {
    if v.is_empty() {
        cx.error(
            "empty-peers",
            at.clone(),
            format!("`{side}` is empty, so the rule matches nothing"),
            Some("list peers, or write `- any: true` for everything".into()),
        );
    }
    v.into_iter().filter_map(|p| peer(cx, p)).collect()
}

fn peer(cx: &mut Cx<'_>, p: Spanned<schema::Peer>) -> Option<PeerAt> {
    let loc = cx.loc(&p);
    let p = p.value;
    let given = [
        p.any.is_some(),
        p.segment.is_some(),
        p.selector.is_some(),
        p.namespace.is_some(),
        p.cidr.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if given != 1 {
        cx.error(
            "bad-peer",
            loc,
            format!("a peer names exactly one of any, segment, selector, namespace, cidr ({given} given)"),
            Some("write one list item per peer".into()),
        );
        return None;
    }
    if p.except.is_some() && p.cidr.is_none() {
        cx.error(
            "bad-peer",
            loc,
            "`except` goes with `cidr`",
            Some("write `cidr: 10.0.0.0/8` and `except: [10.1.0.0/16]`".into()),
        );
        return None;
    }
    let peer = if let Some(any) = p.any {
        if !any {
            cx.error(
                "bad-peer",
                loc,
                "`any: false` selects nothing",
                Some("write `any: true` or remove the peer".into()),
            );
            return None;
        }
        Peer::Any
    } else if let Some(s) = p.segment {
        Peer::Segment(s)
    } else if let Some(s) = p.selector {
        Peer::Selector(entity_selector(
            cx,
            s.namespace_selector,
            s.pod_selector,
            s.host_selector,
            &loc,
        ))
    } else if let Some(n) = p.namespace {
        Peer::Namespace(n)
    } else {
        let c = p.cidr?;
        let mut set = cidr(cx, &c)?;
        for e in p.except.unwrap_or_default() {
            let ex = cidr(cx, &e)?;
            set = IpSet {
                v4: set.v4.subtract(&ex.v4),
                v6: set.v6.subtract(&ex.v6),
            };
        }
        Peer::Cidr(set)
    };
    Some(PeerAt { peer, loc })
}

fn cidr(cx: &mut Cx<'_>, s: &Spanned<String>) -> Option<IpSet> {
    let text = s.value.trim();
    // A lone address is its /32 or /128.
    let full = if text.contains('/') {
        text.to_string()
    } else if text.contains(':') {
        format!("{text}/128")
    } else {
        format!("{text}/32")
    };
    match IpSet::cidr(&full) {
        Ok(set) => Some(set),
        Err(_) => {
            let loc = cx.loc(s);
            cx.error(
                "bad-cidr",
                loc,
                format!("invalid CIDR `{}`", s.value),
                Some("write an address and a prefix length, e.g. 10.0.0.0/8 or fd00::/8".into()),
            );
            None
        }
    }
}

fn ports(cx: &mut Cx<'_>, v: Vec<Spanned<schema::Port>>) -> Vec<PortMatch> {
    let mut out = Vec::new();
    for p in v {
        let loc = cx.loc(&p);
        let p = p.value;
        let protocol = match &p.protocol {
            None => None,
            Some(s) => match s.value.parse::<Protocol>() {
                Ok(pr) => Some(pr),
                Err(_) => {
                    let l = cx.loc(s);
                    let hint = match closest(&s.value, ["TCP", "UDP", "SCTP"]) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => "expected TCP, UDP or SCTP".into(),
                    };
                    cx.error(
                        "bad-protocol",
                        l,
                        format!("unknown protocol `{}`", s.value),
                        Some(hint),
                    );
                    continue;
                }
            },
        };
        let num = |cx: &mut Cx<'_>, v: &Spanned<schema::PortValue>, what: &str| -> Option<u16> {
            match &v.value {
                schema::PortValue::Number(n) if (1..=65535).contains(n) => Some(*n as u16),
                schema::PortValue::Number(n) => {
                    let l = cx.loc(v);
                    cx.error(
                        "bad-port",
                        l,
                        format!("{what} {n} is out of range"),
                        Some("ports are 1 to 65535".into()),
                    );
                    None
                }
                schema::PortValue::Name(n) => {
                    let l = cx.loc(v);
                    cx.error(
                        "bad-port",
                        l,
                        format!("{what} must be a number, not `{n}`"),
                        Some("named ports go in `port` alone, without `endPort`".into()),
                    );
                    None
                }
            }
        };
        match (&p.port, &p.end_port) {
            (None, None) => match protocol {
                Some(pr) => out.push(PortMatch::Conns(ConnSet::protocol(pr))),
                None => cx.error(
                    "bad-port",
                    loc,
                    "empty port item",
                    Some("give a protocol, a port, or both".into()),
                ),
            },
            (None, Some(e)) => {
                let l = cx.loc(e);
                cx.error(
                    "bad-port",
                    l,
                    "`endPort` without `port`",
                    Some("write `port:` as the range's start".into()),
                );
            }
            (Some(v), end) => match &v.value {
                schema::PortValue::Name(name) => {
                    if end.is_some() {
                        let l = cx.loc(v);
                        cx.error(
                            "bad-port",
                            l,
                            format!("named port `{name}` with `endPort`"),
                            Some("a range needs numbers".into()),
                        );
                    } else if name.trim().is_empty() {
                        let l = cx.loc(v);
                        cx.error("bad-port", l, "empty port name", None);
                    } else {
                        out.push(PortMatch::Named {
                            protocol,
                            name: name.clone(),
                        });
                    }
                }
                schema::PortValue::Number(_) => {
                    let Some(lo) = num(cx, v, "port") else {
                        continue;
                    };
                    let hi = match end {
                        None => lo,
                        Some(e) => {
                            let Some(hi) = num(cx, e, "endPort") else {
                                continue;
                            };
                            if hi < lo {
                                let l = cx.loc(e);
                                cx.error(
                                    "bad-port",
                                    l,
                                    format!("endPort {hi} is below port {lo}"),
                                    Some("a range runs from `port` up to `endPort`".into()),
                                );
                                continue;
                            }
                            hi
                        }
                    };
                    out.push(PortMatch::Conns(ConnSet::ports(
                        protocol.unwrap_or(Protocol::Tcp),
                        RangeSet::range(lo, hi),
                    )));
                }
            },
        }
    }
    out
}
