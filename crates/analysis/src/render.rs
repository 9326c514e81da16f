//! Output formats for connectivity: `txt` (np-guard's), `json`, `csv`, `md` and `dot`.

use crate::connectivity::Connection;
use bulkhead_core::{Endpoint, Engine};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::str::FromStr;

/// An output format of `bulkhead connectivity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "txt" => Ok(Format::Txt),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "md" => Ok(Format::Md),
            "dot" => Ok(Format::Dot),
            other => Err(format!(
                "unknown format {other:?} (expected txt, json, csv, md or dot)"
            )),
        }
    }
}

/// Renders connections in a format; every format but `dot` keeps the order given.
pub fn render(conns: &[Connection], format: Format, engine: &Engine<'_>) -> String {
    let mut s = String::new();
    match format {
        Format::Txt => {
            for c in conns {
                let _ = writeln!(s, "{} => {} : {}", c.src, c.dst, c.conn);
            }
        }
        Format::Json => {
            s = serde_json::to_string_pretty(conns).unwrap_or_default();
            s.push('\n');
        }
        Format::Csv => {
            s.push_str("src,dst,conn\n");
            for c in conns {
                let _ = writeln!(
                    s,
                    "{},{},{}",
                    csv_field(&c.src),
                    csv_field(&c.dst),
                    csv_field(&c.conn)
                );
            }
        }
        Format::Md => {
            s.push_str("| src | dst | conn |\n|-----|-----|------|\n");
            for c in conns {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    md_cell(&c.src),
                    md_cell(&c.dst),
                    md_cell(&c.conn)
                );
            }
        }
        Format::Dot => s = dot(conns, engine),
    }
    s
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

fn md_cell(f: &str) -> String {
    f.replace('|', "\\|")
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A Graphviz digraph: one cluster per namespace, external ranges as boxes outside them.
fn dot(conns: &[Connection], engine: &Engine<'_>) -> String {
    let cluster = engine.cluster();
    let mut by_ns: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut externals: Vec<&str> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in conns {
        for (name, e) in [(&c.src, c.src_endpoint), (&c.dst, c.dst_endpoint)] {
            if !seen.insert(name.as_str()) {
                continue;
            }
            match e {
                Endpoint::Workload(i) => {
                    let w = &cluster.workloads[i];
                    by_ns
                        .entry(&w.namespace)
                        .or_default()
                        .push((name.clone(), format!("{}[{}]", w.name, w.kind)));
                }
                Endpoint::External(_) => externals.push(name),
            }
        }
    }
    let mut s = String::from(
        "digraph connectivity {\n  rankdir=LR;\n  node [shape=ellipse, fontsize=10];\n  edge [fontsize=9];\n",
    );
    for (i, (ns, nodes)) in by_ns.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph cluster_{i} {{\n    label={};\n    style=rounded;",
            dot_id(ns)
        );
        for (id, label) in nodes {
            let _ = writeln!(s, "    {} [label={}];", dot_id(id), dot_id(label));
        }
        s.push_str("  }\n");
    }
    for e in externals {
        let _ = writeln!(s, "  {} [shape=box, style=dashed];", dot_id(e));
    }
    for c in conns {
        let _ = writeln!(
            s,
            "  {} -> {} [label={}];",
            dot_id(&c.src),
            dot_id(&c.dst),
            dot_id(&c.conn)
        );
    }
    s.push_str("}\n");
    s
}
