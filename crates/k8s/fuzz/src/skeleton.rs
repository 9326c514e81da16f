//! A skeleton of Kubernetes objects that fuzzer bytes are mapped onto, its rendering as block
//! YAML, flow YAML and JSON, and the checks of one structured input.
//!
//! Every field of the objects Bulkhead reads is there, optional where Kubernetes makes it so.
//! Strings and numbers are [`Text`] and [`Num`]: nearly always a word from the field's own small
//! vocabulary (ordinary values first, then edge cases: out-of-range ports, bad CIDRs, unknown
//! operators and protocols), now and then any string or integer. So most inputs parse, and the
//! fuzzer spends its time in the conversion to the core model.
//!
//! The checks, besides the invariants of every load ([`crate::check`]):
//! * the three renderings load alike: the same number of objects, the same cluster (but for
//!   line numbers), the same conversion errors and as many warnings; JSON is read by a JSON
//!   parser and YAML by a YAML parser, and a manifest must not mean something else in the other
//!   spelling;
//! * when every value came from the vocabularies, the loader reads exactly the objects the
//!   skeleton holds, and its only errors are list items whose kind cannot be told.

use crate::check::{self, Outcome};
use arbitrary::{Arbitrary, Result, Unstructured};
use bulkhead_k8s::load::SUPPORTED_KINDS;

// ---------------------------------------------------------------------------------------------
// Vocabularies: ordinary values first (exhausted input reads as zeros, so picks the first).
// ---------------------------------------------------------------------------------------------

pub const NAMES: &[&str] = &[
    "web",
    "api",
    "db",
    "default",
    "a",
    "web-7d9f",
    "",
    "x.y-z",
    "Web",
    "kube-system",
];
pub const BANP_NAMES: &[&str] = &["default", "other", ""];
pub const NAMESPACES: &[&str] = &["shop", "default", "monitoring", "", "kube-system"];
pub const LABEL_KEYS: &[&str] = &[
    "app",
    "tier",
    "team",
    "kubernetes.io/metadata.name",
    "role",
    "example.com/owner",
    "",
];
pub const LABEL_VALUES: &[&str] = &[
    "web",
    "api",
    "db",
    "red",
    "shop",
    "monitoring",
    "default",
    "frontend",
    "",
];
pub const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist", "in", "Equals", ""];
pub const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP", "", "tcp", "ICMP"];
pub const PORTS: &[i64] = &[
    80,
    443,
    53,
    8080,
    9000,
    1,
    65535,
    1000,
    2000,
    0,
    65536,
    -1,
    i64::MAX,
    i64::MIN,
];
pub const PORT_NAMES: &[&str] = &[
    "http", "metrics", "grpc", "dns", "80", "0", "65536", "-1", "", "+80", "HTTP",
];
pub const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "0.0.0.0/0",
    "192.168.1.7/32",
    "fd00::/8",
    "::/0",
    "2001:db8::1/128",
    "::ffff:10.0.0.0/104",
    "10.0.0.0/33",
    "10.0.0.1",
    "x/8",
    "",
    " 10.0.0.0/8",
    "1.2.3.4/+8",
];
pub const ACTIONS: &[&str] = &["Allow", "Deny", "Pass", "allow", ""];
pub const POLICY_TYPES: &[&str] = &["Ingress", "Egress", "ingress", ""];
pub const PRIORITIES: &[i64] = &[10, 20, 0, 5, 1000, 1001, -1, i64::MAX];
pub const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];
pub const OWNER_KINDS: &[&str] = &[
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "Node",
    "",
    "Deployment",
];
pub const POD_IPS: &[&str] = &[
    "10.244.1.7",
    "10.244.1.8",
    "fd00::5",
    "bogus",
    "10.0.0.1/32",
    "",
];
pub const OTHER_KINDS: &[&str] = &[
    "Service",
    "ConfigMap",
    "Secret",
    "",
    "Namespace",
    "NetworkPolicy",
    "Ingress",
];
pub const LIST_KINDS: &[&str] = &[
    "List",
    "PodList",
    "NamespaceList",
    "NetworkPolicyList",
    "DeploymentList",
    "AdminNetworkPolicyList",
    "ConfigMapList",
];
pub const RULE_NAMES: &[&str] = &["allow-monitoring", "deny-all", ""];

// ---------------------------------------------------------------------------------------------
// The skeleton.
// ---------------------------------------------------------------------------------------------

/// A string: a word of the field's vocabulary, or (rarely) any string.
#[derive(Debug, Clone)]
pub enum Text {
    Word(u8),
    Raw(String),
}

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let b = u8::arbitrary(u)?;
        if b >= 248 {
            Ok(Text::Raw(String::arbitrary(u)?))
        } else {
            Ok(Text::Word(b))
        }
    }
}

/// An integer: a value of the field's vocabulary, or (rarely) any integer.
#[derive(Debug, Clone)]
pub enum Num {
    Word(u8),
    Raw(i64),
}

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let b = u8::arbitrary(u)?;
        if b >= 240 {
            Ok(Num::Raw(i64::arbitrary(u)?))
        } else {
            Ok(Num::Word(b))
        }
    }
}

/// One structured input: how to lay the documents out, and the documents.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub layout: Layout,
    pub docs: Vec<Doc>,
}

/// Choices of spelling that must not change what is read.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Layout {
    /// Block sequences indented under their key (`key:\n  - a`), or not (`key:\n- a`).
    pub indent_sequences: bool,
    /// A `---` before the first document too.
    pub leading_marker: bool,
    /// Flow documents on their `---` line (`--- {kind: ...}`).
    pub flow_on_marker: bool,
    /// JSON objects over several lines, or one a line.
    pub json_pretty: bool,
}

#[derive(Arbitrary, Debug)]
pub enum Doc {
    Object(Box<Obj>),
    List(ListDoc),
}

#[derive(Arbitrary, Debug)]
pub enum Obj {
    NetworkPolicy(NetPol),
    AdminNetworkPolicy(Anp),
    BaselineAdminNetworkPolicy(Anp),
    Pod(Pod),
    Workload(WorkloadDoc),
    Namespace(Meta),
    /// A kind Bulkhead skips (or reads with nothing but metadata).
    Other(Text, Meta),
}

#[derive(Arbitrary, Debug)]
pub struct ListDoc {
    pub kind: Text,
    pub items: Vec<Item>,
}

#[derive(Arbitrary, Debug)]
pub struct Item {
    /// Whether the item says its kind (in a `PodList` it may leave it to the list).
    pub with_kind: bool,
    pub object: Obj,
}

#[derive(Arbitrary, Debug)]
pub struct Meta {
    pub name: Option<Text>,
    pub generate_name: Option<Text>,
    pub namespace: Option<Text>,
    pub labels: Option<Vec<(Text, Text)>>,
}

#[derive(Arbitrary, Debug)]
pub struct Selector {
    pub match_labels: Option<Vec<(Text, Text)>>,
    pub match_expressions: Option<Vec<Expr>>,
}

#[derive(Arbitrary, Debug)]
pub struct Expr {
    pub key: Text,
    pub operator: Text,
    pub values: Option<Vec<Text>>,
}

#[derive(Arbitrary, Debug)]
pub struct NetPol {
    pub meta: Meta,
    pub pod_selector: Option<Selector>,
    pub policy_types: Option<Vec<Text>>,
    pub ingress: Option<Vec<NpRule>>,
    pub egress: Option<Vec<NpRule>>,
}

#[derive(Arbitrary, Debug)]
pub struct NpRule {
    /// `from` in ingress rules, `to` in egress rules.
    pub peers: Option<Vec<NpPeer>>,
    pub ports: Option<Vec<NpPort>>,
}

#[derive(Arbitrary, Debug)]
pub struct NpPeer {
    pub pod_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Arbitrary, Debug)]
pub struct IpBlock {
    pub cidr: Text,
    pub except: Option<Vec<Text>>,
}

#[derive(Arbitrary, Debug)]
pub struct NpPort {
    pub protocol: Option<Text>,
    pub port: Option<PortValue>,
    pub end_port: Option<Num>,
}

#[derive(Arbitrary, Debug)]
pub enum PortValue {
    Number(Num),
    Name(Text),
}

#[derive(Arbitrary, Debug)]
pub struct Anp {
    pub meta: Meta,
    pub priority: Option<Num>,
    pub subject: Option<AnpSubject>,
    pub ingress: Option<Vec<AnpRule>>,
    pub egress: Option<Vec<AnpRule>>,
}

#[derive(Arbitrary, Debug)]
pub struct AnpSubject {
    pub namespaces: Option<Selector>,
    pub pods: Option<NsPods>,
}

#[derive(Arbitrary, Debug)]
pub struct NsPods {
    pub namespace_selector: Option<Selector>,
    pub pod_selector: Option<Selector>,
}

#[derive(Arbitrary, Debug)]
pub struct AnpRule {
    pub name: Option<Text>,
    pub action: Option<Text>,
    /// `from` in ingress rules, `to` in egress rules.
    pub peers: Option<Vec<AnpPeer>>,
    pub ports: Option<Vec<AnpPort>>,
}

#[derive(Arbitrary, Debug)]
pub struct AnpPeer {
    pub namespaces: Option<Selector>,
    pub pods: Option<NsPods>,
    pub nodes: Option<Selector>,
    pub networks: Option<Vec<Text>>,
}

#[derive(Arbitrary, Debug)]
pub struct AnpPort {
    pub port_number: Option<(Option<Text>, Num)>,
    pub named_port: Option<Text>,
    pub port_range: Option<(Option<Text>, Num, Num)>,
}

#[derive(Arbitrary, Debug)]
pub struct Pod {
    pub meta: Meta,
    pub owners: Option<Vec<Owner>>,
    pub containers: Option<Vec<Container>>,
    pub pod_ip: Option<Text>,
}

#[derive(Arbitrary, Debug)]
pub struct Owner {
    pub kind: Option<Text>,
    pub name: Option<Text>,
    pub controller: Option<bool>,
}

#[derive(Arbitrary, Debug)]
pub struct Container {
    pub name: Option<Text>,
    pub ports: Option<Vec<ContainerPort>>,
}

#[derive(Arbitrary, Debug)]
pub struct ContainerPort {
    pub name: Option<Text>,
    pub container_port: Option<Num>,
    pub protocol: Option<Text>,
}

#[derive(Arbitrary, Debug)]
pub struct WorkloadDoc {
    pub kind: Text,
    pub meta: Meta,
    pub template: Option<Template>,
}

#[derive(Arbitrary, Debug)]
pub struct Template {
    pub labels: Option<Vec<(Text, Text)>>,
    pub containers: Option<Vec<Container>>,
}

// ---------------------------------------------------------------------------------------------
// Skeleton → value tree.
// ---------------------------------------------------------------------------------------------

/// A YAML/JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Bool(bool),
    Int(i64),
    Str(String),
    Seq(Vec<V>),
    Map(Vec<(String, V)>),
}

/// Turns a skeleton into values; remembers whether any value came from outside the
/// vocabularies.
#[derive(Default)]
struct Tree {
    raw: bool,
}

fn map(entries: Vec<(&str, Option<V>)>) -> V {
    V::Map(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn s(x: &str) -> Option<V> {
    Some(V::Str(x.to_string()))
}

impl Tree {
    fn text(&mut self, t: &Text, vocab: &[&str]) -> String {
        match t {
            Text::Word(b) => vocab[*b as usize % vocab.len()].to_string(),
            Text::Raw(s) => {
                self.raw = true;
                s.clone()
            }
        }
    }

    fn str(&mut self, t: &Text, vocab: &[&str]) -> V {
        V::Str(self.text(t, vocab))
    }

    fn num(&mut self, n: &Num, vocab: &[i64]) -> V {
        V::Int(match n {
            Num::Word(b) => vocab[*b as usize % vocab.len()],
            Num::Raw(i) => *i,
        })
    }

    fn opt_str(&mut self, t: &Option<Text>, vocab: &[&str]) -> Option<V> {
        t.as_ref().map(|t| self.str(t, vocab))
    }

    fn seq<T>(&mut self, items: &Option<Vec<T>>, f: impl FnMut(&mut Self, &T) -> V) -> Option<V> {
        let mut f = f;
        items
            .as_ref()
            .map(|items| V::Seq(items.iter().map(|i| f(self, i)).collect()))
    }

    /// A label map; a key given twice keeps its first value (duplicate keys are malformed).
    fn labels(&mut self, pairs: &[(Text, Text)]) -> V {
        let mut out: Vec<(String, V)> = Vec::new();
        for (k, v) in pairs {
            let k = self.text(k, LABEL_KEYS);
            let v = self.str(v, LABEL_VALUES);
            if !out.iter().any(|(x, _)| *x == k) {
                out.push((k, v));
            }
        }
        V::Map(out)
    }

    fn opt_labels(&mut self, pairs: &Option<Vec<(Text, Text)>>) -> Option<V> {
        pairs.as_ref().map(|p| self.labels(p))
    }

    fn meta(&mut self, m: &Meta, names: &[&str], extra: Option<(&str, V)>) -> V {
        let mut v = map(vec![
            ("name", self.opt_str(&m.name, names)),
            ("generateName", self.opt_str(&m.generate_name, names)),
            ("namespace", self.opt_str(&m.namespace, NAMESPACES)),
            ("labels", self.opt_labels(&m.labels)),
        ]);
        if let (V::Map(entries), Some((k, x))) = (&mut v, extra) {
            entries.push((k.to_string(), x));
        }
        v
    }

    fn selector(&mut self, sel: &Selector) -> V {
        map(vec![
            ("matchLabels", self.opt_labels(&sel.match_labels)),
            (
                "matchExpressions",
                self.seq(&sel.match_expressions, |t, e| {
                    map(vec![
                        ("key", Some(t.str(&e.key, LABEL_KEYS))),
                        ("operator", Some(t.str(&e.operator, OPERATORS))),
                        ("values", t.seq(&e.values, |t, v| t.str(v, LABEL_VALUES))),
                    ])
                }),
            ),
        ])
    }

    fn opt_selector(&mut self, sel: &Option<Selector>) -> Option<V> {
        sel.as_ref().map(|s| self.selector(s))
    }

    fn ns_pods(&mut self, p: &NsPods) -> V {
        map(vec![
            (
                "namespaceSelector",
                self.opt_selector(&p.namespace_selector),
            ),
            ("podSelector", self.opt_selector(&p.pod_selector)),
        ])
    }

    fn containers(&mut self, cs: &Option<Vec<Container>>) -> Option<V> {
        self.seq(cs, |t, c| {
            map(vec![
                ("name", t.opt_str(&c.name, &["main", "sidecar", ""])),
                ("image", s("registry.example/app:1")),
                (
                    "ports",
                    t.seq(&c.ports, |t, p| {
                        map(vec![
                            ("name", t.opt_str(&p.name, PORT_NAMES)),
                            (
                                "containerPort",
                                p.container_port.as_ref().map(|n| t.num(n, PORTS)),
                            ),
                            ("protocol", t.opt_str(&p.protocol, PROTOCOLS)),
                        ])
                    }),
                ),
            ])
        })
    }

    fn np_rules(&mut self, rules: &Option<Vec<NpRule>>, peers_key: &str) -> Option<V> {
        self.seq(rules, |t, r| {
            map(vec![
                (
                    peers_key,
                    t.seq(&r.peers, |t, p| {
                        map(vec![
                            ("podSelector", t.opt_selector(&p.pod_selector)),
                            ("namespaceSelector", t.opt_selector(&p.namespace_selector)),
                            (
                                "ipBlock",
                                p.ip_block.as_ref().map(|b| {
                                    map(vec![
                                        ("cidr", Some(t.str(&b.cidr, CIDRS))),
                                        ("except", t.seq(&b.except, |t, c| t.str(c, CIDRS))),
                                    ])
                                }),
                            ),
                        ])
                    }),
                ),
                (
                    "ports",
                    t.seq(&r.ports, |t, p| {
                        map(vec![
                            ("protocol", t.opt_str(&p.protocol, PROTOCOLS)),
                            (
                                "port",
                                p.port.as_ref().map(|p| match p {
                                    PortValue::Number(n) => t.num(n, PORTS),
                                    PortValue::Name(n) => t.str(n, PORT_NAMES),
                                }),
                            ),
                            ("endPort", p.end_port.as_ref().map(|n| t.num(n, PORTS))),
                        ])
                    }),
                ),
            ])
        })
    }

    fn anp_rules(&mut self, rules: &Option<Vec<AnpRule>>, peers_key: &str) -> Option<V> {
        self.seq(rules, |t, r| {
            map(vec![
                ("name", t.opt_str(&r.name, RULE_NAMES)),
                ("action", t.opt_str(&r.action, ACTIONS)),
                (
                    peers_key,
                    t.seq(&r.peers, |t, p| {
                        map(vec![
                            ("namespaces", t.opt_selector(&p.namespaces)),
                            ("pods", p.pods.as_ref().map(|p| t.ns_pods(p))),
                            ("nodes", t.opt_selector(&p.nodes)),
                            ("networks", t.seq(&p.networks, |t, c| t.str(c, CIDRS))),
                        ])
                    }),
                ),
                (
                    "ports",
                    t.seq(&r.ports, |t, p| {
                        map(vec![
                            (
                                "portNumber",
                                p.port_number.as_ref().map(|(proto, n)| {
                                    map(vec![
                                        ("protocol", t.opt_str(proto, PROTOCOLS)),
                                        ("port", Some(t.num(n, PORTS))),
                                    ])
                                }),
                            ),
                            ("namedPort", t.opt_str(&p.named_port, PORT_NAMES)),
                            (
                                "portRange",
                                p.port_range.as_ref().map(|(proto, a, b)| {
                                    map(vec![
                                        ("protocol", t.opt_str(proto, PROTOCOLS)),
                                        ("start", Some(t.num(a, PORTS))),
                                        ("end", Some(t.num(b, PORTS))),
                                    ])
                                }),
                            ),
                        ])
                    }),
                ),
            ])
        })
    }

    /// The object's kind and its value (with `kind` first, unless `with_kind` is false).
    fn object(&mut self, o: &Obj, with_kind: bool) -> (String, V) {
        let (api, kind, rest): (&str, String, Vec<(&str, Option<V>)>) = match o {
            Obj::NetworkPolicy(np) => (
                "networking.k8s.io/v1",
                "NetworkPolicy".to_string(),
                vec![
                    ("metadata", Some(self.meta(&np.meta, NAMES, None))),
                    (
                        "spec",
                        Some(map(vec![
                            ("podSelector", self.opt_selector(&np.pod_selector)),
                            (
                                "policyTypes",
                                self.seq(&np.policy_types, |t, x| t.str(x, POLICY_TYPES)),
                            ),
                            ("ingress", self.np_rules(&np.ingress, "from")),
                            ("egress", self.np_rules(&np.egress, "to")),
                        ])),
                    ),
                ],
            ),
            Obj::AdminNetworkPolicy(p) | Obj::BaselineAdminNetworkPolicy(p) => {
                let (kind, names) = if matches!(o, Obj::AdminNetworkPolicy(_)) {
                    ("AdminNetworkPolicy", NAMES)
                } else {
                    ("BaselineAdminNetworkPolicy", BANP_NAMES)
                };
                (
                    "policy.networking.k8s.io/v1alpha1",
                    kind.to_string(),
                    vec![
                        ("metadata", Some(self.meta(&p.meta, names, None))),
                        (
                            "spec",
                            Some(map(vec![
                                (
                                    "priority",
                                    p.priority.as_ref().map(|n| self.num(n, PRIORITIES)),
                                ),
                                (
                                    "subject",
                                    p.subject.as_ref().map(|s| {
                                        map(vec![
                                            ("namespaces", self.opt_selector(&s.namespaces)),
                                            ("pods", s.pods.as_ref().map(|p| self.ns_pods(p))),
                                        ])
                                    }),
                                ),
                                ("ingress", self.anp_rules(&p.ingress, "from")),
                                ("egress", self.anp_rules(&p.egress, "to")),
                            ])),
                        ),
                    ],
                )
            }
            Obj::Pod(p) => {
                let owners = self.seq(&p.owners, |t, r| {
                    map(vec![
                        ("apiVersion", s("apps/v1")),
                        ("kind", t.opt_str(&r.kind, OWNER_KINDS)),
                        ("name", t.opt_str(&r.name, NAMES)),
                        ("controller", r.controller.map(V::Bool)),
                    ])
                });
                let meta = self.meta(&p.meta, NAMES, owners.map(|o| ("ownerReferences", o)));
                (
                    "v1",
                    "Pod".to_string(),
                    vec![
                        ("metadata", Some(meta)),
                        (
                            "spec",
                            Some(map(vec![("containers", self.containers(&p.containers))])),
                        ),
                        (
                            "status",
                            Some(map(vec![
                                ("phase", s("Running")),
                                ("podIP", self.opt_str(&p.pod_ip, POD_IPS)),
                            ])),
                        ),
                    ],
                )
            }
            Obj::Workload(w) => {
                let kind = self.text(&w.kind, WORKLOAD_KINDS);
                let meta = self.meta(&w.meta, NAMES, None);
                let template = w.template.as_ref().map(|t| {
                    map(vec![
                        (
                            "metadata",
                            Some(map(vec![("labels", self.opt_labels(&t.labels))])),
                        ),
                        (
                            "spec",
                            Some(map(vec![("containers", self.containers(&t.containers))])),
                        ),
                    ])
                });
                let spec = if kind == "CronJob" {
                    map(vec![
                        ("schedule", s("0 3 * * *")),
                        (
                            "jobTemplate",
                            Some(map(vec![("spec", Some(map(vec![("template", template)])))])),
                        ),
                    ])
                } else {
                    map(vec![("replicas", Some(V::Int(2))), ("template", template)])
                };
                (
                    "apps/v1",
                    kind,
                    vec![("metadata", Some(meta)), ("spec", Some(spec))],
                )
            }
            Obj::Namespace(m) => (
                "v1",
                "Namespace".to_string(),
                vec![("metadata", Some(self.meta(m, NAMESPACES, None)))],
            ),
            Obj::Other(kind, m) => {
                let kind = self.text(kind, OTHER_KINDS);
                (
                    "v1",
                    kind,
                    vec![("metadata", Some(self.meta(m, NAMES, None)))],
                )
            }
        };
        let mut entries = vec![("apiVersion", s(api))];
        if with_kind {
            entries.push(("kind", Some(V::Str(kind.clone()))));
        }
        entries.extend(rest);
        (kind, map(entries))
    }

    /// The document's value and what the loader must make of it: `(objects, errors)`.
    fn doc(&mut self, d: &Doc) -> (V, usize, usize) {
        match d {
            Doc::Object(o) => {
                let (kind, v) = self.object(o, true);
                (v, expected_objects(&kind, &[]).0, 0)
            }
            Doc::List(l) => {
                let kind = self.text(&l.kind, LIST_KINDS);
                let mut kinds = Vec::new();
                let mut items = Vec::new();
                for it in &l.items {
                    let (k, v) = self.object(&it.object, it.with_kind);
                    kinds.push(it.with_kind.then_some(k));
                    items.push(v);
                }
                let (objects, errors) = expected_objects(&kind, &kinds);
                let v = map(vec![
                    ("apiVersion", s("v1")),
                    ("kind", Some(V::Str(kind))),
                    ("items", Some(V::Seq(items))),
                    ("metadata", Some(map(vec![("resourceVersion", s(""))]))),
                ]);
                (v, objects, errors)
            }
        }
    }
}

/// How many objects the loader reads from a document of `kind` with list items of `items`
/// kinds (`None`: the item gives no kind), and how many items are errors (no kind anywhere).
/// Per the loader's contract: lists (`…List`) are expanded, their items taking the kind from
/// the list; kinds not modelled are skipped.
pub fn expected_objects(kind: &str, items: &[Option<String>]) -> (usize, usize) {
    let supported = |k: &str| SUPPORTED_KINDS.contains(&k);
    let Some(item_kind) = kind.strip_suffix("List") else {
        return (usize::from(supported(kind)), 0);
    };
    let (mut objects, mut errors) = (0, 0);
    for k in items {
        match (k.as_deref(), item_kind) {
            (Some(k), _) => objects += usize::from(supported(k)),
            (None, "") => errors += 1,
            (None, k) => objects += usize::from(supported(k)),
        }
    }
    (objects, errors)
}

// ---------------------------------------------------------------------------------------------
// Value tree → text.
// ---------------------------------------------------------------------------------------------

/// Can `s` be written as a plain YAML scalar, and still read as this string?
fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
        )
}

/// A YAML double-quoted scalar; everything but printable ASCII is escaped, so the text holds
/// no line breaks, tabs or other characters a YAML reader might fold or refuse.
fn yaml_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn yaml_scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        yaml_quoted(s)
    }
}

/// Flow YAML: `{kind: Pod, metadata: {name: a}}`.
fn flow(v: &V, out: &mut String) {
    match v {
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Int(i) => out.push_str(&i.to_string()),
        V::Str(s) => out.push_str(&yaml_scalar(s)),
        V::Seq(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(x, out);
            }
            out.push(']');
        }
        V::Map(entries) => {
            out.push('{');
            for (i, (k, x)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_scalar(k));
                out.push_str(": ");
                flow(x, out);
            }
            out.push('}');
        }
    }
}

/// Block YAML, the usual spelling of manifests.
fn block_map(entries: &[(String, V)], indent: usize, layout: Layout, out: &mut String) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&yaml_scalar(k));
        out.push(':');
        match v {
            V::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                block_map(inner, indent + 2, layout, out);
            }
            V::Seq(items) if !items.is_empty() => {
                out.push('\n');
                let at = if layout.indent_sequences {
                    indent + 2
                } else {
                    indent
                };
                block_seq(items, at, layout, out);
            }
            _ => {
                out.push(' ');
                flow(v, out);
                out.push('\n');
            }
        }
    }
}

fn block_seq(items: &[V], indent: usize, layout: Layout, out: &mut String) {
    for v in items {
        match v {
            V::Map(inner) if !inner.is_empty() => {
                // `- first: entry` then the others under it.
                let mut m = String::new();
                block_map(inner, indent + 2, layout, &mut m);
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(&m[indent + 2..]);
            }
            V::Seq(inner) if !inner.is_empty() => {
                out.push_str(&" ".repeat(indent));
                out.push_str("-\n");
                block_seq(inner, indent + 2, layout, out);
            }
            _ => {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                flow(v, out);
                out.push('\n');
            }
        }
    }
}

fn json(v: &V, pretty: bool, indent: usize, out: &mut String) {
    let nl = |out: &mut String, indent: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
        }
    };
    match v {
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Int(i) => out.push_str(&i.to_string()),
        V::Str(s) => out.push_str(&serde_json::to_string(s).expect("a string serializes")),
        V::Seq(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, indent + 2);
                json(x, pretty, indent + 2, out);
            }
            if !items.is_empty() {
                nl(out, indent);
            }
            out.push(']');
        }
        V::Map(entries) => {
            out.push('{');
            for (i, (k, x)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, indent + 2);
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push_str(": ");
                json(x, pretty, indent + 2, out);
            }
            if !entries.is_empty() {
                nl(out, indent);
            }
            out.push('}');
        }
    }
}

/// A file of rendered documents, with the line each document starts on (as the loader counts:
/// the line after its `---`, or the `---` line itself when the document is on it).
pub struct Rendering {
    pub text: String,
    pub starts: Vec<usize>,
}

fn next_line(out: &str) -> usize {
    out.matches('\n').count() + 1
}

/// The documents as one block-YAML file.
pub fn render_block(docs: &[V], layout: Layout) -> Rendering {
    let mut out = String::new();
    let mut starts = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 || layout.leading_marker {
            out.push_str("---\n");
        }
        starts.push(next_line(&out));
        match d {
            V::Map(entries) if !entries.is_empty() => block_map(entries, 0, layout, &mut out),
            _ => {
                flow(d, &mut out);
                out.push('\n');
            }
        }
    }
    Rendering { text: out, starts }
}

/// The documents as one flow-YAML file.
pub fn render_flow(docs: &[V], layout: Layout) -> Rendering {
    let mut out = String::new();
    let mut starts = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if layout.flow_on_marker {
            out.push_str("--- ");
        } else if i > 0 || layout.leading_marker {
            out.push_str("---\n");
        }
        starts.push(next_line(&out));
        flow(d, &mut out);
        out.push('\n');
    }
    Rendering { text: out, starts }
}

/// The documents as JSON objects in a row (as `kubectl get -o json` writes one).
pub fn render_json(docs: &[V], layout: Layout) -> Rendering {
    let mut out = String::new();
    let mut starts = Vec::new();
    for d in docs {
        starts.push(next_line(&out));
        json(d, layout.json_pretty, 0, &mut out);
        out.push('\n');
    }
    Rendering { text: out, starts }
}

/// The skeleton as values, with what the loader must read from it.
pub struct Rendered {
    pub docs: Vec<V>,
    /// Some value came from outside the vocabularies.
    pub raw: bool,
    pub expected_objects: usize,
    pub expected_item_errors: usize,
}

pub fn values(input: &Input) -> Rendered {
    let mut t = Tree::default();
    let (mut objects, mut errors) = (0, 0);
    let docs = input
        .docs
        .iter()
        .map(|d| {
            let (v, o, e) = t.doc(d);
            objects += o;
            errors += e;
            v
        })
        .collect();
    Rendered {
        docs,
        raw: t.raw,
        expected_objects: objects,
        expected_item_errors: errors,
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------------

/// The cluster without line numbers, for comparing renderings.
fn without_lines(out: &Outcome) -> bulkhead_core::Cluster {
    let mut c = out.loaded.cluster.clone();
    for w in &mut c.workloads {
        w.origin.line = 0;
    }
    for p in &mut c.policies {
        p.origin.line = 0;
    }
    c
}

fn is_item_error(e: &bulkhead_k8s::LoadError) -> bool {
    e.reason.starts_with("List item ") && e.reason.ends_with(" has no kind")
}

fn only_item_errors(out: &Outcome) -> bool {
    out.load_errors.iter().all(is_item_error)
}

/// Loads the three renderings of `input` and checks them (see the module documentation).
pub fn check(input: &Input) {
    let r = values(input);
    let renderings = [
        ("block YAML", render_block(&r.docs, input.layout)),
        ("flow YAML", render_flow(&r.docs, input.layout)),
        ("JSON", render_json(&r.docs, input.layout)),
    ];
    let outs: Vec<Outcome> = renderings
        .iter()
        .map(|(_, rd)| check::load(crate::FILE, &rd.text))
        .collect();
    check::engine_answers(&outs[0].loaded.cluster);

    // Everything read, and every problem of an object, is placed on its document's first line.
    for ((style, rd), out) in renderings.iter().zip(&outs) {
        let l = &out.loaded;
        let lines = l
            .cluster
            .workloads
            .iter()
            .map(|w| w.origin.line)
            .chain(l.cluster.policies.iter().map(|p| p.origin.line))
            .chain(out.build_errors().iter().map(|e| e.line))
            .chain(
                out.load_errors
                    .iter()
                    .filter(|e| is_item_error(e))
                    .map(|e| e.line),
            );
        for line in lines {
            assert!(
                rd.starts.contains(&line),
                "{style}: an object or error on line {line}, where no document starts ({:?})\n{}",
                rd.starts,
                rd.text
            );
        }
    }
    let texts: Vec<(&str, &str)> = renderings
        .iter()
        .map(|(style, rd)| (*style, rd.text.as_str()))
        .collect();

    if !r.raw {
        for ((style, text), out) in texts.iter().zip(&outs) {
            assert!(
                only_item_errors(out),
                "{style}: a well-formed skeleton fails to load: {:?}\n{text}",
                out.load_errors
            );
            assert_eq!(
                (out.objects, out.load_errors.len()),
                (r.expected_objects, r.expected_item_errors),
                "{style}: (objects, errors) read, against the skeleton's\n{text}"
            );
        }
    } else if !outs.iter().all(only_item_errors) {
        // Any strings can make one reader refuse what the other takes; only the invariants hold.
        return;
    }

    let (first_style, first_text) = texts[0];
    let first = &outs[0];
    let cluster = without_lines(first);
    for (&(style, text), out) in texts.iter().zip(&outs).skip(1) {
        let ctx = || format!("--- {first_style}:\n{first_text}--- {style}:\n{text}");
        assert_eq!(out.objects, first.objects, "objects read differ\n{}", ctx());
        assert_eq!(
            out.load_errors.len(),
            first.load_errors.len(),
            "loader errors differ: {:?} vs {:?}\n{}",
            first.load_errors,
            out.load_errors,
            ctx()
        );
        let reasons = |o: &Outcome| -> Vec<String> {
            o.build_errors().iter().map(|e| e.reason.clone()).collect()
        };
        assert_eq!(
            reasons(out),
            reasons(first),
            "conversion errors differ\n{}",
            ctx()
        );
        assert_eq!(
            out.loaded.warnings.len(),
            first.loaded.warnings.len(),
            "warnings differ: {:?} vs {:?}\n{}",
            first.loaded.warnings,
            out.loaded.warnings,
            ctx()
        );
        let c = without_lines(out);
        assert!(
            c.namespaces == cluster.namespaces
                && c.workloads == cluster.workloads
                && c.policies == cluster.policies,
            "clusters differ:\n{cluster:#?}\nvs\n{c:#?}\n{}",
            ctx()
        );
    }
}
