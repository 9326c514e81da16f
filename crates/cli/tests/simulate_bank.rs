//! `bulkhead simulate-bank` end to end: files that `flows parse` reads, and a stream on stdout.

use bulkhead_bank::{Config, End, Fmt, Outcome};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

#[test]
fn writes_files_and_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bulkhead()
        .args(["simulate-bank", "--workloads", "20", "--days", "1"])
        .args(["--rate", "0.05", "--attacks", "--out"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("\"flows\":"),
        "summary on stderr: {summary}"
    );
    for f in ["ground-truth.json", "hosts.csv", "inventory/pods.json"] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    let parse = bulkhead()
        .args(["flows", "parse"])
        .arg(dir.path().join("flows/hubble/day-01.jsonl"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&parse.stdout);
    assert!(
        parse.status.success() && text.contains(" 0 skipped"),
        "{text}"
    );

    let stream = bulkhead()
        .args(["simulate-bank", "--stream", "vpc", "--workloads", "20"])
        .args(["--days", "1", "--rate", "0.05"])
        .output()
        .expect("runs");
    assert!(stream.status.success());
    let text = String::from_utf8_lossy(&stream.stdout);
    assert!(text.starts_with("version account-id"), "VPC header first");
    assert!(text.lines().count() > 10);

    let none = bulkhead().args(["simulate-bank"]).output().expect("runs");
    assert!(
        !none.status.success(),
        "neither --out nor --stream is an error"
    );
}

fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (source app, destination app, protocol, port) → (flows, denied), from `map --format json`.
fn map_by_app(data: &Path) -> BTreeMap<(String, String, String, u16), (u64, u64)> {
    let out = ok(bulkhead()
        .args(["map", "--group-by", "app", "--format", "json", "--data-dir"])
        .arg(data));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("map JSON");
    let mut m = BTreeMap::new();
    for e in json["edges"].as_array().expect("edges") {
        let s = |k: &str| e[k].as_str().expect(k).to_string();
        let key = (
            s("src"),
            s("dst"),
            s("protocol"),
            e["port"].as_u64().expect("port") as u16,
        );
        let v = m.entry(key).or_insert((0, 0));
        v.0 += e["flows"].as_u64().expect("flows");
        v.1 += e["denied"].as_u64().expect("denied");
    }
    m
}

const ARGS: [&str; 9] = [
    "--workloads",
    "20",
    "--days",
    "1",
    "--rate",
    "0.1",
    "--seed",
    "3",
    "--attacks",
];

fn cfg() -> Config {
    Config {
        seed: 3,
        workloads: 20,
        days: 1,
        rate: 0.1,
        attacks: true,
        ..Config::default()
    }
}

#[test]
fn ingested_hubble_edges_count_the_simulated_connections() {
    // The simulator's Hubble output has several events per connection, at two observation
    // points, with replies: the ingest must count each connection once, client → server.
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = dir.path().join("bank");
    ok(bulkhead()
        .arg("simulate-bank")
        .args(ARGS)
        .arg("--out")
        .arg(&bank));
    let data = dir.path().join("data");
    let ingest = ok(bulkhead()
        .arg("ingest")
        .arg(bank.join("flows/hubble/day-01.jsonl"))
        .arg("--inventory")
        .arg(bank.join("inventory"))
        .arg("--hosts")
        .arg(bank.join("hosts.csv"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--quiet"));
    let summary = String::from_utf8_lossy(&ingest.stdout);
    assert!(summary.contains(", skipped 0\n"), "{summary}");

    let mut truth: BTreeMap<(String, String, String, u16), (u64, u64)> = BTreeMap::new();
    bulkhead_bank::for_each_connection(&cfg(), |b, f, fmt| {
        if fmt != Fmt::Hubble {
            return;
        }
        let app = |e: End| match e {
            End::Pod(p) => format!("app={}", b.workloads[b.pods[p].workload].name),
            _ => panic!("Hubble connections are pod to pod"),
        };
        let proto = if f.proto == 6 { "TCP" } else { "UDP" };
        let v = truth
            .entry((app(f.src), app(f.dst), proto.to_string(), f.dport))
            .or_insert((0, 0));
        v.0 += 1;
        v.1 += u64::from(f.outcome == Outcome::Dropped);
    });
    let connections: u64 = truth.values().map(|v| v.0).sum();
    assert!(connections > 1_000, "{connections} connections");
    let edges = map_by_app(&data);
    for (k, want) in &truth {
        assert_eq!(edges.get(k), Some(want), "{k:?}: (connections, denied)");
    }
    assert_eq!(
        edges.len(),
        truth.len(),
        "no other edges (no reversed ones)"
    );
}

#[test]
fn a_netflow_stream_ingests_from_standard_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = dir.path().join("bank");
    let stream = ok(bulkhead()
        .arg("simulate-bank")
        .args(ARGS)
        .args(["--stream", "netflow", "--out"])
        .arg(&bank));
    let sim: serde_json::Value =
        serde_json::from_slice(&stream.stderr).expect("summary JSON on stderr");
    let n = sim["netflow"].as_u64().expect("netflow count");
    assert!(n > 50, "{n} IPFIX records");
    assert_eq!(&stream.stdout[..2], &[0, 10], "an IPFIX message first");

    // The ground truth's streamed records are at their record number in the stream.
    let gt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bank.join("ground-truth.json")).expect("ground truth"),
    )
    .expect("JSON");
    assert_eq!(gt["streamed"], "netflow");
    let mut flows = Vec::new();
    let report = bulkhead_telemetry::parse_reader(
        &stream.stdout[..],
        "-",
        bulkhead_telemetry::Format::Netflow,
        bulkhead_telemetry::Options {
            netflow_stream: true,
            ..Default::default()
        },
        &mut |f| flows.push(f),
    )
    .expect("parses");
    assert_eq!(flows.len() as u64, n, "{report}");
    let mut checked = 0;
    for s in gt["scenarios"].as_array().expect("scenarios") {
        for k in s["flows"].as_array().expect("flows") {
            assert_eq!(k["file"], "-");
            let line = k["line"].as_u64().expect("line");
            let f = &flows[line as usize - 1];
            assert_eq!(f.origin.record, line);
            assert_eq!(f.src.to_string(), k["src"].as_str().expect("src"));
            assert_eq!(f.dst.to_string(), k["dst"].as_str().expect("dst"));
            assert_eq!(u64::from(f.dst_port), k["dst_port"].as_u64().expect("port"));
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "the exfiltration goes out through the edge router"
    );

    // `bulkhead ingest - --format netflow` reads the messages back to back from a pipe.
    let data = dir.path().join("data");
    let mut child = bulkhead()
        .args([
            "ingest", "-", "--format", "netflow", "--json", "--quiet", "--hosts",
        ])
        .arg(bank.join("hosts.csv"))
        .arg("--inventory")
        .arg(bank.join("inventory"))
        .arg("--data-dir")
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&stream.stdout)
        .expect("write");
    let out = child.wait_with_output().expect("waits");
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ingest JSON");
    assert_eq!(s["files"][0]["flows"].as_u64(), Some(n), "{s}");
    assert_eq!(
        s["report"]["skipped"].as_object().map(|m| m.len()),
        Some(0),
        "{s}"
    );
}
