//! A fast, exact reader for the plain subset of YAML that `kubectl` and generators write.
//!
//! serde-saphyr reads about 4 MB/s of manifests; its time is spread thin over general machinery
//! (token queues, event buffering, budgets, comments) at every node. This module reads one
//! document of the common subset straight into a small tree of borrowed slices and deserialises
//! [`Object`](crate::objects::Object) from it, about six times faster end to end (7.4 MB of
//! generated manifests: ~0.2 s of CPU instead of ~1.3 s).
//!
//! It is only a shortcut: whenever it meets anything it is not sure about it answers `None` and
//! the caller reads the document with serde-saphyr as before, so results and error messages on
//! any input are serde-saphyr's. Taken: block mappings and sequences indented with spaces;
//! single-line flow collections (`{a: "b"}`, `[x, y]`); plain scalars on one line; single- and
//! double-quoted scalars without escapes; full-line and trailing comments; ASCII text. Left to
//! serde-saphyr: tabs, non-ASCII text, escapes, multi-line scalars (plain, quoted, `|`, `>`),
//! anchors, aliases, tags, directives, complex, quoted or very long keys, duplicate and merge
//! keys, and documents beyond serde-saphyr's default budget (so they keep failing the same way).
//! When deserialising, a scalar whose typed reading is not plainly certain (`null` into a string,
//! `0x1F` or `"80"` into an integer, `yes` where any type goes, `.inf` anywhere, …) also hands
//! the document back. The differential tests below and the `fast_reader` fuzz target check that
//! whatever this module reads, serde-saphyr reads the same.

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use std::fmt;

/// Reads `text` (one YAML document) as `T`; `None` when the document is outside the subset or
/// any scalar's reading is in doubt.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Option<T> {
    let node = read(text)?;
    match node {
        Some(n) => T::deserialize(&n).ok(),
        // An empty document (blank lines and comments): what serde-saphyr gives at end of input.
        None => T::deserialize(Empty).ok(),
    }
}

/// The differential check behind the tests and the `fast_reader` fuzz target: reads one
/// document with this reader and with serde-saphyr, as an object, as a header and as any value.
/// `Ok(true)` when this reader took it as an object and the two agree on everything it took,
/// `Ok(false)` when it handed the object on, `Err` describing a disagreement.
pub fn agrees_with_serde_saphyr(doc: &str) -> Result<bool, String> {
    use crate::objects::{Header, Object};
    fn agree_as<T: DeserializeOwned + fmt::Debug>(doc: &str) -> Result<bool, String> {
        let Some(fast) = parse::<T>(doc) else {
            return Ok(false);
        };
        match crate::load::parse::<T>(doc) {
            Ok(slow) if format!("{fast:?}") == format!("{slow:?}") => Ok(true),
            Ok(slow) => Err(format!(
                "the readers disagree on {doc:?}: fast {fast:?}, serde-saphyr {slow:?}"
            )),
            Err(e) => Err(format!(
                "the fast reader read {doc:?} as {fast:?}; serde-saphyr: {e}"
            )),
        }
    }
    let taken = agree_as::<Option<Object>>(doc)?;
    agree_as::<Option<Header>>(doc)?;
    agree_as::<Option<serde_json::Value>>(doc)?;
    Ok(taken)
}

/// serde-saphyr's default budget (`max_nodes` 250,000, `max_depth` 64), with a margin: larger
/// documents are left to it, so they fail there as they did before.
const MAX_NODES: usize = 200_000;
const MAX_DEPTH: usize = 48;
/// Larger documents are left to serde-saphyr too (its scalar budget is 64 MiB).
const MAX_TEXT: usize = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    /// Single- or double-quoted, without escapes: the text is the value.
    Quoted,
}

#[derive(Debug)]
enum Node<'a> {
    Scalar(&'a str, Style),
    Seq(Vec<Node<'a>>),
    Map(Vec<(&'a str, Node<'a>)>),
}

/// One non-blank, non-comment line: its indentation and the rest.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    nodes: usize,
}

/// The document's tree; `Some(None)` for an empty document.
fn read(text: &str) -> Option<Option<Node<'_>>> {
    if text.len() > MAX_TEXT
        || !text
            .bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let mut lines = Vec::new();
    for l in text.split('\n') {
        let body = l.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        lines.push(Line {
            indent: l.len() - body.len(),
            text: body.trim_end_matches(' '),
        });
    }
    if lines.is_empty() {
        return Some(None);
    }
    let mut r = Reader {
        lines,
        at: 0,
        nodes: 0,
    };
    let node = r.block(None, 0)?;
    (r.at == r.lines.len()).then_some(Some(node))
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    fn count(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes <= MAX_NODES).then_some(())
    }

    /// The block node starting at the current line, inside a collection at `parent` indentation.
    fn block(&mut self, parent: Option<usize>, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let line = self.peek()?;
        if parent.is_some_and(|p| line.indent <= p) {
            return None;
        }
        if is_seq_entry(line.text) {
            self.seq(line.indent, depth)
        } else if map_key(line.text).is_some() {
            self.map(line.indent, depth)
        } else {
            // A scalar or flow collection alone on its line; a continuation line would make it
            // a multi-line scalar.
            let node = self.inline(line.text, depth)?;
            self.at += 1;
            match (self.peek(), parent) {
                (Some(next), Some(p)) if next.indent > p => None,
                (Some(_), None) => None,
                _ => Some(node),
            }
        }
    }

    fn map(&mut self, indent: usize, depth: usize) -> Option<Node<'a>> {
        self.count()?;
        let mut entries: Vec<(&'a str, Node<'a>)> = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (key, rest) = map_key(line.text)?;
            if entries.iter().any(|(k, _)| *k == key) || entries.len() > 4096 {
                return None;
            }
            self.count()?;
            let value = if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                match self.peek() {
                    Some(next) if next.indent > indent => self.block(Some(indent), depth + 1)?,
                    // A block sequence may sit at its key's indentation.
                    Some(next) if next.indent == indent && is_seq_entry(next.text) => {
                        self.seq(indent, depth + 1)?
                    }
                    _ => {
                        self.count()?;
                        Node::Scalar("", Style::Plain)
                    }
                }
            } else {
                let v = self.inline(rest, depth + 1)?;
                self.at += 1;
                v
            };
            entries.push((key, value));
        }
        Some(Node::Map(entries))
    }

    fn seq(&mut self, indent: usize, depth: usize) -> Option<Node<'a>> {
        self.count()?;
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_seq_entry(line.text)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = line.text[1..].trim_start_matches(' ');
            if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                match self.peek() {
                    Some(next) if next.indent > indent => {
                        items.push(self.block(Some(indent), depth + 1)?)
                    }
                    _ => {
                        self.count()?;
                        items.push(Node::Scalar("", Style::Plain));
                    }
                }
                continue;
            }
            // `- key: v` or `- - x`: the item is a collection at the column of its content; read
            // it as if its first line started there.
            let column = line.indent + (line.text.len() - rest.len());
            if is_seq_entry(rest) || map_key(rest).is_some() {
                self.lines[self.at] = Line {
                    indent: column,
                    text: rest,
                };
                items.push(self.block(Some(indent), depth + 1)?);
            } else {
                items.push(self.inline(rest, depth + 1)?);
                self.at += 1;
            }
        }
        Some(Node::Seq(items))
    }

    /// A value written on one line after `key:` or `- `: a scalar or a flow collection, and
    /// nothing after it but a comment.
    fn inline(&mut self, s: &'a str, depth: usize) -> Option<Node<'a>> {
        let (node, rest) = match s.as_bytes()[0] {
            b'[' | b'{' => self.flow(s, depth)?,
            b'"' | b'\'' => {
                self.count()?;
                quoted(s)?
            }
            _ => {
                self.count()?;
                let v = match s.find(" #") {
                    Some(i) => s[..i].trim_end_matches(' '),
                    None => s,
                };
                if !plain_start(v) || v.ends_with(':') || v.contains(": ") {
                    return None;
                }
                return Some(Node::Scalar(v, Style::Plain));
            }
        };
        // A comment needs a space before its `#`.
        let after = rest.trim_start_matches(' ');
        (after.is_empty() || (after.starts_with('#') && after.len() < rest.len())).then_some(node)
    }

    /// A flow collection closed on this line; returns it and what follows it.
    fn flow(&mut self, s: &'a str, depth: usize) -> Option<(Node<'a>, &'a str)> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.count()?;
        let b = s.as_bytes();
        let close = if b[0] == b'[' { b']' } else { b'}' };
        let mut rest = s[1..].trim_start_matches(' ');
        let mut items = Vec::new();
        let mut entries: Vec<(&'a str, Node<'a>)> = Vec::new();
        if let Some(r) = rest.strip_prefix(close as char) {
            return Some((
                if close == b']' {
                    Node::Seq(items)
                } else {
                    Node::Map(entries)
                },
                r,
            ));
        }
        loop {
            if close == b'}' {
                let (key, r) = map_key(rest)?;
                if r.is_empty() || entries.iter().any(|(k, _)| *k == key) {
                    return None;
                }
                self.count()?;
                let (value, r) = self.flow_node(r, depth + 1)?;
                entries.push((key, value));
                rest = r;
            } else {
                let (value, r) = self.flow_node(rest, depth + 1)?;
                items.push(value);
                rest = r;
            }
            rest = rest.trim_start_matches(' ');
            match rest.as_bytes().first() {
                Some(b',') => {
                    rest = rest[1..].trim_start_matches(' ');
                    // `[a, ]` and `[a,,b]`: left to serde-saphyr.
                    if rest.starts_with([',', ']', '}']) {
                        return None;
                    }
                }
                Some(&c) if c == close => {
                    let node = if close == b']' {
                        Node::Seq(items)
                    } else {
                        Node::Map(entries)
                    };
                    return Some((node, &rest[1..]));
                }
                _ => return None,
            }
        }
    }

    /// A node inside a flow collection; returns it and what follows it.
    fn flow_node(&mut self, s: &'a str, depth: usize) -> Option<(Node<'a>, &'a str)> {
        match s.as_bytes().first()? {
            b'[' | b'{' => self.flow(s, depth),
            b'"' | b'\'' => {
                self.count()?;
                quoted(s)
            }
            _ => {
                self.count()?;
                let b = s.as_bytes();
                let mut end = 0;
                while end < b.len() {
                    match b[end] {
                        b',' | b'[' | b']' | b'{' | b'}' => break,
                        // `a: b` inside a sequence is a single-pair mapping; `a:` ends a key.
                        b':' if b.get(end + 1).is_none_or(|c| {
                            matches!(c, b' ' | b',' | b'[' | b']' | b'{' | b'}')
                        }) =>
                        {
                            return None;
                        }
                        b'#' if end > 0 && b[end - 1] == b' ' => return None,
                        _ => end += 1,
                    }
                }
                let v = s[..end].trim_end_matches(' ');
                if !plain_start(v) {
                    return None;
                }
                Some((Node::Scalar(v, Style::Plain), &s[end..]))
            }
        }
    }
}

/// `- ` or a lone `-`.
fn is_seq_entry(s: &str) -> bool {
    s == "-" || s.starts_with("- ")
}

/// `key: rest` or `key:` with a key of letters, digits and `_.-/`, not one a YAML resolver could
/// read as null or a boolean. Returns the key and the rest (spaces skipped).
fn map_key(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_alphanumeric() {
        return None;
    }
    let end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/')))?;
    // YAML limits implicit keys to 1024 characters, and serde-saphyr's scanner looks that far.
    if end > 512 || b[end] != b':' || b.get(end + 1).is_some_and(|&c| c != b' ') {
        return None;
    }
    let key = &s[..end];
    if is_null_word(key) || is_bool_word(key) || maybe_non_finite(key) {
        return None;
    }
    Some((key, s[end + 1..].trim_start_matches(' ')))
}

/// A plain scalar's first characters: no indicator (`-` only before a letter or digit).
fn plain_start(v: &str) -> bool {
    match v.as_bytes() {
        [] => false,
        [b'-', c, ..] => c.is_ascii_alphanumeric(),
        [c, ..] => !matches!(
            c,
            b'-' | b'?'
                | b':'
                | b','
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'#'
                | b'&'
                | b'*'
                | b'!'
                | b'|'
                | b'>'
                | b'\''
                | b'"'
                | b'%'
                | b'@'
                | b'`'
        ),
    }
}

/// A quoted scalar without escapes, closed on this line; returns it and what follows it.
fn quoted(s: &str) -> Option<(Node<'_>, &str)> {
    let q = s.as_bytes()[0];
    let end = 1 + s[1..].bytes().position(|c| c == q)?;
    let v = &s[1..end];
    if q == b'"' && v.contains('\\') {
        return None;
    }
    let rest = &s[end + 1..];
    // `'it''s'`: an escaped quote.
    if rest.as_bytes().first() == Some(&q) {
        return None;
    }
    Some((Node::Scalar(v, Style::Quoted), rest))
}

/// Might a resolver read this plain scalar as an infinite or NaN float (`.inf`, `nan`, `1e999`)?
fn maybe_non_finite(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    t.starts_with('.')
        || (t.starts_with(|c: char| c.is_ascii_digit()) && t.contains(['e', 'E']))
        || is_float_word(t)
}

fn is_null_word(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// YAML 1.1 and 1.2 booleans, in any case.
fn is_bool_word(s: &str) -> bool {
    s.len() <= 5
        && ["y", "n", "yes", "no", "on", "off", "true", "false"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
}

/// `nan`, `inf` or `infinity`, in any case: floats to some readers.
fn is_float_word(s: &str) -> bool {
    s.len() <= 8
        && ["nan", "inf", "infinity"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
}

/// A decimal integer as YAML 1.2 writes it plainly and every resolver reads it: no sign but
/// `-`, no leading zero, no `_`, well inside 64 bits.
fn decimal(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    if ok { s.parse().ok() } else { None }
}

/// Why the fast reader gave up (never shown: the caller reads the document the slow way).
#[derive(Debug)]
pub(crate) struct Unsure;

impl fmt::Display for Unsure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not in the fast subset")
    }
}

impl std::error::Error for Unsure {}

impl de::Error for Unsure {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsure
    }
}

macro_rules! unsure {
    ($($name:ident)*) => {
        $(fn $name<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Unsure> {
            Err(Unsure)
        })*
    };
}

/// An empty document: serde-saphyr sees end of input.
struct Empty;

impl<'de> de::Deserializer<'de> for Empty {
    type Error = Unsure;

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        visitor.visit_none()
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Unsure> {
        Err(Unsure)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, 'a> de::Deserializer<'de> for &'de Node<'a> {
    type Error = Unsure;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Map(_) => self.deserialize_map(visitor),
            Node::Seq(_) => self.deserialize_seq(visitor),
            Node::Scalar(s, Style::Quoted) => visitor.visit_str(s),
            Node::Scalar(s, Style::Plain) => {
                if is_null_word(s) {
                    visitor.visit_unit()
                } else if let Some(n) = decimal(s) {
                    if n < 0 {
                        visitor.visit_i64(n)
                    } else {
                        visitor.visit_u64(n as u64)
                    }
                } else if s.as_bytes()[0].is_ascii_alphabetic()
                    && !is_bool_word(s)
                    && !is_float_word(s)
                {
                    visitor.visit_str(s)
                } else {
                    Err(Unsure)
                }
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Scalar("true", Style::Plain) => visitor.visit_bool(true),
            Node::Scalar("false", Style::Plain) => visitor.visit_bool(false),
            _ => Err(Unsure),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Scalar(s, Style::Plain) => visitor.visit_i64(decimal(s).ok_or(Unsure)?),
            _ => Err(Unsure),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Scalar(s, Style::Quoted) => visitor.visit_str(s),
            Node::Scalar(s, Style::Plain) if !is_null_word(s) => visitor.visit_str(s),
            _ => Err(Unsure),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Scalar(s, Style::Plain) if is_null_word(s) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Seq(items) => {
                let mut access = SeqAccess(items.iter());
                let v = visitor.visit_seq(&mut access)?;
                match access.0.len() {
                    0 => Ok(v),
                    _ => Err(Unsure),
                }
            }
            _ => Err(Unsure),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        match self {
            Node::Map(entries) => {
                let mut access = MapAccess {
                    entries: entries.iter(),
                    value: None,
                };
                let v = visitor.visit_map(&mut access)?;
                match access.entries.len() {
                    0 => Ok(v),
                    _ => Err(Unsure),
                }
            }
            _ => Err(Unsure),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unsure> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unsure> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        // serde-saphyr reads ignored values as any type, and rejects non-finite floats there.
        fn check(n: &Node<'_>) -> Result<(), Unsure> {
            match n {
                Node::Scalar(s, Style::Plain) if maybe_non_finite(s) => Err(Unsure),
                Node::Scalar(..) => Ok(()),
                Node::Seq(items) => items.iter().try_for_each(check),
                Node::Map(entries) => entries.iter().try_for_each(|(_, v)| check(v)),
            }
        }
        check(self)?;
        visitor.visit_unit()
    }

    unsure! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes deserialize_byte_buf
        deserialize_unit
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Unsure> {
        Err(Unsure)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Unsure> {
        Err(Unsure)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Unsure> {
        Err(Unsure)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Unsure> {
        Err(Unsure)
    }
}

struct SeqAccess<'de, 'a>(std::slice::Iter<'de, Node<'a>>);

impl<'de, 'a> de::SeqAccess<'de> for SeqAccess<'de, 'a> {
    type Error = Unsure;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Unsure> {
        match self.0.next() {
            Some(n) => seed.deserialize(n).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapAccess<'de, 'a> {
    entries: std::slice::Iter<'de, (&'a str, Node<'a>)>,
    value: Option<&'de Node<'a>>,
}

impl<'de, 'a> de::MapAccess<'de> for MapAccess<'de, 'a> {
    type Error = Unsure;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unsure> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Key(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Unsure> {
        seed.deserialize(self.value.take().ok_or(Unsure)?)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A mapping key (letters, digits and `_.-/`, never null or a boolean): a string to every
/// reader but one that takes any type, where a number is left to serde-saphyr.
struct Key<'a>(&'a str);

impl<'de> de::Deserializer<'de> for Key<'_> {
    type Error = Unsure;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        if self.0.as_bytes()[0].is_ascii_alphabetic() && !is_float_word(self.0) {
            visitor.visit_str(self.0)
        } else {
            Err(Unsure)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        visitor.visit_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        visitor.visit_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        visitor.visit_str(self.0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unsure> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum
    }
}

#[cfg(test)]
mod tests {
    //! Differential tests: whatever the fast reader reads, serde-saphyr must read the same.
    use super::*;
    use crate::load::split_text;
    use proptest::prelude::*;
    use proptest::sample::select;
    use std::path::{Path, PathBuf};

    fn agree(doc: &str) -> bool {
        match agrees_with_serde_saphyr(doc) {
            Ok(taken) => taken,
            Err(e) => panic!("{e}"),
        }
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                out.push(p);
            }
        }
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every document of every manifest we have: the netpol oracle's, the examples', the fuzz
    /// seeds'.
    #[test]
    fn agrees_with_serde_saphyr_on_every_manifest() {
        let mut paths = Vec::new();
        files(
            &root().join("../../../shared/testdata/netpol-oracle"),
            &mut paths,
        );
        files(&root().join("../../examples"), &mut paths);
        files(&root().join("fuzz/seeds"), &mut paths);
        assert!(paths.len() > 100, "{} files", paths.len());
        let (mut docs, mut taken) = (0, 0);
        for p in &paths {
            let text = std::fs::read_to_string(p).unwrap();
            for doc in split_text(&text) {
                docs += 1;
                taken += usize::from(agree(&doc));
            }
        }
        // The point of the reader: it takes ordinary manifests.
        assert!(taken * 10 >= docs * 9, "{taken} of {docs} documents taken");
    }

    /// The shape `bulkhead bench generate` writes, and `kubectl get -o yaml`'s.
    #[test]
    fn takes_generated_and_kubectl_manifests() {
        let generated = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: data-00000\n  namespace: ns-0194\n  labels: {app: \"data-00000\"}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: \"data-00000\"}\n  template:\n    metadata:\n      labels: {app: \"data-00000\", env: \"prod\", team: \"team-12\", tier: \"data\"}\n    spec:\n      containers:\n      - name: main\n        image: registry.example/data-00000:1.0\n        ports:\n        - {name: redis, containerPort: 6379, protocol: TCP}\n        - {name: statsd, containerPort: 8125, protocol: UDP}\n";
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np-00000\n  namespace: ns-0148\nspec:\n  podSelector:\n    matchLabels: {app: \"messaging-02783\"}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchExpressions:\n        - {key: env, operator: In, values: [\"dev\", \"prod\"]}\n      podSelector:\n        matchLabels: {tier: \"data\"}\n    ports:\n    - {protocol: TCP, port: 5432}\n    - {port: http}\n  egress:\n  - to:\n    - ipBlock: {cidr: 172.16.4.0/24, except: [172.16.4.0/28]}\n    - ipBlock: {cidr: fd00::/8}\n    ports:\n    - {port: 6379, endPort: 6380}\n";
        let kubectl = "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: \"2024-01-02T03:04:05Z\"\n  labels:\n    app: web\n    pod-template-hash: 7d9f8b\n  name: web-7d9f8b-abcde\n  namespace: shop\n  ownerReferences:\n  - apiVersion: apps/v1\n    blockOwnerDeletion: true\n    controller: true\n    kind: ReplicaSet\n    name: web-7d9f8b\n    uid: 0b0c-11\nspec:\n  containers:\n  - image: nginx:1.25 # pinned\n    name: web\n    ports:\n    - containerPort: 80\n      name: http\n      protocol: TCP\nstatus:\n  phase: Running\n  podIP: 10.1.2.3\n  podIPs:\n  - ip: 10.1.2.3\n";
        for doc in [generated, policy, kubectl] {
            assert!(agree(doc), "not taken: {doc}");
        }
    }

    #[test]
    fn hands_on_what_it_is_not_sure_of() {
        for doc in [
            "kind: Pod\nmetadata:\n  name: &a web\n",
            "kind: Pod\nmetadata:\n  name: *a\n",
            "kind: Pod\nmetadata: !!map\n  name: a\n",
            "kind: Pod\nmetadata:\n  name: |\n    a\n",
            "kind: Pod\nmetadata:\n  name: a\n    b\n",
            "kind: Pod\nmetadata:\n  name: \"a\\tb\"\n",
            "kind: Pod\nmetadata:\n  name: 'it''s'\n",
            "kind: Pod\nmetadata:\n  labels: {a: null}\n",
            "kind: Pod\nmetadata:\n  annotations: {a: .inf}\n",
            "kind: Pod\nmetadata: {name: a,\n  namespace: b}\n",
            "kind: Pod\nkind: Service\n",
            "kind: Pod\n<<: {a: b}\n",
            "kind: Pod\n\"metadata\": {name: a}\n",
            "kind: Pod\nspec:\n  priority: 0x10\n",
            "kind: Pod\nspec:\n  priority: \"10\"\n",
            "kind: Pod\nmetadata:\n\tname: a\n",
            "kind: Pod\nmetadata:\n  name: café\n",
            "kind: Pod\nmetadata:\n  labels: {a: b}#c\n",
        ] {
            assert!(!agree(doc), "taken: {doc}");
        }
    }

    // Generated documents: keys from Object's fields (so typed paths are exercised) and others,
    // scalars from a list of the ones YAML readers disagree about, in every quoting style,
    // nested as block or flow collections, with comments, anchors and broken indentation.
    const KEYS: &[&str] = &[
        "kind",
        "apiVersion",
        "metadata",
        "name",
        "namespace",
        "labels",
        "spec",
        "items",
        "podSelector",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "ingress",
        "egress",
        "from",
        "to",
        "ports",
        "port",
        "endPort",
        "protocol",
        "containers",
        "serviceAccountName",
        "containerPort",
        "priority",
        "controller",
        "ownerReferences",
        "selector",
        "status",
        "podIP",
        "ipBlock",
        "cidr",
        "except",
        "template",
        "x",
        "app",
        "a.b/c",
        "on",
        "8080",
    ];
    const SCALARS: &[&str] = &[
        "",
        "a",
        "web",
        "TCP",
        "Pod",
        "NetworkPolicy",
        "List",
        "80",
        "-1",
        "0",
        "-0",
        "080",
        "0x1F",
        "0o17",
        "1_000",
        "1e3",
        "1.5",
        ".inf",
        "-.inf",
        ".nan",
        "NaN",
        "inf",
        "true",
        "false",
        "True",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "null",
        "Null",
        "~",
        "a b",
        "a: b",
        "a:b",
        "a #b",
        "a#b",
        "#x",
        "-x",
        "- x",
        "--x",
        "&a",
        "*a",
        "!t",
        "!!str",
        "|",
        ">",
        "fd00::/8",
        "10.0.0.0/8",
        "a,b",
        "[a]",
        "{a}",
        "'",
        "\"",
        "\\n",
        "a\\",
        "é",
        "?x",
        "2024-01-02T03:04:05Z",
        "2024-01-02",
        "${A}",
        "$A",
        "=",
        "<<",
        "0b101",
        "+5",
        "12:30:00",
        "1e999",
        "a\\tb",
        "99999999999999999999",
        "-9223372036854775808",
    ];

    #[derive(Debug, Clone)]
    enum Gen {
        Scalar(&'static str, u8),
        Seq(Vec<Gen>, bool),
        Map(Vec<(&'static str, Gen)>, bool),
    }

    fn gen_node() -> impl Strategy<Value = Gen> {
        let leaf = (select(SCALARS), 0u8..4).prop_map(|(s, q)| Gen::Scalar(s, q));
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..4), any::<bool>())
                    .prop_map(|(v, f)| Gen::Seq(v, f)),
                (
                    prop::collection::vec((select(KEYS), inner), 0..5),
                    any::<bool>()
                )
                    .prop_map(|(v, f)| Gen::Map(v, f)),
            ]
        })
    }

    fn scalar(s: &str, q: u8) -> String {
        match q {
            0 | 1 => s.to_string(),
            2 => format!("'{s}'"),
            _ => format!("\"{s}\""),
        }
    }

    fn flow(g: &Gen) -> String {
        match g {
            Gen::Scalar(s, q) => scalar(s, *q),
            Gen::Seq(v, _) => format!("[{}]", v.iter().map(flow).collect::<Vec<_>>().join(", ")),
            Gen::Map(v, _) => format!(
                "{{{}}}",
                v.iter()
                    .map(|(k, v)| format!("{k}: {}", flow(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Block style at `indent`; `out` is at the start of a line or after `key:`/`- `.
    fn block(g: &Gen, indent: usize, step: usize, compact: bool, out: &mut String) {
        let pad = " ".repeat(indent);
        match g {
            Gen::Seq(v, false) if !v.is_empty() => {
                for item in v {
                    out.push_str(&format!("\n{pad}-"));
                    match item {
                        Gen::Scalar(..) | Gen::Seq(_, true) | Gen::Map(_, true) => {
                            out.push_str(&format!(" {}", flow(item)))
                        }
                        _ => block(item, indent + step, step, compact, out),
                    }
                }
            }
            Gen::Map(v, false) if !v.is_empty() => {
                for (k, item) in v {
                    out.push_str(&format!("\n{pad}{k}:"));
                    match item {
                        Gen::Scalar(..) | Gen::Seq(_, true) | Gen::Map(_, true) => {
                            out.push_str(&format!(" {}", flow(item)))
                        }
                        Gen::Seq(..) if compact => block(item, indent, step, compact, out),
                        _ => block(item, indent + step, step, compact, out),
                    }
                }
            }
            _ => out.push_str(&format!(" {}", flow(g))),
        }
    }

    fn render(g: &Gen, step: usize, compact: bool) -> String {
        let mut out = String::new();
        block(g, 0, step, compact, &mut out);
        out.push('\n');
        out
    }

    /// Edits that put a document on either side of the subset's edge.
    const EDITS: &[&str] = &[
        " # note", "#note", "\n# note", " &x", " *x", "\n  ", "\t", "\n- ", ":", " |\n  a", "'",
        "\"", "\n   b", ",", "]", "}", "\n---", " !t", "\n...", "é",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn agrees_with_serde_saphyr_on_generated_yaml(
            g in gen_node(),
            step in 1usize..4,
            compact in any::<bool>(),
            edit in prop::option::of((select(EDITS), any::<prop::sample::Index>())),
        ) {
            let mut doc = render(&g, step, compact);
            if let Some((e, at)) = edit {
                let cuts: Vec<usize> = (0..=doc.len()).filter(|&i| doc.is_char_boundary(i)).collect();
                doc.insert_str(*at.get(&cuts), e);
            }
            agree(&doc);
        }

        #[test]
        fn agrees_with_serde_saphyr_on_edited_manifests(
            file in 0usize..1000,
            line in any::<prop::sample::Index>(),
            edit in select(EDITS),
            col in any::<prop::sample::Index>(),
        ) {
            let mut paths = Vec::new();
            files(&root().join("fuzz/seeds/load_manifest"), &mut paths);
            paths.sort();
            let text = std::fs::read_to_string(&paths[file % paths.len()]).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let l = line.index(lines.len());
            let cuts: Vec<usize> = (0..=lines[l].len()).filter(|&i| lines[l].is_char_boundary(i)).collect();
            let at = *col.get(&cuts);
            lines[l].insert_str(at, edit);
            for doc in split_text(&(lines.join("\n") + "\n")) {
                agree(&doc);
            }
        }
    }
}
