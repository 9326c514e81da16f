//! AWS VPC Flow Logs, any version: space-separated records whose field order comes from the
//! header line (custom formats), or the default version-2 order when a file has no header:
//! `version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start
//! end action log-status`.
//!
//! - Every documented field name of versions 2–8 is accepted in a header (`-` or `_` spelling);
//!   the ones a flow needs are used, the rest ignored, unknown names too.
//! - `-` is a missing value. Records with `log-status` `NODATA` or `SKIPDATA` carry no flow and
//!   are skipped under their own reason; so are records without addresses.
//! - `action` `ACCEPT` / `REJECT` is the verdict; `flow-direction` `ingress` / `egress` the
//!   direction; `start` / `end` (seconds) the times. Formats without `bytes`, `packets`,
//!   `start` or `end` (transit gateway) give 0 and `None`.
//! - `srcaddr` / `dstaddr` are the interface-level addresses and are what the flow carries;
//!   records whose `pkt-srcaddr` / `pkt-dstaddr` differ (NAT, load balancers, transit
//!   gateways) are counted in the report's notes.
//! - Fields are split on runs of spaces without allocating.

use crate::report::Report;
use bulkhead_core::flow::{Flow, FlowDirection, FlowOrigin, SourceFormat, Verdict};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    FlowDirection,
    PktSrcAddr,
    PktDstAddr,
    Known,
    Unknown,
}

/// Every field name AWS documents for versions 2–8 (and the transit-gateway format).
const KNOWN: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    "reject-reason",
    "resource-id",
    "encryption-status",
    // Transit gateway flow logs.
    "tgw-id",
    "tgw-attachment-id",
    "tgw-src-vpc-account-id",
    "tgw-dst-vpc-account-id",
    "tgw-src-vpc-id",
    "tgw-dst-vpc-id",
    "tgw-src-subnet-id",
    "tgw-dst-subnet-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "tgw-src-az-id",
    "tgw-dst-az-id",
    "tgw-pair-attachment-id",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
    "tcp-flags",
];

fn field(name: &str) -> Field {
    let n = name.replace('_', "-");
    match n.as_str() {
        "srcaddr" => Field::SrcAddr,
        "dstaddr" => Field::DstAddr,
        "srcport" => Field::SrcPort,
        "dstport" => Field::DstPort,
        "protocol" => Field::Protocol,
        "packets" => Field::Packets,
        "bytes" => Field::Bytes,
        "start" => Field::Start,
        "end" => Field::End,
        "action" => Field::Action,
        "log-status" => Field::LogStatus,
        "flow-direction" => Field::FlowDirection,
        "pkt-srcaddr" => Field::PktSrcAddr,
        "pkt-dstaddr" => Field::PktDstAddr,
        _ if KNOWN.contains(&n.as_str()) => Field::Known,
        _ => Field::Unknown,
    }
}

const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// Splits on runs of spaces (and tabs) without allocating.
fn tokens(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t']).filter(|t| !t.is_empty())
}

/// The per-file state: the current field order.
pub struct VpcParser {
    cols: Vec<Field>,
}

impl Default for VpcParser {
    fn default() -> Self {
        Self::new()
    }
}

impl VpcParser {
    /// A parser with the default version-2 order until a header says otherwise.
    pub fn new() -> Self {
        VpcParser {
            cols: tokens(V2).map(field).collect(),
        }
    }

    fn is_header(line: &str) -> bool {
        // A header starts with a field name, never a digit; all its tokens are names.
        let first = tokens(line).next().unwrap_or("");
        !first.starts_with(|c: char| c.is_ascii_digit())
            && tokens(line).all(|t| {
                t.bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'-' || c == b'_' || c.is_ascii_digit())
            })
            && tokens(line).any(|t| matches!(field(t), Field::SrcAddr | Field::DstAddr))
    }

    /// Parses one line (a header line changes the field order for the lines after it).
    pub fn parse_line(
        &mut self,
        line: &str,
        source: u32,
        no: u64,
        rep: &mut Report,
        sink: &mut dyn FnMut(Flow),
    ) {
        let b = line.as_bytes();
        if b.first().is_some_and(|c| !c.is_ascii_digit()) && Self::is_header(line) {
            self.cols = tokens(line).map(field).collect();
            return;
        }
        rep.read += 1;
        let mut src: Option<&str> = None;
        let mut dst: Option<&str> = None;
        let (mut sp, mut dp, mut proto) = ("-", "-", "-");
        let (mut packets, mut bytes, mut start, mut end) = ("-", "-", "-", "-");
        let (mut action, mut status, mut dir) = ("-", "-", "-");
        let (mut psrc, mut pdst) = ("-", "-");
        let mut n = 0;
        for t in tokens(line) {
            let Some(f) = self.cols.get(n) else {
                n += 1;
                break;
            };
            n += 1;
            match f {
                Field::SrcAddr => src = Some(t),
                Field::DstAddr => dst = Some(t),
                Field::SrcPort => sp = t,
                Field::DstPort => dp = t,
                Field::Protocol => proto = t,
                Field::Packets => packets = t,
                Field::Bytes => bytes = t,
                Field::Start => start = t,
                Field::End => end = t,
                Field::Action => action = t,
                Field::LogStatus => status = t,
                Field::FlowDirection => dir = t,
                Field::PktSrcAddr => psrc = t,
                Field::PktDstAddr => pdst = t,
                Field::Known | Field::Unknown => {}
            }
        }
        if n != self.cols.len() {
            rep.skip(
                source,
                no,
                "VPC: wrong number of fields",
                format_args!(
                    "{} fields where the header names {}",
                    tokens(line).count(),
                    self.cols.len()
                ),
            );
            return;
        }
        match status {
            "NODATA" => {
                rep.skip(
                    source,
                    no,
                    "VPC: NODATA (no traffic in the interval)",
                    "log-status NODATA",
                );
                return;
            }
            "SKIPDATA" => {
                rep.skip(
                    source,
                    no,
                    "VPC: SKIPDATA (records lost in the interval)",
                    "log-status SKIPDATA",
                );
                return;
            }
            _ => {}
        }
        let addr = |a: Option<&str>| a.and_then(|a| a.parse::<IpAddr>().ok());
        let (Some(s), Some(d)) = (addr(src), addr(dst)) else {
            rep.skip(
                source,
                no,
                "VPC: missing or invalid address",
                format_args!(
                    "srcaddr {:?}, dstaddr {:?}",
                    src.unwrap_or(""),
                    dst.unwrap_or("")
                ),
            );
            return;
        };
        macro_rules! num {
            ($v:expr, $t:ty, $name:literal) => {
                match $v {
                    "-" => None,
                    v => match v.parse::<$t>() {
                        Ok(x) => Some(x),
                        Err(_) => {
                            rep.skip(
                                source,
                                no,
                                concat!("VPC: invalid ", $name),
                                format_args!("{} {:?}", $name, v),
                            );
                            return;
                        }
                    },
                }
            };
        }
        let sp = num!(sp, u16, "srcport").unwrap_or(0);
        let dp = num!(dp, u16, "dstport").unwrap_or(0);
        let proto = num!(proto, u8, "protocol").unwrap_or(0);
        let packets = num!(packets, u64, "packets").unwrap_or(0);
        let bytes = num!(bytes, u64, "bytes").unwrap_or(0);
        let start = num!(start, i64, "start");
        let end = num!(end, i64, "end");
        let origin = FlowOrigin {
            format: SourceFormat::VpcFlowLogs,
            source,
            record: no,
        };
        let mut f = Flow::new(s, d, proto, sp, dp, origin);
        f.packets = packets;
        f.bytes = bytes;
        f.time = start.and_then(|s| s.checked_mul(1_000_000_000));
        f.end_time = end.and_then(|s| s.checked_mul(1_000_000_000));
        f.verdict = match action {
            "ACCEPT" => Some(Verdict::Accepted),
            "REJECT" => Some(Verdict::Rejected),
            _ => None,
        };
        f.direction = match dir {
            "ingress" => Some(FlowDirection::Ingress),
            "egress" => Some(FlowDirection::Egress),
            _ => None,
        };
        if (psrc != "-" && psrc != src.unwrap_or("-"))
            || (pdst != "-" && pdst != dst.unwrap_or("-"))
        {
            rep.note("VPC: pkt-srcaddr/pkt-dstaddr differ from srcaddr/dstaddr (the flow keeps srcaddr/dstaddr)");
        }
        rep.parsed += 1;
        sink(f);
    }
}
