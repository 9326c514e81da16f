//! Loading and building never panic, whatever the input, and every error says where it is.
//!
//! Inputs: arbitrary strings and bytes; YAML-ish documents generated from the vocabulary of real
//! Kubernetes manifests (random keys and values, indentation, tabs, `---` markers, flow
//! collections, wrong types, huge and negative numbers, bad CIDRs, unknown operators); real
//! manifests with random line edits; and real manifests with one typed field given a value of
//! the wrong type, whose error must point at that field's line.

use bulkhead_core::{Endpoint, Engine, IpRange};
use bulkhead_k8s::{Loaded, Manifests, build};
use proptest::prelude::*;
use proptest::sample::select;

const FILE: &str = "f.yaml";

fn load(input: &str) -> Loaded {
    let mut m = Manifests::default();
    m.load_str(FILE, input);
    build(m)
}

/// Lines as YAML (and editors) count them: `\n`, `\r\n` and a lone `\r` each end one.
fn line_count(s: &str) -> usize {
    s.replace("\r\n", "\n").replace('\r', "\n").lines().count()
}

/// Loads `input` and checks the invariants every result must hold; returns the result.
fn check(input: &str) -> Result<Loaded, TestCaseError> {
    let loaded = load(input);
    let lines = line_count(input);
    for e in &loaded.errors {
        prop_assert_eq!(e.file.as_str(), FILE, "error {} names another file", e);
        prop_assert!(!e.reason.trim().is_empty(), "error without reason: {:?}", e);
        prop_assert!(
            e.line <= lines,
            "error {} points past the input's {} lines",
            e,
            lines
        );
        if e.line == 0 {
            prop_assert_eq!(e.column, 0, "a column without a line: {:?}", e);
        }
    }
    for w in &loaded.warnings {
        prop_assert!(!w.trim().is_empty(), "empty warning");
    }
    // Whatever was built, the engine answers over it without panicking.
    let engine = Engine::new(&loaded.cluster);
    let n = loaded.cluster.workloads.len().min(4);
    let ext = Endpoint::External(IpRange::V4(0x0a00_0001, 0x0a00_0001));
    let eps: Vec<Endpoint> = (0..n)
        .map(Endpoint::Workload)
        .chain(std::iter::once(ext))
        .collect();
    for &s in &eps {
        for &d in &eps {
            let _ = engine.allowed(s, d);
        }
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// Real manifests. Lines ending in `#@<type>` hold a typed field with an inline value that the
// loader reads; `typed_field_of_wrong_type_points_at_its_line` replaces such a value with one of
// the wrong type.
// ---------------------------------------------------------------------------------------------

const TEMPLATES: &[&str] = &[
    r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-allow #@str
  namespace: shop #@str
  labels: {team: red} #@map
spec:
  podSelector: {matchLabels: {app: web}} #@map
  policyTypes: [Ingress, Egress] #@seq
  ingress:
  - from:
    - podSelector: {matchLabels: {app: api}} #@map
      namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [red]}]} #@map
    - ipBlock:
        cidr: 10.0.0.0/8 #@str
        except: [10.1.0.0/16] #@seq
    ports:
    - protocol: TCP #@str
      port: 80 #@port
      endPort: 90 #@int
    - port: http #@port
  egress:
  - to: [{namespaceSelector: {}}] #@seq
    ports: [{protocol: UDP, port: 53}] #@seq
"#,
    r#"apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: cluster-control #@str
spec:
  priority: 20 #@int
  subject:
    pods:
      namespaceSelector: {matchLabels: {team: red}} #@map
      podSelector: {matchLabels: {app: web}} #@map
  ingress:
  - name: allow-monitoring #@str
    action: Allow #@str
    from:
    - namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}} #@map
    ports:
    - portNumber: {protocol: TCP, port: 9100} #@map
    - namedPort: metrics #@str
    - portRange: {protocol: UDP, start: 1000, end: 2000} #@map
  - action: Pass
    from: [{pods: {namespaceSelector: {}, podSelector: {}}}] #@seq
  egress:
  - action: Deny #@str
    to:
    - networks: [10.0.0.0/8, "fd00::/8"] #@seq
    ports:
    - portRange:
        start: 1 #@int
        end: 1024 #@int
"#,
    r#"apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {} #@map
  ingress:
  - action: Deny
    from: [{namespaces: {}}] #@seq
  egress:
  - action: Allow
    to: [{pods: {namespaceSelector: {matchLabels: {team: red}}, podSelector: {}}}]
"#,
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-abcde
  namespace: shop
  labels: {app: web, tier: frontend} #@map
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet #@str
    name: web-7d9f #@str
    controller: true #@bool
spec:
  containers:
  - name: main
    image: nginx:1.27
    ports:
    - name: http #@str
      containerPort: 8080 #@int
      protocol: TCP #@str
status:
  phase: Running #@str
  podIP: 10.244.1.7 #@str
"#,
    r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop} #@map
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api} #@map
    spec:
      containers: [{name: api, ports: [{name: grpc, containerPort: 9000}]}] #@seq
"#,
    r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {job: nightly}} #@map
        spec: {containers: [{name: c}]} #@map
"#,
    r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {team: red} #@map
- kind: Pod
  metadata: {name: api-0, namespace: shop, labels: {app: api}}
  spec:
    containers:
    - name: c
      ports: [{name: grpc, containerPort: 9000}] #@seq
"#,
];

/// A template's lines without the `#@type` annotations.
fn clean_lines(template: &str) -> Vec<String> {
    template
        .lines()
        .map(|l| match l.find(" #@") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// `(line index, type)` of every annotated typed field.
fn typed_fields() -> Vec<(usize, usize, &'static str)> {
    let mut out = Vec::new();
    for (t, template) in TEMPLATES.iter().enumerate() {
        for (i, l) in template.lines().enumerate() {
            if let Some(p) = l.find(" #@") {
                out.push((t, i, &l[p + 3..]));
            }
        }
    }
    out
}

/// Values the loader must reject for a field of each type.
fn wrong_values(ty: &str) -> &'static [&'static str] {
    match ty {
        "int" => &[
            "[1]",
            "{a: 1}",
            "abc",
            "1.5",
            "true",
            "99999999999999999999999",
            "-99999999999999999999999",
        ],
        "port" => &["[1]", "{a: 1}", "1.5", "true", "99999999999999999999999"],
        "map" => &["7", "abc", "[1]", "true", "-1"],
        "seq" => &["7", "abc", "{a: 1}", "true"],
        "str" => &["[a]", "{a: 1}", "[]", "{}"],
        "bool" => &["abc", "[1]", "{a: 1}", "7"],
        other => panic!("unknown annotation {other}"),
    }
}

#[test]
fn templates_load_cleanly() {
    for (i, t) in TEMPLATES.iter().enumerate() {
        let text = clean_lines(t).join("\n");
        let loaded = load(&text);
        assert!(
            loaded.errors.is_empty() && loaded.warnings.is_empty(),
            "template {i} should load without problems: {:?} {:?}",
            loaded.errors,
            loaded.warnings
        );
        assert!(
            !loaded.cluster.workloads.is_empty() || !loaded.cluster.policies.is_empty(),
            "template {i} should yield a workload or a policy"
        );
    }
    assert!(
        typed_fields().len() > 30,
        "the templates annotate enough typed fields"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let cases = [
        (
            "unclosed flow sequences",
            format!("kind: Pod\nspec: {}\n", "[".repeat(20_000)),
        ),
        (
            "closed flow sequences",
            format!(
                "kind: Pod\nspec: {}{}\n",
                "[".repeat(20_000),
                "]".repeat(20_000)
            ),
        ),
        (
            "flow mappings",
            format!(
                "kind: NetworkPolicy\nspec: {}{}\n",
                "{a: ".repeat(5_000),
                "}".repeat(5_000)
            ),
        ),
        (
            "block sequences",
            format!(
                "kind: Pod\nspec:\n{}",
                (0..3_000)
                    .map(|i| format!("{}- \n", " ".repeat(i)))
                    .collect::<String>()
            ),
        ),
    ];
    for (msg, input) in cases {
        let loaded = load(&input);
        assert_eq!(loaded.errors.len(), 1, "{msg}: {:?}", loaded.errors);
        let e = &loaded.errors[0];
        assert!(
            (1..=line_count(&input)).contains(&e.line),
            "{msg}: line {} inside the input",
            e.line
        );
    }
}

#[test]
fn line_endings_do_not_shift_error_lines() {
    let lines = [
        "kind: Namespace",
        "metadata: {name: a}",
        "---",
        "kind: NetworkPolicy",
        "metadata: {name: x, namespace: a}",
        "spec:",
        "  podSelector: 7",
    ];
    for (msg, eol) in [("LF", "\n"), ("CRLF", "\r\n"), ("lone CR", "\r")] {
        let input = lines.join(eol) + eol;
        let loaded = load(&input);
        assert_eq!(
            loaded.cluster.namespaces.len(),
            1,
            "{msg}: the namespace document loads"
        );
        assert_eq!(loaded.errors.len(), 1, "{msg}: {:?}", loaded.errors);
        let e = &loaded.errors[0];
        assert_eq!((e.line, e.column), (7, 16), "{msg}: {e}");
        assert!(
            !e.reason.contains("line "),
            "{msg}: the reason leaves the position to the error: {e}"
        );
    }
}

#[test]
fn errors_at_the_end_of_a_document_point_at_its_last_line() {
    let cases: &[(&str, &str, (usize, usize))] = &[
        (
            "a lone complex key at the end of the file",
            "kind: NetworkPolicy\n?\n",
            (2, 2),
        ),
        (
            "the same without a final newline",
            "kind: NetworkPolicy\n?",
            (2, 2),
        ),
        (
            "at the end of a document followed by another: not the next `---`",
            "kind: NetworkPolicy\n?\n---\nkind: Namespace\nmetadata: {name: n}\n",
            (2, 2),
        ),
        (
            "a document on its `---` line",
            "--- {kind: Pod, metadata: {name: [}\n",
            (1, 34),
        ),
    ];
    for (msg, input, want) in cases {
        let loaded = load(input);
        assert_eq!(loaded.errors.len(), 1, "{msg}: {:?}", loaded.errors);
        let e = &loaded.errors[0];
        assert_eq!((e.line, e.column), *want, "{msg}: {e}");
    }
}

#[test]
fn alias_bombs_are_bounded() {
    // "Billion laughs": nested aliases must not expand without bound.
    let mut s = String::from(
        "kind: Pod\nmetadata: {name: a}\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        s.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let loaded = load(&s);
    for e in &loaded.errors {
        assert!(
            (1..=line_count(&s)).contains(&e.line),
            "alias bomb error inside the input: {e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// YAML-ish documents from Kubernetes fragments.
// ---------------------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "kind",
    "apiVersion",
    "metadata",
    "name",
    "generateName",
    "namespace",
    "labels",
    "ownerReferences",
    "controller",
    "spec",
    "podSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "ports",
    "port",
    "endPort",
    "protocol",
    "ipBlock",
    "cidr",
    "except",
    "namespaceSelector",
    "priority",
    "subject",
    "namespaces",
    "pods",
    "nodes",
    "networks",
    "action",
    "namedPort",
    "portNumber",
    "portRange",
    "start",
    "end",
    "items",
    "containers",
    "containerPort",
    "template",
    "jobTemplate",
    "status",
    "podIP",
    "app",
    "kubernetes.io/metadata.name",
    "\"quoted key\"",
    "? complex",
    "<<",
];

const SCALARS: &[&str] = &[
    "NetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "Pod",
    "Deployment",
    "List",
    "PodList",
    "Namespace",
    "CronJob",
    "default",
    "web",
    "TCP",
    "UDP",
    "SCTP",
    "tcp",
    "ICMP",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Equals",
    "Allow",
    "Deny",
    "Pass",
    "Drop",
    "Ingress",
    "Egress",
    "10.0.0.0/8",
    "10.0.0.0/33",
    "300.1.1.1/8",
    "10.0.0.1",
    "fd00::/8",
    "\"::/129\"",
    "0.0.0.0/0",
    "http",
    "80",
    "\"80\"",
    "-1",
    "-65536",
    "0",
    "65535",
    "65536",
    "99999999999999999999999",
    "-99999999999999999999",
    "1e309",
    "0x1F",
    "0o17",
    ".inf",
    ".nan",
    "1.5",
    "true",
    "false",
    "null",
    "~",
    "\"\"",
    "''",
    "\"quoted: value\"",
    "'single # not a comment'",
    "\"unterminated",
    "&anchor",
    "*anchor",
    "*undefined",
    "!!str",
    "!!int x",
    "!custom tag",
    "|",
    "|-",
    ">",
    "{}",
    "[]",
    "{a: b}",
    "[1, 2]",
    "[",
    "{",
    "}",
    "]",
    "# comment",
    ":",
    ",",
    "\t",
    "- dash",
    "\u{feff}",
    "日本語",
    "\\u0000",
];

const KINDS: &[&str] = &[
    "NetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "Pod",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "Namespace",
    "List",
    "PodList",
    "NetworkPolicyList",
    "ConfigMap",
];

const SEPARATORS: &[&str] = &[
    "---\n",
    "--- \n",
    "---\t\n",
    "...\n---\n",
    "\n---\n",
    "---x\n",
    "--- # comment\n",
    "--- ",
    "...\n",
    "---\r\n",
];

#[derive(Clone, Debug)]
enum Node {
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => select(KEYS).prop_map(String::from),
        1 => "[a-zA-Z][a-zA-Z0-9./-]{0,10}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => select(SCALARS).prop_map(String::from),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{15,45}",
        1 => "-[0-9]{15,45}",
        1 => "[1-9][0-9]?[0-9]?\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,3}",
        1 => "[ -~]{0,16}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    scalar()
        .prop_map(Node::Scalar)
        .prop_recursive(5, 60, 5, |inner| {
            prop_oneof![
                3 => prop::collection::vec((key(), inner.clone()), 0..5).prop_map(Node::Map),
                2 => prop::collection::vec(inner, 0..4).prop_map(Node::Seq),
            ]
        })
}

/// Style choices consumed while rendering.
struct Styler<'a> {
    bytes: &'a [u8],
    i: usize,
}

impl Styler<'_> {
    fn next(&mut self) -> u8 {
        if self.bytes.is_empty() {
            return 0;
        }
        let b = self.bytes[self.i % self.bytes.len()];
        self.i += 1;
        b
    }

    fn step(&mut self) -> &'static str {
        match self.next() % 32 {
            0 => "\t",
            1..=3 => " ",
            4..=6 => "    ",
            7..=8 => "   ",
            _ => "  ",
        }
    }

    fn flow(&mut self) -> bool {
        self.next().is_multiple_of(3)
    }
}

fn flow(n: &Node, out: &mut String, st: &mut Styler) {
    match n {
        Node::Scalar(s) => out.push_str(s),
        Node::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(if st.next().is_multiple_of(5) {
                        ",\t"
                    } else {
                        ", "
                    });
                }
                out.push_str(k);
                out.push_str(": ");
                flow(v, out, st);
            }
            out.push('}');
        }
        Node::Seq(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if st.next().is_multiple_of(5) {
                        ",\n"
                    } else {
                        ", "
                    });
                }
                flow(v, out, st);
            }
            out.push(']');
        }
    }
}

/// Renders a value after `key:` or `-`, either inline or as an indented block.
fn value(n: &Node, indent: &str, out: &mut String, st: &mut Styler) {
    match n {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        _ if st.flow() => {
            out.push(' ');
            flow(n, out, st);
            out.push('\n');
        }
        _ => {
            out.push('\n');
            let inner = format!("{indent}{}", st.step());
            block(n, &inner, out, st);
        }
    }
}

fn block(n: &Node, indent: &str, out: &mut String, st: &mut Styler) {
    match n {
        Node::Scalar(s) => {
            out.push_str(indent);
            out.push_str(s);
            out.push('\n');
        }
        Node::Map(entries) => {
            if entries.is_empty() {
                out.push_str(indent);
                out.push_str("{}\n");
            }
            for (k, v) in entries {
                out.push_str(indent);
                out.push_str(k);
                out.push(':');
                value(v, indent, out, st);
            }
        }
        Node::Seq(items) => {
            if items.is_empty() {
                out.push_str(indent);
                out.push_str("[]\n");
            }
            for v in items {
                out.push_str(indent);
                out.push('-');
                value(v, indent, out, st);
            }
        }
    }
}

/// A free-form document: `kind` (sometimes `apiVersion`) and random fields, maybe list items.
fn freeform_doc() -> impl Strategy<Value = Node> {
    (
        select(KINDS).prop_map(String::from),
        any::<bool>(),
        node(),
        prop::option::weighted(0.2, prop::collection::vec(node(), 0..3)),
    )
        .prop_map(|(kind, api, body, items)| {
            let mut entries = vec![("kind".to_string(), Node::Scalar(kind))];
            if api {
                entries.insert(
                    0,
                    ("apiVersion".to_string(), Node::Scalar("v1".to_string())),
                );
            }
            match body {
                Node::Map(e) => entries.extend(e),
                other => entries.push(("spec".to_string(), other)),
            }
            if let Some(items) = items {
                let items = items
                    .into_iter()
                    .map(|n| match n {
                        Node::Map(mut e) => {
                            e.insert(0, ("kind".to_string(), Node::Scalar("Pod".to_string())));
                            Node::Map(e)
                        }
                        other => other,
                    })
                    .collect();
                entries.push(("items".to_string(), Node::Seq(items)));
            }
            Node::Map(entries)
        })
}

/// The shape of the Kubernetes fields the loader reads, to generate documents that are mostly
/// well-formed, with odd values (huge and negative numbers, bad CIDRs, unknown operators and
/// protocols, numbers where strings are expected) and now and then a random subtree.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Always this scalar (kind, apiVersion).
    Fixed(&'static str),
    Str(&'static [&'static str]),
    Labels,
    Map(&'static [(&'static str, Shape)]),
    Seq(&'static Shape),
    OneOf(&'static [Shape]),
}

const INTS: &[&str] = &[
    "80",
    "443",
    "53",
    "1",
    "65535",
    "8080",
    "1000",
    "0",
    "-1",
    "-80",
    "65536",
    "1001",
    "2147483648",
    "99999999999999999999999",
    "\"80\"",
    "1e3",
    "0x50",
];
const PORTS: &[&str] = &[
    "80",
    "443",
    "53",
    "1",
    "65535",
    "0",
    "-1",
    "65536",
    "99999999999999999999999",
    "\"8080\"",
    "\"-3\"",
    "http",
    "dns",
    "metrics",
    "\"http\"",
    "1.5",
];
const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.3/32",
    "0.0.0.0/0",
    "192.168.1.77/24",
    "\"fd00::/8\"",
    "\"::/0\"",
    "\"2001:db8::/32\"",
    "10.0.0.0/33",
    "10.0.0.1",
    "x/8",
    "300.0.0.0/8",
    "10.0.0.0/-1",
    "\"\"",
    "80",
];
const PROTOS: &[&str] = &["TCP", "UDP", "SCTP", "tcp", "ICMP", "\"\"", "6"];
const OPS: &[&str] = &[
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Equals",
    "in",
    "\"\"",
];
const LABEL_KEYS: &[&str] = &["app", "team", "tier", "kubernetes.io/metadata.name", "\"\""];
const LABEL_VALUES: &[&str] = &["web", "api", "red", "blue", "ns1", "\"\"", "\"80\""];
const NAMES: &[&str] = &["web", "api", "default", "db-0", "\"\"", "42"];
const NAMESPACES: &[&str] = &["ns1", "ns2", "default", "\"\""];
const ACTIONS: &[&str] = &["Allow", "Deny", "Pass", "Drop", "allow"];

const SELECTOR: Shape = Shape::Map(&[
    ("matchLabels", Shape::Labels),
    ("matchExpressions", Shape::Seq(&EXPR)),
]);
const EXPR: Shape = Shape::Map(&[
    ("key", Shape::Str(LABEL_KEYS)),
    ("operator", Shape::Str(OPS)),
    ("values", Shape::Seq(&Shape::Str(LABEL_VALUES))),
]);
const OWNER: Shape = Shape::Map(&[
    (
        "kind",
        Shape::Str(&["ReplicaSet", "StatefulSet", "Node", "\"\""]),
    ),
    ("name", Shape::Str(NAMES)),
    ("controller", Shape::Str(&["true", "false", "yes"])),
]);
const META: Shape = Shape::Map(&[
    ("name", Shape::Str(NAMES)),
    ("namespace", Shape::Str(NAMESPACES)),
    ("labels", Shape::Labels),
    ("ownerReferences", Shape::Seq(&OWNER)),
]);
const CPORT: Shape = Shape::Map(&[
    ("name", Shape::Str(&["http", "dns", "metrics", "\"\""])),
    ("containerPort", Shape::Str(INTS)),
    ("protocol", Shape::Str(PROTOS)),
]);
const CONTAINER: Shape = Shape::Map(&[
    ("name", Shape::Str(&["main"])),
    ("ports", Shape::Seq(&CPORT)),
]);
const POD_SPEC: Shape = Shape::Map(&[("containers", Shape::Seq(&CONTAINER))]);
const TEMPLATE: Shape = Shape::Map(&[("metadata", META), ("spec", POD_SPEC)]);
const IPBLOCK: Shape = Shape::Map(&[
    ("cidr", Shape::Str(CIDRS)),
    ("except", Shape::Seq(&Shape::Str(CIDRS))),
]);
const NP_PEER: Shape = Shape::OneOf(&[
    Shape::Map(&[("podSelector", SELECTOR)]),
    Shape::Map(&[("namespaceSelector", SELECTOR)]),
    Shape::Map(&[("namespaceSelector", SELECTOR), ("podSelector", SELECTOR)]),
    Shape::Map(&[("ipBlock", IPBLOCK)]),
    Shape::Map(&[
        ("podSelector", SELECTOR),
        ("namespaceSelector", SELECTOR),
        ("ipBlock", IPBLOCK),
    ]),
]);
const NP_PORT: Shape = Shape::Map(&[
    ("protocol", Shape::Str(PROTOS)),
    ("port", Shape::Str(PORTS)),
    ("endPort", Shape::Str(INTS)),
]);
const NP_SPEC: Shape = Shape::Map(&[
    ("podSelector", SELECTOR),
    (
        "policyTypes",
        Shape::Seq(&Shape::Str(&["Ingress", "Egress", "Sideways"])),
    ),
    (
        "ingress",
        Shape::Seq(&Shape::Map(&[
            ("from", Shape::Seq(&NP_PEER)),
            ("ports", Shape::Seq(&NP_PORT)),
        ])),
    ),
    (
        "egress",
        Shape::Seq(&Shape::Map(&[
            ("to", Shape::Seq(&NP_PEER)),
            ("ports", Shape::Seq(&NP_PORT)),
        ])),
    ),
]);
const NS_PODS: Shape = Shape::Map(&[("namespaceSelector", SELECTOR), ("podSelector", SELECTOR)]);
const ANP_PEER: Shape = Shape::OneOf(&[
    Shape::Map(&[("namespaces", SELECTOR)]),
    Shape::Map(&[("pods", NS_PODS)]),
    Shape::Map(&[("nodes", SELECTOR)]),
    Shape::Map(&[("networks", Shape::Seq(&Shape::Str(CIDRS)))]),
    Shape::Map(&[
        ("namespaces", SELECTOR),
        ("pods", NS_PODS),
        ("nodes", SELECTOR),
        ("networks", Shape::Seq(&Shape::Str(CIDRS))),
    ]),
]);
const PORT_NUMBER: Shape =
    Shape::Map(&[("protocol", Shape::Str(PROTOS)), ("port", Shape::Str(INTS))]);
const NAMED_PORT: Shape = Shape::Str(&["http", "dns", "nope"]);
const PORT_RANGE: Shape = Shape::Map(&[
    ("protocol", Shape::Str(PROTOS)),
    ("start", Shape::Str(INTS)),
    ("end", Shape::Str(INTS)),
]);
const ANP_PORT: Shape = Shape::OneOf(&[
    Shape::Map(&[("portNumber", PORT_NUMBER)]),
    Shape::Map(&[("namedPort", NAMED_PORT)]),
    Shape::Map(&[("portRange", PORT_RANGE)]),
    Shape::Map(&[
        ("portNumber", PORT_NUMBER),
        ("namedPort", NAMED_PORT),
        ("portRange", PORT_RANGE),
    ]),
]);
const ANP_SPEC: Shape = Shape::Map(&[
    ("priority", Shape::Str(INTS)),
    (
        "subject",
        Shape::OneOf(&[
            Shape::Map(&[("namespaces", SELECTOR)]),
            Shape::Map(&[("pods", NS_PODS)]),
            Shape::Map(&[("namespaces", SELECTOR), ("pods", NS_PODS)]),
        ]),
    ),
    (
        "ingress",
        Shape::Seq(&Shape::Map(&[
            ("name", Shape::Str(&["r1", "\"\""])),
            ("action", Shape::Str(ACTIONS)),
            ("from", Shape::Seq(&ANP_PEER)),
            ("ports", Shape::Seq(&ANP_PORT)),
        ])),
    ),
    (
        "egress",
        Shape::Seq(&Shape::Map(&[
            ("action", Shape::Str(ACTIONS)),
            ("to", Shape::Seq(&ANP_PEER)),
            ("ports", Shape::Seq(&ANP_PORT)),
        ])),
    ),
]);
const NETWORK_POLICY: Shape = Shape::Map(&[
    ("apiVersion", Shape::Fixed("networking.k8s.io/v1")),
    ("kind", Shape::Fixed("NetworkPolicy")),
    ("metadata", META),
    ("spec", NP_SPEC),
]);
const ADMIN_POLICY: Shape = Shape::Map(&[
    (
        "apiVersion",
        Shape::Fixed("policy.networking.k8s.io/v1alpha1"),
    ),
    ("kind", Shape::Fixed("AdminNetworkPolicy")),
    ("metadata", META),
    ("spec", ANP_SPEC),
]);
const BASELINE_POLICY: Shape = Shape::Map(&[
    ("kind", Shape::Fixed("BaselineAdminNetworkPolicy")),
    ("metadata", META),
    ("spec", ANP_SPEC),
]);
const POD: Shape = Shape::Map(&[
    ("apiVersion", Shape::Fixed("v1")),
    ("kind", Shape::Fixed("Pod")),
    ("metadata", META),
    ("spec", POD_SPEC),
    (
        "status",
        Shape::Map(&[(
            "podIP",
            Shape::Str(&["10.244.0.5", "\"fd00::5\"", "bogus", "80"]),
        )]),
    ),
]);
const DEPLOYMENT: Shape = Shape::Map(&[
    ("kind", Shape::Fixed("Deployment")),
    ("metadata", META),
    ("spec", Shape::Map(&[("template", TEMPLATE)])),
]);
const CRON_JOB: Shape = Shape::Map(&[
    ("kind", Shape::Fixed("CronJob")),
    ("metadata", META),
    (
        "spec",
        Shape::Map(&[(
            "jobTemplate",
            Shape::Map(&[("spec", Shape::Map(&[("template", TEMPLATE)]))]),
        )]),
    ),
]);
const NAMESPACE: Shape = Shape::Map(&[("kind", Shape::Fixed("Namespace")), ("metadata", META)]);
const ANY_OBJECT: Shape = Shape::OneOf(&[
    NETWORK_POLICY,
    ADMIN_POLICY,
    BASELINE_POLICY,
    POD,
    DEPLOYMENT,
    CRON_JOB,
    NAMESPACE,
]);
const LIST: Shape = Shape::Map(&[
    ("apiVersion", Shape::Fixed("v1")),
    (
        "kind",
        Shape::Str(&["List", "PodList", "NetworkPolicyList"]),
    ),
    ("items", Shape::Seq(&ANY_OBJECT)),
]);

/// Fields usually present.
const REQUIRED: &[&str] = &[
    "metadata",
    "name",
    "spec",
    "priority",
    "subject",
    "action",
    "from",
    "to",
    "cidr",
    "key",
    "operator",
    "containerPort",
    "template",
    "jobTemplate",
    "items",
];

fn scalar_node(s: &str) -> Node {
    Node::Scalar(s.to_string())
}

/// Documents of one shape; at every node, now and then, a random subtree instead.
fn shaped(shape: Shape) -> BoxedStrategy<Node> {
    let good: BoxedStrategy<Node> = match shape {
        Shape::Fixed(s) => return Just(scalar_node(s)).boxed(),
        // The lists start with ordinary values: favour them, so that many documents load.
        Shape::Str(values) => prop_oneof![
            3 => select(&values[..values.len().div_ceil(2)]),
            1 => select(values),
        ]
        .prop_map(scalar_node)
        .boxed(),
        Shape::Labels => prop::collection::vec((select(LABEL_KEYS), select(LABEL_VALUES)), 0..3)
            .prop_map(|kv| {
                Node::Map(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), scalar_node(v)))
                        .collect(),
                )
            })
            .boxed(),
        Shape::Map(fields) => {
            let parts: Vec<BoxedStrategy<Option<(String, Node)>>> = fields
                .iter()
                .map(|&(k, s)| {
                    let weight = if matches!(s, Shape::Fixed(_)) || REQUIRED.contains(&k) {
                        0.95
                    } else {
                        0.6
                    };
                    prop::option::weighted(weight, shaped(s))
                        .prop_map(move |o| o.map(|n| (k.to_string(), n)))
                        .boxed()
                })
                .collect();
            parts
                .prop_map(|v| Node::Map(v.into_iter().flatten().collect()))
                .boxed()
        }
        Shape::Seq(inner) => prop::collection::vec(shaped(*inner), 0..3)
            .prop_map(Node::Seq)
            .boxed(),
        Shape::OneOf(shapes) => {
            prop::strategy::Union::new(shapes.iter().map(|s| shaped(*s))).boxed()
        }
    };
    prop_oneof![60 => good, 1 => node()].boxed()
}

fn shaped_doc() -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => shaped(NETWORK_POLICY),
        3 => shaped(ADMIN_POLICY),
        1 => shaped(BASELINE_POLICY),
        2 => shaped(POD),
        1 => shaped(DEPLOYMENT),
        1 => shaped(CRON_JOB),
        1 => shaped(NAMESPACE),
        1 => shaped(LIST),
    ]
}

fn render_doc(doc: &Node, st: &mut Styler) -> String {
    let mut out = String::new();
    if st.next().is_multiple_of(8) {
        flow(doc, &mut out, st);
        out.push('\n');
    } else {
        block(doc, "", &mut out, st);
    }
    out
}

fn structured_file() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![4 => shaped_doc(), 1 => freeform_doc()], 1..4),
        prop::collection::vec(any::<u8>(), 1..64),
        prop::collection::vec(select(SEPARATORS), 3),
        0u8..6,
    )
        .prop_map(|(docs, style, seps, lead)| {
            let mut st = Styler {
                bytes: &style,
                i: 0,
            };
            let mut out = String::new();
            match lead {
                0 => out.push('\u{feff}'),
                1 => out.push_str("%YAML 1.2\n---\n"),
                2 => out.push_str("---\n"),
                _ => {}
            }
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str(seps[(i - 1) % seps.len()]);
                }
                out.push_str(&render_doc(d, &mut st));
            }
            out
        })
}

// ---------------------------------------------------------------------------------------------
// Real manifests with random line edits.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Indent(usize, &'static str),
    Dedent(usize, usize),
    ReplaceValue(usize, String),
    InsertTab(usize, usize),
    InsertLine(usize, String),
    Truncate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let idx = 0usize..64;
    prop_oneof![
        1 => idx.clone().prop_map(Edit::Delete),
        1 => idx.clone().prop_map(Edit::Duplicate),
        1 => (idx.clone(), idx.clone()).prop_map(|(a, b)| Edit::Swap(a, b)),
        1 => (idx.clone(), select(&[" ", "  ", "\t", "    "][..])).prop_map(|(i, s)| Edit::Indent(i, s)),
        1 => (idx.clone(), 1usize..4).prop_map(|(i, n)| Edit::Dedent(i, n)),
        3 => (idx.clone(), scalar()).prop_map(|(i, s)| Edit::ReplaceValue(i, s)),
        1 => (idx.clone(), 0usize..40).prop_map(|(i, p)| Edit::InsertTab(i, p)),
        1 => (idx.clone(), (key(), scalar()).prop_map(|(k, v)| format!("{k}: {v}"))).prop_map(|(i, l)| Edit::InsertLine(i, l)),
        1 => (idx, 0usize..40).prop_map(|(i, p)| Edit::Truncate(i, p)),
    ]
}

fn cut(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(lines: &mut Vec<String>, e: &Edit) {
    if lines.is_empty() {
        return;
    }
    let n = lines.len();
    match e {
        Edit::Delete(i) => {
            lines.remove(i % n);
        }
        Edit::Duplicate(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::Swap(a, b) => lines.swap(a % n, b % n),
        Edit::Indent(i, s) => lines[i % n].insert_str(0, s),
        Edit::Dedent(i, k) => {
            let l = &mut lines[i % n];
            let strip = l.len() - l.trim_start_matches(' ').len();
            l.drain(..strip.min(*k));
        }
        Edit::ReplaceValue(i, v) => {
            let l = &mut lines[i % n];
            if let Some(p) = l.find(": ") {
                l.truncate(p + 2);
                l.push_str(v);
            } else if let Some(p) = l.find("- ") {
                l.truncate(p + 2);
                l.push_str(v);
            } else {
                l.push(' ');
                l.push_str(v);
            }
        }
        Edit::InsertTab(i, p) => {
            let l = &mut lines[i % n];
            let at = cut(l, *p);
            l.insert(at, '\t');
        }
        Edit::InsertLine(i, s) => lines.insert(i % (n + 1), s.clone()),
        Edit::Truncate(i, p) => {
            let l = &mut lines[i % n];
            let at = cut(l, *p);
            l.truncate(at);
        }
    }
}

fn edited_manifests() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0..TEMPLATES.len(), 1..4),
        prop::collection::vec(select(SEPARATORS), 3),
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(picks, seps, edits)| {
            let mut lines: Vec<String> = Vec::new();
            for (i, t) in picks.iter().enumerate() {
                if i > 0 {
                    lines.push(
                        seps[(i - 1) % seps.len()]
                            .trim_end_matches('\n')
                            .to_string(),
                    );
                }
                lines.extend(clean_lines(TEMPLATES[*t]));
            }
            for e in &edits {
                apply(&mut lines, e);
            }
            let mut out = lines.join("\n");
            out.push('\n');
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(input in ".*") {
        check(&input)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn kind_prefixed_garbage_never_panics(kind in select(KINDS), rest in "(.|\n){0,200}") {
        check(&format!("kind: {kind}\n{rest}"))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn structured_yaml_never_panics(input in structured_file()) {
        check(&input)?;
    }

    #[test]
    fn edited_real_manifests_never_panic(input in edited_manifests()) {
        check(&input)?;
    }

    /// One typed field of a real manifest gets a value of the wrong type: exactly that
    /// document fails, with an error on the field's own line (after other documents, so the
    /// line is counted across documents).
    #[test]
    fn typed_field_of_wrong_type_points_at_its_line(
        field in select(typed_fields()),
        pick in any::<prop::sample::Index>(),
        // Any templates but the BaselineAdminNetworkPolicy, of which only one may exist.
        before in prop::collection::vec(select(vec![0usize, 1, 3, 4, 5, 6]), 0..3),
    ) {
        let (t, line_idx, ty) = field;
        let bad = pick.get(wrong_values(ty));
        let mut lines: Vec<String> = Vec::new();
        for b in &before {
            lines.extend(clean_lines(TEMPLATES[*b]));
            lines.push("---".to_string());
        }
        let offset = lines.len();
        let mut target = clean_lines(TEMPLATES[t]);
        let l = &mut target[line_idx];
        let colon = l.find(": ").expect("annotated lines hold `key: value`");
        l.truncate(colon + 2);
        l.push_str(bad);
        lines.extend(target);
        let input = lines.join("\n") + "\n";
        let loaded = check(&input)?;
        let want_line = offset + line_idx + 1;
        prop_assert_eq!(
            loaded.errors.len(),
            1,
            "{:?} for a {} field on line {}: {:?}\n{}",
            bad,
            ty,
            want_line,
            loaded.errors,
            input
        );
        let e = &loaded.errors[0];
        prop_assert!((1..=line_count(&input)).contains(&e.line), "{}", e);
        prop_assert_eq!(e.line, want_line, "{:?} for a {} field: {}\n{}", bad, ty, e, input);
        prop_assert!(e.column > 0, "a typed-field error has a column: {}", e);
        prop_assert!(e.reason.starts_with("malformed "), "{}", e);
        // The parser's position counts from the document; only the error's own (the file's)
        // may be shown.
        prop_assert!(!e.reason.contains("line "), "reason repeats a position: {}", e);
    }
}
