//! Translation of loaded Kubernetes objects into the core [`Cluster`].

use crate::load::{LoadError, Located, Manifests};
use crate::objects::{
    self, IntOrString, LabelSelector, NamespacedPods, Object, PolicyPeer, PolicyPort, PolicyRule,
};
use bulkhead_core::conn::{ConnSet, MAX_PORT, MIN_PORT, Protocol};
use bulkhead_core::model::{
    Action, Cluster, Layer, NamedPort, NsMatch, Origin, Peer, PodMatch, Policy, PortMatch, Rule,
    Workload,
};
use bulkhead_core::{IpSet, Labels, RangeSet, Requirement, Selector};
use std::collections::BTreeMap;

/// The cluster built from manifests, with what was noticed on the way.
#[derive(Debug, Default)]
pub struct Loaded {
    pub cluster: Cluster,
    pub warnings: Vec<String>,
    pub errors: Vec<LoadError>,
    /// Every pod read, with its addresses and lifetime, for attributing addresses over time.
    pub pods: Vec<PodRecord>,
    /// Every Service read, with its cluster IPs and selector.
    pub services: Vec<ServiceRecord>,
}

/// One pod as the identity resolver needs it. Times are the RFC 3339 strings of the input
/// (this crate does not interpret them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRecord {
    /// Index of the pod's workload in `cluster.workloads`.
    pub workload: usize,
    pub namespace: String,
    pub name: String,
    /// `status.podIPs[].ip`, else `status.podIP` (unparsable addresses are left out).
    pub ips: Vec<std::net::IpAddr>,
    /// `metadata.creationTimestamp`.
    pub created: Option<String>,
    /// `status.startTime`.
    pub started: Option<String>,
    /// `metadata.deletionTimestamp`.
    pub deleted: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `status.containerStatuses[].state.terminated.finishedAt`, in input order.
    pub finished: Vec<String>,
    pub origin: Origin,
}

/// One Service: its cluster IPs (headless `None` left out) and its selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<std::net::IpAddr>,
    /// `spec.selector`; empty when the Service has none (its endpoints are managed by hand).
    pub selector: BTreeMap<String, String>,
    pub origin: Origin,
}

impl Loaded {
    /// Reads paths and builds the cluster. Each object is converted as soon as it is read and
    /// then dropped (a large JSON list is read item by item), so memory holds what the model
    /// needs, not the input.
    pub fn from_paths<P: AsRef<std::path::Path>>(paths: &[P]) -> Self {
        let builder = std::rc::Rc::new(std::cell::RefCell::new(Builder::default()));
        let sink = builder.clone();
        let m = Manifests::load_paths_into(paths, move |o| sink.borrow_mut().add(&o));
        let b = std::rc::Rc::try_unwrap(builder)
            .map(std::cell::RefCell::into_inner)
            .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()));
        b.finish(m)
    }
}

const DEFAULT_NAMESPACE: &str = "default";

/// A pod's labels, for the check that pods of one workload are not told apart.
struct PodLabels {
    workload: usize,
    pod: String,
    /// Index into the workload's `label_variants`.
    variant: usize,
}

/// Builds [`Loaded`] one object at a time.
#[derive(Default)]
struct Builder {
    /// Without the loader's warnings and errors (they come first, added by `finish`).
    out: Loaded,
    index: BTreeMap<(String, String, String), usize>,
    pods: Vec<PodLabels>,
    banps: usize,
}

/// Builds the cluster from loaded manifests. Problems in single objects become errors with
/// their location; everything else still loads.
pub fn build(mut m: Manifests) -> Loaded {
    let mut b = Builder::default();
    for obj in std::mem::take(&mut m.objects) {
        b.add(&obj);
    }
    b.finish(m)
}

impl Builder {
    fn add(&mut self, obj: &Located) {
        let out = &mut self.out;
        let r = match obj.kind.as_str() {
            "Namespace" => namespace(out, obj),
            "Pod" => pod(out, obj, &mut self.index, &mut self.pods),
            "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob" => workload_manifest(out, obj, &mut self.index),
            "NetworkPolicy" => network_policy(obj).map(|p| out.cluster.policies.push(p)),
            "AdminNetworkPolicy" => admin_policy(obj, Layer::Admin, &mut out.warnings)
                .map(|p| out.cluster.policies.push(p)),
            "BaselineAdminNetworkPolicy" => {
                self.banps += 1;
                if self.banps > 1 {
                    Err(
                        "only one BaselineAdminNetworkPolicy may exist (named \"default\")"
                            .to_string(),
                    )
                } else {
                    admin_policy(obj, Layer::Baseline, &mut out.warnings)
                        .map(|p| out.cluster.policies.push(p))
                }
            }
            "ClusterNetworkPolicy" => {
                cluster_network_policy(obj, &mut out.warnings).map(|p| out.cluster.policies.push(p))
            }
            "Service" => service(out, obj),
            _ => Ok(()), // Other supported kinds carry nothing for connectivity yet.
        };
        if let Err(reason) = r {
            out.errors.push(LoadError {
                file: obj.file.clone(),
                line: obj.line,
                column: 0,
                reason: match obj.item {
                    Some(i) => format!(
                        "items[{i}]: {} {}: {reason}",
                        obj.kind,
                        object_name(&obj.object)
                    ),
                    None => format!("{} {}: {reason}", obj.kind, object_name(&obj.object)),
                },
            });
        }
    }

    fn finish(self, m: Manifests) -> Loaded {
        let Builder { mut out, pods, .. } = self;
        let mut warnings = m.warnings;
        warnings.append(&mut out.warnings);
        out.warnings = warnings;
        let mut errors = m.errors;
        errors.append(&mut out.errors);
        out.errors = errors;
        // Every namespace referenced exists and carries kubernetes.io/metadata.name.
        let referenced: Vec<String> = out
            .cluster
            .workloads
            .iter()
            .map(|w| w.namespace.clone())
            .chain(
                out.cluster
                    .policies
                    .iter()
                    .filter_map(|p| p.namespace.clone()),
            )
            .collect();
        for ns in referenced {
            out.cluster.ensure_namespace(&ns);
        }
        warn_equal_priorities(&mut out);
        check_label_gaps(&mut out, &pods);
        out
    }
}

fn object_name(o: &Object) -> String {
    let md = o.metadata.as_ref();
    match (
        md.and_then(|m| m.namespace.as_deref()),
        md.and_then(|m| m.name.as_deref()),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "(unnamed)".to_string(),
    }
}

fn name_of(o: &Object) -> Result<String, String> {
    o.metadata
        .as_ref()
        .and_then(|m| m.name.clone().or_else(|| m.generate_name.clone()))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| "metadata.name is missing".to_string())
}

fn namespace_of(o: &Object) -> String {
    o.metadata
        .as_ref()
        .and_then(|m| m.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn origin(obj: &Located) -> Origin {
    Origin {
        file: obj.file.clone(),
        line: obj.line,
    }
}

fn namespace(out: &mut Loaded, obj: &Located) -> Result<(), String> {
    let name = name_of(&obj.object)?;
    let labels = obj
        .object
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if out.cluster.namespaces.contains_key(&name) {
        out.warnings.push(format!(
            "{}: namespace {name} is defined more than once; labels merged",
            obj.location()
        ));
    }
    out.cluster.ensure_namespace(&name).extend(labels);
    out.cluster.ensure_namespace(&name);
    Ok(())
}

fn named_ports(
    containers: Option<&Vec<objects::Container>>,
    obj: &Located,
    warnings: &mut Vec<String>,
) -> Result<Vec<NamedPort>, String> {
    let mut out = Vec::new();
    for (ci, c) in containers.into_iter().flatten().enumerate() {
        for (pi, p) in c.ports.iter().flatten().enumerate() {
            let Some(n) = p.container_port else {
                warnings.push(format!(
                    "{}: {} {}: containers[{ci}].ports[{pi}] has no containerPort (field names are case-sensitive); port ignored",
                    obj.location(),
                    obj.kind,
                    object_name(&obj.object)
                ));
                continue;
            };
            let Some(name) = p.name.clone().filter(|n| !n.is_empty()) else {
                continue;
            };
            let port = port_number(n, "containerPort")?;
            let protocol = protocol(p.protocol.as_deref())?;
            out.push(NamedPort {
                name,
                protocol,
                port,
            });
        }
    }
    Ok(out)
}

/// What a pod or a pod template says about its workload.
struct PodFacts {
    labels: Labels,
    ports: Vec<NamedPort>,
    service_account: Option<String>,
}

/// Adds a member to the workload `(ns, name, kind)`, creating it if needed; returns the
/// workload's index and that of `labels` among its `label_variants`.
fn upsert_workload(
    out: &mut Loaded,
    index: &mut BTreeMap<(String, String, String), usize>,
    key: (String, String, String),
    member: String,
    facts: PodFacts,
    origin: Origin,
) -> (usize, usize) {
    let PodFacts {
        labels,
        ports,
        service_account,
    } = facts;
    if let Some(&i) = index.get(&key) {
        let w = &mut out.cluster.workloads[i];
        w.members.push(member);
        let variant = match w.label_variants.iter().position(|l| *l == labels) {
            Some(v) => v,
            None => {
                w.label_variants.push(labels);
                w.label_variants.len() - 1
            }
        };
        for p in ports {
            if w.resolve_named_port(&p.name, Some(p.protocol)).is_none() {
                w.named_ports.push(p);
            }
        }
        if w.service_account.is_none() {
            w.service_account = service_account;
        }
        return (i, variant);
    }
    let (namespace, name, kind) = key.clone();
    out.cluster.workloads.push(Workload {
        namespace,
        name,
        kind,
        labels: labels.clone(),
        label_variants: vec![labels],
        named_ports: ports,
        members: vec![member],
        addresses: Vec::new(),
        origin,
        service_account,
    });
    index.insert(key, out.cluster.workloads.len() - 1);
    (out.cluster.workloads.len() - 1, 0)
}

fn pod(
    out: &mut Loaded,
    obj: &Located,
    index: &mut BTreeMap<(String, String, String), usize>,
    pods: &mut Vec<PodLabels>,
) -> Result<(), String> {
    let o = &obj.object;
    let name = name_of(o)?;
    let ns = namespace_of(o);
    let md = o.metadata.as_ref();
    let labels = md.and_then(|m| m.labels.clone()).unwrap_or_default();
    // The controlling owner as written in ownerReferences; a Node "owner" (static pods) is not
    // a workload, and an owner reference without a kind prints as a Pod.
    let owner = md
        .and_then(|m| m.owner_references.as_ref())
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.controller == Some(true) && r.kind.as_deref() != Some("Node"))
        })
        .and_then(|r| {
            r.name
                .clone()
                .filter(|n| !n.is_empty())
                .map(|n| (n, r.kind.clone()))
        });
    let (wname, wkind) = match owner {
        Some((n, k)) => (
            n,
            k.filter(|k| !k.is_empty())
                .unwrap_or_else(|| "Pod".to_string()),
        ),
        None => (name.clone(), "Pod".to_string()),
    };
    let ports = named_ports(
        o.spec.as_ref().and_then(|s| s.containers.as_ref()),
        obj,
        &mut out.warnings,
    )?;
    let (i, variant) = upsert_workload(
        out,
        index,
        (ns, wname, wkind),
        name.clone(),
        PodFacts {
            labels,
            ports,
            service_account: o.spec.as_ref().and_then(|s| {
                nonempty(&s.service_account_name).or_else(|| nonempty(&s.service_account))
            }),
        },
        origin(obj),
    );
    let status = o.status.as_ref();
    if let Some(ip) = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|s| s.parse().ok())
    {
        out.cluster.workloads[i].addresses.push(ip);
    }
    let mut ips: Vec<std::net::IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|v| {
            v.iter()
                .filter_map(|p| p.ip.as_deref().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|s| s.parse().ok())
    {
        ips.push(ip);
    }
    out.pods.push(PodRecord {
        workload: i,
        namespace: namespace_of(o),
        name: name.clone(),
        ips,
        created: md.and_then(|m| m.creation_timestamp.clone()),
        started: status.and_then(|s| s.start_time.clone()),
        deleted: md.and_then(|m| m.deletion_timestamp.clone()),
        phase: status.and_then(|s| s.phase.clone()),
        finished: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                    .collect()
            })
            .unwrap_or_default(),
        origin: origin(obj),
    });
    pods.push(PodLabels {
        workload: i,
        pod: name,
        variant,
    });
    Ok(())
}

fn service(out: &mut Loaded, obj: &Located) -> Result<(), String> {
    let o = &obj.object;
    let name = name_of(o)?;
    let spec = o.spec.as_ref();
    let mut cluster_ips: Vec<std::net::IpAddr> = Vec::new();
    let listed = spec
        .and_then(|s| s.cluster_ips.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(spec.and_then(|s| s.cluster_ip.clone()));
    for ip in listed {
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ip = ip
            .parse()
            .map_err(|_| format!("spec.clusterIP: not an IP address: {ip:?}"))?;
        if !cluster_ips.contains(&ip) {
            cluster_ips.push(ip);
        }
    }
    let selector = match spec.and_then(|s| s.selector.as_ref()) {
        None | Some(serde_json::Value::Null) => BTreeMap::new(),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
                serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(format!("spec.selector.{k}: expected a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("spec.selector: expected a map of labels".into()),
    };
    out.services.push(ServiceRecord {
        namespace: namespace_of(o),
        name,
        cluster_ips,
        selector,
        origin: origin(obj),
    });
    Ok(())
}

fn workload_manifest(
    out: &mut Loaded,
    obj: &Located,
    index: &mut BTreeMap<(String, String, String), usize>,
) -> Result<(), String> {
    let o = &obj.object;
    let name = name_of(o)?;
    let ns = namespace_of(o);
    let spec = o.spec.as_ref().ok_or("spec is missing")?;
    let template = if obj.kind == "CronJob" {
        spec.job_template
            .as_ref()
            .and_then(|j| j.spec.as_ref())
            .and_then(|s| s.template.as_ref())
            .ok_or("spec.jobTemplate.spec.template is missing")?
    } else {
        spec.template.as_ref().ok_or("spec.template is missing")?
    };
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let ports = named_ports(
        template.spec.as_ref().and_then(|s| s.containers.as_ref()),
        obj,
        &mut out.warnings,
    )?;
    upsert_workload(
        out,
        index,
        (ns, name.clone(), obj.kind.clone()),
        name,
        PodFacts {
            labels,
            ports,
            service_account: template.spec.as_ref().and_then(|s| {
                nonempty(&s.service_account_name).or_else(|| nonempty(&s.service_account))
            }),
        },
        origin(obj),
    );
    Ok(())
}

/// A written, non-empty string field.
fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

fn selector(s: &LabelSelector) -> Result<Selector, String> {
    let exprs = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let op = e.operator.parse().map_err(|err| format!("{err}"))?;
            Requirement::new(e.key.clone(), op, e.values.clone().unwrap_or_default())
                .map_err(|err| err.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Selector::new(s.match_labels.clone().unwrap_or_default(), exprs).map_err(|e| e.to_string())
}

fn opt_selector(s: Option<&LabelSelector>) -> Result<Selector, String> {
    s.map(selector).transpose().map(Option::unwrap_or_default)
}

/// A protocol as the Kubernetes API spells it (upper case; TCP when absent).
fn protocol(p: Option<&str>) -> Result<Protocol, String> {
    match p {
        None | Some("") => Ok(Protocol::Tcp),
        Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(s) => Err(format!(
            "unknown protocol {s:?} (Kubernetes accepts TCP, UDP or SCTP, in upper case)"
        )),
    }
}

fn port_number(n: i64, what: &str) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| (MIN_PORT..=MAX_PORT).contains(p))
        .ok_or_else(|| format!("{what} {n} is out of range 1-65535"))
}

fn cidr_set(cidr: &str) -> Result<IpSet, String> {
    IpSet::cidr(cidr).map_err(|e| e.to_string())
}

fn network_policy(obj: &Located) -> Result<Policy, String> {
    let o = &obj.object;
    let name = name_of(o)?;
    let ns = namespace_of(o);
    let spec = o.spec.as_ref().ok_or("spec is missing")?;
    let subject = PodMatch {
        namespaces: NsMatch::Exact(ns.clone()),
        pods: opt_selector(spec.pod_selector.as_ref())?,
    };
    let (mut ingress_on, mut egress_on) =
        (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty()));
    if let Some(types) = spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        ingress_on = false;
        egress_on = false;
        for t in types {
            match t.as_str() {
                "Ingress" => ingress_on = true,
                "Egress" => egress_on = true,
                other => {
                    return Err(format!(
                        "spec.policyTypes: unknown type {other:?} (expected Ingress or Egress)"
                    ));
                }
            }
        }
    }
    let rules = |dir: &str, rules: Option<&Vec<PolicyRule>>| -> Result<Vec<Rule>, String> {
        rules
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                let at = format!("spec.{dir}[{i}]");
                let peers_in = if dir == "ingress" {
                    r.from.as_ref()
                } else {
                    r.to.as_ref()
                };
                let peers = match peers_in.filter(|p| !p.is_empty()) {
                    None => vec![Peer::Any],
                    Some(ps) => ps
                        .iter()
                        .enumerate()
                        .map(|(j, p)| {
                            np_peer(p, &ns).map_err(|e| {
                                format!(
                                    "{at}.{}[{j}]: {e}",
                                    if dir == "ingress" { "from" } else { "to" }
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                };
                let ports = match r.ports.as_ref().filter(|p| !p.is_empty()) {
                    None => None,
                    Some(ps) => Some(
                        ps.iter()
                            .enumerate()
                            .map(|(j, p)| np_port(p).map_err(|e| format!("{at}.ports[{j}]: {e}")))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                Ok(Rule {
                    name: format!("{dir}[{i}]"),
                    action: Action::Allow,
                    peers,
                    ports,
                })
            })
            .collect()
    };
    let ingress = if ingress_on {
        Some(rules("ingress", spec.ingress.as_ref())?)
    } else {
        None
    };
    let egress = if egress_on {
        Some(rules("egress", spec.egress.as_ref())?)
    } else {
        None
    };
    Ok(Policy {
        kind: "NetworkPolicy".to_string(),
        namespace: Some(ns),
        name,
        layer: Layer::Namespaced,
        priority: 0,
        subject,
        ingress,
        egress,
        origin: origin(obj),
    })
}

fn np_peer(p: &PolicyPeer, ns: &str) -> Result<Peer, String> {
    match (&p.ip_block, &p.pod_selector, &p.namespace_selector) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("ipBlock cannot be combined with podSelector or namespaceSelector".to_string())
        }
        (Some(b), None, None) => {
            let mut set = cidr_set(&b.cidr).map_err(|e| format!("ipBlock.cidr: {e}"))?;
            for ex in b.except.iter().flatten() {
                set = set.subtract(&cidr_set(ex).map_err(|e| format!("ipBlock.except: {e}"))?);
            }
            Ok(Peer::Ips(set))
        }
        (None, None, None) => {
            Err("empty peer: give podSelector, namespaceSelector or ipBlock".to_string())
        }
        (None, pods, None) => Ok(Peer::Pods(PodMatch {
            namespaces: NsMatch::Exact(ns.to_string()),
            pods: opt_selector(pods.as_ref())?,
        })),
        (None, pods, Some(nss)) => Ok(Peer::Pods(PodMatch {
            namespaces: NsMatch::Selector(selector(nss)?),
            pods: opt_selector(pods.as_ref())?,
        })),
    }
}

fn np_port(p: &PolicyPort) -> Result<PortMatch, String> {
    let proto = protocol(p.protocol.as_deref())?;
    match (&p.port, p.end_port) {
        (None, Some(_)) => Err("endPort needs port".to_string()),
        (None, None) => Ok(PortMatch::Conns(ConnSet::protocol(proto))),
        (Some(IntOrString::Int(n)), end) => {
            let start = port_number(*n, "port")?;
            let end = match end {
                Some(e) => port_number(e, "endPort")?,
                None => start,
            };
            if end < start {
                return Err(format!("endPort {end} is below port {start}"));
            }
            Ok(PortMatch::Conns(ConnSet::ports(
                proto,
                RangeSet::range(start, end),
            )))
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            Err("endPort cannot be used with a named port".to_string())
        }
        (Some(IntOrString::String(name)), None) => {
            if let Ok(n) = name.parse::<i64>() {
                // Kubernetes' IntOrString holds numbers written as strings as strings; a port
                // name must contain a letter, so read it as the number the author meant.
                let port = port_number(n, "port")?;
                return Ok(PortMatch::Conns(ConnSet::single(proto, port)));
            }
            Ok(PortMatch::Named {
                protocol: Some(proto),
                name: name.clone(),
            })
        }
    }
}

fn pods_match(p: &NamespacedPods) -> Result<PodMatch, String> {
    Ok(PodMatch {
        namespaces: NsMatch::Selector(opt_selector(p.namespace_selector.as_ref())?),
        pods: opt_selector(p.pod_selector.as_ref())?,
    })
}

/// A ClusterNetworkPolicy (`policy.networking.k8s.io/v1alpha2`): tier `Admin` reads as an
/// AdminNetworkPolicy (`Accept`/`Deny`/`Pass`), tier `Baseline` as a BaselineAdminNetworkPolicy
/// (`Accept`/`Deny`; `Pass` hands the connection to the default allow, i.e. allows it).
fn cluster_network_policy(obj: &Located, warnings: &mut Vec<String>) -> Result<Policy, String> {
    let spec = obj.object.spec.as_ref().ok_or("spec is missing")?;
    let layer = match spec.tier.as_deref() {
        Some("Admin") => Layer::Admin,
        Some("Baseline") => Layer::Baseline,
        Some(t) => return Err(format!("spec.tier: {t:?} is not Admin or Baseline")),
        None => return Err("spec.tier is missing".to_string()),
    };
    admin_policy_of(obj, layer, true, warnings)
}

fn admin_policy(obj: &Located, layer: Layer, warnings: &mut Vec<String>) -> Result<Policy, String> {
    admin_policy_of(obj, layer, false, warnings)
}

fn admin_policy_of(
    obj: &Located,
    layer: Layer,
    cnp: bool,
    warnings: &mut Vec<String>,
) -> Result<Policy, String> {
    let o = &obj.object;
    let name = name_of(o)?;
    let kind = obj.kind.clone();
    if layer == Layer::Baseline && !cnp && name != "default" {
        return Err("a BaselineAdminNetworkPolicy must be named \"default\"".to_string());
    }
    let spec = o.spec.as_ref().ok_or("spec is missing")?;
    let priority = match (layer, spec.priority) {
        (Layer::Admin, Some(p)) if (0..=1000).contains(&p) => p as i32,
        (_, Some(p)) if cnp && (0..=1000).contains(&p) => p as i32,
        (Layer::Admin, Some(p)) => return Err(format!("spec.priority {p} is out of range 0-1000")),
        (_, Some(p)) if cnp => return Err(format!("spec.priority {p} is out of range 0-1000")),
        (Layer::Admin, None) => return Err("spec.priority is missing".to_string()),
        (_, None) if cnp => return Err("spec.priority is missing".to_string()),
        _ => 0,
    };
    let subject = match spec.subject.as_ref() {
        None => return Err("spec.subject is missing".to_string()),
        Some(s) => match (&s.namespaces, &s.pods) {
            (Some(n), None) => PodMatch {
                namespaces: NsMatch::Selector(selector(n)?),
                pods: Selector::everything(),
            },
            (None, Some(p)) => pods_match(p).map_err(|e| format!("spec.subject.pods: {e}"))?,
            _ => return Err("spec.subject needs exactly one of namespaces or pods".to_string()),
        },
    };
    let mut rules = |dir: &str,
                     list: Option<&Vec<PolicyRule>>|
     -> Result<Option<Vec<Rule>>, String> {
        let Some(list) = list.filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let at = format!("spec.{dir}[{i}]");
            let action = match r.action.as_deref() {
                Some("Allow") if !cnp => Action::Allow,
                Some("Accept") if cnp => Action::Allow,
                Some("Deny") => Action::Deny,
                Some("Pass") if layer == Layer::Admin => Action::Pass,
                // Baseline tier: the next tier is the default allow.
                Some("Pass") if cnp => Action::Allow,
                Some(a) => {
                    return Err(format!(
                        "{at}.action: {a:?} is not valid here (expected {})",
                        match (cnp, layer) {
                            (true, _) => "Accept, Deny or Pass",
                            (false, Layer::Admin) => "Allow, Deny or Pass",
                            _ => "Allow or Deny",
                        }
                    ));
                }
                None => return Err(format!("{at}.action is missing")),
            };
            let (field, peers_in) = if dir == "ingress" {
                ("from", r.from.as_ref())
            } else {
                ("to", r.to.as_ref())
            };
            let peers_in = peers_in
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("{at}.{field} must list at least one peer"))?;
            let mut peers = Vec::new();
            for (j, p) in peers_in.iter().enumerate() {
                let pat = format!("{at}.{field}[{j}]");
                let set = [
                    p.namespaces.is_some(),
                    p.pods.is_some(),
                    p.nodes.is_some(),
                    p.networks.is_some(),
                ];
                if set.iter().filter(|b| **b).count() != 1 {
                    return Err(format!(
                        "{pat}: give exactly one of namespaces, pods{}",
                        if dir == "egress" {
                            ", nodes or networks"
                        } else {
                            ""
                        }
                    ));
                }
                if let Some(n) = &p.namespaces {
                    peers.push(Peer::Pods(PodMatch {
                        namespaces: NsMatch::Selector(selector(n)?),
                        pods: Selector::everything(),
                    }));
                } else if let Some(pm) = &p.pods {
                    peers.push(Peer::Pods(
                        pods_match(pm).map_err(|e| format!("{pat}.pods: {e}"))?,
                    ));
                } else if p.nodes.is_some() {
                    if dir == "ingress" {
                        return Err(format!(
                            "{pat}: nodes peers are only allowed in egress rules"
                        ));
                    }
                    warnings.push(format!("{}: {kind} {name}: {pat}: nodes peers are not modelled; this peer matches nothing", obj.location()));
                } else if let Some(nets) = &p.networks {
                    if dir == "ingress" {
                        return Err(format!(
                            "{pat}: networks peers are only allowed in egress rules"
                        ));
                    }
                    let mut set = IpSet::empty();
                    for n in nets {
                        set = set.union(&cidr_set(n).map_err(|e| format!("{pat}.networks: {e}"))?);
                    }
                    peers.push(Peer::Ips(set));
                }
            }
            let ports = match (&r.ports, &r.protocols) {
                (Some(_), _) if cnp => {
                    return Err(format!(
                        "{at}.ports: a ClusterNetworkPolicy rule lists protocols"
                    ));
                }
                (_, Some(_)) if !cnp => {
                    return Err(format!(
                        "{at}.protocols: only ClusterNetworkPolicy rules list protocols"
                    ));
                }
                (None, None) => None,
                (Some(ps), None) => Some(
                    ps.iter()
                        .enumerate()
                        .map(|(j, p)| admin_port(p).map_err(|e| format!("{at}.ports[{j}]: {e}")))
                        .collect::<Result<_, _>>()?,
                ),
                (_, Some(ps)) => Some(
                    ps.iter()
                        .enumerate()
                        .map(|(j, p)| cnp_port(p).map_err(|e| format!("{at}.protocols[{j}]: {e}")))
                        .collect::<Result<_, _>>()?,
                ),
            };
            let rule_name = r
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{dir}[{i}]"));
            out.push(Rule {
                name: rule_name,
                action,
                peers,
                ports,
            });
        }
        Ok(Some(out))
    };
    let ingress = rules("ingress", spec.ingress.as_ref())?;
    let egress = rules("egress", spec.egress.as_ref())?;
    Ok(Policy {
        kind,
        namespace: None,
        name,
        layer,
        priority,
        subject,
        ingress,
        egress,
        origin: origin(obj),
    })
}

fn cnp_port(p: &objects::CnpProtocol) -> Result<PortMatch, String> {
    let given = [
        p.tcp.as_ref().map(|x| (Protocol::Tcp, x)),
        p.udp.as_ref().map(|x| (Protocol::Udp, x)),
        p.sctp.as_ref().map(|x| (Protocol::Sctp, x)),
    ];
    let protos: Vec<(Protocol, &objects::CnpPorts)> = given.into_iter().flatten().collect();
    match (protos.as_slice(), &p.destination_named_port) {
        ([], Some(name)) => Ok(PortMatch::Named {
            protocol: None,
            name: name.clone(),
        }),
        ([(proto, ports)], None) => match &ports.destination_port {
            None => Ok(PortMatch::Conns(ConnSet::protocol(*proto))),
            Some(dp) => match (dp.number, &dp.range) {
                (Some(n), None) => Ok(PortMatch::Conns(ConnSet::single(
                    *proto,
                    port_number(n, "destinationPort.number")?,
                ))),
                (None, Some(r)) => {
                    let start = port_number(r.start, "destinationPort.range.start")?;
                    let end = port_number(r.end, "destinationPort.range.end")?;
                    if end <= start {
                        return Err(format!(
                            "destinationPort.range end {end} must be above start {start}"
                        ));
                    }
                    Ok(PortMatch::Conns(ConnSet::ports(
                        *proto,
                        RangeSet::range(start, end),
                    )))
                }
                _ => Err("destinationPort: give exactly one of number or range".to_string()),
            },
        },
        _ => Err("give exactly one of tcp, udp, sctp or destinationNamedPort".to_string()),
    }
}

fn admin_port(p: &PolicyPort) -> Result<PortMatch, String> {
    match (&p.port_number, &p.named_port, &p.port_range) {
        (Some(pn), None, None) => {
            let port = port_number(pn.port, "portNumber.port")?;
            Ok(PortMatch::Conns(ConnSet::single(
                protocol(pn.protocol.as_deref())?,
                port,
            )))
        }
        (None, Some(name), None) => Ok(PortMatch::Named {
            protocol: None,
            name: name.clone(),
        }),
        (None, None, Some(r)) => {
            let start = port_number(r.start, "portRange.start")?;
            let end = port_number(r.end, "portRange.end")?;
            if end < start {
                return Err(format!("portRange end {end} is below start {start}"));
            }
            Ok(PortMatch::Conns(ConnSet::ports(
                protocol(r.protocol.as_deref())?,
                RangeSet::range(start, end),
            )))
        }
        _ => Err("give exactly one of portNumber, namedPort or portRange".to_string()),
    }
}

fn warn_equal_priorities(out: &mut Loaded) {
    let mut by_prio: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for p in out
        .cluster
        .policies
        .iter()
        .filter(|p| p.layer == Layer::Admin)
    {
        by_prio.entry(p.priority).or_default().push(&p.name);
    }
    for (prio, names) in by_prio.into_iter().filter(|(_, n)| n.len() > 1) {
        out.warnings.push(format!(
            "AdminNetworkPolicies {} share priority {prio}; Kubernetes leaves their order undefined, Bulkhead orders them by name",
            names.join(", ")
        ));
    }
}

/// Pods of one workload are analysed as one: when their labels differ and a policy's selector
/// tells them apart, the workload would be half allowed, so that is an error naming both pods.
fn check_label_gaps(out: &mut Loaded, pods: &[PodLabels]) {
    let mut first: BTreeMap<usize, &PodLabels> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    for p in pods {
        if reported.contains(&p.workload) {
            continue;
        }
        let Some(f) = first.get(&p.workload).copied() else {
            first.insert(p.workload, p);
            continue;
        };
        // Variants are distinct label sets: the same index is the same labels.
        if f.variant == p.variant {
            continue;
        }
        let w = &out.cluster.workloads[p.workload];
        let (fl, pl) = (&w.label_variants[f.variant], &w.label_variants[p.variant]);
        let nsl = out.cluster.ns_labels(&w.namespace);
        let mut found = None;
        'policies: for pol in &out.cluster.policies {
            let matches = std::iter::once(&pol.subject).chain(
                pol.ingress
                    .iter()
                    .chain(pol.egress.iter())
                    .flatten()
                    .flat_map(|r| r.peers.iter())
                    .filter_map(|peer| match peer {
                        Peer::Pods(m) => Some(m),
                        _ => None,
                    }),
            );
            for m in matches {
                if m.matches_labels(&w.namespace, nsl, fl)
                    != m.matches_labels(&w.namespace, nsl, pl)
                {
                    found = Some((pol, m.clone()));
                    break 'policies;
                }
            }
        }
        if let Some((pol, m)) = found {
            let keys: std::collections::BTreeSet<&String> = fl.keys().chain(pl.keys()).collect();
            let diff: Vec<String> = keys
                .into_iter()
                .filter(|k| fl.get(*k) != pl.get(*k))
                .map(|k| format!("{k}: {:?} vs {:?}", fl.get(k), pl.get(k)))
                .collect();
            out.errors.push(LoadError {
                file: pol.origin.file.clone(),
                line: pol.origin.line,
                column: 0,
                reason: format!(
                    "workload {}: pods {} and {} have different labels ({}), and {} {} tells them apart ({m}); one workload cannot be half allowed: give its pods the same labels",
                    w.display_name(),
                    f.pod,
                    p.pod,
                    diff.join(", "),
                    pol.kind,
                    pol.display_name()
                ),
            });
            // One error per workload is enough.
            reported.insert(p.workload);
        }
    }
}
