//! `bulkhead simulate`: the digital twin. Every recorded edge of the flow store decided under a
//! proposed policy and a baseline (`--against`, or no Bulkhead policy at all), classified by how
//! its verdict changes; with `--diff`, the exact semantic diff of the two versions over every
//! pair of inventory workloads and hosts and every port. `bench simulate` measures it.
//!
//! Exit codes: 0 the simulation ran (whatever it found: `bulkhead plan` turns findings into exit
//! codes), 3 an input could not be read or a policy has errors (an invalid policy is never
//! simulated as "allow all").

use crate::see::{MapArgs, MapFormat, build_map, human_bytes};
use anyhow::{Context, Result, bail};
use bulkhead_core::time::rfc3339;
use bulkhead_core::{Labels, Protocol};
use bulkhead_identity::{Entity, EntityKind};
use bulkhead_intent::{
    Change, Decision, Evaluator, Identity, IdentityKind, Intent, Twin, Universe, Verdict, diff,
    load_paths,
};
use bulkhead_store::Store;
use clap::{Args, ValueEnum};
use rustc_hash::FxHashMap;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
pub enum SimFormat {
    Text,
    Json,
}

/// `bulkhead simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    /// The proposed policy (files or a directory).
    #[arg(long, value_name = "DIR", required = true)]
    policy: PathBuf,
    /// The current policy to compare with (default: no Bulkhead policy, everything allowed).
    #[arg(long, value_name = "DIR")]
    against: Option<PathBuf>,
    /// Instead of recorded edges: every pair of inventory workloads and hosts and every port
    /// whose verdict differs between the two versions.
    #[arg(long)]
    diff: bool,
    /// The store's directory.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    data_dir: PathBuf,
    /// Only edges in `FROM..TO` (RFC 3339 times, either side may be empty).
    #[arg(long, value_name = "FROM..TO", conflicts_with = "last")]
    window: Option<String>,
    /// Only the last DURATION of recorded traffic (behind the newest record stored), e.g. 24h.
    #[arg(long, value_name = "DURATION")]
    last: Option<String>,
    /// Kubernetes manifests (files or directories): workload labels and namespace labels.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Host inventories (YAML or CSV).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    hosts: Vec<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    format: SimFormat,
    /// Edges (or diff examples) listed per deciding rule.
    #[arg(long, value_name = "N", default_value_t = 5)]
    top: usize,
}

pub fn run(a: SimulateArgs) -> ExitCode {
    match run_inner(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Loads a policy; any error refuses it.
fn load_policy(p: &PathBuf, flag: &str) -> Result<Intent> {
    anyhow::ensure!(
        p.exists(),
        "{flag} {}: no such file or directory",
        p.display()
    );
    let loaded = load_paths(std::slice::from_ref(p));
    if loaded.has_errors() {
        let errs: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        bail!(
            "{flag} {}: the policy has {} error{} (run bulkhead policy lint); it is not simulated:\n{}",
            p.display(),
            errs.len(),
            if errs.len() == 1 { "" } else { "s" },
            errs.join("\n")
        );
    }
    Ok(loaded.intent)
}

fn run_inner(a: &SimulateArgs) -> Result<()> {
    let new = load_policy(&a.policy, "--policy")?;
    let old = match &a.against {
        Some(p) => load_policy(p, "--against")?,
        None => Intent::default(),
    };
    let en = Evaluator::new(&new).map_err(|e| anyhow::anyhow!("--policy: {e}"))?;
    let eo = Evaluator::new(&old).map_err(|e| anyhow::anyhow!("--against: {e}"))?;
    let inventory = crate::policy::inventory_identities(&a.inventory, &a.hosts)?;
    let against = a
        .against
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no Bulkhead policy (everything allowed)".into());
    let ctx = Ctx {
        new: &new,
        old: &old,
        en: &en,
        eo: &eo,
        policy: a.policy.display().to_string(),
        against,
    };
    let text = if a.diff {
        anyhow::ensure!(
            !inventory.is_empty(),
            "--diff compares every pair of inventory workloads and hosts: give --inventory and/or --hosts"
        );
        run_diff(&ctx, inventory, a)?
    } else {
        let store = open_store(&a.data_dir)?;
        let edges = read_edges(
            &store,
            &a.data_dir,
            a.window.as_deref(),
            a.last.as_deref(),
            inventory,
        )?;
        let report = simulate(&ctx, &edges, a.top);
        match a.format {
            SimFormat::Json => serde_json::to_string_pretty(&report.json(&ctx, &edges))? + "\n",
            SimFormat::Text => report.text(&ctx, &edges),
        }
    };
    crate::write_output(None, &text)
}

/// Opens the flow store in `data_dir`, refusing a directory without one.
pub fn open_store(data_dir: &std::path::Path) -> Result<Store> {
    let db = data_dir.join(bulkhead_store::DB_FILE);
    if !db.exists() {
        bail!(
            "{}: no store here (run bulkhead ingest first, or pass --data-dir)",
            db.display()
        );
    }
    Ok(Store::open(data_dir, None)?)
}

/// The two versions being compared.
pub(crate) struct Ctx<'a> {
    pub new: &'a Intent,
    pub old: &'a Intent,
    pub en: &'a Evaluator,
    pub eo: &'a Evaluator,
    pub policy: String,
    pub against: String,
}

impl Ctx<'_> {
    pub(crate) fn rule_json(&self, intent: &Intent, d: &Decision) -> serde_json::Value {
        match d.rule {
            Some(r) => {
                let p = &intent.policies[r.policy];
                let rule = p.rules.get(r.rule);
                json!({
                    "tier": r.tier.as_str(),
                    "policy": p.name(),
                    "rule": r.rule,
                    "name": rule.and_then(|x| x.name.clone()),
                    "action": r.action.to_string().to_lowercase(),
                    "at": rule.map(|x| x.loc.to_string()),
                })
            }
            None => serde_json::Value::Null,
        }
    }
}

/// Recorded edges over identities.
pub struct Edges {
    pub window: Option<(String, String)>,
    pub identities: Vec<Identity>,
    /// Store node name → identities it stands for (a Service: its workloads).
    pub nodes: Vec<(String, Vec<usize>)>,
    pub rows: Vec<EdgeRow>,
    /// External groups' identities → the CIDRs the store recorded for the group.
    pub external_cidrs: FxHashMap<usize, Vec<String>>,
    /// Store nodes by how they were mapped to identities.
    pub mapped: BTreeMap<&'static str, usize>,
}

#[derive(Clone, Copy, Debug)]
pub struct EdgeRow {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub port: u16,
    pub flows: u64,
    pub bytes: u64,
    pub first: i64,
    pub last: i64,
}

/// `ns/name[Kind]` → `ns/name`.
fn strip_kind(key: &str) -> &str {
    match key.strip_suffix(']').and_then(|k| k.rsplit_once('[')) {
        Some((p, _)) => p,
        None => key,
    }
}

fn external(name: &str, cidrs: &[String]) -> Identity {
    let addresses = cidrs
        .iter()
        .filter_map(|c| c.split('/').next()?.parse().ok())
        .collect();
    Identity {
        name: name.to_string(),
        kind: IdentityKind::External,
        labels: Labels::new(),
        addresses,
        named_ports: Vec::new(),
        service_account: None,
    }
}

/// Reads the window's edges (through `map`'s query, ungrouped) and maps every store node to
/// evaluator identities: workloads and hosts by name in the inventory (else from the labels the
/// store recorded, with no namespace labels), Services to their workloads, external groups to an
/// external identity holding each CIDR's first address, and unknown addresses (and `internet`)
/// to an external identity with no address (only `any` peers match it).
/// `window` is `FROM..TO`, `last` a duration behind the newest record (as `map` takes them).
pub fn read_edges(
    store: &Store,
    data_dir: &std::path::Path,
    window: Option<&str>,
    last: Option<&str>,
    inventory: Vec<Identity>,
) -> Result<Edges> {
    let map = build_map(
        store,
        &MapArgs {
            data_dir: data_dir.to_path_buf(),
            group_by: Vec::new(),
            window: window.map(str::to_string),
            last: last.map(str::to_string),
            format: MapFormat::Json,
            min_flows: 1,
        },
    )?;
    let infos: FxHashMap<String, Entity> = store
        .nodes()?
        .into_iter()
        .filter_map(|n| Some((n.key, serde_json::from_str(&n.info).ok()?)))
        .collect();
    let mut identities = inventory;
    let mut by_name: FxHashMap<(bool, String), usize> = FxHashMap::default();
    for (i, id) in identities.iter().enumerate() {
        let host = id.kind == IdentityKind::Host;
        by_name.entry((host, id.name.clone())).or_insert(i);
    }
    let mut mapped: BTreeMap<&'static str, usize> = BTreeMap::new();
    type ByName = FxHashMap<(bool, String), usize>;
    let workload = |by_name: &mut ByName,
                    identities: &mut Vec<Identity>,
                    mapped: &mut BTreeMap<&'static str, usize>,
                    key: &str,
                    e: Option<&Entity>|
     -> usize {
        let name = strip_kind(key);
        if let Some(&i) = by_name.get(&(false, name.to_string())) {
            *mapped.entry("workload (inventory)").or_default() += 1;
            return i;
        }
        *mapped.entry("workload (store labels only)").or_default() += 1;
        let (ns, wl) = name.split_once('/').unwrap_or(("", name));
        let labels: Labels = e
            .map(|e| e.labels.clone().into_iter().collect())
            .unwrap_or_default();
        identities.push(Identity::workload(ns, wl, labels, Labels::new()));
        by_name.insert((false, name.to_string()), identities.len() - 1);
        identities.len() - 1
    };
    let mut nodes = Vec::with_capacity(map.nodes.len());
    let mut external_cidrs = FxHashMap::default();
    for n in &map.nodes {
        let e = infos.get(&n.name);
        let ids: Vec<usize> = match n.kind {
            EntityKind::Workload => vec![workload(
                &mut by_name,
                &mut identities,
                &mut mapped,
                &n.name,
                e,
            )],
            EntityKind::Service if e.is_some_and(|e| !e.members.is_empty()) => {
                *mapped.entry("service (its workloads)").or_default() += 1;
                e.map(|e| e.members.clone())
                    .unwrap_or_default()
                    .iter()
                    .map(|m| {
                        workload(
                            &mut by_name,
                            &mut identities,
                            &mut BTreeMap::new(),
                            m,
                            infos.get(m),
                        )
                    })
                    .collect()
            }
            EntityKind::Host => {
                let name = n.name.strip_prefix("host:").unwrap_or(&n.name);
                match by_name.get(&(true, name.to_string())) {
                    Some(&i) => {
                        *mapped.entry("host (inventory)").or_default() += 1;
                        vec![i]
                    }
                    None => {
                        *mapped.entry("host (store labels only)").or_default() += 1;
                        let labels: Labels = e
                            .map(|e| e.labels.clone().into_iter().collect())
                            .unwrap_or_default();
                        identities.push(Identity::host(name, labels, Vec::new()));
                        by_name.insert((true, name.to_string()), identities.len() - 1);
                        vec![identities.len() - 1]
                    }
                }
            }
            EntityKind::External => {
                *mapped.entry("external group").or_default() += 1;
                let cidrs = e.map(|e| e.cidrs.as_slice()).unwrap_or_default();
                identities.push(external(&n.name, cidrs));
                external_cidrs.insert(identities.len() - 1, cidrs.to_vec());
                vec![identities.len() - 1]
            }
            _ => {
                *mapped.entry("unknown address").or_default() += 1;
                identities.push(external(&n.name, &[]));
                vec![identities.len() - 1]
            }
        };
        nodes.push((n.name.clone(), ids));
    }
    let rows = map
        .edges
        .iter()
        .map(|r| {
            let (first, last) = r.stats.seen().unwrap_or((0, 0));
            EdgeRow {
                src: r.src,
                dst: r.dst,
                proto: r.proto,
                port: r.port,
                flows: r.stats.flows,
                bytes: r.stats.bytes,
                first,
                last,
            }
        })
        .collect();
    Ok(Edges {
        window: map.window,
        identities,
        nodes,
        rows,
        mapped,
        external_cidrs,
    })
}

fn protocol(p: u8) -> Option<Protocol> {
    match p {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

#[derive(Clone, Copy, Default, Debug, serde::Serialize)]
pub struct Tally {
    pub edges: u64,
    pub flows: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, r: &EdgeRow) {
        self.edges += 1;
        self.flows += r.flows;
        self.bytes += r.bytes;
    }
}

/// Edges of one class decided by one decision (rule, side, reason).
pub struct Group {
    pub change: Change,
    pub new: Decision,
    pub old: Decision,
    pub tally: Tally,
    /// Edge indexes, top flows first.
    pub top: Vec<usize>,
}

pub struct Report {
    pub classes: BTreeMap<Change, Tally>,
    /// Edges of protocols outside the policy model (ICMP, unknown): not decided.
    pub other_protocol: Tally,
    pub groups: Vec<Group>,
    pub decisions_computed: u64,
    pub profile_classes: usize,
}

/// The worse verdict first: deny, would-block, allow.
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Deny => 2,
        Verdict::WouldBlock => 1,
        Verdict::Allow => 0,
    }
}

/// Classifies every edge. An edge whose end stands for several workloads (a Service) is decided
/// for every member pair and takes the most restrictive proposal verdict.
pub fn simulate_edges(
    twin: &mut Twin<'_, '_>,
    nodes: &[Vec<usize>],
    rows: &[EdgeRow],
    top: usize,
) -> Report {
    let mut classes: BTreeMap<Change, Tally> =
        Change::ALL.iter().map(|&c| (c, Tally::default())).collect();
    let mut other = Tally::default();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: FxHashMap<(Change, Decision, Decision), usize> = FxHashMap::default();
    // Per outcome id: its change and group (`usize::MAX`: still allowed), worked out once.
    let mut per_outcome: Vec<Option<(Change, usize)>> = Vec::new();
    let severity_of = |twin: &Twin<'_, '_>, id: u32| {
        let (n, o) = twin.outcome(id);
        (severity(n.verdict), severity(o.verdict))
    };
    for (i, r) in rows.iter().enumerate() {
        let Some(proto) = protocol(r.proto) else {
            other.add(r);
            continue;
        };
        let mut best: Option<u32> = None;
        for &s in &nodes[r.src as usize] {
            for &d in &nodes[r.dst as usize] {
                let id = twin.decide_id(s, d, proto, r.port);
                if best.is_none_or(|b| b != id && severity_of(twin, id) > severity_of(twin, b)) {
                    best = Some(id);
                }
            }
        }
        let Some(id) = best else {
            other.add(r);
            continue;
        };
        if per_outcome.len() <= id as usize {
            per_outcome.resize(twin.outcomes(), None);
        }
        let (change, g) = *per_outcome[id as usize].get_or_insert_with(|| {
            let (n, o) = twin.outcome(id);
            let change = Change::of(n.verdict, o.verdict);
            if change == Change::StillAllowed {
                return (change, usize::MAX);
            }
            let g = *group_of.entry((change, n, o)).or_insert_with(|| {
                groups.push(Group {
                    change,
                    new: n,
                    old: o,
                    tally: Tally::default(),
                    top: Vec::new(),
                });
                groups.len() - 1
            });
            (change, g)
        });
        if let Some(t) = classes.get_mut(&change) {
            t.add(r);
        }
        if g == usize::MAX {
            continue;
        }
        groups[g].tally.add(r);
        groups[g].top.push(i);
    }
    for g in &mut groups {
        let key = |&i: &usize| (std::cmp::Reverse(rows[i].flows), i);
        if top > 0 && g.top.len() > top {
            g.top.select_nth_unstable_by_key(top - 1, key);
        }
        g.top.truncate(top);
        g.top.sort_by_key(key);
    }
    groups.sort_by_key(|g| (g.change, std::cmp::Reverse(g.tally.flows)));
    Report {
        classes,
        other_protocol: other,
        groups,
        decisions_computed: twin.computed,
        profile_classes: twin.classes.len(),
    }
}

pub(crate) fn simulate(ctx: &Ctx<'_>, e: &Edges, top: usize) -> Report {
    let nodes: Vec<Vec<usize>> = e.nodes.iter().map(|(_, v)| v.clone()).collect();
    let un = Universe::new(ctx.en, e.identities.clone());
    let uo = Universe::new(ctx.eo, e.identities.clone());
    let mut twin = Twin::new(&un, &uo);
    simulate_edges(&mut twin, &nodes, &e.rows, top)
}

pub(crate) fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => format!("proto-{n}"),
    }
}

impl Report {
    fn edge_json(e: &Edges, r: &EdgeRow) -> serde_json::Value {
        json!({
            "src": e.nodes[r.src as usize].0,
            "dst": e.nodes[r.dst as usize].0,
            "protocol": proto_name(r.proto),
            "port": r.port,
            "flows": r.flows,
            "bytes": r.bytes,
            "first_seen": rfc3339(r.first),
            "last_seen": rfc3339(r.last),
        })
    }

    fn json(&self, ctx: &Ctx<'_>, e: &Edges) -> serde_json::Value {
        let classes: serde_json::Map<String, serde_json::Value> = self
            .classes
            .iter()
            .map(|(c, t)| (c.as_str().replace(' ', "_"), json!(t)))
            .collect();
        json!({
            "policy": ctx.policy,
            "against": ctx.against,
            "window": e.window,
            "edges": e.rows.len(),
            "classes": classes,
            "other_protocol": self.other_protocol,
            "nodes": e.mapped,
            "profile_classes": self.profile_classes,
            "decisions_computed": self.decisions_computed,
            "changes": self.groups.iter().map(|g| json!({
                "class": g.change,
                "verdict": g.new.verdict,
                "rule": ctx.rule_json(ctx.new, &g.new),
                "why": ctx.en.describe(ctx.new, &g.new),
                "before": g.old.verdict,
                "before_why": ctx.eo.describe(ctx.old, &g.old),
                "edges": g.tally.edges,
                "flows": g.tally.flows,
                "bytes": g.tally.bytes,
                "top": g.top.iter().map(|&i| Self::edge_json(e, &e.rows[i])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn text(&self, ctx: &Ctx<'_>, e: &Edges) -> String {
        let mut s = format!(
            "simulate: {} against {}\n{} recorded edges{}\n\n",
            ctx.policy,
            ctx.against,
            e.rows.len(),
            match &e.window {
                Some((a, b)) => format!(
                    " in {}..{}",
                    if a.is_empty() { "" } else { a },
                    if b.is_empty() { "" } else { b }
                ),
                None => " (all recorded traffic)".into(),
            }
        );
        s.push_str(&format!(
            "{:<16} {:>9} {:>12} {:>12}\n",
            "class", "edges", "flows", "bytes"
        ));
        let mut line = |name: &str, t: &Tally| {
            s.push_str(&format!(
                "{:<16} {:>9} {:>12} {:>12}\n",
                name,
                t.edges,
                t.flows,
                human_bytes(t.bytes)
            ));
        };
        for (c, t) in &self.classes {
            line(c.as_str(), t);
        }
        if self.other_protocol.edges > 0 {
            line("not decided", &self.other_protocol);
        }
        if self.other_protocol.edges > 0 {
            s.push_str("  (not decided: protocols outside the policy model, such as ICMP)\n");
        }
        let mut current = None;
        for g in &self.groups {
            if current != Some(g.change) {
                current = Some(g.change);
                s.push_str(&format!("\n{}:\n", g.change.as_str()));
            }
            let why = if g.change == Change::NewlyAllowed {
                format!(
                    "{} (before: {})",
                    ctx.en.describe(ctx.new, &g.new),
                    ctx.eo.describe(ctx.old, &g.old)
                )
            } else {
                ctx.en.describe(ctx.new, &g.new)
            };
            s.push_str(&format!(
                "  {why}\n    {} edges, {} flows, {}\n",
                g.tally.edges,
                g.tally.flows,
                human_bytes(g.tally.bytes)
            ));
            for &i in &g.top {
                let r = &e.rows[i];
                s.push_str(&format!(
                    "    {} -> {} {}/{}: {} flows, {}, last seen {}\n",
                    e.nodes[r.src as usize].0,
                    e.nodes[r.dst as usize].0,
                    proto_name(r.proto),
                    r.port,
                    r.flows,
                    human_bytes(r.bytes),
                    rfc3339(r.last)
                ));
            }
        }
        let mapped: Vec<String> = e.mapped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        s.push_str(&format!(
            "\npeers: {}; {} profile classes, {} decisions computed\n",
            mapped.join(", "),
            self.profile_classes,
            self.decisions_computed
        ));
        s
    }
}

fn fmt_ranges(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn run_diff(ctx: &Ctx<'_>, ids: Vec<Identity>, a: &SimulateArgs) -> Result<String> {
    let un = Universe::new(ctx.en, ids.clone());
    let uo = Universe::new(ctx.eo, ids);
    let twin = Twin::new(&un, &uo);
    let rows = diff(&twin);
    let names = |c: u32| -> Vec<String> {
        twin.classes.members[c as usize]
            .iter()
            .take(a.top)
            .map(|&i| un.identities[i].name.clone())
            .collect()
    };
    let size = |c: u32| twin.classes.members[c as usize].len();
    let pairs: u64 = rows
        .iter()
        .map(|r| (size(r.src) * size(r.dst)) as u64)
        .sum();
    Ok(match a.format {
        SimFormat::Json => {
            let v = json!({
                "policy": ctx.policy,
                "against": ctx.against,
                "identities": un.identities.len(),
                "profile_classes": twin.classes.len(),
                "changes": rows.len(),
                "rows": rows.iter().map(|r| json!({
                    "src_members": size(r.src),
                    "src_examples": names(r.src),
                    "dst_members": size(r.dst),
                    "dst_examples": names(r.dst),
                    "protocol": r.proto.as_str(),
                    "ports": fmt_ranges(&r.ports),
                    "before": r.old.verdict,
                    "before_why": ctx.eo.describe(ctx.old, &r.old),
                    "after": r.new.verdict,
                    "after_why": ctx.en.describe(ctx.new, &r.new),
                    "rule": ctx.rule_json(ctx.new, &r.new),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&v)? + "\n"
        }
        SimFormat::Text => {
            let mut s = format!(
                "diff: {} against {}\n{} workloads and hosts in {} profile classes; {} changes covering {} class-member pairs\n",
                ctx.policy,
                ctx.against,
                un.identities.len(),
                twin.classes.len(),
                rows.len(),
                pairs
            );
            for r in &rows {
                let ex = |c: u32| {
                    let n = names(c);
                    let more = size(c).saturating_sub(n.len());
                    if more > 0 {
                        format!("{} (+{more})", n.join(", "))
                    } else {
                        n.join(", ")
                    }
                };
                s.push_str(&format!(
                    "\n{} -> {} {} {}\n  [{}] -> [{}]\n  before: {}\n  after:  {}\n",
                    r.old.verdict,
                    r.new.verdict,
                    r.proto,
                    fmt_ranges(&r.ports),
                    ex(r.src),
                    ex(r.dst),
                    ctx.eo.describe(ctx.old, &r.old),
                    ctx.en.describe(ctx.new, &r.new),
                ));
            }
            s
        }
    })
}

/// `bulkhead bench simulate`.
#[derive(Args)]
pub struct BenchSimulateArgs {
    /// Policy directory (default: the worked bank example).
    #[arg(long, value_name = "DIR", default_value = "examples/intent/bank")]
    policy: PathBuf,
    /// Recorded edges to classify (in memory, over the `bench intent` shape).
    #[arg(long, default_value_t = 1_000_000)]
    edges: usize,
    /// Synthetic workloads and hosts.
    #[arg(long, default_value_t = 10_000)]
    workloads: usize,
    /// Synthetic application rules added to the policy.
    #[arg(long, default_value_t = 5_000)]
    rules: usize,
    /// Distinct edge keys (source, destination, protocol, port) the edges are drawn from: a
    /// store holds an edge per key and time bucket, so keys recur (1,000,000 edges over 100,000
    /// keys is 10 buckets per key on average).
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Classifies synthetic recorded edges with the proposal (the `bench intent` policy) against
/// the bank policy as it stands; prints JSON with CPU time, compiling both policies over the
/// identities apart from classifying the edges. Edges are drawn from `--keys` distinct edge keys,
/// as a store's edges recur per time bucket; `--keys` equal to `--edges` is the worst case.
pub fn run_bench(a: BenchSimulateArgs) -> Result<()> {
    let mut rng = bulkhead_synth::SplitMix64::new(a.seed);
    let (intent, ids) = crate::policy::synthetic(&a.policy, a.workloads, a.rules, &mut rng)?;
    let base = load_policy(&a.policy, "--policy")?;
    let n = ids.len();
    anyhow::ensure!(n > 0, "no identities");
    let keys: Vec<(u32, u32, u16)> = (0..a.keys.max(1))
        .map(|_| {
            let port = if rng.chance(50) {
                1000 + rng.below(9000) as u16
            } else {
                [53u16, 443, 8443, 9090, 22][rng.below(5)]
            };
            (rng.below(n) as u32, rng.below(n) as u32, port)
        })
        .collect();
    let rows: Vec<EdgeRow> = (0..a.edges)
        .map(|k| {
            let (src, dst, port) = keys[rng.below(keys.len())];
            EdgeRow {
                src,
                dst,
                proto: if port == 53 { 17 } else { 6 },
                port,
                flows: 1 + rng.below(100) as u64,
                bytes: 1000,
                first: k as i64,
                last: k as i64,
            }
        })
        .collect();
    let nodes: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let cpu = crate::policy::cpu_secs;
    let (c0, t0) = (cpu(), Instant::now());
    let en = Evaluator::new(&intent).context("compile")?;
    let eo = Evaluator::new(&base).context("compile")?;
    let un = Universe::new(&en, ids.clone());
    let uo = Universe::new(&eo, ids);
    let mut twin = Twin::new(&un, &uo);
    let (cm, tm) = (cpu(), Instant::now());
    let report = simulate_edges(&mut twin, &nodes, &rows, 5);
    let (c1, t1) = (cpu(), Instant::now());
    let cpu_s = cm.zip(c1).map(|(a, b)| b - a);
    let v = json!({
        "edges": a.edges,
        "identities": n,
        "keys": keys.len(),
        "rules": en.rule_count(),
        "profile_classes": report.profile_classes,
        "decisions_computed": report.decisions_computed,
        "compile_wall_s": (tm - t0).as_secs_f64(),
        "compile_cpu_s": c0.zip(cm).map(|(a, b)| b - a),
        "classify_wall_s": (t1 - tm).as_secs_f64(),
        "classify_cpu_s": cpu_s,
        "edges_per_cpu_s": cpu_s.filter(|&c| c > 0.0).map(|c| (a.edges as f64 / c).round()),
        "classes": report.classes.iter().map(|(c, t)| (c.as_str().replace(' ', "_"), t.edges)).collect::<BTreeMap<_, _>>(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
