//! BANK.md's four labelled attack scenarios.

use crate::model::{Bank, Kind};
use crate::traffic::{End, Outcome, Picker, SimFlow, ephemeral};
use bulkhead_synth::SplitMix64;
use std::net::Ipv4Addr;

/// One injected scenario (its flows carry its index).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub id: String,
    pub kind: &'static str,
    pub techniques: &'static [&'static str],
    pub description: String,
    /// The attacker: workload name and address.
    pub attacker: (String, Ipv4Addr),
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Exfiltration's destination (an address in no partner range).
pub const EXFIL_ADDR: Ipv4Addr = Ipv4Addr::new(185, 220, 101, 47);

/// Builds the scenarios and their flows, on the last simulated day, sized by the bank's
/// instances so that each stays well under 1 % of the background.
pub fn inject(bank: &Bank, seed: u64) -> (Vec<Scenario>, Vec<SimFlow>) {
    let mut rng = SplitMix64::stream(seed, 4);
    let p = Picker { bank };
    let day0 = bank.end - 86_400;
    let mut scenarios = Vec::new();
    let mut flows = Vec::new();
    let instances: usize = bank.workloads.iter().map(|w| w.instances()).sum();
    let first = |app: &str| bank.by_app(app).first().copied();
    let flow = |rng: &mut SplitMix64, t_ms: i64, s: End, d: End, port: u16, o: Outcome, sc| {
        let (bo, bi) = match o {
            Outcome::Ok => (rng.range(200, 3_000) as u64, rng.range(200, 8_000) as u64),
            _ => (60, 0),
        };
        SimFlow {
            time_ms: t_ms,
            dur_ms: if o == Outcome::Ok { 40 } else { 0 },
            src: s,
            dst: d,
            sport: ephemeral(rng),
            dport: port,
            proto: 6,
            bytes_out: bo,
            bytes_in: bi,
            outcome: o,
            scenario: Some(sc),
        }
    };

    // Lateral movement: marketing-analytics pod probes internal services, reaches the
    // staging VM (over-permissive SSH), then the ledger database from there.
    if let (Some(nb), Some(st), Some(db)) = (
        first("analytics-notebooks"),
        first("ledger-staging"),
        first("ledger-db"),
    ) {
        let sc = scenarios.len();
        let t0 = day0 * 1000 + (2 * 3_600 + 10 * 60) * 1000 + rng.below(600_000) as i64;
        let me = p.instance(nb, 0, t0 / 1000).expect("a replica");
        let mut t = t0;
        let probes = (instances / 10).clamp(8, 60);
        let targets: Vec<usize> = (0..bank.workloads.len())
            .filter(|&w| bank.workloads[w].segment != "marketing-analytics")
            .collect();
        for _ in 0..probes {
            t += rng.range(2_000, 20_000) as i64;
            let w = targets[rng.below(targets.len())];
            let Some(d) = p.instance(w, 0, t / 1000) else {
                continue;
            };
            let port = bank.workloads[w].ports[0].1;
            let o = if rng.chance(80) {
                Outcome::Dropped
            } else {
                Outcome::Ok
            };
            flows.push(flow(&mut rng, t, me, d, port, o, sc));
        }
        t += 30_000;
        let staging = End::Host(st, 0);
        for _ in 0..3 {
            t += rng.range(5_000, 60_000) as i64;
            flows.push(flow(&mut rng, t, me, staging, 22, Outcome::Ok, sc));
        }
        for _ in 0..4 {
            t += rng.range(20_000, 120_000) as i64;
            let mut f = flow(
                &mut rng,
                t,
                staging,
                End::Host(db, 0),
                1521,
                Outcome::Ok,
                sc,
            );
            f.bytes_in = rng.range(50_000, 900_000) as u64;
            flows.push(f);
        }
        scenarios.push(Scenario {
            id: "lateral-movement-1".into(),
            kind: "lateral-movement",
            techniques: &["T1046", "T1021"],
            description: "A compromised marketing-analytics pod probes internal services, reaches the core-ledger staging VM over SSH, and from there the ledger database (Oracle 1521).".into(),
            attacker: (bank.workloads[nb].name.clone(), p.addr(me)),
            start_ms: t0,
            end_ms: t,
        });
    }

    // Exfiltration from customer-data to an external address: a burst or a slow drip.
    if let Some(cdb) = first("customer-db") {
        let sc = scenarios.len();
        let burst = rng.chance(50);
        let t0 = day0 * 1000
            + if burst {
                3 * 3_600_000 + 1_200_000
            } else {
                9 * 3_600_000
            };
        let src = p.instance(cdb, 0, t0 / 1000).expect("a replica");
        let n = (instances / 15).clamp(6, 40);
        let span: i64 = if burst { 600_000 } else { 6 * 3_600_000 };
        let mut t_end = t0;
        for i in 0..n {
            let t = t0 + span * i as i64 / n as i64 + rng.below(10_000) as i64;
            let mut f = flow(
                &mut rng,
                t,
                src,
                End::External(EXFIL_ADDR),
                443,
                Outcome::Ok,
                sc,
            );
            f.bytes_out = if burst {
                rng.range(40_000_000, 90_000_000) as u64
            } else {
                rng.range(2_000_000, 8_000_000) as u64
            };
            f.dur_ms = if burst { 30_000 } else { 120_000 };
            t_end = t_end.max(t + f.dur_ms);
            flows.push(f);
        }
        scenarios.push(Scenario {
            id: "exfiltration-1".into(),
            kind: "exfiltration",
            techniques: &["T1041", "T1048"],
            description: format!(
                "Customer data sent from a customer-db pod to {EXFIL_ADDR}:443, {}.",
                if burst {
                    "in one burst of ten minutes"
                } else {
                    "slowly over six hours"
                }
            ),
            attacker: (bank.workloads[cdb].name.clone(), p.addr(src)),
            start_ms: t0,
            end_ms: t_end,
        });
    }

    // Internal scan: one notifications pod touches hundreds of address:port pairs in minutes.
    if let Some(sms) = first("sms-sender") {
        let sc = scenarios.len();
        let t0 = day0 * 1000 + 11 * 3_600_000 + rng.below(1_800_000) as i64;
        let me = p.instance(sms, 0, t0 / 1000).expect("a replica");
        let n = (instances * 2 / 3).clamp(40, 400);
        const PORTS: [u16; 8] = [22, 443, 1521, 3389, 5432, 6379, 8443, 9090];
        let mut t = t0;
        for _ in 0..n {
            t += rng.range(100, 900) as i64;
            let w = rng.below(bank.workloads.len());
            let wl = &bank.workloads[w];
            let Some(d) = p.instance(w, rng.below(wl.instances()), t / 1000) else {
                continue;
            };
            if d == me {
                continue;
            }
            let port = PORTS[rng.below(PORTS.len())];
            let o = if wl.ports.iter().any(|x| x.1 == port) && rng.chance(50) {
                Outcome::Ok
            } else if rng.chance(60) {
                Outcome::Rejected
            } else {
                Outcome::Dropped
            };
            let mut f = flow(&mut rng, t, me, d, port, o, sc);
            p.fix_time(&mut f);
            flows.push(f);
        }
        scenarios.push(Scenario {
            id: "internal-scan-1".into(),
            kind: "internal-scan",
            techniques: &["T1046"],
            description: format!(
                "An sms-sender pod connects to {n} address:port pairs in a few minutes; most fail."
            ),
            attacker: (bank.workloads[sms].name.clone(), p.addr(me)),
            start_ms: t0,
            end_ms: t,
        });
    }

    // Credential misuse: failed connections from one web-bff pod to IAM and to SSH on VMs.
    if let (Some(web), false) = (first("web-bff"), bank.by_app("iam").is_empty()) {
        let sc = scenarios.len();
        let t0 = day0 * 1000 + 15 * 3_600_000 + 1_800_000 + rng.below(600_000) as i64;
        let me = p.instance(web, 0, t0 / 1000).expect("a replica");
        let iam = bank.by_app("iam");
        let vms: Vec<(usize, usize)> = (0..bank.workloads.len())
            .filter(|&w| bank.workloads[w].kind == Kind::VmOnPrem)
            .flat_map(|w| (0..bank.workloads[w].hosts.len()).map(move |h| (w, h)))
            .collect();
        let n = (instances / 4).clamp(20, 200);
        let mut t = t0;
        for i in 0..n {
            t += rng.range(200, 3_000) as i64;
            let (d, port, o) = if i % 3 == 0 && !vms.is_empty() {
                let (w, h) = vms[rng.below(vms.len())];
                (End::Host(w, h), 22, Outcome::Rejected)
            } else {
                let w = iam[rng.below(iam.len())];
                let Some(d) = p.instance(w, rng.below(bank.workloads[w].instances()), t / 1000)
                else {
                    continue;
                };
                (d, 8443, Outcome::Rejected)
            };
            let mut f = flow(&mut rng, t, me, d, port, o, sc);
            p.fix_time(&mut f);
            flows.push(f);
        }
        scenarios.push(Scenario {
            id: "credential-misuse-1".into(),
            kind: "credential-misuse",
            techniques: &["T1110", "T1021.004"],
            description: "A web-bff pod fans out failed connections to the IAM service and to SSH on on-premises hosts.".into(),
            attacker: (bank.workloads[web].name.clone(), p.addr(me)),
            start_ms: t0,
            end_ms: t,
        });
    }
    for f in &mut flows {
        p.fix_time(f);
    }
    flows.sort_by_key(|f| f.time_ms);
    (scenarios, flows)
}
