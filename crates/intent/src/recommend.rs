//! Least-privilege intent from observed traffic (`bulkhead recommend`), pure: observed edges
//! between identities in, [`Recommendation`] out — segments for groups of workloads sharing the
//! group-by label values, allow rules between groups with merged port lists, DNS always kept —
//! with per-rule evidence, a deterministic YAML writer and the quality report ([`Quality`]).
//!
//! Definitions (the long form is in `docs/recommend.md`):
//! - A **group** is every identity with the same group key: Kubernetes workloads by namespace and
//!   the values of the group-by labels (a missing label is part of the key: `DoesNotExist`), hosts
//!   by the values of the group-by labels, an external group (a CIDR group of the store) by itself,
//!   and an address nobody holds (`internet`, `unknown`) by itself. Workloads and hosts never
//!   share a group.
//! - An **allow** is one rule per (source group, destination group) holding every observed
//!   protocol and port, consecutive ports merged into ranges. Edges between two non-internal
//!   peers (external to external) and edges of protocols outside the policy model (ICMP) are
//!   not ours and are counted apart.
//! - **DNS** (UDP and TCP 53) is allowed from every proposed segment to every DNS group: the
//!   destinations of observed port-53 edges and the groups whose workloads or hosts are labelled
//!   `app` or `k8s-app` `coredns`, `kube-dns` or `dns-resolver`, observed or not.

use crate::eval::{Identity, IdentityKind};
use crate::model::Mode;
use bulkhead_core::time::rfc3339;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// IANA protocol numbers of the policy model.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;

/// Label values that mark a DNS server (under `app` or `k8s-app`).
pub const DNS_LABEL_VALUES: &[&str] = &["coredns", "kube-dns", "dns-resolver"];

/// One observed edge: store nodes (indexes into [`Input::nodes`]), protocol, port and volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub port: u16,
    pub flows: u64,
    pub bytes: u64,
    /// First and last seen, ns since the epoch (`first > last`: not known, no timed record).
    pub first: i64,
    pub last: i64,
}

/// What the recommendation is computed from.
pub struct Input<'a> {
    pub identities: &'a [Identity],
    /// The CIDRs of external identities that are a store's external group (by identity index).
    /// An external identity without CIDRs is an address nobody holds, which only `any` matches.
    pub cidrs: &'a FxHashMap<usize, Vec<String>>,
    /// Store node → the identities it stands for (a Service: its workloads).
    pub nodes: &'a [Vec<usize>],
    pub edges: &'a [Observed],
}

/// Options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Label keys whose values make a group (`namespace` is always part of a workload's key).
    pub group_by: Vec<String>,
    /// The mode proposed for every segment.
    pub mode: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            group_by: vec!["app".into()],
            mode: Mode::Observe,
        }
    }
}

/// Which identities a group holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// Kubernetes workloads of a namespace with these values (`None`: the label is absent).
    Workloads {
        namespace: String,
        values: Vec<(String, Option<String>)>,
    },
    /// Hosts with these values.
    Hosts {
        values: Vec<(String, Option<String>)>,
    },
    /// A store external group: its name and CIDRs.
    External { name: String, cidrs: Vec<String> },
    /// An address nobody holds (`internet`, `unknown`): only `any` matches it.
    Unresolved { name: String },
}

impl GroupKey {
    /// A Kubernetes workload or a host (something Bulkhead can enforce on).
    pub fn is_internal(&self) -> bool {
        matches!(self, GroupKey::Workloads { .. } | GroupKey::Hosts { .. })
    }

    /// The key of an identity.
    pub fn of(id: &Identity, cidrs: Option<&Vec<String>>, group_by: &[String]) -> GroupKey {
        let values = || {
            group_by
                .iter()
                .filter(|k| k.as_str() != "namespace")
                .map(|k| (k.clone(), id.labels.get(k).cloned()))
                .collect()
        };
        match &id.kind {
            IdentityKind::Workload { namespace, .. } => GroupKey::Workloads {
                namespace: namespace.clone(),
                values: values(),
            },
            IdentityKind::Host => GroupKey::Hosts { values: values() },
            IdentityKind::External => match cidrs.filter(|c| !c.is_empty()) {
                Some(c) => {
                    let mut c = c.clone();
                    c.sort();
                    c.dedup();
                    GroupKey::External {
                        name: id.name.clone(),
                        cidrs: c,
                    }
                }
                None => GroupKey::Unresolved {
                    name: id.name.clone(),
                },
            },
        }
    }

    /// How the group generalises its members, for evidence: `app=payments in namespace payments`.
    pub fn describe(&self) -> String {
        fn vals(v: &[(String, Option<String>)]) -> String {
            let s: Vec<String> = v
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => format!("no {k} label"),
                })
                .collect();
            if s.is_empty() {
                "any labels".into()
            } else {
                s.join(", ")
            }
        }
        match self {
            GroupKey::Workloads { namespace, values } => {
                format!("{} in namespace {namespace}", vals(values))
            }
            GroupKey::Hosts { values } => format!("hosts with {}", vals(values)),
            GroupKey::External { name, cidrs } => {
                format!("external group {name} ({})", cidrs.join(", "))
            }
            GroupKey::Unresolved { name } => {
                format!("{name} (addresses no inventory holds: any peer)")
            }
        }
    }
}

/// A group of identities.
#[derive(Clone, Debug)]
pub struct Group {
    pub key: GroupKey,
    /// Segment name (internal groups) or a name for messages.
    pub name: String,
    /// Identities of the input in the group.
    pub members: Vec<usize>,
    /// Members seen in an edge of the training window.
    pub seen: usize,
    /// Receives DNS (observed on port 53 or labelled as a DNS server).
    pub dns: bool,
    /// Proposed as a segment.
    pub segment: bool,
}

/// Per-protocol port ranges (inclusive), sorted and merged.
pub type Ports = BTreeMap<u8, Vec<(u16, u16)>>;

/// The traffic behind a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub edges: u64,
    pub flows: u64,
    pub bytes: u64,
    /// ns since the epoch; `None` when nothing was observed (an infrastructure rule).
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Distinct source and destination identities seen.
    pub src_seen: usize,
    pub dst_seen: usize,
}

impl Evidence {
    /// "1 edge, 2312 flows, 0 bytes".
    pub fn volume(&self) -> String {
        let n = |v: u64, one: &str, many: &str| format!("{v} {}", if v == 1 { one } else { many });
        format!(
            "{}, {}, {}",
            n(self.edges, "edge", "edges"),
            n(self.flows, "flow", "flows"),
            n(self.bytes, "byte", "bytes")
        )
    }
}

/// One proposed allow rule: source group → destination group on ports.
#[derive(Clone, Debug)]
pub struct Allow {
    pub src: usize,
    pub dst: usize,
    pub ports: Ports,
    pub evidence: Evidence,
}

/// Edges, flows and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub edges: u64,
    pub flows: u64,
}

/// The proposal.
#[derive(Clone, Debug)]
pub struct Recommendation {
    pub options: Options,
    pub groups: Vec<Group>,
    /// Group of each input identity.
    pub group_of: Vec<usize>,
    /// Observed allows, sorted by (destination, source) group name.
    pub allows: Vec<Allow>,
    /// Groups DNS is allowed to, from every segment.
    pub dns: Vec<usize>,
    /// Observed DNS from segments to DNS groups (folded into the DNS rule; the volumes of an
    /// edge that also carried other ports count in both).
    pub dns_evidence: Evidence,
    /// Edges of protocols outside the policy model (ICMP): no rule proposed.
    pub other_protocol: Tally,
    /// Edges between two non-internal peers: not Bulkhead's to allow.
    pub not_ours: Tally,
    index: FxHashMap<GroupKey, usize>,
    blocks: Blocks,
}

/// What the proposal allows, normalised for counting: explicit ports per group pair, and ports
/// to or from `any` per group.
#[derive(Clone, Debug, Default)]
struct Blocks {
    pairs: FxHashMap<(usize, usize), Ports>,
    any_dst: FxHashMap<usize, Ports>,
    any_src: FxHashMap<usize, Ports>,
}

/// Sorted, merged ranges of a set of ports.
pub fn merge_ranges(mut v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(l) if u32::from(a) <= u32::from(l.1) + 1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Number of ports in merged ranges.
pub fn range_size(v: &[(u16, u16)]) -> u64 {
    v.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
}

fn add_ports(p: &mut Ports, proto: u8, ranges: &[(u16, u16)]) {
    let e = p.entry(proto).or_default();
    e.extend_from_slice(ranges);
    *e = merge_ranges(std::mem::take(e));
}

fn in_ranges(v: &[(u16, u16)], port: u16) -> bool {
    v.iter().any(|&(a, b)| a <= port && port <= b)
}

fn proto_supported(p: u8) -> bool {
    matches!(p, TCP | UDP | SCTP)
}

/// A segment name from a group key: lowercase letters, digits, `-` and `.`.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches(|c: char| c == '-' || c == '.');
    if t.is_empty() { "x".into() } else { t.into() }
}

fn base_name(k: &GroupKey) -> String {
    let vals = |v: &[(String, Option<String>)]| -> String {
        let s: Vec<String> = v
            .iter()
            .map(|(k, v)| match v {
                Some(v) => v.clone(),
                None => format!("no-{k}"),
            })
            .collect();
        if s.is_empty() {
            "all".into()
        } else {
            s.join("-")
        }
    };
    match k {
        GroupKey::Workloads { namespace, values } => {
            format!("{}.{}", sanitize(namespace), sanitize(&vals(values)))
        }
        GroupKey::Hosts { values } => format!("hosts.{}", sanitize(&vals(values))),
        GroupKey::External { name, .. } | GroupKey::Unresolved { name } => {
            sanitize(name.strip_prefix("external:").unwrap_or(name))
        }
    }
}

fn is_dns_labelled(id: &Identity) -> bool {
    ["app", "k8s-app"].iter().any(|k| {
        id.labels
            .get(*k)
            .is_some_and(|v| DNS_LABEL_VALUES.contains(&v.as_str()))
    })
}

/// Computes the proposal.
pub fn recommend(input: &Input<'_>, options: &Options) -> Recommendation {
    // Groups over every identity, in key order (names follow the key order, so they are stable).
    let keys: Vec<GroupKey> = input
        .identities
        .iter()
        .enumerate()
        .map(|(i, id)| GroupKey::of(id, input.cidrs.get(&i), &options.group_by))
        .collect();
    let mut sorted: Vec<&GroupKey> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut index: FxHashMap<GroupKey, usize> = FxHashMap::default();
    let mut groups: Vec<Group> = Vec::with_capacity(sorted.len());
    let mut used_names: FxHashSet<String> = FxHashSet::default();
    for k in sorted {
        let base = base_name(k);
        let mut name = base.clone();
        let mut n = 2;
        while !used_names.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        index.insert(k.clone(), groups.len());
        groups.push(Group {
            key: k.clone(),
            name,
            members: Vec::new(),
            seen: 0,
            dns: false,
            segment: false,
        });
    }
    let group_of: Vec<usize> = keys.iter().map(|k| index[k]).collect();
    for (i, &g) in group_of.iter().enumerate() {
        groups[g].members.push(i);
        if is_dns_labelled(&input.identities[i]) && groups[g].key.is_internal() {
            groups[g].dns = true;
        }
    }
    // Observed allows.
    struct Acc {
        ports: Vec<(u8, u16)>,
        ev: Evidence,
        srcs: FxHashSet<usize>,
        dsts: FxHashSet<usize>,
    }
    let mut acc: FxHashMap<(usize, usize), Acc> = FxHashMap::default();
    let mut other_protocol = Tally::default();
    let mut not_ours = Tally::default();
    let mut seen = vec![false; input.identities.len()];
    let empty = Vec::new();
    for e in input.edges {
        let srcs = input.nodes.get(e.src as usize).unwrap_or(&empty);
        let dsts = input.nodes.get(e.dst as usize).unwrap_or(&empty);
        if !proto_supported(e.proto) {
            other_protocol.edges += 1;
            other_protocol.flows += e.flows;
            continue;
        }
        let mut ours = false;
        for &s in srcs {
            for &d in dsts {
                let (gs, gd) = (group_of[s], group_of[d]);
                if !groups[gs].key.is_internal() && !groups[gd].key.is_internal() {
                    continue;
                }
                ours = true;
                seen[s] = true;
                seen[d] = true;
                let a = acc.entry((gs, gd)).or_insert_with(|| Acc {
                    ports: Vec::new(),
                    ev: Evidence::default(),
                    srcs: FxHashSet::default(),
                    dsts: FxHashSet::default(),
                });
                a.ports.push((e.proto, e.port));
                a.srcs.insert(s);
                a.dsts.insert(d);
            }
        }
        if !ours {
            not_ours.edges += 1;
            not_ours.flows += e.flows;
            continue;
        }
        // Volumes count once per edge and group pair (a Service's members share one edge).
        let mut pairs: Vec<(usize, usize)> = srcs
            .iter()
            .flat_map(|&s| dsts.iter().map(move |&d| (s, d)))
            .map(|(s, d)| (group_of[s], group_of[d]))
            .filter(|&(gs, gd)| groups[gs].key.is_internal() || groups[gd].key.is_internal())
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        for p in pairs {
            if let Some(a) = acc.get_mut(&p) {
                let ev = &mut a.ev;
                ev.edges += 1;
                ev.flows += e.flows;
                ev.bytes += e.bytes;
                if e.first <= e.last {
                    ev.first = Some(ev.first.map_or(e.first, |f| f.min(e.first)));
                    ev.last = Some(ev.last.map_or(e.last, |l| l.max(e.last)));
                }
                if matches!(e.port, 53) && matches!(e.proto, TCP | UDP) {
                    let gd = p.1;
                    if !matches!(groups[gd].key, GroupKey::Unresolved { .. }) {
                        groups[gd].dns = true;
                    }
                }
            }
        }
    }
    for (i, &s) in seen.iter().enumerate() {
        if s {
            groups[group_of[i]].seen += 1;
        }
    }
    let mut allows: Vec<Allow> = acc
        .into_iter()
        .map(|((s, d), a)| {
            let mut ports = Ports::new();
            let mut by: BTreeMap<u8, Vec<(u16, u16)>> = BTreeMap::new();
            for (p, port) in a.ports {
                by.entry(p).or_default().push((port, port));
            }
            for (p, v) in by {
                ports.insert(p, merge_ranges(v));
            }
            let mut ev = a.ev;
            ev.src_seen = a.srcs.len();
            ev.dst_seen = a.dsts.len();
            Allow {
                src: s,
                dst: d,
                ports,
                evidence: ev,
            }
        })
        .collect();
    allows.sort_by(|a, b| {
        (&groups[a.dst].name, &groups[a.src].name).cmp(&(&groups[b.dst].name, &groups[b.src].name))
    });
    // Segments: internal groups in an observed allow, and DNS groups.
    for a in &allows {
        for g in [a.src, a.dst] {
            if groups[g].key.is_internal() {
                groups[g].segment = true;
            }
        }
    }
    let dns: Vec<usize> = (0..groups.len()).filter(|&g| groups[g].dns).collect();
    for &g in &dns {
        if groups[g].key.is_internal() {
            groups[g].segment = true;
        }
    }
    // Observed DNS to DNS groups from segments is the DNS rule's: taken out of the observed
    // allows (an allow left with no port goes), its evidence kept on the DNS rule.
    let mut dns_evidence = Evidence::default();
    allows.retain_mut(|a| {
        if !(groups[a.dst].dns && groups[a.src].segment) {
            return true;
        }
        let mut had = false;
        for p in [UDP, TCP] {
            if let Some(r) = a.ports.get_mut(&p) {
                let before = range_size(r);
                *r = subtract(r, 53);
                had |= range_size(r) != before;
                if r.is_empty() {
                    a.ports.remove(&p);
                }
            }
        }
        if had {
            let (d, e) = (&mut dns_evidence, &a.evidence);
            d.edges += e.edges;
            d.flows += e.flows;
            d.bytes += e.bytes;
            d.first = d.first.into_iter().chain(e.first).min();
            d.last = d.last.into_iter().chain(e.last).max();
            d.src_seen += e.src_seen;
            d.dst_seen += e.dst_seen;
        }
        !a.ports.is_empty()
    });
    let mut rec = Recommendation {
        dns_evidence,
        options: options.clone(),
        groups,
        group_of,
        allows,
        dns,
        other_protocol,
        not_ours,
        index,
        blocks: Blocks::default(),
    };
    rec.blocks = rec.compute_blocks();
    rec
}

/// Whether the proposal allows a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Blocked,
    /// Neither end is in a proposed segment (or both are outside every inventory): the
    /// proposal has no say.
    NotOurs,
}

impl Recommendation {
    fn compute_blocks(&self) -> Blocks {
        let mut b = Blocks::default();
        for a in &self.allows {
            let (s, d) = (&self.groups[a.src].key, &self.groups[a.dst].key);
            for (&p, r) in &a.ports {
                if matches!(d, GroupKey::Unresolved { .. }) {
                    add_ports(b.any_dst.entry(a.src).or_default(), p, r);
                } else if matches!(s, GroupKey::Unresolved { .. }) {
                    add_ports(b.any_src.entry(a.dst).or_default(), p, r);
                } else {
                    add_ports(b.pairs.entry((a.src, a.dst)).or_default(), p, r);
                }
            }
        }
        for s in self.segment_groups() {
            for &d in &self.dns {
                let e = b.pairs.entry((s, d)).or_default();
                add_ports(e, UDP, &[(53, 53)]);
                add_ports(e, TCP, &[(53, 53)]);
            }
        }
        b
    }

    /// Groups proposed as segments, in name order.
    pub fn segment_groups(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].segment)
            .collect();
        v.sort_by(|&a, &b| self.groups[a].name.cmp(&self.groups[b].name));
        v
    }

    /// The group an identity falls in, if the proposal has one for its key.
    pub fn group_for(&self, id: &Identity, cidrs: Option<&Vec<String>>) -> Option<usize> {
        self.index
            .get(&GroupKey::of(id, cidrs, &self.options.group_by))
            .copied()
    }

    /// Whether the proposal allows `proto`/`port` from group `s` to group `d` (either may be
    /// unknown to it: a new identity, in no group). `internal` says whether each end is a
    /// workload or host.
    pub fn outcome(
        &self,
        s: Option<usize>,
        s_internal: bool,
        d: Option<usize>,
        d_internal: bool,
        proto: u8,
        port: u16,
    ) -> Outcome {
        let managed = |g: Option<usize>| g.is_some_and(|g| self.groups[g].segment);
        if (!s_internal && !d_internal) || (!managed(s) && !managed(d)) {
            return Outcome::NotOurs;
        }
        let hit = |p: Option<&Ports>| {
            p.and_then(|p| p.get(&proto))
                .is_some_and(|r| in_ranges(r, port))
        };
        let pair = s.zip(d).and_then(|k| self.blocks.pairs.get(&k));
        if hit(pair)
            || hit(s.and_then(|s| self.blocks.any_dst.get(&s)))
            || hit(d.and_then(|d| self.blocks.any_src.get(&d)))
        {
            Outcome::Allowed
        } else {
            Outcome::Blocked
        }
    }

    /// (source identity, destination identity, protocol, port) combinations the rules allow,
    /// counted by combinatorics over group sizes and port-set sizes. Pairs of two non-internal
    /// identities are not counted (not connections of ours); an `any` peer matches every
    /// identity of the input. CIDR peers are assumed to match only their external group (a host
    /// whose address falls inside an external group's CIDR is not counted).
    pub fn allowed_combinations(&self) -> u128 {
        let size = |g: usize| self.groups[g].members.len() as u128;
        let n: u128 = self.group_of.len() as u128;
        let empty = Ports::new();
        let mut total: u128 = 0;
        for proto in [TCP, UDP, SCTP] {
            let a = |g: usize| {
                self.blocks
                    .any_dst
                    .get(&g)
                    .and_then(|p| p.get(&proto))
                    .map_or(&[][..], |v| v.as_slice())
            };
            let b = |g: usize| {
                self.blocks
                    .any_src
                    .get(&g)
                    .and_then(|p| p.get(&proto))
                    .map_or(&[][..], |v| v.as_slice())
            };
            // Every pair × (A_s ∪ B_d) = Σ|s||A_s|·N + N·Σ|d||B_d| − Σ|s||d||A_s ∩ B_d|.
            let sa: u128 = self
                .blocks
                .any_dst
                .keys()
                .map(|&g| size(g) * u128::from(range_size(a(g))))
                .sum();
            let sb: u128 = self
                .blocks
                .any_src
                .keys()
                .map(|&g| size(g) * u128::from(range_size(b(g))))
                .sum();
            total += sa * n + sb * n;
            for &s in self.blocks.any_dst.keys() {
                for &d in self.blocks.any_src.keys() {
                    let both = intersect_size(a(s), b(d));
                    total -= size(s) * size(d) * u128::from(both);
                }
            }
            // Explicit pairs add what A_s ∪ B_d does not already hold.
            for (&(s, d), p) in &self.blocks.pairs {
                let e = p.get(&proto).map_or(&[][..], |v| v.as_slice());
                let ab = merge_ranges([a(s), b(d)].concat());
                let all = merge_ranges([e, &ab[..]].concat());
                total += size(s) * size(d) * u128::from(range_size(&all) - range_size(&ab));
            }
            let _ = &empty;
        }
        total
    }
}

/// `v` without one port.
fn subtract(v: &[(u16, u16)], port: u16) -> Vec<(u16, u16)> {
    let mut out = Vec::with_capacity(v.len() + 1);
    for &(a, b) in v {
        if port < a || port > b {
            out.push((a, b));
            continue;
        }
        if a < port {
            out.push((a, port - 1));
        }
        if port < b {
            out.push((port + 1, b));
        }
    }
    out
}

fn intersect_size(a: &[(u16, u16)], b: &[(u16, u16)]) -> u64 {
    let mut n = 0;
    for &(x0, x1) in a {
        for &(y0, y1) in b {
            let (lo, hi) = (x0.max(y0), x1.min(y1));
            if lo <= hi {
                n += u64::from(hi - lo) + 1;
            }
        }
    }
    n
}

/// A YAML double-quoted scalar (JSON's escapes are YAML's).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Comment text on one line.
fn c(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => "TCP",
        UDP => "UDP",
        _ => "SCTP",
    }
}

/// `TCP 443, 8443; UDP 53`.
pub fn ports_text(p: &Ports) -> String {
    p.iter()
        .map(|(&proto, r)| {
            let list: Vec<String> = r
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            format!("{} {}", proto_name(proto), list.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ports_yaml(p: &Ports) -> String {
    let items: Vec<String> = p
        .iter()
        .flat_map(|(&proto, r)| {
            r.iter().map(move |&(a, b)| {
                if a == b {
                    format!("{{protocol: {}, port: {a}}}", proto_name(proto))
                } else {
                    format!(
                        "{{protocol: {}, port: {a}, endPort: {b}}}",
                        proto_name(proto)
                    )
                }
            })
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// How the proposal was produced, for the header comment.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// The store's directory.
    pub store: String,
    /// `FROM..TO` or `all recorded traffic`.
    pub window: String,
}

/// The YAML files of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    pub segments: String,
    pub policies: String,
}

impl Recommendation {
    fn header(&self, p: &Provenance, what: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# {what} proposed by `bulkhead recommend` from observed traffic: review before applying."
        );
        let _ = writeln!(s, "# store: {}", c(&p.store));
        let _ = writeln!(s, "# window: {}", c(&p.window));
        let _ = writeln!(
            s,
            "# group-by: {} (workloads are always grouped per namespace); mode: {}",
            c(&self.options.group_by.join(", ")),
            self.options.mode
        );
        s
    }

    fn peer(&self, g: usize) -> Vec<String> {
        match &self.groups[g].key {
            GroupKey::Workloads { .. } | GroupKey::Hosts { .. } => {
                vec![format!("{{segment: {}}}", self.groups[g].name)]
            }
            GroupKey::External { cidrs, .. } => cidrs
                .iter()
                .map(|c| format!("{{cidr: {}}}", q(c)))
                .collect(),
            GroupKey::Unresolved { .. } => vec!["{any: true}".into()],
        }
    }

    fn generalisation(&self, g: usize, seen: usize) -> String {
        let gr = &self.groups[g];
        match gr.key {
            GroupKey::Workloads { .. } | GroupKey::Hosts { .. } => format!(
                "{} ({} {} in the inventory, {seen} seen here)",
                gr.key.describe(),
                gr.members.len(),
                match (
                    matches!(gr.key, GroupKey::Hosts { .. }),
                    gr.members.len() == 1
                ) {
                    (true, true) => "host",
                    (true, false) => "hosts",
                    (false, true) => "workload",
                    (false, false) => "workloads",
                }
            ),
            _ => gr.key.describe(),
        }
    }

    /// One-line evidence of an allow (rule description and annotation).
    pub fn evidence_text(&self, a: &Allow) -> String {
        let e = &a.evidence;
        let when = match (e.first, e.last) {
            (Some(f), Some(l)) => format!(", first seen {}, last seen {}", rfc3339(f), rfc3339(l)),
            _ => String::new(),
        };
        format!(
            "observed {}{when}; source: {}; destination: {}",
            e.volume(),
            self.generalisation(a.src, e.src_seen),
            self.generalisation(a.dst, e.dst_seen)
        )
    }

    /// `segments.yaml` and `policies.yaml`: sorted, every rule preceded by its evidence.
    pub fn to_yaml(&self, p: &Provenance) -> Files {
        let mut seg = self.header(p, "Segments");
        seg.push_str(
            "# One segment per group of workloads (namespace and group-by label values) or hosts seen in\n# the window, and every DNS server group.\n",
        );
        for g in self.segment_groups() {
            let gr = &self.groups[g];
            seg.push_str("---\n");
            let _ = writeln!(
                seg,
                "# {}: {} members, {} seen",
                c(&gr.key.describe()),
                gr.members.len(),
                gr.seen
            );
            let _ = write!(
                seg,
                "apiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata:\n  name: {}\n  annotations:\n    bulkhead.dev/generated-by: \"bulkhead recommend\"\n    bulkhead.dev/members: \"{}\"\n    bulkhead.dev/seen: \"{}\"\nspec:\n",
                gr.name,
                gr.members.len(),
                gr.seen
            );
            let _ = writeln!(seg, "  description: {}", q(&gr.key.describe()));
            let sel = |values: &[(String, Option<String>)]| -> String {
                let ml: Vec<String> = values
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{}: {}", q(k), q(v))))
                    .collect();
                let me: Vec<String> = values
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| format!("{{key: {}, operator: DoesNotExist}}", q(k)))
                    .collect();
                let mut parts = Vec::new();
                if !ml.is_empty() {
                    parts.push(format!("matchLabels: {{{}}}", ml.join(", ")));
                }
                if !me.is_empty() {
                    parts.push(format!("matchExpressions: [{}]", me.join(", ")));
                }
                format!("{{{}}}", parts.join(", "))
            };
            match &gr.key {
                GroupKey::Workloads { namespace, values } => {
                    let _ = writeln!(
                        seg,
                        "  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}",
                        q(namespace)
                    );
                    let _ = writeln!(seg, "  podSelector: {}", sel(values));
                }
                GroupKey::Hosts { values } => {
                    let _ = writeln!(seg, "  hostSelector: {}", sel(values));
                }
                _ => {}
            }
            let _ = writeln!(seg, "  mode: {}", self.options.mode);
        }
        let mut pol = self.header(p, "Policies");
        pol.push_str("# Application tier: one policy per destination group (and per source group for traffic to\n# addresses outside the inventory), one allow rule per source group with every observed port.\n");
        // Policies: keyed by the internal group that owns them.
        let mut by_owner: BTreeMap<&str, Vec<&Allow>> = BTreeMap::new();
        for a in &self.allows {
            let owner = if self.groups[a.dst].key.is_internal() {
                a.dst
            } else {
                a.src
            };
            by_owner
                .entry(self.groups[owner].name.as_str())
                .or_default()
                .push(a);
        }
        for (owner, allows) in &by_owner {
            pol.push_str("---\n");
            let rule_name = |a: &Allow| {
                if self.groups[a.dst].key.is_internal() && self.groups[a.dst].name == *owner {
                    format!("from-{}", self.groups[a.src].name)
                } else {
                    format!("to-{}", self.groups[a.dst].name)
                }
            };
            let _ = write!(
                pol,
                "apiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: allow-{owner}\n  annotations:\n    bulkhead.dev/generated-by: \"bulkhead recommend\"\n"
            );
            for a in allows {
                let _ = writeln!(
                    pol,
                    "    evidence.bulkhead.dev/{}: {}",
                    rule_name(a),
                    q(&self.evidence_text(a))
                );
            }
            let _ = write!(pol, "spec:\n  tier: application\n  rules:\n");
            for a in allows {
                let e = &a.evidence;
                let _ = writeln!(
                    pol,
                    "    # {} -> {}: {}",
                    c(&self.groups[a.src].name),
                    c(&self.groups[a.dst].name),
                    ports_text(&a.ports)
                );
                let _ = writeln!(
                    pol,
                    "    # evidence: {}{}",
                    e.volume(),
                    match (e.first, e.last) {
                        (Some(f), Some(l)) =>
                            format!(", first seen {}, last seen {}", rfc3339(f), rfc3339(l)),
                        _ => String::new(),
                    }
                );
                let _ = writeln!(
                    pol,
                    "    # source: {}",
                    c(&self.generalisation(a.src, e.src_seen))
                );
                let _ = writeln!(
                    pol,
                    "    # destination: {}",
                    c(&self.generalisation(a.dst, e.dst_seen))
                );
                let _ = writeln!(pol, "    - name: {}", q(&rule_name(a)));
                let _ = writeln!(pol, "      action: allow");
                let _ = writeln!(pol, "      from: [{}]", self.peer(a.src).join(", "));
                let _ = writeln!(pol, "      to: [{}]", self.peer(a.dst).join(", "));
                let _ = writeln!(pol, "      ports: {}", ports_yaml(&a.ports));
                let _ = writeln!(pol, "      description: {}", q(&self.evidence_text(a)));
            }
        }
        // DNS, always kept.
        let sources = self.segment_groups();
        pol.push_str("---\n");
        pol.push_str("# Required infrastructure, always kept whether observed or not: DNS (UDP and TCP 53) from every\n# proposed segment to every DNS server group (destinations of observed port-53 traffic, and\n# groups labelled app or k8s-app = coredns, kube-dns or dns-resolver).\n");
        if self.dns.is_empty() || sources.is_empty() {
            pol.push_str(
                "# No DNS server was observed or labelled: no DNS rule could be written.\n",
            );
        } else {
            let dns_names: Vec<String> = self
                .dns
                .iter()
                .map(|&g| c(&self.groups[g].key.describe()))
                .collect();
            let _ = write!(
                pol,
                "# DNS servers: {}\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: infrastructure-dns\n  annotations:\n    bulkhead.dev/generated-by: \"bulkhead recommend\"\n    bulkhead.dev/infrastructure: \"dns\"\nspec:\n  tier: application\n  priority: 100\n  rules:\n    - name: dns\n      action: allow\n      from:\n",
                dns_names.join("; ")
            );
            for &s in &sources {
                for p in self.peer(s) {
                    let _ = writeln!(pol, "        - {p}");
                }
            }
            pol.push_str("      to:\n");
            let mut dst: Vec<usize> = self.dns.clone();
            dst.sort_by(|&a, &b| self.groups[a].name.cmp(&self.groups[b].name));
            for d in dst {
                for p in self.peer(d) {
                    let _ = writeln!(pol, "        - {p}");
                }
            }
            pol.push_str("      ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]\n");
            let e = &self.dns_evidence;
            let when = match (e.first, e.last) {
                (Some(f), Some(l)) => {
                    format!(", first seen {}, last seen {}", rfc3339(f), rfc3339(l))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                pol,
                "      description: {}",
                q(&format!(
                    "Required infrastructure: name resolution, always allowed; observed {}{when}",
                    e.volume()
                ))
            );
        }
        Files {
            segments: seg,
            policies: pol,
        }
    }

    /// Rules the policy files hold (observed allows, plus the DNS rule).
    pub fn rule_count(&self) -> usize {
        self.allows.len() + usize::from(!self.dns.is_empty() && !self.segment_groups().is_empty())
    }
}

/// Coverage of a window under a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub edges: u64,
    pub flows: u64,
    /// Edges and flows the policy allows (of those it has a say on).
    pub allowed_edges: u64,
    pub allowed_flows: u64,
    /// Edges and flows it would block.
    pub blocked_edges: u64,
    pub blocked_flows: u64,
    /// Edges it has no say on (neither end in a proposed segment, ICMP, external to external).
    pub not_ours_edges: u64,
}

impl Window {
    /// Share of flows allowed (1 when there is nothing to allow).
    pub fn covered_share(&self) -> f64 {
        let n = self.allowed_flows + self.blocked_flows;
        if n == 0 {
            1.0
        } else {
            self.allowed_flows as f64 / n as f64
        }
    }

    pub fn blocked_flow_share(&self) -> f64 {
        let n = self.allowed_flows + self.blocked_flows;
        if n == 0 {
            0.0
        } else {
            self.blocked_flows as f64 / n as f64
        }
    }

    pub fn blocked_edge_share(&self) -> f64 {
        let n = self.allowed_edges + self.blocked_edges;
        if n == 0 {
            0.0
        } else {
            self.blocked_edges as f64 / n as f64
        }
    }
}

/// The figures of one policy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub rules: usize,
    pub training: Window,
    pub holdout: Option<Window>,
    /// Allowed (source, destination, protocol, port) combinations.
    pub allowed: u128,
    /// Of those, observed in the training window.
    pub observed: u128,
}

impl Figures {
    /// Allowed combinations never observed, as a share of allowed combinations.
    pub fn over_permissive(&self) -> f64 {
        if self.allowed == 0 {
            0.0
        } else {
            (self.allowed - self.observed.min(self.allowed)) as f64 / self.allowed as f64
        }
    }
}

/// The quality report: the proposal against the naive one-rule-per-edge policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quality {
    pub recommended: Figures,
    pub naive: Figures,
    pub segments: usize,
    pub groups_seen: usize,
    pub identities: usize,
}

/// Distinct observed (source identity, destination identity, protocol, port) combinations of
/// internal connections (what the naive policy allows, one rule each).
fn observed_combos(rec: &Recommendation, input: &Input<'_>) -> FxHashSet<(u32, u32, u8, u16)> {
    let mut set = FxHashSet::default();
    let empty = Vec::new();
    for e in input.edges {
        if !proto_supported(e.proto) {
            continue;
        }
        for &s in input.nodes.get(e.src as usize).unwrap_or(&empty) {
            for &d in input.nodes.get(e.dst as usize).unwrap_or(&empty) {
                let (gs, gd) = (rec.group_of[s], rec.group_of[d]);
                if rec.groups[gs].key.is_internal() || rec.groups[gd].key.is_internal() {
                    set.insert((s as u32, d as u32, e.proto, e.port));
                }
            }
        }
    }
    set
}

/// How an identity of another window is known: its name and kind (and CIDRs).
fn identity_name(id: &Identity) -> (u8, &str) {
    let k = match id.kind {
        IdentityKind::Workload { .. } => 0,
        IdentityKind::Host => 1,
        IdentityKind::External => 2,
    };
    (k, id.name.as_str())
}

/// Quality of `rec` (computed from `training`) and of the naive policy, over the training
/// window and, if given, a held-out window (its own identities and nodes).
pub fn quality(rec: &Recommendation, training: &Input<'_>, holdout: Option<&Input<'_>>) -> Quality {
    let combos = observed_combos(rec, training);
    // Naive: one rule per observed combination, keyed by identity name so another window's
    // identities can be looked up.
    let naive_set: FxHashSet<(u8, &str, u8, &str, u8, u16)> = combos
        .iter()
        .map(|&(s, d, p, port)| {
            let (ks, ns) = identity_name(&training.identities[s as usize]);
            let (kd, nd) = identity_name(&training.identities[d as usize]);
            (ks, ns, kd, nd, p, port)
        })
        .collect();
    let window = |input: &Input<'_>, naive: bool| -> Window {
        let groups: Vec<Option<usize>> = input
            .identities
            .iter()
            .enumerate()
            .map(|(i, id)| rec.group_for(id, input.cidrs.get(&i)))
            .collect();
        let internal: Vec<bool> = input
            .identities
            .iter()
            .map(|id| !matches!(id.kind, IdentityKind::External))
            .collect();
        let mut w = Window::default();
        let empty = Vec::new();
        for e in input.edges {
            w.edges += 1;
            w.flows += e.flows;
            if !proto_supported(e.proto) {
                w.not_ours_edges += 1;
                continue;
            }
            // The most restrictive outcome over the node's identities.
            let mut out = Outcome::NotOurs;
            for &s in input.nodes.get(e.src as usize).unwrap_or(&empty) {
                for &d in input.nodes.get(e.dst as usize).unwrap_or(&empty) {
                    let o = if naive {
                        if !internal[s] && !internal[d] {
                            Outcome::NotOurs
                        } else {
                            let (ks, ns) = identity_name(&input.identities[s]);
                            let (kd, nd) = identity_name(&input.identities[d]);
                            if naive_set.contains(&(ks, ns, kd, nd, e.proto, e.port)) {
                                Outcome::Allowed
                            } else {
                                Outcome::Blocked
                            }
                        }
                    } else {
                        rec.outcome(
                            groups[s],
                            internal[s],
                            groups[d],
                            internal[d],
                            e.proto,
                            e.port,
                        )
                    };
                    out = match (out, o) {
                        (Outcome::Blocked, _) | (_, Outcome::Blocked) => Outcome::Blocked,
                        (Outcome::Allowed, _) | (_, Outcome::Allowed) => Outcome::Allowed,
                        _ => Outcome::NotOurs,
                    };
                }
            }
            match out {
                Outcome::Allowed => {
                    w.allowed_edges += 1;
                    w.allowed_flows += e.flows;
                }
                Outcome::Blocked => {
                    w.blocked_edges += 1;
                    w.blocked_flows += e.flows;
                }
                Outcome::NotOurs => w.not_ours_edges += 1,
            }
        }
        w
    };
    let observed = combos.len() as u128;
    let recommended = Figures {
        rules: rec.rule_count(),
        training: window(training, false),
        holdout: holdout.map(|h| window(h, false)),
        allowed: rec.allowed_combinations(),
        observed,
    };
    let naive = Figures {
        rules: combos.len(),
        training: window(training, true),
        holdout: holdout.map(|h| window(h, true)),
        allowed: observed,
        observed,
    };
    Quality {
        recommended,
        naive,
        segments: rec.segment_groups().len(),
        groups_seen: rec.groups.iter().filter(|g| g.seen > 0).count(),
        identities: training.identities.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_ranges() {
        type R = [(u16, u16)];
        let cases: &[(&R, &R, &str)] = &[
            (&[], &[], "empty"),
            (
                &[(5, 5), (6, 6), (8, 8)],
                &[(5, 6), (8, 8)],
                "adjacent ports join",
            ),
            (
                &[(10, 20), (15, 30), (31, 31)],
                &[(10, 31)],
                "overlap and adjacency",
            ),
            (
                &[(65535, 65535), (0, 0)],
                &[(0, 0), (65535, 65535)],
                "ends, sorted",
            ),
            (
                &[(65534, 65535), (65535, 65535)],
                &[(65534, 65535)],
                "no overflow at 65535",
            ),
        ];
        for (input, want, msg) in cases {
            assert_eq!(merge_ranges(input.to_vec()), want.to_vec(), "{msg}");
        }
        assert_eq!(range_size(&[(0, 65535)]), 65536);
        assert_eq!(intersect_size(&[(1, 10), (20, 30)], &[(5, 25)]), 6 + 6);
    }

    #[test]
    fn names_are_valid_segment_names() {
        for (raw, want) in [
            ("Payments_API", "payments-api"),
            ("--x--", "x"),
            ("", "x"),
            ("a..b", "a..b"),
            ("ÿ", "x"),
        ] {
            assert_eq!(sanitize(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn yaml_quoting_escapes() {
        assert_eq!(q("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(q("\u{1}"), "\"\\u0001\"");
    }
}
