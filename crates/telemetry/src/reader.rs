//! Opening inputs (plain or gzip, told apart by the gzip magic bytes, not the name) and
//! reading lines with their numbers.

use crate::Error;
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

const BUF: usize = 256 * 1024;

/// Whether the bytes start like a gzip stream.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// An opened input: a buffered reader over the (decompressed) content.
pub struct Input {
    /// The content.
    pub reader: Box<dyn BufRead + Send>,
    /// Whether it was gzip-compressed.
    pub gzip: bool,
}

/// Opens a file, decompressing gzip (also concatenated members, as AWS writes them).
pub fn open(path: &Path) -> io::Result<Input> {
    let mut f = BufReader::with_capacity(BUF, File::open(path)?);
    let gzip = is_gzip(f.fill_buf()?);
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(BUF, MultiGzDecoder::new(f)))
    } else {
        Box::new(f)
    };
    Ok(Input { reader, gzip })
}

/// Lines of a reader with 1-based numbers. A line that lies whole in the reader's buffer is
/// handed out in place (no copy); one that spans a refill is gathered in a reused buffer.
pub struct Lines<R> {
    r: R,
    buf: Vec<u8>,
    no: u64,
    gzip: bool,
    /// Bytes of the reader's buffer handed out last time, consumed on the next call.
    pending: usize,
}

fn trim_eol(mut l: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = l {
        l = rest;
    }
    if let [rest @ .., b'\r'] = l {
        l = rest;
    }
    l
}

impl<R: BufRead> Lines<R> {
    /// Lines of `r`; `gzip` says whether read errors are gzip errors.
    pub fn new(r: R, gzip: bool) -> Self {
        Lines {
            r,
            buf: Vec::with_capacity(4096),
            no: 0,
            gzip,
            pending: 0,
        }
    }

    /// The next line's number and content without its line ending, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        self.r.consume(std::mem::take(&mut self.pending));
        let avail = self.r.fill_buf()?;
        if avail.is_empty() {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', avail) {
            self.no += 1;
            self.pending = i + 1;
            // Same buffer again: fill_buf does no I/O while it holds unconsumed bytes.
            let avail = self.r.fill_buf()?;
            return Ok(Some((self.no, trim_eol(&avail[..i + 1]))));
        }
        self.buf.clear();
        self.r.read_until(b'\n', &mut self.buf)?;
        self.no += 1;
        Ok(Some((self.no, trim_eol(&self.buf))))
    }

    /// The number of the line last returned.
    pub fn line_no(&self) -> u64 {
        self.no
    }

    /// The error for a failed read: for gzip input, names the last line read completely.
    pub fn error(&self, path: &Path, e: io::Error) -> Error {
        if self.gzip {
            Error::Gzip {
                path: path.to_path_buf(),
                last_good_line: self.no,
                detail: e.to_string(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_buffer_refills_crlf_and_no_final_newline() {
        let text = b"first line\r\nsecond, longer than the buffer\n\nlast";
        for cap in [1, 3, 7, 64] {
            let mut l = Lines::new(BufReader::with_capacity(cap, &text[..]), false);
            let mut got = Vec::new();
            while let Some((no, line)) = l.next_line().expect("read") {
                got.push((no, String::from_utf8(line.to_vec()).expect("utf8")));
            }
            let want = [
                (1, "first line"),
                (2, "second, longer than the buffer"),
                (3, ""),
                (4, "last"),
            ];
            assert_eq!(
                got,
                want.map(|(n, s)| (n, s.to_string())),
                "buffer capacity {cap}"
            );
        }
    }
}
