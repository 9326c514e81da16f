//! Table-driven semantics of the Kubernetes adapter plus the engine: small clusters written as
//! YAML, loaded with `Manifests::load_str` + `build`, and the connections the engine allows
//! between named workloads and external addresses.

use bulkhead_core::{ConnSet, Endpoint, Engine, IpRange, NAMESPACE_NAME_LABEL};
use bulkhead_k8s::{Loaded, Manifests, build};
use std::net::IpAddr;

const FILE: &str = "f.yaml";

fn load(yaml: &str) -> Loaded {
    let mut m = Manifests::default();
    m.load_str(FILE, yaml);
    build(m)
}

/// Two labelled namespaces and four pods:
/// - `ns1` (team=red): `a` (app=a; http TCP 8080, dns UDP 53, metrics SCTP 9100), `b` (app=b; http TCP 9090)
/// - `ns2` (team=blue): `c` (app=a; http TCP 7070), `d` (app=d; no ports)
const BASE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: ns1
  labels: {team: red}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ns2
  labels: {team: blue}
---
apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: ns1
  labels: {app: a}
spec:
  containers:
  - name: main
    ports:
    - {name: http, containerPort: 8080}
    - {name: dns, containerPort: 53, protocol: UDP}
    - {name: metrics, containerPort: 9100, protocol: SCTP}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns1, labels: {app: b}}
spec:
  containers:
  - name: main
    ports: [{name: http, containerPort: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: ns2, labels: {app: a}}
spec:
  containers:
  - name: main
    ports: [{name: http, containerPort: 7070}]
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: ns2, labels: {app: d}}
spec: {containers: [{name: main}]}
"#;

/// An endpoint: a workload by name, or an IPv4/IPv6 address.
fn endpoint(loaded: &Loaded, spec: &str) -> Endpoint {
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Endpoint::External(match ip {
            IpAddr::V4(a) => IpRange::V4(u32::from(a), u32::from(a)),
            IpAddr::V6(a) => IpRange::V6(u128::from(a), u128::from(a)),
        });
    }
    let found: Vec<usize> = loaded
        .cluster
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.name == spec || format!("{}/{}", w.namespace, w.name) == spec)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "workload {spec:?} must name exactly one workload of {:?}",
        loaded
            .cluster
            .workloads
            .iter()
            .map(|w| w.display_name())
            .collect::<Vec<_>>()
    );
    Endpoint::Workload(found[0])
}

/// One case: a message, policies appended to [`BASE`], and `(src, dst, expected)` checks.
struct Case {
    msg: &'static str,
    yaml: &'static str,
    checks: &'static [(&'static str, &'static str, &'static str)],
}

fn run_cases(cases: &[Case]) {
    for case in cases {
        let text = format!("{BASE}---\n{}", case.yaml);
        let loaded = load(&text);
        assert!(
            loaded.errors.is_empty(),
            "{}: unexpected load errors: {:?}",
            case.msg,
            loaded
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        let engine = Engine::new(&loaded.cluster);
        for (src, dst, want) in case.checks {
            let want: ConnSet = want
                .parse()
                .unwrap_or_else(|e| panic!("{}: bad expectation {want:?}: {e}", case.msg));
            let (s, d) = (endpoint(&loaded, src), endpoint(&loaded, dst));
            let got = engine.allowed(s, d);
            assert_eq!(got, want, "{}: {src} -> {dst}", case.msg);
            // The per-port decision agrees with the set at a few points.
            for (proto, port) in [
                (bulkhead_core::Protocol::Tcp, 80),
                (bulkhead_core::Protocol::Tcp, 8080),
                (bulkhead_core::Protocol::Udp, 53),
                (bulkhead_core::Protocol::Sctp, 9100),
            ] {
                assert_eq!(
                    engine.decide(s, d, proto, port).allowed,
                    want.contains(proto, port),
                    "{}: decide({src} -> {dst}, {proto} {port})",
                    case.msg
                );
            }
        }
    }
}

const ALL: &str = "All Connections";
const NONE: &str = "No Connections";

#[test]
fn base_cluster_is_fully_connected() {
    run_cases(&[Case {
        msg: "no policies: everything is allowed",
        yaml: "kind: ConfigMap\nmetadata: {name: unrelated}\n",
        checks: &[
            ("a", "b", ALL),
            ("b", "a", ALL),
            ("c", "d", ALL),
            ("a", "8.8.8.8", ALL),
            ("8.8.8.8", "d", ALL),
            ("a", "2001:db8::1", ALL),
            ("1.2.3.4", "5.6.7.8", NONE),
        ],
    }]);
}

#[test]
fn network_policy_types_defaulting() {
    run_cases(&[
        Case {
            msg: "no policyTypes and only ingress rules: ingress isolated, egress not",
            yaml: r#"kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 80}]
"#,
            checks: &[
                ("b", "a", "TCP 80"),
                ("d", "a", NONE),
                ("1.2.3.4", "a", NONE),
                ("a", "b", ALL),
                ("a", "1.2.3.4", ALL),
                ("a", "d", ALL),
                ("d", "b", ALL),
            ],
        },
        Case {
            msg: "no policyTypes and egress rules: egress isolated, and ingress too (always defaulted)",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  egress:
  - to: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 443}]
"#,
            checks: &[
                ("a", "b", "TCP 443"),
                ("a", "d", NONE),
                ("a", "8.8.8.8", NONE),
                ("b", "a", NONE),
                ("8.8.8.8", "a", NONE),
                ("b", "d", ALL),
            ],
        },
        Case {
            msg: "no policyTypes and an empty egress list: egress not isolated",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  egress: []
"#,
            checks: &[("a", "b", ALL), ("a", "8.8.8.8", ALL), ("b", "a", NONE)],
        },
        Case {
            msg: "policyTypes [Egress] without egress rules: all egress denied, ingress open",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
"#,
            checks: &[
                ("a", "b", NONE),
                ("a", "c", NONE),
                ("a", "1.1.1.1", NONE),
                ("a", "fd00::1", NONE),
                ("b", "a", ALL),
                ("1.1.1.1", "a", ALL),
            ],
        },
        Case {
            msg: "policyTypes [Egress] with ingress rules: the ingress rules are ignored",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: b}}}]
  egress:
  - ports: [{protocol: UDP, port: 53}]
"#,
            checks: &[
                ("b", "a", ALL),
                ("d", "a", ALL),
                ("a", "b", "UDP 53"),
                ("a", "9.9.9.9", "UDP 53"),
            ],
        },
        Case {
            msg: "policyTypes [Ingress, Egress] with no rules: fully isolated",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
"#,
            checks: &[
                ("a", "b", NONE),
                ("b", "a", NONE),
                ("a", "9.9.9.9", NONE),
                ("b", "c", ALL),
            ],
        },
        Case {
            msg: "empty podSelector selects every pod of the policy's namespace only",
            yaml: r#"kind: NetworkPolicy
metadata: {name: deny-all, namespace: ns1}
spec:
  podSelector: {}
"#,
            checks: &[
                ("b", "a", NONE),
                ("a", "b", NONE),
                ("c", "a", NONE),
                ("a", "c", ALL),
                ("c", "d", ALL),
            ],
        },
        Case {
            msg: "a policy without namespace lives in default and selects nothing in ns1",
            yaml: r#"kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
"#,
            checks: &[("b", "a", ALL), ("a", "b", ALL)],
        },
        Case {
            msg: "two policies selecting one workload: their allows add up",
            yaml: r#"kind: NetworkPolicy
metadata: {name: one, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{port: 80}]}]
---
kind: NetworkPolicy
metadata: {name: two, namespace: ns1}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 443}]}]
"#,
            checks: &[
                ("b", "a", "TCP 80,443"),
                ("d", "a", "TCP 80"),
                ("a", "b", NONE),
            ],
        },
    ]);
}

#[test]
fn network_policy_peers() {
    run_cases(&[
        Case {
            msg: "missing from: every source, pods and addresses",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{port: 80}]}]
"#,
            checks: &[
                ("b", "a", "TCP 80"),
                ("d", "a", "TCP 80"),
                ("1.2.3.4", "a", "TCP 80"),
                ("2001:db8::1", "a", "TCP 80"),
            ],
        },
        Case {
            msg: "empty from list: every source, like a missing from",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [], ports: [{port: 80}]}]
"#,
            checks: &[
                ("b", "a", "TCP 80"),
                ("d", "a", "TCP 80"),
                ("1.2.3.4", "a", "TCP 80"),
            ],
        },
        Case {
            msg: "an empty rule allows everything; an empty ingress list allows nothing",
            yaml: r#"kind: NetworkPolicy
metadata: {name: open, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{}]
---
kind: NetworkPolicy
metadata: {name: closed, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: []
"#,
            checks: &[
                ("d", "a", ALL),
                ("1.2.3.4", "a", ALL),
                ("a", "b", NONE),
                ("1.2.3.4", "b", NONE),
            ],
        },
        Case {
            msg: "podSelector-only peer: pods of the policy's own namespace",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {}}]}]
"#,
            checks: &[
                ("b", "a", ALL),
                ("a", "a", ALL),
                ("c", "a", NONE),
                ("d", "a", NONE),
                ("1.2.3.4", "a", NONE),
            ],
        },
        Case {
            msg: "namespaceSelector-only peer: every pod of the matching namespaces",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]
"#,
            checks: &[
                ("c", "a", ALL),
                ("d", "a", ALL),
                ("b", "a", NONE),
                ("1.2.3.4", "a", NONE),
            ],
        },
        Case {
            msg: "namespaceSelector on kubernetes.io/metadata.name",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [ns2]}
"#,
            checks: &[("c", "a", ALL), ("d", "a", ALL), ("b", "a", NONE)],
        },
        Case {
            msg: "empty namespaceSelector: every pod of every namespace, but no address",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{namespaceSelector: {}}]}]
"#,
            checks: &[("c", "a", ALL), ("b", "a", ALL), ("1.2.3.4", "a", NONE)],
        },
        Case {
            msg: "namespaceSelector and podSelector in one peer: both must hold",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}
      podSelector: {matchLabels: {app: a}}
"#,
            checks: &[("c", "a", ALL), ("d", "a", NONE), ("b", "a", NONE)],
        },
        Case {
            msg: "namespaceSelector and podSelector as two peers: either may hold",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}
    - podSelector: {matchLabels: {app: b}}
"#,
            checks: &[
                ("c", "a", ALL),
                ("d", "a", ALL),
                ("b", "a", ALL),
                ("1.2.3.4", "a", NONE),
            ],
        },
        Case {
            msg: "matchExpressions NotIn / DoesNotExist in a peer",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns2}
spec:
  podSelector: {matchLabels: {app: d}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector:
        matchExpressions:
        - {key: app, operator: NotIn, values: [b, d]}
        - {key: tier, operator: DoesNotExist}
"#,
            checks: &[
                ("a", "d", ALL),
                ("c", "d", ALL),
                ("b", "d", NONE),
                ("d", "d", NONE),
            ],
        },
        Case {
            msg: "IPv4 ipBlock with except, egress",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4/32]}}]
"#,
            checks: &[
                ("a", "10.0.0.1", ALL),
                ("a", "10.255.255.255", ALL),
                ("a", "10.1.2.3", NONE),
                ("a", "10.2.3.4", NONE),
                ("a", "10.2.3.5", ALL),
                ("a", "11.0.0.0", NONE),
                ("a", "9.255.255.255", NONE),
                ("a", "fd00::1", NONE),
                ("a", "b", NONE),
            ],
        },
        Case {
            msg: "IPv6 ipBlock with except, ingress",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{ipBlock: {cidr: "fd00::/8", except: ["fd00:1::/32"]}}]
    ports: [{port: 443}]
"#,
            checks: &[
                ("fd00::1", "a", "TCP 443"),
                ("fdff:ffff::1", "a", "TCP 443"),
                ("fd00:1::5", "a", NONE),
                ("fd00:1:ffff::", "a", NONE),
                ("fd00:2::", "a", "TCP 443"),
                ("2001:db8::1", "a", NONE),
                ("10.0.0.1", "a", NONE),
                ("b", "a", NONE),
            ],
        },
        Case {
            msg: "ipBlock host bits are masked, as Kubernetes does",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 192.168.1.77/24}}]}]
"#,
            checks: &[
                ("a", "192.168.1.0", ALL),
                ("a", "192.168.1.255", ALL),
                ("a", "192.168.2.0", NONE),
            ],
        },
    ]);
}

#[test]
fn network_policy_ports() {
    run_cases(&[
        Case {
            msg: "ports by number, default TCP, and explicit UDP/SCTP",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - ports:
    - port: 80
    - {protocol: UDP, port: 53}
    - {protocol: SCTP, port: 9100}
"#,
            checks: &[("b", "a", "SCTP 9100,TCP 80,UDP 53")],
        },
        Case {
            msg: "a port given as a quoted number is that number",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{port: "8443"}]}]
"#,
            checks: &[("b", "a", "TCP 8443")],
        },
        Case {
            msg: "a protocol without port covers all its ports",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{protocol: UDP}]}]
"#,
            checks: &[("b", "a", "UDP 1-65535")],
        },
        Case {
            msg: "endPort ranges, including the full range and a single-port range",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - ports:
    - {port: 8000, endPort: 8080}
    - {protocol: UDP, port: 1, endPort: 65535}
    - {protocol: SCTP, port: 5000, endPort: 5000}
"#,
            checks: &[("b", "a", "SCTP 5000,TCP 8000-8080,UDP 1-65535")],
        },
        Case {
            msg: "named port resolves against the destination's containerPorts (TCP by default)",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {}
  ingress: [{ports: [{port: http}]}]
"#,
            checks: &[
                ("d", "a", "TCP 8080"),
                ("d", "b", "TCP 9090"),
                ("1.2.3.4", "a", "TCP 8080"),
            ],
        },
        Case {
            msg: "named port of another protocol does not match the rule's default TCP",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{port: dns}, {port: metrics}]}]
"#,
            checks: &[("b", "a", NONE)],
        },
        Case {
            msg: "named port with the matching protocol",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - ports: [{port: dns, protocol: UDP}, {port: metrics, protocol: SCTP}, {port: http, protocol: UDP}]
"#,
            checks: &[("b", "a", "SCTP 9100,UDP 53")],
        },
        Case {
            msg: "named port the destination does not have matches nothing",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns2}
spec:
  podSelector: {matchLabels: {app: d}}
  ingress: [{ports: [{port: http}]}]
"#,
            checks: &[("a", "d", NONE), ("c", "d", NONE)],
        },
        Case {
            msg: "egress named port resolves per destination and never matches an address",
            yaml: r#"kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
"#,
            checks: &[
                ("a", "b", "TCP 9090"),
                ("a", "c", "TCP 7070"),
                ("a", "d", NONE),
                ("a", "1.2.3.4", NONE),
            ],
        },
        Case {
            msg: "a connection needs both the source's egress and the destination's ingress",
            yaml: r#"kind: NetworkPolicy
metadata: {name: out, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 80, endPort: 90}, {protocol: UDP}]}]
---
kind: NetworkPolicy
metadata: {name: in, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{ports: [{port: 85, endPort: 100}, {protocol: SCTP}]}]
"#,
            checks: &[
                ("a", "b", "TCP 85-90"),
                ("a", "c", "TCP 80-90,UDP 1-65535"),
                ("d", "b", "SCTP 1-65535,TCP 85-100"),
                ("a", "8.8.8.8", "TCP 80-90,UDP 1-65535"),
                ("8.8.8.8", "b", "SCTP 1-65535,TCP 85-100"),
            ],
        },
    ]);
}

#[test]
fn admin_network_policy_precedence() {
    run_cases(&[
        Case {
            msg: "lower priority number wins: Deny at 10 beats Allow at 20",
            yaml: r#"apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-b}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  ingress:
  - {name: deny, action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-b}
spec:
  priority: 20
  subject: {namespaces: {}}
  ingress:
  - {action: Allow, from: [{namespaces: {}}]}
"#,
            checks: &[
                ("b", "a", NONE),
                ("b", "c", NONE),
                ("d", "a", ALL),
                ("a", "b", ALL),
            ],
        },
        Case {
            msg: "lower priority number wins: Allow at 5 beats Deny at 10, and beats NetworkPolicy",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: deny-b}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
---
kind: AdminNetworkPolicy
metadata: {name: allow-b}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - {action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: ns1}
spec: {podSelector: {}}
"#,
            checks: &[
                ("b", "a", ALL),
                ("b", "b", ALL),
                ("d", "a", NONE),
                ("c", "b", NONE),
                ("1.2.3.4", "a", NONE),
            ],
        },
        Case {
            msg: "within one ANP the first matching rule decides",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 1
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - {action: Allow, from: [{namespaces: {}}], ports: [{portNumber: {protocol: TCP, port: 80}}]}
  - {action: Deny, from: [{namespaces: {}}]}
"#,
            checks: &[("c", "a", "TCP 80"), ("a", "b", "TCP 80"), ("a", "c", ALL)],
        },
        Case {
            msg: "equal priorities are ordered by name",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: b-allow}
spec:
  priority: 7
  subject: {namespaces: {}}
  ingress: [{action: Allow, from: [{namespaces: {}}]}]
---
kind: AdminNetworkPolicy
metadata: {name: a-deny}
spec:
  priority: 7
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
"#,
            checks: &[("a", "b", NONE), ("c", "d", NONE), ("1.2.3.4", "a", ALL)],
        },
        Case {
            msg: "Pass falls to the NetworkPolicy layer when a NetworkPolicy selects",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: pass}
spec:
  priority: 1
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - {action: Pass, from: [{namespaces: {matchLabels: {team: red}}}]}
  - {action: Deny, from: [{namespaces: {}}]}
---
kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 80}]}]
---
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
"#,
            checks: &[
                ("b", "a", "TCP 80"),
                ("a", "a", NONE),
                ("d", "a", NONE),
                ("a", "b", NONE),
                ("1.2.3.4", "a", NONE),
                ("1.2.3.4", "b", ALL),
            ],
        },
        Case {
            msg: "Pass with no NetworkPolicy selecting falls to the baseline, then to allow",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: pass}
spec:
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
  - {action: Pass, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: d}}}}]}
---
kind: AdminNetworkPolicy
metadata: {name: deny}
spec:
  priority: 2
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
---
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: d}}}}]}]
"#,
            checks: &[
                ("b", "a", ALL),
                ("d", "a", NONE),
                ("c", "a", NONE),
                ("1.2.3.4", "a", ALL),
            ],
        },
        Case {
            msg: "Pass on some ports only: the rest continue through the admin rules",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  ingress:
  - action: Pass
    from: [{namespaces: {}}]
    ports: [{portRange: {protocol: TCP, start: 80, end: 81}}]
  - {action: Deny, from: [{namespaces: {}}]}
---
kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{ports: [{port: 81, endPort: 90}]}]
"#,
            checks: &[("b", "a", "TCP 81"), ("b", "c", "TCP 80-81")],
        },
        Case {
            msg: "ANP namedPort takes the container port's own protocol",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject: {namespaces: {}}
  ingress:
  - action: Allow
    from: [{namespaces: {}}]
    ports: [{namedPort: dns}, {namedPort: metrics}]
  - {action: Deny, from: [{namespaces: {}}]}
"#,
            checks: &[
                ("b", "a", "SCTP 9100,UDP 53"),
                ("a", "b", NONE),
                ("1.2.3.4", "a", ALL),
            ],
        },
        Case {
            msg: "ANP portRange and portNumber",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
    ports:
    - portRange: {protocol: UDP, start: 1000, end: 2000}
    - portNumber: {port: 22}
"#,
            checks: &[(
                "c",
                "a",
                "SCTP 1-65535,TCP 1-21,23-65535,UDP 1-999,2001-65535",
            )],
        },
        Case {
            msg: "ANP networks peers (egress), IPv4 and IPv6",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject: {pods: {namespaceSelector: {matchLabels: {team: red}}, podSelector: {matchLabels: {app: a}}}}
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8, "2001:db8::/32"]}]
  - action: Allow
    to: [{networks: [0.0.0.0/0]}]
    ports: [{portNumber: {protocol: TCP, port: 443}}]
  - action: Deny
    to: [{networks: ["0.0.0.0/0", "::/0"]}]
"#,
            checks: &[
                ("a", "10.1.1.1", NONE),
                ("a", "11.0.0.1", "TCP 443"),
                ("a", "2001:db8::1", NONE),
                ("a", "2001:db9::1", NONE),
                ("a", "b", ALL),
                ("c", "11.0.0.1", ALL),
            ],
        },
        Case {
            msg: "ANP subject by pods: only pods matching both selectors",
            yaml: r#"kind: AdminNetworkPolicy
metadata: {name: anp}
spec:
  priority: 3
  subject:
    pods:
      namespaceSelector: {matchLabels: {team: red}}
      podSelector: {matchLabels: {app: a}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
"#,
            checks: &[
                ("b", "a", NONE),
                ("d", "a", NONE),
                ("b", "c", ALL),
                ("a", "b", ALL),
                ("1.2.3.4", "a", ALL),
            ],
        },
    ]);
}

#[test]
fn baseline_admin_network_policy() {
    run_cases(&[
        Case {
            msg: "BANP rules in order: Allow before Deny",
            yaml: r#"kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
  - {action: Deny, from: [{namespaces: {}}]}
"#,
            checks: &[
                ("b", "a", ALL),
                ("b", "d", ALL),
                ("d", "a", NONE),
                ("a", "a", NONE),
                ("1.2.3.4", "a", ALL),
            ],
        },
        Case {
            msg: "BANP rules in order: Deny before Allow",
            yaml: r#"kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
  - {action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
"#,
            checks: &[("b", "a", NONE), ("d", "a", NONE)],
        },
        Case {
            msg: "a NetworkPolicy selecting the workload overrides the baseline",
            yaml: r#"kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
  egress: [{action: Deny, to: [{networks: [0.0.0.0/0]}]}]
---
kind: NetworkPolicy
metadata: {name: np, namespace: ns1}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]
"#,
            checks: &[
                ("d", "a", ALL),
                ("c", "a", ALL),
                ("b", "a", NONE),
                ("a", "b", NONE),
                ("a", "1.1.1.1", NONE),
                ("a", "fd00::1", ALL),
            ],
        },
        Case {
            msg: "an ANP Allow overrides a baseline Deny",
            yaml: r#"kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{namespaces: {}}]}]
---
kind: AdminNetworkPolicy
metadata: {name: dns}
spec:
  priority: 0
  subject: {namespaces: {}}
  egress:
  - action: Allow
    to: [{pods: {namespaceSelector: {matchLabels: {team: red}}, podSelector: {matchLabels: {app: a}}}}]
    ports: [{portNumber: {protocol: UDP, port: 53}}]
"#,
            checks: &[
                ("b", "a", "UDP 53"),
                ("d", "a", "UDP 53"),
                ("d", "c", NONE),
                ("d", "1.1.1.1", ALL),
            ],
        },
    ]);
}

/// Loads `yaml`, expects exactly one error, and checks it against the message, the line and a
/// fragment of the reason.
fn expect_error(msg: &str, yaml: &str, line: usize, fragment: &str) {
    let loaded = load(yaml);
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        loaded.errors.len(),
        1,
        "{msg}: expected one error: {errors:?}"
    );
    let e = &loaded.errors[0];
    assert_eq!(e.file, FILE, "{msg}: {e}");
    assert_eq!(e.line, line, "{msg}: line of {e}");
    assert!(
        e.reason.contains(fragment),
        "{msg}: reason {:?} should mention {fragment:?}",
        e.reason
    );
}

#[test]
fn malformed_policies_are_errors_with_file_and_line() {
    // The preamble takes lines 1-3, so every bad document starts on line 4.
    const PRE: &str = "kind: Namespace\nmetadata: {name: x}\n---\n";
    let np = |spec: &str| {
        format!("{PRE}kind: NetworkPolicy\nmetadata: {{name: bad, namespace: x}}\nspec:\n{spec}")
    };
    let anp = |spec: &str| {
        format!(
            "{PRE}kind: AdminNetworkPolicy\nmetadata: {{name: bad}}\nspec:\n  subject: {{namespaces: {{}}}}\n{spec}"
        )
    };
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "invalid CIDR prefix",
            np("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n"),
            4,
            "invalid CIDR \"10.0.0.0/33\"",
        ),
        (
            "CIDR without prefix",
            np("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]\n"),
            4,
            "spec.ingress[0].from[0]: ipBlock.cidr",
        ),
        (
            "invalid except",
            np(
                "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [\"fd00::/200\"]}}]}]\n",
            ),
            4,
            "ipBlock.except",
        ),
        (
            "unknown selector operator",
            np(
                "  podSelector:\n    matchExpressions: [{key: app, operator: Equals, values: [a]}]\n",
            ),
            4,
            "unknown operator \"Equals\"",
        ),
        (
            "In without values",
            np("  podSelector:\n    matchExpressions: [{key: app, operator: In}]\n"),
            4,
            "needs at least one value",
        ),
        (
            "Exists with values",
            np(
                "  podSelector:\n    matchExpressions: [{key: app, operator: Exists, values: [x]}]\n",
            ),
            4,
            "must not have values",
        ),
        (
            "endPort below port",
            np("  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 79}]}]\n"),
            4,
            "endPort 79 is below port 80",
        ),
        (
            "endPort without port",
            np("  podSelector: {}\n  ingress: [{ports: [{endPort: 79}]}]\n"),
            4,
            "endPort needs port",
        ),
        (
            "endPort with a named port",
            np("  podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]\n"),
            4,
            "endPort cannot be used with a named port",
        ),
        (
            "port out of range (0)",
            np("  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]\n"),
            4,
            "port 0 is out of range",
        ),
        (
            "negative port",
            np("  podSelector: {}\n  ingress: [{ports: [{port: -5}]}]\n"),
            4,
            "port -5 is out of range",
        ),
        (
            "port above 65535 written as a string",
            np("  podSelector: {}\n  egress: [{ports: [{port: \"70000\"}]}]\n"),
            4,
            "port 70000 is out of range",
        ),
        (
            "unknown protocol",
            np("  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP, port: 1}]}]\n"),
            4,
            "unknown protocol \"ICMP\"",
        ),
        (
            "unknown policy type",
            np("  podSelector: {}\n  policyTypes: [Ingress, Sideways]\n"),
            4,
            "unknown type \"Sideways\"",
        ),
        (
            "ipBlock mixed with podSelector",
            np(
                "  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]\n",
            ),
            4,
            "ipBlock cannot be combined",
        ),
        (
            "ipBlock mixed with namespaceSelector",
            np(
                "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]}]\n",
            ),
            4,
            "spec.egress[0].to[0]: ipBlock cannot be combined",
        ),
        (
            "empty peer",
            np("  podSelector: {}\n  ingress: [{from: [{}]}]\n"),
            4,
            "empty peer",
        ),
        (
            "ANP priority 1001",
            anp("  priority: 1001\n"),
            4,
            "spec.priority 1001 is out of range 0-1000",
        ),
        (
            "ANP negative priority",
            anp("  priority: -1\n"),
            4,
            "out of range 0-1000",
        ),
        (
            "ANP without priority",
            anp("  ingress: [{action: Allow, from: [{namespaces: {}}]}]\n"),
            4,
            "spec.priority is missing",
        ),
        (
            "ANP unknown action",
            anp("  priority: 1\n  ingress: [{action: Drop, from: [{namespaces: {}}]}]\n"),
            4,
            "spec.ingress[0].action: \"Drop\"",
        ),
        (
            "ANP rule without action",
            anp("  priority: 1\n  egress: [{to: [{namespaces: {}}]}]\n"),
            4,
            "spec.egress[0].action is missing",
        ),
        (
            "ANP rule without peers",
            anp("  priority: 1\n  ingress: [{action: Deny}]\n"),
            4,
            "must list at least one peer",
        ),
        (
            "ANP peer with two kinds",
            anp(
                "  priority: 1\n  ingress: [{action: Deny, from: [{namespaces: {}, pods: {podSelector: {}}}]}]\n",
            ),
            4,
            "give exactly one of namespaces, pods",
        ),
        (
            "ANP networks in ingress",
            anp("  priority: 1\n  ingress: [{action: Deny, from: [{networks: [10.0.0.0/8]}]}]\n"),
            4,
            "networks peers are only allowed in egress rules",
        ),
        (
            "ANP invalid network",
            anp("  priority: 1\n  egress: [{action: Deny, to: [{networks: [10.0.0.0/40]}]}]\n"),
            4,
            "spec.egress[0].to[0].networks: invalid CIDR",
        ),
        (
            "ANP portRange end below start",
            anp(
                "  priority: 1\n  egress: [{action: Deny, to: [{namespaces: {}}], ports: [{portRange: {start: 90, end: 80}}]}]\n",
            ),
            4,
            "portRange end 80 is below start 90",
        ),
        (
            "ANP port with two forms",
            anp(
                "  priority: 1\n  egress: [{action: Deny, to: [{namespaces: {}}], ports: [{namedPort: x, portNumber: {port: 1}}]}]\n",
            ),
            4,
            "give exactly one of portNumber, namedPort or portRange",
        ),
        (
            "ANP portNumber 65536",
            anp(
                "  priority: 1\n  egress: [{action: Deny, to: [{namespaces: {}}], ports: [{portNumber: {port: 65536}}]}]\n",
            ),
            4,
            "portNumber.port 65536 is out of range",
        ),
        (
            "ANP subject with both namespaces and pods",
            format!(
                "{PRE}kind: AdminNetworkPolicy\nmetadata: {{name: bad}}\nspec:\n  priority: 1\n  subject: {{namespaces: {{}}, pods: {{podSelector: {{}}}}}}\n"
            ),
            4,
            "spec.subject needs exactly one of namespaces or pods",
        ),
        (
            "ANP without subject",
            format!(
                "{PRE}kind: AdminNetworkPolicy\nmetadata: {{name: bad}}\nspec:\n  priority: 1\n"
            ),
            4,
            "spec.subject is missing",
        ),
        (
            "BANP not named default",
            format!(
                "{PRE}kind: BaselineAdminNetworkPolicy\nmetadata: {{name: mine}}\nspec:\n  subject: {{namespaces: {{}}}}\n"
            ),
            4,
            "must be named \"default\"",
        ),
        (
            "BANP with Pass",
            format!(
                "{PRE}kind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {{}}}}\n  ingress: [{{action: Pass, from: [{{namespaces: {{}}}}]}}]\n"
            ),
            4,
            "expected Allow or Deny",
        ),
        (
            "a second BANP",
            format!(
                "{PRE}kind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {{}}}}\n---\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {{}}}}\n"
            ),
            9,
            "only one BaselineAdminNetworkPolicy",
        ),
        (
            "policy without name",
            format!(
                "{PRE}kind: NetworkPolicy\nmetadata: {{namespace: x}}\nspec: {{podSelector: {{}}}}\n"
            ),
            4,
            "metadata.name is missing",
        ),
        (
            "NetworkPolicy without spec",
            format!("{PRE}kind: NetworkPolicy\nmetadata: {{name: np}}\n"),
            4,
            "spec is missing",
        ),
        (
            "a typed field of the wrong type points at its own line",
            np("  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n      endPort: [1]\n"),
            11,
            "malformed NetworkPolicy",
        ),
        (
            "a string priority points at its own line",
            anp("  priority: high\n"),
            8,
            "malformed AdminNetworkPolicy",
        ),
        (
            "list items keep the list's line and name the item",
            format!(
                "{PRE}apiVersion: v1\nkind: List\nitems:\n- kind: NetworkPolicy\n  metadata: {{name: ok}}\n  spec: {{podSelector: {{}}}}\n- kind: NetworkPolicy\n  metadata: {{name: bad}}\n  spec: {{podSelector: {{}}, ingress: [{{ports: [{{port: 99999}}]}}]}}\n"
            ),
            4,
            "items[1]: NetworkPolicy bad",
        ),
        (
            "a pod with an out-of-range containerPort",
            format!(
                "{PRE}kind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c, ports: [{{name: web, containerPort: 70000}}]}}]}}\n"
            ),
            4,
            "containerPort 70000 is out of range",
        ),
    ];
    for (msg, yaml, line, fragment) in cases {
        expect_error(msg, &yaml, line, fragment);
    }
}

#[test]
fn workloads_are_pods_grouped_by_controller() {
    let yaml = r#"kind: Pod
metadata:
  name: web-7d9f-aaaa
  namespace: shop
  labels: {app: web}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, controller: true}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.244.0.5}
---
kind: Pod
metadata:
  name: web-7d9f-bbbb
  namespace: shop
  labels: {app: web}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, controller: true}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}, {name: admin, containerPort: 81}]}]}
status: {podIP: 10.244.0.6}
---
kind: Pod
metadata: {name: lonely, namespace: shop, labels: {app: lonely}}
spec: {containers: [{name: c}]}
---
kind: Pod
metadata:
  name: not-controlled
  namespace: shop
  ownerReferences: [{kind: ReplicaSet, name: web-7d9f}]
---
kind: Pod
metadata:
  name: static-node1
  namespace: kube-system
  ownerReferences: [{kind: Node, name: node1, controller: true}]
---
kind: Pod
metadata:
  name: db-0
  ownerReferences: [{kind: StatefulSet, name: db, controller: true}]
---
kind: Deployment
apiVersion: apps/v1
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, ports: [{name: grpc, containerPort: 9000, protocol: TCP}]}]}
---
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  jobTemplate:
    spec:
      template:
        metadata: {labels: {job: nightly}}
        spec: {containers: [{name: c}]}
"#;
    let loaded = load(yaml);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let got: Vec<(String, Vec<String>)> = loaded
        .cluster
        .workloads
        .iter()
        .map(|w| (w.display_name(), w.members.clone()))
        .collect();
    let want: Vec<(String, Vec<String>)> = [
        (
            "shop/web-7d9f[ReplicaSet]",
            &["web-7d9f-aaaa", "web-7d9f-bbbb"][..],
        ),
        ("shop/lonely[Pod]", &["lonely"][..]),
        ("shop/not-controlled[Pod]", &["not-controlled"][..]),
        ("kube-system/static-node1[Pod]", &["static-node1"][..]),
        ("default/db[StatefulSet]", &["db-0"][..]),
        ("shop/api[Deployment]", &["api"][..]),
        ("shop/nightly[CronJob]", &["nightly"][..]),
    ]
    .iter()
    .map(|(n, m)| (n.to_string(), m.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(
        got, want,
        "pods group by controlling owner; ownerless, non-controller-owned and Node-owned pods stand alone"
    );

    let web = &loaded.cluster.workloads[0];
    let ports: Vec<(&str, u16)> = web
        .named_ports
        .iter()
        .map(|p| (p.name.as_str(), p.port))
        .collect();
    assert_eq!(
        ports,
        vec![("http", 80), ("admin", 81)],
        "named ports of all member pods are merged without duplicates"
    );
    assert_eq!(
        web.addresses.len(),
        2,
        "both pod IPs are recorded for the workload"
    );
    assert_eq!(
        loaded.cluster.workloads[5]
            .labels
            .get("app")
            .map(String::as_str),
        Some("api"),
        "a Deployment's labels come from its pod template"
    );
    assert_eq!(
        loaded.cluster.workloads[6]
            .labels
            .get("job")
            .map(String::as_str),
        Some("nightly"),
        "a CronJob's labels come from its job template"
    );
}

#[test]
fn namespaces_always_carry_their_name_label() {
    let yaml = r#"kind: Namespace
metadata:
  name: labelled
  labels: {team: red, kubernetes.io/metadata.name: spoofed}
---
kind: Namespace
metadata: {name: bare}
---
kind: Pod
metadata: {name: p, namespace: implicit}
---
kind: NetworkPolicy
metadata: {name: np, namespace: policy-only}
spec: {podSelector: {}}
---
kind: Pod
metadata: {name: q}
"#;
    let loaded = load(yaml);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    for ns in ["labelled", "bare", "implicit", "policy-only", "default"] {
        let labels = loaded
            .cluster
            .namespaces
            .get(ns)
            .unwrap_or_else(|| panic!("namespace {ns} should exist"));
        assert_eq!(
            labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some(ns),
            "namespace {ns} carries {NAMESPACE_NAME_LABEL} with its own name"
        );
    }
    assert_eq!(
        loaded.cluster.namespaces["labelled"]
            .get("team")
            .map(String::as_str),
        Some("red"),
        "declared labels are kept"
    );
    assert_eq!(
        loaded.cluster.namespaces.len(),
        5,
        "exactly the declared and referenced namespaces"
    );
}

const TWO_PODS_ONE_OWNER: &str = r#"kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web, version: v1}
  ownerReferences: [{kind: ReplicaSet, name: web, controller: true}]
---
kind: Pod
metadata:
  name: web-2
  namespace: shop
  labels: {app: web, version: v2}
  ownerReferences: [{kind: ReplicaSet, name: web, controller: true}]
---
"#;

#[test]
fn pods_of_one_owner_told_apart_by_a_policy_are_an_error() {
    let cases: &[(&str, &str, Option<usize>)] = &[
        (
            "a NetworkPolicy subject selecting one version",
            "kind: NetworkPolicy\nmetadata: {name: v1-only, namespace: shop}\nspec:\n  podSelector: {matchLabels: {version: v1}}\n",
            Some(15),
        ),
        (
            "a NetworkPolicy peer selecting one version",
            "kind: NetworkPolicy\nmetadata: {name: peer, namespace: shop}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: version, operator: NotIn, values: [v2]}]}}]}]\n",
            Some(15),
        ),
        (
            "an ANP peer selecting one version",
            "kind: AdminNetworkPolicy\nmetadata: {name: anp}\nspec:\n  priority: 1\n  subject: {namespaces: {}}\n  egress: [{action: Deny, to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {version: v2}}}}]}]\n",
            Some(15),
        ),
        (
            "policies selecting on the shared label only",
            "kind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: version, operator: Exists}]}}]}]\n",
            None,
        ),
        (
            "a version selector in another namespace's policy subject",
            "kind: NetworkPolicy\nmetadata: {name: elsewhere, namespace: other}\nspec:\n  podSelector: {matchLabels: {version: v1}}\n",
            None,
        ),
        (
            "no policies at all",
            "kind: Namespace\nmetadata: {name: shop}\n",
            None,
        ),
    ];
    for (msg, policy, error_line) in cases {
        let loaded = load(&format!("{TWO_PODS_ONE_OWNER}{policy}"));
        assert_eq!(
            loaded.cluster.workloads.len(),
            1,
            "{msg}: both pods form one workload"
        );
        assert_eq!(
            loaded.cluster.workloads[0].label_variants.len(),
            2,
            "{msg}: both label sets are kept"
        );
        match error_line {
            Some(line) => {
                assert_eq!(loaded.errors.len(), 1, "{msg}: {:?}", loaded.errors);
                let e = &loaded.errors[0];
                assert_eq!((e.file.as_str(), e.line), (FILE, *line), "{msg}: {e}");
                for needle in ["web-1", "web-2", "version", "shop/web[ReplicaSet]"] {
                    assert!(
                        e.reason.contains(needle),
                        "{msg}: {e} should mention {needle}"
                    );
                }
                assert_eq!(
                    e.reason.matches("version: ").count(),
                    1,
                    "{msg}: each differing label is listed once: {e}"
                );
                assert!(
                    !e.reason.contains("app: "),
                    "{msg}: labels the pods share are not listed: {e}"
                );
            }
            None => assert!(
                loaded.errors.is_empty(),
                "{msg}: no selector tells the pods apart: {:?}",
                loaded.errors
            ),
        }
    }
}

#[test]
fn cluster_network_policy_tiers_actions_and_protocols() {
    use bulkhead_core::Protocol::{Sctp, Tcp, Udp};
    let allowed = |yaml: &str, src: &str, dst: &str| {
        let loaded = load(&format!("{BASE}---\n{yaml}"));
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let engine = Engine::new(&loaded.cluster);
        engine.allowed(endpoint(&loaded, src), endpoint(&loaded, dst))
    };
    // Admin tier: Accept decides before NetworkPolicy (ns1 is deny-all); pods without a
    // namespaceSelector are pods of every namespace.
    let admin = r#"apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: accept-d}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {team: red}}}
  ingress:
  - {action: Accept, from: [{pods: {podSelector: {matchLabels: {app: d}}}}]}
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: ns1}
spec: {podSelector: {}}
"#;
    assert!(allowed(admin, "d", "a").is_all());
    assert!(allowed(admin, "c", "a").is_empty());
    // Deny on protocols: a whole protocol by range, a number, a named port of the destination.
    let deny = r#"apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-some}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {podSelector: {matchLabels: {app: a}}}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
    protocols:
    - {tcp: {destinationPort: {range: {start: 1, end: 65535}}}}
    - {udp: {destinationPort: {number: 53}}}
    - {destinationNamedPort: metrics}
"#;
    let c = allowed(deny, "b", "a");
    assert!(!c.contains(Tcp, 80) && !c.contains(Tcp, 65535));
    assert!(!c.contains(Udp, 53) && c.contains(Udp, 54));
    assert!(!c.contains(Sctp, 9100) && c.contains(Sctp, 9101));
    // Pass hands over to NetworkPolicy.
    let pass = r#"apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-b}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{pods: {podSelector: {matchLabels: {app: b}}}}]}
  - {action: Accept, from: [{namespaces: {}}]}
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: ns1}
spec: {podSelector: {}}
"#;
    assert!(allowed(pass, "b", "a").is_empty());
    assert!(allowed(pass, "d", "a").is_all());
    // Baseline tier: after NetworkPolicy, for pods no NetworkPolicy isolates; Pass there leads
    // to the default allow.
    let baseline = r#"apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: base}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{pods: {podSelector: {matchLabels: {app: d}}}}]}
  - {action: Deny, from: [{namespaces: {}}]}
"#;
    assert!(allowed(baseline, "b", "a").is_empty());
    assert!(allowed(baseline, "d", "a").is_all());
    // Malformed: AdminNetworkPolicy's action name, a missing tier.
    expect_error(
        "Allow is not a ClusterNetworkPolicy action",
        "kind: ClusterNetworkPolicy\napiVersion: policy.networking.k8s.io/v1alpha2\nmetadata: {name: x}\nspec:\n  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Allow, from: [{namespaces: {}}]}]\n",
        1,
        "Accept, Deny or Pass",
    );
    expect_error(
        "tier is required",
        "kind: ClusterNetworkPolicy\napiVersion: policy.networking.k8s.io/v1alpha2\nmetadata: {name: x}\nspec:\n  priority: 1\n  subject: {namespaces: {}}\n",
        1,
        "spec.tier is missing",
    );
}
