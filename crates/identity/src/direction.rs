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
//!
//! Hubble reports a connection as several events — its SYN where it leaves the client's node
//! and where it reaches the server pod, the SYN-ACK reply, FINs, retransmitted SYNs that a
//! policy drops, L7 records. [`Connections`] folds them: a Hubble record whose oriented
//! 5-tuple had a record less than [`Connections::IDLE_NS`] before is part of that connection,
//! and only the first record of a connection counts as a flow.

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

/// An oriented 5-tuple: client, server, protocol, server port, client port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConnKey {
    client: IpAddr,
    server: IpAddr,
    proto: u8,
    port: u16,
    client_port: u16,
}

/// The address as a number (IPv4 and IPv6 may share one: equal keys still hash equally).
fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

impl std::hash::Hash for ConnKey {
    /// Two or three words instead of the derived field-by-field (and byte-by-byte for
    /// addresses) hashing: the map is probed once per Hubble record.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match (self.client, self.server) {
            (IpAddr::V4(c), IpAddr::V4(s)) => {
                h.write_u64(u64::from(c.to_bits()) << 32 | u64::from(s.to_bits()))
            }
            (c, s) => {
                h.write_u128(ip_bits(c));
                h.write_u128(ip_bits(s));
            }
        }
        h.write_u64(
            u64::from(self.proto) << 32 | u64::from(self.port) << 16 | u64::from(self.client_port),
        );
    }
}

/// Connections open (recently seen) per oriented 5-tuple, for folding the several Hubble
/// events of one connection into one flow.
#[derive(Default)]
pub struct Connections {
    /// (client, server, protocol, server port, client port) → the time of its last record.
    last: rustc_hash::FxHashMap<ConnKey, i64>,
    newest: i64,
    prune_at: usize,
}

impl Connections {
    /// Records of one 5-tuple closer than this belong to one connection (two minutes: a
    /// connection's events come at its start and end, and Linux does not reuse a client port
    /// for the same server that soon).
    pub const IDLE_NS: i64 = 120_000_000_000;

    pub fn new() -> Connections {
        Connections::default()
    }

    /// Whether `f` (oriented as `o`) starts a connection. Only Hubble records are folded (the
    /// other formats are one record per connection or per aggregation window); records without
    /// a time always start one.
    pub fn starts(&mut self, f: &Flow, o: &Oriented) -> bool {
        let Some(t) = f.time else {
            return true;
        };
        if f.origin.format != SourceFormat::Hubble {
            return true;
        }
        let client_port = if o.flipped { f.dst_port } else { f.src_port };
        let key = ConnKey {
            client: o.client,
            server: o.server,
            proto: f.protocol,
            port: o.port,
            client_port,
        };
        self.newest = self.newest.max(t);
        // One probe: the time kept is the newer of the two when the record is part of the
        // connection (records of one connection may come slightly out of order, from
        // several nodes), else the record's own.
        let starts = match self.last.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let p = *e.get();
                if t.abs_diff(p) < Self::IDLE_NS as u64 {
                    if t > p {
                        e.insert(t);
                    }
                    false
                } else {
                    e.insert(t);
                    true
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(t);
                true
            }
        };
        if self.last.len() > self.prune_at.max(1 << 16) {
            let keep = self.newest.saturating_sub(Self::IDLE_NS);
            self.last.retain(|_, v| *v >= keep);
            self.prune_at = 2 * self.last.len();
        }
        starts
    }

    /// Tuples remembered now.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
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

    #[test]
    fn hubble_events_of_one_connection_count_once() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let s = 1_000_000_000i64;
        let mk = |src, dst, sp, dp, reply, secs: i64, format| {
            let mut f = Flow::new(
                src,
                dst,
                ip_proto::TCP,
                sp,
                dp,
                FlowOrigin {
                    format,
                    source: 0,
                    record: 1,
                },
            );
            f.is_reply = Some(reply);
            f.time = Some(secs);
            f
        };
        use SourceFormat::*;
        let mut conns = Connections::new();
        let mut starts = |f: &Flow| conns.starts(f, &orient(f));
        for (f, want, msg) in [
            (
                mk(a, b, 40000, 8443, false, 10 * s, Hubble),
                true,
                "SYN at the client's node",
            ),
            (
                mk(a, b, 40000, 8443, false, 10 * s + 50_000, Hubble),
                false,
                "same SYN at the server pod",
            ),
            (
                mk(b, a, 8443, 40000, true, 10 * s + 90_000, Hubble),
                false,
                "SYN-ACK reply",
            ),
            (
                mk(a, b, 40000, 8443, false, 10 * s + 40_000, Hubble),
                false,
                "slightly out of order",
            ),
            (
                mk(a, b, 40000, 8443, false, 70 * s, Hubble),
                false,
                "FIN a minute later",
            ),
            (
                mk(a, b, 40001, 8443, false, 70 * s, Hubble),
                true,
                "another client port",
            ),
            (
                mk(c, b, 40000, 8443, false, 70 * s, Hubble),
                true,
                "another client",
            ),
            (
                mk(a, b, 40000, 8443, false, 191 * s, Hubble),
                true,
                "the port reused after the idle time",
            ),
            (
                mk(a, b, 40000, 8443, false, 191 * s, VpcFlowLogs),
                true,
                "VPC records are not folded",
            ),
            (
                mk(a, b, 40000, 8443, false, 191 * s, VpcFlowLogs),
                true,
                "VPC records are not folded (again)",
            ),
        ] {
            assert_eq!(starts(&f), want, "{msg}");
        }
        let mut untimed = mk(a, b, 40000, 8443, false, 0, Hubble);
        untimed.time = None;
        assert!(
            conns.starts(&untimed, &orient(&untimed)),
            "no time: counted"
        );
        assert!(
            conns.starts(&untimed, &orient(&untimed)),
            "no time: counted again"
        );
    }

    #[test]
    fn old_connections_are_forgotten() {
        let mut conns = Connections::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..200_000u32 {
            let mut f = Flow::new(
                a,
                b,
                ip_proto::UDP,
                (i % 60_000) as u16 + 1024,
                53,
                FlowOrigin {
                    format: SourceFormat::Hubble,
                    source: 0,
                    record: 1,
                },
            );
            f.time = Some(i as i64 * 10_000_000);
            f.is_reply = Some(false);
            assert!(
                conns.starts(&f, &orient(&f)),
                "record {i} is a new connection"
            );
        }
        // 100 records a second, two minutes remembered (plus what has not been pruned yet).
        assert!(conns.len() <= (1 << 16) + 1, "{} remembered", conns.len());
    }
}

#[cfg(test)]
mod agreement {
    //! [`Connections`] (one probe, a hand-written key hash) decides exactly as the plain
    //! definition: a map from the oriented 5-tuple to the newest time of its connection.
    use super::*;
    use bulkhead_core::flow::FlowOrigin;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The definition, written plainly (the previous implementation, without its pruning,
    /// which starts past 65,536 tuples: more than a case here holds).
    #[derive(Default)]
    struct Reference {
        last: HashMap<(IpAddr, IpAddr, u8, u16, u16), i64>,
    }

    impl Reference {
        fn starts(&mut self, f: &Flow, o: &Oriented) -> bool {
            let Some(t) = f.time else { return true };
            if f.origin.format != SourceFormat::Hubble {
                return true;
            }
            let cport = if o.flipped { f.dst_port } else { f.src_port };
            let key = (o.client, o.server, f.protocol, o.port, cport);
            let prev = self.last.insert(key, t);
            match prev {
                Some(p) if (t - p).abs() < Connections::IDLE_NS => {
                    if p > t {
                        self.last.insert(key, p);
                    }
                    false
                }
                _ => true,
            }
        }
    }

    fn flow() -> impl Strategy<Value = Flow> {
        let addr = prop_oneof![
            (0u8..4).prop_map(|i| IpAddr::from([10, 0, 0, i])),
            (0u16..3).prop_map(|i| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i])),
        ];
        (
            addr.clone(),
            addr,
            prop_oneof![Just(ip_proto::TCP), Just(ip_proto::UDP)],
            prop_oneof![Just(443u16), Just(40000u16), Just(40001u16)],
            prop_oneof![Just(443u16), Just(40000u16), Just(40001u16)],
            proptest::option::of(any::<bool>()),
            proptest::option::of(0i64..600),
            prop_oneof![
                4 => Just(SourceFormat::Hubble),
                1 => Just(SourceFormat::VpcFlowLogs)
            ],
        )
            .prop_map(|(src, dst, proto, sp, dp, reply, secs, format)| {
                let mut f = Flow::new(
                    src,
                    dst,
                    proto,
                    sp,
                    dp,
                    FlowOrigin {
                        format,
                        source: 0,
                        record: 1,
                    },
                );
                f.is_reply = reply;
                f.time = secs.map(|s| s * 1_000_000_000);
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn starts_as_the_definition(flows in proptest::collection::vec(flow(), 0..200)) {
            let (mut got, mut want) = (Connections::new(), Reference::default());
            for (i, f) in flows.iter().enumerate() {
                let o = orient(f);
                prop_assert_eq!(got.starts(f, &o), want.starts(f, &o), "record {}: {:?}", i, f);
            }
        }
    }
}
