//! One normalised flow record, whatever telemetry it came from (Cilium Hubble, AWS VPC Flow
//! Logs, Zeek conn.log, NetFlow v5/v9, IPFIX).
//!
//! The record is built for volume: everything common is inline and `Copy`-sized (addresses,
//! ports, counters, times, small enums); what only some sources know (Hubble's namespaces, pods,
//! labels and numeric identities) sits behind one `Option<Box<_>>`, and its strings are
//! reference-counted so that a parser can intern them and share one allocation between the
//! many records of the same workload.

use crate::conn::Protocol;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Nanoseconds since the Unix epoch (UTC). `i64` covers the years 1678–2262.
pub type Timestamp = i64;

/// IANA protocol numbers of the protocols flows are usually about.
pub mod ip_proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// One observed flow (or one flow-log record: sources aggregate differently, see `origin`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Start of the record (Hubble: the event time; VPC: `start`; Zeek: `ts`; NetFlow/IPFIX:
    /// flow start), nanoseconds since the epoch. `None` when the source does not give it (Zeek
    /// test baselines mask it; the VPC transit-gateway format has no `start`).
    pub time: Option<Timestamp>,
    /// End of the record (VPC: `end`; Zeek: `ts + duration`; NetFlow/IPFIX: flow end); `None`
    /// when unknown. Hubble events are instants: `None`.
    pub end_time: Option<Timestamp>,
    /// Source address (the sender of this record's packets).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source transport port; 0 for protocols without ports (and for ICMP, see `dst_port`).
    pub src_port: u16,
    /// Destination transport port; 0 for protocols without ports. For ICMP and ICMPv6 it holds
    /// `type << 8 | code` (NetFlow's convention), where the source gives them.
    pub dst_port: u16,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, …); see
    /// [`Flow::transport`] for the core [`Protocol`]. 0 when unknown.
    pub protocol: u8,
    /// Bytes the record counts (0 when the source does not count them, e.g. Hubble events).
    /// Zeek: `orig_bytes + resp_bytes` (both directions of the connection).
    pub bytes: u64,
    /// Packets the record counts (0 when the source does not count them).
    /// Zeek: `orig_pkts + resp_pkts`.
    pub packets: u64,
    /// Traffic direction relative to the observing endpoint or interface, where known.
    pub direction: Option<FlowDirection>,
    /// What the observer did with the flow, where it says.
    pub verdict: Option<Verdict>,
    /// Why the flow was dropped (Hubble `drop_reason_desc`, e.g. `POLICY_DENIED`), where given.
    pub drop_reason: Option<Box<str>>,
    /// Whether this record is the reply direction of a connection (Hubble `is_reply`), where
    /// known.
    pub is_reply: Option<bool>,
    /// Layer-7 record kind (Hubble L7 events); `None` for L3/L4 records. An L7 record keeps the
    /// 5-tuple of the L4 connection it belongs to, so it aggregates onto the same edge.
    pub l7: Option<L7Kind>,
    /// Where the record came from.
    pub origin: FlowOrigin,
    /// Workload identity hints from the source (Hubble only so far).
    pub identity: Option<Box<FlowIdentity>>,
}

impl Flow {
    /// A record with the 5-tuple set and everything else unknown or zero.
    pub fn new(
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        src_port: u16,
        dst_port: u16,
        origin: FlowOrigin,
    ) -> Flow {
        Flow {
            time: None,
            end_time: None,
            src,
            dst,
            src_port,
            dst_port,
            protocol,
            bytes: 0,
            packets: 0,
            direction: None,
            verdict: None,
            drop_reason: None,
            is_reply: None,
            l7: None,
            origin,
            identity: None,
        }
    }

    /// The core protocol for TCP, UDP and SCTP; `None` for every other IANA number.
    pub fn transport(&self) -> Option<Protocol> {
        match self.protocol {
            ip_proto::TCP => Some(Protocol::Tcp),
            ip_proto::UDP => Some(Protocol::Udp),
            ip_proto::SCTP => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// ICMP type and code for ICMP/ICMPv6 records, from `dst_port`.
    pub fn icmp_type_code(&self) -> Option<(u8, u8)> {
        matches!(self.protocol, ip_proto::ICMP | ip_proto::ICMPV6)
            .then(|| ((self.dst_port >> 8) as u8, self.dst_port as u8))
    }
}

/// Direction of traffic relative to the observation point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowDirection {
    /// Into the observed endpoint or interface.
    Ingress,
    /// Out of the observed endpoint or interface.
    Egress,
}

/// What the observer did with the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Hubble `FORWARDED`.
    Forwarded,
    /// Hubble `DROPPED`.
    Dropped,
    /// Hubble `ERROR`.
    Error,
    /// Hubble `AUDIT` (would have been dropped, policy in audit mode).
    Audit,
    /// Hubble `REDIRECTED` (to a proxy).
    Redirected,
    /// Hubble `TRACED`.
    Traced,
    /// Hubble `TRANSLATED`.
    Translated,
    /// VPC Flow Logs `ACCEPT`.
    Accepted,
    /// VPC Flow Logs `REJECT`.
    Rejected,
}

impl Verdict {
    /// Whether the traffic was blocked (dropped, rejected or errored).
    pub fn is_blocked(self) -> bool {
        matches!(self, Verdict::Dropped | Verdict::Rejected | Verdict::Error)
    }
}

/// Kind of a layer-7 record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Kind {
    /// DNS request or response.
    Dns,
    /// HTTP request or response.
    Http,
    /// Kafka request or response.
    Kafka,
    /// Another L7 protocol, or an L7 record without a recognised body.
    Other,
}

/// The telemetry format a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// Cilium Hubble `hubble observe -o json`.
    Hubble,
    /// AWS VPC Flow Logs (any version).
    VpcFlowLogs,
    /// Zeek conn.log, tab-separated.
    ZeekTsv,
    /// Zeek conn.log, JSON lines.
    ZeekJson,
    /// NetFlow version 5.
    NetflowV5,
    /// NetFlow version 9.
    NetflowV9,
    /// IPFIX (NetFlow version 10).
    Ipfix,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Hubble => "hubble",
            SourceFormat::VpcFlowLogs => "vpc-flow-logs",
            SourceFormat::ZeekTsv => "zeek-tsv",
            SourceFormat::ZeekJson => "zeek-json",
            SourceFormat::NetflowV5 => "netflow-v5",
            SourceFormat::NetflowV9 => "netflow-v9",
            SourceFormat::Ipfix => "ipfix",
        })
    }
}

/// Where a record came from: format, input and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FlowOrigin {
    /// The telemetry format.
    pub format: SourceFormat,
    /// Index of the input (file or exporter) in the list the parser's caller keeps.
    pub source: u32,
    /// 1-based line number for line formats; 1-based record number within the input for
    /// NetFlow/IPFIX (counting every decoded data record of that input).
    pub record: u64,
}

/// Workload identity hints a source gives for both ends of a flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowIdentity {
    /// The source endpoint.
    pub src: EndpointIdentity,
    /// The destination endpoint.
    pub dst: EndpointIdentity,
}

/// What a source says about one endpoint. Strings are shared (`Arc`) so parsers can intern them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointIdentity {
    /// Kubernetes namespace.
    #[serde(serialize_with = "ser_opt_str")]
    pub namespace: Option<Arc<str>>,
    /// Pod name.
    #[serde(serialize_with = "ser_opt_str")]
    pub pod: Option<Arc<str>>,
    /// Labels as the source spells them (Hubble: `k8s:app=x`, `reserved:world`, …).
    #[serde(serialize_with = "ser_labels")]
    pub labels: Arc<[Arc<str>]>,
    /// Numeric security identity (Cilium).
    pub identity: Option<u32>,
}

// Serialised by hand: core's serde has no `rc` feature, and these are plain strings anyway.
fn ser_opt_str<S: serde::Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&**v),
        None => s.serialize_none(),
    }
}

fn ser_labels<S: serde::Serializer>(v: &Arc<[Arc<str>]>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|l| &**l))
}

impl EndpointIdentity {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.pod.is_none()
            && self.labels.is_empty()
            && self.identity.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_and_icmp() {
        let o = FlowOrigin {
            format: SourceFormat::Hubble,
            source: 0,
            record: 1,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let f = Flow::new(a, a, ip_proto::TCP, 1, 2, o);
        assert_eq!(f.transport(), Some(Protocol::Tcp));
        assert_eq!(f.icmp_type_code(), None);
        let f = Flow::new(a, a, ip_proto::ICMP, 0, 8 << 8, o);
        assert_eq!(f.transport(), None);
        assert_eq!(f.icmp_type_code(), Some((8, 0)));
        assert!(Verdict::Rejected.is_blocked() && !Verdict::Forwarded.is_blocked());
    }

    #[test]
    fn record_stays_small() {
        // Addresses (2 × 17), times, counters and small enums inline; identity boxed: 136 bytes.
        assert!(
            std::mem::size_of::<Flow>() <= 144,
            "{}",
            std::mem::size_of::<Flow>()
        );
    }
}
