//! A large JSON inventory is read item by item (`Loaded::from_paths`); what it reads must be
//! exactly what the whole-file reader (`build(Manifests::load_paths(..))`) reads.

use bulkhead_k8s::{Loaded, Manifests, build};
use std::path::PathBuf;

/// A file in a fresh directory of its own.
fn write(name: &str, text: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bulkhead-k8s-stream-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `n` pods of a few workloads, as `kubectl get pods -A -o json` writes them (`kind` after
/// `items`), over 1 MiB so that the streaming reader takes it.
fn pod_list(n: usize, nl: &str) -> String {
    let mut items = Vec::new();
    for i in 0..n {
        let w = i % 7;
        items.push(format!(
            r#"{{"apiVersion": "v1", "kind": "Pod",{nl} "metadata": {{"name": "web{w}-{i}", "namespace": "ns{}", "labels": {{"app": "web{w}", "rev": "{}"}}, "creationTimestamp": "2026-11-01T00:00:00Z",{nl} "ownerReferences": [{{"kind": "ReplicaSet", "name": "web{w}-rs", "controller": true}}]}},{nl} "spec": {{"containers": [{{"name": "c", "ports": [{{"name": "http", "containerPort": 8080}}]}}]}},{nl} "status": {{"phase": "Running", "podIP": "10.0.{}.{}", "startTime": "2026-11-01T00:00:0{}Z", "note": "\"}}]\\"}}}}"#,
            w % 3,
            i % 2,
            i / 250,
            i % 250,
            i % 10
        ));
    }
    // Not modelled, and one without a kind in a plain List: a warning and an error.
    items.push(r#"{"kind": "ConfigMap", "metadata": {"name": "c"}}"#.into());
    items.push(r#"{"metadata": {"name": "kindless"}}"#.into());
    format!(
        "\u{feff}{{\"apiVersion\": \"v1\", \"items\": [{nl}{}{nl}], \"kind\": \"List\", \"metadata\": {{}}}}{nl}{nl}{{\"kind\": \"Service\", \"metadata\": {{\"name\": \"s\", \"namespace\": \"ns1\"}}, \"spec\": {{\"clusterIP\": \"10.96.0.1\", \"selector\": {{\"app\": \"web1\"}}}}}}{nl}",
        items.join(&format!(",{nl}"))
    )
}

fn both(p: &PathBuf) -> (Loaded, Loaded) {
    (
        Loaded::from_paths(std::slice::from_ref(p)),
        build(Manifests::load_paths(std::slice::from_ref(p))),
    )
}

fn assert_same(streamed: &Loaded, whole: &Loaded) {
    assert_eq!(streamed.pods, whole.pods);
    assert_eq!(streamed.services, whole.services);
    assert_eq!(streamed.errors, whole.errors);
    assert_eq!(streamed.warnings, whole.warnings);
    assert_eq!(
        format!("{:?}", streamed.cluster),
        format!("{:?}", whole.cluster)
    );
}

#[test]
fn streamed_list_reads_what_the_whole_file_reader_reads() {
    for (name, nl) in [("lf.json", "\n"), ("crlf.json", "\r\n"), ("cr.json", "\r")] {
        let text = pod_list(4000, nl);
        assert!(text.len() > 1 << 20, "{}", text.len());
        let p = write(name, &text);
        let (streamed, whole) = both(&p);
        assert_same(&streamed, &whole);
        // And what it reads is the input: every pod, the Service on the list's last line + 2.
        assert_eq!(streamed.pods.len(), 4000);
        assert_eq!(streamed.cluster.workloads.len(), 7);
        assert_eq!(streamed.services.len(), 1);
        // Line 1 opens the list, each pod takes 5 lines (4 breaks inside), the two last items one each, then the
        // closing line, a blank line, and the Service.
        assert_eq!(
            streamed.services[0].origin.line,
            1 + 4000 * 5 + 2 + 1 + 1 + 1,
            "{name}"
        );
        assert!(
            streamed
                .errors
                .iter()
                .any(|e| e.reason.contains("List item 4001 has no kind")),
            "{:?}",
            streamed.errors
        );
        assert!(
            streamed.warnings.iter().any(|w| w.contains("ConfigMap")),
            "{:?}",
            streamed.warnings
        );
        std::fs::remove_file(&p).unwrap();
    }
}

#[test]
fn malformed_large_file_is_read_whole_and_reported_with_its_line() {
    // A wrong type in the last item: nothing of the list may be taken, and the error is the
    // whole-file reader's (with its line), not a half-read list.
    let text = pod_list(4000, "\n").replace(
        r#"{"kind": "ConfigMap", "metadata": {"name": "c"}}"#,
        r#"{"kind": "Pod", "metadata": {"name": "bad", "labels": 7}}"#,
    );
    let p = write("bad.json", &text);
    let (streamed, whole) = both(&p);
    assert_same(&streamed, &whole);
    assert!(streamed.pods.is_empty());
    assert!(!streamed.errors.is_empty());
    assert!(
        streamed.errors.iter().all(|e| e.line > 0),
        "{:?}",
        streamed.errors
    );
    std::fs::remove_file(&p).unwrap();
}
