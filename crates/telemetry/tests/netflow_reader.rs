//! `Decoder::decode_read` (message by message through a bounded buffer) against
//! `Decoder::decode_file` (the whole input in memory, the reader used before): the same flows,
//! counts, problems and notes — on every test payload, on inputs larger than the buffer, read
//! in odd-sized pieces, and with a truncated last message.

mod common;

use bulkhead_telemetry::netflow::{Decoder, WINDOW};
use bulkhead_telemetry::{Flow, Report};
use proptest::prelude::*;
use std::io::Read;

/// A reader that hands out at most `sizes[k % len]` bytes per call (message and buffer
/// boundaries then fall anywhere).
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    k: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes[self.k % self.sizes.len()]
            .max(1)
            .min(out.len())
            .min(self.data.len());
        self.k += 1;
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn whole(inputs: &[&[u8]], stream: bool) -> (Vec<Flow>, Report) {
    let mut d = Decoder::new();
    let (mut flows, mut rep) = (Vec::new(), Report::default());
    for (i, b) in inputs.iter().enumerate() {
        d.decode_file(b, i as u32, stream, &mut rep, &mut |f| flows.push(f));
    }
    (flows, rep)
}

fn read(inputs: &[&[u8]], stream: bool, sizes: &[usize]) -> (Vec<Flow>, Report) {
    let mut d = Decoder::new();
    let (mut flows, mut rep) = (Vec::new(), Report::default());
    for (i, b) in inputs.iter().enumerate() {
        let r = Pieces {
            data: b,
            sizes: sizes.to_vec(),
            k: 0,
        };
        d.decode_read(r, i as u32, stream, &mut rep, &mut |f| flows.push(f))
            .expect("in-memory read");
    }
    (flows, rep)
}

fn payloads() -> Vec<(String, Vec<u8>)> {
    let dir = common::testdata().join("netflow-ipfix/payloads");
    let out: Vec<_> = common::files_under(&dir)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("payload")))
        .collect();
    assert!(out.len() > 50, "expected the netflow-ipfix payloads");
    out
}

#[test]
fn every_payload_file_alone_and_in_order_gives_the_same_as_whole_input() {
    let files = payloads();
    for stream in [false, true] {
        for (name, b) in &files {
            for sizes in [&[WINDOW][..], &[1], &[7, 3, 1000]] {
                assert_eq!(
                    read(&[b], stream, sizes),
                    whole(&[b], stream),
                    "{name} stream={stream} pieces={sizes:?}"
                );
            }
        }
        // All files through one decoder: templates carry over from file to file.
        let all: Vec<&[u8]> = files.iter().map(|(_, b)| &b[..]).collect();
        let want = whole(&all, stream);
        assert!(want.0.len() > 100, "the payloads decode to flows");
        assert_eq!(read(&all, stream, &[5, 64, 1]), want, "stream={stream}");
    }
}

/// IPFIX messages back to back, several times the buffer: every payload file that is one
/// whole IPFIX message (version 10, stated length = file length), repeated.
fn big_ipfix_stream() -> (Vec<u8>, usize, Vec<usize>) {
    let msgs: Vec<Vec<u8>> = payloads()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| {
            b.len() >= 16
                && b[..2] == [0, 10]
                && u16::from_be_bytes([b[2], b[3]]) as usize == b.len()
        })
        .collect();
    assert!(msgs.len() > 10);
    let (mut out, mut n, mut lens) = (Vec::new(), 0, Vec::new());
    while out.len() < 3 * WINDOW + 12345 {
        for m in &msgs {
            out.extend_from_slice(m);
            lens.push(m.len());
            n += 1;
        }
    }
    (out, n, lens)
}

#[test]
fn ipfix_stream_larger_than_the_buffer_and_truncated_last_message() {
    let (s, n, lens) = big_ipfix_stream();
    assert!(s.len() > 3 * WINDOW);
    let want = whole(&[&s], true);
    assert_eq!(want.1.netflow.packets, n as u64, "every message decoded");
    assert_eq!(want.1.skipped_total(), 0);
    assert!(want.0.len() > 1000);
    for sizes in [&[WINDOW][..], &[4096], &[1, 2, 3, 65536, 17]] {
        assert_eq!(read(&[&s], true, sizes), want, "pieces {sizes:?}");
    }
    // The last message cut short by one byte: n - 1 messages decoded, the last reported as
    // packet n, truncated; the flows of the complete messages are kept.
    let cut = &s[..s.len() - 1];
    let (flows, rep) = read(&[cut], true, &[3000]);
    assert_eq!((flows.clone(), rep.clone()), whole(&[cut], true));
    assert_eq!(rep.netflow.packets, n as u64 - 1);
    assert_eq!(rep.skipped_total(), 1);
    let detail = format!("{rep:?}");
    assert!(
        detail.contains(&format!("packet {n}: truncated IPFIX message")),
        "{detail}"
    );
    // Without the last message, the same flows.
    let before = whole(&[&s[..s.len() - lens[n - 1]]], true);
    assert_eq!(flows, before.0);
}

/// One NetFlow v9 packet with a template (IPv4 addresses, ports, protocol: 13 bytes a record)
/// and `sets` data flowsets of 100 records each: larger than the buffer, read flowset by
/// flowset.
fn big_v9(sets: usize) -> Vec<u8> {
    let mut p = vec![0, 9, 0, 0];
    p.extend_from_slice(&1000u32.to_be_bytes()); // uptime ms
    p.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // export secs
    p.extend_from_slice(&1u32.to_be_bytes()); // sequence
    p.extend_from_slice(&7u32.to_be_bytes()); // source id
    let fields: [(u16, u16); 5] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1)];
    p.extend_from_slice(&0u16.to_be_bytes());
    p.extend_from_slice(&(8 + 4 * fields.len() as u16).to_be_bytes());
    p.extend_from_slice(&256u16.to_be_bytes());
    p.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (ie, l) in fields {
        p.extend_from_slice(&ie.to_be_bytes());
        p.extend_from_slice(&l.to_be_bytes());
    }
    for s in 0..sets {
        p.extend_from_slice(&256u16.to_be_bytes());
        p.extend_from_slice(&(4 + 100 * 13u16).to_be_bytes());
        for r in 0..100u16 {
            p.extend_from_slice(&[10, 0, (s % 256) as u8, 1, 10, 1, 0, 2]);
            p.extend_from_slice(&(40000 + r).to_be_bytes());
            p.extend_from_slice(&443u16.to_be_bytes());
            p.push(6);
        }
    }
    p
}

#[test]
fn v9_packet_larger_than_the_buffer_and_truncated_last_flowset() {
    let p = big_v9(300);
    assert!(p.len() > WINDOW);
    for stream in [false, true] {
        let want = whole(&[&p], stream);
        assert_eq!(want.0.len(), 300 * 100, "every record of every flowset");
        assert_eq!(want.1.netflow.packets, 1);
        assert_eq!(read(&[&p], stream, &[WINDOW]), want);
        assert_eq!(read(&[&p], stream, &[999, 1]), want);
        // The last flowset cut short: its length runs past the end — malformed, and the
        // 299 complete flowsets are kept.
        let cut = &p[..p.len() - 1];
        let got = read(&[cut], stream, &[4093]);
        assert_eq!(got, whole(&[cut], stream));
        assert_eq!(got.0.len(), 299 * 100);
        assert_eq!(got.1.skipped_total(), 1);
        assert!(format!("{:?}", got.1).contains("v9 flowset length"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any cut of a stream larger than the buffer, read in any pieces: as the whole input.
    #[test]
    fn any_cut_any_pieces(cut in 0usize..(3 * WINDOW), sizes in proptest::collection::vec(1usize..70_000, 1..5)) {
        let (s, _, _) = big_ipfix_stream();
        let s = &s[..cut.min(s.len())];
        prop_assert_eq!(read(&[s], true, &sizes), whole(&[s], true));
        prop_assert_eq!(read(&[s], false, &sizes), whole(&[s], false));
    }
}
