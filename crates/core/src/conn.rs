//! Protocols, port sets and connection sets (a port set per protocol).

use crate::rangeset::RangeSet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The transport protocols Kubernetes policies speak of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    fn index(self) -> usize {
        match self {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
            Protocol::Sctp => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a protocol name that is not TCP, UDP or SCTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected TCP, UDP or SCTP)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            _ => Err(UnknownProtocol(s.to_string())),
        }
    }
}

/// The lowest and highest port a policy can name.
pub const MIN_PORT: u16 = 1;
pub const MAX_PORT: u16 = 65535;

/// A set of ports in `1..=65535`.
pub type PortSet = RangeSet<u16>;

/// All ports `1..=65535`.
pub fn all_ports() -> PortSet {
    RangeSet::range(MIN_PORT, MAX_PORT)
}

/// A set of connections: for each protocol, the destination ports allowed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConnSet {
    ports: [PortSet; 3],
}

impl fmt::Debug for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnSet({self})")
    }
}

impl ConnSet {
    /// No connection.
    pub fn none() -> Self {
        ConnSet::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        ConnSet {
            ports: [all_ports(), all_ports(), all_ports()],
        }
    }

    /// Every port of one protocol.
    pub fn protocol(p: Protocol) -> Self {
        Self::ports(p, all_ports())
    }

    /// The given ports of one protocol (clipped to `1..=65535`).
    pub fn ports(p: Protocol, ports: PortSet) -> Self {
        let mut c = ConnSet::none();
        c.ports[p.index()] = ports.intersect(&all_ports());
        c
    }

    /// One port of one protocol.
    pub fn single(p: Protocol, port: u16) -> Self {
        Self::ports(p, RangeSet::range(port, port))
    }

    pub fn ports_of(&self, p: Protocol) -> &PortSet {
        &self.ports[p.index()]
    }

    pub fn is_empty(&self) -> bool {
        self.ports.iter().all(|p| p.is_empty())
    }

    /// The first connection of the set (lowest protocol, lowest port).
    pub fn first(&self) -> Option<(Protocol, u16)> {
        Protocol::ALL
            .into_iter()
            .find_map(|p| self.ports_of(p).ranges().first().map(|&(a, _)| (p, a)))
    }

    pub fn is_all(&self) -> bool {
        *self == ConnSet::all()
    }

    pub fn contains(&self, p: Protocol, port: u16) -> bool {
        self.ports[p.index()].contains(port)
    }

    pub fn union(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a.union(b))
    }

    pub fn intersect(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a.intersect(b))
    }

    pub fn subtract(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a.subtract(b))
    }

    fn zip(&self, o: &Self, f: impl Fn(&PortSet, &PortSet) -> PortSet) -> Self {
        ConnSet {
            ports: [
                f(&self.ports[0], &o.ports[0]),
                f(&self.ports[1], &o.ports[1]),
                f(&self.ports[2], &o.ports[2]),
            ],
        }
    }
}

/// Writes a port set as `80,443,8000-8080`.
pub fn fmt_ports(ports: &PortSet) -> String {
    ports
        .ranges()
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The np-guard spelling: `All Connections`, `No Connections`, or `<PROTO> <ports>` items sorted
/// by protocol name and joined by `,` (e.g. `SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535`).
impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for p in [Protocol::Sctp, Protocol::Tcp, Protocol::Udp] {
            let ports = self.ports_of(p);
            if ports.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{p} {}", fmt_ports(ports))?;
        }
        Ok(())
    }
}

/// Error for a connection set written in an unknown form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid connection set {0:?}: expected `All Connections` or items like `TCP 80,8000-8080`"
)]
pub struct InvalidConnSet(pub String);

/// Parses the spelling [`Display`](fmt::Display) writes; a round trip gives the same set.
impl FromStr for ConnSet {
    type Err = InvalidConnSet;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidConnSet(s.to_string());
        let s = s.trim();
        if s == "All Connections" {
            return Ok(ConnSet::all());
        }
        if s == "No Connections" {
            return Ok(ConnSet::none());
        }
        let mut out = ConnSet::none();
        let mut proto: Option<Protocol> = None;
        for item in s.split(',') {
            let item = item.trim();
            let ports = match item.split_once(' ') {
                Some((p, rest)) => {
                    proto = Some(p.parse().map_err(|_| err())?);
                    rest
                }
                None => item,
            };
            let p = proto.ok_or_else(err)?;
            let (a, b) = match ports.split_once('-') {
                Some((a, b)) => (a, b),
                None => (ports, ports),
            };
            let a: u16 = a.trim().parse().map_err(|_| err())?;
            let b: u16 = b.trim().parse().map_err(|_| err())?;
            if a < MIN_PORT || a > b {
                return Err(err());
            }
            out = out.union(&ConnSet::ports(p, RangeSet::range(a, b)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_np_guard_spelling() {
        let cases: &[(ConnSet, &str, &str)] = &[
            (
                ConnSet::all(),
                "All Connections",
                "all protocols, all ports",
            ),
            (ConnSet::none(), "No Connections", "empty"),
            (
                ConnSet::protocol(Protocol::Tcp),
                "TCP 1-65535",
                "one full protocol",
            ),
            (
                ConnSet::all().subtract(&ConnSet::single(Protocol::Udp, 5353)),
                "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535",
                "protocols sorted by name, holes split runs",
            ),
            (
                ConnSet::single(Protocol::Tcp, 8080).union(&ConnSet::single(Protocol::Tcp, 9555)),
                "TCP 8080,9555",
                "single ports",
            ),
        ];
        for (set, want, msg) in cases {
            assert_eq!(set.to_string(), *want, "{msg}");
            assert_eq!(&want.parse::<ConnSet>().unwrap(), set, "round trip: {msg}");
        }
    }

    #[test]
    fn rejects_malformed_conn_sets() {
        for bad in ["", "TCP", "TCP 0", "TCP 9-8", "ICMP 1", "80"] {
            assert!(bad.parse::<ConnSet>().is_err(), "{bad:?} should not parse");
        }
    }
}
