//! Quarantine as an intent overlay, judged by the evaluator:
//! - with the overlay, every connection to or from the quarantined workload is `Deny` except
//!   with the segments that keep access (both directions `Allow`), and every other connection
//!   keeps its verdict (the overlay only names the workload);
//! - releasing (removing the file) restores exactly the previous verdicts;
//! - an expired quarantine is left out by the loader (injected clock);
//! - unknown workloads are refused with a clear error; the files lint clean.

use bulkhead_core::{Labels, Protocol};
use bulkhead_intent::quarantine::{self as q, Request, Subject};
use bulkhead_intent::{
    Evaluator, Identity, Intent, LintOptions, Severity, Universe, Verdict, lint, load_paths_at,
};
use proptest::prelude::*;
use std::path::Path;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const APPS: [&str; 4] = ["a", "b", "c", "d"];
const NSS: [&str; 2] = ["n1", "n2"];
const PORTS: [u16; 4] = [22, 80, 443, 8080];

fn pod(ns: usize, i: usize, app: usize) -> Identity {
    Identity::workload(
        NSS[ns],
        &format!("w{i}"),
        labels(&[("app", APPS[app]), ("i", &i.to_string())]),
        labels(&[("kubernetes.io/metadata.name", NSS[ns])]),
    )
}

fn cluster(pods: &[(usize, usize)], hosts: usize) -> Vec<Identity> {
    let mut ids: Vec<Identity> = pods
        .iter()
        .enumerate()
        .map(|(i, &(ns, app))| pod(ns, i, app))
        .collect();
    for h in 0..hosts {
        ids.push(Identity::host(
            &format!("h{h}"),
            labels(&[("app", APPS[h % 4])]),
            vec![format!("192.0.2.{}", h + 1).parse().unwrap()],
        ));
    }
    ids.push(Identity::external("198.51.100.1".parse().unwrap()));
    ids
}

/// Every verdict between distinct identities on every sample port (TCP).
fn verdicts(intent: &Intent, ids: &[Identity]) -> Vec<Verdict> {
    let ev = Evaluator::new(intent).expect("evaluates");
    let mut v = Vec::new();
    for s in ids {
        for d in ids {
            if s.name == d.name {
                continue;
            }
            for &p in &PORTS {
                v.push(ev.decide(s, d, Protocol::Tcp, p).verdict);
            }
        }
    }
    v
}

fn base_yaml(segs: &[(usize, bool, bool)], rules: &[(usize, usize, usize, usize, bool)]) -> String {
    let mut y = String::new();
    for (i, &(app, enforce, access)) in segs.iter().enumerate() {
        let label = if access {
            "\n  labels: {bulkhead.dev/access: management}"
        } else {
            ""
        };
        y.push_str(&format!(
            "---\napiVersion: bulkhead.dev/v1alpha1\nkind: Segment\nmetadata:\n  name: s{i}{label}\nspec: {{podSelector: {{matchLabels: {{app: {}}}}}, hostSelector: {{matchLabels: {{app: {}}}}}, mode: {}}}\n",
            APPS[app],
            APPS[app],
            if enforce { "enforce" } else { "observe" }
        ));
    }
    y.push_str("---\napiVersion: bulkhead.dev/v1alpha1\nkind: Policy\nmetadata: {name: app}\nspec:\n  tier: application\n  rules:");
    if rules.is_empty() {
        y.push_str(" []");
    }
    y.push('\n');
    for &(action, from, to, port, all_ports) in rules {
        let peer = |k: usize| {
            if k < segs.len() {
                format!("{{segment: s{k}}}")
            } else {
                "{any: true}".to_string()
            }
        };
        let ports = if all_ports {
            String::new()
        } else {
            format!(", ports: [{{port: {}}}]", PORTS[port])
        };
        y.push_str(&format!(
            "    - {{action: {}, from: [{}], to: [{}]{ports}}}\n",
            ["allow", "deny"][action],
            peer(from),
            peer(to)
        ));
    }
    y
}

fn request(subject: Subject, allow_to: Vec<String>, expires: Option<i64>) -> Request {
    Request {
        subject,
        allow_to,
        reason: "INC-1: test".into(),
        who: "tester".into(),
        created: 1_800_000_000,
        expires,
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn load_dir(dir: &Path, now: Option<i64>) -> Intent {
    let l = load_paths_at(&[dir], now);
    let errs: Vec<String> = l
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    l.intent
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    #[test]
    fn quarantine_denies_all_but_access_and_release_restores(
        segs in prop::collection::vec((0..4usize, any::<bool>(), any::<bool>()), 1..4),
        rules in prop::collection::vec((0..2usize, 0..4usize, 0..4usize, 0..4usize, any::<bool>()), 1..6),
        pods in prop::collection::vec((0..2usize, 0..4usize), 2..6),
        hosts in 0..3usize,
        victim in any::<prop::sample::Index>(),
        allow in prop::option::of(0..3usize),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.yaml", &base_yaml(&segs, &rules));
        let ids = cluster(&pods, hosts);
        let before_intent = load_dir(dir.path(), Some(0));
        let before = verdicts(&before_intent, &ids);
        // Any workload or host.
        let candidates: Vec<&Identity> = ids.iter().filter(|i| i.kind != bulkhead_intent::IdentityKind::External).collect();
        let w = candidates[victim.index(candidates.len())];
        let subject = Subject::find(&w.name, &ids).unwrap();
        let allow_to: Vec<String> = allow.filter(|&a| a < segs.len()).map(|a| format!("s{a}")).into_iter().collect();
        let r = q::render(&before_intent, &ids, &request(subject, allow_to.clone(), None)).unwrap();
        write(dir.path(), &r.path, &r.yaml);
        let with = load_dir(dir.path(), Some(0));
        // The files lint clean (the base's own findings aside: none come from the overlay).
        let ev = Evaluator::new(&with).unwrap();
        let uni = Universe::new(&ev, ids.clone());
        for d in lint(&with, &LintOptions { universe: Some(&uni) }) {
            prop_assert!(d.severity != Severity::Error || !d.loc.file.contains("quarantine"), "{d}");
        }
        // Access: --allow-to and segments labelled bulkhead.dev/access.
        let access: Vec<&bulkhead_intent::Segment> = with
            .segments
            .iter()
            .filter(|s| allow_to.contains(&s.meta.name) || matches!(s.meta.labels.get(q::ACCESS_LABEL).map(String::as_str), Some("management" | "forensics")))
            .collect();
        prop_assert_eq!(r.access.len(), access.len());
        let in_access = |id: &Identity| access.iter().any(|s| s.selector.matches(id));
        let mut k = 0;
        for s in &ids {
            for d in &ids {
                if s.name == d.name {
                    continue;
                }
                for &p in &PORTS {
                    let got = ev.decide(s, d, Protocol::Tcp, p).verdict;
                    let want = if s.name == w.name {
                        if in_access(d) { Verdict::Allow } else { Verdict::Deny }
                    } else if d.name == w.name {
                        if in_access(s) { Verdict::Allow } else { Verdict::Deny }
                    } else {
                        before[k]
                    };
                    prop_assert_eq!(got, want, "{} -> {} {}\n{}", s.name, d.name, p, r.yaml);
                    k += 1;
                }
            }
        }
        // Release: the file removed, the previous verdicts exactly.
        std::fs::remove_file(dir.path().join(&r.path)).unwrap();
        prop_assert_eq!(verdicts(&load_dir(dir.path(), Some(0)), &ids), before);
    }
}

#[test]
fn an_expired_quarantine_releases_itself() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.yaml",
        &base_yaml(&[(0, false, false)], &[(0, 2, 2, 1, true)]),
    );
    let ids = cluster(&[(0, 0), (0, 1)], 1);
    let base = load_dir(dir.path(), None);
    let before = verdicts(&base, &ids);
    let created = 1_800_000_000;
    let expires = created + q::parse_duration("4h").unwrap();
    let subject = Subject::find("n1/w0", &ids).unwrap();
    let r = q::render(&base, &ids, &request(subject, vec![], Some(expires))).unwrap();
    assert!(
        r.yaml
            .contains("bulkhead.dev/expires: \"2027-01-15T12:00:00Z\""),
        "{}",
        r.yaml
    );
    write(dir.path(), &r.path, &r.yaml);
    // One second before expiry: in force (n1/w0 reaches nobody).
    let l = load_paths_at(&[dir.path()], Some(expires - 1));
    assert!(l.expired_quarantines.is_empty());
    assert_ne!(verdicts(&l.intent, &ids), before);
    assert_eq!(q::list(&l.intent).len(), 1);
    // At expiry: left out by the loader, reported, and the verdicts are the old ones.
    let l = load_paths_at(&[dir.path()], Some(expires));
    assert_eq!(l.expired_quarantines.len(), 1);
    assert_eq!(l.expired_quarantines[0].target, "n1/w0");
    assert!(q::list(&l.intent).is_empty());
    assert_eq!(verdicts(&l.intent, &ids), before);
    // Without a clock everything stays (what `quarantine --list` reads).
    let all = load_paths_at(&[dir.path()], None);
    assert_eq!(q::list(&all.intent).len(), 1);
    assert!(q::list(&all.intent)[0].is_expired(expires));
    // `active` does the same on an intent in memory.
    assert!(q::list(&q::active(&all.intent, expires)).is_empty());
    assert_eq!(q::list(&q::active(&all.intent, expires - 1)).len(), 1);
}

#[test]
fn refusals() {
    let ids = cluster(&[(0, 0), (1, 1)], 1);
    let e = Subject::find("n1/w9", &ids).unwrap_err().to_string();
    assert!(e.contains("n1/w9: no such workload or host"), "{e}");
    let e = Subject::find("w1", &ids).unwrap_err().to_string();
    assert!(e.contains("did you mean n2/w1?"), "{e}");
    let e = Subject::find("h7", &ids).unwrap_err().to_string();
    assert!(e.contains("did you mean h0?"), "{e}");
    // Hosts are found by name and selected by their implicit label alone.
    assert_eq!(
        ids.iter()
            .filter(|i| i.labels.get(q::HOST_NAME_LABEL).map(String::as_str) == Some("h0"))
            .count(),
        1
    );
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "b.yaml", &base_yaml(&[(0, true, false)], &[]));
    let base = load_dir(d.path(), None);
    let subject = Subject::find("n1/w0", &ids).unwrap();
    let e = q::render(
        &base,
        &ids,
        &request(subject.clone(), vec!["nope".into()], None),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--allow-to nope: no such segment"), "{e}");
    let mut req = request(subject.clone(), vec![], None);
    req.reason = " ".into();
    assert!(
        q::render(&base, &ids, &req).is_err(),
        "a reason is required"
    );
    // A workload whose labels another one carries too (not its own ReplicaSet): not exact.
    let mut twins = ids.clone();
    let mut other = pod(0, 5, 0);
    other.labels = ids[0].labels.clone();
    other.labels.insert("extra".into(), "1".into());
    twins.push(other);
    let e = q::render(&base, &twins, &request(subject.clone(), vec![], None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("would also select n1/w5"), "{e}");
    // Its own ReplicaSet (named w0-…) is isolated with it.
    let mut rs = pod(0, 0, 0);
    rs.name = "n1/w0-7d9f8b".into();
    rs.labels = ids[0].labels.clone();
    rs.labels
        .insert("pod-template-hash".into(), "7d9f8b".into());
    let mut with_rs = ids.clone();
    with_rs.push(rs);
    let r = q::render(&base, &with_rs, &request(subject, vec![], None)).unwrap();
    assert_eq!(r.also, vec!["n1/w0-7d9f8b".to_string()]);
}

#[test]
fn bank_quarantine_lints_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/intent/bank");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let ids = vec![
        Identity::workload(
            "payments",
            "payment-orchestrator",
            labels(&[("app", "payment-orchestrator"), ("segment", "payments")]),
            labels(&[
                ("kubernetes.io/metadata.name", "payments"),
                ("segment", "payments"),
            ]),
        ),
        Identity::host(
            "hsm-01",
            labels(&[("segment", "cards")]),
            vec!["10.50.0.9".parse().unwrap()],
        ),
    ];
    let base = load_dir(dir.path(), None);
    let count = |i: &Intent| {
        lint(i, &LintOptions { universe: None })
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    };
    let errors_before = count(&base);
    for (t, allow) in [
        (
            "payments/payment-orchestrator",
            vec!["shared-infra".to_string()],
        ),
        ("hsm-01", vec![]),
    ] {
        let intent = load_dir(dir.path(), None);
        let r = q::render(
            &intent,
            &ids,
            &request(Subject::find(t, &ids).unwrap(), allow, Some(1_900_000_000)),
        )
        .unwrap();
        write(dir.path(), &r.path, &r.yaml);
    }
    let with = load_dir(dir.path(), None);
    assert_eq!(
        count(&with),
        errors_before,
        "the overlay adds no lint error"
    );
    assert_eq!(q::list(&with).len(), 2);
    // The quarantine policies are the first of all.
    let first = &with.policies[with.policy_order()[0]];
    assert!(q::is_quarantine(&first.meta), "{}", first.name());
}
