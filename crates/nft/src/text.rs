//! The ruleset as nft's own language (nft(8)), for people to read and for `nft -f`: the same
//! transaction as the JSON (`table` creates the table when missing, `delete table`, then the
//! whole table), so either file applies it atomically.

use crate::json::{ND_TYPES, element};
use crate::ruleset::{End, Family, Hook, Match, NRule, NVerdict, Ruleset, TABLE};
use bulkhead_core::Protocol;
use nftables::expr::{Expression, NamedExpression};
use std::fmt::Write;

fn elem_text(r: &bulkhead_core::IpRange) -> String {
    match element(r) {
        Expression::String(s) => s.into_owned(),
        Expression::Named(NamedExpression::Prefix(p)) => match *p.addr {
            Expression::String(s) => format!("{s}/{}", p.len),
            _ => String::new(),
        },
        Expression::Range(rg) => match &rg.range {
            [Expression::String(a), Expression::String(b)] => format!("{a}-{b}"),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

fn quote(s: &str) -> String {
    // nft strings cannot hold a double quote; comments are ours and never need one.
    format!("\"{}\"", s.replace('"', "'"))
}

fn match_text(m: &Match) -> String {
    match m {
        Match::Established => "ct state established,related".into(),
        Match::Loopback(End::Src) => "iif \"lo\"".into(),
        Match::Loopback(End::Dst) => "oif \"lo\"".into(),
        Match::NeighbourDiscovery => format!("icmpv6 type {{ {} }}", ND_TYPES.join(", ")),
        Match::Set(end, fam, name) => format!(
            "{} {} @{name}",
            if *fam == Family::V4 { "ip" } else { "ip6" },
            if *end == End::Src { "saddr" } else { "daddr" }
        ),
        Match::Ports(p, rs) => {
            let items: Vec<String> = rs
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let proto = match p {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            if items.len() == 1 {
                format!("{proto} dport {}", items[0])
            } else {
                format!("{proto} dport {{ {} }}", items.join(", "))
            }
        }
    }
}

fn rule_text(r: &NRule) -> String {
    let mut parts: Vec<String> = r.matches.iter().map(match_text).collect();
    if let Some(c) = &r.counter {
        parts.push(format!("counter name {}", quote(c)));
    }
    match &r.verdict {
        NVerdict::Accept => parts.push("accept".into()),
        NVerdict::Drop => parts.push("drop".into()),
        NVerdict::Return => parts.push("return".into()),
        NVerdict::Jump(t) => parts.push(format!("jump {t}")),
        NVerdict::None => {}
    }
    if let Some(c) = &r.comment {
        parts.push(format!("comment {}", quote(c)));
    }
    parts.join(" ")
}

/// The table alone (`table inet bulkhead { … }`).
pub fn table_text(rs: &Ruleset) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE} {{");
    for c in &rs.counters {
        let _ = writeln!(s, "\tcounter {} {{\n\t}}", c.name);
    }
    for set in &rs.sets {
        let _ = writeln!(s, "\tset {} {{", set.name);
        let _ = writeln!(
            s,
            "\t\ttype {}",
            if set.family == Family::V4 {
                "ipv4_addr"
            } else {
                "ipv6_addr"
            }
        );
        if set.interval() {
            let _ = writeln!(s, "\t\tflags interval");
        }
        if !set.elems.is_empty() {
            let elems: Vec<String> = set.elems.iter().map(elem_text).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(",\n\t\t\t     "));
        }
        let _ = writeln!(s, "\t}}");
    }
    for c in &rs.chains {
        let _ = writeln!(s, "\tchain {} {{", c.name);
        if let Some(h) = c.hook {
            let hook = if h == Hook::Input { "input" } else { "output" };
            let _ = writeln!(
                s,
                "\t\ttype filter hook {hook} priority filter; policy accept;"
            );
        }
        for r in &c.rules {
            let _ = writeln!(s, "\t\t{}", rule_text(r));
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// The transaction: creates the table when missing, deletes it, adds it whole.
pub fn to_text(rs: &Ruleset) -> String {
    let mut s = format!(
        "#!/usr/sbin/nft -f\n# Bulkhead ruleset for host {} (mode {}). Generated; do not edit.\n",
        rs.host,
        rs.mode.as_str()
    );
    for n in &rs.notes {
        let _ = writeln!(s, "# note: {n}");
    }
    let _ = writeln!(s, "table inet {TABLE}\ndelete table inet {TABLE}");
    s.push_str(&table_text(rs));
    s
}
