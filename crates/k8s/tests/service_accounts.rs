//! Service accounts of workloads: a pod's `spec.serviceAccountName` (or the deprecated
//! `serviceAccount`), a workload's pod template's, `None` when not written (Kubernetes' `default`),
//! read alike by the fast reader and serde-saphyr.

use bulkhead_k8s::{Manifests, build};

fn sa_of(yaml: &str, name: &str) -> Option<String> {
    let mut m = Manifests::default();
    m.load_str("f.yaml", yaml);
    let loaded = build(m);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let w = loaded
        .cluster
        .workloads
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workload {name}"));
    w.service_account.clone()
}

#[test]
fn pods_and_templates_carry_their_service_account() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  serviceAccountName: payments\n  containers: [{name: c}]\n";
    assert_eq!(sa_of(pod, "p").as_deref(), Some("payments"));
    let old = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  serviceAccount: legacy\n  containers: [{name: c}]\n";
    assert_eq!(sa_of(old, "p").as_deref(), Some("legacy"));
    let none = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  containers: [{name: c}]\n";
    assert_eq!(sa_of(none, "p"), None, "unwritten: Kubernetes' default");
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: n}\nspec:\n  serviceAccountName: not-the-pods\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      serviceAccountName: d-sa\n      containers: [{name: c}]\n";
    assert_eq!(
        sa_of(deploy, "d").as_deref(),
        Some("d-sa"),
        "the template's, not the Deployment's"
    );
    let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: j, namespace: n}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          serviceAccountName: batch\n          containers: [{name: c}]\n";
    assert_eq!(sa_of(cron, "j").as_deref(), Some("batch"));
}

#[test]
fn fast_reader_agrees_on_service_accounts() {
    for doc in [
        "kind: Pod\nspec:\n  serviceAccountName: a\n",
        "kind: Deployment\nspec:\n  template:\n    spec:\n      serviceAccountName: \"b\"\n",
        "kind: Pod\nspec:\n  serviceAccount: c\n",
    ] {
        assert_eq!(
            bulkhead_k8s::agrees_with_serde_saphyr(doc),
            Ok(true),
            "{doc}"
        );
    }
}
