//! The normal form a table is compared in: what was applied against what the kernel holds.
//!
//! Read from nft JSON list objects (`nft -j list table inet bulkhead`, or the `add` objects of
//! our own transaction): the named counters (names only — their values move), the sets (type,
//! flags and the addresses they hold, as normalised ranges: nft may print an element as an
//! address, a prefix or a range), the chains (type, hook, priority, policy) and each chain's
//! rules in order, each as its expression list exactly and its comment. Handles are dropped.
//! Our compiler emits expressions in the spelling nft prints them back (checked by the
//! dataplane tests), so equal tables have equal normal forms and any edit of a rule, set,
//! chain or counter shows as a difference.

use crate::ruleset::{Ruleset, TABLE};
use bulkhead_core::{IpRange, IpSet, RangeSet};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NSetForm {
    pub set_type: String,
    pub flags: Vec<String>,
    /// `first-last` ranges in address order.
    pub elements: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NChainForm {
    /// `type hook prio policy` of a base chain, empty for a regular chain.
    pub base: String,
    /// Each rule: its expressions (JSON) and comment.
    pub rules: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NormalForm {
    pub counters: BTreeSet<String>,
    pub sets: BTreeMap<String, NSetForm>,
    pub chains: BTreeMap<String, NChainForm>,
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// One element as an address set.
fn elem_set(v: &Value) -> Result<IpSet, String> {
    match v {
        Value::String(s) => s
            .parse()
            .map(IpSet::addr)
            .map_err(|_| format!("set element {s:?} is not an address")),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let cidr = format!("{}/{}", str_of(&p["addr"]), str_of(&p["len"]));
                IpSet::cidr(&cidr).map_err(|e| e.to_string())
            } else if let Some(Value::Array(r)) = o.get("range") {
                let (a, b) = match r.as_slice() {
                    [a, b] => (str_of(a), str_of(b)),
                    _ => return Err(format!("malformed range {v}")),
                };
                let a: std::net::IpAddr = a.parse().map_err(|_| format!("bad address {a:?}"))?;
                let b: std::net::IpAddr = b.parse().map_err(|_| format!("bad address {b:?}"))?;
                let s = match (a, b) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => IpSet {
                        v4: bulkhead_core::RangeSet::from_ranges([(u32::from(a), u32::from(b))]),
                        ..IpSet::empty()
                    },
                    (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => IpSet {
                        v6: bulkhead_core::RangeSet::from_ranges([(u128::from(a), u128::from(b))]),
                        ..IpSet::empty()
                    },
                    _ => return Err(format!("range {v} mixes families")),
                };
                Ok(s)
            } else if let Some(e) = o.get("elem") {
                elem_set(&e["val"])
            } else {
                Err(format!("unexpected set element {v}"))
            }
        }
        v => Err(format!("unexpected set element {v}")),
    }
}

impl NormalForm {
    /// From the list objects of `nft -j list table inet bulkhead` (`{"nftables": [...]}`).
    pub fn from_json(v: &Value) -> Result<NormalForm, String> {
        let objs = v["nftables"]
            .as_array()
            .ok_or("no \"nftables\" array in nft's output")?;
        Self::from_objects(objs.iter())
    }

    /// From list objects (`{"set": {...}}`, `{"rule": {...}}`, …); objects of other tables are
    /// ignored.
    pub fn from_objects<'a>(objs: impl Iterator<Item = &'a Value>) -> Result<NormalForm, String> {
        let mut nf = NormalForm::default();
        let mine = |o: &Value| {
            o["family"] == "inet"
                && (o["table"] == TABLE || (o.get("table").is_none() && o["name"] == TABLE))
        };
        let mut rules: Vec<&Value> = Vec::new();
        for o in objs {
            if let Some(c) = o.get("counter").filter(|c| mine(c)) {
                nf.counters.insert(str_of(&c["name"]));
            } else if let Some(s) = o.get("set").filter(|s| mine(s)) {
                // Collected, then normalised once: a union per element is quadratic.
                let (mut v4, mut v6) = (Vec::new(), Vec::new());
                for e in s["elem"].as_array().into_iter().flatten() {
                    for r in elem_set(e)?.ranges() {
                        match r {
                            IpRange::V4(a, b) => v4.push((a, b)),
                            IpRange::V6(a, b) => v6.push((a, b)),
                        }
                    }
                }
                let set = IpSet {
                    v4: RangeSet::from_ranges(v4),
                    v6: RangeSet::from_ranges(v6),
                };
                let mut flags: Vec<String> = match &s["flags"] {
                    Value::Array(a) => a.iter().map(str_of).collect(),
                    Value::Null => vec![],
                    f => vec![str_of(f)],
                };
                flags.sort();
                nf.sets.insert(
                    str_of(&s["name"]),
                    NSetForm {
                        set_type: str_of(&s["type"]),
                        flags,
                        elements: set.ranges().map(|r| r.to_string()).collect(),
                    },
                );
            } else if let Some(c) = o.get("chain").filter(|c| mine(c)) {
                let base = if c.get("hook").is_some() {
                    format!(
                        "{} {} {} {}",
                        str_of(&c["type"]),
                        str_of(&c["hook"]),
                        str_of(&c["prio"]),
                        str_of(&c["policy"])
                    )
                } else {
                    String::new()
                };
                nf.chains.insert(
                    str_of(&c["name"]),
                    NChainForm {
                        base,
                        rules: vec![],
                    },
                );
            } else if let Some(r) = o.get("rule").filter(|r| mine(r)) {
                rules.push(r);
            }
        }
        for r in rules {
            let chain = str_of(&r["chain"]);
            let entry = nf
                .chains
                .get_mut(&chain)
                .ok_or_else(|| format!("a rule in chain {chain:?}, which is not listed"))?;
            entry
                .rules
                .push((r["expr"].to_string(), str_of(&r["comment"])));
        }
        Ok(nf)
    }

    /// The normal form of what a ruleset applies.
    pub fn of(rs: &Ruleset) -> NormalForm {
        let objs: Vec<Value> = crate::json::objects(rs)
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        // Our own objects always parse (the dataplane tests apply them).
        Self::from_objects(objs.iter()).unwrap_or_default()
    }

    /// The form as one canonical JSON text (for digests).
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What differs, one line per set, chain or counter (empty: equal).
    pub fn diff(&self, actual: &NormalForm) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.counters.symmetric_difference(&actual.counters) {
            out.push(if self.counters.contains(c) {
                format!("counter {c} missing")
            } else {
                format!("counter {c} added")
            });
        }
        let keys: BTreeSet<&String> = self.sets.keys().chain(actual.sets.keys()).collect();
        for k in keys {
            match (self.sets.get(k), actual.sets.get(k)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(_)) => out.push(format!("set {k} changed")),
                (Some(_), None) => out.push(format!("set {k} missing")),
                (None, _) => out.push(format!("set {k} added")),
            }
        }
        let keys: BTreeSet<&String> = self.chains.keys().chain(actual.chains.keys()).collect();
        for k in keys {
            match (self.chains.get(k), actual.chains.get(k)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => out.push(format!(
                    "chain {k} changed ({} rules expected, {} found)",
                    a.rules.len(),
                    b.rules.len()
                )),
                (Some(_), None) => out.push(format!("chain {k} missing")),
                (None, _) => out.push(format!("chain {k} added")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(elems: Value) -> Value {
        json!({"set": {"family": "inet", "table": "bulkhead", "name": "s", "type": "ipv4_addr",
            "handle": 3, "flags": ["interval"], "elem": elems}})
    }

    #[test]
    fn elements_normalise_whatever_their_spelling() {
        let a = NormalForm::from_objects(
            [set(
                json!(["10.0.0.1", {"range": ["10.0.0.2", "10.0.0.3"]}]),
            )]
            .iter(),
        )
        .unwrap();
        let b = NormalForm::from_objects(
            [set(
                json!([{"prefix": {"addr": "10.0.0.0", "len": 30}}, {"elem": {"val": "10.0.0.0"}}]),
            )]
            .iter(),
        )
        .unwrap();
        assert_eq!(a.sets["s"].elements, vec!["10.0.0.1-10.0.0.3"]);
        assert_eq!(b.sets["s"].elements, vec!["10.0.0.0-10.0.0.3"]);
        assert_eq!(a.diff(&b), vec!["set s changed"]);
        assert!(NormalForm::from_objects([set(json!(["nope"]))].iter()).is_err());
    }

    #[test]
    fn other_tables_and_handles_do_not_count() {
        let ours =
            json!({"chain": {"family": "inet", "table": "bulkhead", "name": "c", "handle": 1}});
        let theirs = json!({"chain": {"family": "inet", "table": "other", "name": "x"}});
        let ip = json!({"chain": {"family": "ip", "table": "bulkhead", "name": "y"}});
        let rule = |handle: u32, comment: &str| {
            json!({"rule": {"family": "inet", "table": "bulkhead", "chain": "c", "handle": handle,
                "expr": [{"accept": null}], "comment": comment}})
        };
        let a = NormalForm::from_objects([ours.clone(), theirs, ip, rule(7, "x")].iter()).unwrap();
        let b = NormalForm::from_objects([ours.clone(), rule(9, "x")].iter()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.chains.len(), 1);
        let c = NormalForm::from_objects([ours, rule(9, "x"), rule(10, "y")].iter()).unwrap();
        assert_eq!(
            a.diff(&c),
            vec!["chain c changed (1 rules expected, 2 found)"]
        );
    }
}
