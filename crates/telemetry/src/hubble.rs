//! Cilium Hubble flows, as `hubble observe -o json` prints them: one JSON object per line,
//! either a `GetFlowsResponse` (`{"flow":{…},"node_name":…,"time":…}`) or a bare `Flow`.
//!
//! Field names follow Cilium's `flow.proto` in protojson spelling: `IP.source`,
//! `IP.destination`, `l4.TCP|UDP|SCTP.source_port|destination_port`, `l4.ICMPv4|ICMPv6.type|code`,
//! `verdict`, `drop_reason_desc`, `traffic_direction`, `is_reply` (a `BoolValue`, so a JSON
//! bool; the older `reply` bool is used when `is_reply` is absent), `source|destination`
//! `.namespace|pod_name|labels|identity`, `Type` and `l7` (`dns`, `http`, `kafka`).
//!
//! - ICMP has no ports: `src_port` is 0 and `dst_port` is `type << 8 | code`.
//! - L7 records keep the 5-tuple of their L4 connection and carry [`L7Kind`].
//! - Hubble events count neither bytes nor packets: both are 0.
//! - `GetFlowsResponse` lines without a flow (`node_status`, `lost_events`) are skipped with
//!   their own reason.
//!
//! Decoding borrows from the line (no string copies); namespaces, pod names and label sets are
//! interned per session, so a workload's strings are allocated once.

use crate::report::Report;
use crate::time::parse_rfc3339;
use bulkhead_core::flow::{
    EndpointIdentity, Flow, FlowDirection, FlowIdentity, FlowOrigin, L7Kind, SourceFormat, Verdict,
    ip_proto,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Deserialize)]
struct RawFlow<'a> {
    #[serde(borrow)]
    flow: Option<Box<RawFlow<'a>>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow)]
    drop_reason_desc: Option<Cow<'a, str>>,
    drop_reason: Option<u32>,
    #[serde(rename = "IP", borrow)]
    ip: Option<RawIp<'a>>,
    l4: Option<RawL4>,
    #[serde(borrow)]
    source: Option<RawEndpoint<'a>>,
    #[serde(borrow)]
    destination: Option<RawEndpoint<'a>>,
    #[serde(rename = "Type", borrow)]
    kind: Option<Cow<'a, str>>,
    l7: Option<RawL7>,
    #[serde(borrow)]
    traffic_direction: Option<Cow<'a, str>>,
    is_reply: Option<bool>,
    reply: Option<bool>,
    node_status: Option<IgnoredAny>,
    lost_events: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawIp<'a> {
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    destination: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawPorts {
    source_port: Option<u16>,
    destination_port: Option<u16>,
}

#[derive(Deserialize)]
struct RawIcmp {
    #[serde(rename = "type")]
    typ: Option<u8>,
    code: Option<u8>,
}

#[derive(Deserialize)]
struct RawL4 {
    #[serde(rename = "TCP")]
    tcp: Option<RawPorts>,
    #[serde(rename = "UDP")]
    udp: Option<RawPorts>,
    #[serde(rename = "SCTP")]
    sctp: Option<RawPorts>,
    #[serde(rename = "ICMPv4")]
    icmpv4: Option<RawIcmp>,
    #[serde(rename = "ICMPv6")]
    icmpv6: Option<RawIcmp>,
}

#[derive(Deserialize)]
struct RawEndpoint<'a> {
    identity: Option<u32>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pod_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    labels: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawL7 {
    dns: Option<IgnoredAny>,
    http: Option<IgnoredAny>,
    kafka: Option<IgnoredAny>,
}

/// Interned strings and label sets, shared across a session's records. Bounded: cleared when
/// it grows past [`Interner::MAX`] entries (records keep their `Arc`s).
#[derive(Default)]
pub struct Interner {
    strings: HashMap<Box<str>, Arc<str>>,
    label_sets: HashMap<Box<str>, Arc<[Arc<str>]>>,
    key: String,
}

impl Interner {
    /// Entries kept before the cache is cleared.
    pub const MAX: usize = 1 << 16;

    fn string(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        if self.strings.len() >= Self::MAX {
            self.strings.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(Box::from(s), a.clone());
        a
    }

    fn labels(&mut self, labels: &[Cow<'_, str>]) -> Arc<[Arc<str>]> {
        self.key.clear();
        for l in labels {
            self.key.push_str(l);
            self.key.push('\0');
        }
        if let Some(a) = self.label_sets.get(self.key.as_str()) {
            return a.clone();
        }
        if self.label_sets.len() >= Self::MAX {
            self.label_sets.clear();
        }
        let set: Arc<[Arc<str>]> = labels.iter().map(|l| self.string(l)).collect();
        self.label_sets
            .insert(Box::from(self.key.as_str()), set.clone());
        set
    }

    fn endpoint(&mut self, e: Option<&RawEndpoint<'_>>) -> EndpointIdentity {
        let Some(e) = e else {
            return EndpointIdentity::default();
        };
        EndpointIdentity {
            namespace: e.namespace.as_deref().map(|s| self.string(s)),
            pod: e.pod_name.as_deref().map(|s| self.string(s)),
            labels: self.labels(&e.labels),
            identity: e.identity,
        }
    }
}

fn verdict(s: &str) -> Option<Verdict> {
    Some(match s {
        "FORWARDED" => Verdict::Forwarded,
        "DROPPED" => Verdict::Dropped,
        "ERROR" => Verdict::Error,
        "AUDIT" => Verdict::Audit,
        "REDIRECTED" => Verdict::Redirected,
        "TRACED" => Verdict::Traced,
        "TRANSLATED" => Verdict::Translated,
        _ => return None,
    })
}

/// Parses one line; the flow goes to `sink`, problems to the report.
pub fn parse_line(
    line: &str,
    source: u32,
    no: u64,
    interner: &mut Interner,
    rep: &mut Report,
    sink: &mut dyn FnMut(Flow),
) {
    rep.read += 1;
    let top: RawFlow<'_> = match serde_json::from_str(line) {
        Ok(f) => f,
        Err(e) => {
            let reason = if e.is_data() {
                "Hubble: JSON of the wrong shape"
            } else {
                "Hubble: not JSON"
            };
            rep.skip(source, no, reason, e);
            return;
        }
    };
    let response_time = top.time.clone();
    let f: &RawFlow<'_> = match &top.flow {
        Some(f) => f,
        None if top.node_status.is_some() || top.lost_events.is_some() => {
            rep.skip(
                source,
                no,
                "Hubble: not a flow (node_status / lost_events)",
                "GetFlowsResponse without a flow",
            );
            return;
        }
        None => &top,
    };
    let Some(ip) = &f.ip else {
        rep.skip(
            source,
            no,
            "Hubble: no IP layer",
            "flow without an `IP` object",
        );
        return;
    };
    let addr = |a: &Option<Cow<'_, str>>| a.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
    let (Some(src), Some(dst)) = (addr(&ip.source), addr(&ip.destination)) else {
        rep.skip(
            source,
            no,
            "Hubble: missing or invalid IP address",
            format_args!(
                "IP.source {:?}, IP.destination {:?}",
                ip.source.as_deref().unwrap_or(""),
                ip.destination.as_deref().unwrap_or("")
            ),
        );
        return;
    };
    let (protocol, sp, dp) = match &f.l4 {
        Some(l4) => {
            if let Some(p) = &l4.tcp {
                (ip_proto::TCP, p.source_port, p.destination_port)
            } else if let Some(p) = &l4.udp {
                (ip_proto::UDP, p.source_port, p.destination_port)
            } else if let Some(p) = &l4.sctp {
                (ip_proto::SCTP, p.source_port, p.destination_port)
            } else if let Some(i) = &l4.icmpv4 {
                let tc = (i.typ.unwrap_or(0) as u16) << 8 | i.code.unwrap_or(0) as u16;
                (ip_proto::ICMP, Some(0), Some(tc))
            } else if let Some(i) = &l4.icmpv6 {
                let tc = (i.typ.unwrap_or(0) as u16) << 8 | i.code.unwrap_or(0) as u16;
                (ip_proto::ICMPV6, Some(0), Some(tc))
            } else {
                (0, None, None)
            }
        }
        None => (0, None, None),
    };
    let origin = FlowOrigin {
        format: SourceFormat::Hubble,
        source,
        record: no,
    };
    let mut flow = Flow::new(src, dst, protocol, sp.unwrap_or(0), dp.unwrap_or(0), origin);
    flow.time = f
        .time
        .as_deref()
        .or(response_time.as_deref())
        .and_then(parse_rfc3339);
    flow.verdict = f.verdict.as_deref().and_then(verdict);
    flow.drop_reason = match (&f.drop_reason_desc, f.drop_reason) {
        (Some(d), _) if !d.is_empty() && d != "DROP_REASON_UNKNOWN" => Some(Box::from(&**d)),
        (_, Some(code)) if code != 0 => Some(format!("{code}").into_boxed_str()),
        _ => None,
    };
    flow.direction = match f.traffic_direction.as_deref() {
        Some("INGRESS") => Some(FlowDirection::Ingress),
        Some("EGRESS") => Some(FlowDirection::Egress),
        _ => None,
    };
    flow.is_reply = f.is_reply.or(f.reply);
    flow.l7 = match (&f.l7, f.kind.as_deref()) {
        (Some(l7), _) => Some(if l7.dns.is_some() {
            L7Kind::Dns
        } else if l7.http.is_some() {
            L7Kind::Http
        } else if l7.kafka.is_some() {
            L7Kind::Kafka
        } else {
            L7Kind::Other
        }),
        (None, Some("L7")) => Some(L7Kind::Other),
        _ => None,
    };
    if f.source.is_some() || f.destination.is_some() {
        let id = FlowIdentity {
            src: interner.endpoint(f.source.as_ref()),
            dst: interner.endpoint(f.destination.as_ref()),
        };
        if !id.src.is_empty() || !id.dst.is_empty() {
            flow.identity = Some(Box::new(id));
        }
    }
    rep.parsed += 1;
    sink(flow);
}
