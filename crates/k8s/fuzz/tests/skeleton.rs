//! The structured target's renderings and checks, on hand-built skeletons.

use bulkhead_k8s_fuzz::check;
use bulkhead_k8s_fuzz::skeleton::{
    self, Anp, AnpPeer, AnpPort, AnpRule, AnpSubject, Doc, Expr, Input, IpBlock, Item, Layout,
    ListDoc, Meta, NetPol, NpPeer, NpPort, NpRule, Num, Obj, Pod, PortValue, Selector, Text,
};

fn w(i: u8) -> Text {
    Text::Word(i)
}

fn meta(name: u8, namespace: Option<u8>) -> Meta {
    Meta {
        name: Some(w(name)),
        generate_name: None,
        namespace: namespace.map(w),
        labels: Some(vec![(w(0), w(0))]),
    }
}

fn selector() -> Selector {
    Selector {
        match_labels: Some(vec![(w(0), w(1))]),
        match_expressions: Some(vec![Expr {
            key: w(2),
            operator: w(0),
            values: Some(vec![w(3), w(4)]),
        }]),
    }
}

fn network_policy() -> Obj {
    Obj::NetworkPolicy(NetPol {
        meta: meta(0, Some(0)),
        pod_selector: Some(selector()),
        policy_types: None,
        ingress: Some(vec![NpRule {
            peers: Some(vec![
                NpPeer {
                    pod_selector: Some(selector()),
                    namespace_selector: Some(selector()),
                    ip_block: None,
                },
                NpPeer {
                    pod_selector: None,
                    namespace_selector: None,
                    ip_block: Some(IpBlock {
                        cidr: w(0),
                        except: Some(vec![w(1)]),
                    }),
                },
            ]),
            ports: Some(vec![
                NpPort {
                    protocol: Some(w(0)),
                    port: Some(PortValue::Number(Num::Word(0))),
                    end_port: Some(Num::Word(3)),
                },
                NpPort {
                    protocol: None,
                    port: Some(PortValue::Name(w(0))),
                    end_port: None,
                },
            ]),
        }]),
        egress: Some(vec![NpRule {
            peers: None,
            ports: None,
        }]),
    })
}

fn admin_policy() -> Obj {
    Obj::AdminNetworkPolicy(Anp {
        meta: meta(1, None),
        priority: Some(Num::Word(0)),
        subject: Some(AnpSubject {
            namespaces: Some(selector()),
            pods: None,
        }),
        ingress: Some(vec![AnpRule {
            name: Some(w(0)),
            action: Some(w(0)),
            peers: Some(vec![AnpPeer {
                namespaces: Some(selector()),
                pods: None,
                nodes: None,
                networks: None,
            }]),
            ports: Some(vec![AnpPort {
                port_number: None,
                named_port: None,
                port_range: Some((Some(w(1)), Num::Word(7), Num::Word(8))),
            }]),
        }]),
        egress: Some(vec![AnpRule {
            name: None,
            action: Some(w(1)),
            peers: Some(vec![AnpPeer {
                namespaces: None,
                pods: None,
                nodes: None,
                networks: Some(vec![w(0), w(4)]),
            }]),
            ports: None,
        }]),
    })
}

fn pod() -> Obj {
    Obj::Pod(Pod {
        meta: meta(5, Some(0)),
        owners: None,
        containers: None,
        pod_ip: Some(w(0)),
    })
}

fn layouts() -> Vec<Layout> {
    (0..16u8)
        .map(|b| Layout {
            indent_sequences: b & 1 != 0,
            leading_marker: b & 2 != 0,
            flow_on_marker: b & 4 != 0,
            json_pretty: b & 8 != 0,
        })
        .collect()
}

fn docs() -> Vec<Doc> {
    vec![
        Doc::Object(Box::new(network_policy())),
        Doc::Object(Box::new(admin_policy())),
        Doc::List(ListDoc {
            kind: w(1), // PodList
            items: vec![
                Item {
                    with_kind: false,
                    object: pod(),
                },
                Item {
                    with_kind: true,
                    object: Obj::Namespace(meta(0, None)),
                },
            ],
        }),
    ]
}

#[test]
fn a_hand_built_skeleton_loads_alike_in_every_spelling() {
    for layout in layouts() {
        let input = Input {
            layout,
            docs: docs(),
        };
        skeleton::check(&input);
        let r = skeleton::values(&input);
        assert!(!r.raw);
        assert_eq!((r.expected_objects, r.expected_item_errors), (4, 0));
        let out = check::load("f.yaml", &skeleton::render_block(&r.docs, layout).text);
        let l = &out.loaded;
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.cluster.policies.len(), 2);
        assert_eq!(l.cluster.workloads.len(), 1);
        let np = &l.cluster.policies[0];
        assert_eq!(np.ingress.as_ref().map(Vec::len), Some(1));
        assert_eq!(np.ingress.as_ref().unwrap()[0].peers.len(), 2);
    }
}

#[test]
fn list_items_without_any_kind_are_expected_errors() {
    let input = Input {
        layout: layouts()[0],
        docs: vec![Doc::List(ListDoc {
            kind: w(0), // List
            items: vec![Item {
                with_kind: false,
                object: pod(),
            }],
        })],
    };
    let r = skeleton::values(&input);
    assert_eq!((r.expected_objects, r.expected_item_errors), (0, 1));
    skeleton::check(&input);
}

#[test]
fn any_strings_are_written_so_that_every_reader_reads_them_back() {
    let tricky = [
        "line\nbreak",
        "cr\rlf",
        "tab\there",
        "nel\u{85}x",
        "ls\u{2028}x",
        "bom\u{feff}",
        "---",
        "...",
        "- dash",
        "key: value",
        "# comment",
        "<<",
        "*alias",
        "&anchor",
        "!tag",
        "{flow}",
        "[seq]",
        "\"quoted\"",
        "'single'",
        "back\\slash",
        "true",
        "null",
        "~",
        "80",
        "0x1F",
        ".inf",
        "",
        " ",
        "日本語",
        "\u{1F600}",
        "\u{0}",
        "\u{7f}",
    ];
    for s in tricky {
        let raw = || Text::Raw(s.to_string());
        let mut np = network_policy();
        if let Obj::NetworkPolicy(p) = &mut np {
            p.meta.labels = Some(vec![(w(0), raw())]);
            p.meta.name = Some(raw());
        }
        for layout in layouts() {
            let input = Input {
                layout,
                docs: vec![
                    Doc::Object(Box::new(np_clone(&np))),
                    Doc::Object(Box::new(pod())),
                ],
            };
            skeleton::check(&input);
            // Block YAML must load it cleanly, with the string intact.
            let r = skeleton::values(&input);
            let text = skeleton::render_block(&r.docs, layout).text;
            let out = check::load("f.yaml", &text);
            assert!(
                out.load_errors.is_empty(),
                "{s:?}: {:?}\n{text}",
                out.load_errors
            );
            if !s.is_empty() {
                let p = &out.loaded.cluster.policies;
                assert_eq!(p.len(), 1, "{s:?}: {:?}\n{text}", out.loaded.errors);
                assert_eq!(p[0].name, s, "{s:?}\n{text}");
            }
        }
    }
}

/// The skeleton types are not `Clone` (they need not be for fuzzing): rebuild the policy.
fn np_clone(o: &Obj) -> Obj {
    let Obj::NetworkPolicy(p) = o else {
        unreachable!()
    };
    let mut n = network_policy();
    if let Obj::NetworkPolicy(q) = &mut n {
        q.meta.name = p.meta.name.clone();
        q.meta.labels = p.meta.labels.clone();
    }
    n
}
