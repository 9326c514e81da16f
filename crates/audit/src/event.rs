//! Audit events and their canonical JSON (the bytes of each Merkle leaf).
//!
//! # Canonical JSON
//! A subset of RFC 8785 (JCS) that the event schema needs, and nothing else:
//! - one object; keys sorted by their bytes; no whitespace anywhere; no duplicate keys;
//! - values are strings or non-negative integers (no floats, no nesting);
//! - integers in plain decimal without sign or leading zeros;
//! - strings are UTF-8; `"` and `\` are escaped as `\"` and `\\`; U+0008, U+0009, U+000A,
//!   U+000C, U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; other characters below U+0020 as `\u00xx`
//!   (lowercase hex); every other character, including non-ASCII, is written as itself;
//! - optional fields (`before`, `after`) are left out when absent, never `null`.
//!
//! An entry reads back only if re-encoding gives exactly the same bytes, so each event has one
//! leaf hash.
//!
//! # Schema (version 1)
//! `{"action":…,"actor":…,"after":…,"before":…,"object":…,"reason":…,"seq":…,"time":…,"v":1}`
//! - `seq`: the entry's index in the log (0-based), so a deleted or reordered entry is named;
//! - `time`: RFC 3339 UTC, millisecond precision, `2026-11-27T05:01:02.345Z`;
//! - `before` / `after`: digests of the object before and after the change, `sha256:<64 hex>`.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The event schema version written in every entry (`"v"`).
pub const EVENT_VERSION: u64 = 1;
/// The largest canonical event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Documented actions. The list is open: any non-empty string of `[a-z0-9._-]` is accepted.
pub mod actions {
    pub const POLICY_LOAD: &str = "policy.load";
    pub const STORE_INGEST: &str = "store.ingest";
    pub const POLICY_PLAN: &str = "policy.plan";
    pub const POLICY_COMPILE: &str = "policy.compile";
    pub const POLICY_APPLY: &str = "policy.apply";
    pub const AGENT_APPLY: &str = "agent.apply";
    /// The host agent found its table changed and re-applied it (before: found, after: expected).
    pub const AGENT_DRIFT: &str = "agent.drift";
    /// The host agent could not apply or verify, or lost its policy source.
    pub const AGENT_FAILURE: &str = "agent.failure";
    pub const QUARANTINE: &str = "quarantine";
    pub const RELEASE: &str = "release";
    pub const RECOMMENDATION_ACCEPT: &str = "recommendation.accept";
    /// A least-privilege proposal written by `bulkhead recommend` (after: its digest).
    pub const POLICY_RECOMMEND: &str = "policy.recommend";
    pub const ALERT: &str = "alert";
    pub const APPROVAL: &str = "approval";
    pub const CHECKPOINT_PUBLISH: &str = "checkpoint.publish";
    /// Written by [`crate::AuditLog::rotate_key`] only: the object is the new verifier key.
    pub const KEY_ROTATE: &str = "key.rotate";
    /// Every documented action.
    pub const ALL: &[&str] = &[
        POLICY_LOAD,
        STORE_INGEST,
        POLICY_PLAN,
        POLICY_COMPILE,
        POLICY_APPLY,
        AGENT_APPLY,
        AGENT_DRIFT,
        AGENT_FAILURE,
        QUARANTINE,
        RELEASE,
        RECOMMENDATION_ACCEPT,
        POLICY_RECOMMEND,
        ALERT,
        APPROVAL,
        CHECKPOINT_PUBLISH,
        KEY_ROTATE,
    ];
}

/// Why an event or entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Invalid(String),
    #[error("not an audit event: {0}")]
    Json(String),
    #[error("not in canonical form (sorted keys, no whitespace, minimal escapes)")]
    NotCanonical,
}

/// A SHA-256 digest of an object's state, written `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The SHA-256 of some bytes.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(data).into())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Digest {
    /// Appends `sha256:<hex>` (the hot path of canonical encoding; no formatter machinery).
    fn push_to(&self, out: &mut String) {
        let mut b = [0u8; 71];
        b[..7].copy_from_slice(b"sha256:");
        for (i, x) in self.0.iter().enumerate() {
            b[7 + 2 * i] = HEX[(x >> 4) as usize];
            b[8 + 2 * i] = HEX[(x & 15) as usize];
        }
        // Only ASCII was written.
        out.push_str(std::str::from_utf8(&b).unwrap_or_default());
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(71);
        self.push_to(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, EventError> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            EventError::Invalid(format!("digest {s:?} does not start with sha256:"))
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(EventError::Invalid(format!(
                "digest {s:?} is not sha256: and 64 lowercase hex digits"
            )));
        }
        let nibble = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
        let h = hex.as_bytes();
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = nibble(h[2 * i]) << 4 | nibble(h[2 * i + 1]);
        }
        Ok(Digest(out))
    }
}

/// What happened: the caller's part of an entry (the log adds `seq` and `time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Who did it (a user, a service account, `bulkhead-agent@host`).
    pub actor: String,
    /// What was done: one of [`actions`], or another `[a-z0-9._-]+` name.
    pub action: String,
    /// What it was done to (a policy path and version, a workload, a key).
    pub object: String,
    pub before: Option<Digest>,
    pub after: Option<Digest>,
    /// Why (a ticket, a change request, an alert id).
    pub reason: String,
}

impl Event {
    pub fn new(actor: &str, action: &str, object: &str, reason: &str) -> Self {
        Event {
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            before: None,
            after: None,
            reason: reason.into(),
        }
    }

    /// Checks the fields a caller gives.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.actor.is_empty() {
            return Err(EventError::Invalid("actor is empty".into()));
        }
        if self.object.is_empty() {
            return Err(EventError::Invalid("object is empty".into()));
        }
        if self.action.is_empty()
            || !self
                .action
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        {
            return Err(EventError::Invalid(format!(
                "action {:?} must be non-empty [a-z0-9._-] (e.g. {})",
                self.action,
                actions::ALL.join(", ")
            )));
        }
        Ok(())
    }
}

/// One entry of the log: an event with its position and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    pub event: Event,
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Checks that `bytes` is a canonical entry without building it: `Ok((seq, is key.rotate))`.
pub fn check_canonical(bytes: &[u8]) -> Result<(u64, bool), EventError> {
    match fast::scan(bytes) {
        Some(r) => Ok(r),
        None => Entry::parse(bytes).map(|e| (e.seq, e.event.action == actions::KEY_ROTATE)),
    }
}

impl Entry {
    /// The canonical JSON bytes (the leaf).
    pub fn canonical(&self) -> String {
        let e = &self.event;
        let mut o = String::with_capacity(
            160 + e.actor.len() + e.object.len() + e.reason.len() + e.action.len(),
        );
        o.push_str("{\"action\":");
        push_str(&mut o, &e.action);
        o.push_str(",\"actor\":");
        push_str(&mut o, &e.actor);
        if let Some(a) = &e.after {
            o.push_str(",\"after\":\"");
            a.push_to(&mut o);
            o.push('"');
        }
        if let Some(b) = &e.before {
            o.push_str(",\"before\":\"");
            b.push_to(&mut o);
            o.push('"');
        }
        o.push_str(",\"object\":");
        push_str(&mut o, &e.object);
        o.push_str(",\"reason\":");
        push_str(&mut o, &e.reason);
        o.push_str(",\"seq\":");
        o.push_str(&self.seq.to_string());
        o.push_str(",\"time\":");
        push_str(&mut o, &self.time);
        o.push_str(",\"v\":");
        o.push_str(&EVENT_VERSION.to_string());
        o.push('}');
        o
    }

    /// Reads an entry from its leaf bytes; refuses anything not in canonical form.
    ///
    /// A single pass over the canonical grammar (the fast path `verify` runs on every entry);
    /// when it refuses, the reference reader (serde, then re-encoding and comparing) gives the
    /// error. Both agree on every input (a property test checks it).
    pub fn parse(bytes: &[u8]) -> Result<Entry, EventError> {
        match fast::parse(bytes) {
            Some(e) => Ok(e),
            None => Self::parse_reference(bytes),
        }
    }

    /// The reference reader: serde into the schema, then re-encode and compare bytes.
    pub fn parse_reference(bytes: &[u8]) -> Result<Entry, EventError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire<'a> {
            #[serde(borrow)]
            action: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            actor: std::borrow::Cow<'a, str>,
            #[serde(borrow, default)]
            after: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            before: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            object: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            reason: std::borrow::Cow<'a, str>,
            seq: u64,
            #[serde(borrow)]
            time: std::borrow::Cow<'a, str>,
            v: u64,
        }
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::Invalid(format!(
                "{} bytes, more than {MAX_EVENT_BYTES}",
                bytes.len()
            )));
        }
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| EventError::Json(e.to_string()))?;
        if w.v != EVENT_VERSION {
            return Err(EventError::Invalid(format!(
                "event version {} (this build reads {EVENT_VERSION})",
                w.v
            )));
        }
        let entry = Entry {
            seq: w.seq,
            time: w.time.into_owned(),
            event: Event {
                actor: w.actor.into_owned(),
                action: w.action.into_owned(),
                object: w.object.into_owned(),
                before: w.before.map(|d| d.parse()).transpose()?,
                after: w.after.map(|d| d.parse()).transpose()?,
                reason: w.reason.into_owned(),
            },
        };
        if entry.canonical().as_bytes() != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(entry)
    }
}

/// The canonical grammar, parsed in one pass.
mod fast {
    use super::{Digest, EVENT_VERSION, Entry, Event, MAX_EVENT_BYTES};

    struct P<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> P<'a> {
        fn lit(&mut self, l: &str) -> Option<()> {
            if self.s.as_bytes().get(self.i..self.i + l.len())? == l.as_bytes() {
                self.i += l.len();
                Some(())
            } else {
                None
            }
        }

        fn peek(&self, l: &str) -> bool {
            self.s.as_bytes().get(self.i..self.i + l.len()) == Some(l.as_bytes())
        }

        /// A string with exactly the canonical escapes.
        fn string(&mut self) -> Option<String> {
            let mut out = String::new();
            self.string_into(Some(&mut out))?;
            Some(out)
        }

        /// Checks a string with exactly the canonical escapes; decodes it into `out` if given.
        /// Returns the raw (escaped) text between the quotes.
        fn string_into(&mut self, mut out: Option<&mut String>) -> Option<&'a str> {
            self.lit("\"")?;
            let b = self.s.as_bytes();
            let first = self.i;
            let mut start = self.i;
            loop {
                // Jump to the next quote or backslash; no control byte may be skipped over.
                let next = self.i + memchr::memchr2(b'"', b'\\', b.get(self.i..)?)?;
                if b[self.i..next].iter().any(|&c| c < 0x20) {
                    return None;
                }
                self.i = next;
                if b[next] == b'"' {
                    if let Some(o) = out.as_deref_mut() {
                        o.push_str(self.s.get(start..self.i)?);
                    }
                    self.i += 1;
                    return self.s.get(first..next);
                }
                // A backslash.
                if let Some(o) = out.as_deref_mut() {
                    o.push_str(self.s.get(start..self.i)?);
                }
                let e = *b.get(self.i + 1)?;
                self.i += 2;
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'b' => '\u{8}',
                    b't' => '\t',
                    b'n' => '\n',
                    b'f' => '\u{c}',
                    b'r' => '\r',
                    b'u' => {
                        let h = b.get(self.i..self.i + 4)?;
                        let hex = |x: u8| match x {
                            b'0'..=b'9' => Some(x - b'0'),
                            b'a'..=b'f' => Some(x - b'a' + 10),
                            _ => None,
                        };
                        if h[0] != b'0' || h[1] != b'0' {
                            return None;
                        }
                        let v = hex(h[2])? << 4 | hex(h[3])?;
                        // Only controls without a short form are written as \u00xx.
                        if v >= 0x20 || matches!(v, 8 | 9 | 10 | 12 | 13) {
                            return None;
                        }
                        self.i += 4;
                        char::from(v)
                    }
                    _ => return None,
                };
                if let Some(o) = out.as_deref_mut() {
                    o.push(c);
                }
                start = self.i;
            }
        }

        /// A decimal without sign or leading zeros.
        fn uint(&mut self) -> Option<u64> {
            let b = self.s.as_bytes();
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(d) = b.get(self.i).filter(|d| d.is_ascii_digit()) {
                v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                self.i += 1;
            }
            let n = self.i - start;
            if n == 0 || (n > 1 && b[start] == b'0') {
                return None;
            }
            Some(v)
        }

        /// `"sha256:<64 lowercase hex>"`.
        fn digest(&mut self) -> Option<Digest> {
            self.lit("\"sha256:")?;
            let h = self.s.as_bytes().get(self.i..self.i + 64)?;
            // Branch-free: invalid digits have high bits set, collected in `bad`.
            let mut bad = 0u8;
            let mut d = [0u8; 32];
            for (k, o) in d.iter_mut().enumerate() {
                let (hi, lo) = (
                    HEX_VALUE[h[2 * k] as usize],
                    HEX_VALUE[h[2 * k + 1] as usize],
                );
                bad |= hi | lo;
                *o = (hi << 4) | lo;
            }
            if bad & 0xf0 != 0 {
                return None;
            }
            self.i += 64;
            self.lit("\"")?;
            Some(Digest(d))
        }
    }

    /// The value of a lowercase hex digit, 0xff for any other byte.
    const HEX_VALUE: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };

    /// Checks canonical form without building the entry: returns `seq` and whether the action
    /// is `key.rotate` (whose entries the caller then reads in full).
    pub(crate) fn scan(bytes: &[u8]) -> Option<(u64, bool)> {
        if bytes.len() > MAX_EVENT_BYTES {
            return None;
        }
        let s = std::str::from_utf8(bytes).ok()?;
        let mut p = P { s, i: 0 };
        p.lit("{\"action\":")?;
        let rotate = p.string_into(None)? == super::actions::KEY_ROTATE;
        p.lit(",\"actor\":")?;
        p.string_into(None)?;
        if p.peek(",\"after\":") {
            p.lit(",\"after\":")?;
            p.digest()?;
        }
        if p.peek(",\"before\":") {
            p.lit(",\"before\":")?;
            p.digest()?;
        }
        p.lit(",\"object\":")?;
        p.string_into(None)?;
        p.lit(",\"reason\":")?;
        p.string_into(None)?;
        p.lit(",\"seq\":")?;
        let seq = p.uint()?;
        p.lit(",\"time\":")?;
        p.string_into(None)?;
        p.lit(",\"v\":")?;
        if p.uint()? != EVENT_VERSION {
            return None;
        }
        p.lit("}")?;
        (p.i == bytes.len()).then_some((seq, rotate))
    }

    pub(super) fn parse(bytes: &[u8]) -> Option<Entry> {
        if bytes.len() > MAX_EVENT_BYTES {
            return None;
        }
        let s = std::str::from_utf8(bytes).ok()?;
        let mut p = P { s, i: 0 };
        p.lit("{\"action\":")?;
        let action = p.string()?;
        p.lit(",\"actor\":")?;
        let actor = p.string()?;
        let after = if p.peek(",\"after\":") {
            p.lit(",\"after\":")?;
            Some(p.digest()?)
        } else {
            None
        };
        let before = if p.peek(",\"before\":") {
            p.lit(",\"before\":")?;
            Some(p.digest()?)
        } else {
            None
        };
        p.lit(",\"object\":")?;
        let object = p.string()?;
        p.lit(",\"reason\":")?;
        let reason = p.string()?;
        p.lit(",\"seq\":")?;
        let seq = p.uint()?;
        p.lit(",\"time\":")?;
        let time = p.string()?;
        p.lit(",\"v\":")?;
        if p.uint()? != EVENT_VERSION {
            return None;
        }
        p.lit("}")?;
        if p.i != bytes.len() {
            return None;
        }
        Some(Entry {
            seq,
            time,
            event: Event {
                actor,
                action,
                object,
                before,
                after,
                reason,
            },
        })
    }
}

/// Where the log takes the time from; tests inject a fixed clock.
pub trait Clock: Send {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_millis(&self) -> u64 {
        self.0
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-27T05:01:02.345Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times_format_as_rfc3339_utc() {
        for (ms, want, msg) in [
            (0, "1970-01-01T00:00:00.000Z", "epoch"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z", "leap day"),
            (1_795_755_662_345, "2026-11-27T05:01:02.345Z", "today"),
        ] {
            assert_eq!(rfc3339_millis(ms), want, "{msg}");
        }
    }

    #[test]
    fn canonical_form_is_exact_and_round_trips() {
        let mut e = Event::new(
            "alice",
            "policy.load",
            "policies/pci.yaml",
            "CHG-1 \"x\"\n\u{1}é",
        );
        e.after = Some(Digest([0xab; 32]));
        let entry = Entry {
            seq: 7,
            time: rfc3339_millis(0),
            event: e,
        };
        let c = entry.canonical();
        assert_eq!(
            c,
            format!(
                "{{\"action\":\"policy.load\",\"actor\":\"alice\",\"after\":\"sha256:{}\",\"object\":\"policies/pci.yaml\",\"reason\":\"CHG-1 \\\"x\\\"\\n\\u0001é\",\"seq\":7,\"time\":\"1970-01-01T00:00:00.000Z\",\"v\":1}}",
                "ab".repeat(32)
            )
        );
        assert_eq!(Entry::parse(c.as_bytes()).unwrap(), entry);
        // The same content in another spelling is refused.
        let spaced = c.replacen(":", ": ", 1);
        assert_eq!(
            Entry::parse(spaced.as_bytes()),
            Err(EventError::NotCanonical)
        );
        let escaped = c.replace("é", "\\u00e9");
        assert_eq!(
            Entry::parse(escaped.as_bytes()),
            Err(EventError::NotCanonical)
        );
    }

    proptest! {
        #[test]
        fn any_strings_round_trip(actor in ".{1,20}", object in ".{1,20}", reason in ".{0,40}", seq in any::<u64>()) {
            let entry = Entry { seq, time: rfc3339_millis(seq % 4_000_000_000_000), event: Event::new(&actor, "alert", &object, &reason) };
            let c = entry.canonical();
            prop_assert_eq!(Entry::parse(c.as_bytes()).unwrap(), entry);
        }
        #[test]
        fn entry_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Entry::parse(&b);
        }

        /// The fast reader accepts exactly what the reference reader accepts, with the same
        /// result, on canonical entries with one byte changed, inserted or removed.
        #[test]
        fn fast_and_reference_readers_agree(
            actor in "[a-z\\\\\"\u{0}-\u{1f}é]{1,8}", reason in ".{0,12}", seq in any::<u64>(),
            with_digests in any::<bool>(), pos in any::<usize>(), byte in any::<u8>(), op in 0u8..4
        ) {
            let mut e = Event::new(&actor, "policy.load", "o", &reason);
            if with_digests {
                e.before = Some(Digest([1; 32]));
                e.after = Some(Digest([0xfe; 32]));
            }
            let entry = Entry { seq, time: rfc3339_millis(0), event: e };
            let mut b = entry.canonical().into_bytes();
            let i = pos % (b.len() + 1);
            match op {
                0 => {}
                1 => if i < b.len() { b[i] = byte },
                2 => b.insert(i, byte),
                _ => if i < b.len() { b.remove(i); },
            }
            let fast = fast::parse(&b);
            let reference = Entry::parse_reference(&b).ok();
            let scan = fast::scan(&b);
            prop_assert_eq!(scan, reference.as_ref().map(|e| (e.seq, e.event.action == actions::KEY_ROTATE)));
            prop_assert_eq!(fast, reference);
        }
    }
}
