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

/// Splits on runs of spaces (and tabs) without allocating: the fields of `line.split([' ',
/// '\t'])` that are not empty, found byte by byte (both separators are ASCII, so every cut is
/// at a character boundary).
fn tokens(line: &str) -> Tokens<'_> {
    Tokens { s: line, i: 0 }
}

struct Tokens<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        let mut i = self.i;
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= b.len() {
            self.i = i;
            return None;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        self.i = i;
        self.s.get(start..i)
    }
}

/// `s.parse::<IpAddr>()`, with dotted-quad IPv4 (each part 1–3 digits, no leading zero, at
/// most 255: the only form std accepts) read directly; anything else goes to std.
#[inline]
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    if b.len() <= 15 {
        let mut octets = [0u8; 4];
        let (mut part, mut i) = (0usize, 0usize);
        let ok = loop {
            let start = i;
            let mut v: u32 = 0;
            while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
                v = v * 10 + u32::from(b[i] - b'0');
                i += 1;
            }
            let n = i - start;
            if n == 0 || v > 255 || (n > 1 && b[start] == b'0') {
                break false;
            }
            octets[part] = v as u8;
            part += 1;
            if part == 4 {
                break i == b.len();
            }
            if b.get(i) != Some(&b'.') {
                break false;
            }
            i += 1;
        };
        if ok {
            return Some(IpAddr::from(octets));
        }
    }
    s.parse().ok()
}

/// `s.parse::<T>()` for an unsigned or non-negative field: plain digits (that fit in a u64)
/// are read directly, anything else (signs, overlong, not a number) by std.
#[inline]
fn parse_num<T: std::str::FromStr + TryFrom<u64>>(s: &str) -> Option<T> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
        let v = b.iter().fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'));
        return T::try_from(v).ok();
    }
    s.parse().ok()
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
        let addr = |a: Option<&str>| a.and_then(parse_ip);
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
                    v => match parse_num::<$t>(v) {
                        Some(x) => Some(x),
                        None => {
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

#[cfg(test)]
mod fast_paths {
    //! The direct byte readers agree with std on any input (they only take the forms std
    //! surely reads the same way, and hand the rest to std).
    use super::{parse_ip, parse_num, tokens};
    use proptest::prelude::*;
    use std::net::IpAddr;

    /// Strings near the interesting cases: dotted quads with leading zeros, parts over 255,
    /// too few or many parts, signs, spaces, IPv6.
    fn ipish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}",
            "[0-9.]{0,18}",
            "[0-9a-f:.]{0,40}",
            "[+ 0-9.]{0,16}",
            any::<String>(),
        ]
    }

    fn numish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{0,22}",
            "[+-]?[0-9]{1,21}",
            "[0-9 a_.]{0,6}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn ip_as_std(s in ipish()) {
            prop_assert_eq!(parse_ip(&s), s.parse::<IpAddr>().ok(), "{:?}", s);
        }

        #[test]
        fn numbers_as_std(s in numish()) {
            prop_assert_eq!(parse_num::<u8>(&s), s.parse::<u8>().ok(), "u8 {:?}", s);
            prop_assert_eq!(parse_num::<u16>(&s), s.parse::<u16>().ok(), "u16 {:?}", s);
            prop_assert_eq!(parse_num::<u64>(&s), s.parse::<u64>().ok(), "u64 {:?}", s);
            prop_assert_eq!(parse_num::<i64>(&s), s.parse::<i64>().ok(), "i64 {:?}", s);
        }

        #[test]
        fn tokens_as_split(s in "[ \ta-z0-9\u{e9}-]{0,40}") {
            let want: Vec<&str> = s.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            prop_assert_eq!(tokens(&s).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn ip_edge_cases() {
        for (s, msg) in [
            ("10.0.0.1", "plain"),
            ("0.0.0.0", "zeros"),
            ("255.255.255.255", "max"),
            ("256.0.0.1", "part over 255"),
            ("010.0.0.1", "leading zero"),
            ("1.2.3", "three parts"),
            ("1.2.3.4.5", "five parts"),
            ("1.2.3.4 ", "trailing space"),
            ("1..2.3", "empty part"),
            ("::ffff:10.0.0.1", "IPv6 with an IPv4 tail"),
            ("2001:db8::1", "IPv6"),
            ("", "empty"),
        ] {
            assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{msg}: {s:?}");
        }
        assert_eq!(
            parse_ip("10.1.2.3"),
            Some(IpAddr::from([10, 1, 2, 3])),
            "the value itself"
        );
        assert_eq!(parse_num::<u16>("65536"), None, "u16 overflow");
        assert_eq!(parse_num::<u16>("+80"), Some(80), "std reads a plus sign");
        assert_eq!(
            parse_num::<i64>("9223372036854775808"),
            None,
            "i64 overflow"
        );
    }
}
