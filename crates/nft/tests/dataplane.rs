//! Real dataplane tests: network namespaces joined by a bridge, TCP and UDP servers, compiled
//! rulesets applied with `nft`, and probes whose outcome must be the evaluator's. Needs root
//! (CI runs as root); skipped with a message otherwise.

mod common;
#[path = "common/netns.rs"]
mod netns;

use bulkhead_compile::Options;
use bulkhead_core::Protocol;
use bulkhead_intent::{Evaluator, Identity, Intent, Verdict, load_str};
use bulkhead_nft::{
    CounterKind, ModeOverride, NormalForm, Ruleset, compile_host, json, to_json, to_text,
};
use netns::{Lab, TCP_PORTS, UDP_PORTS, sh};
use std::net::IpAddr;

macro_rules! need_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: dataplane tests need root (network namespaces and nft)");
            return;
        }
    };
}

fn intent(yaml: &str) -> Intent {
    let l = load_str("test.yaml", yaml);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    l.intent
}

const HEADER: &str = "apiVersion: bulkhead.dev/v1alpha1\n";

fn segment(name: &str, mode: &str) -> String {
    format!(
        "---\n{HEADER}kind: Segment\nmetadata: {{name: {name}}}\nspec:\n  hostSelector: {{matchLabels: {{segment: {name}}}}}\n  mode: {mode}\n"
    )
}

/// Hosts `h0..` of the lab with the given `segment` labels (`""`: no label), in the inventory.
fn inventory(lab: &Lab, segments: &[&str]) -> Vec<Identity> {
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut labels = bulkhead_core::Labels::new();
            labels.insert("name".into(), format!("h{i}"));
            if !s.is_empty() {
                labels.insert("segment".into(), s.to_string());
            }
            Identity::host(
                &format!("h{i}"),
                labels,
                vec![IpAddr::V4(lab.v4[i]), IpAddr::V6(lab.v6[i])],
            )
        })
        .collect()
}

fn opts(inv: &[Identity]) -> Options {
    Options {
        inventory: inv.to_vec(),
        ..Options::default()
    }
}

/// Compiles and applies the intent on every inventory host of the lab (JSON).
fn apply_all(lab: &Lab, intent: &Intent, inv: &[Identity], force: ModeOverride) -> Vec<Ruleset> {
    let o = opts(inv);
    let rulesets = (0..inv.len())
        .map(|i| {
            let rs = compile_host(intent, &o, &inv[i].name, force).expect("compile");
            lab.nft(i)
                .apply_json(&to_json(&rs))
                .unwrap_or_else(|e| panic!("apply on h{i}: {e}"));
            rs
        })
        .collect();
    // Probes after this are judged by these rulesets alone.
    lab.forget_connections()
        .unwrap_or_else(|e| panic!("forgetting connections: {e}"));
    rulesets
}

/// web (h0), app (h1), db (h2) enforced; h3 is in no segment and not even in the inventory of
/// the policy's selectors: an external address.
const THREE_TIER: &str = r#"
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: guard}
spec:
  tier: guardrail
  rules:
    - name: app-may-reach-db
      action: pass
      from: [{segment: app}]
      to: [{segment: db}]
    - name: nobody-else-reaches-db
      action: deny
      from: [{any: true}]
      to: [{segment: db}]
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: apps}
spec:
  tier: application
  rules:
    - name: web-to-app
      action: allow
      from: [{segment: web}]
      to: [{segment: app}]
      ports: [{protocol: TCP, port: 8080}]
    - name: app-to-db
      action: allow
      from: [{segment: app}]
      to: [{segment: db}]
      ports: [{protocol: TCP, port: 443}]
    - name: outside-to-web
      action: allow
      from: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]
      to: [{segment: web}]
      ports: [{protocol: TCP, port: 443}]
---
apiVersion: bulkhead.dev/v1alpha1
kind: Policy
metadata: {name: base}
spec:
  tier: baseline
  rules:
    - name: dns-to-anyone
      action: allow
      from: [{any: true}]
      to: [{any: true}]
      ports: [{protocol: UDP, port: 53}]
"#;

fn three_tier(mode: &str) -> Intent {
    intent(&format!(
        "{}{}{}{THREE_TIER}",
        segment("web", mode),
        segment("app", mode),
        segment("db", mode)
    ))
}

#[test]
fn allowed_flows_connect_and_denied_do_not() {
    need_root!();
    let lab = Lab::new(4);
    let it = three_tier("enforce");
    let inv = inventory(&lab, &["web", "app", "db"]);
    let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
    assert!(rs.iter().all(|r| r.mode == bulkhead_nft::HostMode::Enforce));
    let v4 = |i: usize| IpAddr::V4(lab.v4[i]);
    let v6 = |i: usize| IpAddr::V6(lab.v6[i]);
    // (from, to, udp, port, connects, why)
    let cases: Vec<(usize, IpAddr, bool, u16, bool, &str)> = vec![
        (
            0,
            v4(1),
            false,
            8080,
            true,
            "web-to-app allows TCP 8080, both ends",
        ),
        (0, v6(1), false, 8080, true, "the same over IPv6"),
        (
            0,
            v4(1),
            false,
            80,
            false,
            "no rule allows web to app on 80: default deny",
        ),
        (
            1,
            v4(0),
            false,
            8080,
            false,
            "the rule is one-way: app to web is not allowed",
        ),
        (
            1,
            v4(2),
            false,
            443,
            true,
            "guardrail passes app, application allows 443",
        ),
        (1, v6(2), false, 443, true, "the same over IPv6"),
        (
            1,
            v4(2),
            false,
            80,
            false,
            "passed, but no rule allows 80: default deny",
        ),
        (0, v4(2), false, 443, false, "guardrail denies web to db"),
        (0, v6(2), false, 443, false, "the same over IPv6"),
        (
            0,
            v4(2),
            true,
            53,
            false,
            "the guardrail's deny comes before the baseline's DNS",
        ),
        (0, v4(1), true, 53, true, "baseline DNS to anyone"),
        (2, v4(0), true, 53, true, "baseline DNS from db to web"),
        (
            3,
            v4(0),
            false,
            443,
            true,
            "an outside address reaches web on 443",
        ),
        (3, v6(0), false, 443, true, "the same over IPv6"),
        (3, v4(0), false, 8080, false, "but not on 8080"),
        (3, v4(2), false, 443, false, "outside to db: guardrail deny"),
        (
            0,
            v4(3),
            false,
            80,
            false,
            "web's egress to the outside: default deny",
        ),
        (
            0,
            v4(0),
            false,
            80,
            true,
            "a host reaches itself (loopback)",
        ),
    ];
    let ev = Evaluator::new(&it).unwrap();
    let ext = |ip: IpAddr| Identity::external(ip);
    let probes: Vec<_> = cases.iter().map(|c| (c.0, c.1, c.2, c.3)).collect();
    let results = lab.connects_all(&probes);
    for ((from, to, udp, port, want, why), got) in cases.into_iter().zip(results) {
        let proto = if udp { "udp" } else { "tcp" };
        assert_eq!(got, want, "h{from} -> {to} {proto}/{port}: {why}");
        // The evaluator agrees (self-traffic is not a connection it judges).
        let to_i = (0..4).find(|&i| v4(i) == to || v6(i) == to).unwrap();
        if to_i != from {
            let id = |i: usize, ip: IpAddr| if i < 3 { inv[i].clone() } else { ext(ip) };
            let d = ev.decide(
                &id(from, v4(from)),
                &id(to_i, to),
                if udp { Protocol::Udp } else { Protocol::Tcp },
                port,
            );
            assert_eq!(d.verdict != Verdict::Deny, want, "evaluator on {why}");
        }
    }
}

#[test]
fn observe_mode_blocks_nothing_and_counts_what_it_would_block() {
    need_root!();
    let lab = Lab::new(3);
    let it = three_tier("observe");
    let inv = inventory(&lab, &["web", "app", "db"]);
    let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
    for r in &rs {
        assert_eq!(r.mode, bulkhead_nft::HostMode::Observe);
        assert!(!r.drops(), "observe mode never drops");
    }
    // Denied when enforced, yet it connects: web -> db 443 (guardrail deny on db's input).
    assert!(lab.connects(0, IpAddr::V4(lab.v4[2]), false, 443));
    // web -> app 80: no rule; db's neither: app's input default would block.
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 80));
    let read = |i: usize, name: &str| {
        lab.nft(i)
            .counters()
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.packets)
    };
    let deny = rs[2]
        .counters
        .iter()
        .find(|c| c.rule.contains("nobody-else-reaches-db") && c.direction == "input")
        .expect("a counter for the guardrail's deny on db");
    assert_eq!(deny.kind, CounterKind::WouldBlock);
    assert!(read(2, &deny.name) >= 1, "db counted web's connection");
    assert!(read(1, "in_default") >= 1, "app counted web's port 80");
    // web's output: web -> db is denied by the guardrail on web's side too.
    let out_deny = rs[0]
        .counters
        .iter()
        .find(|c| c.rule.contains("nobody-else-reaches-db") && c.direction == "output")
        .expect("a counter on web's output");
    assert!(read(0, &out_deny.name) >= 1);
    // An allowed flow counts nowhere: app -> db 443 leaves db's counters as they were.
    let before: u64 = lab
        .nft(2)
        .counters()
        .unwrap()
        .iter()
        .map(|c| c.packets)
        .sum();
    assert!(lab.connects(1, IpAddr::V4(lab.v4[2]), false, 443));
    let after: u64 = lab
        .nft(2)
        .counters()
        .unwrap()
        .iter()
        .map(|c| c.packets)
        .sum();
    assert_eq!(before, after);
}

#[test]
fn apply_leaves_foreign_tables_alone_and_reads_back_equal() {
    need_root!();
    let lab = Lab::new(2);
    let foreign = "table inet foreign {\n\tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 9 counter accept\n\t}\n}\n";
    lab.nft(0).apply_text(foreign).unwrap();
    let before = lab
        .nft(0)
        .run(&["list", "table", "inet", "foreign"], None)
        .unwrap();
    let it = three_tier("enforce");
    let inv = inventory(&lab, &["web", "app"]);
    for _ in 0..2 {
        let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
        let back = lab.nft(0).read_back().unwrap().expect("the table exists");
        assert_eq!(
            NormalForm::of(&rs[0]),
            back,
            "{:?}",
            NormalForm::of(&rs[0]).diff(&back)
        );
    }
    let after = lab
        .nft(0)
        .run(&["list", "table", "inet", "foreign"], None)
        .unwrap();
    assert_eq!(before, after, "the foreign table is untouched");
    // Text and JSON load the same table.
    let o = opts(&inv);
    let rs = compile_host(&it, &o, "h0", ModeOverride::Segments).unwrap();
    lab.nft(1).apply_text(&to_text(&rs)).unwrap();
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(NormalForm::of(&rs)));
}

#[test]
fn drift_is_detected_and_repaired() {
    need_root!();
    // h2 has no table: only app's own side judges h2 -> app.
    let lab = Lab::new(3);
    let it = three_tier("enforce");
    let inv = inventory(&lab, &["web", "app"]);
    let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
    let want = NormalForm::of(&rs[1]);
    assert!(!lab.connects(2, IpAddr::V4(lab.v4[1]), false, 80));
    let set = rs[1].sets.first().expect("app has a set").name.clone();
    // Someone adds an address to a set, a rule to the base chain, deletes a counter's rule.
    lab.nft(1)
        .run(
            &["add", "element", "inet", "bulkhead", &set, "{ 192.0.2.1 }"],
            None,
        )
        .unwrap();
    let back = lab.nft(1).read_back().unwrap().unwrap();
    assert_eq!(back.diff(&want), vec![format!("set {set} changed")]);
    lab.nft(1)
        .run(
            &["insert", "rule", "inet", "bulkhead", "input", "accept"],
            None,
        )
        .unwrap();
    let back = lab.nft(1).read_back().unwrap().unwrap();
    assert_eq!(back.diff(&want).len(), 2);
    // The drop of h2 -> app:80 no longer happens: the drift matters.
    assert!(lab.connects(2, IpAddr::V4(lab.v4[1]), false, 80));
    lab.nft(1).apply_json(&to_json(&rs[1])).unwrap();
    assert_eq!(lab.nft(1).read_back().unwrap(), Some(want));
    assert!(!lab.connects(2, IpAddr::V4(lab.v4[1]), false, 80));
    // A deleted table reads back as none.
    lab.nft(1).delete_table().unwrap();
    assert_eq!(lab.nft(1).read_back().unwrap(), None);
}

#[test]
fn a_rejected_apply_keeps_the_previous_ruleset() {
    need_root!();
    let lab = Lab::new(2);
    let it = three_tier("enforce");
    let inv = inventory(&lab, &["web", "app"]);
    let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
    // A ruleset the kernel rejects at commit, after nft accepted every object: the last rule
    // makes a chain jump to itself (a loop).
    let mut bad: serde_json::Value = serde_json::from_str(&to_json(&rs[1])).unwrap();
    let objs = bad["nftables"].as_array_mut().unwrap();
    objs.push(
        serde_json::json!({"add": {"rule": {"family": "inet", "table": "bulkhead",
        "chain": "in_application", "expr": [{"jump": {"target": "in_application"}}]}}}),
    );
    let err = lab.nft(1).apply_json(&bad.to_string()).unwrap_err();
    assert!(err.to_string().contains("nft"), "{err}");
    assert_eq!(
        lab.nft(1).read_back().unwrap(),
        Some(NormalForm::of(&rs[1]))
    );
    assert!(lab.connects(0, IpAddr::V4(lab.v4[1]), false, 8080));
    assert!(!lab.connects(0, IpAddr::V4(lab.v4[1]), false, 80));
}

/// A tiny deterministic generator (xorshift64*), seeded from `BULKHEAD_DIFF_SEED` or 7.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

/// A random intent over hosts h0..h3 (labels `segment: s0..s2`, `name: hN`) and the lab's
/// addresses (h4 is external).
fn random_intent(rng: &mut Rng, lab: &Lab) -> String {
    let mut y = String::new();
    for s in 0..3 {
        y += &segment(
            &format!("s{s}"),
            if rng.chance(70) { "enforce" } else { "observe" },
        );
    }
    let peer = |rng: &mut Rng| -> String {
        match rng.below(8) {
            0 => "{any: true}".into(),
            // Pods only: matches no host or outside address.
            7 => "{namespace: shop}".into(),
            1 | 2 => format!("{{segment: s{}}}", rng.below(3)),
            3 => format!(
                "{{selector: {{hostSelector: {{matchLabels: {{name: h{}}}}}}}}}",
                rng.below(4)
            ),
            4 => format!("{{cidr: {}/32}}", lab.v4[rng.below(5)]),
            5 => format!(
                "{{cidr: {}/30, except: [{}/32]}}",
                lab.v4[0],
                lab.v4[rng.below(3)]
            ),
            _ => format!("{{cidr: \"{}/128\"}}", lab.v6[rng.below(5)]),
        }
    };
    for (p, tier) in ["guardrail", "application", "baseline"].iter().enumerate() {
        y += &format!(
            "---\n{HEADER}kind: Policy\nmetadata: {{name: p{p}}}\nspec:\n  tier: {tier}\n  rules:\n"
        );
        for _ in 0..rng.below(4) + 1 {
            let action = ["allow", "allow", "deny", "pass"][rng.below(4)];
            let from: Vec<String> = (0..rng.below(2) + 1).map(|_| peer(rng)).collect();
            let to: Vec<String> = (0..rng.below(2) + 1).map(|_| peer(rng)).collect();
            y += &format!(
                "    - action: {action}\n      from: [{}]\n      to: [{}]\n",
                from.join(", "),
                to.join(", ")
            );
            if rng.chance(70) {
                let ports = [
                    "{protocol: TCP, port: 80}",
                    "{protocol: TCP, port: 443}",
                    "{protocol: TCP, port: 8000, endPort: 8100}",
                    "{protocol: UDP, port: 53}",
                    "{protocol: UDP}",
                ];
                let ps: Vec<&str> = (0..rng.below(2) + 1).map(|_| ports[rng.below(5)]).collect();
                y += &format!("      ports: [{}]\n", ps.join(", "));
            }
        }
    }
    y
}

#[test]
fn differential_kernel_verdicts_equal_the_evaluators() {
    need_root!();
    let seed: u64 = std::env::var("BULKHEAD_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let intents: usize = std::env::var("BULKHEAD_DIFF_INTENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut rng = Rng(seed | 1);
    let lab = Lab::new(5);
    // h0..h3 in the inventory with segment labels (h3 in none), h4 an outside address.
    let inv = inventory(&lab, &["s0", "s1", "s2", ""]);
    let mut probes_run = 0;
    let mut denied = 0;
    for n in 0..intents {
        let yaml = random_intent(&mut rng, &lab);
        let it = intent(&yaml);
        let ev = Evaluator::new(&it).unwrap();
        let rs = apply_all(&lab, &it, &inv, ModeOverride::Segments);
        let id = |i: usize, v6: bool| {
            if i < 4 {
                inv[i].clone()
            } else {
                Identity::external(if v6 {
                    IpAddr::V6(lab.v6[4])
                } else {
                    IpAddr::V4(lab.v4[4])
                })
            }
        };
        // Every ordered pair of distinct hosts, a few services each, IPv4 and some IPv6.
        let mut probes = Vec::new();
        let mut expected = Vec::new();
        for a in 0..5 {
            for b in 0..5 {
                if a == b {
                    continue;
                }
                let mut services: Vec<(bool, u16)> =
                    TCP_PORTS.iter().map(|&p| (false, p)).collect();
                services.extend(UDP_PORTS.iter().map(|&p| (true, p)));
                for (udp, port) in services {
                    let v6 = rng.chance(25);
                    let to = if v6 {
                        IpAddr::V6(lab.v6[b])
                    } else {
                        IpAddr::V4(lab.v4[b])
                    };
                    // The source's address follows the destination's family.
                    let d = ev.decide(
                        &id(a, v6),
                        &id(b, v6),
                        if udp { Protocol::Udp } else { Protocol::Tcp },
                        port,
                    );
                    probes.push((a, to, udp, port));
                    expected.push((b, d));
                }
            }
        }
        let results = lab.connects_all(&probes);
        for (((a, to, udp, port), (b, d)), got) in probes.into_iter().zip(expected).zip(results) {
            probes_run += 1;
            let want = d.verdict != Verdict::Deny;
            denied += usize::from(!want);
            if got != want {
                let texts: Vec<String> = rs.iter().map(to_text).collect();
                panic!(
                    "intent #{n} (seed {seed}): h{a} -> h{b} ({to}) {}/{port}: kernel {}, \
                     evaluator {:?} ({})\n--- intent ---\n{yaml}\n--- rulesets ---\n{}",
                    if udp { "udp" } else { "tcp" },
                    if got { "connects" } else { "blocks" },
                    d.verdict,
                    ev.describe(&it, &d),
                    texts.join("\n")
                );
            }
        }
    }
    eprintln!("{intents} intents, {probes_run} probes, {denied} denied, all equal");
    assert!(
        denied > 0 && denied < probes_run,
        "the probes exercise both outcomes"
    );
    let _ = (sh, json::ND_TYPES);
}
