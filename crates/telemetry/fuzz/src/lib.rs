//! Fuzzing the telemetry parsers. The logic lives here; each target in `fuzz_targets/` hands
//! libFuzzer's bytes to one function. Run with nightly, seeding from the shared test data
//! without copying it (new inputs go to the first, local, corpus directory):
//!
//! ```sh
//! cd crates/telemetry/fuzz
//! cargo +nightly fuzz run lines corpus/lines ../../../../shared/testdata/telemetry/hubble ../../../../shared/testdata/telemetry/aws-vpc-flow-logs
//! cargo +nightly fuzz run netflow corpus/netflow ../../../../shared/testdata/telemetry/netflow-ipfix/payloads
//! ```

use bulkhead_telemetry::netflow::Decoder;
use bulkhead_telemetry::{Format, Options, Report, parse_reader};
use std::net::SocketAddr;

/// Target `lines`: the bytes as the content of a file in each line format and in `Auto`: no
/// panic; every flow handed out is counted as parsed; parsed and skipped never exceed read.
pub fn lines(data: &[u8]) {
    for format in [Format::Auto, Format::Hubble, Format::Vpc, Format::Zeek] {
        let mut n = 0u64;
        if let Ok(rep) = parse_reader(data, "fuzz", format, Options::default(), &mut |_| n += 1) {
            assert_eq!(rep.parsed, n);
            assert!(rep.parsed + rep.skipped_total() <= rep.read, "{rep}");
        }
    }
}

/// Target `netflow`: the bytes as one payload, and as back-to-back packets, through one
/// decoder (so templates from earlier packets meet later data): no panic, flows ≤ records.
pub fn netflow(data: &[u8]) {
    let exporter = SocketAddr::from(([192, 0, 2, 1], 2055));
    let mut d = Decoder::new();
    let mut rep = Report::default();
    let mut flows = 0u64;
    d.decode_payload(exporter, data, 0, &mut rep, &mut |r| flows += r.flow.is_some() as u64);
    d.decode_stream(exporter, data, 0, &mut rep, &mut |r| flows += r.flow.is_some() as u64);
    assert_eq!(rep.parsed, flows);
    assert!(rep.parsed <= rep.read);
}
