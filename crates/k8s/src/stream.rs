//! Reading a large JSON file (`kubectl get pods -A -o json`, one `List` of many items) as a
//! stream: the file is never held whole in memory, and each list item is handed on as soon as
//! it is parsed, so the caller can convert it and drop it.
//!
//! The file is read twice. The first pass only checks that the whole file is JSON objects of
//! the expected shape and learns each top-level object's `kind` (`kubectl` writes `kind` after
//! `items`, and an item without a kind takes it from its list); anything it does not take (bad
//! JSON, a field of the wrong type, text that is not UTF-8) leaves the file to the whole-file
//! reader, which reports problems with positions exactly as for small files. Only then does
//! the second pass hand objects on, so a file is never half read.

use crate::load::{LoadError, Manifests};
use crate::objects::Object;
use serde::de::IgnoredAny;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Does the file start (after a byte-order mark and whitespace) with `{`?
pub(crate) fn looks_like_json(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut head = Vec::with_capacity(64 << 10);
    if f.take(64 << 10).read_to_end(&mut head).is_err() {
        return false;
    }
    let head = head.strip_prefix(BOM).unwrap_or(&head);
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Is the whole file UTF-8 (as the whole-file reader requires)?
fn is_utf8(path: &Path) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut carry = 0usize;
    loop {
        let n = f.read(&mut buf[carry..])?;
        if n == 0 {
            return Ok(carry == 0);
        }
        let end = carry + n;
        match std::str::from_utf8(&buf[..end]) {
            Ok(_) => carry = 0,
            // A character cut at the buffer's end: keep its start for the next read.
            Err(e) if e.error_len().is_none() => {
                let v = e.valid_up_to();
                buf.copy_within(v..end, 0);
                carry = end - v;
            }
            Err(_) => return Ok(false),
        }
    }
}

/// What the parser hands on.
enum Event {
    /// Item `index` of the top-level object `top` (which starts on `line`).
    Item {
        top: usize,
        line: usize,
        index: usize,
        object: Object,
    },
    /// The top-level object `top`, its `items` left out (they came as [`Event::Item`]s).
    Top { line: usize, object: Object },
}

/// A window on the file: `buf[pos..]` is read and not yet consumed.
struct Window {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Line breaks (LF, CRLF, lone CR, as the YAML reader counts them) in consumed bytes.
    breaks: usize,
    cr: bool,
}

type Res<T> = Result<T, String>;

impl Window {
    /// The byte `i` past the position, reading more of the file when needed.
    #[inline]
    fn at(&mut self, i: usize) -> Res<Option<u8>> {
        if self.pos + i >= self.buf.len() {
            self.fill(i + 1)?;
        }
        Ok(self.buf.get(self.pos + i).copied())
    }

    #[cold]
    fn fill(&mut self, want: usize) -> Res<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        while self.buf.len() < want && !self.eof {
            let len = self.buf.len();
            let grow = (len.max(1 << 16)).max(want - len);
            self.buf.resize(len + grow, 0);
            match self.file.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(len + n),
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// The next `n` bytes (already looked at).
    fn span(&self, n: usize) -> &[u8] {
        &self.buf[self.pos..self.pos + n]
    }

    fn advance(&mut self, n: usize) {
        for &b in &self.buf[self.pos..self.pos + n] {
            if b == b'\r' || (b == b'\n' && !self.cr) {
                self.breaks += 1;
            }
            self.cr = b == b'\r';
        }
        self.pos += n;
    }

    /// Skips JSON whitespace; the next byte, if any.
    fn skip_ws(&mut self) -> Res<Option<u8>> {
        loop {
            match self.at(0)? {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.advance(1),
                other => return Ok(other),
            }
        }
    }

    /// The length of the JSON value at the position (its syntax is checked by whoever parses
    /// it; this only finds where it ends).
    fn value_len(&mut self) -> Res<usize> {
        let first = self.at(0)?.ok_or("unexpected end of file")?;
        let mut i = 0usize;
        match first {
            b'"' => {
                i = 1;
                loop {
                    match self.at(i)?.ok_or("unexpected end of file in a string")? {
                        b'\\' => i += 2,
                        b'"' => return Ok(i + 1),
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut string = false;
                loop {
                    let b = self.at(i)?.ok_or("unexpected end of file")?;
                    i += 1;
                    if string {
                        match b {
                            b'\\' => i += 1,
                            b'"' => string = false,
                            _ => {}
                        }
                        continue;
                    }
                    match b {
                        b'"' => string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                while let Some(b) = self.at(i)? {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    i += 1;
                }
                Ok(i)
            }
        }
    }

    /// Parses the value at the position as `T` and consumes it.
    fn take<T: serde::de::DeserializeOwned>(&mut self) -> Res<T> {
        let n = self.value_len()?;
        let v = serde_json::from_slice(self.span(n)).map_err(|e| e.to_string())?;
        self.advance(n);
        Ok(v)
    }

    fn expect(&mut self, b: u8) -> Res<()> {
        if self.skip_ws()? != Some(b) {
            return Err(format!("expected {:?}", b as char));
        }
        self.advance(1);
        Ok(())
    }
}

/// Parses every top-level JSON object of the file, handing on items and objects.
fn parse_file(path: &Path, emit: &mut dyn FnMut(Event)) -> Res<()> {
    let mut w = Window {
        file: File::open(path).map_err(|e| e.to_string())?,
        buf: Vec::new(),
        pos: 0,
        eof: false,
        breaks: 0,
        cr: false,
    };
    if w.at(2)?.is_some() && w.span(3) == BOM {
        w.pos += 3;
    }
    let mut top = 0usize;
    loop {
        match w.skip_ws()? {
            None if top > 0 => return Ok(()),
            Some(b'{') => {
                top_object(&mut w, top, emit)?;
                top += 1;
            }
            _ => return Err("expected a JSON object".into()),
        }
    }
}

/// One top-level object: its `items` handed on one by one, then the object without them.
fn top_object(w: &mut Window, top: usize, emit: &mut dyn FnMut(Event)) -> Res<()> {
    let line = w.breaks + 1;
    w.advance(1);
    let mut fields = serde_json::Map::new();
    let mut items = false;
    if w.skip_ws()? == Some(b'}') {
        w.advance(1);
    } else {
        loop {
            if w.skip_ws()? != Some(b'"') {
                return Err("expected a key".into());
            }
            let key: String = w.take()?;
            w.expect(b':')?;
            w.skip_ws()?;
            match key.as_str() {
                "items" => {
                    if items {
                        return Err("duplicate field `items`".into());
                    }
                    items = true;
                    match w.at(0)? {
                        Some(b'[') => {
                            w.advance(1);
                            let mut index = 0usize;
                            if w.skip_ws()? == Some(b']') {
                                w.advance(1);
                            } else {
                                loop {
                                    w.skip_ws()?;
                                    let object: Object = w.take()?;
                                    emit(Event::Item {
                                        top,
                                        line,
                                        index,
                                        object,
                                    });
                                    index += 1;
                                    match w.skip_ws()? {
                                        Some(b',') => w.advance(1),
                                        Some(b']') => {
                                            w.advance(1);
                                            break;
                                        }
                                        _ => return Err("expected , or ] in items".into()),
                                    }
                                }
                            }
                        }
                        _ => {
                            // `null` reads as no items; anything else is not a list.
                            let v: serde_json::Value = w.take()?;
                            if !v.is_null() {
                                return Err("items: expected a sequence".into());
                            }
                        }
                    }
                }
                // The fields of `Object` other than `items` (small), converted below.
                "apiVersion" | "kind" | "metadata" | "spec" | "status" => {
                    if fields.contains_key(&key) {
                        return Err(format!("duplicate field `{key}`"));
                    }
                    let v: serde_json::Value = w.take()?;
                    fields.insert(key, v);
                }
                _ => {
                    let _: IgnoredAny = w.take()?;
                }
            }
            match w.skip_ws()? {
                Some(b',') => w.advance(1),
                Some(b'}') => {
                    w.advance(1);
                    break;
                }
                _ => return Err("expected , or }".into()),
            }
        }
    }
    let object: Object = serde::Deserialize::deserialize(serde_json::Value::Object(fields))
        .map_err(|e| e.to_string())?;
    emit(Event::Top { line, object });
    Ok(())
}

impl Manifests {
    /// Reads a JSON file as a stream; `false` (nothing read) when the file is not all
    /// well-formed JSON objects of the expected shape, to be read whole instead.
    pub(crate) fn load_json_stream(&mut self, file: &str, path: &Path) -> bool {
        if !is_utf8(path).unwrap_or(false) {
            return false;
        }
        // First pass: the shape, and each top-level object's kind.
        let mut kinds: Vec<Option<String>> = Vec::new();
        let checked = parse_file(path, &mut |e| {
            if let Event::Top { object, .. } = e {
                kinds.push(object.kind);
            }
        });
        if checked.is_err() {
            return false;
        }
        self.files += 1;
        let mut skipped: Vec<String> = Vec::new();
        let mut non_objects = 0usize;
        let before = self.read();
        let read = parse_file(path, &mut |e| match e {
            Event::Item {
                top,
                line,
                index,
                object,
            } => {
                if let Some(list) = kinds
                    .get(top)
                    .and_then(|k| k.as_deref())
                    .and_then(|k| k.strip_suffix("List"))
                {
                    self.accept_item(file, line, list, index, object, &mut skipped);
                }
            }
            Event::Top { line, object, .. } => match object.kind.clone() {
                // A list's items came before; `accept` finds none left in it.
                Some(k) => self.accept_top(file, line, k, object, &mut skipped),
                None => non_objects += 1,
            },
        });
        if let Err(e) = read {
            // The first pass took the file: it changed since.
            self.errors.push(LoadError {
                file: file.to_string(),
                line: 0,
                column: 0,
                reason: format!("changed while being read: {e}"),
            });
        }
        let found = self.read() - before;
        self.file_warnings(file, skipped, non_objects, found);
        true
    }
}
