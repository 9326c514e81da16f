//! The live collector on loopback only: a socket bound to 127.0.0.1:0 receives the test
//! payloads from two exporters (two sender sockets) and decodes each with its own templates.
//! Bounded in records and time.

mod common;

use bulkhead_telemetry::collect::{Limits, collect};
use bulkhead_telemetry::{Flow, Report};
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn collector_decodes_per_exporter_on_loopback() {
    let d = common::testdata().join("netflow-ipfix/payloads");
    let read = |f: &str| std::fs::read(d.join(f)).expect("payload");
    // Exporter A: IPFIX Mikrotik, template then two data packets: 46 records (cases.json).
    let a = [
        "ipfix_test_mikrotik_tpl.dat",
        "ipfix_test_mikrotik_data258.dat",
        "ipfix_test_mikrotik_data259.dat",
    ];
    // Exporter B: NetFlow v9 Cisco ASA, two template packets then data: 19 records.
    let b = [
        "netflow9_test_cisco_asa_2_tpl_26x.dat",
        "netflow9_test_cisco_asa_2_tpl_27x.dat",
        "netflow9_test_cisco_asa_2_data.dat",
    ];
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let addr = server.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let mut rep = Report::default();
        let mut flows: Vec<(std::net::SocketAddr, Flow)> = Vec::new();
        let limits = Limits {
            records: Some(46 + 19),
            packets: None,
            duration: Some(Duration::from_secs(20)),
        };
        collect(&server, limits, &mut rep, &mut |from, r| {
            if let Some(f) = r.flow {
                flows.push((from, f))
            }
        })
        .expect("collect");
        (rep, flows)
    });
    let sa = UdpSocket::bind("127.0.0.1:0").expect("bind sender a");
    let sb = UdpSocket::bind("127.0.0.1:0").expect("bind sender b");
    for i in 0..3 {
        sa.send_to(&read(a[i]), addr).expect("send a");
        sb.send_to(&read(b[i]), addr).expect("send b");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rep, flows) = handle.join().expect("collector thread");
    assert_eq!(rep.read, 46 + 19, "{rep}");
    assert_eq!(rep.netflow.packets, 6);
    assert_eq!(rep.sources.len(), 2, "two exporters: {:?}", rep.sources);
    assert_eq!(rep.sets_before_template, 0);
    let from_b: Vec<&Flow> = flows
        .iter()
        .filter(|(from, _)| *from == sb.local_addr().expect("addr"))
        .map(|(_, f)| f)
        .collect();
    // cases.json, ASA event 18: 192.168.0.1 -> 192.168.0.18.
    let last = from_b.last().expect("flows from b");
    assert_eq!(
        (last.src.to_string(), last.dst.to_string()),
        ("192.168.0.1".into(), "192.168.0.18".into())
    );
}

#[test]
fn collector_stops_at_its_time_limit() {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let mut rep = Report::default();
    let t = std::time::Instant::now();
    let limits = Limits {
        duration: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    collect(&server, limits, &mut rep, &mut |_, _| {}).expect("collect");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(rep.read, 0);
}
