//! Fixed-width binary rows: keys big-endian (so byte order is time order), values
//! little-endian. Decoders return `None` on a wrong length instead of panicking.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The bucket of records without a time: sorts after every timed bucket.
pub const UNTIMED: u64 = u64::MAX;
pub(crate) const KEY_LEN: usize = 19;
const STATS_LEN: usize = 64;
const RAW_LEN: usize = 71;
const SIGN: u64 = 1 << 63;

/// The bucket number of a time (order-preserving over negative times too).
#[inline]
pub fn bucket_of(t: Option<i64>, bucket_ns: i64) -> u64 {
    match t {
        None => UNTIMED,
        Some(t) => ((t.div_euclid(bucket_ns.max(1)) as u64) ^ SIGN).min(UNTIMED - 1),
    }
}

/// The start time (ns) of a bucket; `None` for [`UNTIMED`].
pub fn bucket_start(bucket: u64, bucket_ns: i64) -> Option<i64> {
    (bucket != UNTIMED).then(|| ((bucket ^ SIGN) as i64).saturating_mul(bucket_ns))
}

pub(crate) fn raw_key(time: i64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((time as u64) ^ SIGN).to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// An edge row's key: (bucket, source node, destination node, protocol, server port). Before
/// a commit, `src`/`dst` hold the writer's entity numbers; in the store, node ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub bucket: u64,
    pub src: u32,
    pub dst: u32,
    /// IANA protocol number.
    pub proto: u8,
    /// Server port (ICMP: type << 8 | code).
    pub port: u16,
}

impl EdgeKey {
    pub(crate) fn first_of(bucket: u64) -> EdgeKey {
        EdgeKey {
            bucket,
            src: 0,
            dst: 0,
            proto: 0,
            port: 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[..8].copy_from_slice(&self.bucket.to_be_bytes());
        k[8..12].copy_from_slice(&self.src.to_be_bytes());
        k[12..16].copy_from_slice(&self.dst.to_be_bytes());
        k[16] = self.proto;
        k[17..].copy_from_slice(&self.port.to_be_bytes());
        k
    }

    pub(crate) fn decode(b: &[u8]) -> Option<EdgeKey> {
        if b.len() != KEY_LEN {
            return None;
        }
        Some(EdgeKey {
            bucket: u64::from_be_bytes(b[..8].try_into().ok()?),
            src: u32::from_be_bytes(b[8..12].try_into().ok()?),
            dst: u32::from_be_bytes(b[12..16].try_into().ok()?),
            proto: b[16],
            port: u16::from_be_bytes(b[17..].try_into().ok()?),
        })
    }
}

/// An edge's counts. `first`/`last` are ns since the epoch; an edge of untimed records keeps
/// `first = i64::MAX`, `last = i64::MIN` (see [`EdgeStats::seen`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeStats {
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    pub first: i64,
    pub last: i64,
    /// Forwarded, accepted, redirected, translated, traced or audited.
    pub allowed: u64,
    /// Dropped, rejected or errored.
    pub denied: u64,
    /// No verdict in the record.
    pub unknown: u64,
}

impl Default for EdgeStats {
    fn default() -> Self {
        EdgeStats {
            flows: 0,
            bytes: 0,
            packets: 0,
            first: i64::MAX,
            last: i64::MIN,
            allowed: 0,
            denied: 0,
            unknown: 0,
        }
    }
}

/// A record's verdict, as edges count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictClass {
    Allowed,
    Denied,
    Unknown,
}

impl EdgeStats {
    /// One record. `time`/`end` as the record gives them.
    pub fn one(
        time: Option<i64>,
        end: Option<i64>,
        bytes: u64,
        packets: u64,
        v: VerdictClass,
    ) -> EdgeStats {
        let first = time.unwrap_or(i64::MAX);
        let last = end.or(time).unwrap_or(i64::MIN);
        EdgeStats {
            flows: 1,
            bytes,
            packets,
            first,
            last,
            allowed: (v == VerdictClass::Allowed) as u64,
            denied: (v == VerdictClass::Denied) as u64,
            unknown: (v == VerdictClass::Unknown) as u64,
        }
    }

    /// Adds another edge's counts.
    #[inline]
    pub fn merge(&mut self, o: &EdgeStats) {
        self.flows += o.flows;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.packets = self.packets.saturating_add(o.packets);
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.allowed += o.allowed;
        self.denied += o.denied;
        self.unknown += o.unknown;
    }

    /// First and last seen, when any record had a time.
    pub fn seen(&self) -> Option<(i64, i64)> {
        (self.first <= self.last).then_some((self.first, self.last))
    }

    pub(crate) fn encode(&self) -> [u8; STATS_LEN] {
        let mut b = [0u8; STATS_LEN];
        for (i, v) in [
            self.flows,
            self.bytes,
            self.packets,
            self.first as u64,
            self.last as u64,
            self.allowed,
            self.denied,
            self.unknown,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<EdgeStats> {
        if b.len() != STATS_LEN {
            return None;
        }
        let u = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().ok()?))
        };
        Some(EdgeStats {
            flows: u(0)?,
            bytes: u(1)?,
            packets: u(2)?,
            first: u(3)? as i64,
            last: u(4)? as i64,
            allowed: u(5)?,
            denied: u(6)?,
            unknown: u(7)?,
        })
    }
}

/// One flow of the raw window, as recorded (not oriented), with its resolved nodes. Before a
/// commit, `src_node`/`dst_node` hold the writer's entity numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFlow {
    pub time: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub bytes: u64,
    pub packets: u64,
    /// 0 unknown, 1 allowed, 2 denied.
    pub verdict: u8,
    pub src_node: u32,
    pub dst_node: u32,
}

fn ip16(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), false),
        IpAddr::V6(a) => (a.octets(), true),
    }
}

fn ip_from(b: [u8; 16], v6: bool) -> IpAddr {
    let a = Ipv6Addr::from(b);
    if v6 {
        IpAddr::V6(a)
    } else {
        IpAddr::V4(a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED))
    }
}

impl RawFlow {
    pub(crate) fn encode(&self) -> [u8; RAW_LEN] {
        let mut b = [0u8; RAW_LEN];
        let (s, s6) = ip16(self.src);
        let (d, d6) = ip16(self.dst);
        b[0..8].copy_from_slice(&self.time.to_le_bytes());
        b[8..24].copy_from_slice(&s);
        b[24..40].copy_from_slice(&d);
        b[40] = s6 as u8 | (d6 as u8) << 1;
        b[41..43].copy_from_slice(&self.src_port.to_le_bytes());
        b[43..45].copy_from_slice(&self.dst_port.to_le_bytes());
        b[45] = self.proto;
        b[46..54].copy_from_slice(&self.bytes.to_le_bytes());
        b[54..62].copy_from_slice(&self.packets.to_le_bytes());
        b[62] = self.verdict;
        b[63..67].copy_from_slice(&self.src_node.to_le_bytes());
        b[67..71].copy_from_slice(&self.dst_node.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<RawFlow> {
        if b.len() != RAW_LEN {
            return None;
        }
        Some(RawFlow {
            time: i64::from_le_bytes(b[0..8].try_into().ok()?),
            src: ip_from(b[8..24].try_into().ok()?, b[40] & 1 != 0),
            dst: ip_from(b[24..40].try_into().ok()?, b[40] & 2 != 0),
            src_port: u16::from_le_bytes(b[41..43].try_into().ok()?),
            dst_port: u16::from_le_bytes(b[43..45].try_into().ok()?),
            proto: b[45],
            bytes: u64::from_le_bytes(b[46..54].try_into().ok()?),
            packets: u64::from_le_bytes(b[54..62].try_into().ok()?),
            verdict: b[62],
            src_node: u32::from_le_bytes(b[63..67].try_into().ok()?),
            dst_node: u32::from_le_bytes(b[67..71].try_into().ok()?),
        })
    }
}

/// A raw chunk: the newest time, then the flows.
pub(crate) fn encode_chunk(flows: &[RawFlow]) -> Vec<u8> {
    let newest = flows.iter().map(|f| f.time).max().unwrap_or(i64::MIN);
    let mut out = Vec::with_capacity(8 + flows.len() * RAW_LEN);
    out.extend_from_slice(&newest.to_le_bytes());
    for f in flows {
        out.extend_from_slice(&f.encode());
    }
    out
}

pub(crate) fn decode_chunk(b: &[u8]) -> Option<Vec<RawFlow>> {
    let body = b.get(8..)?;
    if body.len() % RAW_LEN != 0 {
        return None;
    }
    body.chunks_exact(RAW_LEN).map(RawFlow::decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_order() {
        let k = EdgeKey {
            bucket: bucket_of(Some(-5), 10),
            src: 1,
            dst: 2,
            proto: 6,
            port: 443,
        };
        assert_eq!(EdgeKey::decode(&k.encode()), Some(k));
        assert!(bucket_of(Some(-5), 10) < bucket_of(Some(5), 10));
        assert!(bucket_of(Some(i64::MAX), 1) < UNTIMED);
        assert_eq!(bucket_start(bucket_of(Some(25), 10), 10), Some(20));
        assert_eq!(bucket_start(bucket_of(Some(-5), 10), 10), Some(-10));
        let s = EdgeStats::one(Some(3), Some(9), 10, 2, VerdictClass::Denied);
        assert_eq!(EdgeStats::decode(&s.encode()), Some(s));
        assert_eq!(EdgeStats::decode(&[0; 3]), None);
        let r = RawFlow {
            time: -1,
            src: "10.0.0.1".parse().unwrap(),
            dst: "fd00::1".parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            proto: 17,
            bytes: 3,
            packets: 4,
            verdict: 1,
            src_node: 5,
            dst_node: 6,
        };
        assert_eq!(RawFlow::decode(&r.encode()), Some(r));
        assert!(raw_key(-1, 9) < raw_key(0, 0));
    }
}
