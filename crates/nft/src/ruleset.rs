//! The intent compiled for one host: the `inet bulkhead` table as a small model (sets, chains,
//! rules, named counters) that renders to nft JSON ([`crate::json`]) and nft text
//! ([`crate::text`]).
//!
//! Semantics (the evaluator's, `docs/intent.md`, for the host's own side of each connection):
//! - the `input` chain judges connections whose destination is the host, the `output` chain
//!   those whose source is the host; the other end enforces its own side;
//! - a rule takes part in `input` when its `to` holds the host (decided here, at compile time,
//!   from the host's labels and addresses) and then matches the packet's source address against
//!   the sets of its `from`; in `output` the other way round;
//! - one chain per tier, jumped to from the base chain in tier order; the first matching rule
//!   decides: `allow` accepts, `deny` drops (enforce) or counts and accepts (observe), `pass`
//!   returns to the base chain, which goes on with the next tier;
//! - no rule: the base chain's last rule drops (enforce) or counts (observe);
//! - replies (`ct state established,related`), loopback (a host talking to itself is not a
//!   connection between two identities) and IPv6 neighbour and multicast listener discovery (the
//!   IPv6 twin of ARP, which `inet` tables never see) are accepted first.

use crate::NftError;
use bulkhead_compile::lower::{LPeer, LRule, Lowered};
use bulkhead_compile::{Options, Target};
use bulkhead_core::{IpRange, IpSet, Protocol, RangeSet, Selector};
use bulkhead_intent::{Action, Identity, IdentityKind, Intent, Mode, Tier};
use std::collections::HashMap;
use std::net::IpAddr;

/// The one table Bulkhead owns on a host.
pub const TABLE: &str = "bulkhead";

/// How the host is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    /// In an enforced segment: default deny, deny rules drop.
    Enforce,
    /// Only in observed segments (or forced by the agent): nothing is dropped; what would be is
    /// counted.
    Observe,
    /// In no segment: nothing of Bulkhead's enforces here; the table drops nothing.
    Unmanaged,
}

impl HostMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HostMode::Enforce => "enforce",
            HostMode::Observe => "observe",
            HostMode::Unmanaged => "unmanaged",
        }
    }
}

/// An address family of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// A named address set: `flags interval` when an element is a range or prefix; a plain (hash)
/// set of addresses otherwise, which nft loads about twice as fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NSet {
    pub name: String,
    pub family: Family,
    /// Disjoint, non-adjacent, in address order, all of `family`.
    pub elems: Vec<IpRange>,
}

impl NSet {
    /// Does the set need `flags interval` (an element that is not a single address)?
    pub fn interval(&self) -> bool {
        self.elems.iter().any(|r| r.first() != r.last())
    }
}

/// Which end of the packet a set match looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// One match of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `ct state established,related`
    Established,
    /// `iif "lo"` / `oif "lo"` (`End::Src`: input interface).
    Loopback(End),
    /// `icmpv6 type { nd-… }`
    NeighbourDiscovery,
    /// `ip saddr @set` / `ip6 daddr @set`
    Set(End, Family, String),
    /// `tcp dport { 80, 90-100 }`
    Ports(Protocol, Vec<(u16, u16)>),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NVerdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// No verdict: the rule only counts.
    None,
}

/// One nft rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NRule {
    pub matches: Vec<Match>,
    /// A named counter the rule increments.
    pub counter: Option<String>,
    pub verdict: NVerdict,
    pub comment: Option<String>,
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Input,
    Output,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NChain {
    pub name: String,
    /// Base chains: `type filter hook … priority filter; policy accept;`
    pub hook: Option<Hook>,
    pub rules: Vec<NRule>,
}

/// What a named counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// Packets an enforced drop dropped.
    Blocked,
    /// Packets observe mode let through that enforce mode would drop.
    WouldBlock,
}

/// A named counter and the rule (or default) it stands for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CounterInfo {
    pub name: String,
    /// `input` or `output`.
    pub direction: &'static str,
    pub kind: CounterKind,
    /// `policy/rule` of the deciding rule, or `default`.
    pub rule: String,
    /// `file:line:column` of the rule (empty for the default).
    pub at: String,
}

/// The compiled table of one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub host: String,
    pub mode: HostMode,
    pub sets: Vec<NSet>,
    pub chains: Vec<NChain>,
    pub counters: Vec<CounterInfo>,
    /// Explicit fallbacks (rules that cannot match on this host, peers without addresses).
    pub notes: Vec<String>,
}

impl Ruleset {
    /// Total set elements.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elems.len()).sum()
    }

    /// Does any rule drop? (Never in observe or unmanaged mode.)
    pub fn drops(&self) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .any(|r| r.verdict == NVerdict::Drop)
    }
}

/// How a host is compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeOverride {
    /// The segments decide.
    #[default]
    Segments,
    /// Observe whatever the segments say (the agent's `--mode observe`); unmanaged stays
    /// unmanaged.
    Observe,
}

/// The mode of `host` under `intent`: enforce if an enforced segment's host selector picks it,
/// observe if only observed ones do, else unmanaged.
pub fn host_mode(intent: &Intent, host: &Identity) -> HostMode {
    let picks = |m: Mode| {
        intent.segments.iter().any(|s| {
            s.mode == m
                && s.selector
                    .hosts
                    .as_ref()
                    .is_some_and(|h| h.matches(&host.labels))
        })
    };
    if picks(Mode::Enforce) {
        HostMode::Enforce
    } else if picks(Mode::Observe) {
        HostMode::Observe
    } else {
        HostMode::Unmanaged
    }
}

/// Does a resolved peer hold `host` (an inventory host)? The evaluator's matching: any holds
/// everything, a host selector by labels, a CIDR by any of the host's addresses, workload
/// selectors never.
fn holds_host(peer: &LPeer, host: &Identity) -> bool {
    match peer {
        LPeer::Any => true,
        LPeer::Workloads(_) => false,
        LPeer::Hosts { selector, .. } => selector.matches(&host.labels),
        LPeer::Addresses(set) => host.addresses.iter().any(|a| set.contains(*a)),
    }
}

/// The addresses a peer list matches at the other end of a packet, `None` for any address.
/// A CIDR peer matches external addresses and every address of a host with an address inside
/// (the evaluator judges the host, not the packet's address); workload peers have no address
/// here (pods' addresses are not in the inventory) and add a note.
fn peer_addresses(b: &mut Builder<'_>, peers: &[LPeer], what: &str) -> Option<IpSet> {
    // Ranges collected, then normalised once (a union per address is quadratic).
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut add = |r: IpRange| match r {
        IpRange::V4(a, z) => v4.push((a, z)),
        IpRange::V6(a, z) => v6.push((a, z)),
    };
    let inventory = b.inventory;
    for p in peers {
        match p {
            LPeer::Any => return None,
            LPeer::Workloads(_) => b.notes.push(format!(
                "{what}: names Kubernetes workloads, whose pod addresses the inventory does not \
                 give; on this host they match no address (their traffic falls to the later rules \
                 and the default)"
            )),
            LPeer::Hosts { selector, .. } => {
                let set = b.by_selector.entry(selector.clone()).or_insert_with(|| {
                    collect(
                        inventory
                            .iter()
                            .filter(|h| h.kind == IdentityKind::Host && selector.matches(&h.labels))
                            .flat_map(|h| h.addresses.iter().copied()),
                        None,
                    )
                });
                set.ranges().for_each(&mut add);
            }
            LPeer::Addresses(cidr) => {
                // The CIDR, and every address of a host with an address inside.
                let set = b.by_cidr.entry(cidr.clone()).or_insert_with(|| {
                    collect(
                        inventory
                            .iter()
                            .filter(|h| {
                                h.kind == IdentityKind::Host
                                    && h.addresses.iter().any(|a| cidr.contains(*a))
                            })
                            .flat_map(|h| h.addresses.iter().copied()),
                        Some(cidr),
                    )
                });
                set.ranges().for_each(&mut add);
            }
        }
    }
    Some(IpSet {
        v4: RangeSet::from_ranges(v4),
        v6: RangeSet::from_ranges(v6),
    })
}

/// The addresses (and `base`) as one set, normalised once.
fn collect(addrs: impl Iterator<Item = IpAddr>, base: Option<&IpSet>) -> IpSet {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for r in base.into_iter().flat_map(|b| b.ranges()) {
        match r {
            IpRange::V4(a, z) => v4.push((a, z)),
            IpRange::V6(a, z) => v6.push((a, z)),
        }
    }
    for a in addrs {
        match a {
            IpAddr::V4(x) => v4.push((u32::from(x), u32::from(x))),
            IpAddr::V6(x) => v6.push((u128::from(x), u128::from(x))),
        }
    }
    IpSet {
        v4: RangeSet::from_ranges(v4),
        v6: RangeSet::from_ranges(v6),
    }
}

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Guardrail => "guardrail",
        Tier::Application => "application",
        Tier::Baseline => "baseline",
    }
}

const TIERS: [Tier; 3] = [Tier::Guardrail, Tier::Application, Tier::Baseline];

/// A comment of at most 120 bytes (nft allows 128) in printable ASCII without double quotes or
/// backslashes (nft's quoted strings cannot hold them; rule labels quote rule names, and names
/// and file paths may hold anything): `"` becomes `'`, `\` becomes `/`, anything else `?`.
fn comment(s: String) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    if s.len() <= 120 {
        return s;
    }
    let mut end = 117;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

struct Builder<'a> {
    inventory: &'a [Identity],
    sets: Vec<NSet>,
    by_content: HashMap<(Family, Vec<IpRange>), String>,
    /// Addresses of the hosts a selector picks, and of a CIDR peer, computed once.
    by_selector: HashMap<Selector, IpSet>,
    by_cidr: HashMap<IpSet, IpSet>,
    notes: Vec<String>,
}

impl Builder<'_> {
    /// The name of a set holding exactly `elems` (shared between rules with the same addresses).
    fn set(&mut self, family: Family, elems: Vec<IpRange>) -> String {
        if let Some(n) = self.by_content.get(&(family, elems.clone())) {
            return n.clone();
        }
        let name = format!(
            "a{}_{}",
            self.sets.len(),
            if family == Family::V4 { "v4" } else { "v6" }
        );
        self.by_content
            .insert((family, elems.clone()), name.clone());
        self.sets.push(NSet {
            name: name.clone(),
            family,
            elems,
        });
        name
    }
}

/// Compiles the intent for `host` (a host of `opts.inventory`, by name).
pub fn compile_host(
    intent: &Intent,
    opts: &Options,
    host: &str,
    force: ModeOverride,
) -> Result<Ruleset, NftError> {
    let me = opts
        .inventory
        .iter()
        .find(|i| i.kind == IdentityKind::Host && i.name == host)
        .ok_or_else(|| NftError::UnknownHost(host.to_string()))?;
    // Host peers' addresses are resolved here, once per selector: lowering with the whole
    // inventory would compute them for every peer of every rule.
    let lowered = Lowered::new(
        intent,
        Target::Nftables,
        &Options {
            k8s_api: opts.k8s_api,
            inventory: Vec::new(),
        },
    )?;
    let mut mode = host_mode(intent, me);
    if force == ModeOverride::Observe && mode == HostMode::Enforce {
        mode = HostMode::Observe;
    }
    let mut b = Builder {
        inventory: &opts.inventory,
        sets: Vec::new(),
        by_content: HashMap::new(),
        by_selector: HashMap::new(),
        by_cidr: HashMap::new(),
        notes: Vec::new(),
    };
    let mut counters = Vec::new();
    let mut chains = Vec::new();
    for (hook, dir) in [(Hook::Input, "in"), (Hook::Output, "out")] {
        let (base_name, direction) = match hook {
            Hook::Input => ("input", "input"),
            Hook::Output => ("output", "output"),
        };
        let mut base = base_accepts(hook, "replies of allowed connections");
        let mut tier_chains = Vec::new();
        if mode != HostMode::Unmanaged {
            for tier in TIERS {
                let name = format!("{dir}_{}", tier_name(tier));
                let mut rules = Vec::new();
                for (n, r) in lowered
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.tier == tier)
                {
                    rules.extend(lower_rule(&mut b, &mut counters, n, r, me, hook, dir, mode));
                }
                base.push(NRule {
                    matches: vec![],
                    counter: None,
                    verdict: NVerdict::Jump(name.clone()),
                    comment: None,
                });
                tier_chains.push(NChain {
                    name,
                    hook: None,
                    rules,
                });
            }
            let cname = format!("{dir}_default");
            let (kind, verdict) = if mode == HostMode::Enforce {
                (CounterKind::Blocked, NVerdict::Drop)
            } else {
                (CounterKind::WouldBlock, NVerdict::None)
            };
            base.push(NRule {
                matches: vec![],
                counter: Some(cname.clone()),
                verdict,
                comment: Some("default: no rule allowed it".into()),
            });
            counters.push(CounterInfo {
                name: cname,
                direction,
                kind,
                rule: "default".into(),
                at: String::new(),
            });
        }
        chains.push(NChain {
            name: base_name.into(),
            hook: Some(hook),
            rules: base,
        });
        chains.extend(tier_chains);
    }
    // One note per rule and reason, however many of its peers gave it.
    let mut seen = std::collections::HashSet::new();
    b.notes.retain(|n| seen.insert(n.clone()));
    Ok(Ruleset {
        host: host.to_string(),
        mode,
        sets: b.sets,
        chains,
        counters,
        notes: b.notes,
    })
}

/// A protocol and its destination port ranges.
type ProtoPorts = (Protocol, Vec<(u16, u16)>);

/// The nft rules of one intent rule in one direction (none when the rule cannot apply to the
/// host in that direction).
#[allow(clippy::too_many_arguments)]
fn lower_rule(
    b: &mut Builder<'_>,
    counters: &mut Vec<CounterInfo>,
    n: usize,
    r: &LRule<'_>,
    me: &Identity,
    hook: Hook,
    dir: &str,
    mode: HostMode,
) -> Vec<NRule> {
    // The host's own end must hold it; the other end is matched by address.
    let (mine, other, end) = match hook {
        Hook::Input => (&r.to, &r.from, End::Src),
        Hook::Output => (&r.from, &r.to, End::Dst),
    };
    if !mine.iter().any(|p| holds_host(p, me)) {
        return Vec::new();
    }
    let label = r.label();
    let what = format!("{} ({}, {})", label, r.loc(), hook_name(hook));
    // Ports: numbered ranges per protocol; named ports are the destination's container ports,
    // which hosts and external addresses do not have.
    let ports: Option<Vec<ProtoPorts>> = r.ports.as_ref().map(|p| {
        if !p.named.is_empty() {
            b.notes.push(format!(
                "{what}: named ports ({}) resolve against a workload's container ports; hosts \
                 and addresses have none, so they match nothing here",
                p.named
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Protocol::ALL
            .iter()
            .filter_map(|&proto| {
                let rs: Vec<(u16, u16)> = p
                    .ranges
                    .iter()
                    .filter(|(pr, _, _)| *pr == proto)
                    .map(|&(_, a, z)| (a, z))
                    .collect();
                (!rs.is_empty()).then_some((proto, rs))
            })
            .collect()
    });
    if ports.as_ref().is_some_and(Vec::is_empty) {
        b.notes.push(format!(
            "{what}: no numbered port left, the rule matches nothing on this host"
        ));
        return Vec::new();
    }
    let addrs = peer_addresses(b, other, &what);
    let fams: Vec<Option<(Family, String)>> = match addrs {
        None => vec![None],
        Some(set) => {
            let v4: Vec<IpRange> = set.ranges().filter(IpRange::is_v4).collect();
            let v6: Vec<IpRange> = set.ranges().filter(|r| !r.is_v4()).collect();
            let mut out = Vec::new();
            if !v4.is_empty() {
                out.push(Some((Family::V4, b.set(Family::V4, v4))));
            }
            if !v6.is_empty() {
                out.push(Some((Family::V6, b.set(Family::V6, v6))));
            }
            if out.is_empty() {
                b.notes.push(format!(
                    "{what}: the other end has no known address, the rule matches nothing on \
                     this host"
                ));
            }
            out
        }
    };
    let counter_name = format!("{dir}_r{n}");
    let (counter, verdict) = match (r.action, mode) {
        (Action::Allow, _) => (None, NVerdict::Accept),
        (Action::Pass, _) => (None, NVerdict::Return),
        (Action::Deny, HostMode::Enforce) => (Some(counter_name), NVerdict::Drop),
        (Action::Deny, _) => (Some(counter_name), NVerdict::Accept),
    };
    if fams.is_empty() {
        return Vec::new();
    }
    if let Some(c) = &counter {
        counters.push(CounterInfo {
            name: c.clone(),
            direction: hook_name(hook),
            kind: if mode == HostMode::Enforce {
                CounterKind::Blocked
            } else {
                CounterKind::WouldBlock
            },
            rule: label.clone(),
            at: r.loc().to_string(),
        });
    }
    let text = comment(format!(
        "{} {} ({}) {}",
        tier_name(r.tier),
        label,
        match r.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Pass => "pass",
        },
        r.loc()
    ));
    let mut out = Vec::new();
    for fam in &fams {
        let port_sets: Vec<Option<&ProtoPorts>> = match &ports {
            None => vec![None],
            Some(ps) => ps.iter().map(Some).collect(),
        };
        for ps in port_sets {
            let mut matches = Vec::new();
            if let Some((f, name)) = fam {
                matches.push(Match::Set(end, *f, name.clone()));
            }
            if let Some((proto, rs)) = ps {
                matches.push(Match::Ports(*proto, rs.clone()));
            }
            out.push(NRule {
                matches,
                counter: counter.clone(),
                verdict: verdict.clone(),
                comment: Some(text.clone()),
            });
        }
    }
    out
}

fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Input => "input",
        Hook::Output => "output",
    }
}

/// What every base chain accepts first, whatever the policy: replies of connections already
/// established (`established`: the comment saying which), the host itself (loopback), and IPv6
/// neighbour and multicast listener discovery.
fn base_accepts(hook: Hook, established: &str) -> Vec<NRule> {
    vec![
        NRule {
            matches: vec![Match::Established],
            counter: None,
            verdict: NVerdict::Accept,
            comment: Some(established.into()),
        },
        NRule {
            matches: vec![Match::Loopback(if hook == Hook::Input {
                End::Src
            } else {
                End::Dst
            })],
            counter: None,
            verdict: NVerdict::Accept,
            comment: Some("the host itself".into()),
        },
        NRule {
            matches: vec![Match::NeighbourDiscovery],
            counter: None,
            verdict: NVerdict::Accept,
            comment: Some("IPv6 neighbour and multicast listener discovery".into()),
        },
    ]
}

/// The agent's fail-closed ruleset (`--on-loss fail-closed`, when its policy source cannot be
/// read or compiled): drops every new connection in both directions except loopback, IPv6
/// neighbour and multicast listener discovery, replies of connections already established, and the management
/// allowance — inbound TCP to `management_ports` (SSH, 22, by default) from anywhere, so an
/// operator can still log in and repair the source.
pub fn fail_closed(host: &str, management_ports: &[u16]) -> Ruleset {
    let mut chains = Vec::new();
    let mut counters = Vec::new();
    for (hook, dir) in [(Hook::Input, "in"), (Hook::Output, "out")] {
        let mut rules = base_accepts(hook, "replies of established connections");
        if hook == Hook::Input && !management_ports.is_empty() {
            let mut ports: Vec<u16> = management_ports.to_vec();
            ports.sort_unstable();
            ports.dedup();
            rules.push(NRule {
                matches: vec![Match::Ports(
                    Protocol::Tcp,
                    ports.into_iter().map(|p| (p, p)).collect(),
                )],
                counter: None,
                verdict: NVerdict::Accept,
                comment: Some("fail-closed: management access".into()),
            });
        }
        let name = format!("{dir}_default");
        rules.push(NRule {
            matches: vec![],
            counter: Some(name.clone()),
            verdict: NVerdict::Drop,
            comment: Some("fail-closed: the policy source is lost".into()),
        });
        counters.push(CounterInfo {
            name,
            direction: hook_name(hook),
            kind: CounterKind::Blocked,
            rule: "fail-closed".into(),
            at: String::new(),
        });
        chains.push(NChain {
            name: hook_name(hook).into(),
            hook: Some(hook),
            rules,
        });
    }
    Ruleset {
        host: host.to_string(),
        mode: HostMode::Enforce,
        sets: Vec::new(),
        chains,
        counters,
        notes: vec!["fail-closed: the policy source could not be read".into()],
    }
}
