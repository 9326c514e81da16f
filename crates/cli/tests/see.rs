//! `bulkhead ingest` and `bulkhead map` end to end: a small fixture built here (exact map
//! outputs), the real Hubble test data with an inventory built from the flows' own pod names,
//! re-ingest, bad input, and a `kill -9` in the middle of an ingest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .expect("run bulkhead")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "bulkhead failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn hubble_line(
    time: &str,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    verdict: &str,
    reply: bool,
) -> String {
    format!(
        r#"{{"flow":{{"time":"{time}","verdict":"{verdict}","IP":{{"source":"{src}","destination":"{dst}","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{sport},"destination_port":{dport}}}}},"Type":"L3_L4","is_reply":{reply}}},"time":"{time}"}}"#
    ) + "\n"
}

const INVENTORY: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: channels
    labels: {app: web, segment: channels}
    ownerReferences: [{kind: ReplicaSet, name: web, controller: true}]
  status: {phase: Running, podIP: 10.0.0.1, startTime: "2026-01-01T00:00:00Z"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: pay-1
    namespace: payments
    labels: {app: pay, segment: payments}
    ownerReferences: [{kind: ReplicaSet, name: pay, controller: true}]
  status: {phase: Running, podIP: 10.0.0.2, startTime: "2026-01-01T00:00:00Z", }
- apiVersion: v1
  kind: Pod
  metadata:
    name: old-1
    namespace: marketing
    labels: {app: old, segment: marketing}
    deletionTimestamp: "2026-01-01T01:00:00Z"
    ownerReferences: [{kind: ReplicaSet, name: old, controller: true}]
  status: {phase: Running, podIP: 10.0.0.3, startTime: "2026-01-01T00:00:00Z"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: fraud-1
    namespace: fraud
    labels: {app: fraud, segment: payments}
    ownerReferences: [{kind: ReplicaSet, name: fraud, controller: true}]
  status: {phase: Running, podIP: 10.0.0.3, startTime: "2026-01-01T02:00:00Z"}
"#;

/// Flows: web → pay (one reply record flipped back), the reused address 10.0.0.3 seen at
/// 00:30 (marketing/old) and at 02:30 (fraud), a host, a partner and a dropped flow.
fn fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let flows = [
        hubble_line(
            "2026-01-01T00:10:00Z",
            "10.0.0.1",
            40000,
            "10.0.0.2",
            8443,
            "FORWARDED",
            false,
        ),
        hubble_line(
            "2026-01-01T00:10:01Z",
            "10.0.0.2",
            8443,
            "10.0.0.1",
            40000,
            "FORWARDED",
            true,
        ),
        hubble_line(
            "2026-01-01T00:30:00Z",
            "10.0.0.3",
            41000,
            "10.0.0.2",
            8443,
            "DROPPED",
            false,
        ),
        hubble_line(
            "2026-01-01T02:30:00Z",
            "10.0.0.3",
            42000,
            "10.0.0.2",
            8443,
            "FORWARDED",
            false,
        ),
        hubble_line(
            "2026-01-01T02:31:00Z",
            "10.0.0.2",
            43000,
            "10.20.0.5",
            1521,
            "FORWARDED",
            false,
        ),
        hubble_line(
            "2026-01-01T02:32:00Z",
            "10.0.0.2",
            44000,
            "198.51.100.9",
            443,
            "FORWARDED",
            false,
        ),
        "{not json\n".to_string(),
    ]
    .concat();
    let f = dir.join("flows.json");
    std::fs::write(&f, flows).unwrap();
    let inv = dir.join("pods.yaml");
    std::fs::write(&inv, INVENTORY).unwrap();
    let hosts = dir.join("hosts.csv");
    std::fs::write(
        &hosts,
        "name,addresses,labels\nledger-db,10.20.0.5,segment=core-ledger\n",
    )
    .unwrap();
    (f, inv, hosts)
}

fn ingest_fixture(dir: &Path, data: &Path) -> String {
    let (f, inv, hosts) = fixture(dir);
    ok(bulkhead(&[
        "ingest",
        p(&f),
        "--inventory",
        p(&inv),
        "--hosts",
        p(&hosts),
        "--external",
        "partners=198.51.100.0/24",
        "--data-dir",
        p(data),
        "--quiet",
    ]))
}

#[test]
fn fixture_ingest_summary_and_map_formats() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let summary = ingest_fixture(dir.path(), &data);
    assert!(
        summary.contains("records read 7, parsed 6, skipped 1"),
        "{summary}"
    );
    assert!(
        summary.contains("flows.json:7:"),
        "first file:line example: {summary}"
    );
    assert!(
        summary.contains("resolved to workloads, Services or hosts: 91.7 % of 12 flow ends"),
        "{summary}"
    );
    assert!(summary.contains("replies flipped: 1"), "{summary}");
    assert!(
        summary.contains("Hubble events folded into their connections: 1"),
        "the reply is part of the request's connection: {summary}"
    );
    let txt = ok(bulkhead(&["map", "--data-dir", p(&data)]));
    assert_eq!(
        txt,
        "channels/web[ReplicaSet] => payments/pay[ReplicaSet] : TCP 8443 : 1 flows, 0 B, 0 packets\n\
         fraud/fraud[ReplicaSet] => payments/pay[ReplicaSet] : TCP 8443 : 1 flows, 0 B, 0 packets\n\
         marketing/old[ReplicaSet] => payments/pay[ReplicaSet] : TCP 8443 : 1 flows, 0 B, 0 packets, 1 denied\n\
         payments/pay[ReplicaSet] => external:partners : TCP 443 : 1 flows, 0 B, 0 packets\n\
         payments/pay[ReplicaSet] => host:ledger-db : TCP 1521 : 1 flows, 0 B, 0 packets\n"
    );
    // Label groups; external peers stay grouped by their CIDR group.
    let grouped = ok(bulkhead(&[
        "map",
        "--data-dir",
        p(&data),
        "--group-by",
        "segment",
    ]));
    assert_eq!(
        grouped,
        "segment=channels => segment=payments : TCP 8443 : 1 flows, 0 B, 0 packets\n\
         segment=marketing => segment=payments : TCP 8443 : 1 flows, 0 B, 0 packets, 1 denied\n\
         segment=payments => external:partners : TCP 443 : 1 flows, 0 B, 0 packets\n\
         segment=payments => segment=core-ledger : TCP 1521 : 1 flows, 0 B, 0 packets\n\
         segment=payments => segment=payments : TCP 8443 : 1 flows, 0 B, 0 packets\n"
    );
    // A window: the first hour only.
    let first = ok(bulkhead(&[
        "map",
        "--data-dir",
        p(&data),
        "--window",
        "2026-01-01T00:00:00Z..2026-01-01T01:00:00Z",
    ]));
    assert_eq!(first.lines().count(), 2, "{first}");
    let last = ok(bulkhead(&["map", "--data-dir", p(&data), "--last", "1h"]));
    assert_eq!(last.lines().count(), 3, "{last}");
    // JSON.
    let json: serde_json::Value = serde_json::from_str(&ok(bulkhead(&[
        "map",
        "--data-dir",
        p(&data),
        "-f",
        "json",
    ])))
    .unwrap();
    let edges = json["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert_eq!(edges[0]["src"], "channels/web[ReplicaSet]");
    // The request and its reply are one connection.
    assert_eq!(edges[0]["flows"], 1);
    assert_eq!(edges[0]["first_seen"], "2026-01-01T00:10:00Z");
    assert_eq!(edges[0]["last_seen"], "2026-01-01T00:10:00Z");
    assert_eq!(edges[2]["denied"], 1);
    let kinds: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"host") && kinds.contains(&"external"),
        "{kinds:?}"
    );
    // dot.
    let dot = ok(bulkhead(&["map", "--data-dir", p(&data), "-f", "dot"]));
    assert!(dot.starts_with("digraph map {\n"), "{dot}");
    assert!(dot.contains("\"channels/web[ReplicaSet]\" -> \"payments/pay[ReplicaSet]\" [label=\"TCP 8443\\n1 flows, 0 B\"];"), "{dot}");
    assert!(
        dot.contains("\"external:partners\" [shape=ellipse];"),
        "{dot}"
    );
    assert!(dot.trim_end().ends_with('}'));
    // --min-flows (every edge of the fixture is one connection).
    let min = |n: &str| ok(bulkhead(&["map", "--data-dir", p(&data), "--min-flows", n]));
    assert_eq!(min("1").lines().count(), 5);
    assert_eq!(min("2").lines().count(), 0);
}

#[test]
fn the_same_file_twice_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest_fixture(dir.path(), &data);
    let before = ok(bulkhead(&["map", "--data-dir", p(&data), "-f", "json"]));
    let again = ingest_fixture(dir.path(), &data);
    assert!(
        again.contains("flows.json: duplicate, 0 flows: already ingested as #1"),
        "{again}"
    );
    assert!(again.contains("duplicate files skipped 1"), "{again}");
    assert_eq!(
        ok(bulkhead(&["map", "--data-dir", p(&data), "-f", "json"])),
        before
    );
    // The same bytes under another name, and through standard input, are duplicates too.
    let copy = dir.path().join("copy.json");
    std::fs::copy(dir.path().join("flows.json"), &copy).unwrap();
    let o = ok(bulkhead(&[
        "ingest",
        p(&copy),
        "--data-dir",
        p(&data),
        "--quiet",
    ]));
    assert!(o.contains("duplicate"), "{o}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["ingest", "-", "--data-dir", p(&data), "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(&copy).unwrap()).unwrap();
    }
    let o = ok(child.wait_with_output().unwrap());
    assert!(o.contains("-: duplicate"), "{o}");
    assert_eq!(
        ok(bulkhead(&["map", "--data-dir", p(&data), "-f", "json"])),
        before
    );
}

#[test]
fn bad_inputs_are_errors_with_places_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (f, _, _) = fixture(dir.path());
    // Host inventory errors name file:line.
    let hosts = dir.path().join("bad.csv");
    std::fs::write(
        &hosts,
        "name,addresses,labels\nok,10.0.0.1,\nbad,10.0.0.300,\n",
    )
    .unwrap();
    let o = bulkhead(&[
        "ingest",
        p(&f),
        "--hosts",
        p(&hosts),
        "--data-dir",
        p(&data),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.csv:3: invalid address \"10.0.0.300\""),
        "{err}"
    );
    let yaml = dir.path().join("bad.yaml");
    std::fs::write(&yaml, "hosts:\n  - name: a\n    addresses: [10.0.0.0/40]\n").unwrap();
    let o = bulkhead(&["ingest", p(&f), "--hosts", p(&yaml), "--data-dir", p(&data)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bad.yaml:3:"), "{err}");
    // A truncated gzip: an error naming the file, exit 1, the lines before it kept.
    let gz = dir.path().join("cut.json.gz");
    {
        let mut e = flate2_like_gzip(&std::fs::read(&f).unwrap());
        let n = e.len();
        e.truncate(n - 12);
        std::fs::write(&gz, e).unwrap();
    }
    let o = bulkhead(&["ingest", p(&gz), "--data-dir", p(&data), "--quiet"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("cut.json.gz: error"), "{out}");
    // A binary file.
    let bin = dir.path().join("bin.json");
    std::fs::write(&bin, [0u8, 159, 146, 150, 0, 1, 2, 3, b'\n'].repeat(10)).unwrap();
    let o = bulkhead(&[
        "ingest",
        p(&bin),
        "--format",
        "hubble",
        "--data-dir",
        p(&data),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("binary content"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A damaged store.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("bulkhead.redb"), b"garbage".repeat(1000)).unwrap();
    let o = bulkhead(&["map", "--data-dir", p(&broken)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bulkhead.redb"));
}

/// gzip through the system's `gzip` (the test crate has no compressor of its own).
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip on PATH");
    c.stdin.take().unwrap().write_all(data).unwrap();
    c.wait_with_output().unwrap().stdout
}

fn testdata() -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/telemetry/hubble");
    assert!(d.is_dir(), "test data missing: {}", d.display());
    d
}

/// The real Hubble samples: no inventory in the test data matches their addresses, so the
/// inventory is built from the flows' own pod names and addresses (as `kubectl get pods`
/// would list them), and every end with a pod name must resolve to that pod's workload.
#[test]
fn real_hubble_flows_resolve_with_an_inventory_of_their_pods() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(files.len() >= 5);
    let mut pods = std::collections::BTreeMap::new();
    let (mut ends, mut named_ends) = (0u64, 0u64);
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let fl = &v["flow"];
            for (ep, ip) in [("source", "source"), ("destination", "destination")] {
                ends += 1;
                if let (Some(ns), Some(pod), Some(addr)) = (
                    fl[ep]["namespace"].as_str(),
                    fl[ep]["pod_name"].as_str(),
                    fl["IP"][ip].as_str(),
                ) {
                    named_ends += 1;
                    pods.insert(addr.to_string(), (ns.to_string(), pod.to_string()));
                }
            }
        }
    }
    let mut inv = String::from("apiVersion: v1\nkind: PodList\nitems:\n");
    for (addr, (ns, pod)) in &pods {
        inv += &format!(
            "- metadata: {{name: {pod}, namespace: {ns}}}\n  status: {{phase: Running, podIP: {addr}}}\n"
        );
    }
    let inv_path = dir.path().join("pods.yaml");
    std::fs::write(&inv_path, inv).unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["ingest".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend([
        "--inventory".into(),
        inv_path.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--json".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s: serde_json::Value = serde_json::from_str(&ok(bulkhead(&args))).unwrap();
    assert_eq!(s["report"]["parsed"].as_u64(), Some(ends / 2));
    let ends_by = |k: &str| s["resolution"]["ends"][k].as_u64().unwrap_or(0);
    // Every end Hubble named a pod for resolves by that name (the inventory has them all).
    assert_eq!(ends_by("pod-name"), named_ends, "{s}");
    // The unnamed ends are the node (`reserved:host`), kube-dns' upstreams and the world.
    assert_eq!(
        ends_by("pod-name") + ends_by("unknown") + ends_by("external"),
        ends,
        "{s}"
    );
    assert!(s["resolved_share"].as_f64().unwrap() > 0.5, "{s}");
    let map = ok(bulkhead(&[
        "map",
        "--data-dir",
        p(&data),
        "--group-by",
        "namespace",
    ]));
    assert!(
        map.contains("namespace=bookinfo => namespace=bookinfo : TCP 9080"),
        "{map}"
    );
}

/// Kill -9 in the middle of an ingest, run it again: the store equals one clean ingest; and
/// ingesting the file once more adds nothing.
#[test]
fn kill_9_mid_ingest_then_rerun_equals_a_clean_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("big.vpc.log");
    bulkhead_telemetry::bench::generate(bulkhead_telemetry::Format::Vpc, 150_000, &flows).unwrap();
    let clean = dir.path().join("clean");
    let map_of = |d: &Path| ok(bulkhead(&["map", "--data-dir", p(d), "-f", "json"]));
    let start = Instant::now();
    ok(bulkhead(&[
        "ingest",
        p(&flows),
        "--data-dir",
        p(&clean),
        "--batch",
        "10000",
        "--raw-window",
        "0",
        "--quiet",
    ]));
    let full = start.elapsed();
    let want = map_of(&clean);
    // Real SIGKILLs at a few points of the run (where they land depends on the machine's
    // speed): whatever was committed, the rerun must give the clean result.
    for (i, frac) in [0.5, 0.2, 0.8].into_iter().enumerate() {
        let data = dir.path().join(format!("killed-{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args([
                "ingest",
                p(&flows),
                "--data-dir",
                p(&data),
                "--batch",
                "10000",
                "--raw-window",
                "0",
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(full.as_secs_f64() * frac));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let again = ok(bulkhead(&[
            "ingest",
            p(&flows),
            "--data-dir",
            p(&data),
            "--batch",
            "10000",
            "--raw-window",
            "0",
            "--quiet",
        ]));
        assert_eq!(
            map_of(&data),
            want,
            "after a kill at {frac} of the run: {again}"
        );
    }
    // A crash at a known point (abort right after the 7th commit, as abruptly as SIGKILL):
    // the rerun resumes after exactly 70,000 flows.
    let data = dir.path().join("aborted");
    let o = bulkhead(&[
        "ingest",
        p(&flows),
        "--data-dir",
        p(&data),
        "--batch",
        "10000",
        "--raw-window",
        "0",
        "--quiet",
        "--abort-after-batches",
        "7",
    ]);
    assert!(!o.status.success(), "the ingest must have crashed");
    let again = ok(bulkhead(&[
        "ingest",
        p(&flows),
        "--data-dir",
        p(&data),
        "--batch",
        "10000",
        "--raw-window",
        "0",
        "--quiet",
    ]));
    assert!(
        again.contains("resumed, 80000 flows (resumed after 70000 committed earlier)"),
        "{again}"
    );
    assert_eq!(map_of(&data), want);
    // And the file once more adds nothing.
    let once_more = ok(bulkhead(&[
        "ingest",
        p(&flows),
        "--data-dir",
        p(&data),
        "--quiet",
    ]));
    assert!(once_more.contains("duplicate"), "{once_more}");
    assert_eq!(map_of(&data), want);
}

#[test]
fn every_ingest_that_adds_flows_is_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest_fixture(dir.path(), &data);
    // A duplicate adds nothing to the store, and nothing to the log.
    ingest_fixture(dir.path(), &data);
    let log = ok(bulkhead(&[
        "audit",
        "log",
        "--data-dir",
        p(&data),
        "--format",
        "json",
    ]));
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("one canonical entry per line"))
        .collect();
    assert_eq!(entries.len(), 1, "{log}");
    let e = &entries[0];
    assert_eq!(e["action"], "store.ingest");
    assert_eq!(e["object"], format!("store:{}", p(&data)));
    // The digest after is the ingested file's SHA-256.
    use sha2::Digest as _;
    let bytes = std::fs::read(dir.path().join("flows.json")).unwrap();
    let want: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(e["after"], format!("sha256:{want}"));
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("flows.json: ingested"),
        "{e}"
    );
    ok(bulkhead(&["audit", "verify", "--data-dir", p(&data)]));
}
