//! Shared by the Cilium and Calico tests: running a target's reference interpreter (its `side`
//! function: what one endpoint's policies say of a connection) over compiled objects, comparing it
//! with the evaluator on every pair, the small intents of the reasoning tests, and the golden files
//! of the bank example.

#![allow(dead_code)]

use crate::common::schema::{documents, validate_files};
use crate::support::{CONNS, Node, cluster, expected_drop, inventory, load};
use bulkhead_compile::{Compiled, Options, Target, compile};
use bulkhead_core::Protocol;
use bulkhead_intent::{Evaluator, Intent};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Allow,
    Deny,
}

pub struct Conn<'a> {
    pub src: &'a Node,
    pub dst: &'a Node,
    pub proto: Protocol,
    pub port: u16,
    pub v6: bool,
}

/// What one side (`egress` of the source or `ingress` of the destination) says of a connection.
pub type Side = fn(&[Value], &Node, &str, &Conn) -> Out;

pub fn all_docs(c: &Compiled) -> Vec<Value> {
    c.files.values().flat_map(|t| documents(t)).collect()
}

/// Would the target drop the connection? Either side denying drops it.
pub fn drops(side: Side, docs: &[Value], src: &Node, dst: &Node, p: Protocol, port: u16) -> bool {
    // Pods are dual-stack here; a connection with an address takes the address's family.
    let v6 = [src, dst]
        .iter()
        .any(|n| !n.is_pod() && n.ips(true).len() == 1 && n.ips(false).is_empty());
    let c = Conn {
        src,
        dst,
        proto: p,
        port,
        v6,
    };
    side(docs, src, "egress", &c) == Out::Deny || side(docs, dst, "ingress", &c) == Out::Deny
}

/// Compares the interpreter over `compiled` with the evaluator on every pair and connection of
/// `nodes` (pairs of two hosts are left to the nftables target); `name` names the target.
pub fn pairwise(
    side: Side,
    name: &str,
    intent: &Intent,
    compiled: &Compiled,
    nodes: &[Node],
) -> Result<(), String> {
    let errs = validate_files(&compiled.files);
    if !errs.is_empty() {
        return Err(format!("schema: {errs:#?}"));
    }
    let docs = all_docs(compiled);
    let ev = Evaluator::new(intent).unwrap();
    for s in nodes {
        for d in nodes {
            if std::ptr::eq(s, d) || (!s.is_pod() && !d.is_pod()) {
                continue;
            }
            for (p, port) in CONNS {
                let want = expected_drop(&ev, s, d, p, port);
                let got = drops(side, &docs, s, d, p, port);
                if want != got {
                    return Err(format!(
                        "{} -> {} {p}/{port}: evaluator drop={want}, {name} drop={got}",
                        s.id.name, d.id.name
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- small intents

const SEGS: &str = r#"
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec: {podSelector: {matchLabels: {app: a}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: db}
spec: {podSelector: {matchLabels: {app: b}}, mode: enforce}
---
apiVersion: bulkhead.dev/v1alpha1
kind: Segment
metadata: {name: watch}
spec: {podSelector: {matchLabels: {app: c}}, mode: observe}
"#;

/// `policies` after three segments: web (app a) and db (app b) enforced, watch (app c) observed.
pub fn small(policies: &str) -> Intent {
    load(&format!("{SEGS}---\n{policies}"))
}

pub fn nodes() -> Vec<Node> {
    // p0: app a (web, n1), p1: app b (db, n2), p2: app c (watch, n3), p3: unlabelled (n1).
    cluster(&[(0, 0, 0), (1, 1, 1), (2, 2, 2), (0, 3, 2)])
}

pub fn node<'a>(ns: &'a [Node], name: &str) -> &'a Node {
    ns.iter().find(|n| n.id.name.ends_with(name)).unwrap()
}

/// Compiles `intent` for `target` over [`nodes`] and asks the interpreter whether `src` → `dst`
/// is dropped (every object must validate).
pub fn compiled_drops(
    target: Target,
    side: Side,
    intent: &Intent,
    src: &str,
    dst: &str,
    p: Protocol,
    port: u16,
) -> bool {
    let ns = nodes();
    let c = compile(
        intent,
        target,
        &Options {
            inventory: inventory(&ns),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(validate_files(&c.files).is_empty());
    drops(side, &all_docs(&c), node(&ns, src), node(&ns, dst), p, port)
}

/// Checks the files of `c` (named `PREFIX/…`) against `tests/golden/PREFIX/…`; `UPDATE_GOLDEN=1`
/// rewrites them.
pub fn golden(prefix: &str, c: &Compiled) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(prefix);
    let mut text = String::new();
    for (p, t) in &c.files {
        let path = dir.join(p.trim_start_matches(&format!("{prefix}/")));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, t).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            want == *t,
            "{p} drifted from {} (UPDATE_GOLDEN=1 regenerates)",
            path.display()
        );
        text.push_str(t);
    }
    assert!(!text.is_empty());
}
