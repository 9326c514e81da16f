//! Telling the format of an input from its content (gzip is looked through).
//!
//! - NetFlow/IPFIX: starts with version 5, 9 or 10 as a big-endian u16 (binary).
//! - Hubble: a JSON object with `"flow"`, or Hubble's own keys (`"verdict"`, `"IP"`).
//! - Zeek: `#separator` / `#fields` header lines (a first `###` comment line is allowed), or a
//!   JSON object with `"id.orig_h"` / `"uid"`.
//! - VPC Flow Logs: a header line naming `srcaddr`, or a first line of 14 space-separated
//!   tokens starting with a version number (the default v2 format).

use crate::{Error, Format, reader};
use flate2::bufread::MultiGzDecoder;
use std::io::{BufReader, Read};
use std::path::Path;

const SNIFF: usize = 16 * 1024;

/// Detects the format of a file from its first bytes.
pub fn detect_path(path: &Path) -> Result<Format, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(SNIFF);
    std::fs::File::open(path)
        .map_err(io)?
        .take(SNIFF as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    if reader::is_gzip(&head) {
        let f = std::fs::File::open(path).map_err(io)?;
        let mut plain = Vec::with_capacity(SNIFF);
        // A truncated stream still yields its first bytes; errors surface when parsing.
        let _ = MultiGzDecoder::new(BufReader::new(f))
            .take(SNIFF as u64)
            .read_to_end(&mut plain);
        head = plain;
    }
    detect_bytes(&head).ok_or_else(|| Error::UnknownFormat {
        path: path.to_path_buf(),
        reason: if head.is_empty() {
            "the file is empty".into()
        } else {
            "the content matches no known format".into()
        },
    })
}

/// Detects the format from the first bytes of (decompressed) content.
pub fn detect_bytes(head: &[u8]) -> Option<Format> {
    if head.len() >= 4 && head[0] == 0 && matches!(head[1], 5 | 9 | 10) {
        return Some(Format::Netflow);
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(20)
    {
        if line.starts_with("#separator") || line.starts_with("#fields") {
            return Some(Format::Zeek);
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with('{') {
            if line.contains("\"id.orig_h\"") || line.contains("\"uid\"") {
                return Some(Format::Zeek);
            }
            if line.contains("\"flow\"") || line.contains("\"verdict\"") || line.contains("\"IP\"")
            {
                return Some(Format::Hubble);
            }
            return None;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.contains(&"srcaddr") {
            return Some(Format::Vpc);
        }
        if toks.len() == 14 && toks[0].bytes().all(|c| c.is_ascii_digit()) {
            return Some(Format::Vpc);
        }
        return None;
    }
    None
}
