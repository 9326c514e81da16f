//! The allowed connectivity between every pair of workloads and external address ranges.

use bulkhead_core::{ConnSet, Direction, Endpoint, Engine, IpRange};
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
    let in_focus = |i: usize| {
        let w = &cluster.workloads[i];
        opts.focus.as_ref().is_none_or(|f| {
            *f == w.name || *f == format!("{}/{}", w.namespace, w.name) || *f == w.display_name()
        }) && opts.namespace.as_ref().is_none_or(|n| *n == w.namespace)
    };
    let filtered = opts.focus.is_some() || opts.namespace.is_some();
    let workloads: Vec<Endpoint> = (0..cluster.workloads.len())
        .map(Endpoint::Workload)
        .collect();
    let sources: Vec<Endpoint> = workloads
        .iter()
        .copied()
        .chain(
            engine
                .external_pieces(Direction::Ingress)
                .into_iter()
                .filter(|r| keep_range(r, opts))
                .map(Endpoint::External),
        )
        .collect();
    let dests: Vec<Endpoint> = workloads
        .iter()
        .copied()
        .chain(
            engine
                .external_pieces(Direction::Egress)
                .into_iter()
                .filter(|r| keep_range(r, opts))
                .map(Endpoint::External),
        )
        .collect();
    let names_src: Vec<String> = sources.iter().map(|&e| endpoint_name(engine, e)).collect();
    let names_dst: Vec<String> = dests.iter().map(|&e| endpoint_name(engine, e)).collect();
    let mut out = Vec::new();
    for (si, &s) in sources.iter().enumerate() {
        for (di, &d) in dests.iter().enumerate() {
            if matches!((s, d), (Endpoint::External(_), Endpoint::External(_)))
                || names_src[si] == names_dst[di]
            {
                continue;
            }
            if filtered {
                let hit = |e: Endpoint| matches!(e, Endpoint::Workload(i) if in_focus(i));
                if !hit(s) && !hit(d) {
                    continue;
                }
            }
            let conns = engine.allowed(s, d);
            if conns.is_empty() {
                continue;
            }
            out.push(Connection {
                src: names_src[si].clone(),
                dst: names_dst[di].clone(),
                conn: conns.to_string(),
                src_endpoint: s,
                dst_endpoint: d,
                conns,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.src.as_bytes(), a.dst.as_bytes()).cmp(&(b.src.as_bytes(), b.dst.as_bytes()))
    });
    out
}
