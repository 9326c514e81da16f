//! Benchmark inputs and measurements: realistic synthetic files of each format, parse
//! throughput on one thread, and `netflow_parser` as the reference NetFlow/IPFIX decoder.

use crate::{Format, Options, Parser};
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const NAMESPACES: [&str; 8] = [
    "payments",
    "cards",
    "accounts",
    "fraud",
    "identity",
    "messaging",
    "core-ledger",
    "shared-infra",
];
const PORTS: [u16; 8] = [8443, 9090, 5432, 6379, 9092, 1521, 53, 443];

fn pod_ip(w: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, (w >> 8) as u8 & 0x0f, w as u8, 10 + (w % 7) as u8)
}

/// Writes `records` records of `format` to `path`: Hubble GetFlowsResponse lines shaped like
/// real `hubble observe -o json` output (~1 KB, 200 workloads with labels); VPC default-v2
/// lines with a header; a Zeek conn.log with its header; IPFIX messages of 28 records (with a
/// template set every 100 messages) back to back.
pub fn generate(format: Format, records: u64, path: &Path) -> io::Result<()> {
    generate_with(format, records, path, 0)
}

/// [`generate`] with a traffic shape for VPC and IPFIX: with `peers` > 0 each client address
/// sends only to `peers` servers of its own (a service calling its dependencies, so flows
/// fold into far fewer edges than flows); with 0, to any of the 5,000 addresses at random
/// (almost every flow its own edge: the worst case for aggregation).
pub fn generate_with(format: Format, records: u64, path: &Path, peers: u64) -> io::Result<()> {
    let mut rng = Rng(7);
    let pair = move |rng: &mut Rng| {
        let a = rng.below(5000);
        let b = if peers == 0 {
            rng.below(5000)
        } else {
            (a * 7919 + rng.below(peers) * 104_729 + 1) % 5000
        };
        (a, b)
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let t0: i64 = 1_764_201_600; // 2025-11-27T00:00:00Z
    match format {
        Format::Hubble | Format::Auto => {
            for i in 0..records {
                let (a, b) = (rng.below(200), rng.below(200));
                let (na, nb) = (NAMESPACES[(a % 8) as usize], NAMESPACES[(b % 8) as usize]);
                let port = PORTS[(b % 8) as usize];
                let sport = 32768 + rng.below(28000);
                let secs = t0 + (i / 1000) as i64;
                let nanos = (i % 1000) * 1_000_000 + rng.below(999_999);
                let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
                let verdict = if rng.below(100) == 0 {
                    "DROPPED"
                } else {
                    "FORWARDED"
                };
                let ep = |w: u64, ns: &str| {
                    format!(
                        r#"{{"ID":{},"identity":{},"namespace":"{ns}","labels":["k8s:app=svc-{w}","k8s:io.cilium.k8s.namespace.labels.team=team-{}","k8s:io.cilium.k8s.policy.cluster=default","k8s:io.cilium.k8s.policy.serviceaccount=svc-{w}","k8s:io.kubernetes.pod.namespace={ns}","k8s:version=v1"],"pod_name":"svc-{w}-7d9f8b6c5d-{:05x}"}}"#,
                        1000 + w,
                        20000 + w,
                        w % 40,
                        w * 7919 % 0xfffff
                    )
                };
                writeln!(
                    w,
                    r#"{{"flow":{{"time":"2025-11-27T{h:02}:{m:02}:{s:02}.{nanos:09}Z","verdict":"{verdict}","ethernet":{{"source":"46:e5:ea:1f:95:ff","destination":"d6:ec:b0:4a:ff:46"}},"IP":{{"source":"{}","destination":"{}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{sport},"destination_port":{port},"flags":{{"PSH":true,"ACK":true}}}}}},"source":{},"destination":{},"Type":"L3_L4","node_name":"node-{}","event_type":{{"type":4}},"traffic_direction":"EGRESS","trace_observation_point":"TO_STACK","is_reply":false,"Summary":"TCP Flags: ACK, PSH"}},"node_name":"node-{}","time":"2025-11-27T{h:02}:{m:02}:{s:02}.{nanos:09}Z"}}"#,
                    pod_ip(a),
                    pod_ip(b),
                    ep(a, na),
                    ep(b, nb),
                    a % 12,
                    a % 12
                )?;
            }
        }
        Format::Vpc => {
            writeln!(
                w,
                "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
            )?;
            for i in 0..records {
                let (a, b) = pair(&mut rng);
                let start = t0 + (i / 2000) as i64;
                let pk = 1 + rng.below(2000);
                let action = if rng.below(50) == 0 {
                    "REJECT"
                } else {
                    "ACCEPT"
                };
                writeln!(
                    w,
                    "2 123456789010 eni-{:017x} {} {} {} {} 6 {pk} {} {start} {} {action} OK",
                    a,
                    pod_ip(a),
                    pod_ip(b),
                    32768 + rng.below(28000),
                    PORTS[(b % 8) as usize],
                    pk * (60 + rng.below(1400)),
                    start + 60
                )?;
            }
        }
        Format::Zeek => {
            writeln!(
                w,
                "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn"
            )?;
            writeln!(
                w,
                "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents"
            )?;
            writeln!(
                w,
                "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]"
            )?;
            for i in 0..records {
                let (a, b) = (rng.below(5000), rng.below(5000));
                let (ob, rb) = (rng.below(5000), rng.below(50000));
                writeln!(
                    w,
                    "{}.{:06}\tC{:016x}\t{}\t{}\t{}\t{}\ttcp\tssl\t{}.{:06}\t{ob}\t{rb}\tSF\tT\tT\t0\tShADadFf\t{}\t{}\t{}\t{}\t-",
                    t0 + (i / 1000) as i64,
                    rng.below(1_000_000),
                    rng.next(),
                    pod_ip(a),
                    32768 + rng.below(28000),
                    pod_ip(b),
                    PORTS[(b % 8) as usize],
                    rng.below(30),
                    rng.below(1_000_000),
                    ob / 500 + 3,
                    ob + 200,
                    rb / 1400 + 3,
                    rb + 200
                )?;
            }
        }
        Format::Netflow => {
            const PER: u64 = 28;
            // sourceIPv4Address, destinationIPv4Address, ports, protocol, tcpControlBits,
            // octetDeltaCount, packetDeltaCount, flowStart/EndMilliseconds, ingressInterface.
            let fields: [(u16, u16); 11] = [
                (8, 4),
                (12, 4),
                (7, 2),
                (11, 2),
                (4, 1),
                (6, 1),
                (1, 8),
                (2, 8),
                (152, 8),
                (153, 8),
                (10, 4),
            ];
            let rec_len: usize = fields.iter().map(|f| f.1 as usize).sum();
            let mut seq = 0u32;
            let mut left = records;
            let mut msg_no = 0u64;
            while left > 0 {
                let n = left.min(PER);
                let mut m: Vec<u8> = Vec::with_capacity(1500);
                m.extend_from_slice(&[0, 10, 0, 0]);
                m.extend_from_slice(&((t0 + (msg_no / 1000) as i64) as u32).to_be_bytes());
                m.extend_from_slice(&seq.to_be_bytes());
                m.extend_from_slice(&1u32.to_be_bytes());
                if msg_no.is_multiple_of(100) {
                    m.extend_from_slice(&2u16.to_be_bytes());
                    m.extend_from_slice(&(4 + 4 + 4 * fields.len() as u16).to_be_bytes());
                    m.extend_from_slice(&256u16.to_be_bytes());
                    m.extend_from_slice(&(fields.len() as u16).to_be_bytes());
                    for (ie, l) in fields {
                        m.extend_from_slice(&ie.to_be_bytes());
                        m.extend_from_slice(&l.to_be_bytes());
                    }
                }
                m.extend_from_slice(&256u16.to_be_bytes());
                m.extend_from_slice(&((4 + rec_len * n as usize) as u16).to_be_bytes());
                for _ in 0..n {
                    let (a, b) = pair(&mut rng);
                    let pk = 1 + rng.below(2000);
                    let start = (t0 * 1000) as u64 + msg_no;
                    m.extend_from_slice(&pod_ip(a).octets());
                    m.extend_from_slice(&pod_ip(b).octets());
                    m.extend_from_slice(&((32768 + rng.below(28000)) as u16).to_be_bytes());
                    m.extend_from_slice(&PORTS[(b % 8) as usize].to_be_bytes());
                    m.extend_from_slice(&[6, 0x18]);
                    m.extend_from_slice(&(pk * 700).to_be_bytes());
                    m.extend_from_slice(&pk.to_be_bytes());
                    m.extend_from_slice(&start.to_be_bytes());
                    m.extend_from_slice(&(start + 30_000).to_be_bytes());
                    m.extend_from_slice(&((a % 48) as u32).to_be_bytes());
                }
                let len = m.len() as u16;
                m[2..4].copy_from_slice(&len.to_be_bytes());
                w.write_all(&m)?;
                seq = seq.wrapping_add(n as u32);
                left -= n;
                msg_no += 1;
            }
        }
    }
    w.flush()
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct Measure {
    /// Flows produced.
    pub flows: u64,
    /// Records read.
    pub read: u64,
    /// Seconds.
    pub secs: f64,
}

/// Parses `path` on this thread, discarding the flows (but touching them), and times it.
pub fn measure(path: &Path, format: Format) -> Result<Measure, crate::Error> {
    measure_with(path, format, Options::default())
}

/// [`measure`] with parser options (NetFlow files are always read as back-to-back messages).
pub fn measure_with(path: &Path, format: Format, opts: Options) -> Result<Measure, crate::Error> {
    // The generated NetFlow file holds IPFIX messages back to back (RFC 5655 file format).
    let mut p = Parser::new(Options {
        netflow_stream: true,
        ..opts
    });
    let mut sum = 0u64;
    let t = Instant::now();
    p.parse_path(path, format, &mut |f| sum = sum.wrapping_add(f.bytes))?;
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let r = p.finish();
    Ok(Measure {
        flows: r.parsed,
        read: r.read,
        secs,
    })
}

/// Counts the data and options records `netflow_parser` decodes in a stream of payloads from
/// one exporter (IPFIX messages split by length, v5 by count, v9 to the end), and whether it
/// reported an error.
pub fn netflow_parser_records(
    parser: &mut netflow_parser::NetflowParser,
    payload: &[u8],
) -> (u64, Option<String>) {
    use netflow_parser::NetflowPacket;
    use netflow_parser::variable_versions::{ipfix, v9};
    let res = parser.parse_bytes(payload);
    let mut n = 0u64;
    for p in &res.packets {
        match p {
            NetflowPacket::V5(v) => n += v.flowsets.len() as u64,
            NetflowPacket::V9(v) => {
                for fs in &v.flowsets {
                    match &fs.body {
                        v9::FlowSetBody::Data(d) => n += d.fields.len() as u64,
                        v9::FlowSetBody::OptionsData(d) => n += d.fields.len() as u64,
                        _ => {}
                    }
                }
            }
            NetflowPacket::IPFix(v) => {
                for fs in &v.flowsets {
                    match &fs.body {
                        ipfix::FlowSetBody::Data(d) => n += d.fields.len() as u64,
                        ipfix::FlowSetBody::OptionsData(d) => n += d.fields.len() as u64,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (n, res.error.map(|e| e.to_string()))
}
