//! Reading Kubernetes manifests from files and directories.
//!
//! Directories are walked recursively (in name order) for `.yaml`, `.yml` and `.json` files; a
//! file named on the command line is read whatever its name. A file holds one or more YAML
//! documents (JSON is YAML too). Lists (`List`, `PodList`, `NamespaceList`, …) are expanded, their
//! items taking their kind from the list. Documents of other kinds, and files that hold no
//! Kubernetes object, are skipped with one warning per file; a document that claims to be a
//! Kubernetes object but is malformed is an error with file, line and column.

use crate::objects::{Header, Object};
use crate::yaml::{Document, collect_files, first_line_of, split_documents, strip_location};
use std::fmt;
use std::path::Path;

/// The kinds Bulkhead reads; every other kind is skipped with a warning.
pub const SUPPORTED_KINDS: &[&str] = &[
    "Namespace",
    "Pod",
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Service",
    "NetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "ClusterNetworkPolicy",
];

/// A problem in the input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.reason),
            (l, 0) => write!(f, "{}:{l}: {}", self.file, self.reason),
            (l, c) => write!(f, "{}:{l}:{c}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for LoadError {}

/// One Kubernetes object read from the input, with its kind resolved and where it came from.
#[derive(Debug)]
pub struct Located {
    pub kind: String,
    pub object: Object,
    pub file: String,
    /// Line of the document (or the list) the object was read from.
    pub line: usize,
    /// For list items: the item's index.
    pub item: Option<usize>,
}

impl Located {
    /// `file:line` (and `items[i]` for list items), for messages.
    pub fn location(&self) -> String {
        match self.item {
            Some(i) => format!("{}:{} (items[{i}])", self.file, self.line),
            None => format!("{}:{}", self.file, self.line),
        }
    }
}

/// Everything read from the input: objects, warnings and errors.
#[derive(Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Located>,
    pub warnings: Vec<String>,
    pub errors: Vec<LoadError>,
    /// Files read (for reporting).
    pub files: usize,
    /// When set, objects go here as they are read instead of into `objects`.
    sink: Option<Sink>,
    /// Objects read so far (kept or handed to the sink).
    read: usize,
}

/// Where [`Manifests::load_paths_into`] hands objects.
struct Sink(Box<dyn FnMut(Located)>);

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sink")
    }
}

/// JSON files at least this large are read as a stream (item by item) rather than whole.
const STREAM_JSON_BYTES: u64 = 1 << 20;

impl Manifests {
    /// Reads every path (files or directories, recursively).
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Self {
        let mut m = Manifests::default();
        for p in paths {
            m.load_path(p.as_ref());
        }
        m
    }

    /// Reads every path like [`Manifests::load_paths`], but hands each object to `sink` as
    /// soon as it is read rather than keeping it in `objects`: a large JSON list
    /// (`kubectl get pods -A -o json`) is then read item by item, never held whole in memory.
    pub fn load_paths_into<P: AsRef<Path>>(
        paths: &[P],
        sink: impl FnMut(Located) + 'static,
    ) -> Self {
        let mut m = Manifests {
            sink: Some(Sink(Box::new(sink))),
            ..Default::default()
        };
        for p in paths {
            m.load_path(p.as_ref());
        }
        m.sink = None;
        m
    }

    /// Objects read so far.
    pub(crate) fn read(&self) -> usize {
        self.read
    }

    /// [`Manifests::accept`], for the JSON stream reader.
    pub(crate) fn accept_top(
        &mut self,
        file: &str,
        line: usize,
        kind: String,
        object: Object,
        skipped: &mut Vec<String>,
    ) {
        self.accept(file, line, kind, object, skipped);
    }

    fn push(&mut self, o: Located) {
        self.read += 1;
        match &mut self.sink {
            Some(Sink(f)) => f(o),
            None => self.objects.push(o),
        }
    }

    /// Reads one file or directory.
    pub fn load_path(&mut self, path: &Path) {
        if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = collect_files(path, &mut files, &["yaml", "yml", "json"]) {
                self.errors.push(LoadError {
                    file: path.display().to_string(),
                    line: 0,
                    column: 0,
                    reason: format!("cannot read directory: {e}"),
                });
            }
            files.sort();
            for f in files {
                self.load_file(&f);
            }
        } else {
            self.load_file(path);
        }
    }

    fn load_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        if self.sink.is_some()
            && std::fs::metadata(path).is_ok_and(|m| m.len() >= STREAM_JSON_BYTES)
            && crate::stream::looks_like_json(path)
            && self.load_json_stream(&name, path)
        {
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.load_str(&name, &text),
                Err(_) => self.warnings.push(format!(
                    "{name}: skipped: not UTF-8 text, so no Kubernetes object"
                )),
            },
            Err(e) => self.errors.push(LoadError {
                file: name,
                line: 0,
                column: 0,
                reason: format!("cannot read: {e}"),
            }),
        }
    }

    /// Reads manifests from text; `file` names it in messages.
    pub fn load_str(&mut self, file: &str, text: &str) {
        self.files += 1;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // YAML (and editors) count a lone CR as a line break; so must document splitting and
        // line numbers, or they drift from the parser's.
        let unified;
        let text = if text.contains('\r') {
            unified = text.replace("\r\n", "\n").replace('\r', "\n");
            unified.as_str()
        } else {
            text
        };
        if text.trim_start().starts_with('[') {
            self.warnings.push(format!(
                "{file}: skipped: a bare array, not a Kubernetes object"
            ));
            return;
        }
        let mut skipped_kinds: Vec<String> = Vec::new();
        let mut non_objects = 0usize;
        let mut found = 0usize;
        // JSON (`kubectl get -o json`) is read by a JSON parser, many times faster than YAML;
        // anything it does not take goes the YAML way, which reports problems with positions.
        let json = if text.trim_start().starts_with('{') {
            json_objects(text)
        } else {
            None
        };
        let is_json = json.is_some();
        if let Some(objects) = json {
            for (line, o) in objects {
                let before = self.read;
                match o.kind.clone() {
                    Some(k) => {
                        self.accept(file, line, k, o, &mut skipped_kinds);
                    }
                    None => non_objects += 1,
                }
                found += self.read - before;
            }
        }
        let docs = if is_json {
            Vec::new()
        } else {
            split_documents(text)
        };
        for doc in docs {
            let before = self.read;
            match self.load_document(file, &doc, &mut skipped_kinds) {
                DocOutcome::NotAnObject => non_objects += 1,
                DocOutcome::Read | DocOutcome::Failed => {}
            }
            found += self.read - before;
        }
        self.file_warnings(file, skipped_kinds, non_objects, found);
    }

    /// The warnings a file earns once read: kinds skipped, or nothing Kubernetes in it.
    pub(crate) fn file_warnings(
        &mut self,
        file: &str,
        mut skipped_kinds: Vec<String>,
        non_objects: usize,
        found: usize,
    ) {
        if !skipped_kinds.is_empty() {
            skipped_kinds.sort();
            skipped_kinds.dedup();
            self.warnings.push(format!(
                "{file}: skipped objects of kinds not modelled: {}",
                skipped_kinds.join(", ")
            ));
        }
        if non_objects > 0 && found == 0 && skipped_kinds.is_empty() {
            self.warnings
                .push(format!("{file}: skipped: holds no Kubernetes object"));
        }
    }

    fn load_document(
        &mut self,
        file: &str,
        doc: &Document<'_>,
        skipped: &mut Vec<String>,
    ) -> DocOutcome {
        let err_at = |e: serde_saphyr::Error, what: &str| {
            let last = doc.first_line + doc.lines.len() - 1;
            let (line, column) = match e.location() {
                // The parser counts from the document's first line.
                Some(l) => match (l.line() as usize).max(1) + doc.first_line - 1 {
                    // Past the document's end (an error at the end of input): its last line.
                    line if line > last => (last, doc.last_line_width() + 1),
                    line => (line, l.column() as usize),
                },
                None => (doc.first_line, 0),
            };
            LoadError {
                file: file.to_string(),
                line,
                column,
                // The parser's own position counts from the document, not the file; the error
                // carries the file's.
                reason: format!("{what}: {}", strip_location(first_line_of(&e.to_string()))),
            }
        };
        let text = document_text(doc);
        // One parse on the common path: every kind read shares the `Object` union, read by the
        // fast reader when the document is in its subset and by serde-saphyr otherwise. Only
        // when that fails is the header read, to tell a skipped kind from a malformed object.
        let parsed = match crate::fast::parse::<Option<Object>>(&text) {
            Some(o) => Ok(o),
            None => parse::<Option<Object>>(&text),
        };
        let (kind, object) = match parsed {
            Ok(None) => return DocOutcome::NotAnObject,
            Ok(Some(o)) => match o.kind.clone() {
                None => return DocOutcome::NotAnObject,
                Some(k) => (k, o),
            },
            Err(e) => match parse::<Option<Header>>(&text) {
                Ok(Some(Header { kind: Some(k), .. })) => {
                    if !k.ends_with("List") && !SUPPORTED_KINDS.contains(&k.as_str()) {
                        skipped.push(k);
                        return DocOutcome::Read;
                    }
                    self.errors.push(err_at(e, &format!("malformed {k}")));
                    return DocOutcome::Failed;
                }
                Ok(_) => return DocOutcome::NotAnObject,
                Err(e) => {
                    // Not even a mapping with kind/apiVersion.
                    if looks_like_kubernetes(&text) {
                        self.errors.push(err_at(e, "malformed YAML"));
                        return DocOutcome::Failed;
                    }
                    return DocOutcome::NotAnObject;
                }
            },
        };
        self.accept(file, doc.first_line, kind, object, skipped)
    }

    /// Takes one parsed document: skips kinds not modelled, expands lists.
    fn accept(
        &mut self,
        file: &str,
        line: usize,
        kind: String,
        object: Object,
        skipped: &mut Vec<String>,
    ) -> DocOutcome {
        let is_list = kind.ends_with("List");
        if !is_list && !SUPPORTED_KINDS.contains(&kind.as_str()) {
            skipped.push(kind);
            return DocOutcome::Read;
        }
        if is_list {
            let item_kind = kind.strip_suffix("List").unwrap_or_default().to_string();
            for (i, item) in object.items.unwrap_or_default().into_iter().enumerate() {
                self.accept_item(file, line, &item_kind, i, item, skipped);
            }
        } else {
            self.push(Located {
                kind,
                object,
                file: file.to_string(),
                line,
                item: None,
            });
        }
        DocOutcome::Read
    }

    /// Takes item `i` of a list of `item_kind`s (the list's kind less `List`).
    pub(crate) fn accept_item(
        &mut self,
        file: &str,
        line: usize,
        item_kind: &str,
        i: usize,
        mut item: Object,
        skipped: &mut Vec<String>,
    ) {
        let k = match (&item.kind, item_kind) {
            (Some(k), _) => k.clone(),
            (None, "") => {
                self.errors.push(LoadError {
                    file: file.to_string(),
                    line,
                    column: 0,
                    reason: format!("List item {i} has no kind"),
                });
                return;
            }
            (None, k) => k.to_string(),
        };
        if !SUPPORTED_KINDS.contains(&k.as_str()) {
            skipped.push(k);
            return;
        }
        item.kind = Some(k.clone());
        self.push(Located {
            kind: k,
            object: item,
            file: file.to_string(),
            line,
            item: Some(i),
        });
    }
}

/// Every JSON object in `text` (one, or several in a row) with the line it starts on; `None`
/// when the text is not all well-formed JSON objects of the expected shape.
fn json_objects(text: &str) -> Option<Vec<(usize, Object)>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Object>();
    let (mut counted, mut line) = (0usize, 1usize);
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => return Some(out),
            Some(Ok(o)) => {
                let at = start + (text[start..].len() - text[start..].trim_start().len());
                line += text.as_bytes()[counted..at]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                counted = at;
                out.push((line, o));
            }
            Some(Err(_)) => return None,
        }
    }
}

enum DocOutcome {
    Read,
    Failed,
    NotAnObject,
}

/// Does a document that failed to parse still claim to be a Kubernetes object?
fn looks_like_kubernetes(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start_matches(['{', ' ', '"']);
        l.starts_with("kind") || l.starts_with("apiVersion")
    })
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    // Only the first line of an error is reported, so no source snippet is rendered.
    let options = serde_saphyr::options! { with_snippet: false, emit_comments: false };
    serde_saphyr::from_str_with_options(text, options)
}

/// A document's text, with tabs inside flow collections (`[a,\tb]`) turned into spaces:
/// Kubernetes' YAML reader accepts them there and YAML 1.2 parsers do not.
fn document_text(doc: &Document<'_>) -> String {
    let s = doc.text();
    if s.contains('\t') { detab_flow(&s) } else { s }
}

/// Replaces tabs inside `[...]`/`{...}` (outside quotes and comments) with spaces.
fn detab_flow(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in s.chars() {
        let mut o = c;
        if comment {
            if c == '\n' {
                comment = false;
            }
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if depth > 0 || matches!(prev, ' ' | ':' | '\n' | '[' | '{' | ',') => {
                    quote = Some(c)
                }
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                '\t' if depth > 0 => o = ' ',
                _ => {}
            }
        }
        out.push(o);
        prev = c;
    }
    out
}

/// The documents of a file's text, as [`Manifests::load_str`] hands them to the readers.
#[cfg(test)]
pub(crate) fn split_text(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    split_documents(&text).iter().map(document_text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_line_numbers() {
        let docs = split_documents("a: 1\n---\nb: 2\n\n--- \nc: 3\n...\n");
        let firsts: Vec<usize> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(firsts, vec![1, 3, 6]);
    }

    #[test]
    fn tabs_in_flow_sequences_are_accepted() {
        let mut m = Manifests::default();
        m.load_str(
            "t.yaml",
            "kind: Namespace\nmetadata:\n  name: a\n  labels: {x: \"1\",\ty: \"2\"}\n---\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [\n\t{name: c}]\n",
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.objects.len(), 2);
    }

    #[test]
    fn malformed_object_reports_file_line_and_reason() {
        let mut m = Manifests::default();
        m.load_str("np.yaml", "kind: Namespace\nmetadata: {name: a}\n---\nkind: NetworkPolicy\nmetadata:\n  name: x\nspec:\n  podSelector: 7\n");
        assert_eq!(m.objects.len(), 1);
        assert_eq!(m.errors.len(), 1);
        let e = &m.errors[0];
        assert_eq!((e.file.as_str(), e.line), ("np.yaml", 8), "{e}");
        assert!(e.reason.contains("NetworkPolicy"), "{e}");
    }

    #[test]
    fn non_objects_and_other_kinds_are_skipped_with_one_warning() {
        let mut m = Manifests::default();
        m.load_str("a.json", "[1, 2]");
        m.load_str("b.yaml", "just: text\n---\nmore: text\n");
        m.load_str(
            "c.yaml",
            "kind: ConfigMap\nmetadata: {name: a}\n---\nkind: Secret\nmetadata: {name: b}\n",
        );
        assert!(m.errors.is_empty());
        assert!(m.objects.is_empty());
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
        assert!(m.warnings[2].contains("ConfigMap, Secret"));
    }

    #[test]
    fn lists_give_their_items_a_kind() {
        let mut m = Manifests::default();
        m.load_str(
            "l.json",
            r#"{"kind":"PodList","items":[{"metadata":{"name":"a"}},{"kind":"Namespace","metadata":{"name":"n"}}]}"#,
        );
        let kinds: Vec<&str> = m.objects.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, vec!["Pod", "Namespace"]);
    }
}
