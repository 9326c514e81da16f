//! Flow telemetry in, normalised [`Flow`] records out.
//!
//! Parsers for Cilium Hubble JSON (`hubble observe -o json`), AWS VPC Flow Logs (any version,
//! plain or gzip), Zeek conn.log (TSV and JSON) and NetFlow v5 / v9 / IPFIX (payload files and a
//! live UDP collector). Every parser counts what it reads, skips malformed records with a
//! reason and a `file:line` example in the [`Report`], and never panics on any input.
//!
//! ```no_run
//! use bulkhead_telemetry::{Format, Parser};
//! let mut parser = Parser::new(Default::default());
//! let mut flows = Vec::new();
//! parser.parse_path("flows.log.gz".as_ref(), Format::Auto, &mut |f| flows.push(f)).unwrap();
//! let report = parser.finish();
//! println!("{report}");
//! ```
#![forbid(unsafe_code)]

pub mod bench;
pub mod collect;
pub mod detect;
pub mod hubble;
pub mod netflow;
pub mod reader;
mod report;
pub mod time;
pub mod vpc;
pub mod zeek;

pub use bulkhead_core::flow::{
    EndpointIdentity, Flow, FlowDirection, FlowIdentity, FlowOrigin, L7Kind, SourceFormat,
    Timestamp, Verdict,
};
pub use report::{Report, Skip};

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The input formats. `Auto` detects from the content (see [`detect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Detect from the file's content.
    Auto,
    /// Cilium Hubble JSON lines.
    Hubble,
    /// AWS VPC Flow Logs.
    Vpc,
    /// Zeek conn.log, TSV or JSON lines.
    Zeek,
    /// NetFlow v5 / v9 / IPFIX payloads (raw UDP payloads, one or more per file).
    Netflow,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "hubble" => Format::Hubble,
            "vpc" | "vpc-flow-logs" | "aws" => Format::Vpc,
            "zeek" => Format::Zeek,
            "netflow" | "ipfix" => Format::Netflow,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (auto, hubble, vpc, zeek, netflow)"
                ));
            }
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Hubble => "hubble",
            Format::Vpc => "vpc",
            Format::Zeek => "zeek",
            Format::Netflow => "netflow",
        })
    }
}

/// Why an input could not be read at all (malformed records are not errors: they are counted
/// and skipped in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A gzip stream ended early or is corrupt.
    #[error(
        "{path}: gzip stream is truncated or corrupt after line {last_good_line} ({detail}); the lines before it were parsed"
    )]
    Gzip {
        path: PathBuf,
        last_good_line: u64,
        detail: String,
    },
    /// The content is binary where text lines were expected.
    #[error(
        "{path}: binary content where {format} text was expected (line {line}); is this the right file or format?"
    )]
    Binary {
        path: PathBuf,
        format: Format,
        line: u64,
    },
    /// The format could not be detected.
    #[error("{path}: cannot tell the format ({reason}); pass --format")]
    UnknownFormat { path: PathBuf, reason: String },
}

/// Lines in which a NUL byte or invalid UTF-8 makes the input binary (an error).
const BINARY_SNIFF_LINES: u64 = 8;

/// Parser options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Zeek column renames: (canonical Zeek name such as `id.orig_h`, the name in the file).
    pub zeek_fields: Vec<(String, String)>,
    /// NetFlow/IPFIX files hold export packets back to back (RFC 5655 IPFIX files, captures
    /// written that way) instead of one UDP payload each.
    pub netflow_stream: bool,
    /// Hubble: decode with serde_json alone instead of the hand-written scanner (both give
    /// the same flows; benchmarks compare them).
    pub hubble_serde: bool,
}

/// A parsing session: keeps the report, the NetFlow template caches (so payload files are fed
/// in order and templates carry over) and the Hubble string interner across inputs.
pub struct Parser {
    opts: Options,
    report: Report,
    netflow: netflow::Decoder,
    hubble: hubble::Interner,
}

impl Parser {
    /// A new session.
    pub fn new(opts: Options) -> Parser {
        Parser {
            opts,
            report: Report::default(),
            netflow: netflow::Decoder::new(),
            hubble: hubble::Interner::default(),
        }
    }

    /// The report so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Ends the session and returns its report.
    pub fn finish(self) -> Report {
        self.report
    }

    /// Parses one file (plain or gzip) and passes every flow to `sink`.
    pub fn parse_path(
        &mut self,
        path: &Path,
        format: Format,
        sink: &mut dyn FnMut(Flow),
    ) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = match format {
            Format::Auto => detect::detect_path(path)?,
            f => f,
        };
        let source = self.report.add_source(path.display().to_string());
        if format == Format::Netflow {
            let input = reader::open(path).map_err(io)?;
            let gzip = input.gzip;
            return self
                .netflow
                .decode_read(
                    input.reader,
                    source,
                    self.opts.netflow_stream,
                    &mut self.report,
                    sink,
                )
                .map_err(|e| {
                    if gzip {
                        Error::Gzip {
                            path: path.to_path_buf(),
                            last_good_line: 0,
                            detail: e.to_string(),
                        }
                    } else {
                        io(e)
                    }
                });
        }
        let input = reader::open(path).map_err(io)?;
        self.parse_lines(input.reader, input.gzip, path, source, format, sink)
    }

    /// Parses text lines from any reader (`name` is used in messages). NetFlow input is read
    /// message by message (see [`netflow::Decoder::decode_read`]).
    pub fn parse_reader(
        &mut self,
        mut r: impl BufRead,
        name: &str,
        format: Format,
        sink: &mut dyn FnMut(Flow),
    ) -> Result<(), Error> {
        let path = PathBuf::from(name);
        let format = match format {
            Format::Auto => {
                let head = r.fill_buf().map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                detect::detect_bytes(head).ok_or_else(|| Error::UnknownFormat {
                    path: path.clone(),
                    reason: "the content matches no known format".into(),
                })?
            }
            f => f,
        };
        let source = self.report.add_source(name.to_string());
        if format == Format::Netflow {
            return self
                .netflow
                .decode_read(r, source, self.opts.netflow_stream, &mut self.report, sink)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                });
        }
        self.parse_lines(r, false, &path, source, format, sink)
    }

    fn parse_lines(
        &mut self,
        r: impl BufRead,
        gzip: bool,
        path: &Path,
        source: u32,
        format: Format,
        sink: &mut dyn FnMut(Flow),
    ) -> Result<(), Error> {
        let mut lines = reader::Lines::new(r, gzip);
        let mut zeek = zeek::ZeekParser::new(&self.opts.zeek_fields);
        let mut vpc = vpc::VpcParser::new();
        loop {
            let (no, line) = match lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => return Err(lines.error(path, e)),
            };
            // Binary content is told in the first lines (a NUL byte or invalid UTF-8); later,
            // a bad line is a malformed record like any other.
            if no <= BINARY_SNIFF_LINES && (line.contains(&0) || std::str::from_utf8(line).is_err())
            {
                return Err(Error::Binary {
                    path: path.to_path_buf(),
                    format,
                    line: no,
                });
            }
            let Ok(text) = std::str::from_utf8(line) else {
                // A record like any other: read, and skipped (found by the `lines` fuzz target).
                self.report.read += 1;
                self.report
                    .skip(source, no, "not UTF-8", "the line is not valid UTF-8");
                continue;
            };
            let text = text.trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() {
                continue;
            }
            let rep = &mut self.report;
            match format {
                Format::Hubble => {
                    let decoder = if self.opts.hubble_serde {
                        hubble::Decoder::Serde
                    } else {
                        hubble::Decoder::Fast
                    };
                    let h = &mut self.hubble;
                    hubble::parse_line_with(decoder, text, source, no, h, rep, sink)
                }
                Format::Vpc => vpc.parse_line(text, source, no, rep, sink),
                Format::Zeek => zeek.parse_line(text, source, no, rep, sink),
                Format::Netflow | Format::Auto => {}
            }
        }
        Ok(())
    }
}

/// Parses one file in a fresh session: the flows go to `sink`, the report is returned.
pub fn parse_path(
    path: &Path,
    format: Format,
    opts: Options,
    sink: &mut dyn FnMut(Flow),
) -> Result<Report, Error> {
    let mut p = Parser::new(opts);
    p.parse_path(path, format, sink)?;
    Ok(p.finish())
}

/// Parses text from a reader in a fresh session.
pub fn parse_reader(
    r: impl BufRead,
    name: &str,
    format: Format,
    opts: Options,
    sink: &mut dyn FnMut(Flow),
) -> Result<Report, Error> {
    let mut p = Parser::new(opts);
    p.parse_reader(r, name, format, sink)?;
    Ok(p.finish())
}

pub use detect::{detect_bytes, detect_path};
