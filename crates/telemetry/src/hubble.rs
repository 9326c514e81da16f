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
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A `GetFlowsResponse` line.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    flow: Option<RawFlow<'a>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    node_status: Option<IgnoredAny>,
    lost_events: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawFlow<'a> {
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
    /// The label array as raw JSON text: it is the interner's key as it stands, and is only
    /// decoded into strings the first time a label set is seen.
    #[serde(borrow)]
    labels: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawL7 {
    dns: Option<IgnoredAny>,
    http: Option<IgnoredAny>,
    kafka: Option<IgnoredAny>,
}

/// FxHash (as in rustc): much cheaper than SipHash on the short keys interned here, and
/// collision attacks are not a concern for a cache that is bounded and only an optimisation.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// Interned strings and label sets, shared across a session's records. Bounded: cleared when
/// it grows past [`Interner::MAX`] entries (records keep their `Arc`s).
#[derive(Default)]
pub struct Interner {
    strings: HashMap<Box<str>, Arc<str>, FxBuild>,
    label_sets: HashMap<Box<str>, Arc<[Arc<str>]>, FxBuild>,
    empty: Option<Arc<[Arc<str>]>>,
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

    fn labels(&mut self, raw: Option<&RawValue>) -> Result<Arc<[Arc<str>]>, serde_json::Error> {
        let Some(raw) = raw else {
            return Ok(self
                .empty
                .get_or_insert_with(|| Arc::from(Vec::new()))
                .clone());
        };
        let key = raw.get();
        if let Some(a) = self.label_sets.get(key) {
            return Ok(a.clone());
        }
        let labels: Vec<Cow<'_, str>> = serde_json::from_str(key)?;
        if self.label_sets.len() >= Self::MAX {
            self.label_sets.clear();
        }
        let set: Arc<[Arc<str>]> = labels.iter().map(|l| self.string(l)).collect();
        self.label_sets.insert(Box::from(key), set.clone());
        Ok(set)
    }

    fn endpoint(
        &mut self,
        e: Option<&RawEndpoint<'_>>,
    ) -> Result<EndpointIdentity, serde_json::Error> {
        let Some(e) = e else {
            return Ok(EndpointIdentity::default());
        };
        Ok(EndpointIdentity {
            namespace: e.namespace.as_deref().map(|s| self.string(s)),
            pod: e.pod_name.as_deref().map(|s| self.string(s)),
            labels: self.labels(e.labels)?,
            identity: e.identity,
        })
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
    let bad = |rep: &mut Report, e: serde_json::Error| {
        let reason = if e.is_data() {
            "Hubble: JSON of the wrong shape"
        } else {
            "Hubble: not JSON"
        };
        rep.skip(source, no, reason, e);
    };
    // A GetFlowsResponse, or a bare Flow: a line without a "flow" key is read as a Flow.
    let (flow, response_time) = if line.contains("\"flow\"") {
        match serde_json::from_str::<Response<'_>>(line) {
            Ok(Response {
                flow: Some(f),
                time,
                ..
            }) => (f, time),
            Ok(r) if r.node_status.is_some() || r.lost_events.is_some() => {
                rep.skip(
                    source,
                    no,
                    "Hubble: not a flow (node_status / lost_events)",
                    "GetFlowsResponse without a flow",
                );
                return;
            }
            Ok(_) => match serde_json::from_str::<RawFlow<'_>>(line) {
                Ok(f) => (f, None),
                Err(e) => return bad(rep, e),
            },
            Err(e) => return bad(rep, e),
        }
    } else {
        match serde_json::from_str::<RawFlow<'_>>(line) {
            Ok(f) => (f, None),
            Err(e) => return bad(rep, e),
        }
    };
    if flow.ip.is_none() && (line.contains("\"node_status\"") || line.contains("\"lost_events\"")) {
        rep.skip(
            source,
            no,
            "Hubble: not a flow (node_status / lost_events)",
            "GetFlowsResponse without a flow",
        );
        return;
    }
    let f = &flow;
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
        let ids = interner
            .endpoint(f.source.as_ref())
            .and_then(|s| Ok((s, interner.endpoint(f.destination.as_ref())?)));
        let (src, dst) = match ids {
            Ok(x) => x,
            Err(e) => {
                rep.skip(source, no, "Hubble: labels are not an array of strings", e);
                return;
            }
        };
        let id = FlowIdentity { src, dst };
        if !id.src.is_empty() || !id.dst.is_empty() {
            flow.identity = Some(Box::new(id));
        }
    }
    rep.parsed += 1;
    sink(flow);
}
