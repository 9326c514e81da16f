//! A longest-prefix-match table over IPv4 and IPv6 CIDRs: one hash map per prefix length,
//! probed from the longest length present to the shortest.

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// CIDR → value, longest prefix wins.
#[derive(Clone, Debug)]
pub struct PrefixTable<T> {
    /// (is IPv6, prefix length) → masked address → value; lengths sorted longest first.
    levels: Vec<(bool, u8, FxHashMap<u128, T>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable { levels: Vec::new() }
    }
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn mask(v6: bool, addr: u128, len: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (width - len as u32)) & if v6 { u128::MAX } else { u32::MAX as u128 }
    }
}

impl<T> PrefixTable<T> {
    /// Inserts `net`; returns the value it replaces for the very same prefix.
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        let (v6, addr) = bits(net.network());
        let len = net.prefix_len();
        let pos = match self
            .levels
            .iter()
            .position(|(b, l, _)| *b == v6 && *l == len)
        {
            Some(p) => p,
            None => {
                self.levels.push((v6, len, FxHashMap::default()));
                self.levels
                    .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                self.levels
                    .iter()
                    .position(|(b, l, _)| *b == v6 && *l == len)
                    .unwrap_or(0)
            }
        };
        self.levels[pos].2.insert(mask(v6, addr, len), value)
    }

    /// The value of the longest prefix holding `ip`, with that prefix's length.
    pub fn lookup(&self, ip: IpAddr) -> Option<(&T, u8)> {
        let (v6, addr) = bits(ip);
        self.levels
            .iter()
            .filter(|(b, _, _)| *b == v6)
            .find_map(|(_, len, m)| m.get(&mask(v6, addr, *len)).map(|v| (v, *len)))
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::default();
        t.insert("10.0.0.0/8".parse().unwrap(), "a");
        t.insert("10.1.0.0/16".parse().unwrap(), "b");
        t.insert("0.0.0.0/0".parse().unwrap(), "any");
        t.insert("fd00::/8".parse().unwrap(), "v6");
        for (ip, want, msg) in [
            ("10.1.2.3", Some("b"), "the /16 inside the /8"),
            ("10.2.0.1", Some("a"), "only the /8"),
            ("192.0.2.1", Some("any"), "the default route"),
            ("fd12::1", Some("v6"), "IPv6 apart from IPv4"),
            ("2001:db8::1", None, "no IPv6 default"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(t.lookup(ip).map(|(v, _)| *v), want, "{msg}");
        }
    }
}
