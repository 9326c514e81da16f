//! Zeek conn.log, tab-separated (with its `#separator`, `#fields`, `#unset_field`,
//! `#empty_field` header lines, any column order) or JSON (one object per line).
//!
//! - Columns are found by name: `ts`, `id.orig_h`, `id.orig_p`, `id.resp_h`, `id.resp_p`,
//!   `proto`, `duration`, `orig_bytes`, `resp_bytes`, `orig_pkts`, `resp_pkts`. A log written
//!   with renamed columns (Zeek's `Log::default_field_name_map`) is read by mapping the names:
//!   [`crate::Options::zeek_fields`] / `--zeek-field id.orig_h=src`.
//! - One record is one connection, both directions: `bytes = orig_bytes + resp_bytes` and
//!   `packets = orig_pkts + resp_pkts`; `src` is the originator. Unset (`-`) counters are 0.
//! - `ts` is decimal seconds (TSV) or seconds / an ISO 8601 string (JSON); `end_time` is
//!   `ts + duration`. A `ts` that is no number (test baselines mask it as `XXXXXXXXXX.XXXXXX`)
//!   leaves the time unknown and is counted in the report's notes.
//! - `proto` `tcp` / `udp` / `icmp` (ICMPv6 when the addresses are IPv6); for ICMP Zeek puts
//!   the type in `id.orig_p` and the code in `id.resp_p`: the flow gets `dst_port = type << 8 |
//!   code`, `src_port = 0`.

use crate::report::Report;
use crate::time::{parse_decimal_secs, parse_rfc3339, secs_f64};
use bulkhead_core::flow::{Flow, FlowOrigin, SourceFormat, Timestamp, ip_proto};
use std::net::IpAddr;

const NAMES: [&str; 11] = [
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "orig_pkts",
    "resp_pkts",
];
const TS: usize = 0;
const OH: usize = 1;
const OP: usize = 2;
const RH: usize = 3;
const RP: usize = 4;
const PROTO: usize = 5;
const DUR: usize = 6;
const OB: usize = 7;
const RB: usize = 8;
const OPK: usize = 9;
const RPK: usize = 10;

/// The per-file state of the Zeek reader.
pub struct ZeekParser {
    /// Names of the canonical columns in this log (after renames).
    names: [String; 11],
    /// Column index of each canonical field in the current TSV header.
    idx: [Option<usize>; 11],
    sep: String,
    unset: String,
    empty: String,
    has_fields: bool,
    header_error: Option<String>,
}

/// Unescapes `\xNN` as Zeek writes separators.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        match rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

struct Values<'a> {
    ts: Option<Timestamp>,
    ts_bad: bool,
    oh: &'a str,
    rh: &'a str,
    op: Option<u64>,
    rp: Option<u64>,
    proto: &'a str,
    dur: Option<Timestamp>,
    counts: [Option<u64>; 4],
}

impl ZeekParser {
    /// A reader applying the given renames (canonical name, name in the file).
    pub fn new(renames: &[(String, String)]) -> Self {
        let mut names = NAMES.map(String::from);
        for (canon, file) in renames {
            if let Some(i) = NAMES.iter().position(|n| n == canon) {
                names[i] = file.clone();
            }
        }
        ZeekParser {
            names,
            idx: [None; 11],
            sep: "\t".into(),
            unset: "-".into(),
            empty: "(empty)".into(),
            has_fields: false,
            header_error: None,
        }
    }

    fn header(&mut self, line: &str) {
        let (key, val) = match line.split_once([' ', '\t']) {
            Some((k, v)) => (k, v),
            None => (line, ""),
        };
        match key {
            "#separator" => self.sep = unescape(val.trim()),
            "#unset_field" => self.unset = val.to_string(),
            "#empty_field" => self.empty = val.to_string(),
            "#fields" => {
                let cols: Vec<&str> = val.split(self.sep.as_str()).collect();
                self.idx = [None; 11];
                for (i, n) in self.names.iter().enumerate() {
                    self.idx[i] = cols.iter().position(|c| c == n);
                }
                self.has_fields = true;
                self.header_error = [OH, RH]
                    .iter()
                    .find(|&&i| self.idx[i].is_none())
                    .map(|&i| {
                        format!(
                            "#fields has no column {:?} (map a renamed column with --zeek-field {}=NAME)",
                            self.names[i], NAMES[i]
                        )
                    });
            }
            _ => {}
        }
    }

    /// Parses one line: a `#` header line, a JSON object or a TSV row.
    pub fn parse_line(
        &mut self,
        line: &str,
        source: u32,
        no: u64,
        rep: &mut Report,
        sink: &mut dyn FnMut(Flow),
    ) {
        if line.starts_with('#') {
            self.header(line);
            return;
        }
        rep.read += 1;
        if line.starts_with('{') {
            self.json(line, source, no, rep, sink);
            return;
        }
        if !self.has_fields {
            rep.skip(
                source,
                no,
                "Zeek: row before any #fields header",
                "no #fields line yet",
            );
            return;
        }
        if let Some(e) = &self.header_error {
            let e = e.clone();
            rep.skip(source, no, "Zeek: #fields lacks a needed column", e);
            return;
        }
        // Collect the needed columns in one pass over the row.
        let mut want: [Option<&str>; 11] = [None; 11];
        let mut ncols = 0;
        for (i, col) in line.split(self.sep.as_str()).enumerate() {
            ncols += 1;
            for (k, ix) in self.idx.iter().enumerate() {
                if *ix == Some(i) {
                    want[k] = Some(col);
                }
            }
        }
        let max = self.idx.iter().flatten().max().copied().unwrap_or(0);
        if ncols <= max {
            rep.skip(
                source,
                no,
                "Zeek: row has fewer columns than #fields",
                format_args!("{ncols} columns"),
            );
            return;
        }
        let get =
            |k: usize| -> Option<&str> { want[k].filter(|v| *v != self.unset && *v != self.empty) };
        macro_rules! num {
            ($k:expr) => {
                match get($k) {
                    None => None,
                    Some(v) => match v.parse::<u64>() {
                        Ok(x) => Some(x),
                        Err(_) => {
                            rep.skip(
                                source,
                                no,
                                "Zeek: invalid number",
                                format_args!("{} {:?}", self.names[$k], v),
                            );
                            return;
                        }
                    },
                }
            };
        }
        let ts_raw = get(TS);
        let ts = ts_raw.and_then(parse_decimal_secs);
        let v = Values {
            ts,
            ts_bad: ts_raw.is_some() && ts.is_none(),
            oh: get(OH).unwrap_or(""),
            rh: get(RH).unwrap_or(""),
            op: num!(OP),
            rp: num!(RP),
            proto: get(PROTO).unwrap_or(""),
            dur: get(DUR).and_then(parse_decimal_secs),
            counts: [num!(OB), num!(RB), num!(OPK), num!(RPK)],
        };
        emit(v, SourceFormat::ZeekTsv, source, no, rep, sink);
    }

    fn json(&self, line: &str, source: u32, no: u64, rep: &mut Report, sink: &mut dyn FnMut(Flow)) {
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(line) {
            Ok(o) => o,
            Err(e) => {
                rep.skip(source, no, "Zeek: invalid JSON", e);
                return;
            }
        };
        let get = |k: usize| obj.get(self.names[k].as_str());
        let s = |k: usize| get(k).and_then(|v| v.as_str()).unwrap_or("");
        let n = |k: usize| get(k).and_then(|v| v.as_u64());
        let (ts, ts_bad) = match get(TS) {
            Some(serde_json::Value::Number(x)) => (json_secs(x), false),
            Some(serde_json::Value::String(x)) => {
                let t = parse_rfc3339(x).or_else(|| parse_decimal_secs(x));
                (t, t.is_none())
            }
            _ => (None, false),
        };
        let v = Values {
            ts,
            ts_bad,
            oh: s(OH),
            rh: s(RH),
            op: n(OP),
            rp: n(RP),
            proto: s(PROTO),
            dur: get(DUR).and_then(|v| v.as_number()).and_then(json_secs),
            counts: [n(OB), n(RB), n(OPK), n(RPK)],
        };
        emit(v, SourceFormat::ZeekJson, source, no, rep, sink);
    }
}

/// Seconds from a JSON number, exactly from its decimal text where possible.
fn json_secs(x: &serde_json::Number) -> Option<Timestamp> {
    parse_decimal_secs(&x.to_string()).or_else(|| x.as_f64().and_then(secs_f64))
}

fn emit(
    v: Values<'_>,
    format: SourceFormat,
    source: u32,
    no: u64,
    rep: &mut Report,
    sink: &mut dyn FnMut(Flow),
) {
    let (Ok(src), Ok(dst)) = (v.oh.parse::<IpAddr>(), v.rh.parse::<IpAddr>()) else {
        rep.skip(
            source,
            no,
            "Zeek: missing or invalid address",
            format_args!("id.orig_h {:?}, id.resp_h {:?}", v.oh, v.rh),
        );
        return;
    };
    let proto = match v.proto {
        "tcp" => ip_proto::TCP,
        "udp" => ip_proto::UDP,
        "icmp" if src.is_ipv6() => ip_proto::ICMPV6,
        "icmp" => ip_proto::ICMP,
        _ => 0,
    };
    let port = |p: Option<u64>| p.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let (sp, dp) = if matches!(proto, ip_proto::ICMP | ip_proto::ICMPV6) {
        (0, (port(v.op) & 0xff) << 8 | (port(v.rp) & 0xff))
    } else {
        (port(v.op), port(v.rp))
    };
    let origin = FlowOrigin {
        format,
        source,
        record: no,
    };
    let mut f = Flow::new(src, dst, proto, sp, dp, origin);
    let [ob, rb, opk, rpk] = v.counts.map(|c| c.unwrap_or(0));
    f.bytes = ob.saturating_add(rb);
    f.packets = opk.saturating_add(rpk);
    f.time = v.ts;
    f.end_time = v.ts.map(|t| t.saturating_add(v.dur.unwrap_or(0)));
    if v.ts_bad {
        rep.note("Zeek: ts is not a number (masked?): time left unknown");
    }
    rep.parsed += 1;
    sink(f);
}
