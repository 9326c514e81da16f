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
use std::sync::Arc;

/// A `GetFlowsResponse` line.
#[derive(Deserialize, Default)]
struct Response<'a> {
    #[serde(borrow)]
    flow: Option<RawFlow<'a>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    node_status: Option<IgnoredAny>,
    lost_events: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
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

#[derive(Deserialize, Default)]
struct RawIp<'a> {
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    destination: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct RawPorts {
    source_port: Option<u16>,
    destination_port: Option<u16>,
}

#[derive(Deserialize, Default)]
struct RawIcmp {
    #[serde(rename = "type")]
    typ: Option<u8>,
    code: Option<u8>,
}

#[derive(Deserialize, Default)]
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

#[derive(Deserialize, Default)]
struct RawEndpoint<'a> {
    identity: Option<u32>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pod_name: Option<Cow<'a, str>>,
    /// The label array as raw JSON text: it is the interner's key as it stands, and is only
    /// decoded into strings the first time a label set is seen.
    #[serde(borrow, default, deserialize_with = "raw_text")]
    labels: Option<&'a str>,
    /// The scanner's shortcut: the identity of an endpoint object seen before, byte for byte.
    #[serde(skip)]
    known: Option<EndpointIdentity>,
    /// The scanner's record of the object's JSON text and the nesting depth it was read at,
    /// for [`Interner::endpoint`] to remember.
    #[serde(skip)]
    text: Option<(&'a str, u32)>,
}

/// A value's JSON text as it stands in the line (`null`: none).
fn raw_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    Ok(Option::<&'de RawValue>::deserialize(d)?.map(RawValue::get))
}

#[derive(Deserialize, Default)]
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
    /// Endpoint objects decoded before, by the first [`ENDPOINT_PREFIX`] bytes of their JSON
    /// text (see [`Interner::known_endpoint`]).
    endpoints: HashMap<[u8; ENDPOINT_PREFIX], Vec<KnownEndpoint>, FxBuild>,
    endpoint_count: usize,
}

/// Bytes of an endpoint object's text that key [`Interner::endpoints`]; shorter objects are
/// not remembered (they are cheap to scan).
const ENDPOINT_PREFIX: usize = 32;

/// An endpoint object the scanner read in full and the interner decoded without error.
struct KnownEndpoint {
    /// Its JSON text, exactly as it stood in the line.
    text: Box<[u8]>,
    /// The nesting depth it was read at (the scanner's depth limit depends on it).
    depth: u32,
    id: EndpointIdentity,
}

impl Interner {
    /// Entries kept before the cache is cleared.
    pub const MAX: usize = 1 << 16;
    /// Endpoint objects kept before that cache is cleared (each holds its text, a few
    /// hundred bytes).
    pub const MAX_ENDPOINTS: usize = 1 << 14;

    /// The identity of the endpoint object at the start of `rest`, when its text is, byte for
    /// byte, that of an object read before at the same depth; and the text's length.
    ///
    /// Exact: a remembered text is a complete, valid JSON object (the scanner read it to its
    /// closing brace and the interner decoded it), and JSON is read left to right with no
    /// look-ahead, so the same bytes at the same depth read the same way and the object ends
    /// where the remembered text ends, whatever follows it.
    fn known_endpoint(&self, rest: &[u8], depth: u32) -> Option<(usize, &EndpointIdentity)> {
        if self.endpoints.is_empty() {
            return None;
        }
        let key: [u8; ENDPOINT_PREFIX] = rest.get(..ENDPOINT_PREFIX)?.try_into().ok()?;
        self.endpoints
            .get(&key)?
            .iter()
            .find(|k| k.depth == depth && rest.starts_with(&k.text))
            .map(|k| (k.text.len(), &k.id))
    }

    /// Endpoint objects remembered (for tests: that the shortcut is exercised).
    #[doc(hidden)]
    pub fn remembered_endpoints(&self) -> usize {
        self.endpoint_count
    }

    fn remember_endpoint(&mut self, text: &str, depth: u32, id: &EndpointIdentity) {
        let Some(key) = text
            .as_bytes()
            .get(..ENDPOINT_PREFIX)
            .and_then(|k| <[u8; ENDPOINT_PREFIX]>::try_from(k).ok())
        else {
            return;
        };
        if self.endpoint_count >= Self::MAX_ENDPOINTS {
            self.endpoints.clear();
            self.endpoint_count = 0;
        }
        let list = self.endpoints.entry(key).or_default();
        // Both endpoints of one line may be the same object, read before either was known.
        if list
            .iter()
            .any(|k| k.depth == depth && *k.text == *text.as_bytes())
        {
            return;
        }
        // A handful per prefix (one pod's label changes); past that, the newest replaces one.
        let known = KnownEndpoint {
            text: Box::from(text.as_bytes()),
            depth,
            id: id.clone(),
        };
        if list.len() < 8 {
            list.push(known);
            self.endpoint_count += 1;
        } else {
            list[0] = known;
        }
    }

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

    fn labels(&mut self, raw: Option<&str>) -> Result<Arc<[Arc<str>]>, serde_json::Error> {
        let Some(key) = raw else {
            return Ok(self
                .empty
                .get_or_insert_with(|| Arc::from(Vec::new()))
                .clone());
        };
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
        e: Option<RawEndpoint<'_>>,
    ) -> Result<EndpointIdentity, serde_json::Error> {
        let Some(e) = e else {
            return Ok(EndpointIdentity::default());
        };
        if let Some(id) = e.known {
            return Ok(id);
        }
        let id = EndpointIdentity {
            namespace: e.namespace.as_deref().map(|s| self.string(s)),
            pod: e.pod_name.as_deref().map(|s| self.string(s)),
            labels: self.labels(e.labels)?,
            identity: e.identity,
        };
        if let Some((text, depth)) = e.text {
            self.remember_endpoint(text, depth, &id);
        }
        Ok(id)
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

/// What a line decodes to (a value on the stack for one line: boxing the flow would cost an
/// allocation per record).
#[allow(clippy::large_enum_variant)]
enum Decoded<'a> {
    /// A flow, and the `GetFlowsResponse`'s own time.
    Flow(RawFlow<'a>, Option<Cow<'a, str>>),
    /// A `GetFlowsResponse` that carries no flow (`node_status`, `lost_events`).
    NotAFlow,
}

/// The serde path: decodes any line, and says why when it cannot.
fn decode_serde(line: &str) -> Result<Decoded<'_>, serde_json::Error> {
    // A GetFlowsResponse, or a bare Flow: a line without a "flow" key is read as a Flow.
    if line.contains("\"flow\"") {
        match serde_json::from_str::<Response<'_>>(line)? {
            Response {
                flow: Some(f),
                time,
                ..
            } => Ok(Decoded::Flow(f, time)),
            r if r.node_status.is_some() || r.lost_events.is_some() => Ok(Decoded::NotAFlow),
            _ => Ok(Decoded::Flow(
                serde_json::from_str::<RawFlow<'_>>(line)?,
                None,
            )),
        }
    } else {
        Ok(Decoded::Flow(
            serde_json::from_str::<RawFlow<'_>>(line)?,
            None,
        ))
    }
}

/// The fast path: the same decisions as [`decode_serde`], by [`scan`]; `None` when the
/// scanner does not take the line (the serde path then decides, errors included).
fn decode_fast<'a>(line: &'a str, known: &Interner) -> Option<Decoded<'a>> {
    if line.contains("\"flow\"") {
        match scan::response(line, known)? {
            Response {
                flow: Some(f),
                time,
                ..
            } => Some(Decoded::Flow(f, time)),
            r if r.node_status.is_some() || r.lost_events.is_some() => Some(Decoded::NotAFlow),
            _ => Some(Decoded::Flow(scan::flow(line, known)?, None)),
        }
    } else {
        Some(Decoded::Flow(scan::flow(line, known)?, None))
    }
}

/// Whether the fast scanner decodes this line by itself (for tests and benchmarks: the
/// serde path is taken otherwise).
#[doc(hidden)]
pub fn fast_path_takes(line: &str) -> bool {
    decode_fast(line, &Interner::default()).is_some()
}

/// Which decoder [`parse_line_with`] uses.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// The hand-written scanner, falling back to serde on anything it does not take.
    Fast,
    /// serde_json alone (the reference the scanner is tested against).
    Serde,
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
    parse_line_with(Decoder::Fast, line, source, no, interner, rep, sink)
}

/// [`parse_line`] with a chosen decoder (the differential tests run both).
#[doc(hidden)]
pub fn parse_line_with(
    decoder: Decoder,
    line: &str,
    source: u32,
    no: u64,
    interner: &mut Interner,
    rep: &mut Report,
    sink: &mut dyn FnMut(Flow),
) {
    rep.read += 1;
    let fast = match decoder {
        Decoder::Fast => decode_fast(line, interner),
        Decoder::Serde => None,
    };
    let decoded = match fast {
        Some(d) => d,
        None => match decode_serde(line) {
            Ok(d) => d,
            Err(e) => {
                let reason = if e.is_data() {
                    "Hubble: JSON of the wrong shape"
                } else {
                    "Hubble: not JSON"
                };
                rep.skip(source, no, reason, e);
                return;
            }
        },
    };
    let (mut flow, response_time) = match decoded {
        Decoded::Flow(f, t) => (f, t),
        Decoded::NotAFlow => {
            rep.skip(
                source,
                no,
                "Hubble: not a flow (node_status / lost_events)",
                "GetFlowsResponse without a flow",
            );
            return;
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
    let (src_ep, dst_ep) = (flow.source.take(), flow.destination.take());
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
    let addr = |a: &Option<Cow<'_, str>>| a.as_deref().and_then(crate::vpc::parse_ip);
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
    if src_ep.is_some() || dst_ep.is_some() {
        let ids = interner
            .endpoint(src_ep)
            .and_then(|s| Ok((s, interner.endpoint(dst_ep)?)));
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

/// A hand-written scanner for the fields Bulkhead reads, about twice as fast as serde_json on
/// `hubble observe -o json` lines (it skips the fields it does not use without building
/// anything). It decodes into the same raw structs as the serde path and is exact for what
/// it takes; it declines (`None`) anything it is not sure to read as serde_json would:
/// control characters in strings, a duplicate known field, a value
/// of another type than expected, a number that is not a plain unsigned integer where one is
/// read, a lone surrogate in a decoded string, nesting deeper than [`scan::MAX_DEPTH`], and
/// anything that is not valid JSON. The serde path then decides (and words the error).
mod scan {
    use super::{
        Interner, RawEndpoint, RawFlow, RawIcmp, RawIp, RawL4, RawL7, RawPorts, Response,
        serde_json_ws,
    };
    use serde::de::IgnoredAny;
    use std::borrow::Cow;

    /// Deepest nesting the scanner follows (serde_json's own limit is 128).
    pub(super) const MAX_DEPTH: u32 = 100;

    type R<T> = Option<T>;

    struct Scan<'a, 'k> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
        depth: u32,
        /// Endpoint objects read before (see [`Interner::known_endpoint`]).
        known: &'k Interner,
    }

    /// Runs `f` over the whole line: JSON whitespace around the value, nothing after it.
    fn whole<'a, T>(
        line: &'a str,
        known: &Interner,
        f: impl FnOnce(&mut Scan<'a, '_>) -> R<T>,
    ) -> R<T> {
        let mut sc = Scan {
            s: line,
            b: line.as_bytes(),
            i: 0,
            depth: 0,
            known,
        };
        sc.ws();
        let v = f(&mut sc)?;
        sc.ws();
        (sc.i == sc.b.len()).then_some(v)
    }

    /// A `GetFlowsResponse` line.
    pub(super) fn response<'a>(line: &'a str, known: &Interner) -> R<Response<'a>> {
        whole(line, known, |sc| {
            let mut r = Response::default();
            let mut seen = 0u32;
            sc.object(|sc, key| {
                let bit = match key {
                    "flow" => 0,
                    "time" => 1,
                    "node_status" => 2,
                    "lost_events" => 3,
                    _ => return sc.skip(),
                };
                once(&mut seen, bit)?;
                match bit {
                    0 => r.flow = sc.opt(flow_object)?,
                    1 => r.time = sc.opt(Scan::string)?,
                    2 => r.node_status = sc.opt(ignored)?,
                    _ => r.lost_events = sc.opt(ignored)?,
                }
                Some(())
            })?;
            Some(r)
        })
    }

    /// A bare `Flow` line.
    pub(super) fn flow<'a>(line: &'a str, known: &Interner) -> R<RawFlow<'a>> {
        whole(line, known, flow_object)
    }

    fn once(seen: &mut u32, bit: u32) -> R<()> {
        if *seen & (1 << bit) != 0 {
            return None;
        }
        *seen |= 1 << bit;
        Some(())
    }

    fn ignored(sc: &mut Scan<'_, '_>) -> R<IgnoredAny> {
        sc.skip().map(|()| IgnoredAny)
    }

    fn flow_object<'a>(sc: &mut Scan<'a, '_>) -> R<RawFlow<'a>> {
        let mut f = RawFlow::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            let bit = match key {
                "time" => 0,
                "verdict" => 1,
                "drop_reason_desc" => 2,
                "drop_reason" => 3,
                "IP" => 4,
                "l4" => 5,
                "source" => 6,
                "destination" => 7,
                "Type" => 8,
                "l7" => 9,
                "traffic_direction" => 10,
                "is_reply" => 11,
                "reply" => 12,
                _ => return sc.skip(),
            };
            once(&mut seen, bit)?;
            match bit {
                0 => f.time = sc.opt(Scan::string)?,
                1 => f.verdict = sc.opt(Scan::string)?,
                2 => f.drop_reason_desc = sc.opt(Scan::string)?,
                3 => f.drop_reason = sc.opt(|sc| sc.uint(u32::MAX as u64))?.map(|v| v as u32),
                4 => f.ip = sc.opt(ip)?,
                5 => f.l4 = sc.opt(l4)?,
                6 => f.source = sc.opt(endpoint)?,
                7 => f.destination = sc.opt(endpoint)?,
                8 => f.kind = sc.opt(Scan::string)?,
                9 => f.l7 = sc.opt(l7)?,
                10 => f.traffic_direction = sc.opt(Scan::string)?,
                11 => f.is_reply = sc.opt(Scan::bool)?,
                _ => f.reply = sc.opt(Scan::bool)?,
            }
            Some(())
        })?;
        Some(f)
    }

    fn ip<'a>(sc: &mut Scan<'a, '_>) -> R<RawIp<'a>> {
        let mut r = RawIp::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            match key {
                "source" => {
                    once(&mut seen, 0)?;
                    r.source = sc.opt(Scan::string)?;
                }
                "destination" => {
                    once(&mut seen, 1)?;
                    r.destination = sc.opt(Scan::string)?;
                }
                _ => sc.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn ports(sc: &mut Scan<'_, '_>) -> R<RawPorts> {
        let mut r = RawPorts::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            match key {
                "source_port" => {
                    once(&mut seen, 0)?;
                    r.source_port = sc.opt(|sc| sc.uint(u16::MAX as u64))?.map(|v| v as u16);
                }
                "destination_port" => {
                    once(&mut seen, 1)?;
                    r.destination_port = sc.opt(|sc| sc.uint(u16::MAX as u64))?.map(|v| v as u16);
                }
                _ => sc.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn icmp(sc: &mut Scan<'_, '_>) -> R<RawIcmp> {
        let mut r = RawIcmp::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            match key {
                "type" => {
                    once(&mut seen, 0)?;
                    r.typ = sc.opt(|sc| sc.uint(u8::MAX as u64))?.map(|v| v as u8);
                }
                "code" => {
                    once(&mut seen, 1)?;
                    r.code = sc.opt(|sc| sc.uint(u8::MAX as u64))?.map(|v| v as u8);
                }
                _ => sc.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn l4(sc: &mut Scan<'_, '_>) -> R<RawL4> {
        let mut r = RawL4::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            let bit = match key {
                "TCP" => 0,
                "UDP" => 1,
                "SCTP" => 2,
                "ICMPv4" => 3,
                "ICMPv6" => 4,
                _ => return sc.skip(),
            };
            once(&mut seen, bit)?;
            match bit {
                0 => r.tcp = sc.opt(ports)?,
                1 => r.udp = sc.opt(ports)?,
                2 => r.sctp = sc.opt(ports)?,
                3 => r.icmpv4 = sc.opt(icmp)?,
                _ => r.icmpv6 = sc.opt(icmp)?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn endpoint<'a>(sc: &mut Scan<'a, '_>) -> R<RawEndpoint<'a>> {
        sc.ws();
        let (start, depth) = (sc.i, sc.depth);
        if let Some((len, id)) = sc.known.known_endpoint(sc.b.get(start..)?, depth) {
            sc.i += len;
            return Some(RawEndpoint {
                known: Some(id.clone()),
                ..RawEndpoint::default()
            });
        }
        let mut r = RawEndpoint::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            let bit = match key {
                "identity" => 0,
                "namespace" => 1,
                "pod_name" => 2,
                "labels" => 3,
                _ => return sc.skip(),
            };
            once(&mut seen, bit)?;
            match bit {
                0 => r.identity = sc.opt(|sc| sc.uint(u32::MAX as u64))?.map(|v| v as u32),
                1 => r.namespace = sc.opt(Scan::string)?,
                2 => r.pod_name = sc.opt(Scan::string)?,
                _ => r.labels = sc.opt(Scan::raw)?,
            }
            Some(())
        })?;
        r.text = Some((sc.s.get(start..sc.i)?, depth));
        Some(r)
    }

    fn l7(sc: &mut Scan<'_, '_>) -> R<RawL7> {
        let mut r = RawL7::default();
        let mut seen = 0u32;
        sc.object(|sc, key| {
            let bit = match key {
                "dns" => 0,
                "http" => 1,
                "kafka" => 2,
                _ => return sc.skip(),
            };
            once(&mut seen, bit)?;
            let v = sc.opt(ignored)?;
            match bit {
                0 => r.dns = v,
                1 => r.http = v,
                _ => r.kafka = v,
            }
            Some(())
        })?;
        Some(r)
    }

    impl<'a, 'k> Scan<'a, 'k> {
        #[inline]
        fn ws(&mut self) {
            while let Some(&c) = self.b.get(self.i) {
                if serde_json_ws(c) {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }

        #[inline]
        fn peek(&self) -> R<u8> {
            self.b.get(self.i).copied()
        }

        #[inline]
        fn lit(&mut self, word: &[u8]) -> R<()> {
            if self.b.get(self.i..)?.starts_with(word) {
                self.i += word.len();
                Some(())
            } else {
                None
            }
        }

        /// `null` → `None`, else the value read by `f` (as serde reads an `Option`).
        #[inline]
        fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
            self.ws();
            if self.peek()? == b'n' {
                self.lit(b"null")?;
                return Some(None);
            }
            f(self).map(Some)
        }

        /// An object: `field` is called with each key (unescaped) at its value.
        fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> R<()>) -> R<()> {
            self.ws();
            if self.peek()? != b'{' {
                return None;
            }
            self.i += 1;
            self.enter()?;
            self.ws();
            if self.peek()? == b'}' {
                self.i += 1;
                self.depth -= 1;
                return Some(());
            }
            loop {
                self.ws();
                let (key, escaped) = self.raw_str()?;
                let key = if escaped {
                    Cow::Owned(unescape(key)?)
                } else {
                    Cow::Borrowed(key)
                };
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.i += 1;
                self.ws();
                field(self, &key)?;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            self.depth -= 1;
            Some(())
        }

        #[inline]
        fn enter(&mut self) -> R<()> {
            self.depth += 1;
            (self.depth <= MAX_DEPTH).then_some(())
        }

        /// A string's text between its quotes, and whether it has escapes (checked as
        /// serde_json checks them when it skips a string: a known escape letter, four hex
        /// digits after `\u`).
        fn raw_str(&mut self) -> R<(&'a str, bool)> {
            if self.peek()? != b'"' {
                return None;
            }
            self.i += 1;
            let start = self.i;
            let mut escaped = false;
            loop {
                let k = quote_backslash_or_control(self.b.get(self.i..)?)?;
                self.i += k;
                let c = self.b[self.i];
                if c < 0x20 {
                    // serde_json rejects control characters in strings.
                    return None;
                }
                if c == b'"' {
                    let text = self.s.get(start..self.i)?;
                    self.i += 1;
                    return Some((text, escaped));
                }
                escaped = true;
                match *self.b.get(self.i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                    b'u' => {
                        let h = self.b.get(self.i + 2..self.i + 6)?;
                        if !h.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 6;
                    }
                    _ => return None,
                }
            }
        }

        /// A string value, unescaped.
        fn string(&mut self) -> R<Cow<'a, str>> {
            let (text, escaped) = self.raw_str()?;
            if !escaped {
                return Some(Cow::Borrowed(text));
            }
            unescape(text).map(Cow::Owned)
        }

        fn bool(&mut self) -> R<bool> {
            match self.peek()? {
                b't' => self.lit(b"true").map(|()| true),
                b'f' => self.lit(b"false").map(|()| false),
                _ => None,
            }
        }

        /// A plain unsigned integer no larger than `max` (no sign, fraction or exponent).
        fn uint(&mut self, max: u64) -> R<u64> {
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
                self.i += 1;
            }
            let n = self.i - start;
            if n == 0 || (n > 1 && self.b[start] == b'0') {
                return None;
            }
            if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || v > max {
                return None;
            }
            Some(v)
        }

        /// Any value's JSON text as it stands (what serde_json's `RawValue` holds).
        fn raw(&mut self) -> R<&'a str> {
            let start = self.i;
            self.skip()?;
            self.s.get(start..self.i)
        }

        /// Skips any value, checking it is valid JSON as serde_json does when it ignores one.
        fn skip(&mut self) -> R<()> {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.raw_str()?;
                }
                b'{' => {
                    self.i += 1;
                    self.enter()?;
                    self.ws();
                    if self.peek()? == b'}' {
                        self.i += 1;
                    } else {
                        loop {
                            self.ws();
                            self.raw_str()?;
                            self.ws();
                            if self.peek()? != b':' {
                                return None;
                            }
                            self.i += 1;
                            self.skip()?;
                            self.ws();
                            match self.peek()? {
                                b',' => self.i += 1,
                                b'}' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                    self.depth -= 1;
                }
                b'[' => {
                    self.i += 1;
                    self.enter()?;
                    self.ws();
                    if self.peek()? == b']' {
                        self.i += 1;
                    } else {
                        loop {
                            self.skip()?;
                            self.ws();
                            match self.peek()? {
                                b',' => self.i += 1,
                                b']' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                    self.depth -= 1;
                }
                b't' => self.lit(b"true")?,
                b'f' => self.lit(b"false")?,
                b'n' => self.lit(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            Some(())
        }

        /// A JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
        fn number(&mut self) -> R<()> {
            if self.peek()? == b'-' {
                self.i += 1;
            }
            match self.peek()? {
                b'0' => {
                    self.i += 1;
                    if matches!(self.peek(), Some(b'0'..=b'9')) {
                        return None;
                    }
                }
                b'1'..=b'9' => self.digits(),
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.i += 1;
                if !self.peek()?.is_ascii_digit() {
                    return None;
                }
                self.digits();
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.peek()?, b'+' | b'-') {
                    self.i += 1;
                }
                if !self.peek()?.is_ascii_digit() {
                    return None;
                }
                self.digits();
            }
            Some(())
        }

        #[inline]
        fn digits(&mut self) {
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
    }

    /// The first `"`, `\\` or control character in `b`, eight bytes at a time (strings here
    /// are short: a call to a vectorised search costs more than it saves).
    #[inline]
    fn quote_backslash_or_control(b: &[u8]) -> R<usize> {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let mut i = 0;
        while let Some(chunk) = b.get(i..i + 8) {
            let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let v = u64::from_le_bytes(arr);
            let q = v ^ (LO * b'"' as u64);
            let s = v ^ (LO * b'\\' as u64);
            // A zero byte of `q` or `s` is a match, and so is a byte below 0x20 in `v`; the
            // lowest flagged byte is always a true one (a false flag only follows a true one).
            let m = ((q.wrapping_sub(LO) & !q)
                | (s.wrapping_sub(LO) & !s)
                | (v.wrapping_sub(LO * 0x20) & !v))
                & HI;
            if m != 0 {
                return Some(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b.get(i..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|k| i + k)
    }

    fn hex4(b: &[u8]) -> R<u32> {
        let mut v = 0u32;
        for &c in b.get(..4)? {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }

    /// The text of a string with escapes (already checked by `raw_str`), unescaped; `None`
    /// for a lone surrogate.
    fn unescape(text: &str) -> R<String> {
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < b.len() {
            let k = memchr::memchr(b'\\', &b[i..]).map_or(b.len(), |k| i + k);
            out.push_str(text.get(i..k)?);
            if k >= b.len() {
                break;
            }
            let c = *b.get(k + 1)?;
            i = k + 2;
            out.push(match c {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = hex4(b.get(i..)?)?;
                    i += 4;
                    match hi {
                        0xd800..=0xdbff => {
                            // A high surrogate must be followed by an escaped low one.
                            if b.get(i..i + 2)? != b"\\u" {
                                return None;
                            }
                            let lo = hex4(b.get(i + 2..)?)?;
                            if !(0xdc00..=0xdfff).contains(&lo) {
                                return None;
                            }
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?
                        }
                        0xdc00..=0xdfff => return None,
                        c => char::from_u32(c)?,
                    }
                }
                _ => return None,
            });
        }
        Some(out)
    }
}

/// JSON whitespace.
#[inline]
fn serde_json_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}
