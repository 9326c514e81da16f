//! A live NetFlow/IPFIX collector on a UDP socket, decoding per exporter (templates are kept
//! per exporter address and observation domain), bounded in records and time.

use crate::netflow::{Decoder, Record};
use crate::report::Report;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// When to stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Stop after this many decoded records (data and options).
    pub records: Option<u64>,
    /// Stop after this many packets.
    pub packets: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// Receives packets on `socket` until a limit is reached, decoding each with its exporter's
/// templates; every record goes to `emit` with the exporter's address. The report's
/// `sources` are the exporters, in the order first heard.
pub fn collect(
    socket: &UdpSocket,
    limits: Limits,
    rep: &mut Report,
    emit: &mut dyn FnMut(SocketAddr, Record),
) -> io::Result<()> {
    let started = Instant::now();
    let mut decoder = Decoder::new();
    let mut exporters: HashMap<SocketAddr, (u32, u64)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut packets = 0u64;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    loop {
        if limits.records.is_some_and(|n| rep.read >= n)
            || limits.packets.is_some_and(|n| packets >= n)
            || limits.duration.is_some_and(|d| started.elapsed() >= d)
        {
            return Ok(());
        }
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        packets += 1;
        let (source, record_no) = match exporters.get_mut(&from) {
            Some(x) => x,
            None => {
                let id = rep.sources.len() as u32;
                rep.sources.push(from.to_string());
                exporters.entry(from).or_insert((id, 0))
            }
        };
        let pkt = &buf[..len];
        match decoder.decode_packet(from, pkt, *source, record_no, rep, &mut |r| emit(from, r)) {
            Ok(used) if used < pkt.len() => {
                rep.note("NetFlow: bytes after the export packet of a datagram ignored")
            }
            Ok(_) => {}
            Err(e) => rep.skip(
                *source,
                packets,
                "NetFlow: malformed packet",
                format_args!("from {from}: {e}"),
            ),
        }
    }
}
