//! The simulator's outputs: deterministic, loadable, parseable with zero skipped records, with
//! address reuse, daily cycles, month-end runs and a ground truth that points at real records.

use bulkhead_bank::{Bank, Config, Fmt, SEGMENTS, Summary, compliance, simulate};
use bulkhead_core::flow::Flow;
use bulkhead_telemetry::{Format, Options, Parser};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn cfg() -> Config {
    Config {
        seed: 7,
        workloads: 40,
        days: 2,
        attacks: true,
        rate: 0.25,
        ..Config::default()
    }
}

/// One simulation shared by the tests, with its flows parsed back (file → flows).
struct Run {
    dir: PathBuf,
    summary: Summary,
    flows: BTreeMap<String, Vec<Flow>>,
    skipped: u64,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bank-sim");
        let _ = std::fs::remove_dir_all(&dir);
        let summary = simulate(&cfg(), Some(&dir), None).expect("simulates");
        let mut flows: BTreeMap<String, Vec<Flow>> = BTreeMap::new();
        let mut parser = Parser::new(Options::default());
        for (fmt, rel, _) in &summary.files {
            let format = match fmt {
                Fmt::Hubble => Format::Hubble,
                Fmt::Vpc => Format::Vpc,
                Fmt::Zeek => Format::Zeek,
                Fmt::Netflow => Format::Netflow,
            };
            let v = flows.entry(rel.clone()).or_default();
            parser
                .parse_path(&dir.join(rel), format, &mut |f| v.push(f))
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
        }
        let report = parser.finish();
        Run {
            dir,
            summary,
            flows,
            skipped: report.skipped_total() + report.sets_before_template,
        }
    })
}

fn secs(f: &Flow) -> i64 {
    f.time.expect("every record has a time") / 1_000_000_000
}

#[test]
fn every_file_parses_with_zero_skipped_and_all_records() {
    let r = run();
    assert_eq!(r.skipped, 0, "no record is skipped");
    for (fmt, rel, n) in &r.summary.files {
        assert_eq!(
            r.flows[rel].len() as u64,
            *n,
            "{rel}: parsed flows equal records written"
        );
        assert!(*n > 0 || *fmt == Fmt::Netflow, "{rel} is not empty");
    }
    let parsed: usize = r.flows.values().map(Vec::len).sum();
    let s = &r.summary;
    assert_eq!(
        parsed as u64,
        s.total() - s.flows[Fmt::Hubble as usize] + s.hubble_events,
        "all written records parse (Hubble: several events per connection)"
    );
    assert!(
        s.hubble_events > 3 * s.flows[Fmt::Hubble as usize],
        "Hubble shows several events per connection"
    );
    for (i, fmt) in Fmt::ALL.iter().enumerate() {
        assert!(r.summary.flows[i] > 0, "{} flows written", fmt.name());
    }
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let r = run();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bank-sim-again");
    let _ = std::fs::remove_dir_all(&dir);
    let s = simulate(&cfg(), Some(&dir), None).expect("simulates");
    let mut rels: Vec<String> = s.files.iter().map(|f| f.1.clone()).collect();
    rels.extend(
        [
            "ground-truth.json",
            "hosts.csv",
            "hosts.yaml",
            "inventory/pods.json",
            "inventory/workloads.yaml",
            "inventory/services.yaml",
            "inventory/namespaces.yaml",
        ]
        .map(String::from),
    );
    for rel in &rels {
        let a = std::fs::read(r.dir.join(rel)).expect("first run wrote it");
        let b = std::fs::read(dir.join(rel)).expect("second run wrote it");
        assert!(a == b, "{rel} is byte-identical for the same seed");
    }
    let other = Config { seed: 8, ..cfg() };
    let dir2 = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bank-sim-seed8");
    let _ = std::fs::remove_dir_all(&dir2);
    simulate(&other, Some(&dir2), None).expect("simulates");
    let a = std::fs::read(r.dir.join("flows/hubble/day-01.jsonl")).expect("read");
    let b = std::fs::read(dir2.join("flows/hubble/day-01.jsonl")).expect("read");
    assert_ne!(a, b, "another seed gives other flows");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn inventory_loads_with_the_k8s_loader() {
    let r = run();
    let loaded = bulkhead_k8s::Loaded::from_paths(&[r.dir.join("inventory")]);
    assert!(
        loaded.errors.is_empty(),
        "no load errors: {:?}",
        loaded.errors
    );
    let bank = Bank::build(&cfg());
    for w in bank.workloads.iter().filter(|w| !w.kind.is_vm()) {
        let ns = loaded
            .cluster
            .namespaces
            .get(w.segment)
            .unwrap_or_else(|| panic!("namespace {}", w.segment));
        let text = format!("{ns:?}");
        assert!(
            text.contains(compliance(w.segment)),
            "{}: compliance label {}",
            w.segment,
            compliance(w.segment)
        );
        assert!(
            loaded
                .cluster
                .workloads
                .iter()
                .any(|l| l.namespace == w.segment && l.name == w.name),
            "workload {}/{} loaded",
            w.segment,
            w.name
        );
    }
    let hosts = std::fs::read_to_string(r.dir.join("hosts.csv")).expect("hosts.csv");
    assert!(hosts.contains("ledger-db-01,10.50.") && hosts.contains("compliance=pci-dss-sox"));
    assert!(SEGMENTS.contains(&"core-ledger"));
}

#[test]
fn addresses_are_reused_and_each_flow_names_the_owner_at_its_time() {
    let r = run();
    let bank = Bank::build(&cfg());
    let mut by_ip: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for p in &bank.pods {
        by_ip.entry(IpAddr::V4(p.ip)).or_default().push(p.workload);
    }
    let reused = by_ip
        .values()
        .filter(|ws| ws.iter().any(|&w| w != ws[0]))
        .count();
    assert!(reused > 0, "some address served two different workloads");
    // The same, read from the written inventory: finished pods and a reused address.
    let pods_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.dir.join("inventory/pods.json")).expect("pods.json"),
    )
    .expect("JSON");
    let mut apps_by_ip: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut finished = 0;
    for p in pods_json["items"].as_array().expect("items") {
        let ip = p["status"]["podIP"].as_str().expect("podIP");
        apps_by_ip
            .entry(ip)
            .or_default()
            .push(p["metadata"]["labels"]["app"].as_str().expect("app"));
        if p["status"]["phase"] == "Succeeded" {
            assert!(p["metadata"]["deletionTimestamp"].is_string());
            assert!(
                p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
                    .is_string()
            );
            finished += 1;
        }
    }
    assert!(finished > 0, "some pods finished during the run");
    assert!(
        apps_by_ip.values().any(|a| a.iter().any(|x| *x != a[0])),
        "pods.json shows an address used by two workloads"
    );
    let pods: HashMap<&str, &bulkhead_bank::Pod> =
        bank.pods.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut checked = 0;
    for (rel, flows) in &r.flows {
        if !rel.contains("hubble") {
            continue;
        }
        for f in flows {
            let id = f.identity.as_ref().expect("Hubble carries identity");
            for (ip, ep) in [(f.src, &id.src), (f.dst, &id.dst)] {
                let name = ep.pod.as_deref().expect("pod name");
                let pod = pods[name];
                let IpAddr::V4(v4) = ip else { panic!("IPv4") };
                assert_eq!(pod.ip, v4, "{rel}: {name} has the flow's address");
                assert_eq!(
                    bank.owner_at(v4, secs(f)),
                    Some(pod.workload),
                    "{rel}: {ip} belongs to {name}'s workload at {}",
                    secs(f)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn ground_truth_points_at_the_records_and_attacks_are_rare() {
    let r = run();
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("ground-truth.json")).unwrap())
            .expect("JSON");
    let scenarios = gt["scenarios"].as_array().expect("scenarios");
    let kinds: Vec<&str> = scenarios
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "lateral-movement",
            "exfiltration",
            "internal-scan",
            "credential-misuse"
        ]
    );
    let total = r.summary.total() as f64;
    for s in scenarios {
        let flows = s["flows"].as_array().expect("flows");
        assert!(!flows.is_empty(), "{} has flows", s["id"]);
        assert!(
            (flows.len() as f64) < total / 100.0,
            "{}: {} flows is under 1% of {total}",
            s["id"],
            flows.len()
        );
        for k in flows {
            let file = k["file"].as_str().unwrap();
            let line = k["line"].as_u64().unwrap();
            let found = r.flows[file].iter().find(|f| f.origin.record == line);
            let f = found.unwrap_or_else(|| panic!("{file}:{line} exists"));
            assert_eq!(
                f.src.to_string(),
                k["src"].as_str().unwrap(),
                "{file}:{line}"
            );
            assert_eq!(
                f.dst.to_string(),
                k["dst"].as_str().unwrap(),
                "{file}:{line}"
            );
            assert_eq!(u64::from(f.src_port), k["src_port"].as_u64().unwrap());
            assert_eq!(u64::from(f.dst_port), k["dst_port"].as_u64().unwrap());
        }
    }
}

#[test]
fn customer_traffic_follows_the_day_and_month_end_runs_only_at_month_end() {
    let r = run();
    let (mut at14, mut at03) = (0, 0);
    let mut month_end = Vec::new();
    for (rel, flows) in &r.flows {
        for f in flows {
            let t = secs(f);
            let h = t.rem_euclid(86_400) / 3_600;
            if rel.contains("hubble")
                && let Some(id) = &f.identity
                && id
                    .src
                    .pod
                    .as_deref()
                    .is_some_and(|p| p.starts_with("mobile-bff-"))
            {
                match h {
                    14 => at14 += 1,
                    3 => at03 += 1,
                    _ => {}
                }
            }
            if f.dst_port == 50000 && f.is_reply != Some(true) {
                month_end.push(t);
            }
        }
    }
    assert!(
        at14 > 4 * at03,
        "mobile traffic at 14:00 ({at14}) far above 03:00 ({at03})"
    );
    assert!(!month_end.is_empty(), "the month-end run happened");
    for t in month_end {
        assert!(
            bulkhead_bank::is_month_end(t),
            "{} is on the last day of a month",
            bulkhead_bank::rfc3339(t)
        );
    }
}

#[test]
fn a_stream_holds_exactly_the_flows_of_the_files() {
    let one_day = Config {
        days: 1,
        workloads: 20,
        ..cfg()
    };
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bank-stream");
    let _ = std::fs::remove_dir_all(&base);
    let files = base.join("files");
    simulate(&one_day, Some(&files), None).expect("simulates");
    // IPFIX: the stream is the payload files back to back.
    let mut payloads = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(files.join("flows/netflow"))
        .expect("payload files")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for n in &names {
        payloads.extend(std::fs::read(n).expect("payload"));
    }
    std::fs::write(base.join("netflow.files"), payloads).expect("write");
    for (fmt, rel) in [
        (Fmt::Hubble, "flows/hubble/day-01.jsonl"),
        (Fmt::Zeek, "flows/zeek/conn.day-01.log"),
        (Fmt::Vpc, "flows/vpc/day-01.log"),
        (Fmt::Netflow, "../netflow.files"),
    ] {
        let path = base.join(format!("{}.stream", fmt.name()));
        let w = std::fs::File::create(&path).expect("create");
        let s =
            bulkhead_bank::simulate_to(&one_day, None, Some((fmt, Box::new(w)))).expect("streams");
        assert!(s.flows[fmt as usize] > 0);
        let a = std::fs::read(&path).expect("stream");
        let b = std::fs::read(files.join(rel)).expect("file");
        assert!(a == b, "{}: the stream is the file", fmt.name());
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn hubble_shows_each_connection_as_real_hubble_does() {
    let r = run();
    let text = std::fs::read_to_string(r.dir.join("flows/hubble/day-02.jsonl")).expect("read");
    for point in [
        "\"TO_STACK\"",
        "\"TO_ENDPOINT\"",
        "\"POLICY_DENIED\"",
        "\"SYN\":true,\"ACK\":true",
        "\"FIN\":true,\"ACK\":true",
        "\"RST\":true,\"ACK\":true",
    ] {
        assert!(text.contains(point), "day 2 has {point} events");
    }
    let flows = &r.flows["flows/hubble/day-02.jsonl"];
    let (mut replies, mut drops, mut ingress, mut last) = (0, 0, 0, 0i64);
    // Oriented 5-tuple → whether its first event was a request.
    let mut first: HashMap<(IpAddr, IpAddr, u16, u16), bool> = HashMap::new();
    for f in flows {
        let t = f.time.expect("time");
        assert!(
            t >= last - 1_000_000,
            "events in time order (within a millisecond): line {}",
            f.origin.record
        );
        last = last.max(t);
        let reply = f.is_reply.expect("is_reply is always given");
        replies += u64::from(reply);
        if f.verdict == Some(bulkhead_core::flow::Verdict::Dropped) {
            drops += 1;
            assert_eq!(f.drop_reason.as_deref(), Some("POLICY_DENIED"));
            assert!(!reply, "drops are the client's SYNs");
        }
        ingress += u64::from(f.direction == Some(bulkhead_core::flow::FlowDirection::Ingress));
        let key = if reply {
            (f.dst, f.src, f.dst_port, f.src_port)
        } else {
            (f.src, f.dst, f.src_port, f.dst_port)
        };
        first.entry(key).or_insert(!reply);
    }
    assert!(
        replies > 0 && drops > 0 && ingress > 0,
        "{replies} replies, {drops} drops, {ingress} ingress"
    );
    // Connections that started the day before end in its file: all others start with a request.
    let day2 = r.flows["flows/hubble/day-02.jsonl"]
        .first()
        .and_then(|f| f.time)
        .unwrap_or(0);
    let late = first.values().filter(|&&req| !req).count();
    assert!(
        late * 1000 < first.len(),
        "{late} of {} connections start with a reply (day 2 from {day2})",
        first.len()
    );
}

#[test]
fn weekends_are_quieter_but_batch_runs() {
    // The default start, 2026-10-30, is a Friday; the 31st a Saturday (and a month end).
    assert_eq!(bulkhead_bank::weekday(bulkhead_bank::DEFAULT_START), 4);
    assert!(bulkhead_bank::is_closed_day(
        bulkhead_bank::DEFAULT_START + 86_400
    ));
    let r = run();
    let (mut customer, mut batch) = ([0u64; 2], [0u64; 2]);
    for (rel, flows) in &r.flows {
        for f in flows {
            let t = secs(f);
            let day = ((t - bulkhead_bank::DEFAULT_START) / 86_400).clamp(0, 1) as usize;
            let h = t.rem_euclid(86_400) / 3_600;
            if rel.contains("hubble")
                && f.is_reply == Some(false)
                && f.identity
                    .as_ref()
                    .and_then(|id| id.src.pod.as_deref())
                    .is_some_and(|p| p.starts_with("mobile-bff-") || p.starts_with("web-bff-"))
                && (10..22).contains(&h)
            {
                customer[day] += 1;
            }
            if f.dst_port == 1521 && f.is_reply != Some(true) && (1..4).contains(&h) {
                batch[day] += 1;
            }
        }
    }
    assert!(
        (customer[1] as f64) < 0.75 * customer[0] as f64,
        "Saturday's channel traffic ({}) well under Friday's ({})",
        customer[1],
        customer[0]
    );
    assert!(
        batch[1] as f64 > 0.7 * batch[0] as f64,
        "the night batch runs on Saturday too ({} vs {})",
        batch[1],
        batch[0]
    );
}

#[test]
fn every_hubble_connection_is_in_the_written_events() {
    // The ground truth (the simulated connections) against the file: each connection's
    // oriented 5-tuple appears in the Hubble events, and no other.
    let r = run();
    let p = |e: bulkhead_bank::End, bank: &Bank| match e {
        bulkhead_bank::End::Pod(i) => IpAddr::V4(bank.pods[i].ip),
        _ => panic!("Hubble connections are pod to pod"),
    };
    let mut truth = std::collections::HashSet::new();
    let mut n = 0u64;
    bulkhead_bank::for_each_connection(&cfg(), |bank, f, fmt| {
        if fmt == Fmt::Hubble {
            truth.insert((p(f.src, bank), p(f.dst, bank), f.sport, f.dport));
            n += 1;
        }
    });
    assert_eq!(
        n,
        r.summary.flows[Fmt::Hubble as usize],
        "as many as written"
    );
    assert_eq!(truth.len() as u64, n, "no two connections share a 5-tuple");
    let mut seen = std::collections::HashSet::new();
    for (rel, flows) in &r.flows {
        if !rel.contains("hubble") {
            continue;
        }
        for f in flows {
            let key = if f.is_reply == Some(true) {
                (f.dst, f.src, f.dst_port, f.src_port)
            } else {
                (f.src, f.dst, f.src_port, f.dst_port)
            };
            assert!(
                truth.contains(&key),
                "{rel}:{} is a simulated connection",
                f.origin.record
            );
            seen.insert(key);
        }
    }
    assert_eq!(seen.len(), truth.len(), "every connection was written");
}
