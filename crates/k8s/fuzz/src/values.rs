//! The value parsers of `bulkhead-core`: no panic on any text, and what parses prints back to
//! text that parses to the same value.

use bulkhead_core::conn::Protocol;
use bulkhead_core::{ConnSet, IpRange, IpSet, Labels, Operator, Requirement, Selector};
use std::net::IpAddr;

/// Runs every parser on `s` (the label requirement reads it as lines: key, operator, values).
pub fn check(s: &str) {
    conn_set(s);
    protocol(s);
    cidr(s);
    operator(s);
    requirement(s);
}

/// `ConnSet`: its `Display` parses back to the same set, and prints the same again.
pub fn conn_set(s: &str) {
    let Ok(c) = s.parse::<ConnSet>() else {
        return;
    };
    let shown = c.to_string();
    let back: ConnSet = shown
        .parse()
        .unwrap_or_else(|e| panic!("{s:?} parses to {c:?}, whose text {shown:?} does not: {e}"));
    assert_eq!(back, c, "{s:?}: round trip through {shown:?}");
    assert_eq!(back.to_string(), shown, "{s:?}: printing is not stable");
    assert_eq!(
        c.is_empty(),
        shown == "No Connections",
        "{s:?}: emptiness and text disagree"
    );
}

/// `Protocol`: case-insensitive, printed upper case, round trip.
pub fn protocol(s: &str) {
    let Ok(p) = s.parse::<Protocol>() else {
        return;
    };
    assert!(p.as_str().eq_ignore_ascii_case(s), "{s:?} parses to {p}");
    assert_eq!(
        p.to_string().parse::<Protocol>(),
        Ok(p),
        "{s:?}: round trip"
    );
}

/// `IpSet::cidr`: one aligned block of addresses, which holds the address written, and which the
/// block's own CIDR (first address and prefix length) gives again.
pub fn cidr(s: &str) {
    let Ok(set) = IpSet::cidr(s) else {
        return;
    };
    let ranges: Vec<IpRange> = set.ranges().collect();
    assert_eq!(ranges.len(), 1, "{s:?}: a CIDR is one block: {ranges:?}");
    let (addr, _) = s.trim().split_once('/').expect("a parsed CIDR has a '/'");
    let ip: IpAddr = addr.parse().expect("a parsed CIDR has an address");
    assert!(set.contains(ip), "{s:?}: the block lacks its own address");
    let len = match ranges[0] {
        IpRange::V4(a, b) => {
            let host = a ^ b;
            assert!(
                a & host == 0 && host & host.wrapping_add(1) == 0,
                "{s:?}: not an aligned block"
            );
            host.leading_zeros()
        }
        IpRange::V6(a, b) => {
            let host = a ^ b;
            assert!(
                a & host == 0 && host & host.wrapping_add(1) == 0,
                "{s:?}: not an aligned block"
            );
            host.leading_zeros()
        }
    };
    let canonical = format!("{}/{len}", ranges[0].first());
    assert_eq!(
        IpSet::cidr(&canonical).as_ref(),
        Ok(&set),
        "{s:?}: its canonical form {canonical:?} gives another set"
    );
}

/// `Operator`: the Kubernetes spelling (its `Debug` name) parses back.
pub fn operator(s: &str) {
    let Ok(op) = s.parse::<Operator>() else {
        return;
    };
    assert_eq!(
        format!("{op:?}").parse::<Operator>().ok(),
        Some(op),
        "{s:?}"
    );
}

/// A label requirement from lines `key`, `operator`, `value`…: when valid, it matches as
/// Kubernetes defines (a label set holding the key with its first value, and one without the
/// key), and a selector of it matches the same and prints.
pub fn requirement(s: &str) {
    let mut lines = s.split('\n');
    let key = lines.next().unwrap_or_default();
    let Some(Ok(op)) = lines.next().map(str::parse::<Operator>) else {
        return;
    };
    let values: Vec<String> = lines.map(str::to_string).collect();
    let r = match Requirement::new(key, op, values.clone()) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(!key.is_empty(), "a requirement with an empty key");
    let value = values.first().cloned().unwrap_or_else(|| "v".to_string());
    let with: Labels = [(key.to_string(), value)].into_iter().collect();
    let without = Labels::new();
    let (want_with, want_without) = match op {
        Operator::In => (true, false),
        Operator::NotIn => (false, true),
        Operator::Exists => (true, false),
        Operator::DoesNotExist => (false, true),
    };
    assert_eq!(r.matches(&with), want_with, "{r:?} on {with:?}");
    assert_eq!(r.matches(&without), want_without, "{r:?} on no labels");
    let sel = Selector::new(std::iter::empty(), [r.clone()]).expect("a valid requirement");
    assert_eq!(sel.matches(&with), want_with);
    assert_eq!(sel.matches(&without), want_without);
    assert!(!sel.to_string().is_empty());
    if op == Operator::In && values.len() == 1 {
        // `matchLabels: {key: value}` is the same selector.
        let ml = Selector::new([(key.to_string(), values[0].clone())], []).expect("valid");
        assert_eq!(ml, sel, "matchLabels and `In` with one value differ");
    }
}
