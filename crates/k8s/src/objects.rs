//! The parts of Kubernetes objects that matter to connectivity, as one permissive union type.
//!
//! One document is read once into [`Object`]: every kind Bulkhead reads shares these structs,
//! fields Bulkhead does not need are ignored, and a field of the wrong type is an error with the
//! document's line and column. Which fields must be present for which kind is checked when the
//! object is converted to the core model (`convert.rs`).

use serde::Deserialize;
use std::collections::BTreeMap;

/// Just enough of a document to tell what it is.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// A Kubernetes object or a list of objects.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Option<ObjectMeta>,
    #[serde(default)]
    pub spec: Option<Spec>,
    #[serde(default)]
    pub status: Option<PodStatus>,
    /// Items of a `List`, `PodList`, … (their `kind` may be missing: it comes from the list).
    #[serde(default)]
    pub items: Option<Vec<Object>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub owner_references: Option<Vec<OwnerReference>>,
    /// RFC 3339, as the API server writes it (parsed by the identity resolver, not here).
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub controller: Option<bool>,
}

/// `matchLabels` and `matchExpressions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// The union of the `spec` fields of every kind read: pods, workloads and policies.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    // Pod
    #[serde(default)]
    pub containers: Option<Vec<Container>>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`, still accepted by the API server.
    #[serde(default)]
    pub service_account: Option<String>,
    // Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController
    #[serde(default)]
    pub template: Option<PodTemplate>,
    // CronJob
    #[serde(default)]
    pub job_template: Option<JobTemplate>,
    // NetworkPolicy
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub policy_types: Option<Vec<String>>,
    // NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
    #[serde(default)]
    pub ingress: Option<Vec<PolicyRule>>,
    #[serde(default)]
    pub egress: Option<Vec<PolicyRule>>,
    // AdminNetworkPolicy, BaselineAdminNetworkPolicy
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub subject: Option<AdminSubject>,
    // ClusterNetworkPolicy (v1alpha2): `Admin` or `Baseline`.
    #[serde(default)]
    pub tier: Option<String>,
    // Service
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    /// A Service's `selector` (a plain label map); workload kinds have a `LabelSelector` here,
    /// so it is read loosely and only string values of a Service's map are used.
    #[serde(default)]
    pub selector: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: Option<ObjectMeta>,
    #[serde(default)]
    pub spec: Option<PodSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    #[serde(default)]
    pub spec: Option<JobSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(default)]
    pub template: Option<PodTemplate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Option<Vec<Container>>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`.
    #[serde(default)]
    pub service_account: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ports: Option<Vec<ContainerPort>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    /// Required by the Kubernetes API; a port without it is skipped with a warning.
    #[serde(default)]
    pub container_port: Option<i64>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodIp {
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub state: Option<ContainerState>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerState {
    #[serde(default)]
    pub terminated: Option<ContainerTerminated>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerTerminated {
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// A rule of any of the three policy kinds: NetworkPolicy rules use `from`/`to` with
/// `podSelector`/`namespaceSelector`/`ipBlock` peers and `protocol`/`port`/`endPort` ports; admin
/// rules add `name` and `action`, peers `namespaces`/`pods`/`nodes`/`networks`, and ports
/// `portNumber`/`namedPort`/`portRange`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub from: Option<Vec<PolicyPeer>>,
    #[serde(default)]
    pub to: Option<Vec<PolicyPeer>>,
    #[serde(default)]
    pub ports: Option<Vec<PolicyPort>>,
    /// ClusterNetworkPolicy (v1alpha2) rules' ports.
    #[serde(default)]
    pub protocols: Option<Vec<CnpProtocol>>,
}

/// A ClusterNetworkPolicy port condition: `tcp`/`udp`/`sctp` with a `destinationPort`, or a
/// `destinationNamedPort`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CnpProtocol {
    #[serde(default)]
    pub tcp: Option<CnpPorts>,
    #[serde(default)]
    pub udp: Option<CnpPorts>,
    #[serde(default)]
    pub sctp: Option<CnpPorts>,
    #[serde(default)]
    pub destination_named_port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CnpPorts {
    #[serde(default)]
    pub destination_port: Option<CnpPort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CnpPort {
    #[serde(default)]
    pub number: Option<i64>,
    #[serde(default)]
    pub range: Option<CnpRange>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CnpRange {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPeer {
    // NetworkPolicy
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
    // AdminNetworkPolicy / BaselineAdminNetworkPolicy
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    #[serde(default)]
    pub pods: Option<NamespacedPods>,
    #[serde(default)]
    pub nodes: Option<LabelSelector>,
    #[serde(default)]
    pub networks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPods {
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSubject {
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    #[serde(default)]
    pub pods: Option<NamespacedPods>,
}

/// An integer or a string (a port number or a port name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    // NetworkPolicy
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<IntOrString>,
    #[serde(default)]
    pub end_port: Option<i64>,
    // AdminNetworkPolicy / BaselineAdminNetworkPolicy
    #[serde(default)]
    pub port_number: Option<AdminPortNumber>,
    #[serde(default)]
    pub named_port: Option<String>,
    #[serde(default)]
    pub port_range: Option<AdminPortRange>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPortNumber {
    #[serde(default)]
    pub protocol: Option<String>,
    pub port: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPortRange {
    #[serde(default)]
    pub protocol: Option<String>,
    pub start: i64,
    pub end: i64,
}
