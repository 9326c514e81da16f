//! Deterministic synthetic clusters for benchmarks and cross-tool comparisons, written as
//! ordinary Kubernetes manifests that `bulkhead connectivity DIR` (and other tools) read.
//!
//! The same [`Params`] (seed included) always give byte-identical files. Each part of the cluster
//! draws from its own random stream, so with one seed the namespaces do not change when the
//! number of workloads changes, and the workloads do not change when the number of policies does.
//!
//! # The standard shape (part of the benchmark definition)
//!
//! Changing anything below changes what the benchmark measures: do it only with a new
//! [`SHAPE_VERSION`].
//!
//! - **Namespaces** `ns-0000`, `ns-0001`, … with labels `team` (`team-00`…`team-39`, uniform) and
//!   `env` (`prod` 50 %, `staging` 30 %, `dev` 20 %); Kubernetes adds `kubernetes.io/metadata.name`.
//! - **Workloads**: each a `Deployment` named `<tier>-<index:05>` (e.g. `api-00042`), 1–3
//!   replicas, in a namespace drawn uniformly. Pod-template labels: `app` (the workload's name,
//!   unique), `tier` (one of `frontend`, `api`, `backend`, `data`, `messaging`, `batch`, uniform),
//!   `team` (the namespace's team 70 %, any of the 40 otherwise), `env` (the namespace's), and
//!   `pci: "true"` on 5 %. One container with 1–3 named ports: the tier's own (frontend and batch
//!   `http` 8080/TCP, api `https` 8443/TCP, backend `grpc` 9090/TCP, data `postgres` 5432/TCP or
//!   `redis` 6379/TCP, messaging `kafka` 9092/TCP), then extras from `metrics` 9100/TCP,
//!   `grpc` 9090/TCP, `dns` 53/UDP, `statsd` 8125/UDP, `diameter` 3868/SCTP, `http` 8080/TCP.
//! - **NetworkPolicies** `np-<index:05>`, each in the namespace of an anchor workload drawn
//!   uniformly. `podSelector`: the anchor's `app` 40 %, its `tier` 20 %, `team`+`tier` 15 %,
//!   `tier In [anchor's, another]` 10 %, `team` + `pci DoesNotExist` 8 %,
//!   `tier NotIn [another]` + `team Exists` 4 %, `{}` 3 %. `policyTypes: [Ingress, Egress]` on
//!   85 %, left to defaulting on 15 %. 1–3 ingress and 1–3 egress rules; each rule has 1–2 peers
//!   (`podSelector` alone 35 %, `namespaceSelector` alone 25 %, both 40 %; 3 % of rules have no
//!   peers, i.e. every peer) and 0 ports (15 %, every port) or 1–2 ports. A peer's pod selector
//!   picks a real workload's `app` 42 %, `tier` 28 %, `team` 15 %, `tier In [..]` 10 %,
//!   `pci: "true"` 5 %; a namespace selector picks a real namespace's `team` 35 %, `env` 25 %,
//!   `kubernetes.io/metadata.name` 25 %, `env In [..]` 10 %, `{}` 5 %. Ports: TCP 80 %, UDP 15 %,
//!   SCTP 5 % (TCP spelt implicitly 30 % of the time) over the well-known ports of the catalogue;
//!   10 % are `endPort` ranges, 3 % a protocol with no port. 10 % of policies add `ipBlock` peers
//!   (about half of their rules, sometimes as the only peer) drawn from a fixed pool of 48
//!   CIDRs, some with `except`; 5 % of policies use named ports (the anchor's in ingress rules,
//!   the catalogue's in egress rules).
//! - **AdminNetworkPolicies** `anp-<index:04>` with distinct priorities drawn from 0–1000 (so at
//!   most 1001 of them). Subject: namespaces by `team`/`env`/`env In` 70 %, pods (namespace
//!   labels + `tier`) 30 %. 0–2 ingress and 0–2 egress rules (at least one), action `Allow`
//!   40 %, `Deny` 35 %, `Pass` 25 %; peers by namespace labels (70 %), pods (25 %) or all
//!   namespaces (5 %), egress also `networks` (10 %); ports none 40 %, else 1–2 of
//!   `portNumber` 60 %, `portRange` 30 %, `namedPort` 10 %.
//! - One **BaselineAdminNetworkPolicy** `default`: for `env: prod` namespaces, allow `metrics`
//!   scrapes from `team-00`'s namespaces, deny ingress from and egress to `env: dev` namespaces.
//!
//! Files: `namespaces.yaml`, `workloads.yaml` (or `workloads-001.yaml`, … of
//! [`WORKLOADS_PER_FILE`] each when there are more), `netpols.yaml`, `anps.yaml` (the ANPs and the
//! BANP); a file that would hold no object is not written. The files are split by kind so that
//! tools which take namespaces, pods and policies separately (np-guard's
//! `nca --ns_list/--pod_list/--connectivity`) can be handed exactly what they need.
#![forbid(unsafe_code)]

mod rng;

pub use rng::SplitMix64;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the standard shape, written into every file's header.
pub const SHAPE_VERSION: u32 = 1;

/// Workloads per file when they are split.
pub const WORKLOADS_PER_FILE: usize = 5000;

/// The tiers, in index order.
pub const TIERS: [&str; 6] = ["frontend", "api", "backend", "data", "messaging", "batch"];

/// The environments, in index order.
pub const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const ENV_WEIGHTS: [usize; 3] = [50, 30, 20];

/// The number of teams (`team-00` … `team-39`).
pub const TEAMS: usize = 40;

/// A named container port of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct CatalogPort {
    pub name: &'static str,
    pub port: u16,
    pub protocol: &'static str,
}

/// The container ports workloads expose.
pub const PORTS: [CatalogPort; 10] = [
    CatalogPort {
        name: "http",
        port: 8080,
        protocol: "TCP",
    },
    CatalogPort {
        name: "https",
        port: 8443,
        protocol: "TCP",
    },
    CatalogPort {
        name: "grpc",
        port: 9090,
        protocol: "TCP",
    },
    CatalogPort {
        name: "metrics",
        port: 9100,
        protocol: "TCP",
    },
    CatalogPort {
        name: "dns",
        port: 53,
        protocol: "UDP",
    },
    CatalogPort {
        name: "postgres",
        port: 5432,
        protocol: "TCP",
    },
    CatalogPort {
        name: "redis",
        port: 6379,
        protocol: "TCP",
    },
    CatalogPort {
        name: "kafka",
        port: 9092,
        protocol: "TCP",
    },
    CatalogPort {
        name: "statsd",
        port: 8125,
        protocol: "UDP",
    },
    CatalogPort {
        name: "diameter",
        port: 3868,
        protocol: "SCTP",
    },
];

/// Each tier's own port (indices into [`PORTS`]; one of them is drawn).
const TIER_PORTS: [&[u8]; 6] = [&[0], &[1], &[2], &[5, 6], &[7], &[0]];
/// Extra ports a workload may have.
const EXTRA_PORTS: [u8; 6] = [3, 2, 4, 8, 9, 0];

const TCP_PORTS: [u16; 9] = [80, 443, 8080, 8443, 9090, 9100, 5432, 6379, 9092];
const UDP_PORTS: [u16; 4] = [53, 8125, 123, 514];
const SCTP_PORTS: [u16; 2] = [3868, 9899];
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const PROTOCOL_WEIGHTS: [usize; 3] = [80, 15, 5];

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub workloads: usize,
    pub namespaces: usize,
    pub policies: usize,
    /// AdminNetworkPolicies (at most 1001: their priorities are distinct, in 0–1000).
    pub anps: usize,
    /// Whether to write the BaselineAdminNetworkPolicy `default`.
    pub banp: bool,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            workloads: 1000,
            namespaces: 20,
            policies: 200,
            anps: 10,
            banp: true,
            seed: 1,
        }
    }
}

/// One generated file: its name inside the output directory and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub text: String,
}

/// A generated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub params: Params,
    pub files: Vec<File>,
}

impl Generated {
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|f| f.text.len()).sum()
    }
}

/// Why a cluster cannot be generated or written.
#[derive(Debug)]
pub enum Error {
    Params(String),
    Io(PathBuf, std::io::Error),
    NotEmpty(PathBuf),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Params(m) => f.write_str(m),
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Error::NotEmpty(p) => write!(
                f,
                "{}: directory is not empty (use --force to replace generated files in it)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for Error {}

#[derive(Clone, Copy)]
struct Ns {
    team: u8,
    env: u8,
}

#[derive(Clone, Copy)]
struct Wl {
    ns: u32,
    tier: u8,
    team: u8,
    pci: bool,
    replicas: u8,
    nports: u8,
    ports: [u8; 3],
}

struct World {
    ns: Vec<Ns>,
    wl: Vec<Wl>,
    /// Workload indices per namespace.
    by_ns: Vec<Vec<u32>>,
}

fn ns_name(i: usize) -> String {
    format!("ns-{i:04}")
}

fn wl_name(world: &World, i: usize) -> String {
    format!("{}-{i:05}", TIERS[world.wl[i].tier as usize])
}

fn team(t: u8) -> String {
    format!("team-{t:02}")
}

// Random streams, one per part of the cluster.
const PART_NAMESPACES: u64 = 1;
const PART_WORKLOADS: u64 = 2;
const PART_POLICIES: u64 = 3;
const PART_ANPS: u64 = 4;

/// Generates the cluster in memory.
pub fn generate(p: &Params) -> Result<Generated, Error> {
    if p.namespaces == 0 && (p.workloads > 0 || p.policies > 0) {
        return Err(Error::Params(
            "--namespaces must be at least 1 when there are workloads or policies".into(),
        ));
    }
    if p.workloads == 0 && p.policies > 0 {
        return Err(Error::Params(
            "--policies needs workloads: each NetworkPolicy is anchored on one".into(),
        ));
    }
    if p.anps > 1001 {
        return Err(Error::Params(format!(
            "--anps {} is more than 1001: AdminNetworkPolicy priorities are distinct, in 0–1000",
            p.anps
        )));
    }
    let world = build_world(p);
    let header = format!(
        "# Synthetic cluster, standard shape v{SHAPE_VERSION}: bulkhead bench generate --workloads {} \
         --namespaces {} --policies {} --anps {}{} --seed {}\n",
        p.workloads,
        p.namespaces,
        p.policies,
        p.anps,
        if p.banp { "" } else { " --no-banp" },
        p.seed
    );
    let mut files = Vec::new();
    if p.namespaces > 0 {
        files.push(File {
            name: "namespaces.yaml".into(),
            text: namespaces_yaml(&header, &world),
        });
    }
    let chunks = p.workloads.div_ceil(WORKLOADS_PER_FILE);
    for c in 0..chunks {
        let lo = c * WORKLOADS_PER_FILE;
        let hi = ((c + 1) * WORKLOADS_PER_FILE).min(p.workloads);
        files.push(File {
            name: if chunks == 1 {
                "workloads.yaml".into()
            } else {
                format!("workloads-{:03}.yaml", c + 1)
            },
            text: workloads_yaml(&header, &world, lo, hi),
        });
    }
    if p.policies > 0 {
        files.push(File {
            name: "netpols.yaml".into(),
            text: netpols_yaml(&header, &world, p),
        });
    }
    if p.anps > 0 || p.banp {
        files.push(File {
            name: "anps.yaml".into(),
            text: anps_yaml(&header, &world, p),
        });
    }
    Ok(Generated {
        params: p.clone(),
        files,
    })
}

/// Is `name` one of the files [`generate`] may write?
pub fn is_generated_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".json"))
    else {
        return false;
    };
    matches!(stem, "namespaces" | "workloads" | "netpols" | "anps")
        || stem
            .strip_prefix("workloads-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes the files into `dir` (created if missing). A directory that already holds anything is
/// refused unless `force`, which first removes the files a previous run generated (and nothing
/// else), so a smaller cluster never inherits a bigger one's extra workload files.
pub fn write_dir(g: &Generated, dir: &Path, force: bool) -> Result<(), Error> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::Io(p, e)
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();
    if !entries.is_empty() {
        if !force {
            return Err(Error::NotEmpty(dir.to_path_buf()));
        }
        for e in entries {
            let generated = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_generated_name);
            if generated && e.is_file() {
                std::fs::remove_file(&e).map_err(io(&e))?;
            }
        }
    }
    for f in &g.files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.text).map_err(io(&path))?;
    }
    Ok(())
}

fn build_world(p: &Params) -> World {
    let mut r = SplitMix64::stream(p.seed, PART_NAMESPACES);
    let ns: Vec<Ns> = (0..p.namespaces)
        .map(|_| Ns {
            team: r.below(TEAMS) as u8,
            env: r.weighted(&ENV_WEIGHTS) as u8,
        })
        .collect();
    let mut r = SplitMix64::stream(p.seed, PART_WORKLOADS);
    let mut by_ns = vec![Vec::new(); p.namespaces];
    let mut wl = Vec::with_capacity(p.workloads);
    for i in 0..p.workloads {
        let n = r.below(p.namespaces);
        let tier = r.below(TIERS.len()) as u8;
        let team = if r.chance(70) {
            ns[n].team
        } else {
            r.below(TEAMS) as u8
        };
        let pci = r.chance(5);
        let replicas = r.range(1, 3) as u8;
        let mut ports = [0u8; 3];
        ports[0] = *r.pick(TIER_PORTS[tier as usize]);
        let mut nports = 1;
        // 0–2 extra draws; a draw the workload already has is dropped.
        for _ in 1..r.range(1, 3) {
            let extra = *r.pick(&EXTRA_PORTS);
            if !ports[..nports].contains(&extra) {
                ports[nports] = extra;
                nports += 1;
            }
        }
        wl.push(Wl {
            ns: n as u32,
            tier,
            team,
            pci,
            replicas,
            nports: nports as u8,
            ports,
        });
        by_ns[n].push(i as u32);
    }
    World { ns, wl, by_ns }
}

fn namespaces_yaml(header: &str, w: &World) -> String {
    let mut s = String::with_capacity(header.len() + w.ns.len() * 120);
    s.push_str(header);
    for (i, n) in w.ns.iter().enumerate() {
        let _ = writeln!(s, "---\napiVersion: v1\nkind: Namespace\nmetadata:");
        let _ = writeln!(
            s,
            "  name: {}\n  labels: {{env: \"{}\", team: \"{}\"}}",
            ns_name(i),
            ENVS[n.env as usize],
            team(n.team)
        );
    }
    s
}

fn workloads_yaml(header: &str, w: &World, lo: usize, hi: usize) -> String {
    let mut s = String::with_capacity(header.len() + (hi - lo) * 640);
    s.push_str(header);
    for i in lo..hi {
        let x = &w.wl[i];
        let name = wl_name(w, i);
        let ns = ns_name(x.ns as usize);
        let rep = x.replicas;
        let env = ENVS[w.ns[x.ns as usize].env as usize];
        let pci = if x.pci { "pci: \"true\", " } else { "" };
        let team = team(x.team);
        let tier = TIERS[x.tier as usize];
        let _ = writeln!(s, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:");
        let _ = writeln!(
            s,
            "  name: {name}\n  namespace: {ns}\n  labels: {{app: \"{name}\"}}"
        );
        let _ = writeln!(s, "spec:\n  replicas: {rep}\n  selector:");
        let _ = writeln!(
            s,
            "    matchLabels: {{app: \"{name}\"}}\n  template:\n    metadata:"
        );
        let _ = writeln!(
            s,
            "      labels: {{app: \"{name}\", env: \"{env}\", {pci}team: \"{team}\", tier: \"{tier}\"}}"
        );
        let _ = writeln!(s, "    spec:\n      containers:\n      - name: main");
        let _ = writeln!(
            s,
            "        image: registry.example/{name}:1.0\n        ports:"
        );
        for &pi in &x.ports[..x.nports as usize] {
            let p = PORTS[pi as usize];
            let _ = writeln!(
                s,
                "        - {{name: {}, containerPort: {}, protocol: {}}}",
                p.name, p.port, p.protocol
            );
        }
    }
    s
}

/// A label selector: `matchLabels` and `matchExpressions`; both empty is `{}` (everything).
#[derive(Default)]
struct Selector {
    labels: Vec<(&'static str, String)>,
    exprs: Vec<(&'static str, &'static str, Vec<String>)>,
}

impl Selector {
    fn label(key: &'static str, value: String) -> Self {
        Selector {
            labels: vec![(key, value)],
            exprs: Vec::new(),
        }
    }

    fn expr(key: &'static str, op: &'static str, values: Vec<String>) -> Self {
        Selector {
            labels: Vec::new(),
            exprs: vec![(key, op, values)],
        }
    }

    /// Writes `<lead><key>:` and the selector below it, indented by `indent`.
    fn write(&self, s: &mut String, lead: &str, indent: usize, key: &str) {
        if self.labels.is_empty() && self.exprs.is_empty() {
            let _ = writeln!(s, "{lead}{key}: {{}}");
            return;
        }
        let _ = writeln!(s, "{lead}{key}:");
        let pad = " ".repeat(indent);
        if !self.labels.is_empty() {
            let _ = write!(s, "{pad}matchLabels: {{");
            for (i, (k, v)) in self.labels.iter().enumerate() {
                let _ = write!(s, "{}{k}: \"{v}\"", if i > 0 { ", " } else { "" });
            }
            s.push_str("}\n");
        }
        if !self.exprs.is_empty() {
            let _ = writeln!(s, "{pad}matchExpressions:");
            for (k, op, values) in &self.exprs {
                let _ = write!(s, "{pad}- {{key: {k}, operator: {op}");
                if !values.is_empty() {
                    s.push_str(", values: [");
                    for (i, v) in values.iter().enumerate() {
                        let _ = write!(s, "{}\"{v}\"", if i > 0 { ", " } else { "" });
                    }
                    s.push(']');
                }
                s.push_str("}\n");
            }
        }
    }
}

fn other_tier(r: &mut SplitMix64, t: u8) -> String {
    let o = (t as usize + 1 + r.below(TIERS.len() - 1)) % TIERS.len();
    TIERS[o].to_string()
}

fn other_env(r: &mut SplitMix64, e: u8) -> String {
    let o = (e as usize + 1 + r.below(ENVS.len() - 1)) % ENVS.len();
    ENVS[o].to_string()
}

/// The subject of a NetworkPolicy, around its anchor workload.
fn subject_selector(r: &mut SplitMix64, w: &World, anchor: usize) -> Selector {
    let x = w.wl[anchor];
    let tier = TIERS[x.tier as usize].to_string();
    match r.weighted(&[40, 20, 15, 10, 8, 4, 3]) {
        0 => Selector::label("app", wl_name(w, anchor)),
        1 => Selector::label("tier", tier),
        2 => Selector {
            labels: vec![("team", team(x.team)), ("tier", tier)],
            exprs: Vec::new(),
        },
        3 => Selector::expr("tier", "In", vec![tier, other_tier(r, x.tier)]),
        4 => Selector {
            labels: vec![("team", team(x.team))],
            exprs: vec![("pci", "DoesNotExist", Vec::new())],
        },
        5 => Selector {
            labels: Vec::new(),
            exprs: vec![
                ("tier", "NotIn", vec![other_tier(r, x.tier)]),
                ("team", "Exists", Vec::new()),
            ],
        },
        _ => Selector::default(),
    }
}

/// Pods of a peer, around a real workload.
fn pod_selector(r: &mut SplitMix64, w: &World, i: usize) -> Selector {
    let x = w.wl[i];
    match r.weighted(&[42, 28, 15, 10, 5]) {
        0 => Selector::label("app", wl_name(w, i)),
        1 => Selector::label("tier", TIERS[x.tier as usize].into()),
        2 => Selector::label("team", team(x.team)),
        3 => Selector::expr(
            "tier",
            "In",
            vec![TIERS[x.tier as usize].into(), other_tier(r, x.tier)],
        ),
        _ => Selector::label("pci", "true".into()),
    }
}

/// Namespaces of a peer, around a real namespace.
fn namespace_selector(r: &mut SplitMix64, w: &World, n: usize) -> Selector {
    let x = w.ns[n];
    match r.weighted(&[35, 25, 25, 10, 5]) {
        0 => Selector::label("team", team(x.team)),
        1 => Selector::label("env", ENVS[x.env as usize].into()),
        2 => Selector::label("kubernetes.io/metadata.name", ns_name(n)),
        3 => Selector::expr(
            "env",
            "In",
            vec![ENVS[x.env as usize].into(), other_env(r, x.env)],
        ),
        _ => Selector::default(),
    }
}

/// The pool of external blocks: `(cidr, except)`.
fn cidr_pool() -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = vec![
        (
            "0.0.0.0/0".into(),
            vec![
                "10.0.0.0/8".into(),
                "172.16.0.0/12".into(),
                "192.168.0.0/16".into(),
            ],
        ),
        ("10.0.0.0/8".into(), Vec::new()),
        ("203.0.113.0/24".into(), Vec::new()),
        ("198.51.100.0/24".into(), Vec::new()),
        ("8.8.8.8/32".into(), Vec::new()),
        ("1.1.1.1/32".into(), Vec::new()),
        ("100.64.0.0/10".into(), vec!["100.64.0.0/16".into()]),
        ("52.0.0.0/8".into(), Vec::new()),
    ];
    for k in 0..16 {
        let except = if k % 4 == 3 {
            vec![format!("10.{k}.255.0/24")]
        } else {
            Vec::new()
        };
        v.push((format!("10.{k}.0.0/16"), except));
    }
    for k in 0..12 {
        v.push((format!("172.16.{k}.0/24"), Vec::new()));
    }
    for k in 0..12 {
        let except = if k % 2 == 1 {
            vec![format!("192.168.{k}.128/25")]
        } else {
            Vec::new()
        };
        v.push((format!("192.168.{k}.0/24"), except));
    }
    v
}

/// One entry of a NetworkPolicy rule's `ports`.
fn np_port(r: &mut SplitMix64, s: &mut String) {
    let proto = r.weighted(&PROTOCOL_WEIGHTS);
    let name = PROTOCOLS[proto];
    let port = match proto {
        0 => *r.pick(&TCP_PORTS),
        1 => *r.pick(&UDP_PORTS),
        _ => *r.pick(&SCTP_PORTS),
    };
    let implicit_tcp = proto == 0 && r.chance(30);
    let roll = r.below(100);
    s.push_str("    - {");
    if !implicit_tcp {
        let _ = write!(s, "protocol: {name}");
    }
    if roll < 3 {
        if implicit_tcp {
            s.push_str("protocol: TCP");
        }
    } else {
        let _ = write!(s, "{}port: {port}", if implicit_tcp { "" } else { ", " });
        if roll < 13 {
            let span = *r.pick(&[9u16, 99, 999]);
            let _ = write!(s, ", endPort: {}", port + span);
        }
    }
    s.push_str("}\n");
}

/// A named port entry.
fn np_named_port(r: &mut SplitMix64, s: &mut String, p: CatalogPort) {
    if p.protocol == "TCP" && r.chance(50) {
        let _ = writeln!(s, "    - {{port: {}}}", p.name);
    } else {
        let _ = writeln!(s, "    - {{protocol: {}, port: {}}}", p.protocol, p.name);
    }
}

fn ip_block(r: &mut SplitMix64, pool: &[(String, Vec<String>)], s: &mut String) {
    let (cidr, except) = r.pick(pool);
    if except.is_empty() {
        let _ = writeln!(s, "    - ipBlock: {{cidr: {cidr}}}");
    } else {
        let _ = writeln!(
            s,
            "    - ipBlock: {{cidr: {cidr}, except: [{}]}}",
            except.join(", ")
        );
    }
}

/// One peer of a NetworkPolicy rule (not an ipBlock).
fn np_peer(r: &mut SplitMix64, w: &World, anchor_ns: usize, s: &mut String) {
    match r.weighted(&[35, 25, 40]) {
        0 => {
            // Pods of the policy's own namespace.
            let here = &w.by_ns[anchor_ns];
            let i = here[r.below(here.len())] as usize;
            pod_selector(r, w, i).write(s, "    - ", 8, "podSelector");
        }
        1 => {
            let n = r.below(w.ns.len());
            namespace_selector(r, w, n).write(s, "    - ", 8, "namespaceSelector");
        }
        _ => {
            let i = r.below(w.wl.len());
            let n = w.wl[i].ns as usize;
            namespace_selector(r, w, n).write(s, "    - ", 8, "namespaceSelector");
            pod_selector(r, w, i).write(s, "      ", 8, "podSelector");
        }
    }
}

fn netpols_yaml(header: &str, w: &World, p: &Params) -> String {
    let mut r = SplitMix64::stream(p.seed, PART_POLICIES);
    let pool = cidr_pool();
    let mut s = String::with_capacity(header.len() + p.policies * 1400);
    s.push_str(header);
    for k in 0..p.policies {
        let anchor = r.below(w.wl.len());
        let anchor_ns = w.wl[anchor].ns as usize;
        let with_ips = r.chance(10);
        let with_named = r.chance(5);
        let _ = writeln!(
            s,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy"
        );
        let _ = writeln!(
            s,
            "metadata:\n  name: np-{k:05}\n  namespace: {}\nspec:",
            ns_name(anchor_ns)
        );
        subject_selector(&mut r, w, anchor).write(&mut s, "  ", 4, "podSelector");
        if r.chance(85) {
            s.push_str("  policyTypes: [Ingress, Egress]\n");
        }
        let n_in = r.range(1, 3);
        let n_eg = r.range(1, 3);
        // Which rules carry an ipBlock: about half, and at least one.
        let mut ip_rules = vec![false; n_in + n_eg];
        if with_ips {
            for b in ip_rules.iter_mut() {
                *b = r.chance(50);
            }
            if !ip_rules.contains(&true) {
                ip_rules[n_in + r.below(n_eg)] = true;
            }
        }
        for (dir, n, base) in [("ingress", n_in, 0), ("egress", n_eg, n_in)] {
            let _ = writeln!(s, "  {dir}:");
            let peers_key = if dir == "ingress" { "from" } else { "to" };
            for j in 0..n {
                let ip = ip_rules[base + j];
                let no_peers = !ip && r.chance(3);
                let only_ip = ip && r.chance(30);
                let mut rule = String::new();
                if !no_peers {
                    let _ = writeln!(rule, "    {peers_key}:");
                    if !only_ip {
                        for _ in 0..r.range(1, 2) {
                            np_peer(&mut r, w, anchor_ns, &mut rule);
                        }
                    }
                    if ip {
                        ip_block(&mut r, &pool, &mut rule);
                    }
                }
                if !r.chance(15) {
                    let _ = writeln!(rule, "    ports:");
                    for _ in 0..r.range(1, 2) {
                        if with_named && r.chance(70) {
                            let port = if dir == "ingress" {
                                let a = w.wl[anchor];
                                PORTS[a.ports[r.below(a.nports as usize)] as usize]
                            } else {
                                *r.pick(&PORTS)
                            };
                            np_named_port(&mut r, &mut rule, port);
                        } else {
                            np_port(&mut r, &mut rule);
                        }
                    }
                }
                if rule.is_empty() {
                    s.push_str("  - {}\n");
                } else {
                    // The rule's first line becomes the list item.
                    s.push_str("  - ");
                    s.push_str(&rule[4..]);
                }
            }
        }
    }
    s
}

/// A namespace selector for admin subjects and peers.
fn admin_namespaces(r: &mut SplitMix64, w: &World) -> Selector {
    let n = w.ns[r.below(w.ns.len())];
    match r.weighted(&[40, 40, 20]) {
        0 => Selector::label("team", team(n.team)),
        1 => Selector::label("env", ENVS[n.env as usize].into()),
        _ => Selector::expr(
            "env",
            "In",
            vec![ENVS[n.env as usize].into(), other_env(r, n.env)],
        ),
    }
}

/// The BaselineAdminNetworkPolicy of the standard shape.
const BANP: &str = r#"---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces:
      matchLabels: {env: "prod"}
  ingress:
  - name: allow-monitoring
    action: Allow
    from:
    - namespaces:
        matchLabels: {team: "team-00"}
    ports:
    - namedPort: metrics
  - name: deny-from-dev
    action: Deny
    from:
    - namespaces:
        matchLabels: {env: "dev"}
  egress:
  - name: deny-to-dev
    action: Deny
    to:
    - namespaces:
        matchLabels: {env: "dev"}
"#;

fn anps_yaml(header: &str, w: &World, p: &Params) -> String {
    let mut r = SplitMix64::stream(p.seed, PART_ANPS);
    let pool = cidr_pool();
    let mut s = String::with_capacity(header.len() + p.anps * 1200 + 1000);
    s.push_str(header);
    // Distinct priorities: the first `anps` of a shuffle of 0..=1000.
    let mut prios: Vec<u16> = (0..=1000).collect();
    for i in 0..p.anps.min(prios.len()) {
        let j = i + r.below(prios.len() - i);
        prios.swap(i, j);
    }
    let have_ns = !w.ns.is_empty();
    for (k, &prio) in prios.iter().enumerate().take(p.anps) {
        let _ = writeln!(
            s,
            "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy"
        );
        let _ = writeln!(
            s,
            "metadata:\n  name: anp-{k:04}\nspec:\n  priority: {prio}\n  subject:"
        );
        if !have_ns || r.chance(70) {
            let sel = if have_ns {
                admin_namespaces(&mut r, w)
            } else {
                Selector::default()
            };
            sel.write(&mut s, "    ", 6, "namespaces");
        } else {
            s.push_str("    pods:\n");
            admin_namespaces(&mut r, w).write(&mut s, "      ", 8, "namespaceSelector");
            Selector::label("tier", TIERS[r.below(TIERS.len())].into()).write(
                &mut s,
                "      ",
                8,
                "podSelector",
            );
        }
        let mut n_in = r.below(3);
        let n_eg = r.below(3);
        if n_in + n_eg == 0 {
            n_in = 1;
        }
        for (dir, n) in [("ingress", n_in), ("egress", n_eg)] {
            if n == 0 {
                continue;
            }
            let _ = writeln!(s, "  {dir}:");
            let peers_key = if dir == "ingress" { "from" } else { "to" };
            for j in 0..n {
                let action = ["Allow", "Deny", "Pass"][r.weighted(&[40, 35, 25])];
                let _ = writeln!(
                    s,
                    "  - name: {}-{dir}-{j}\n    action: {action}\n    {peers_key}:",
                    action.to_ascii_lowercase()
                );
                for _ in 0..r.range(1, 2) {
                    let roll = r.below(100);
                    if dir == "egress" && roll < 10 {
                        let mut nets: Vec<&str> = Vec::new();
                        for _ in 0..r.range(1, 2) {
                            nets.push(&r.pick(&pool).0);
                        }
                        let _ = writeln!(s, "    - networks: [{}]", nets.join(", "));
                    } else if !have_ns || roll >= 95 {
                        Selector::default().write(&mut s, "    - ", 8, "namespaces");
                    } else if roll >= 70 {
                        s.push_str("    - pods:\n");
                        admin_namespaces(&mut r, w).write(
                            &mut s,
                            "        ",
                            10,
                            "namespaceSelector",
                        );
                        Selector::label("tier", TIERS[r.below(TIERS.len())].into()).write(
                            &mut s,
                            "        ",
                            10,
                            "podSelector",
                        );
                    } else {
                        admin_namespaces(&mut r, w).write(&mut s, "    - ", 8, "namespaces");
                    }
                }
                if r.chance(60) {
                    s.push_str("    ports:\n");
                    for _ in 0..r.range(1, 2) {
                        let proto = PROTOCOLS[r.weighted(&PROTOCOL_WEIGHTS)];
                        let port = match proto {
                            "TCP" => *r.pick(&TCP_PORTS),
                            "UDP" => *r.pick(&UDP_PORTS),
                            _ => *r.pick(&SCTP_PORTS),
                        };
                        match r.weighted(&[60, 30, 10]) {
                            0 => {
                                let _ = writeln!(
                                    s,
                                    "    - portNumber: {{protocol: {proto}, port: {port}}}"
                                );
                            }
                            1 => {
                                let _ = writeln!(
                                    s,
                                    "    - portRange: {{protocol: {proto}, start: {port}, end: {}}}",
                                    port + *r.pick(&[9u16, 99, 999])
                                );
                            }
                            _ => {
                                let _ = writeln!(s, "    - namedPort: {}", r.pick(&PORTS).name);
                            }
                        }
                    }
                }
            }
        }
    }
    if p.banp {
        s.push_str(BANP);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_recognised() {
        for (name, want) in [
            ("namespaces.yaml", true),
            ("workloads.yaml", true),
            ("workloads-001.yaml", true),
            ("workloads-12.yaml", true),
            ("netpols.yaml", true),
            ("anps.yaml", true),
            ("workloads-.yaml", false),
            ("workloads-01a.yaml", false),
            ("mine.yaml", false),
            ("README.md", false),
        ] {
            assert_eq!(is_generated_name(name), want, "{name}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        for (p, why) in [
            (
                Params {
                    namespaces: 0,
                    ..Params::default()
                },
                "no namespaces for the workloads",
            ),
            (
                Params {
                    workloads: 0,
                    ..Params::default()
                },
                "policies without workloads",
            ),
            (
                Params {
                    anps: 1002,
                    ..Params::default()
                },
                "more ANPs than distinct priorities",
            ),
        ] {
            assert!(generate(&p).is_err(), "{why} must be refused");
        }
        let empty = Params {
            workloads: 0,
            namespaces: 0,
            policies: 0,
            anps: 0,
            banp: false,
            seed: 0,
        };
        assert!(generate(&empty).is_ok(), "an empty cluster is fine");
    }

    #[test]
    fn priorities_are_distinct() {
        let g = generate(&Params {
            workloads: 10,
            namespaces: 3,
            policies: 0,
            anps: 1001,
            banp: false,
            seed: 5,
        })
        .expect("generates");
        let anps = &g
            .files
            .iter()
            .find(|f| f.name == "anps.yaml")
            .expect("anps")
            .text;
        let mut prios: Vec<u32> = anps
            .lines()
            .filter_map(|l| l.strip_prefix("  priority: "))
            .map(|v| v.parse().expect("a number"))
            .collect();
        assert_eq!(prios.len(), 1001);
        prios.sort_unstable();
        prios.dedup();
        assert_eq!(prios.len(), 1001, "every priority 0–1000 exactly once");
    }
}
