//! The allowed connectivity between every pair of workloads and external address ranges.

use bulkhead_core::{ConnSet, Endpoint, Engine, IpRange};
use serde::Serialize;

/// Which connections to list.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also list IPv6 external ranges (the engine always models them; np-guard's text output,
    /// which the `txt` format follows, shows IPv4 only).
    pub ipv6: bool,
    /// Only connections from or to workloads whose `namespace/name` or `name` equals this.
    pub focus: Option<String>,
    /// Only connections from or to workloads in this namespace.
    pub namespace: Option<String>,
}

/// One line of the report: `src` may open `conn` to `dst`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub src: String,
    pub dst: String,
    pub conn: String,
    #[serde(skip)]
    pub src_endpoint: Endpoint,
    #[serde(skip)]
    pub dst_endpoint: Endpoint,
    #[serde(skip)]
    pub conns: ConnSet,
}

/// The name an endpoint prints as: `ns/name[Kind]` or `first-last[External]`.
pub fn endpoint_name(engine: &Engine<'_>, e: Endpoint) -> String {
    match e {
        Endpoint::Workload(i) => engine.cluster().workloads[i].display_name(),
        Endpoint::External(r) => format!("{r}[External]"),
    }
}

fn keep_range(r: &IpRange, opts: &Options) -> bool {
    opts.ipv6 || r.is_v4()
}

/// Every allowed connection, sorted by source then destination name (byte order). Pairs with
/// nothing allowed, a workload to itself, and external-to-external pairs are left out.
pub fn connectivity(engine: &Engine<'_>, opts: &Options) -> Vec<Connection> {
    let cluster = engine.cluster();
    let in_focus: Vec<bool> = cluster
        .workloads
        .iter()
        .map(|w| {
            opts.focus.as_ref().is_none_or(|f| {
                *f == w.name
                    || *f == format!("{}/{}", w.namespace, w.name)
                    || *f == w.display_name()
            }) && opts.namespace.as_ref().is_none_or(|n| *n == w.namespace)
        })
        .collect();
    let names: Vec<String> = cluster.workloads.iter().map(|w| w.display_name()).collect();
    let keep = |e: Endpoint| match e {
        Endpoint::Workload(i) => in_focus[i],
        Endpoint::External(_) => false,
    };
    let name = |e: Endpoint| match e {
        Endpoint::Workload(i) => names[i].clone(),
        Endpoint::External(r) => format!("{r}[External]"),
    };
    let mut out = Vec::new();
    engine.for_each_connection(|s, d, conns| {
        let v6 = |e: Endpoint| matches!(e, Endpoint::External(r) if !keep_range(&r, opts));
        if v6(s) || v6(d) || !(keep(s) || keep(d)) {
            return;
        }
        out.push(Connection {
            src: name(s),
            dst: name(d),
            conn: conns.to_string(),
            src_endpoint: s,
            dst_endpoint: d,
            conns: conns.clone(),
        });
    });
    out.sort_by(|a, b| {
        (a.src.as_bytes(), a.dst.as_bytes()).cmp(&(b.src.as_bytes(), b.dst.as_bytes()))
    });
    out
}
