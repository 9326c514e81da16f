//! Every flow file of `../shared/testdata/telemetry` parses, with counts taken from the files
//! themselves, spot checks read off the files by hand, and the bad-input paths: malformed
//! lines reported with file:line, truncated gzip and binary files as errors, never panics.

mod common;

use bulkhead_telemetry::{
    Error, Flow, FlowDirection, Format, L7Kind, Options, Report, Verdict, detect_path, parse_path,
};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn parse(path: &Path, format: Format, opts: Options) -> (Vec<Flow>, Report) {
    let mut flows = Vec::new();
    let rep = parse_path(path, format, opts, &mut |f| flows.push(f))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (flows, rep)
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn zeek_renames() -> Options {
    Options {
        zeek_fields: [
            ("id.orig_h", "src"),
            ("id.orig_p", "src_port"),
            ("id.resp_h", "dst"),
            ("id.resp_p", "dst_port"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
        ..Options::default()
    }
}

/// The flow files, as the test data README lists them, with their format.
fn flow_files() -> Vec<(PathBuf, Format)> {
    let mut out = Vec::new();
    for p in common::files_under(&common::testdata()) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let s = p.to_string_lossy();
        if s.contains("/hubble/") && (name.ends_with(".json") || name.ends_with(".jsonl")) {
            out.push((p.clone(), Format::Hubble));
        } else if s.contains("/aws-vpc-flow-logs/") && name.ends_with(".log") {
            out.push((p.clone(), Format::Vpc));
        } else if s.contains("/zeek/") && name.starts_with("conn") && name.ends_with(".log") {
            out.push((p.clone(), Format::Zeek));
        }
    }
    out
}

#[test]
fn every_flow_file_is_detected_and_parses_completely() {
    let files = flow_files();
    assert_eq!(files.len(), 7 + 3 + 7, "7 Hubble, 3 VPC, 7 Zeek flow files");
    for (p, format) in files {
        assert_eq!(detect_path(&p).expect("detect"), format, "{}", p.display());
        let lines = lines_of(&p);
        let opts = if p.to_string_lossy().contains("field-name-map") {
            zeek_renames()
        } else {
            Options::default()
        };
        let (flows, rep) = parse(&p, Format::Auto, opts);
        let name = p.display();
        match format {
            Format::Hubble => {
                let n = lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
                assert_eq!((rep.read, rep.parsed), (n, n), "{name}: {rep}");
            }
            Format::Vpc => {
                let records = lines
                    .iter()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .count() as u64;
                let no_data = lines
                    .iter()
                    .filter(|l| l.ends_with(" NODATA") || l.ends_with(" SKIPDATA"))
                    .count() as u64;
                assert_eq!(rep.read, records, "{name}: {rep}");
                assert_eq!(rep.parsed, records - no_data, "{name}: {rep}");
                assert_eq!(rep.skipped_total(), no_data, "{name}: {rep}");
            }
            Format::Zeek => {
                let rows = lines.iter().filter(|l| !l.starts_with('#')).count() as u64;
                assert_eq!((rep.read, rep.parsed), (rows, rows), "{name}: {rep}");
            }
            _ => unreachable!(),
        }
        assert_eq!(flows.len() as u64, rep.parsed, "{name}");
    }
}

#[test]
fn hubble_fields_read_off_the_files() {
    let d = common::testdata().join("hubble");
    let (flows, _) = parse(
        &d.join("hubble-otel_basic-sample-10-flows.json"),
        Format::Hubble,
        Options::default(),
    );
    // Line 1: 10.0.2.16:15020 -> 10.0.2.1:42044 TCP, FORWARDED, INGRESS, "reply":true.
    let f = &flows[0];
    assert_eq!((f.src, f.dst), (ip("10.0.2.16"), ip("10.0.2.1")));
    assert_eq!((f.src_port, f.dst_port, f.protocol), (15020, 42044, 6));
    assert_eq!(f.verdict, Some(Verdict::Forwarded));
    assert_eq!(f.direction, Some(FlowDirection::Ingress));
    assert_eq!(f.is_reply, Some(true));
    assert_eq!(f.l7, None);
    assert_eq!(f.time, Some(1_623_862_333_136_834_446)); // 2021-06-16T16:52:13.136834446Z
    assert_eq!(f.origin.record, 1);
    let id = f.identity.as_ref().expect("identity");
    assert_eq!(id.src.identity, Some(25339));
    assert_eq!(id.src.namespace.as_deref(), Some("bookinfo"));
    assert_eq!(id.src.pod.as_deref(), Some("reviews-v1-545db77b95-s6jb8"));
    assert_eq!(id.src.labels.len(), 7);
    assert_eq!(&*id.src.labels[0], "k8s:app=reviews");
    assert_eq!(id.dst.identity, Some(1));
    assert_eq!(
        id.dst.labels.iter().map(|l| &**l).collect::<Vec<_>>(),
        ["reserved:host"]
    );
    // Line 2 has the same workload on the other side: its label set is interned, shared.
    let id2 = flows[1].identity.as_ref().expect("identity");
    assert!(std::sync::Arc::ptr_eq(&id.src.labels, &id2.dst.labels));

    let (flows, _) = parse(
        &d.join("cilium-docs_export-rst_dropped-flows.jsonl"),
        Format::Hubble,
        Options::default(),
    );
    // Line 1: IPv6 ICMPv6 type 133 (router solicitation), DROPPED INVALID_SOURCE_IP.
    assert_eq!(
        (flows[0].src, flows[0].dst),
        (ip("fe80::64d8:8aff:fe72:fc14"), ip("ff02::2"))
    );
    assert_eq!(flows[0].protocol, 58);
    assert_eq!(flows[0].icmp_type_code(), Some((133, 0)));
    assert_eq!(flows[0].verdict, Some(Verdict::Dropped));
    assert_eq!(flows[0].drop_reason.as_deref(), Some("INVALID_SOURCE_IP"));
    assert!(flows[0].identity.is_none(), "empty source and destination");
    // Line 2: xwing -> deathstar TCP 80, POLICY_DENIED.
    assert_eq!((flows[1].src_port, flows[1].dst_port), (44916, 80));
    assert_eq!(flows[1].drop_reason.as_deref(), Some("POLICY_DENIED"));
    let id = flows[1].identity.as_ref().expect("identity");
    assert_eq!(id.src.pod.as_deref(), Some("xwing"));
    assert_eq!(id.dst.pod.as_deref(), Some("deathstar-7848d6c4d5-th9v2"));

    // L7: DNS request and response keep the L4 pair (TCP 59102 <-> 53).
    let (flows, _) = parse(
        &d.join("hubble-otel_basic-sample-5-dns-flows.json"),
        Format::Hubble,
        Options::default(),
    );
    assert!(flows.iter().all(|f| f.l7 == Some(L7Kind::Dns)));
    assert_eq!((flows[0].src_port, flows[0].dst_port), (59102, 53));
    assert_eq!(
        (flows[0].is_reply, flows[1].is_reply),
        (Some(false), Some(true))
    );
    assert_eq!(flows[0].direction, Some(FlowDirection::Egress));
    let (flows, _) = parse(
        &d.join("hubble-otel_basic-sample-5-http-flows.json"),
        Format::Hubble,
        Options::default(),
    );
    assert_eq!(flows[0].l7, Some(L7Kind::Http));
    assert_eq!((flows[0].dst, flows[0].dst_port), (ip("10.128.0.4"), 9990));

    // ICMPv4 echo request: type 8.
    let (flows, _) = parse(
        &d.join("hubble-otel_basic-sample-400-icmpv4-flows.json"),
        Format::Hubble,
        Options::default(),
    );
    assert_eq!(flows.len(), 18);
    assert_eq!(
        (flows[0].protocol, flows[0].icmp_type_code()),
        (1, Some((8, 0)))
    );
}

#[test]
fn vpc_fields_read_off_the_files() {
    let d = common::testdata().join("aws-vpc-flow-logs");
    let (flows, rep) = parse(
        &d.join("awsdocs_default-v2.log"),
        Format::Vpc,
        Options::default(),
    );
    // Line 3: 172.31.9.69:49761 -> 172.31.9.12:3389 TCP, 20 packets, 4249 bytes, REJECT.
    let f = &flows[1];
    assert_eq!(
        (f.src, f.dst, f.src_port, f.dst_port),
        (ip("172.31.9.69"), ip("172.31.9.12"), 49761, 3389)
    );
    assert_eq!((f.protocol, f.packets, f.bytes), (6, 20, 4249));
    assert_eq!(f.verdict, Some(Verdict::Rejected));
    assert_eq!(
        (f.time, f.end_time),
        (
            Some(1_418_530_010_000_000_000),
            Some(1_418_530_070_000_000_000)
        )
    );
    assert_eq!(f.origin.record, 3);
    // ICMP (protocol 1) and IPv6 records.
    assert_eq!((flows[2].protocol, flows[2].bytes), (1, 336));
    assert_eq!(flows[4].src, ip("2001:db8:1234:a100:8d6e:3477:df66:f105"));
    // NODATA line 4, SKIPDATA line 5.
    let nodata = rep
        .skipped
        .iter()
        .find(|(k, _)| k.contains("NODATA"))
        .expect("NODATA")
        .1;
    assert!(
        nodata.examples[0].ends_with("awsdocs_default-v2.log:4: log-status NODATA"),
        "{:?}",
        nodata.examples
    );

    let (flows, _) = parse(
        &d.join("awsdocs_custom-v3-tcp-flags.log"),
        Format::Vpc,
        Options::default(),
    );
    // Line 9, whose fields are separated once by two spaces.
    let f = &flows[7];
    assert_eq!(
        (f.src, f.src_port, f.dst_port, f.bytes, f.packets),
        (ip("10.0.0.62"), 5001, 43638, 967, 14)
    );
    assert_eq!(f.origin.record, 9);

    let (flows, rep) = parse(
        &d.join("awsdocs_custom-v3-transit-gateway-vpc.log"),
        Format::Vpc,
        Options::default(),
    );
    // No bytes, packets, start or end in this format; pkt-srcaddr differs on lines 4 and 5.
    assert_eq!(flows.len(), 4);
    assert!(
        flows
            .iter()
            .all(|f| f.bytes == 0 && f.packets == 0 && f.time.is_none())
    );
    assert_eq!((flows[2].src, flows[2].dst_port), (ip("10.40.1.175"), 80));
    assert_eq!(rep.notes.values().sum::<u64>(), 2, "{rep}");
}

#[test]
fn zeek_fields_read_off_the_files() {
    let d = common::testdata().join("zeek/testing/btest/Baseline");
    let (flows, rep) = parse(
        &d.join("core.history-flip/conn.log"),
        Format::Zeek,
        Options::default(),
    );
    let f = &flows[0];
    assert_eq!(
        (f.src, f.src_port, f.dst, f.dst_port, f.protocol),
        (ip("141.42.64.125"), 56730, ip("125.190.109.199"), 80, 6)
    );
    assert_eq!((f.bytes, f.packets), (98 + 9417, 11 + 10));
    assert_eq!(f.time, None, "ts is masked");
    assert_eq!(rep.notes.values().sum::<u64>(), 1);

    let (flows, _) = parse(
        &d.join("core.tunnels.geneve/conn.log"),
        Format::Zeek,
        Options::default(),
    );
    // 30.0.0.1 8 -> 30.0.0.2 0 icmp: echo request, type 8 code 0.
    assert_eq!(
        (
            flows[2].protocol,
            flows[2].icmp_type_code(),
            flows[2].src_port
        ),
        (1, Some((8, 0)), 0)
    );
    let (flows, _) = parse(
        &d.join("core.tunnels.vxlan/conn.log"),
        Format::Zeek,
        Options::default(),
    );
    // Third row: duration and byte counts unset (-), 1 + 0 packets.
    assert_eq!(
        (flows[2].bytes, flows[2].packets, flows[2].dst_port),
        (0, 1, 4789)
    );
    let (flows, _) = parse(
        &d.join("scripts.base.protocols.ftp.ftp-ipv6/conn.log"),
        Format::Zeek,
        Options::default(),
    );
    assert_eq!(flows[0].dst, ip("2001:470:4867:99::21"));

    // Renamed columns: without the map every row is skipped with a hint, with it they parse.
    let p = d.join("scripts.base.frameworks.logging.field-name-map/conn.log");
    let (flows, rep) = parse(&p, Format::Zeek, Options::default());
    assert!(flows.is_empty());
    let (reason, s) = rep.skipped.iter().next().expect("skipped");
    assert!(reason.contains("#fields"), "{reason}");
    assert!(
        s.examples[0].contains("--zeek-field id.orig_h=NAME"),
        "{:?}",
        s.examples
    );
    let (flows, _) = parse(&p, Format::Zeek, zeek_renames());
    assert_eq!(
        (flows[0].src, flows[0].src_port, flows[0].dst_port),
        (ip("173.192.163.128"), 80, 6705)
    );
}

fn temp_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write temp file");
    p
}

#[test]
fn zeek_json_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = temp_file(
        dir.path(),
        "conn.json",
        br#"{"ts":1700000000.25,"uid":"C1","id.orig_h":"10.1.2.3","id.orig_p":40000,"id.resp_h":"10.9.8.7","id.resp_p":5432,"proto":"tcp","duration":1.5,"orig_bytes":100,"resp_bytes":2000,"orig_pkts":3,"resp_pkts":4}
{"ts":"2023-11-14T22:13:20.000000Z","uid":"C2","id.orig_h":"10.1.2.3","id.orig_p":53000,"id.resp_h":"10.0.0.53","id.resp_p":53,"proto":"udp"}
{"ts":1700000000,"uid":"C3","id.orig_h":"not-an-ip","id.orig_p":1,"id.resp_h":"10.0.0.1","id.resp_p":2,"proto":"tcp"}
"#,
    );
    assert_eq!(detect_path(&p).expect("detect"), Format::Zeek);
    let (flows, rep) = parse(&p, Format::Auto, Options::default());
    assert_eq!(
        (rep.read, rep.parsed, rep.skipped_total()),
        (3, 2, 1),
        "{rep}"
    );
    assert_eq!(flows[0].time, Some(1_700_000_000_250_000_000));
    assert_eq!(flows[0].end_time, Some(1_700_000_001_750_000_000));
    assert_eq!(
        (flows[0].bytes, flows[0].packets, flows[0].dst_port),
        (2100, 7, 5432)
    );
    assert_eq!(
        (flows[1].protocol, flows[1].time),
        (17, Some(1_700_000_000_000_000_000))
    );
    let ex = &rep.skipped.values().next().expect("skip").examples[0];
    assert!(ex.contains("conn.json:3:"), "{ex}");
}

#[test]
fn malformed_lines_are_counted_and_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vpc = temp_file(
        dir.path(),
        "bad-vpc.log",
        b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 3 4 5 6 ACCEPT OK\n\
2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 3 4 5 ACCEPT OK\n\
2 1 eni-1 10.0.0.1 10.0.0.2 1 99999 6 3 4 5 6 ACCEPT OK\n\
\n\
2 1 eni-1 10.0.0.999 10.0.0.2 1 2 6 3 4 5 6 ACCEPT OK\n",
    );
    let (flows, rep) = parse(&vpc, Format::Vpc, Options::default());
    assert_eq!(
        (rep.read, rep.parsed, rep.skipped_total(), flows.len()),
        (4, 1, 3, 1),
        "{rep}"
    );
    let examples: Vec<&String> = rep.skipped.values().flat_map(|s| &s.examples).collect();
    for line in [3, 4, 6] {
        let want = format!("bad-vpc.log:{line}:");
        assert!(
            examples.iter().any(|e| e.contains(&want)),
            "{want} in {examples:?}"
        );
    }
    let hubble = temp_file(
        dir.path(),
        "bad.json",
        b"{\"flow\":{\"IP\":{\"source\":\"10.0.0.1\",\"destination\":\"10.0.0.2\"}}}\n{not json\n{\"flow\":{\"IP\":{\"source\":\"x\"}}}\n{\"node_status\":{}}\n[1,2]\n",
    );
    let (flows, rep) = parse(&hubble, Format::Hubble, Options::default());
    assert_eq!(
        (rep.read, flows.len(), rep.skipped_total()),
        (5, 1, 4),
        "{rep}"
    );
    let text = rep.to_string();
    assert!(
        text.contains("bad.json:2:") && text.contains("bad.json:5:"),
        "{text}"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn invalid_utf8_after_the_first_lines_is_a_counted_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = Vec::new();
    for _ in 0..9 {
        content.extend_from_slice(b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 3 4 5 6 ACCEPT OK\n");
    }
    content.extend_from_slice(b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 3 4 5 6 ACCEPT \xff\xfe\n");
    let p = temp_file(dir.path(), "latin1.log", &content);
    let (flows, rep) = parse(&p, Format::Vpc, Options::default());
    assert_eq!(
        (rep.read, flows.len() as u64, rep.skipped_total()),
        (10, 9, 1),
        "{rep}"
    );
    assert!(
        rep.to_string()
            .contains("latin1.log:10: the line is not valid UTF-8"),
        "{rep}"
    );
}

#[test]
fn gzip_files_parse_and_truncated_gzip_is_a_clear_error() {
    let src = common::testdata().join("aws-vpc-flow-logs/awsdocs_default-v2.log");
    let text = std::fs::read(&src).expect("read");
    // Many copies of the records after one header, so the stream spans several blocks.
    let mut big = text.clone();
    let body: Vec<u8> = text
        .splitn(2, |&b| b == b'\n')
        .nth(1)
        .expect("body")
        .to_vec();
    for _ in 0..2000 {
        big.extend_from_slice(&body);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let gz = gzip(&big);
    let whole = temp_file(dir.path(), "v2.log.gz", &gz);
    let (flows, rep) = parse(&whole, Format::Auto, Options::default());
    assert_eq!(rep.read, 7 * 2001);
    assert_eq!(flows.len(), 5 * 2001);

    let cut = temp_file(dir.path(), "cut.log.gz", &gz[..gz.len() / 2]);
    let mut n = 0;
    let err = parse_path(&cut, Format::Auto, Options::default(), &mut |_| n += 1)
        .expect_err("truncated gzip must fail");
    match &err {
        Error::Gzip {
            path,
            last_good_line,
            ..
        } => {
            assert_eq!(path, &cut);
            assert!(*last_good_line > 0 && n > 0, "{err}");
        }
        e => panic!("want a gzip error, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("cut.log.gz") && msg.contains("truncated or corrupt after line"),
        "{msg}"
    );
}

#[test]
fn binary_input_is_a_clear_error() {
    let payload =
        std::fs::read(common::testdata().join("netflow-ipfix/payloads/ipfix.dat")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = temp_file(dir.path(), "flows.log", &payload);
    for format in [Format::Vpc, Format::Zeek, Format::Hubble] {
        let err = parse_path(&p, format, Options::default(), &mut |_| {}).expect_err("binary");
        assert!(matches!(err, Error::Binary { .. }), "{format}: {err}");
        assert!(
            err.to_string().contains("flows.log") && err.to_string().contains("binary"),
            "{err}"
        );
    }
    // Detected as what it is.
    assert_eq!(detect_path(&p).expect("detect"), Format::Netflow);
    let p = temp_file(dir.path(), "empty.log", b"");
    assert!(matches!(detect_path(&p), Err(Error::UnknownFormat { .. })));
}

#[test]
fn netflow_files_through_the_file_api() {
    let d = common::testdata().join("netflow-ipfix/payloads");
    let mut p = bulkhead_telemetry::Parser::new(Options::default());
    let mut flows = Vec::new();
    for f in [
        "ipfix_test_openbsd_pflow_tpl.dat",
        "ipfix_test_openbsd_pflow_data.dat",
    ] {
        p.parse_path(&d.join(f), Format::Auto, &mut |x| flows.push(x))
            .expect("parse");
    }
    let rep = p.finish();
    // cases.json: 26 records; event 25 is 192.168.0.1 -> 192.168.0.17:64026, 6425 octets.
    assert_eq!(flows.len(), 26, "{rep}");
    let f = &flows[25];
    assert_eq!(
        (f.src, f.dst, f.dst_port, f.bytes),
        (ip("192.168.0.1"), ip("192.168.0.17"), 64026, 6425)
    );
    assert_eq!(f.origin.source, 1, "the data file");
}
