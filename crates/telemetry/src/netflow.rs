//! NetFlow v5, v9 and IPFIX (v10) export packets, decoded into [`Flow`]s.
//!
//! Templates and options templates are kept per exporter, as RFC 7011 / RFC 3954 scope them:
//! the key is (exporter address, version, observation domain / source id, template id), so two
//! exporters — or two domains of one exporter — never share templates. Data sets that arrive
//! before their template are counted (per template id) and dropped; exporters resend templates.
//!
//! This is our own decoder, written for throughput (no allocation per record: values are read
//! straight from the packet with the template's field list). `netflow_parser` is kept as an
//! independent check: the tests compare record counts with it on every test payload, and
//! `bulkhead bench telemetry --format netflow` measures both.
//!
//! Information elements mapped onto the flow (IANA numbers; NetFlow v9 uses the same for
//! these): source/destination IPv4 address 8/12, IPv6 27/28, ports 7/11, protocol 4,
//! ICMP type-code 32/139 (into `dst_port` when the port is 0), octetDeltaCount 1 (else
//! octetTotalCount 85, else initiatorOctets 231 + responderOctets 232), packetDeltaCount 2
//! (else 86, else 298 + 299), flowDirection 61, flowStart/EndSysUpTime 22/21 (with the v9
//! header's uptime and export time; for IPFIX with systemInitTimeMilliseconds 160 from the
//! record, or else from the exporter's options records), flowStart/EndSeconds 150/151, Milliseconds 152/153, Microseconds 154/155
//! and Nanoseconds 156/157 (NTP format), flowStart/EndDeltaMicroseconds 158/159. Enterprise
//! elements are skipped. Values of any width (reduced-size encoding) and variable-length
//! fields (length 65535) are read.
//!
//! Options data records (exporter statistics, interface tables, sampling) and data records
//! without addresses are counted in the report but make no flow.

use crate::report::Report;
use bulkhead_core::flow::{Flow, FlowDirection, FlowOrigin, SourceFormat, Timestamp};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// What a decoded data record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A flow data record (v5 record, or a v9/IPFIX data record of a template).
    Data,
    /// An options data record.
    Options,
}

/// One decoded data record, as [`Decoder::decode_packet`] hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Data or options data.
    pub kind: RecordKind,
    /// 5, 9 or 10.
    pub version: u16,
    /// Template id (v5: 0).
    pub template_id: u16,
    /// The flow, when the record has source and destination addresses.
    pub flow: Option<Flow>,
}

#[derive(Clone, Copy, Debug)]
struct TField {
    ie: u16,
    len: u16,
    enterprise: bool,
}

#[derive(Debug)]
struct Template {
    fields: Vec<TField>,
    options: bool,
    /// Smallest encoded record length (variable-length fields count 1 byte).
    min_len: usize,
    /// Whether any source/destination address element is present.
    has_addresses: bool,
}

impl Template {
    fn new(fields: Vec<TField>, options: bool) -> Template {
        let min_len = fields
            .iter()
            .map(|f| if f.len == 65535 { 1 } else { f.len as usize })
            .sum();
        let has_addresses = fields
            .iter()
            .any(|f| !f.enterprise && matches!(f.ie, 8 | 12 | 27 | 28));
        Template {
            fields,
            options,
            min_len,
            has_addresses,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    exporter: SocketAddr,
    version: u16,
    domain: u32,
    id: u16,
}

/// Why a packet could not be decoded (the records before the problem are kept).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its header or its stated length.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A version this decoder does not read.
    #[error("unknown NetFlow version {0}")]
    Version(u16),
    /// A length or count that cannot be right.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// The export-time context of one packet.
#[derive(Clone, Copy)]
struct Ctx {
    version: u16,
    /// Export time, ms since the epoch.
    export_ms: i64,
    /// v9: system uptime at export, ms.
    uptime_ms: Option<i64>,
    /// IPFIX: the exporter's systemInitTimeMilliseconds from its options records, if seen.
    init_ms: Option<i64>,
}

/// The decoder: template caches per exporter and domain.
#[derive(Default)]
pub struct Decoder {
    templates: HashMap<Key, Arc<Template>>,
    /// systemInitTimeMilliseconds (IE 160) per exporter and observation domain, learnt from
    /// options data records: the base of flowStart/EndSysUpTime in IPFIX.
    init_ms: HashMap<(SocketAddr, u32), i64>,
}

/// Size of the reused read buffer of [`Decoder::decode_read`]: larger than any message it
/// needs whole (an IPFIX message or a v9 flowset is at most 65,535 bytes, a v5 packet 1,464).
pub const WINDOW: usize = 256 * 1024;

/// A bounded, reused read buffer over a reader: `peek(n)` makes at least `n` bytes available
/// (fewer only at the end of the input), moving the unread rest to the front when needed.
struct Window<R> {
    r: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Window<R> {
    fn new(r: R) -> Self {
        Window {
            r,
            buf: vec![0; WINDOW].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The unread bytes: at least `n` (at most [`WINDOW`]) unless the input ends first.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(WINDOW);
        while self.end - self.start < n && !self.eof {
            if self.buf.len() - self.start < n {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Marks `n` peeked bytes as read.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
/// Big-endian unsigned integer of 1–8 bytes (wider values keep their low 8 bytes).
fn uint(v: &[u8]) -> u64 {
    let v = if v.len() > 8 { &v[v.len() - 8..] } else { v };
    v.iter().fold(0u64, |a, &b| a << 8 | b as u64)
}
/// NTP timestamp (seconds since 1900 + fraction) into ns since 1970.
fn ntp(v: u64) -> Timestamp {
    let secs = (v >> 32) as i64 - 2_208_988_800;
    let frac = ((v & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac as i64
}
const MS: i64 = 1_000_000;

/// `v * unit` as a timestamp, `None` when out of range.
fn scaled(v: u64, unit: i64) -> Option<Timestamp> {
    i64::try_from(v).ok()?.checked_mul(unit)
}

/// `uptime - switched` in ms, on the 32-bit uptime counter (it wraps after 49.7 days): a
/// switched time just before a wrap is a little in the past, not 49 days in the future.
fn uptime_delta(uptime: i64, switched: i64) -> i64 {
    (uptime as u32).wrapping_sub(switched as u32) as i32 as i64
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Number of templates held.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Decodes a payload file from one exporter. By default a file is one UDP payload: one
    /// export packet, and bytes after it are ignored (and noted), as a collector sees a
    /// datagram. With `stream`, the file holds packets back to back (the IPFIX file format of
    /// RFC 5655): IPFIX messages are split by their length, v5 packets by their record count,
    /// and a v9 packet runs to the end. Flows go to `sink`; counts and problems to the report.
    pub fn decode_file(
        &mut self,
        bytes: &[u8],
        source: u32,
        stream: bool,
        rep: &mut Report,
        sink: &mut dyn FnMut(Flow),
    ) {
        let exporter = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut emit = |r: Record| {
            if let Some(f) = r.flow {
                sink(f)
            }
        };
        if stream {
            self.decode_stream(exporter, bytes, source, rep, &mut emit);
        } else {
            self.decode_payload(exporter, bytes, source, rep, &mut emit);
        }
    }

    /// [`Decoder::decode_file`] from a reader, message by message through a bounded, reused
    /// buffer ([`WINDOW`] bytes): the whole input is never held. Same flows, counts, problems
    /// and notes as `decode_file` on the whole input: v5 packets are cut by their record
    /// count, IPFIX messages by their length, and a v9 packet (which runs to the end of the
    /// input) is read flowset by flowset. A read error ends the input with the flows before
    /// it already handed out.
    pub fn decode_read(
        &mut self,
        r: impl Read,
        source: u32,
        stream: bool,
        rep: &mut Report,
        sink: &mut dyn FnMut(Flow),
    ) -> io::Result<()> {
        let exporter = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut emit = |r: Record| {
            if let Some(f) = r.flow {
                sink(f)
            }
        };
        let mut w = Window::new(r);
        let mut record_no = 0u64;
        if !stream {
            match self.read_packet(exporter, &mut w, source, &mut record_no, rep, &mut emit)? {
                Ok(()) if !w.peek(1)?.is_empty() => rep.note(
                    "NetFlow: bytes after the export packet of a payload ignored (--netflow-stream reads back-to-back packets)",
                ),
                Ok(()) => {}
                Err(e) => rep.skip(source, 1, "NetFlow: malformed packet", e),
            }
            return Ok(());
        }
        let mut packet_no = 0u64;
        while !w.peek(1)?.is_empty() {
            packet_no += 1;
            if let Err(e) =
                self.read_packet(exporter, &mut w, source, &mut record_no, rep, &mut emit)?
            {
                rep.skip(
                    source,
                    packet_no,
                    "NetFlow: malformed packet",
                    format_args!("packet {packet_no}: {e}"),
                );
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads and decodes the next packet of `w` (as [`Decoder::decode_packet`] would on the
    /// rest of the input), consuming the bytes it used.
    fn read_packet<R: Read>(
        &mut self,
        exporter: SocketAddr,
        w: &mut Window<R>,
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> io::Result<Result<(), PacketError>> {
        let head = w.peek(4)?;
        let want = match be16(head, 0) {
            Some(9) => return self.read_v9(exporter, w, source, record_no, rep, emit),
            Some(5) => match be16(head, 2) {
                Some(c @ 1..=30) => 24 + c as usize * 48,
                _ => 24,
            },
            Some(10) => be16(head, 2).map_or(16, |l| (l as usize).max(16)),
            _ => 2,
        };
        let pkt = w.peek(want)?;
        match self.decode_packet(exporter, pkt, source, record_no, rep, emit) {
            Ok(used) => {
                w.consume(used.max(1));
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// A v9 packet from `w`: it runs to the end of the input, read one flowset at a time.
    fn read_v9<R: Read>(
        &mut self,
        exporter: SocketAddr,
        w: &mut Window<R>,
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> io::Result<Result<(), PacketError>> {
        let head = w.peek(20)?;
        if head.len() < 20 {
            return Ok(Err(PacketError::Truncated("v9 header")));
        }
        let (ctx, domain) = Self::v9_header(head);
        w.consume(20);
        rep.netflow.packets += 1;
        loop {
            let h = w.peek(4)?;
            if h.len() < 4 {
                let n = h.len();
                w.consume(n);
                return Ok(Ok(()));
            }
            let id = be16(h, 0).unwrap_or(0);
            let len = be16(h, 2).unwrap_or(0) as usize;
            if len < 4 {
                return Ok(Err(PacketError::Malformed("v9 flowset length")));
            }
            let set = w.peek(len)?;
            if set.len() < len {
                return Ok(Err(PacketError::Malformed("v9 flowset length")));
            }
            self.v9_flowset(
                exporter,
                domain,
                ctx,
                id,
                &set[4..len],
                source,
                record_no,
                rep,
                emit,
            );
            w.consume(len);
        }
    }

    /// Decodes one UDP payload: one export packet; trailing bytes are noted and ignored.
    pub fn decode_payload(
        &mut self,
        exporter: SocketAddr,
        bytes: &[u8],
        source: u32,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) {
        let mut record_no = 0u64;
        match self.decode_packet(exporter, bytes, source, &mut record_no, rep, emit) {
            Ok(used) if used < bytes.len() => rep.note(
                "NetFlow: bytes after the export packet of a payload ignored (--netflow-stream reads back-to-back packets)",
            ),
            Ok(_) => {}
            Err(e) => rep.skip(source, 1, "NetFlow: malformed packet", e),
        }
    }

    /// Decodes back-to-back packets from one exporter, handing out every decoded record
    /// (options too).
    pub fn decode_stream(
        &mut self,
        exporter: SocketAddr,
        mut bytes: &[u8],
        source: u32,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) {
        let mut packet_no = 0u64;
        let mut record_no = 0u64;
        while !bytes.is_empty() {
            packet_no += 1;
            match self.decode_packet(exporter, bytes, source, &mut record_no, rep, emit) {
                Ok(used) => bytes = &bytes[used.clamp(1, bytes.len())..],
                Err(e) => {
                    rep.skip(
                        source,
                        packet_no,
                        "NetFlow: malformed packet",
                        format_args!("packet {packet_no}: {e}"),
                    );
                    return;
                }
            }
        }
    }

    /// Decodes one packet from `exporter`; returns the bytes it used. `record_no` numbers the
    /// records of the input (for their origin).
    pub fn decode_packet(
        &mut self,
        exporter: SocketAddr,
        pkt: &[u8],
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> Result<usize, PacketError> {
        let version = be16(pkt, 0).ok_or(PacketError::Truncated("header"))?;
        match version {
            5 => decode_v5(pkt, source, record_no, rep, emit),
            9 => self.decode_v9(exporter, pkt, source, record_no, rep, emit),
            10 => self.decode_ipfix(exporter, pkt, source, record_no, rep, emit),
            v => Err(PacketError::Version(v)),
        }
    }

    fn decode_v9(
        &mut self,
        exporter: SocketAddr,
        pkt: &[u8],
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> Result<usize, PacketError> {
        if pkt.len() < 20 {
            return Err(PacketError::Truncated("v9 header"));
        }
        let (ctx, domain) = Self::v9_header(pkt);
        rep.netflow.packets += 1;
        let mut i = 20;
        while i + 4 <= pkt.len() {
            let id = be16(pkt, i).unwrap_or(0);
            let len = be16(pkt, i + 2).unwrap_or(0) as usize;
            if len < 4 || i + len > pkt.len() {
                return Err(PacketError::Malformed("v9 flowset length"));
            }
            let body = &pkt[i + 4..i + len];
            self.v9_flowset(
                exporter, domain, ctx, id, body, source, record_no, rep, emit,
            );
            i += len;
        }
        Ok(pkt.len())
    }

    /// The context and observation domain of a v9 header (at least 20 bytes).
    fn v9_header(pkt: &[u8]) -> (Ctx, u32) {
        let uptime = be32(pkt, 4).unwrap_or(0) as i64;
        let secs = be32(pkt, 8).unwrap_or(0) as i64;
        let domain = be32(pkt, 16).unwrap_or(0);
        let ctx = Ctx {
            version: 9,
            export_ms: secs * 1000,
            uptime_ms: Some(uptime),
            init_ms: None,
        };
        (ctx, domain)
    }

    /// One v9 flowset (its id and the body after its 4-byte header).
    #[allow(clippy::too_many_arguments)]
    fn v9_flowset(
        &mut self,
        exporter: SocketAddr,
        domain: u32,
        ctx: Ctx,
        id: u16,
        body: &[u8],
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) {
        {
            let key = |id| Key {
                exporter,
                version: 9,
                domain,
                id,
            };
            match id {
                0 => {
                    let mut j = 0;
                    while j + 4 <= body.len() {
                        let tid = be16(body, j).unwrap_or(0);
                        let n = be16(body, j + 2).unwrap_or(0) as usize;
                        if tid < 256 || j + 4 + n * 4 > body.len() {
                            break;
                        }
                        let fields = (0..n)
                            .map(|k| TField {
                                ie: be16(body, j + 4 + k * 4).unwrap_or(0),
                                len: be16(body, j + 6 + k * 4).unwrap_or(0),
                                enterprise: false,
                            })
                            .collect();
                        self.templates
                            .insert(key(tid), Arc::new(Template::new(fields, false)));
                        rep.netflow.templates += 1;
                        j += 4 + n * 4;
                    }
                }
                1 => {
                    let mut j = 0;
                    while j + 6 <= body.len() {
                        let tid = be16(body, j).unwrap_or(0);
                        let sl = be16(body, j + 2).unwrap_or(0) as usize;
                        let ol = be16(body, j + 4).unwrap_or(0) as usize;
                        if tid < 256 || j + 6 + sl + ol > body.len() {
                            break;
                        }
                        let n = sl / 4 + ol / 4;
                        let start = j + 6;
                        let fields = (0..n)
                            .map(|k| {
                                let at = if k < sl / 4 {
                                    start + k * 4
                                } else {
                                    start + sl + (k - sl / 4) * 4
                                };
                                TField {
                                    ie: be16(body, at).unwrap_or(0),
                                    len: be16(body, at + 2).unwrap_or(0),
                                    enterprise: false,
                                }
                            })
                            .collect();
                        self.templates
                            .insert(key(tid), Arc::new(Template::new(fields, true)));
                        rep.netflow.templates += 1;
                        j += 6 + sl + ol;
                    }
                }
                2..=255 => {}
                tid => {
                    self.data_set(key(tid), body, ctx, source, record_no, rep, emit);
                }
            }
        }
    }

    fn decode_ipfix(
        &mut self,
        exporter: SocketAddr,
        pkt: &[u8],
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> Result<usize, PacketError> {
        if pkt.len() < 16 {
            return Err(PacketError::Truncated("IPFIX header"));
        }
        let mlen = be16(pkt, 2).unwrap_or(0) as usize;
        if mlen < 16 {
            return Err(PacketError::Malformed("IPFIX message length below 16"));
        }
        if mlen > pkt.len() {
            return Err(PacketError::Truncated("IPFIX message"));
        }
        let pkt = &pkt[..mlen];
        let export = be32(pkt, 4).unwrap_or(0) as i64;
        let domain = be32(pkt, 12).unwrap_or(0);
        let mut ctx = Ctx {
            version: 10,
            export_ms: export * 1000,
            uptime_ms: None,
            init_ms: self.init_ms.get(&(exporter, domain)).copied(),
        };
        rep.netflow.packets += 1;
        let mut i = 16;
        while i + 4 <= pkt.len() {
            let id = be16(pkt, i).unwrap_or(0);
            let len = be16(pkt, i + 2).unwrap_or(0) as usize;
            if len < 4 || i + len > pkt.len() {
                return Err(PacketError::Malformed("IPFIX set length"));
            }
            let body = &pkt[i + 4..i + len];
            let key = |id| Key {
                exporter,
                version: 10,
                domain,
                id,
            };
            match id {
                2 | 3 => {
                    let options = id == 3;
                    let head = if options { 6 } else { 4 };
                    let mut j = 0;
                    while j + 4 <= body.len() {
                        let tid = be16(body, j).unwrap_or(0);
                        let n = be16(body, j + 2).unwrap_or(0) as usize;
                        if tid < 256 {
                            break;
                        }
                        if n == 0 {
                            // Template withdrawal.
                            self.templates.remove(&key(tid));
                            j += 4;
                            continue;
                        }
                        let mut k = j + head;
                        let mut fields = Vec::with_capacity(n);
                        for _ in 0..n {
                            let (Some(ie), Some(flen)) = (be16(body, k), be16(body, k + 2)) else {
                                break;
                            };
                            let enterprise = ie & 0x8000 != 0;
                            k += if enterprise { 8 } else { 4 };
                            fields.push(TField {
                                ie: ie & 0x7fff,
                                len: flen,
                                enterprise,
                            });
                        }
                        if fields.len() != n || k > body.len() {
                            break;
                        }
                        self.templates
                            .insert(key(tid), Arc::new(Template::new(fields, options)));
                        rep.netflow.templates += 1;
                        j = k;
                    }
                }
                4..=255 => {}
                tid => {
                    if let Some(init) =
                        self.data_set(key(tid), body, ctx, source, record_no, rep, emit)
                    {
                        self.init_ms.insert((exporter, domain), init);
                        ctx.init_ms = Some(init);
                    }
                }
            }
            i += len;
        }
        Ok(mlen)
    }

    #[allow(clippy::too_many_arguments)]
    fn data_set(
        &self,
        key: Key,
        mut body: &[u8],
        ctx: Ctx,
        source: u32,
        record_no: &mut u64,
        rep: &mut Report,
        emit: &mut dyn FnMut(Record),
    ) -> Option<i64> {
        let Some(t) = self.templates.get(&key) else {
            rep.sets_before_template += 1;
            *rep.netflow.missing_templates.entry(key.id).or_default() += 1;
            return None;
        };
        if t.min_len == 0 {
            rep.skip(
                source,
                *record_no,
                "NetFlow: template with zero-length records",
                format_args!("template {}", key.id),
            );
            return None;
        }
        let mut init = None;
        while body.len() >= t.min_len {
            if t.options
                && let Some(v) = options_init_ms(t, body)
            {
                init = Some(v);
            }
            let Some((flow, used)) = decode_record(t, body, ctx, source, *record_no + 1) else {
                break; // the rest is padding or a truncated record
            };
            body = &body[used..];
            *record_no += 1;
            rep.read += 1;
            let kind = if t.options {
                rep.netflow.options_records += 1;
                RecordKind::Options
            } else {
                rep.netflow.data_records += 1;
                RecordKind::Data
            };
            if kind == RecordKind::Data && flow.is_none() {
                rep.netflow.records_without_addresses += 1;
            }
            if flow.is_some() {
                rep.parsed += 1;
            }
            emit(Record {
                kind,
                version: ctx.version,
                template_id: key.id,
                flow,
            });
        }
        init
    }
}

/// The length of field `f` of a record whose next byte is `b[*i]`: the template's, or for an
/// IPFIX variable-length field the one- or three-byte length prefix there (RFC 7011 §7),
/// stepping `*i` past the prefix. `None` when the record ends first.
fn field_len(f: &TField, b: &[u8], i: &mut usize) -> Option<usize> {
    if f.len != 65535 {
        return Some(f.len as usize);
    }
    let l = *b.get(*i)? as usize;
    *i += 1;
    if l < 255 {
        return Some(l);
    }
    let l = be16(b, *i)? as usize;
    *i += 2;
    Some(l)
}

/// The systemInitTimeMilliseconds (IE 160) of an options record, if it has one.
fn options_init_ms(t: &Template, b: &[u8]) -> Option<i64> {
    let mut i = 0;
    for f in &t.fields {
        let len = field_len(f, b, &mut i)?;
        let v = b.get(i..i + len)?;
        i += len;
        if f.ie == 160 && !f.enterprise {
            return i64::try_from(uint(v)).ok();
        }
    }
    None
}

/// Decodes one record with its template: the flow (when it has addresses and is not an
/// options record) and the bytes used; `None` when the record does not fit.
fn decode_record(
    t: &Template,
    b: &[u8],
    ctx: Ctx,
    source: u32,
    record: u64,
) -> Option<(Option<Flow>, usize)> {
    let want_flow = t.has_addresses && !t.options;
    let mut i = 0;
    let (mut src, mut dst): (Option<IpAddr>, Option<IpAddr>) = (None, None);
    let (mut sp, mut dp, mut proto, mut icmp) = (0u16, 0u16, 0u8, 0u16);
    let (mut oct, mut oct_total, mut oct_i, mut oct_r) = (None, None, None, None);
    let (mut pk, mut pk_total, mut pk_i, mut pk_r) = (None, None, None, None);
    let (mut start, mut end) = (None, None);
    let (mut up_start, mut up_end, mut init_ms) = (None, None, None);
    let mut dir = None;
    for f in &t.fields {
        let len = field_len(f, b, &mut i)?;
        let v = b.get(i..i + len)?;
        i += len;
        if !want_flow || f.enterprise {
            continue;
        }
        match (f.ie, len) {
            (8, 4) | (12, 4) => {
                let a = IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]));
                if f.ie == 8 {
                    src = Some(a)
                } else {
                    dst = Some(a)
                }
            }
            (27, 16) | (28, 16) => {
                let a: [u8; 16] = v.try_into().ok()?;
                let a = IpAddr::V6(Ipv6Addr::from(a));
                if f.ie == 27 {
                    src = Some(a)
                } else {
                    dst = Some(a)
                }
            }
            (7, _) => sp = uint(v) as u16,
            (11, _) => dp = uint(v) as u16,
            (4, _) => proto = uint(v) as u8,
            (32, _) | (139, _) => icmp = uint(v) as u16,
            (1, _) => oct = Some(uint(v)),
            (85, _) => oct_total = Some(uint(v)),
            (231, _) => oct_i = Some(uint(v)),
            (232, _) => oct_r = Some(uint(v)),
            (2, _) => pk = Some(uint(v)),
            (86, _) => pk_total = Some(uint(v)),
            (298, _) => pk_i = Some(uint(v)),
            (299, _) => pk_r = Some(uint(v)),
            (61, _) => {
                dir = match uint(v) {
                    0 => Some(FlowDirection::Ingress),
                    1 => Some(FlowDirection::Egress),
                    _ => None,
                }
            }
            // Times: checked arithmetic, a value out of range gives no time.
            (22, _) => up_start = i64::try_from(uint(v)).ok(),
            (21, _) => up_end = i64::try_from(uint(v)).ok(),
            (160, _) => init_ms = i64::try_from(uint(v)).ok(),
            (150, _) => start = scaled(uint(v), 1_000_000_000),
            (151, _) => end = scaled(uint(v), 1_000_000_000),
            (152, _) => start = scaled(uint(v), MS),
            (153, _) => end = scaled(uint(v), MS),
            (154, 8) | (156, 8) => start = Some(ntp(uint(v))),
            (155, 8) | (157, 8) => end = Some(ntp(uint(v))),
            (158, _) => {
                start = scaled(uint(v), 1000).and_then(|d| (ctx.export_ms * MS).checked_sub(d))
            }
            (159, _) => {
                end = scaled(uint(v), 1000).and_then(|d| (ctx.export_ms * MS).checked_sub(d))
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Some((None, i));
    };
    let format = if ctx.version == 9 {
        SourceFormat::NetflowV9
    } else {
        SourceFormat::Ipfix
    };
    let origin = FlowOrigin {
        format,
        source,
        record,
    };
    if dp == 0 && icmp != 0 {
        dp = icmp;
    }
    let mut flow = Flow::new(src, dst, proto, sp, dp, origin);
    flow.bytes = oct
        .or(oct_total)
        .or_else(|| {
            (oct_i.is_some() || oct_r.is_some())
                .then(|| oct_i.unwrap_or(0).saturating_add(oct_r.unwrap_or(0)))
        })
        .unwrap_or(0);
    flow.packets = pk
        .or(pk_total)
        .or_else(|| {
            (pk_i.is_some() || pk_r.is_some())
                .then(|| pk_i.unwrap_or(0).saturating_add(pk_r.unwrap_or(0)))
        })
        .unwrap_or(0);
    flow.direction = dir;
    let at = |switched: i64| match (ctx.uptime_ms, init_ms) {
        // v9: the switched times are uptime ms: export time minus (uptime - switched).
        (Some(up), _) => Some((ctx.export_ms - uptime_delta(up, switched)) * MS),
        // IPFIX: relative to the exporter's init time, when the record gives it.
        (None, Some(init)) => init.checked_add(switched)?.checked_mul(MS),
        (None, None) => ctx
            .init_ms
            .and_then(|init| init.checked_add(switched)?.checked_mul(MS)),
    };
    if start.is_none() {
        start = up_start.and_then(at);
    }
    if end.is_none() {
        end = up_end.and_then(at);
    }
    flow.time = start;
    flow.end_time = end;
    Some((Some(flow), i))
}

fn decode_v5(
    pkt: &[u8],
    source: u32,
    record_no: &mut u64,
    rep: &mut Report,
    emit: &mut dyn FnMut(Record),
) -> Result<usize, PacketError> {
    if pkt.len() < 24 {
        return Err(PacketError::Truncated("v5 header"));
    }
    let count = be16(pkt, 2).unwrap_or(0) as usize;
    if count == 0 || count > 30 {
        return Err(PacketError::Malformed("v5 record count outside 1–30"));
    }
    let need = 24 + count * 48;
    if pkt.len() < need {
        return Err(PacketError::Truncated("v5 records"));
    }
    let uptime = be32(pkt, 4).unwrap_or(0) as i64;
    let now_ns =
        be32(pkt, 8).unwrap_or(0) as i64 * 1_000_000_000 + be32(pkt, 12).unwrap_or(0) as i64;
    rep.netflow.packets += 1;
    for r in pkt[24..need].chunks_exact(48) {
        *record_no += 1;
        let a = |i: usize| IpAddr::V4(Ipv4Addr::new(r[i], r[i + 1], r[i + 2], r[i + 3]));
        let n32 = |i: usize| be32(r, i).unwrap_or(0) as u64;
        let n16 = |i: usize| be16(r, i).unwrap_or(0);
        let origin = FlowOrigin {
            format: SourceFormat::NetflowV5,
            source,
            record: *record_no,
        };
        let mut f = Flow::new(a(0), a(4), r[38], n16(32), n16(34), origin);
        f.packets = n32(16);
        f.bytes = n32(20);
        f.time = Some(now_ns - uptime_delta(uptime, n32(24) as i64) * MS);
        f.end_time = Some(now_ns - uptime_delta(uptime, n32(28) as i64) * MS);
        rep.read += 1;
        rep.parsed += 1;
        rep.netflow.data_records += 1;
        emit(Record {
            kind: RecordKind::Data,
            version: 5,
            template_id: 0,
            flow: Some(f),
        });
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPFIX message with one template of every time element at full width and one data
    /// record of all-ones: out-of-range times give `None`, never an overflow.
    #[test]
    fn extreme_time_values_do_not_overflow() {
        let ies: [(u16, u16); 16] = [
            (8, 4),
            (12, 4),
            (22, 8),
            (21, 8),
            (160, 8),
            (150, 8),
            (151, 8),
            (152, 8),
            (153, 8),
            (154, 8),
            (155, 8),
            (158, 8),
            (159, 8),
            (1, 8),
            (2, 8),
            (7, 2),
        ];
        for order in [false, true] {
            let mut fields = ies.to_vec();
            if order {
                fields.reverse();
            }
            let mut m = vec![0, 10, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 1];
            m.extend_from_slice(&2u16.to_be_bytes());
            m.extend_from_slice(&(8 + 4 * fields.len() as u16).to_be_bytes());
            m.extend_from_slice(&256u16.to_be_bytes());
            m.extend_from_slice(&(fields.len() as u16).to_be_bytes());
            for (ie, l) in &fields {
                m.extend_from_slice(&ie.to_be_bytes());
                m.extend_from_slice(&l.to_be_bytes());
            }
            let rec: usize = fields.iter().map(|f| f.1 as usize).sum();
            m.extend_from_slice(&256u16.to_be_bytes());
            m.extend_from_slice(&(4 + rec as u16).to_be_bytes());
            m.extend(std::iter::repeat_n(0xff, rec));
            let len = m.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let mut d = Decoder::new();
            let mut rep = Report::default();
            let mut out = Vec::new();
            d.decode_payload(
                SocketAddr::from(([127, 0, 0, 1], 1)),
                &m,
                0,
                &mut rep,
                &mut |r| out.push(r),
            );
            assert_eq!(out.len(), 1, "{rep}");
            let f = out[0].flow.as_ref().expect("flow");
            assert_eq!(f.bytes, u64::MAX);
        }
    }

    #[test]
    fn uptime_wraps() {
        assert_eq!(uptime_delta(3381, 0xffff_ffff), 3382);
        assert_eq!(uptime_delta(5000, 4000), 1000);
    }
}
