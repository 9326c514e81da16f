//! Which end of a record is the client: edges are keyed in the connection's direction
//! (client → server, server port).
//!
//! - Hubble records with `is_reply: true` are flipped; `is_reply: false` are kept.
//! - Zeek conn.log records are always originator → responder: kept.
//! - ICMP and records without ports are kept (the "port" is ICMP `type << 8 | code`).
//! - Records without direction information (VPC Flow Logs, NetFlow/IPFIX, Hubble without the
//!   `is_reply` field) are flipped when the ports say the source is the server: the source
//!   port is well known (< 1024) and the destination port is not, or the destination port is
//!   in the ephemeral range (≥ 32768) and the source port is below it. Two registered ports
//!   (1024–32767) or two ephemeral ports are kept as recorded.

use bulkhead_core::flow::{Flow, SourceFormat, ip_proto};
use std::net::IpAddr;

/// The ephemeral port range starts here (Linux uses 32768–60999, Windows 49152–65535).
pub const EPHEMERAL_START: u16 = 32768;

/// A record in the connection's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oriented {
    pub client: IpAddr,
    pub server: IpAddr,
    /// The server's port (ICMP: type << 8 | code; 0 for portless protocols).
    pub port: u16,
    /// Whether the record was the reply direction.
    pub flipped: bool,
}

/// Whether ports alone say that `src_port` is the server's.
pub fn ports_say_reply(src_port: u16, dst_port: u16) -> bool {
    if src_port == 0 || dst_port == 0 {
        return false;
    }
    (src_port < 1024 && dst_port >= 1024)
        || (src_port < EPHEMERAL_START && dst_port >= EPHEMERAL_START)
}

/// Orients a record (see the module docs for the rules).
pub fn orient(f: &Flow) -> Oriented {
    let keep = Oriented {
        client: f.src,
        server: f.dst,
        port: f.dst_port,
        flipped: false,
    };
    let flip = Oriented {
        client: f.dst,
        server: f.src,
        port: f.src_port,
        flipped: true,
    };
    if matches!(f.protocol, ip_proto::ICMP | ip_proto::ICMPV6) {
        return keep;
    }
    if matches!(
        f.origin.format,
        SourceFormat::ZeekTsv | SourceFormat::ZeekJson
    ) {
        return keep;
    }
    match f.is_reply {
        Some(true) => flip,
        Some(false) => keep,
        None if ports_say_reply(f.src_port, f.dst_port) => flip,
        None => keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_core::flow::FlowOrigin;

    #[test]
    fn direction_rules() {
        let o = |format| FlowOrigin {
            format,
            source: 0,
            record: 1,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mk = |sp, dp, reply, fmt| {
            let mut f = Flow::new(a, b, ip_proto::TCP, sp, dp, o(fmt));
            f.is_reply = reply;
            f
        };
        use SourceFormat::*;
        for (f, flipped, msg) in [
            (mk(8443, 40000, Some(true), Hubble), true, "hubble reply"),
            (
                mk(8443, 40000, Some(false), Hubble),
                false,
                "hubble request, whatever the ports",
            ),
            (
                mk(443, 50000, None, VpcFlowLogs),
                true,
                "well-known source port",
            ),
            (
                mk(40000, 443, None, VpcFlowLogs),
                false,
                "request to a well-known port",
            ),
            (
                mk(8443, 40000, None, NetflowV9),
                true,
                "ephemeral destination",
            ),
            (
                mk(5000, 6000, None, NetflowV9),
                false,
                "two registered ports: as recorded",
            ),
            (
                mk(443, 50000, None, ZeekTsv),
                false,
                "zeek is always orig -> resp",
            ),
        ] {
            let r = orient(&f);
            assert_eq!(r.flipped, flipped, "{msg}");
            assert_eq!(
                r.port,
                if flipped { f.src_port } else { f.dst_port },
                "{msg}"
            );
        }
    }
}
