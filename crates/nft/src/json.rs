//! The ruleset as one nft JSON transaction (libnftables-json(5)), built with the `nftables`
//! crate's schema types: `add table` (creates it when missing), `delete table`, then the whole
//! table again. `nft -j -f FILE` runs it atomically: the table is replaced as a whole or not at
//! all, and no other table is named.

use crate::ruleset::{End, Family, Hook, Match, NRule, NVerdict, Ruleset, TABLE};
use bulkhead_core::{IpRange, Protocol};
use nftables::batch::Batch;
use nftables::expr::{self, Expression, NamedExpression, Payload, PayloadField, SetItem};
use nftables::schema::{self, NfListObject, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{self, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn table() -> schema::Table<'static> {
    schema::Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

/// One set element: an address, a prefix when the range is an aligned block, else a range.
pub fn element(r: &IpRange) -> Expression<'static> {
    let (first, last, bits): (u128, u128, u32) = match *r {
        IpRange::V4(a, b) => (a.into(), b.into(), 32),
        IpRange::V6(a, b) => (a, b, 128),
    };
    let addr = |x: u128| -> String {
        if bits == 32 {
            Ipv4Addr::from(x as u32).to_string()
        } else {
            Ipv6Addr::from(x).to_string()
        }
    };
    if first == last {
        return Expression::String(addr(first).into());
    }
    let size = last.wrapping_sub(first).wrapping_add(1);
    // An aligned power-of-two block (the whole space has size 0 after wrapping).
    let aligned = if size == 0 {
        first == 0
    } else {
        size.is_power_of_two() && first % size == 0
    };
    if aligned {
        let len = if size == 0 {
            0
        } else {
            bits - size.trailing_zeros()
        };
        return Expression::Named(NamedExpression::Prefix(expr::Prefix {
            addr: Box::new(Expression::String(addr(first).into())),
            len,
        }));
    }
    Expression::Range(Box::new(expr::Range {
        range: [
            Expression::String(addr(first).into()),
            Expression::String(addr(last).into()),
        ],
    }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn m(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(stmt::Match { left, right, op })
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// The ICMPv6 types of neighbour and router discovery (RFC 4861) and multicast listener
/// discovery (RFC 2710, RFC 3810: switches that snoop MLD deliver neighbour solicitations by
/// it), in type order (130–136, 143), as nft prints them back.
pub const ND_TYPES: [&str; 8] = [
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld2-listener-report",
];

fn statement(mt: &Match) -> Statement<'static> {
    match mt {
        Match::Established => m(
            Expression::Named(NamedExpression::CT(expr::CT {
                key: "state".into(),
                family: None,
                dir: None,
            })),
            Operator::IN,
            Expression::List(vec![
                Expression::String("established".into()),
                Expression::String("related".into()),
            ]),
        ),
        Match::Loopback(end) => m(
            Expression::Named(NamedExpression::Meta(expr::Meta {
                key: match end {
                    End::Src => expr::MetaKey::Iif,
                    End::Dst => expr::MetaKey::Oif,
                },
            })),
            Operator::EQ,
            Expression::String("lo".into()),
        ),
        Match::NeighbourDiscovery => m(
            payload("icmpv6", "type"),
            Operator::EQ,
            Expression::Named(NamedExpression::Set(
                ND_TYPES
                    .iter()
                    .map(|t| SetItem::Element(Expression::String((*t).into())))
                    .collect(),
            )),
        ),
        Match::Set(end, fam, name) => m(
            payload(
                match fam {
                    Family::V4 => "ip",
                    Family::V6 => "ip6",
                },
                match end {
                    End::Src => "saddr",
                    End::Dst => "daddr",
                },
            ),
            Operator::EQ,
            Expression::String(format!("@{name}").into()),
        ),
        Match::Ports(proto, ranges) => {
            let item = |&(a, b): &(u16, u16)| {
                if a == b {
                    Expression::Number(a.into())
                } else {
                    Expression::Range(Box::new(expr::Range {
                        range: [Expression::Number(a.into()), Expression::Number(b.into())],
                    }))
                }
            };
            let right = match ranges.as_slice() {
                [one] => item(one),
                many => Expression::Named(NamedExpression::Set(
                    many.iter().map(|r| SetItem::Element(item(r))).collect(),
                )),
            };
            m(payload(proto_name(*proto), "dport"), Operator::EQ, right)
        }
    }
}

fn rule(chain: &str, r: &NRule) -> schema::Rule<'static> {
    let mut exprs: Vec<Statement<'static>> = r.matches.iter().map(statement).collect();
    if let Some(c) = &r.counter {
        exprs.push(Statement::Counter(stmt::Counter::Named(c.clone().into())));
    }
    match &r.verdict {
        NVerdict::Accept => exprs.push(Statement::Accept(None)),
        NVerdict::Drop => exprs.push(Statement::Drop(None)),
        NVerdict::Return => exprs.push(Statement::Return(None)),
        NVerdict::Jump(t) => exprs.push(Statement::Jump(stmt::JumpTarget {
            target: t.clone().into(),
        })),
        NVerdict::None => {}
    }
    schema::Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.to_string().into(),
        expr: Cow::Owned(exprs),
        handle: None,
        index: None,
        comment: r.comment.clone().map(Cow::Owned),
    }
}

/// The objects of the table, in the order nft needs them (counters and sets before the rules
/// that name them, every chain before any jump to it).
pub fn objects(rs: &Ruleset) -> Vec<NfListObject<'static>> {
    let mut out = vec![NfListObject::Table(table())];
    for c in &rs.counters {
        out.push(NfListObject::Counter(schema::Counter {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: c.name.clone().into(),
            handle: None,
            packets: None,
            bytes: None,
        }));
    }
    for s in &rs.sets {
        out.push(NfListObject::Set(Box::new(schema::Set {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: s.name.clone().into(),
            handle: None,
            set_type: SetTypeValue::Single(match s.family {
                Family::V4 => SetType::Ipv4Addr,
                Family::V6 => SetType::Ipv6Addr,
            }),
            policy: None,
            flags: s.interval().then(|| HashSet::from([SetFlag::Interval])),
            elem: Some(Cow::Owned(s.elems.iter().map(element).collect())),
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        })));
    }
    for c in &rs.chains {
        let (t, hook, prio, policy) = match c.hook {
            Some(h) => (
                Some(NfChainType::Filter),
                Some(match h {
                    Hook::Input => NfHook::Input,
                    Hook::Output => NfHook::Output,
                }),
                Some(0),
                Some(NfChainPolicy::Accept),
            ),
            None => (None, None, None, None),
        };
        out.push(NfListObject::Chain(schema::Chain {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: c.name.clone().into(),
            newname: None,
            handle: None,
            _type: t,
            hook,
            prio,
            dev: None,
            policy,
        }));
    }
    for c in &rs.chains {
        for r in &c.rules {
            out.push(NfListObject::Rule(rule(&c.name, r)));
        }
    }
    out
}

/// The transaction that replaces the table atomically (and creates it on first use).
pub fn batch(rs: &Ruleset) -> nftables::schema::Nftables<'static> {
    let mut b = Batch::new();
    b.add(NfListObject::Table(table()));
    b.delete(NfListObject::Table(table()));
    for o in objects(rs) {
        b.add(o);
    }
    b.to_nftables()
}

/// The transaction as pretty JSON text.
pub fn to_json(rs: &Ruleset) -> String {
    let v = serde_json::to_value(batch(rs)).unwrap_or_default();
    let mut s = serde_json::to_string_pretty(&strip_nulls(v)).unwrap_or_default();
    s.push('\n');
    s
}

/// The schema types serialise a named counter object's absent `bytes` as `null`; nft wants it
/// absent. (Verdicts are `{"accept": null}` in nft's own schema and keep their `null`.)
fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, v)| !(v.is_null() && (k == "bytes" || k == "packets")))
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// The address an element's string holds (for tests and the read-back).
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(r: IpRange) -> String {
        serde_json::to_string(&element(&r)).unwrap()
    }

    #[test]
    fn elements_are_addresses_prefixes_or_ranges() {
        let a = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        for (r, want, why) in [
            (
                IpRange::V4(a("10.0.0.1"), a("10.0.0.1")),
                r#""10.0.0.1""#,
                "one address",
            ),
            (
                IpRange::V4(a("10.0.0.0"), a("10.0.0.255")),
                r#"{"prefix":{"addr":"10.0.0.0","len":24}}"#,
                "an aligned block",
            ),
            (
                IpRange::V4(a("10.0.0.1"), a("10.0.0.2")),
                r#"{"range":["10.0.0.1","10.0.0.2"]}"#,
                "two addresses, not aligned",
            ),
            (
                IpRange::V4(a("10.0.0.2"), a("10.0.0.5")),
                r#"{"range":["10.0.0.2","10.0.0.5"]}"#,
                "a power-of-two size, not aligned",
            ),
            (
                IpRange::V4(0, u32::MAX),
                r#"{"prefix":{"addr":"0.0.0.0","len":0}}"#,
                "the whole IPv4 space",
            ),
            (
                IpRange::V6(0, u128::MAX),
                r#"{"prefix":{"addr":"::","len":0}}"#,
                "the whole IPv6 space",
            ),
            (
                IpRange::V6(0xfd00 << 112, (0xfd00 << 112) | 0xffff),
                r#"{"prefix":{"addr":"fd00::","len":112}}"#,
                "an aligned IPv6 block",
            ),
        ] {
            assert_eq!(el(r), want, "{why}");
        }
    }

    #[test]
    fn the_transaction_replaces_only_our_table() {
        let rs = crate::ruleset::fail_closed("h", &[22]);
        let v: serde_json::Value = serde_json::from_str(&to_json(&rs)).unwrap();
        let objs = v["nftables"].as_array().unwrap();
        assert_eq!(objs[0]["add"]["table"]["name"], TABLE);
        assert_eq!(objs[1]["delete"]["table"]["name"], TABLE);
        // Every object names our table, in the inet family.
        for o in objs {
            let (_, inner) = o.as_object().unwrap().iter().next().unwrap();
            let (kind, obj) = inner.as_object().unwrap().iter().next().unwrap();
            let table = if kind == "table" {
                &obj["name"]
            } else {
                &obj["table"]
            };
            assert_eq!(table, TABLE, "{o}");
            assert_eq!(obj["family"], "inet", "{o}");
        }
        // A named counter object carries no null fields (nft rejects them); verdicts keep theirs.
        assert!(!to_json(&rs).contains("\"bytes\": null"));
        assert!(to_json(&rs).contains("\"drop\": null"));
    }
}
