//! Property tests: no parser panics, whatever the input; what it reads is either a flow or a
//! counted skip.

mod common;

use bulkhead_telemetry::netflow::Decoder;
use bulkhead_telemetry::{Format, Options, Report, parse_reader};
use proptest::prelude::*;
use std::io::Cursor;
use std::net::SocketAddr;

fn run(format: Format, bytes: &[u8]) -> Option<Report> {
    let mut n = 0u64;
    let r = parse_reader(
        Cursor::new(bytes),
        "fuzz",
        format,
        Options::default(),
        &mut |_| n += 1,
    );
    // An error (binary input, undetectable format) is fine; a panic is not. Every record read
    // is parsed or skipped at most once.
    // (NetFlow skips count malformed packets, not records, so only line formats are held to
    // the second invariant.)
    r.ok().inspect(|rep| {
        assert_eq!(rep.parsed, n);
        if matches!(format, Format::Hubble | Format::Vpc | Format::Zeek) {
            assert!(rep.parsed + rep.skipped_total() <= rep.read, "{rep}");
        }
    })
}

/// Real lines to mutate: one of each line format.
fn seeds() -> Vec<(Format, Vec<u8>)> {
    let d = common::testdata();
    let first = |p: &str| -> Vec<u8> {
        let t = std::fs::read_to_string(d.join(p)).expect("seed file");
        t.lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    vec![
        (
            Format::Hubble,
            first("hubble/hubble-otel_basic-sample-10-flows.json"),
        ),
        (
            Format::Vpc,
            first("aws-vpc-flow-logs/awsdocs_default-v2.log"),
        ),
        (
            Format::Zeek,
            first("zeek/testing/btest/Baseline/core.tunnels.geneve/conn.log"),
        ),
    ]
}

fn payloads() -> Vec<Vec<u8>> {
    let d = common::testdata().join("netflow-ipfix/payloads");
    [
        "ipfix_test_mikrotik_tpl.dat",
        "ipfix_test_mikrotik_data258.dat",
        "netflow9_test_cisco_asa_2_tpl_26x.dat",
        "netflow9_test_cisco_asa_2_data.dat",
        "netflow5.dat",
        "ipfix_test_netscaler_tpl.dat",
    ]
    .iter()
    .map(|f| std::fs::read(d.join(f)).expect("payload"))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn line_parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for f in [Format::Auto, Format::Hubble, Format::Vpc, Format::Zeek, Format::Netflow] {
            run(f, &bytes);
        }
    }

    #[test]
    fn line_parsers_never_panic_on_arbitrary_text(s in "[ -~\t\n{}\":,.#-]{0,600}") {
        for f in [Format::Hubble, Format::Vpc, Format::Zeek] {
            if let Some(rep) = run(f, s.as_bytes()) {
                prop_assert!(rep.parsed + rep.skipped_total() <= rep.read);
            }
        }
    }

    #[test]
    fn line_parsers_never_panic_on_mutated_real_lines(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let (format, mut bytes) = seeds().swap_remove(which);
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        run(format, &bytes);
    }

    #[test]
    fn netflow_decoder_never_panics_on_arbitrary_or_mutated_payloads(
        raw in proptest::collection::vec(any::<u8>(), 0..1500),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in any::<prop::sample::Index>(),
    ) {
        let exporter: SocketAddr = "192.0.2.9:2055".parse().expect("addr");
        let mut d = Decoder::new();
        let mut rep = Report::default();
        let mut n = 0u64;
        d.decode_stream(exporter, &raw, 0, &mut rep, &mut |_| n += 1);
        // Real templates then data, mutated: exercises template and record decoding paths.
        for mut p in payloads() {
            for (i, b) in &edits {
                let i = i.index(p.len());
                p[i] = *b;
            }
            p.truncate(cut.index(p.len() + 1).max(p.len() / 2));
            d.decode_payload(exporter, &p, 0, &mut rep, &mut |_| n += 1);
            d.decode_stream(exporter, &p, 0, &mut rep, &mut |_| n += 1);
        }
        prop_assert!(rep.read >= rep.parsed);
    }
}
