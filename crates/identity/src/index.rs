//! The address → identity timeline index.
//!
//! Per address, a list of `(from, until, entity)` intervals built from pods; beside it the
//! Services' cluster IPs, the host inventory's addresses and CIDRs, and the external groups.
//! [`Index::lookup`] answers "who held this address at this time" in that order:
//! 0. (in the ingest, for records that name their pods, i.e. Hubble) the named pod's workload
//!    when the inventory has that pod ([`Index::lookup_pod`]);
//! 1. a pod interval holding the time (the latest-started one if several overlap);
//! 2. a Service cluster IP (Services are not timed);
//! 3. a host address or CIDR of the host inventory, longest prefix first;
//! 4. an external group (`--external NAME=CIDR`), longest prefix first;
//! 5. a public address → the external group `internet`; anything else → `unknown`.

use crate::hosts::Host;
use crate::prefix::PrefixTable;
use bulkhead_core::flow::Timestamp;
use bulkhead_k8s::Loaded;
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// What kind of peer an entity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// A Kubernetes workload (a pod's controlling owner, or a lone pod).
    Workload,
    /// A host of the host inventory (VM, appliance, legacy host).
    Host,
    /// A Service whose selector picks several workloads (or none): the Service stands for them.
    Service,
    /// An external network group (a configured CIDR group, or `internet`).
    External,
    /// A private or special address nobody is known to hold.
    Unknown,
}

/// A peer flows are attributed to. `key` is stable across inventories and runs: it is what the
/// store keys edges by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub kind: EntityKind,
    /// `ns/name[Kind]` for workloads, `host:NAME`, `service:ns/name`, `external:NAME`,
    /// `unknown`.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// External groups: the CIDRs of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Services: the workloads the selector picks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// How an address was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// A pod interval holding the record's time.
    PodAtTime,
    /// A pod that holds the address now (the record had no time).
    PodNow,
    /// A Service cluster IP whose selector picks exactly one workload.
    ServiceWorkload,
    /// A Service cluster IP standing for several (or no) workloads.
    Service,
    /// The host inventory.
    Host,
    /// An external group.
    External,
    /// Nobody.
    Unknown,
    /// The record named the pod (Hubble's `namespace`/`pod_name`) and the inventory knows it.
    PodName,
}

impl How {
    /// Whether the address was attributed to a workload, a Service or a host.
    pub fn is_resolved(self) -> bool {
        !matches!(self, How::External | How::Unknown)
    }
}

/// One answer of [`Index::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Index into [`Index::entities`].
    pub entity: u32,
    pub how: How,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    Open,
    At(Timestamp),
    /// Finished (Succeeded/Failed) without a `finishedAt`: settled in [`Index::finish`].
    FinishedUnknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    /// `None`: since before any time the record could have.
    from: Option<Timestamp>,
    until: Until,
    entity: u32,
}

/// A pod interval in lookup form, settled by [`Index::finish`]: `from` is `i64::MIN` when the
/// pod holds the address since always, `until` is only read when `open` is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    from: Timestamp,
    until: Timestamp,
    open: bool,
    entity: u32,
}

impl Span {
    #[inline]
    fn holds(&self, time: Option<Timestamp>) -> bool {
        match time {
            Some(t) => self.from <= t && (self.open || t < self.until),
            None => self.open,
        }
    }
}

/// The timelines laid out for lookups: per address a range of one flat array (IPv4 keyed by
/// its 32 bits), so a lookup is one probe of a small table and one contiguous read.
#[derive(Clone, Debug, Default)]
struct Spans {
    v4: FxHashMap<u32, (u32, u32)>,
    other: FxHashMap<IpAddr, (u32, u32)>,
    flat: Vec<Span>,
}

impl Spans {
    #[inline]
    fn get(&self, ip: IpAddr) -> Option<&[Span]> {
        let &(start, len) = match ip {
            IpAddr::V4(a) => self.v4.get(&a.to_bits())?,
            other => self.other.get(&other)?,
        };
        self.flat.get(start as usize..(start + len) as usize)
    }
}

/// Counts of what the index was built from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    pub workloads: usize,
    pub pods: usize,
    pub pods_without_address: usize,
    pub pod_intervals: usize,
    /// Addresses held by more than one pod at some moment (the latest-started one wins).
    pub overlapping_addresses: usize,
    pub finished_pods: usize,
    pub finished_without_finished_at: usize,
    pub services: usize,
    pub services_to_one_workload: usize,
    pub hosts: usize,
    pub external_groups: usize,
}

/// The address → identity index.
#[derive(Clone, Debug)]
pub struct Index {
    pub entities: Vec<Entity>,
    by_key: FxHashMap<String, u32>,
    timelines: FxHashMap<IpAddr, Vec<Interval>>,
    /// `timelines` in lookup form (rebuilt by [`Index::finish`]).
    spans: Spans,
    services: FxHashMap<IpAddr, (u32, How)>,
    /// namespace → pod name → workload entity.
    pod_names: FxHashMap<String, FxHashMap<String, u32>>,
    hosts: PrefixTable<u32>,
    externals: PrefixTable<u32>,
    unknown: u32,
    internet: u32,
    pub stats: IndexStats,
    pub warnings: Vec<String>,
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

fn ts(s: &Option<String>) -> Option<Timestamp> {
    s.as_deref()
        .and_then(bulkhead_telemetry::time::parse_rfc3339)
}

impl Index {
    /// An index that knows nobody: public addresses are `internet`, the rest `unknown`.
    pub fn new() -> Index {
        let mut ix = Index {
            entities: Vec::new(),
            by_key: FxHashMap::default(),
            timelines: FxHashMap::default(),
            spans: Spans::default(),
            services: FxHashMap::default(),
            pod_names: FxHashMap::default(),
            hosts: PrefixTable::default(),
            externals: PrefixTable::default(),
            unknown: 0,
            internet: 0,
            stats: IndexStats::default(),
            warnings: Vec::new(),
        };
        ix.unknown = ix.entity(Entity {
            kind: EntityKind::Unknown,
            key: "unknown".into(),
            namespace: None,
            labels: BTreeMap::new(),
            cidrs: Vec::new(),
            members: Vec::new(),
        });
        ix.internet = ix.entity(Entity {
            kind: EntityKind::External,
            key: "external:internet".into(),
            namespace: None,
            labels: BTreeMap::new(),
            cidrs: vec!["public addresses".into()],
            members: Vec::new(),
        });
        ix
    }

    /// The entity with this key, added if new.
    fn entity(&mut self, e: Entity) -> u32 {
        if let Some(&i) = self.by_key.get(&e.key) {
            return i;
        }
        let i = self.entities.len() as u32;
        self.by_key.insert(e.key.clone(), i);
        self.entities.push(e);
        i
    }

    /// The entity index of a key.
    pub fn find(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Adds the workloads, pods and Services of loaded Kubernetes objects.
    ///
    /// A pod holds each of its addresses from `status.startTime` (else
    /// `metadata.creationTimestamp`, else since always) until `metadata.deletionTimestamp`
    /// if set; a pod in phase `Succeeded` or `Failed` holds them until the latest
    /// `finishedAt` of its containers (or its deletion, whichever is earlier). A finished pod
    /// without any `finishedAt` is treated as finished: it holds the address until the next
    /// pod on that address starts, and, when no pod follows, only at its start instant (so
    /// it never answers for the address "as it stands").
    pub fn add_kubernetes(&mut self, loaded: &Loaded) {
        let ws = &loaded.cluster.workloads;
        let ids: Vec<u32> = ws
            .iter()
            .map(|w| {
                self.entity(Entity {
                    kind: EntityKind::Workload,
                    key: w.display_name(),
                    namespace: Some(w.namespace.clone()),
                    labels: w
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    cidrs: Vec::new(),
                    members: Vec::new(),
                })
            })
            .collect();
        self.stats.workloads += ws.len();
        for p in &loaded.pods {
            self.stats.pods += 1;
            let Some(&entity) = ids.get(p.workload) else {
                continue;
            };
            self.pod_names
                .entry(p.namespace.clone())
                .or_default()
                .insert(p.name.clone(), entity);
            if p.ips.is_empty() {
                self.stats.pods_without_address += 1;
                continue;
            }
            let from = ts(&p.started).or(ts(&p.created));
            let deleted = ts(&p.deleted);
            let finished = matches!(p.phase.as_deref(), Some("Succeeded" | "Failed"));
            let until = if finished {
                self.stats.finished_pods += 1;
                let end = p
                    .finished
                    .iter()
                    .filter_map(|s| bulkhead_telemetry::time::parse_rfc3339(s))
                    .max();
                match (end, deleted) {
                    (Some(e), Some(d)) => Until::At(e.min(d)),
                    (Some(e), None) => Until::At(e),
                    (None, Some(d)) => Until::At(d),
                    (None, None) => {
                        self.stats.finished_without_finished_at += 1;
                        Until::FinishedUnknown
                    }
                }
            } else {
                deleted.map_or(Until::Open, Until::At)
            };
            for ip in &p.ips {
                self.stats.pod_intervals += 1;
                self.timelines.entry(*ip).or_default().push(Interval {
                    from,
                    until,
                    entity,
                });
            }
        }
        for s in &loaded.services {
            self.stats.services += 1;
            if s.cluster_ips.is_empty() {
                continue;
            }
            let picked: Vec<usize> = if s.selector.is_empty() {
                Vec::new()
            } else {
                (0..ws.len())
                    .filter(|&i| {
                        ws[i].namespace == s.namespace
                            && ws[i].label_variants.iter().any(|l| {
                                s.selector
                                    .iter()
                                    .all(|(k, v)| l.get(k).is_some_and(|x| x == v))
                            })
                    })
                    .collect()
            };
            let target = if let [one] = picked.as_slice() {
                self.stats.services_to_one_workload += 1;
                (ids[*one], How::ServiceWorkload)
            } else {
                let id = self.entity(Entity {
                    kind: EntityKind::Service,
                    key: format!("service:{}/{}", s.namespace, s.name),
                    namespace: Some(s.namespace.clone()),
                    labels: s.selector.clone(),
                    cidrs: Vec::new(),
                    members: picked.iter().map(|&i| ws[i].display_name()).collect(),
                });
                (id, How::Service)
            };
            for ip in &s.cluster_ips {
                self.services.insert(*ip, target);
            }
        }
        self.finish();
    }

    /// Adds hosts of a host inventory (their addresses and CIDRs hold at all times).
    pub fn add_hosts(&mut self, hosts: &[Host]) {
        for h in hosts {
            self.stats.hosts += 1;
            let id = self.entity(Entity {
                kind: EntityKind::Host,
                key: format!("host:{}", h.name),
                namespace: None,
                labels: h.labels.clone(),
                cidrs: Vec::new(),
                members: Vec::new(),
            });
            for n in &h.addresses {
                if let Some(prev) = self.hosts.insert(*n, id)
                    && prev != id
                {
                    self.warnings.push(format!(
                        "{}: {n} is also listed for host {}; the later entry wins",
                        h.origin,
                        self.entities[prev as usize].key.trim_start_matches("host:")
                    ));
                }
            }
        }
    }

    /// Adds an external group; several CIDRs may share a name. Longest prefix wins.
    pub fn add_external(&mut self, name: &str, net: IpNet) {
        let key = format!("external:{name}");
        let id = match self.find(&key) {
            Some(i) => i,
            None => {
                self.stats.external_groups += 1;
                self.entity(Entity {
                    kind: EntityKind::External,
                    key,
                    namespace: None,
                    labels: BTreeMap::new(),
                    cidrs: Vec::new(),
                    members: Vec::new(),
                })
            }
        };
        if id == self.internet && self.entities[id as usize].cidrs[0] == "public addresses" {
            self.entities[id as usize].cidrs.clear();
        }
        self.entities[id as usize].cidrs.push(net.to_string());
        self.externals.insert(net, id);
    }

    /// Sorts the timelines and settles finished pods without `finishedAt`.
    fn finish(&mut self) {
        let mut overlapping = 0;
        for list in self.timelines.values_mut() {
            // On equal starts a pod still running sorts last, so it wins the lookup.
            list.sort_by_key(|i| (i.from, i.until == Until::Open, i.entity));
            for k in 0..list.len() {
                if list[k].until == Until::FinishedUnknown {
                    let from = list[k].from;
                    let next = list[k + 1..]
                        .iter()
                        .map(|i| i.from)
                        .find(|f| f.is_some() && *f > from)
                        .flatten();
                    list[k].until = match (next, from) {
                        (Some(n), _) => Until::At(n),
                        (None, Some(f)) => Until::At(f),
                        (None, None) => Until::At(Timestamp::MIN),
                    };
                }
            }
            let overlaps = list.windows(2).any(|w| match w[0].until {
                Until::Open => true,
                Until::At(u) => w[1].from.is_none_or(|f| f < u),
                Until::FinishedUnknown => false,
            });
            overlapping += overlaps as usize;
        }
        self.stats.overlapping_addresses = overlapping;
        let mut spans = Spans::default();
        for (ip, list) in &self.timelines {
            let range = (spans.flat.len() as u32, list.len() as u32);
            spans.flat.extend(list.iter().map(|i| Span {
                from: i.from.unwrap_or(Timestamp::MIN),
                until: match i.until {
                    Until::At(u) => u,
                    // Settled above; kept as "holds at no time" should one remain.
                    Until::Open | Until::FinishedUnknown => Timestamp::MIN,
                },
                open: i.until == Until::Open,
                entity: i.entity,
            }));
            match ip {
                IpAddr::V4(a) => spans.v4.insert(a.to_bits(), range),
                other => spans.other.insert(*other, range),
            };
        }
        self.spans = spans;
    }

    /// The workload of a pod named by the record itself (Hubble), when the inventory has it.
    pub fn lookup_pod(&self, namespace: &str, pod: &str) -> Option<Resolved> {
        let entity = *self.pod_names.get(namespace)?.get(pod)?;
        Some(Resolved {
            entity,
            how: How::PodName,
        })
    }

    /// Who held `ip` at `time` (`None`: the record has no usable time; the inventory as it
    /// stands answers, i.e. pods that have not ended).
    pub fn lookup(&self, ip: IpAddr, time: Option<Timestamp>) -> Resolved {
        if let Some(list) = self.spans.get(ip) {
            // The latest-started interval holding the time.
            if let Some(i) = list.iter().rev().find(|i| i.holds(time)) {
                return Resolved {
                    entity: i.entity,
                    how: if time.is_some() {
                        How::PodAtTime
                    } else {
                        How::PodNow
                    },
                };
            }
        }
        self.lookup_untimed(ip)
    }

    /// [`Index::lookup`] of an IPv4 address at a time, with the times `[from, until)` over
    /// which the answer stays the same (a sub-range of them at least), for [`LookupCache`].
    fn lookup_v4_at(&self, ip: Ipv4Addr, t: Timestamp) -> (Resolved, Timestamp, Timestamp) {
        let Some(list) = self.spans.get(IpAddr::V4(ip)) else {
            // No pod ever held it: the answer does not depend on the time.
            return (
                self.lookup_untimed(IpAddr::V4(ip)),
                Timestamp::MIN,
                Timestamp::MAX,
            );
        };
        for (k, i) in list.iter().enumerate().rev() {
            if i.holds(Some(t)) {
                // It answers from its start until it ends or a later-started interval
                // begins (which might then hold the time and win).
                let mut until = if i.open { Timestamp::MAX } else { i.until };
                for later in &list[k + 1..] {
                    until = until.min(later.from);
                }
                let r = Resolved {
                    entity: i.entity,
                    how: How::PodAtTime,
                };
                return (r, i.from, until);
            }
        }
        // Between pods: kept for this instant only.
        (self.lookup_untimed(IpAddr::V4(ip)), t, t.saturating_add(1))
    }

    /// The answer when no pod interval holds the address: Services, hosts, external groups.
    fn lookup_untimed(&self, ip: IpAddr) -> Resolved {
        if let Some(&(entity, how)) = self.services.get(&ip) {
            return Resolved { entity, how };
        }
        if let Some((&entity, _)) = self.hosts.lookup(ip) {
            return Resolved {
                entity,
                how: How::Host,
            };
        }
        if let Some((&entity, _)) = self.externals.lookup(ip) {
            return Resolved {
                entity,
                how: How::External,
            };
        }
        if is_public(ip) {
            Resolved {
                entity: self.internet,
                how: How::External,
            }
        } else {
            Resolved {
                entity: self.unknown,
                how: How::Unknown,
            }
        }
    }
}

/// A small direct-mapped cache in front of [`Index::lookup`] for timed IPv4 lookups, for the
/// ingest's hot path: each slot keeps an address's last answer with the time range over which
/// it holds, so an address seen again (at a time in that range) skips the hash table and the
/// timeline. Its answers are exactly [`Index::lookup`]'s. Use one cache with one index only.
#[derive(Clone, Debug)]
pub struct LookupCache {
    slots: Box<[Slot]>,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    ip: u32,
    from: Timestamp,
    until: Timestamp,
    answer: Resolved,
}

impl Default for LookupCache {
    fn default() -> Self {
        // `from == until`: valid at no time.
        let empty = Slot {
            ip: 0,
            from: 0,
            until: 0,
            answer: Resolved {
                entity: 0,
                how: How::Unknown,
            },
        };
        LookupCache {
            slots: vec![empty; 1 << LookupCache::BITS].into_boxed_slice(),
        }
    }
}

impl LookupCache {
    /// log2 of the slots (8,192 of 32 bytes).
    const BITS: u32 = 13;

    /// [`Index::lookup`]`(ip, time)` of `index`, through the cache when it can.
    #[inline]
    pub fn lookup(&mut self, index: &Index, ip: IpAddr, time: Option<Timestamp>) -> Resolved {
        let (IpAddr::V4(a), Some(t)) = (ip, time) else {
            return index.lookup(ip, time);
        };
        let key = a.to_bits();
        let slot = (key.wrapping_mul(0x9e37_79b9) >> (32 - Self::BITS)) as usize;
        let Some(s) = self.slots.get_mut(slot) else {
            return index.lookup(ip, time);
        };
        if s.ip == key && s.from <= t && t < s.until {
            return s.answer;
        }
        let (answer, from, until) = index.lookup_v4_at(a, t);
        *s = Slot {
            ip: key,
            from,
            until,
            answer,
        };
        answer
    }
}

/// Whether an address counts as on the internet: not private, loopback, link-local, shared
/// (100.64/10), multicast, reserved or unspecified. Documentation ranges count as public
/// (examples use them for partners and the internet).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240
                || o[0] == 0)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}
