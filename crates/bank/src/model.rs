//! The bank's workloads (from BANK.md), scaled to the requested size, and the pods' lives over
//! the simulated days (churn, with addresses going back to the pool and being reused).

use crate::Config;
use bulkhead_synth::SplitMix64;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Where a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
    /// VMs or appliances in the on-premises data centre (seen by Zeek).
    VmOnPrem,
    /// VMs in cloud subnets (seen by VPC Flow Logs).
    VmCloud,
}

impl Kind {
    pub fn is_vm(self) -> bool {
        matches!(self, Kind::VmOnPrem | Kind::VmCloud)
    }
}

/// One line of the catalog: a service of the bank as BANK.md describes it.
struct Spec {
    segment: &'static str,
    app: &'static str,
    kind: Kind,
    ports: &'static [(&'static str, u16, &'static str)],
    tier: &'static str,
    team: &'static str,
    /// Instances at the default size (300 workloads).
    base: usize,
}

const HTTPS: &[(&str, u16, &str)] = &[("https", 8443, "TCP")];
const HTTPS_GRPC: &[(&str, u16, &str)] = &[("https", 8443, "TCP"), ("grpc", 9090, "TCP")];

#[rustfmt::skip]
const CATALOG: &[Spec] = &[
    Spec { segment: "channels", app: "mobile-bff", kind: Kind::Deployment, ports: HTTPS, tier: "frontend", team: "digital", base: 14 },
    Spec { segment: "channels", app: "web-bff", kind: Kind::Deployment, ports: HTTPS, tier: "frontend", team: "digital", base: 10 },
    Spec { segment: "channels", app: "partner-portal", kind: Kind::Deployment, ports: HTTPS, tier: "frontend", team: "open-banking", base: 4 },
    Spec { segment: "edge", app: "api-gateway", kind: Kind::Deployment, ports: HTTPS, tier: "edge", team: "platform", base: 12 },
    Spec { segment: "edge", app: "waf", kind: Kind::Deployment, ports: &[("https", 443, "TCP")], tier: "edge", team: "security", base: 6 },
    Spec { segment: "edge", app: "open-banking-gateway", kind: Kind::Deployment, ports: HTTPS, tier: "edge", team: "open-banking", base: 6 },
    Spec { segment: "identity", app: "iam", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "identity", base: 10 },
    Spec { segment: "identity", app: "mfa", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "identity", base: 5 },
    Spec { segment: "identity", app: "session-store", kind: Kind::StatefulSet, ports: &[("redis", 6379, "TCP")], tier: "data", team: "identity", base: 6 },
    Spec { segment: "accounts", app: "accounts", kind: Kind::Deployment, ports: HTTPS_GRPC, tier: "backend", team: "accounts", base: 14 },
    Spec { segment: "accounts", app: "statements", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "accounts", base: 5 },
    Spec { segment: "accounts", app: "customer-profile", kind: Kind::Deployment, ports: HTTPS_GRPC, tier: "backend", team: "accounts", base: 6 },
    Spec { segment: "payments", app: "payment-orchestrator", kind: Kind::Deployment, ports: HTTPS_GRPC, tier: "backend", team: "payments", base: 12 },
    Spec { segment: "payments", app: "sepa-instant", kind: Kind::Deployment, ports: HTTPS_GRPC, tier: "backend", team: "payments", base: 8 },
    Spec { segment: "payments", app: "swift-gateway", kind: Kind::VmOnPrem, ports: &[("ibm-mq", 1414, "TCP")], tier: "integration", team: "payments", base: 2 },
    Spec { segment: "cards", app: "card-auth", kind: Kind::VmOnPrem, ports: &[("iso8583", 8583, "TCP")], tier: "backend", team: "cards", base: 4 },
    Spec { segment: "cards", app: "tokenisation", kind: Kind::VmOnPrem, ports: HTTPS, tier: "backend", team: "cards", base: 3 },
    Spec { segment: "cards", app: "hsm", kind: Kind::VmOnPrem, ports: &[("hsm", 1500, "TCP")], tier: "appliance", team: "cards", base: 2 },
    Spec { segment: "core-ledger", app: "core-banking", kind: Kind::VmOnPrem, ports: HTTPS, tier: "backend", team: "core-banking", base: 6 },
    Spec { segment: "core-ledger", app: "ledger-db", kind: Kind::VmOnPrem, ports: &[("oracle", 1521, "TCP"), ("db2", 50000, "TCP")], tier: "data", team: "core-banking", base: 3 },
    Spec { segment: "core-ledger", app: "batch-scheduler", kind: Kind::VmOnPrem, ports: HTTPS, tier: "batch", team: "core-banking", base: 2 },
    Spec { segment: "core-ledger", app: "ledger-staging", kind: Kind::VmOnPrem, ports: &[("ssh", 22, "TCP"), ("https", 8443, "TCP")], tier: "staging", team: "core-banking", base: 1 },
    Spec { segment: "customer-data", app: "customer-db", kind: Kind::StatefulSet, ports: &[("postgres", 5432, "TCP")], tier: "data", team: "customer-data", base: 6 },
    Spec { segment: "customer-data", app: "document-store", kind: Kind::Deployment, ports: HTTPS, tier: "data", team: "customer-data", base: 5 },
    Spec { segment: "customer-data", app: "data-protection-vault", kind: Kind::VmOnPrem, ports: HTTPS, tier: "data", team: "customer-data", base: 2 },
    Spec { segment: "fraud", app: "fraud-scoring", kind: Kind::Deployment, ports: &[("grpc", 9090, "TCP")], tier: "backend", team: "fraud", base: 12 },
    Spec { segment: "fraud", app: "feature-store", kind: Kind::StatefulSet, ports: &[("grpc", 9090, "TCP")], tier: "data", team: "fraud", base: 5 },
    Spec { segment: "fraud", app: "fraud-consumer", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "fraud", base: 6 },
    Spec { segment: "messaging", app: "kafka", kind: Kind::VmCloud, ports: &[("kafka", 9092, "TCP"), ("kafka-ctrl", 9093, "TCP")], tier: "data", team: "platform", base: 6 },
    Spec { segment: "messaging", app: "schema-registry", kind: Kind::Deployment, ports: &[("http", 8081, "TCP")], tier: "data", team: "platform", base: 3 },
    Spec { segment: "notifications", app: "sms-sender", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "engagement", base: 4 },
    Spec { segment: "notifications", app: "email-sender", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "engagement", base: 4 },
    Spec { segment: "notifications", app: "push-sender", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "engagement", base: 4 },
    Spec { segment: "marketing-analytics", app: "campaign", kind: Kind::Deployment, ports: HTTPS, tier: "backend", team: "marketing", base: 5 },
    Spec { segment: "marketing-analytics", app: "analytics-notebooks", kind: Kind::Deployment, ports: HTTPS, tier: "analytics", team: "marketing", base: 6 },
    Spec { segment: "marketing-analytics", app: "datalake-loader", kind: Kind::Deployment, ports: HTTPS, tier: "batch", team: "marketing", base: 5 },
    Spec { segment: "reporting", app: "regulatory-reporting", kind: Kind::VmCloud, ports: HTTPS, tier: "batch", team: "finance", base: 3 },
    Spec { segment: "reporting", app: "bi", kind: Kind::VmCloud, ports: HTTPS, tier: "analytics", team: "finance", base: 3 },
    Spec { segment: "reporting", app: "nightly-extract", kind: Kind::VmCloud, ports: HTTPS, tier: "batch", team: "finance", base: 2 },
    Spec { segment: "shared-infra", app: "coredns", kind: Kind::Deployment, ports: &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")], tier: "infra", team: "platform", base: 4 },
    Spec { segment: "shared-infra", app: "dns-resolver", kind: Kind::VmOnPrem, ports: &[("dns", 53, "UDP")], tier: "infra", team: "platform", base: 2 },
    Spec { segment: "shared-infra", app: "ntp", kind: Kind::VmOnPrem, ports: &[("ntp", 123, "UDP")], tier: "infra", team: "platform", base: 2 },
    Spec { segment: "shared-infra", app: "log-collector", kind: Kind::VmCloud, ports: &[("syslog", 514, "UDP"), ("syslog-tls", 6514, "TCP"), ("otlp", 4317, "TCP")], tier: "infra", team: "platform", base: 4 },
    Spec { segment: "shared-infra", app: "prometheus", kind: Kind::Deployment, ports: &[("web", 9090, "TCP")], tier: "infra", team: "platform", base: 2 },
    Spec { segment: "shared-infra", app: "bastion", kind: Kind::VmOnPrem, ports: &[("ssh", 22, "TCP")], tier: "infra", team: "security", base: 2 },
    Spec { segment: "shared-infra", app: "backup", kind: Kind::VmOnPrem, ports: HTTPS, tier: "infra", team: "platform", base: 2 },
];

/// Instances of the catalog at scale 1 (the rates of the traffic table are per this size).
pub fn base_total() -> usize {
    CATALOG.iter().map(|s| s.base).sum()
}

/// The compliance label of a segment (BANK.md's table).
pub fn compliance(segment: &str) -> &'static str {
    match segment {
        "payments" | "cards" => "pci-dss",
        "core-ledger" => "pci-dss-sox",
        "edge" | "fraud" => "pci-dss-connected",
        "identity" | "accounts" | "customer-data" => "gdpr",
        "reporting" => "sox",
        _ => "none",
    }
}

/// The segments, in BANK.md's order.
pub const SEGMENTS: &[&str] = &[
    "channels",
    "edge",
    "identity",
    "accounts",
    "payments",
    "cards",
    "core-ledger",
    "customer-data",
    "fraud",
    "messaging",
    "notifications",
    "marketing-analytics",
    "reporting",
    "shared-infra",
];

/// One workload: a Deployment/StatefulSet, or a group of VMs with the same role.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Workload name (`accounts`, `accounts-2` for further copies at scale).
    pub name: String,
    /// The catalog's role (`accounts`), shared by its copies.
    pub app: &'static str,
    pub segment: &'static str,
    pub kind: Kind,
    pub ports: &'static [(&'static str, u16, &'static str)],
    pub tier: &'static str,
    pub team: &'static str,
    /// Replicas (pods at any time) or VM count.
    pub replicas: usize,
    /// Kubernetes: the Service's cluster IP.
    pub cluster_ip: Option<Ipv4Addr>,
    /// VMs: host names and fixed addresses.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Kubernetes: the pods of each replica slot over time, indexes into `Bank::pods`.
    pub slots: Vec<Vec<usize>>,
    /// The ReplicaSet hash (Deployments).
    pub rs_hash: String,
}

impl Workload {
    /// The labels every instance carries.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("app", self.name.clone()),
            ("segment", self.segment.to_string()),
            ("tier", self.tier.to_string()),
            ("team", self.team.to_string()),
            ("compliance", compliance(self.segment).to_string()),
            (
                "env",
                if self.tier == "staging" {
                    "staging"
                } else {
                    "prod"
                }
                .to_string(),
            ),
        ]
    }

    /// Instances: replica slots or hosts.
    pub fn instances(&self) -> usize {
        if self.kind.is_vm() {
            self.hosts.len()
        } else {
            self.slots.len()
        }
    }
}

/// One pod's life.
#[derive(Clone, Debug)]
pub struct Pod {
    pub workload: usize,
    pub name: String,
    pub node: String,
    pub ip: Ipv4Addr,
    /// Seconds since the epoch.
    pub start: i64,
    /// When it finished (deleted on a rollout or a rescheduling), if within the simulation.
    pub end: Option<i64>,
}

/// The bank: workloads, pods over time, external partners.
#[derive(Clone, Debug)]
pub struct Bank {
    pub workloads: Vec<Workload>,
    pub pods: Vec<Pod>,
    /// Simulation start and end (seconds since the epoch).
    pub start: i64,
    pub end: i64,
}

/// Addresses of external parties: (name, address, port).
pub const PARTNERS: &[(&str, [u8; 4], u16)] = &[
    ("card-scheme", [198, 51, 100, 20], 8583),
    ("swift-network", [198, 51, 100, 40], 443),
    ("sms-provider", [203, 0, 113, 50], 443),
    ("email-provider", [203, 0, 113, 60], 443),
    ("push-provider", [203, 0, 113, 70], 443),
    ("regulator", [203, 0, 113, 80], 443),
    ("tpp-fintech-a", [192, 0, 2, 10], 443),
    ("tpp-fintech-b", [192, 0, 2, 11], 443),
];

pub fn partner(name: &str) -> Ipv4Addr {
    PARTNERS
        .iter()
        .find(|p| p.0 == name)
        .map(|p| Ipv4Addr::from(p.1))
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 1))
}

/// A name-derived, seed-derived string of `n` characters from Kubernetes' suffix alphabet.
pub fn suffix(rng: &mut SplitMix64, n: usize) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHA[rng.below(ALPHA.len())] as char)
        .collect()
}

impl Bank {
    /// Builds the bank for a configuration.
    pub fn build(cfg: &Config) -> Bank {
        let f = cfg.workloads.max(1) as f64 / base_total() as f64;
        let mut rng = SplitMix64::stream(cfg.seed, 1);
        let mut workloads = Vec::new();
        let (mut onprem, mut cloud) = (0u32, 0u32);
        let mut cluster = 10u32;
        for s in CATALOG {
            let want = ((s.base as f64) * f).round().max(1.0) as usize;
            if s.kind.is_vm() {
                let mut hosts = Vec::new();
                for i in 0..want {
                    let a = if s.kind == Kind::VmOnPrem {
                        onprem += 1;
                        0x0A32_0000 + 10 + onprem
                    } else {
                        cloud += 1;
                        0x0A32_8000 + 10 + cloud
                    };
                    hosts.push((format!("{}-{:02}", s.app, i + 1), Ipv4Addr::from(a)));
                }
                workloads.push(workload(s, s.app.to_string(), want, None, hosts, ""));
            } else {
                // Beyond the default size, more services of the same role rather than ever
                // more replicas: copies grow as the square root of the scale.
                let copies = if f > 1.0 {
                    (f.sqrt().round() as usize).clamp(1, want)
                } else {
                    1
                };
                for c in 0..copies {
                    let replicas = want / copies + usize::from(c < want % copies);
                    let name = if c == 0 {
                        s.app.to_string()
                    } else {
                        format!("{}-{}", s.app, c + 1)
                    };
                    cluster += 1;
                    let ip = Ipv4Addr::from(0x0A60_0000 + cluster);
                    let hash = suffix(&mut rng, 10);
                    workloads.push(workload(s, name, replicas, Some(ip), Vec::new(), &hash));
                }
            }
        }
        let start = cfg.start;
        let end = cfg.start + i64::from(cfg.days.max(1)) * 86_400;
        let pods = churn(&mut workloads, cfg, start, end);
        Bank {
            workloads,
            pods,
            start,
            end,
        }
    }

    /// Workload indexes by catalog role.
    pub fn by_app(&self, app: &str) -> Vec<usize> {
        (0..self.workloads.len())
            .filter(|&i| self.workloads[i].app == app)
            .collect()
    }

    /// The pod of a slot alive at `t` (or the next one, if `t` falls in a restart gap).
    pub fn pod_at(&self, w: usize, slot: usize, t: i64) -> usize {
        let lives = &self.workloads[w].slots[slot];
        for &p in lives {
            if self.pods[p].end.is_none_or(|e| t < e) {
                return p;
            }
        }
        lives[lives.len() - 1]
    }

    /// Which workload owned a pod address at time `t` (seconds), if any.
    pub fn owner_at(&self, ip: Ipv4Addr, t: i64) -> Option<usize> {
        self.pods
            .iter()
            .find(|p| p.ip == ip && p.start <= t && p.end.is_none_or(|e| t < e))
            .map(|p| p.workload)
    }
}

fn workload(
    s: &Spec,
    name: String,
    replicas: usize,
    cluster_ip: Option<Ipv4Addr>,
    hosts: Vec<(String, Ipv4Addr)>,
    hash: &str,
) -> Workload {
    Workload {
        name,
        app: s.app,
        segment: s.segment,
        kind: s.kind,
        ports: s.ports,
        tier: s.tier,
        team: s.team,
        replicas,
        cluster_ip,
        hosts,
        slots: Vec::new(),
        rs_hash: hash.to_string(),
    }
}

/// Pod lives: every Deployment pod is replaced after 2–30 hours (rollouts, evictions,
/// rescheduling); StatefulSet pods live through. Addresses are given lowest-free-first from
/// 10.244.0.0/16, so a finished pod's address soon goes to another workload's pod.
fn churn(workloads: &mut [Workload], cfg: &Config, start: i64, end: i64) -> Vec<Pod> {
    let mut rng = SplitMix64::stream(cfg.seed, 2);
    // (start, end, workload, slot) per life, before addresses are given.
    let mut lives: Vec<(i64, Option<i64>, usize, usize)> = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        if w.kind.is_vm() {
            continue;
        }
        for slot in 0..w.replicas {
            let mut t = start - 3_600 - rng.below(6 * 86_400) as i64;
            loop {
                let life = if w.kind == Kind::StatefulSet {
                    None
                } else {
                    let l = 2 * 3_600 + rng.below(28 * 3_600) as i64;
                    Some(t.max(start - 3_600) + l)
                };
                let e = life.filter(|&e| e < end);
                lives.push((t, e, wi, slot));
                match e {
                    Some(e) => t = e + 2 + rng.below(20) as i64,
                    None => break,
                }
            }
        }
    }
    // Events in time order: a release before an allocation at the same second.
    let mut events: Vec<(i64, u8, usize)> = Vec::new();
    for (i, l) in lives.iter().enumerate() {
        events.push((l.0, 1, i));
        if let Some(e) = l.1 {
            events.push((e, 0, i));
        }
    }
    events.sort_unstable();
    let mut free: BTreeSet<u32> = BTreeSet::new();
    let mut next = 0x0AF4_0000u32 + 2;
    let mut ips = vec![0u32; lives.len()];
    for (_, kind, i) in events {
        if kind == 0 {
            free.insert(ips[i]);
        } else {
            ips[i] = free.pop_first().unwrap_or_else(|| {
                next += 1;
                next - 1
            });
        }
    }
    let nodes = (workloads.iter().map(|w| w.replicas).sum::<usize>() / 30).max(3);
    let mut pods = Vec::with_capacity(lives.len());
    for (i, (s, e, wi, slot)) in lives.into_iter().enumerate() {
        let w = &mut workloads[wi];
        let name = if w.kind == Kind::StatefulSet {
            format!("{}-{slot}", w.name)
        } else {
            format!("{}-{}-{}", w.name, w.rs_hash, suffix(&mut rng, 5))
        };
        if w.slots.len() <= slot {
            w.slots.resize(slot + 1, Vec::new());
        }
        w.slots[slot].push(pods.len());
        pods.push(Pod {
            workload: wi,
            name,
            node: format!("node-{:03}", rng.below(nodes) + 1),
            ip: Ipv4Addr::from(ips[i]),
            start: s,
            end: e,
        });
    }
    pods
}
