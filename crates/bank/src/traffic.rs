//! Normal traffic (BANK.md's "traffic that is normal") and the labelled attacks.

use crate::model::{Bank, partner};
use bulkhead_synth::SplitMix64;
use std::net::Ipv4Addr;

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A pod (index into `Bank::pods`).
    Pod(usize),
    /// A VM: workload and host index.
    Host(usize, usize),
    /// Outside the bank.
    External(Ipv4Addr),
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused (RST / REJECT).
    Rejected,
    /// No answer (dropped by a filter).
    Dropped,
}

/// One simulated connection.
#[derive(Clone, Debug)]
pub struct SimFlow {
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    pub dur_ms: i64,
    pub src: End,
    pub dst: End,
    pub sport: u16,
    pub dport: u16,
    /// 6 or 17.
    pub proto: u8,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub outcome: Outcome,
    /// The attack scenario it belongs to.
    pub scenario: Option<usize>,
}

/// How an edge's rate varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// Customer traffic: peaks in the day and evening, low at night; on weekends and bank
    /// holidays [`WEEKEND_LOAD`] of it, with a later morning.
    Diurnal,
    /// Interbank settlement (SWIFT, TARGET2 hours): the diurnal curve on business days,
    /// [`CLOSED_LOAD`] of it on weekends and bank holidays.
    Business,
    /// Constant (infrastructure).
    Flat,
    /// Night batch window, 00:30–04:30.
    Night,
    /// Only on the last day of a month, 20:00–24:00.
    MonthEnd,
}

/// Destination of an edge.
#[derive(Clone, Copy, Debug)]
pub enum Dst {
    App(&'static str),
    Partner(&'static str),
}

/// Source of an edge: one role, every instance of every workload, or the outside.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    App(&'static str),
    /// Every pod (`true`: only Kubernetes, `false`: only VMs).
    Every(bool),
    Partner(&'static str),
}

pub struct Edge {
    pub from: Src,
    pub to: Dst,
    pub port: u16,
    pub proto: u8,
    /// Flows per minute at the peak, at the default size (per instance for `Src::Every`).
    pub rate: f64,
    pub curve: Curve,
}

const fn e(from: Src, to: Dst, port: u16, proto: u8, rate: f64, curve: Curve) -> Edge {
    Edge {
        from,
        to,
        port,
        proto,
        rate,
        curve,
    }
}

use Curve::*;
use Dst::App as T;
use Src::App as F;

/// BANK.md's normal traffic.
#[rustfmt::skip]
pub const EDGES: &[Edge] = &[
    e(F("mobile-bff"), T("api-gateway"), 8443, 6, 20.0, Diurnal),
    e(F("web-bff"), T("api-gateway"), 8443, 6, 12.0, Diurnal),
    e(F("partner-portal"), T("open-banking-gateway"), 8443, 6, 3.0, Diurnal),
    e(F("waf"), T("api-gateway"), 8443, 6, 8.0, Diurnal),
    e(Src::Partner("tpp-fintech-a"), T("waf"), 443, 6, 3.0, Diurnal),
    e(Src::Partner("tpp-fintech-b"), T("waf"), 443, 6, 2.0, Diurnal),
    e(F("api-gateway"), T("iam"), 8443, 6, 15.0, Diurnal),
    e(F("api-gateway"), T("accounts"), 8443, 6, 12.0, Diurnal),
    e(F("api-gateway"), T("payment-orchestrator"), 8443, 6, 6.0, Diurnal),
    e(F("open-banking-gateway"), T("accounts"), 9090, 6, 3.0, Diurnal),
    e(F("open-banking-gateway"), T("iam"), 8443, 6, 2.0, Diurnal),
    e(F("iam"), T("session-store"), 6379, 6, 15.0, Diurnal),
    e(F("iam"), T("mfa"), 8443, 6, 3.0, Diurnal),
    e(F("mfa"), T("session-store"), 6379, 6, 3.0, Diurnal),
    e(F("iam"), T("customer-profile"), 9090, 6, 2.0, Diurnal),
    e(F("accounts"), T("customer-db"), 5432, 6, 10.0, Diurnal),
    e(F("customer-profile"), T("customer-db"), 5432, 6, 4.0, Diurnal),
    e(F("statements"), T("document-store"), 8443, 6, 2.0, Diurnal),
    e(F("document-store"), T("data-protection-vault"), 8443, 6, 1.0, Diurnal),
    e(F("accounts"), T("core-banking"), 8443, 6, 4.0, Diurnal),
    e(F("payment-orchestrator"), T("fraud-scoring"), 9090, 6, 6.0, Diurnal),
    e(F("sepa-instant"), T("fraud-scoring"), 9090, 6, 3.0, Diurnal),
    e(F("payment-orchestrator"), T("sepa-instant"), 9090, 6, 3.0, Diurnal),
    e(F("payment-orchestrator"), T("card-auth"), 8583, 6, 3.0, Diurnal),
    e(F("payment-orchestrator"), T("core-banking"), 8443, 6, 5.0, Diurnal),
    e(F("sepa-instant"), T("swift-gateway"), 1414, 6, 1.0, Business),
    e(F("swift-gateway"), Dst::Partner("swift-network"), 443, 6, 0.5, Business),
    e(F("card-auth"), T("hsm"), 1500, 6, 3.0, Diurnal),
    e(F("card-auth"), T("tokenisation"), 8443, 6, 2.0, Diurnal),
    e(F("card-auth"), Dst::Partner("card-scheme"), 8583, 6, 2.0, Diurnal),
    e(F("core-banking"), T("ledger-db"), 1521, 6, 8.0, Diurnal),
    e(F("fraud-scoring"), T("feature-store"), 9090, 6, 6.0, Diurnal),
    e(F("payment-orchestrator"), T("kafka"), 9092, 6, 4.0, Diurnal),
    e(F("accounts"), T("kafka"), 9092, 6, 2.0, Diurnal),
    e(F("fraud-consumer"), T("kafka"), 9092, 6, 3.0, Flat),
    e(F("sms-sender"), T("kafka"), 9092, 6, 1.0, Flat),
    e(F("email-sender"), T("kafka"), 9092, 6, 1.0, Flat),
    e(F("push-sender"), T("kafka"), 9092, 6, 1.0, Flat),
    e(F("datalake-loader"), T("kafka"), 9092, 6, 2.0, Flat),
    e(F("campaign"), T("kafka"), 9092, 6, 0.5, Diurnal),
    e(F("analytics-notebooks"), T("datalake-loader"), 8443, 6, 0.5, Diurnal),
    e(F("campaign"), T("push-sender"), 8443, 6, 0.5, Diurnal),
    e(F("kafka"), T("schema-registry"), 8081, 6, 1.0, Flat),
    e(F("sms-sender"), Dst::Partner("sms-provider"), 443, 6, 1.0, Diurnal),
    e(F("email-sender"), Dst::Partner("email-provider"), 443, 6, 1.0, Diurnal),
    e(F("push-sender"), Dst::Partner("push-provider"), 443, 6, 2.0, Diurnal),
    e(F("bastion"), T("core-banking"), 22, 6, 0.1, Diurnal),
    e(F("bastion"), T("kafka"), 22, 6, 0.05, Diurnal),
    e(F("batch-scheduler"), T("ledger-db"), 1521, 6, 20.0, Night),
    e(F("batch-scheduler"), T("core-banking"), 8443, 6, 4.0, Night),
    e(F("nightly-extract"), T("ledger-db"), 1521, 6, 8.0, Night),
    e(F("regulatory-reporting"), T("ledger-db"), 1521, 6, 4.0, Night),
    e(F("backup"), T("ledger-db"), 1521, 6, 2.0, Night),
    e(F("batch-scheduler"), T("ledger-db"), 50000, 6, 10.0, MonthEnd),
    e(F("regulatory-reporting"), Dst::Partner("regulator"), 443, 6, 3.0, MonthEnd),
    e(Src::Every(true), T("coredns"), 53, 17, 0.2, Flat),
    e(Src::Every(false), T("dns-resolver"), 53, 17, 0.2, Flat),
    e(Src::Every(false), T("ntp"), 123, 17, 0.1, Flat),
    e(Src::Every(true), T("log-collector"), 4317, 6, 0.1, Flat),
    e(Src::Every(false), T("log-collector"), 6514, 6, 0.1, Flat),
    e(F("hsm"), T("log-collector"), 514, 17, 1.0, Flat),
    e(F("card-auth"), T("log-collector"), 514, 17, 1.0, Flat),
];

/// Monitoring: Prometheus scrapes every instance's 9100 this often per minute.
const SCRAPE_RATE: f64 = 0.2;

/// The diurnal curve in 0..=1 at a time of day (hours, UTC as the bank's local time).
pub fn diurnal(h: f64) -> f64 {
    let g = |mu: f64, s: f64| (-(h - mu) * (h - mu) / (2.0 * s * s)).exp();
    (0.06 + 0.35 * g(9.5, 1.5) + 0.75 * g(13.5, 2.5) + 0.55 * g(20.0, 1.8)).min(1.0)
}

/// Customer load on weekends and bank holidays, as a share of a business day's at the same
/// hour (after the later morning, see [`curve`]).
pub const WEEKEND_LOAD: f64 = 0.55;
/// Interbank settlement on weekends and bank holidays, as a share of a business day's.
pub const CLOSED_LOAD: f64 = 0.02;

/// Day of the week of `t` (seconds): 0 Monday … 6 Sunday.
pub fn weekday(t: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (t.div_euclid(86_400) + 3).rem_euclid(7) as u32
}

/// Whether `t` (seconds) is on a bank holiday: the TARGET2 closing days (1 January, Good
/// Friday, Easter Monday, 1 May, 25 and 26 December).
pub fn is_bank_holiday(t: i64) -> bool {
    let day = t.div_euclid(86_400);
    let (y, m, d) = crate::time::civil(day);
    if matches!((m, d), (1, 1) | (5, 1) | (12, 25) | (12, 26)) {
        return true;
    }
    let easter = crate::time::easter(y);
    day == easter - 2 || day == easter + 1
}

/// Whether `t` (seconds) is on a weekend or a bank holiday (banks' channels are quieter, the
/// interbank systems are closed; batch and month-end runs still happen).
pub fn is_closed_day(t: i64) -> bool {
    weekday(t) >= 5 || is_bank_holiday(t)
}

/// Whether `t` (seconds) is on the last day of its month.
pub fn is_month_end(t: i64) -> bool {
    let (_, m, _) = crate::time::civil(t.div_euclid(86_400));
    let (_, m2, _) = crate::time::civil(t.div_euclid(86_400) + 1);
    m != m2
}

pub fn curve(c: Curve, t: i64) -> f64 {
    let h = (t.rem_euclid(86_400)) as f64 / 3_600.0;
    match c {
        Diurnal if is_closed_day(t) => WEEKEND_LOAD * diurnal((h - 1.5).max(0.0)),
        Diurnal => diurnal(h),
        Business if is_closed_day(t) => CLOSED_LOAD * diurnal(h),
        Business => diurnal(h),
        Flat => 1.0,
        Night => {
            if (0.5..4.5).contains(&h) {
                1.0
            } else {
                0.0
            }
        }
        MonthEnd => {
            if h >= 20.0 && is_month_end(t) {
                1.0
            } else {
                0.0
            }
        }
    }
}

/// Request and response sizes (bytes) and duration (ms) by destination port.
pub fn sizes(rng: &mut SplitMix64, port: u16) -> (u64, u64, i64) {
    let (a, b, c, d, e, f): (usize, usize, usize, usize, usize, usize) = match port {
        443 | 8443 => (400, 4_000, 800, 40_000, 20, 800),
        9090 | 8081 => (200, 2_000, 200, 6_000, 5, 200),
        6379 => (60, 300, 60, 2_000, 1, 5),
        5432 => (200, 3_000, 500, 60_000, 2, 300),
        9092 => (500, 60_000, 100, 1_000, 50, 5_000),
        1414 => (1_000, 8_000, 200, 1_000, 20, 500),
        8583 => (200, 600, 100, 400, 30, 300),
        1500 => (60, 200, 40, 160, 1, 10),
        1521 | 50000 => (500, 5_000, 2_000, 2_000_000, 10, 60_000),
        53 => (40, 80, 80, 300, 1, 20),
        123 => (48, 48, 48, 48, 1, 5),
        9100 => (150, 250, 5_000, 40_000, 5, 100),
        4317 | 6514 => (1_000, 100_000, 100, 500, 10, 2_000),
        514 => (150, 1_400, 0, 0, 0, 1),
        22 => (2_000, 50_000, 2_000, 200_000, 1_000, 600_000),
        _ => (100, 1_000, 100, 1_000, 1, 100),
    };
    (
        rng.range(a, b) as u64,
        rng.range(c, d) as u64,
        rng.range(e, f) as i64,
    )
}

/// Ephemeral source port (Linux default range).
pub fn ephemeral(rng: &mut SplitMix64) -> u16 {
    rng.range(32_768, 60_999) as u16
}

/// Resolves the instances of roles and draws endpoints.
pub struct Picker<'a> {
    pub bank: &'a Bank,
}

impl Picker<'_> {
    /// A random instance of one of the workloads, alive at `t`.
    pub fn pick(&self, rng: &mut SplitMix64, ws: &[usize], t: i64) -> Option<End> {
        if ws.is_empty() {
            return None;
        }
        let w = ws[rng.below(ws.len())];
        self.instance(w, rng.below(self.bank.workloads[w].instances()), t)
    }

    pub fn instance(&self, w: usize, i: usize, t: i64) -> Option<End> {
        let wl = &self.bank.workloads[w];
        if wl.kind.is_vm() {
            (i < wl.hosts.len()).then_some(End::Host(w, i))
        } else if i < wl.slots.len() {
            Some(End::Pod(self.bank.pod_at(w, i, t)))
        } else {
            None
        }
    }

    pub fn addr(&self, e: End) -> Ipv4Addr {
        match e {
            End::Pod(p) => self.bank.pods[p].ip,
            End::Host(w, h) => self.bank.workloads[w].hosts[h].1,
            End::External(a) => a,
        }
    }

    /// A flow's start no earlier than its pods' starts (a restart gap moves it forward).
    pub fn fix_time(&self, f: &mut SimFlow) {
        for e in [f.src, f.dst] {
            if let End::Pod(p) = e {
                let s = self.bank.pods[p].start * 1000;
                if f.time_ms < s {
                    f.time_ms = s + 50;
                }
            }
        }
        for e in [f.src, f.dst] {
            if let End::Pod(p) = e
                && let Some(end) = self.bank.pods[p].end
            {
                f.time_ms = f.time_ms.min(end * 1000 - 1_000);
                f.dur_ms = f.dur_ms.min((end * 1000 - f.time_ms).max(1));
            }
        }
    }
}

/// The background generator, minute by minute.
pub struct Background<'a> {
    picker: Picker<'a>,
    rng: SplitMix64,
    scale: f64,
    rate: f64,
    instances: usize,
    all: Vec<usize>,
    /// Per edge: source workloads and destination workloads.
    edges: Vec<(Vec<usize>, Vec<usize>)>,
    all_pods_w: Vec<usize>,
    all_vms_w: Vec<usize>,
    prometheus: Vec<usize>,
    /// The next ephemeral port per source address.
    ports: Ports,
}

/// Ephemeral ports per source address, handed out in turn from a per-address starting point
/// (as Linux does per destination): a client does not reuse a port until it has cycled
/// through the range, so two connections of one client and server never share a 5-tuple
/// within minutes (the ingest folds a Hubble connection's events by 5-tuple).
#[derive(Default)]
pub struct Ports(std::collections::HashMap<Ipv4Addr, u16>);

impl Ports {
    pub fn next(&mut self, a: Ipv4Addr) -> u16 {
        const LO: u32 = 32_768;
        const N: u32 = 60_999 - 32_768 + 1;
        let p = self.0.entry(a).or_insert_with(|| {
            let h = u32::from(a).wrapping_mul(0x9E37_79B9);
            (LO + (h >> 8) % N) as u16
        });
        let now = *p;
        *p = (LO + (u32::from(now) - LO + 1) % N) as u16;
        now
    }
}

impl<'a> Background<'a> {
    pub fn new(bank: &'a Bank, seed: u64, rate: f64) -> Self {
        let base_total = crate::model::base_total() as f64;
        let scale =
            rate * bank.workloads.iter().map(|w| w.instances()).sum::<usize>() as f64 / base_total;
        let edges = EDGES
            .iter()
            .map(|e| {
                let src = match e.from {
                    Src::App(a) => bank.by_app(a),
                    _ => Vec::new(),
                };
                let dst = match e.to {
                    Dst::App(a) => bank.by_app(a),
                    Dst::Partner(_) => Vec::new(),
                };
                (src, dst)
            })
            .collect();
        let (vms, pods): (Vec<usize>, Vec<usize>) =
            (0..bank.workloads.len()).partition(|&w| bank.workloads[w].kind.is_vm());
        Background {
            picker: Picker { bank },
            rng: SplitMix64::stream(seed, 3),
            scale,
            rate,
            instances: bank.workloads.iter().map(|w| w.instances()).sum(),
            all: (0..bank.workloads.len()).collect(),
            edges,
            all_pods_w: pods,
            all_vms_w: vms,
            prometheus: bank.by_app("prometheus"),
            ports: Ports::default(),
        }
    }

    /// The flows of the minute starting at `t` (seconds), unsorted.
    pub fn minute(&mut self, t: i64, out: &mut Vec<SimFlow>) {
        let bank = self.picker.bank;
        let rng = &mut self.rng;
        let p = &self.picker;
        for (ei, edge) in EDGES.iter().enumerate() {
            let c = curve(edge.curve, t);
            if c == 0.0 {
                continue;
            }
            let (src_ws, dst_ws) = &self.edges[ei];
            let (src_ws, k) = match edge.from {
                Src::Every(pods) => {
                    let ws = if pods {
                        &self.all_pods_w
                    } else {
                        &self.all_vms_w
                    };
                    let n: usize = ws.iter().map(|&w| bank.workloads[w].instances()).sum();
                    (ws, count(rng, edge.rate * n as f64 * c * self.rate))
                }
                _ => (src_ws, count(rng, edge.rate * c * self.scale)),
            };
            for _ in 0..k {
                let ts = t + rng.below(60) as i64;
                let src = match edge.from {
                    Src::Partner(name) => Some(End::External(partner(name))),
                    _ => p.pick(rng, src_ws, ts),
                };
                let dst = match edge.to {
                    Dst::Partner(name) => Some(End::External(partner(name))),
                    Dst::App(_) => p.pick(rng, dst_ws, ts),
                };
                if let (Some(s), Some(d)) = (src, dst) {
                    push(
                        p,
                        rng,
                        &mut self.ports,
                        out,
                        ts,
                        s,
                        d,
                        edge.port,
                        edge.proto,
                    );
                }
            }
        }
        // Monitoring scrapes every instance's node exporter.
        let k = count(rng, SCRAPE_RATE * self.instances as f64 * self.rate);
        for _ in 0..k {
            let ts = t + rng.below(60) as i64;
            if let (Some(s), Some(d)) = (
                p.pick(rng, &self.prometheus, ts),
                p.pick(rng, &self.all, ts),
            ) {
                push(p, rng, &mut self.ports, out, ts, s, d, 9100, 6);
            }
        }
    }
}

/// A whole number of events with `mean` as expectation (floor, plus one with the fraction's
/// probability).
fn count(rng: &mut SplitMix64, mean: f64) -> usize {
    let n = mean.floor();
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    n as usize + usize::from(u < mean - n)
}

#[allow(clippy::too_many_arguments)]
fn push(
    p: &Picker,
    rng: &mut SplitMix64,
    ports: &mut Ports,
    out: &mut Vec<SimFlow>,
    ts: i64,
    s: End,
    d: End,
    port: u16,
    proto: u8,
) {
    if s == d {
        return;
    }
    let (bo, bi, dur) = sizes(rng, port);
    let mut f = SimFlow {
        time_ms: ts * 1000 + rng.below(1000) as i64,
        dur_ms: dur,
        src: s,
        dst: d,
        sport: ports.next(p.addr(s)),
        dport: port,
        proto,
        bytes_out: bo,
        bytes_in: bi,
        outcome: Outcome::Ok,
        scenario: None,
    };
    p.fix_time(&mut f);
    out.push(f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days;

    #[test]
    fn weekdays_and_bank_holidays() {
        let at = |y, m, d| days(y, m, d) * 86_400 + 12 * 3_600;
        for (y, m, d, wd, closed, msg) in [
            (2026, 10, 30, 4, false, "a Friday"),
            (2026, 10, 31, 5, true, "a Saturday"),
            (2026, 11, 1, 6, true, "a Sunday"),
            (2026, 11, 2, 0, false, "a Monday"),
            (2026, 4, 3, 4, true, "Good Friday 2026"),
            (2026, 4, 6, 0, true, "Easter Monday 2026"),
            (2026, 4, 7, 1, false, "the Tuesday after Easter"),
            (2026, 5, 1, 4, true, "1 May"),
            (2026, 12, 25, 4, true, "Christmas"),
            (2026, 12, 24, 3, false, "Christmas Eve is open"),
        ] {
            assert_eq!(weekday(at(y, m, d)), wd, "{msg}: weekday");
            assert_eq!(is_closed_day(at(y, m, d)), closed, "{msg}: closed");
        }
    }

    #[test]
    fn weekend_curves() {
        let fri = crate::DEFAULT_START + 14 * 3_600;
        let sat = fri + 86_400;
        assert!(curve(Diurnal, sat) < 0.7 * curve(Diurnal, fri));
        assert!(curve(Business, sat) < 0.05 * curve(Business, fri));
        for c in [Flat, Night] {
            for h in [2, 14] {
                let (a, b) = (fri - 14 * 3_600 + h * 3_600, sat - 14 * 3_600 + h * 3_600);
                assert_eq!(
                    curve(c, a),
                    curve(c, b),
                    "{c:?} at {h}:00 the same on Saturday"
                );
            }
        }
        assert!(
            curve(MonthEnd, sat + 7 * 3_600) > 0.0,
            "month end on a Saturday runs"
        );
    }
}
