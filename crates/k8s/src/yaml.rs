//! YAML helpers shared by Bulkhead's loaders (Kubernetes manifests here, intent resources in
//! `bulkhead-intent`): files split into documents that keep their line numbers, parser messages
//! cut down to the message (the loaders report the file's position themselves), and the files of
//! a directory tree.

use std::path::{Path, PathBuf};

/// One YAML document of a file, with the line it starts on.
pub struct Document<'a> {
    pub lines: Vec<&'a str>,
    pub first_line: usize,
    /// The first line is the rest of a `--- ...` marker line (columns are shifted by 3).
    pub on_marker: bool,
}

impl Document<'_> {
    /// Characters on the document's last line of the file.
    pub fn last_line_width(&self) -> usize {
        let marker = if self.on_marker && self.lines.len() == 1 {
            3
        } else {
            0
        };
        marker + self.lines.last().map_or(0, |l| l.chars().count())
    }

    /// The document's text, columns as in the file.
    pub fn text(&self) -> String {
        let mut s =
            String::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum::<usize>() + 3);
        if self.on_marker {
            // Stand in for the `---` so columns on that line match the file.
            s.push_str("   ");
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// Splits a file at `---` document markers (and after `...` end markers); documents with
/// nothing but blank lines are left out.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut cur = Document {
        lines: Vec::new(),
        first_line: 1,
        on_marker: false,
    };
    for (i, line) in text.lines().enumerate() {
        let rest = line.get(3..).unwrap_or("");
        let is_start =
            line.starts_with("---") && rest.chars().next().is_none_or(char::is_whitespace);
        let is_end = line.starts_with("...") && rest.trim().is_empty();
        if is_start || is_end {
            if cur.lines.iter().any(|l| !l.trim().is_empty()) {
                docs.push(cur);
            }
            cur = Document {
                lines: Vec::new(),
                first_line: i + 2,
                on_marker: false,
            };
            if is_start && !rest.trim().is_empty() {
                // `--- {kind: ...}`: content on the marker line.
                cur.lines.push(rest);
                cur.first_line = i + 1;
                cur.on_marker = true;
            }
            continue;
        }
        cur.lines.push(line);
    }
    if cur.lines.iter().any(|l| !l.trim().is_empty()) {
        docs.push(cur);
    }
    docs
}

/// The first line of a parser's message, without its `error: ` prefix.
pub fn first_line_of(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim_start_matches("error: ")
}

/// `line 3 column 7: message` or `message at line 3, column 7` → `message`: the parser counts
/// from the document, and the loaders report the file's position instead.
pub fn strip_location(s: &str) -> &str {
    let prefix = || {
        let r = s.strip_prefix("line ")?;
        let r = r.trim_start_matches(|c: char| c.is_ascii_digit());
        let r = r.strip_prefix(" column ")?;
        let r = r.trim_start_matches(|c: char| c.is_ascii_digit());
        r.strip_prefix(": ")
    };
    let s = prefix().unwrap_or(s);
    let suffix = || {
        let (head, tail) = s.rsplit_once(" at line ")?;
        let (l, c) = tail.split_once(", column ")?;
        (l.chars().all(|c| c.is_ascii_digit()) && c.chars().all(|c| c.is_ascii_digit()))
            .then_some(head)
    };
    suffix().unwrap_or(s)
}

/// The files under `dir` (recursively) whose extension is one of `extensions` (any case).
pub fn collect_files(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    extensions: &[&str],
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out, extensions)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
        {
            out.push(path);
        }
    }
    Ok(())
}
