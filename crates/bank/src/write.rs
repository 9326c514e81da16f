//! The four flow formats, each for the part of the network where a bank would have it:
//! Hubble inside Kubernetes, VPC Flow Logs for cloud VM subnets, Zeek for the on-premises
//! segments, IPFIX from the legacy edge router for traffic to and from external parties.

use crate::model::{Bank, Kind};
use crate::traffic::{End, Outcome, SimFlow};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The flow formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fmt {
    Hubble,
    Vpc,
    Zeek,
    Netflow,
}

impl Fmt {
    pub const ALL: [Fmt; 4] = [Fmt::Hubble, Fmt::Vpc, Fmt::Zeek, Fmt::Netflow];

    pub fn name(self) -> &'static str {
        match self {
            Fmt::Hubble => "hubble",
            Fmt::Vpc => "vpc",
            Fmt::Zeek => "zeek",
            Fmt::Netflow => "netflow",
        }
    }
}

impl std::str::FromStr for Fmt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hubble" => Ok(Fmt::Hubble),
            "vpc" => Ok(Fmt::Vpc),
            "zeek" => Ok(Fmt::Zeek),
            "netflow" => Ok(Fmt::Netflow),
            _ => Err(format!("unknown format {s:?} (hubble, vpc, zeek, netflow)")),
        }
    }
}

/// Which telemetry sees a flow.
pub fn format_of(bank: &Bank, f: &SimFlow) -> Fmt {
    let ends = [f.src, f.dst];
    let vm = |k: Kind| {
        ends.iter().any(|e| match *e {
            End::Host(w, _) => bank.workloads[w].kind == k,
            _ => false,
        })
    };
    if ends.iter().any(|e| matches!(e, End::External(_))) {
        Fmt::Netflow
    } else if vm(Kind::VmOnPrem) {
        Fmt::Zeek
    } else if vm(Kind::VmCloud) {
        Fmt::Vpc
    } else {
        Fmt::Hubble
    }
}

/// Where a record was written: format, file (relative to the output directory, `-` for
/// standard output) and line (text formats: the physical line, 1-based, headers counted) or
/// record (IPFIX: the data record's position in its payload file, 1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub format: Fmt,
    pub file: String,
    pub line: u64,
}

struct LineFile {
    w: Box<dyn Write>,
    rel: String,
    line: u64,
    header_lines: u64,
}

impl LineFile {
    fn open(dir: &Path, rel: String) -> io::Result<LineFile> {
        let p = dir.join(&rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let w: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 18, File::create(p)?));
        Ok(LineFile {
            w,
            rel,
            line: 0,
            header_lines: 0,
        })
    }

    fn header(&mut self, text: &str) -> io::Result<()> {
        self.w.write_all(text.as_bytes())?;
        self.line += text.bytes().filter(|&b| b == b'\n').count() as u64;
        self.header_lines = self.line;
        Ok(())
    }
}

const VPC_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
const ZEEK_HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n";

/// IPFIX template 256: source/destination IPv4 address and port, protocol, octets, packets,
/// flow start/end in milliseconds.
const IPFIX_FIELDS: [(u16, u16); 9] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
];
const IPFIX_PER_PACKET: usize = 24;

/// Writes the flows of one simulation.
pub struct Writers<'a> {
    bank: &'a Bank,
    dir: Option<PathBuf>,
    /// `Some(f)`: only format `f`, to standard output.
    stream: Option<Fmt>,
    /// Where the stream goes, until its format's first record.
    stream_out: Option<Box<dyn Write>>,
    day: i64,
    files: [Option<LineFile>; 3],
    /// Per workload: the Hubble endpoint JSON after the endpoint ID, up to the pod name.
    hubble_ep: Vec<String>,
    /// Hubble events after a connection's first ones (replies, ends), by time.
    hubble_pending: BinaryHeap<Reverse<(i64, u64, String)>>,
    hubble_seq: u64,
    ipfix: Vec<u8>,
    ipfix_n: usize,
    ipfix_files: u64,
    ipfix_seq: u32,
    ipfix_last_ms: i64,
    /// The simulation day of the message being filled.
    ipfix_day: i64,
    /// With `--stream netflow`: the messages back to back (each starts with its length).
    ipfix_out: Option<BufWriter<Box<dyn Write>>>,
    /// Records written to the stream so far (the position of a streamed record).
    ipfix_streamed: u64,
    /// Connections written per format.
    pub counts: [u64; 4],
    /// Hubble events written.
    pub hubble_events: u64,
    /// Files written (relative paths) with their record counts, in order.
    pub written: Vec<(Fmt, String, u64)>,
}

impl<'a> Writers<'a> {
    pub fn new(
        bank: &'a Bank,
        dir: Option<&Path>,
        stream: Option<(Fmt, Box<dyn Write>)>,
    ) -> Writers<'a> {
        let (stream, stream_out) = match stream {
            Some((f, w)) => (Some(f), Some(w)),
            None => (None, None),
        };
        let hubble_ep = bank
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut labels: Vec<String> = w
                    .labels()
                    .iter()
                    .map(|(k, v)| format!("\"k8s:{k}={v}\""))
                    .collect();
                labels.push(format!("\"k8s:io.kubernetes.pod.namespace={}\"", w.segment));
                format!(
                    "\"identity\":{},\"namespace\":\"{}\",\"labels\":[{}],\"pod_name\":\"",
                    20_000 + i,
                    w.segment,
                    labels.join(",")
                )
            })
            .collect();
        Writers {
            bank,
            dir: dir.map(Path::to_path_buf),
            stream,
            stream_out,
            day: -1,
            files: [None, None, None],
            hubble_ep,
            hubble_pending: BinaryHeap::new(),
            hubble_seq: 0,
            ipfix: Vec::with_capacity(1500),
            ipfix_n: 0,
            ipfix_files: 0,
            ipfix_seq: 0,
            ipfix_last_ms: 0,
            ipfix_day: -1,
            ipfix_out: None,
            ipfix_streamed: 0,
            counts: [0; 4],
            hubble_events: 0,
            written: Vec::new(),
        }
    }

    fn close_day(&mut self) -> io::Result<()> {
        for (i, f) in self.files.iter_mut().enumerate() {
            if let Some(mut lf) = f.take() {
                lf.w.flush()?;
                self.written
                    .push((Fmt::ALL[i], lf.rel, lf.line - lf.header_lines));
            }
        }
        Ok(())
    }

    fn file(&mut self, fmt: Fmt, day: i64) -> io::Result<&mut LineFile> {
        let i = fmt as usize;
        if self.stream.is_none() && day != self.day {
            self.close_day()?;
            self.day = day;
        }
        if self.files[i].is_none() {
            let d = day + 1;
            let (rel, header) = match fmt {
                Fmt::Hubble => (format!("flows/hubble/day-{d:02}.jsonl"), ""),
                Fmt::Vpc => (format!("flows/vpc/day-{d:02}.log"), VPC_HEADER),
                _ => (format!("flows/zeek/conn.day-{d:02}.log"), ZEEK_HEADER),
            };
            let mut lf = match (self.stream_out.take(), &self.dir) {
                (Some(w), _) => LineFile {
                    w: Box::new(BufWriter::with_capacity(1 << 18, w)),
                    rel: "-".to_string(),
                    line: 0,
                    header_lines: 0,
                },
                (None, Some(d)) => LineFile::open(d, rel)?,
                (None, None) => return Err(io::Error::other("no output directory")),
            };
            lf.header(header)?;
            self.files[i] = Some(lf);
        }
        Ok(self.files[i].as_mut().expect("opened above"))
    }

    /// Writes one flow (of simulation day `day`); returns where, or `None` when the format is
    /// not being written (streaming another one).
    pub fn write(&mut self, f: &SimFlow, day: i64) -> io::Result<Option<Position>> {
        let bank = self.bank;
        let fmt = format_of(bank, f);
        if self.stream.is_some_and(|s| s != fmt) {
            return Ok(None);
        }
        let addr = |e: End| match e {
            End::Pod(p) => bank.pods[p].ip,
            End::Host(w, h) => bank.workloads[w].hosts[h].1,
            End::External(a) => a,
        };
        let (src, dst) = (addr(f.src), addr(f.dst));
        let tcp = f.proto == 6;
        let (pkts_out, pkts_in) = packets(f);
        let (bytes_out, bytes_in) = match f.outcome {
            Outcome::Ok => (f.bytes_out, f.bytes_in),
            Outcome::Rejected => (60 * pkts_out, 40 * pkts_in),
            Outcome::Dropped => (60 * pkts_out, 0),
        };
        self.counts[fmt as usize] += 1;
        if fmt == Fmt::Netflow {
            return self.ipfix_record(f, day, src, dst, bytes_out + bytes_in, pkts_out + pkts_in);
        }
        if fmt == Fmt::Hubble {
            // Replies and connection ends whose time has come go first (in time order).
            self.flush_hubble(f.time_ms * 1_000_000, day)?;
            self.file(fmt, day)?;
            return self.hubble(f, src, dst).map(Some);
        }
        self.file(fmt, day)?;
        let lf = self.files[fmt as usize].as_mut().expect("opened above");
        match fmt {
            Fmt::Hubble => unreachable!("written above"),
            Fmt::Vpc => {
                let s = f.time_ms.div_euclid(1000);
                let action = if f.outcome == Outcome::Ok {
                    "ACCEPT"
                } else {
                    "REJECT"
                };
                writeln!(
                    lf.w,
                    "2 123456789012 eni-{:017x} {src} {dst} {} {} {} {} {} {s} {} {action} OK",
                    // The ENI is the cloud VM's (the end the flow log is attached to).
                    match (f.src, f.dst) {
                        (End::Host(w, _), _) if bank.workloads[w].kind == Kind::VmCloud => {
                            u32::from(src)
                        }
                        _ => u32::from(dst),
                    },
                    f.sport,
                    f.dport,
                    f.proto,
                    pkts_out + pkts_in,
                    bytes_out + bytes_in,
                    s + 60
                )?;
            }
            _ => {
                let (state, history) = match (f.outcome, tcp) {
                    (Outcome::Ok, true) => ("SF", "ShADadFf"),
                    (Outcome::Ok, false) if f.bytes_in == 0 => ("S0", "D"),
                    (Outcome::Ok, false) => ("SF", "Dd"),
                    (Outcome::Rejected, _) => ("REJ", "Sr"),
                    (Outcome::Dropped, _) => ("S0", "S"),
                };
                let service = match f.dport {
                    443 | 8443 => "ssl",
                    53 => "dns",
                    123 => "ntp",
                    22 => "ssh",
                    _ => "-",
                };
                let dur = if f.outcome == Outcome::Ok {
                    f.dur_ms
                } else {
                    0
                };
                writeln!(
                    lf.w,
                    "{}.{:03}000\tC{:016x}\t{src}\t{}\t{dst}\t{}\t{}\t{service}\t{}.{:03}000\t{bytes_out}\t{bytes_in}\t{state}\tT\tT\t0\t{history}\t{pkts_out}\t{}\t{pkts_in}\t{}\t-",
                    f.time_ms.div_euclid(1000),
                    f.time_ms.rem_euclid(1000),
                    (f.time_ms as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(f.sport),
                    f.sport,
                    f.dport,
                    if tcp { "tcp" } else { "udp" },
                    dur / 1000,
                    dur % 1000,
                    bytes_out + 40 * pkts_out,
                    bytes_in + 40 * pkts_in,
                )?;
            }
        }
        lf.line += 1;
        Ok(Some(Position {
            format: fmt,
            file: lf.rel.clone(),
            line: lf.line,
        }))
    }

    fn ipfix_record(
        &mut self,
        f: &SimFlow,
        day: i64,
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        bytes: u64,
        pkts: u64,
    ) -> io::Result<Option<Position>> {
        if self.ipfix_n == IPFIX_PER_PACKET || (self.ipfix_n > 0 && day != self.ipfix_day) {
            self.flush_ipfix()?;
        }
        self.ipfix_day = day;
        if self.stream.is_none() && day != self.day {
            self.close_day()?;
            self.day = day;
        }
        if self.ipfix_n == 0 {
            self.ipfix.clear();
            self.ipfix.extend_from_slice(&[0, 10, 0, 0, 0, 0, 0, 0]);
            self.ipfix.extend_from_slice(&self.ipfix_seq.to_be_bytes());
            self.ipfix.extend_from_slice(&1u32.to_be_bytes());
            self.ipfix.extend_from_slice(&2u16.to_be_bytes());
            self.ipfix
                .extend_from_slice(&(8 + 4 * IPFIX_FIELDS.len() as u16).to_be_bytes());
            self.ipfix.extend_from_slice(&256u16.to_be_bytes());
            self.ipfix
                .extend_from_slice(&(IPFIX_FIELDS.len() as u16).to_be_bytes());
            for (ie, l) in IPFIX_FIELDS {
                self.ipfix.extend_from_slice(&ie.to_be_bytes());
                self.ipfix.extend_from_slice(&l.to_be_bytes());
            }
            self.ipfix.extend_from_slice(&256u16.to_be_bytes());
            self.ipfix.extend_from_slice(&[0, 0]);
        }
        let m = &mut self.ipfix;
        m.extend_from_slice(&src.octets());
        m.extend_from_slice(&dst.octets());
        m.extend_from_slice(&f.sport.to_be_bytes());
        m.extend_from_slice(&f.dport.to_be_bytes());
        m.push(f.proto);
        m.extend_from_slice(&bytes.to_be_bytes());
        m.extend_from_slice(&pkts.to_be_bytes());
        m.extend_from_slice(&(f.time_ms as u64).to_be_bytes());
        m.extend_from_slice(&((f.time_ms + f.dur_ms) as u64).to_be_bytes());
        self.ipfix_n += 1;
        self.ipfix_last_ms = self.ipfix_last_ms.max(f.time_ms + f.dur_ms);
        Ok(Some(if self.stream.is_some() {
            // A stream numbers its records from its start (as the reader does).
            Position {
                format: Fmt::Netflow,
                file: "-".to_string(),
                line: self.ipfix_streamed + self.ipfix_n as u64,
            }
        } else {
            Position {
                format: Fmt::Netflow,
                file: ipfix_name(self.ipfix_files + 1),
                line: self.ipfix_n as u64,
            }
        }))
    }

    fn flush_ipfix(&mut self) -> io::Result<()> {
        if self.ipfix_n == 0 {
            return Ok(());
        }
        let len = self.ipfix.len() as u16;
        self.ipfix[2..4].copy_from_slice(&len.to_be_bytes());
        let export = (self.ipfix_last_ms / 1000 + 1) as u32;
        self.ipfix[4..8].copy_from_slice(&export.to_be_bytes());
        let set_start = 16 + 8 + 4 * IPFIX_FIELDS.len();
        let set_len = (self.ipfix.len() - set_start) as u16;
        self.ipfix[set_start + 2..set_start + 4].copy_from_slice(&set_len.to_be_bytes());
        self.ipfix_files += 1;
        let rel = ipfix_name(self.ipfix_files);
        if self.stream == Some(Fmt::Netflow) {
            if self.ipfix_out.is_none()
                && let Some(w) = self.stream_out.take()
            {
                self.ipfix_out = Some(BufWriter::with_capacity(1 << 18, w));
            }
            if let Some(w) = &mut self.ipfix_out {
                w.write_all(&self.ipfix)?;
            }
            self.ipfix_streamed += self.ipfix_n as u64;
        } else if let Some(d) = &self.dir
            && self.stream.is_none()
        {
            let p = d.join(&rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, &self.ipfix)?;
            self.written.push((Fmt::Netflow, rel, self.ipfix_n as u64));
        }
        self.ipfix_seq = self.ipfix_seq.wrapping_add(self.ipfix_n as u32);
        self.ipfix_n = 0;
        Ok(())
    }

    /// Writes the pending Hubble events before `ns` (all with `i64::MAX`).
    fn flush_hubble(&mut self, ns: i64, day: i64) -> io::Result<()> {
        while self
            .hubble_pending
            .peek()
            .is_some_and(|Reverse((t, _, _))| *t < ns)
        {
            let Some(Reverse((_, _, line))) = self.hubble_pending.pop() else {
                break;
            };
            // The file open now (a connection that ends after midnight ends in its first
            // day's file).
            let d = if self.day < 0 || self.stream.is_some() {
                day
            } else {
                self.day
            };
            let lf = self.file(Fmt::Hubble, d)?;
            lf.w.write_all(line.as_bytes())?;
            lf.line += 1;
            self.hubble_events += 1;
        }
        Ok(())
    }

    /// Writes a pod-to-pod connection as `hubble observe` shows it: an event per packet that
    /// changes the connection's state (SYN, SYN-ACK, FIN each way; RST for a refused one) at
    /// each observation point on its way (the client node's `TO_STACK` when the pods are on
    /// different nodes, the receiving pod's `TO_ENDPOINT`), replies with `is_reply: true`; a
    /// connection denied by policy is a `DROPPED` event (`POLICY_DENIED`) at the client's
    /// egress, and again for the retransmitted SYN a second later. The first event is written
    /// now (its line is returned), the others when their time comes.
    fn hubble(
        &mut self,
        f: &SimFlow,
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
    ) -> io::Result<Position> {
        let bank = self.bank;
        let (End::Pod(spi), End::Pod(dpi)) = (f.src, f.dst) else {
            unreachable!("Hubble flows are pod to pod")
        };
        let (sp, dp) = (&bank.pods[spi], &bank.pods[dpi]);
        let tcp = f.proto == 6;
        let t0 = f.time_ms * 1_000_000;
        // Deterministic sub-millisecond latencies: one-way 20–80 µs inside a node, plus
        // 60–180 µs across nodes.
        let h = (f.time_ms as u64 ^ u64::from(f.sport) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let cross = sp.node != dp.node;
        let hop = 20_000
            + (h >> 40) as i64 % 60_000
            + if cross {
                60_000 + (h >> 20) as i64 % 120_000
            } else {
                0
            };
        let end = t0 + f.dur_ms.max(1) * 1_000_000;
        use Point::*;
        // (time, reply, observed at the server's node, point, TCP flags)
        let mut evs: Vec<(i64, bool, bool, Point, u8)> = Vec::with_capacity(8);
        let packet = |evs: &mut Vec<_>, t: i64, reply: bool, flags: u8| {
            // A packet leaves its sender's node (TO_STACK) and reaches the other pod
            // (TO_ENDPOINT); on one node only the delivery is seen.
            let sender_is_server = reply;
            if cross {
                evs.push((t, reply, sender_is_server, ToStack, flags));
            }
            evs.push((t + hop, reply, !sender_is_server, ToEndpoint, flags));
        };
        match f.outcome {
            Outcome::Dropped => {
                evs.push((t0, false, false, Drop, SYN));
                if tcp {
                    evs.push((t0 + 1_000_000_000, false, false, Drop, SYN));
                }
            }
            Outcome::Rejected => {
                packet(&mut evs, t0, false, SYN);
                if tcp {
                    packet(&mut evs, t0 + 2 * hop, true, RST | ACK);
                }
            }
            Outcome::Ok if tcp => {
                packet(&mut evs, t0, false, SYN);
                packet(&mut evs, t0 + 2 * hop, true, SYN | ACK);
                packet(&mut evs, end.max(t0 + 4 * hop), false, FIN | ACK);
                packet(&mut evs, end.max(t0 + 4 * hop) + 2 * hop, true, FIN | ACK);
            }
            Outcome::Ok => {
                packet(&mut evs, t0, false, 0);
                if f.bytes_in > 0 {
                    packet(&mut evs, end.max(t0 + 2 * hop), true, 0);
                }
            }
        }
        let mut pos = None;
        for (i, (t, reply, at_server, point, flags)) in evs.into_iter().enumerate() {
            let line = self.hubble_line(f, sp, dp, src, dst, t, reply, at_server, point, flags);
            if i == 0 {
                let lf = self.files[Fmt::Hubble as usize]
                    .as_mut()
                    .expect("opened by the caller");
                lf.w.write_all(line.as_bytes())?;
                lf.line += 1;
                self.hubble_events += 1;
                pos.get_or_insert(Position {
                    format: Fmt::Hubble,
                    file: lf.rel.clone(),
                    line: lf.line,
                });
            } else {
                self.hubble_seq += 1;
                self.hubble_pending
                    .push(Reverse((t, self.hubble_seq, line)));
            }
        }
        Ok(pos.expect("a connection has a first event"))
    }

    /// One Hubble event as a `GetFlowsResponse` JSON line.
    #[allow(clippy::too_many_arguments)]
    fn hubble_line(
        &self,
        f: &SimFlow,
        sp: &crate::model::Pod,
        dp: &crate::model::Pod,
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        t: i64,
        reply: bool,
        at_server: bool,
        point: Point,
        flags: u8,
    ) -> String {
        let bank = self.bank;
        let node = if at_server { &dp.node } else { &sp.node };
        // The endpoint ID is only known on the endpoint's own node.
        let ep = |p: &crate::model::Pod| {
            let id = if &p.node == node {
                format!(
                    "\"ID\":{},",
                    100 + (p.ip.octets()[3] as u32 | (p.ip.octets()[2] as u32) << 8) % 3_900
                )
            } else {
                String::new()
            };
            format!("{{{id}{}{}\"}}", self.hubble_ep[p.workload], p.name)
        };
        let (a, ap, aip, b, bp, bip) = if reply {
            (dp, f.dport, dst, sp, f.sport, src)
        } else {
            (sp, f.sport, src, dp, f.dport, dst)
        };
        let time = crate::time::rfc3339_ns(t);
        let tcp = f.proto == 6;
        let l4 = if tcp { "TCP" } else { "UDP" };
        let (flag_json, summary) = if tcp {
            // flow.proto's field order in the object, Hubble's order in the summary.
            let mut j = Vec::new();
            for (bit, name) in [(FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (ACK, "ACK")] {
                if flags & bit != 0 {
                    j.push(format!("\"{name}\":true"));
                }
            }
            let mut sm = Vec::new();
            for (bit, name) in [(SYN, "SYN"), (ACK, "ACK"), (FIN, "FIN"), (RST, "RST")] {
                if flags & bit != 0 {
                    sm.push(name);
                }
            }
            (
                format!(",\"flags\":{{{}}}", j.join(",")),
                format!("TCP Flags: {}", sm.join(", ")),
            )
        } else {
            (String::new(), "UDP".to_string())
        };
        // Calls to a Service's port: Hubble names the Service on the request's events (the
        // address is already the backend pod's, after socket-level load balancing).
        let dw = &bank.workloads[dp.workload];
        let service = if !reply
            && f.outcome == Outcome::Ok
            && f.scenario.is_none()
            && dw.ports.iter().any(|p| p.1 == f.dport)
        {
            format!(
                ",\"destination_service\":{{\"name\":\"{}\",\"namespace\":\"{}\"}}",
                dw.name, dw.segment
            )
        } else {
            String::new()
        };
        let (verdict, drop, event, obs) = match point {
            Point::Drop => (
                "DROPPED",
                ",\"drop_reason\":133",
                "{\"type\":1,\"sub_type\":133}",
                "",
            ),
            Point::ToStack => (
                "FORWARDED",
                "",
                "{\"type\":4,\"sub_type\":3}",
                ",\"trace_observation_point\":\"TO_STACK\"",
            ),
            Point::ToEndpoint => (
                "FORWARDED",
                "",
                "{\"type\":4}",
                ",\"trace_observation_point\":\"TO_ENDPOINT\"",
            ),
        };
        let drop_desc = if point == Point::Drop {
            ",\"drop_reason_desc\":\"POLICY_DENIED\""
        } else {
            ""
        };
        // The connection's direction as the observing pod sees it.
        let direction = if at_server { "INGRESS" } else { "EGRESS" };
        format!(
            "{{\"flow\":{{\"time\":\"{time}\",\"verdict\":\"{verdict}\"{drop},\"IP\":{{\"source\":\"{aip}\",\"destination\":\"{bip}\",\"ipVersion\":\"IPv4\"}},\"l4\":{{\"{l4}\":{{\"source_port\":{ap},\"destination_port\":{bp}{flag_json}}}}},\"source\":{},\"destination\":{},\"Type\":\"L3_L4\",\"node_name\":\"{node}\",\"event_type\":{event},\"traffic_direction\":\"{direction}\"{obs}{drop_desc}{service},\"is_reply\":{reply},\"Summary\":\"{summary}\"}},\"node_name\":\"{node}\",\"time\":\"{time}\"}}\n",
            ep(a),
            ep(b),
        )
    }

    /// Flushes and closes everything.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.hubble_pending.is_empty() {
            let day = self.day.max(0);
            self.flush_hubble(i64::MAX, day)?;
        }
        self.flush_ipfix()?;
        if let Some(w) = &mut self.ipfix_out {
            w.flush()?;
        }
        self.close_day()
    }
}

/// Where a Hubble event is seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    /// Leaving the sender's node (`TO_STACK`, trace sub-type 3).
    ToStack,
    /// Delivered to the receiving pod (`TO_ENDPOINT`).
    ToEndpoint,
    /// Dropped by policy at the client's egress.
    Drop,
}

const FIN: u8 = 1;
const SYN: u8 = 2;
const RST: u8 = 4;
const ACK: u8 = 16;

fn ipfix_name(n: u64) -> String {
    format!("flows/netflow/{n:07}.ipfix")
}

/// Packets each way: TCP adds handshake and teardown; failed connections are one or a few SYNs.
fn packets(f: &SimFlow) -> (u64, u64) {
    match (f.outcome, f.proto) {
        (Outcome::Ok, 6) => (f.bytes_out / 1_200 + 3, f.bytes_in / 1_400 + 2),
        (Outcome::Ok, _) if f.bytes_in == 0 => (f.bytes_out / 1_400 + 1, 0),
        (Outcome::Ok, _) => (f.bytes_out / 1_400 + 1, f.bytes_in / 1_400 + 1),
        (Outcome::Rejected, _) => (1, 1),
        (Outcome::Dropped, _) => (2, 0),
    }
}
