//! Identity resolution over time: pods built in the test, and the real `kubectl` dumps of
//! `../shared/testdata/telemetry/k8s-inventory`.

use bulkhead_identity::{EntityKind, How, Index, LookupCache, parse_net};
use bulkhead_k8s::{Loaded, Manifests, build};
use bulkhead_telemetry::time::parse_rfc3339;
use std::net::IpAddr;
use std::path::PathBuf;

fn load(yaml: &str) -> Loaded {
    let mut m = Manifests::default();
    m.load_str("inv.yaml", yaml);
    let l = build(m);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l
}

/// A pod document: owner ReplicaSet `owner`, times as RFC 3339 or empty.
fn mk_pod(
    name: &str,
    owner: &str,
    ip: &str,
    start: &str,
    phase: &str,
    finished: &str,
    deleted: &str,
) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {{app: {owner}}}\n"
    );
    if !deleted.is_empty() {
        s += &format!("  deletionTimestamp: \"{deleted}\"\n");
    }
    s += &format!(
        "  ownerReferences:\n  - {{kind: ReplicaSet, name: {owner}, controller: true}}\nspec:\n  containers: [{{name: c}}]\nstatus:\n  phase: {phase}\n  podIP: {ip}\n  podIPs: [{{ip: {ip}}}]\n"
    );
    if !start.is_empty() {
        s += &format!("  startTime: \"{start}\"\n");
    }
    if !finished.is_empty() {
        s += &format!(
            "  containerStatuses:\n  - state:\n      terminated: {{finishedAt: \"{finished}\"}}\n"
        );
    }
    s
}

fn t(s: &str) -> Option<i64> {
    Some(parse_rfc3339(s).expect("test time"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn who(ix: &Index, addr: &str, time: Option<i64>) -> (String, How) {
    let r = ix.lookup(ip(addr), time);
    (ix.entities[r.entity as usize].key.clone(), r.how)
}

#[test]
fn address_reused_by_another_pod_resolves_by_time() {
    let yaml = [
        mk_pod(
            "a-1",
            "a",
            "10.0.0.5",
            "2026-01-01T10:00:00Z",
            "Running",
            "",
            "2026-01-01T11:00:00Z",
        ),
        mk_pod(
            "b-1",
            "b",
            "10.0.0.5",
            "2026-01-01T11:30:00Z",
            "Running",
            "",
            "",
        ),
        // A finished Job-like pod with finishedAt, then a gap, then c.
        mk_pod(
            "j-1",
            "j",
            "10.0.0.6",
            "2026-01-01T09:00:00Z",
            "Succeeded",
            "2026-01-01T09:05:00Z",
            "",
        ),
        mk_pod(
            "c-1",
            "c",
            "10.0.0.6",
            "2026-01-01T12:00:00Z",
            "Running",
            "",
            "",
        ),
        // A failed pod without finishedAt, followed by d: it holds the address until d starts.
        mk_pod(
            "f-1",
            "f",
            "10.0.0.7",
            "2026-01-01T08:00:00Z",
            "Failed",
            "",
            "",
        ),
        mk_pod(
            "d-1",
            "d",
            "10.0.0.7",
            "2026-01-01T09:00:00Z",
            "Running",
            "",
            "",
        ),
        // A succeeded pod without finishedAt and no successor: never "as it stands".
        mk_pod(
            "g-1",
            "g",
            "10.0.0.8",
            "2026-01-01T08:00:00Z",
            "Succeeded",
            "",
            "",
        ),
    ]
    .concat();
    let mut ix = Index::new();
    ix.add_kubernetes(&load(&yaml));
    let cases = [
        (
            "10.0.0.5",
            "2026-01-01T10:30:00Z",
            "shop/a[ReplicaSet]",
            How::PodAtTime,
            "a before its deletion",
        ),
        (
            "10.0.0.5",
            "2026-01-01T11:10:00Z",
            "unknown",
            How::Unknown,
            "between a's deletion and b's start",
        ),
        (
            "10.0.0.5",
            "2026-01-01T11:30:00Z",
            "shop/b[ReplicaSet]",
            How::PodAtTime,
            "b from its start",
        ),
        (
            "10.0.0.5",
            "2026-01-01T09:00:00Z",
            "unknown",
            How::Unknown,
            "before anyone held it",
        ),
        (
            "10.0.0.6",
            "2026-01-01T09:04:59Z",
            "shop/j[ReplicaSet]",
            How::PodAtTime,
            "finished pod before finishedAt",
        ),
        (
            "10.0.0.6",
            "2026-01-01T09:05:00Z",
            "unknown",
            How::Unknown,
            "finished pod at finishedAt",
        ),
        (
            "10.0.0.6",
            "2026-01-01T13:00:00Z",
            "shop/c[ReplicaSet]",
            How::PodAtTime,
            "the next pod",
        ),
        (
            "10.0.0.7",
            "2026-01-01T08:30:00Z",
            "shop/f[ReplicaSet]",
            How::PodAtTime,
            "failed, no finishedAt: until the next start",
        ),
        (
            "10.0.0.7",
            "2026-01-01T09:00:00Z",
            "shop/d[ReplicaSet]",
            How::PodAtTime,
            "the next pod from its start",
        ),
        (
            "10.0.0.8",
            "2026-01-01T08:30:00Z",
            "unknown",
            How::Unknown,
            "succeeded, no finishedAt, no successor",
        ),
    ];
    for (addr, time, want, how, msg) in cases {
        assert_eq!(who(&ix, addr, t(time)), (want.to_string(), how), "{msg}");
    }
    // Without a time, the inventory as it stands: running, undeleted pods only.
    assert_eq!(
        who(&ix, "10.0.0.5", None),
        ("shop/b[ReplicaSet]".into(), How::PodNow)
    );
    assert_eq!(
        who(&ix, "10.0.0.6", None),
        ("shop/c[ReplicaSet]".into(), How::PodNow)
    );
    assert_eq!(who(&ix, "10.0.0.8", None).1, How::Unknown);
    assert_eq!(ix.stats.finished_pods, 3);
    assert_eq!(ix.stats.finished_without_finished_at, 2);
}

#[test]
fn services_hosts_and_external_groups() {
    let yaml = [
        mk_pod("api-1", "api", "10.1.0.1", "", "Running", "", ""),
        mk_pod("web-1", "web", "10.1.0.2", "", "Running", "", ""),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  clusterIP: 10.96.0.1\n  selector: {app: api}\n".to_string(),
        "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: both, namespace: shop}\n  spec:\n    clusterIPs: [10.96.0.2, fd00::2]\n    selector: {}\n".to_string(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: headless, namespace: shop}\nspec:\n  clusterIP: None\n  selector: {app: web}\n".to_string(),
    ]
    .concat();
    let mut ix = Index::new();
    ix.add_kubernetes(&load(&yaml));
    let hosts = bulkhead_identity::hosts::parse_csv(
        "hosts.csv",
        "name,addresses,labels\nledger-db,10.20.0.5,segment=core-ledger\nbatch-farm,10.20.8.0/22,segment=core-ledger\nfarm-special,10.20.9.0/24,\n",
    )
    .expect("hosts");
    ix.add_hosts(&hosts);
    ix.add_external("partners", parse_net("198.51.100.0/24").unwrap());
    ix.add_external("partners", parse_net("203.0.113.0/24").unwrap());
    ix.add_external("swift", parse_net("198.51.100.128/25").unwrap());
    for (addr, want, how, msg) in [
        (
            "10.96.0.1",
            "shop/api[ReplicaSet]",
            How::ServiceWorkload,
            "a Service selecting one workload",
        ),
        (
            "10.96.0.2",
            "service:shop/both",
            How::Service,
            "a Service without selector stands for itself",
        ),
        (
            "fd00::2",
            "service:shop/both",
            How::Service,
            "every cluster IP of the Service",
        ),
        ("10.20.0.5", "host:ledger-db", How::Host, "a host address"),
        ("10.20.8.9", "host:batch-farm", How::Host, "a host CIDR"),
        (
            "10.20.9.9",
            "host:farm-special",
            How::Host,
            "longest host prefix",
        ),
        (
            "198.51.100.7",
            "external:partners",
            How::External,
            "a partner network",
        ),
        (
            "203.0.113.7",
            "external:partners",
            How::External,
            "a second CIDR of the same group",
        ),
        (
            "198.51.100.200",
            "external:swift",
            How::External,
            "longest prefix wins",
        ),
        (
            "8.8.8.8",
            "external:internet",
            How::External,
            "any other public address",
        ),
        (
            "10.99.0.1",
            "unknown",
            How::Unknown,
            "a private address nobody holds",
        ),
    ] {
        assert_eq!(
            who(&ix, addr, t("2026-01-01T00:00:00Z")),
            (want.to_string(), how),
            "{msg}"
        );
    }
    // Records that name their pod (Hubble) resolve by the name when the inventory has it.
    let r = ix.lookup_pod("shop", "web-1").expect("a known pod");
    assert_eq!(
        (ix.entities[r.entity as usize].key.as_str(), r.how),
        ("shop/web[ReplicaSet]", How::PodName)
    );
    assert!(ix.lookup_pod("shop", "gone-1").is_none());
    assert!(ix.lookup_pod("other", "web-1").is_none());
    let both = ix.find("service:shop/both").unwrap();
    assert_eq!(ix.entities[both as usize].kind, EntityKind::Service);
    assert_eq!(ix.stats.services, 3);
    assert_eq!(ix.stats.services_to_one_workload, 1);
}

#[test]
fn a_service_selecting_several_workloads_is_a_group() {
    let yaml = [
        mk_pod("v1-1", "reviews-v1", "10.2.0.1", "", "Running", "", ""),
        mk_pod("v2-1", "reviews-v2", "10.2.0.2", "", "Running", "", ""),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  clusterIP: 10.96.1.1\n".to_string(),
    ]
    .concat()
    .replace("app: reviews-v1", "app: reviews")
    .replace("app: reviews-v2", "app: reviews")
    .replace("clusterIP: 10.96.1.1\n", "clusterIP: 10.96.1.1\n  selector: {app: reviews}\n");
    let mut ix = Index::new();
    ix.add_kubernetes(&load(&yaml));
    let r = ix.lookup(ip("10.96.1.1"), None);
    assert_eq!(r.how, How::Service);
    let e = &ix.entities[r.entity as usize];
    assert_eq!(e.key, "service:shop/reviews");
    assert_eq!(
        e.members,
        ["shop/reviews-v1[ReplicaSet]", "shop/reviews-v2[ReplicaSet]"]
    );
}

fn testdata() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/telemetry/k8s-inventory");
    assert!(
        d.is_dir(),
        "test data missing: {} (a sibling checkout of shared/)",
        d.display()
    );
    d
}

/// The real minikube dump: finished Job pods share addresses with running ones, and static
/// pods owned by the Node share the node's address.
#[test]
fn real_dump_with_finished_jobs_and_services() {
    let d = testdata();
    let loaded = Loaded::from_paths(&[
        d.join("netpol-analyzer_services_pods_list.yaml"),
        d.join("netpol-analyzer_services_services_list.yaml"),
    ]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.pods.len(), 11);
    assert!(loaded.services.len() >= 4, "{:?}", loaded.services);
    let mut ix = Index::new();
    ix.add_kubernetes(&loaded);
    let cases = [
        // 172.17.0.4: Job pod admission-patch (started 18:07:04, finished 18:07:11), then demo.
        (
            "172.17.0.4",
            Some("2022-01-27T18:07:08Z"),
            "ingress-nginx/ingress-nginx-admission-patch[Job]",
            "the Job pod while it ran",
        ),
        (
            "172.17.0.4",
            Some("2022-01-27T18:10:00Z"),
            "unknown",
            "between the Job and demo",
        ),
        (
            "172.17.0.4",
            Some("2022-01-27T18:20:00Z"),
            "default/demo-764c97f6fd[ReplicaSet]",
            "demo after its start",
        ),
        (
            "172.17.0.4",
            None,
            "default/demo-764c97f6fd[ReplicaSet]",
            "as it stands",
        ),
        // 172.17.0.3: Job admission-create and the controller both start at 18:07:04: the
        // running pod wins the tie.
        (
            "172.17.0.3",
            Some("2022-01-27T18:07:05Z"),
            "ingress-nginx/ingress-nginx-controller-6d5f55986b[ReplicaSet]",
            "tie: the running pod",
        ),
        (
            "172.17.0.3",
            None,
            "ingress-nginx/ingress-nginx-controller-6d5f55986b[ReplicaSet]",
            "as it stands",
        ),
        // kube-dns selects exactly the coredns ReplicaSet.
        (
            "10.96.0.10",
            None,
            "kube-system/coredns-64897985d[ReplicaSet]",
            "a Service's cluster IP",
        ),
    ];
    for (addr, time, want, msg) in cases {
        let time = time.and_then(parse_rfc3339);
        assert_eq!(who(&ix, addr, time).0, want, "{addr} {msg}");
    }
    // Static pods share the node address 192.168.49.2: counted as overlapping.
    assert!(ix.stats.overlapping_addresses >= 1, "{:?}", ix.stats);
    let r = ix.lookup(ip("192.168.49.2"), None);
    assert_eq!(ix.entities[r.entity as usize].kind, EntityKind::Workload);
    assert_eq!(ix.stats.finished_pods, 2);
}

#[test]
fn real_json_pod_list_loads_with_addresses() {
    let d = testdata();
    let loaded = Loaded::from_paths(&[d.join("DERIVED_ipblockstest_pods.as-kubectl-json.json")]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let with_ip = loaded.pods.iter().filter(|p| !p.ips.is_empty()).count();
    assert!(
        with_ip > 0 && with_ip == loaded.pods.len(),
        "{with_ip} of {}",
        loaded.pods.len()
    );
    let mut ix = Index::new();
    ix.add_kubernetes(&loaded);
    let p = &loaded.pods[0];
    let r = ix.lookup(p.ips[0], None);
    assert!(r.how == How::PodNow, "{:?}", r);
}

mod cache {
    use super::*;
    use proptest::prelude::*;

    const ADDRS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.96.0.1", "192.0.2.7"];

    fn hour(h: u8) -> String {
        format!("2025-11-27T{h:02}:00:00Z")
    }

    /// (address, start hour, phase, finished hour, deleted hour) per pod.
    type PodSpec = (usize, Option<u8>, u8, Option<u8>, Option<u8>);

    fn pod() -> impl Strategy<Value = PodSpec> {
        (
            0..3usize,
            prop::option::of(0..12u8),
            0..3u8,
            prop::option::of(0..12u8),
            prop::option::of(0..12u8),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The cache answers exactly as the index, whatever the pods' reuse of addresses,
        /// phases and end times, for any sequence of lookups (so hits are exercised).
        #[test]
        fn the_lookup_cache_answers_as_the_index(
            pods in prop::collection::vec(pod(), 1..8),
            lookups in prop::collection::vec((0..5usize, prop::option::of(0..14i64), 0..4i64), 1..80),
        ) {
            let mut yaml = String::new();
            for (i, (a, start, phase, finished, deleted)) in pods.iter().enumerate() {
                let phase = ["Running", "Succeeded", "Failed"][*phase as usize];
                yaml += &mk_pod(
                    &format!("p{i}"),
                    &format!("w{}", i % 3),
                    ADDRS[*a],
                    &start.map(hour).unwrap_or_default(),
                    phase,
                    &finished.map(hour).unwrap_or_default(),
                    &deleted.map(hour).unwrap_or_default(),
                );
            }
            yaml += "---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec:\n  clusterIP: 10.96.0.1\n  selector: {app: w0}\n";
            let mut ix = Index::new();
            ix.add_kubernetes(&load(&yaml));
            let mut cache = LookupCache::default();
            let base = parse_rfc3339(&hour(0)).expect("time");
            for (a, h, q) in lookups {
                // On the hour, or a quarter past: boundaries and insides of intervals.
                let time = h.map(|h| base + h * 3_600_000_000_000 + q * 900_000_000_000 - (q == 3) as i64);
                let addr = ip(ADDRS[a]);
                prop_assert_eq!(cache.lookup(&ix, addr, time), ix.lookup(addr, time), "{} at {:?}", ADDRS[a], time);
            }
        }
    }
}
