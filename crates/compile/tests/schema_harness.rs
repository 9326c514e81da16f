//! The schema check itself: a correct object of every kind the compilers emit passes, and the
//! same object with an unknown field or a wrong value fails, so a passing compiler test means
//! something.

mod common;
use common::schema::validate;
use serde_json::{Value, json};

fn good() -> Vec<Value> {
    vec![
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "a", "namespace": "n"},
               "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 80}]}]}}),
        json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
               "metadata": {"name": "a"},
               "spec": {"priority": 10, "subject": {"namespaces": {}},
                        "ingress": [{"name": "r", "action": "Deny", "from": [{"namespaces": {}}]}]}}),
        json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
               "metadata": {"name": "default"},
               "spec": {"subject": {"namespaces": {}},
                        "egress": [{"name": "r", "action": "Allow", "to": [{"namespaces": {}}]}]}}),
        json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
               "metadata": {"name": "a"},
               "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}},
                        "ingress": [{"name": "r", "action": "Deny", "from": [{"namespaces": {}}]}]}}),
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
               "metadata": {"name": "a", "namespace": "n"},
               "spec": {"endpointSelector": {"matchLabels": {"app": "x"}},
                        "ingressDeny": [{"fromEndpoints": [{}]}]}}),
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
               "metadata": {"name": "a"},
               "spec": {"endpointSelector": {}, "egress": [{"toCIDR": ["10.0.0.0/8"]}]}}),
        json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier",
               "metadata": {"name": "bulkhead"}, "spec": {"order": 100}}),
        json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
               "metadata": {"name": "bulkhead.a"},
               "spec": {"tier": "bulkhead", "order": 10, "selector": "app == 'x'",
                        "types": ["Ingress"],
                        "ingress": [{"action": "Deny", "protocol": "TCP",
                                     "destination": {"ports": [80]}}]}}),
        json!({"apiVersion": "projectcalico.org/v3", "kind": "StagedGlobalNetworkPolicy",
               "metadata": {"name": "bulkhead.a"},
               "spec": {"tier": "bulkhead", "order": 10, "selector": "all()", "types": ["Egress"],
                        "egress": [{"action": "Pass"}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": "a", "namespace": "n"},
               "spec": {"selector": {"matchLabels": {"app": "x"}}, "action": "ALLOW",
                        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/n/sa/s"]}}],
                                   "to": [{"operation": {"ports": ["8080"]}}]}]}}),
    ]
}

#[test]
fn correct_objects_of_every_kind_pass() {
    for doc in good() {
        if let Err(e) = validate(&doc) {
            panic!("{}: {e:#?}", doc["kind"]);
        }
    }
}

#[test]
fn an_unknown_field_fails_for_every_kind() {
    for mut doc in good() {
        doc["spec"]["bogusField"] = json!(1);
        let e = validate(&doc).expect_err(doc["kind"].as_str().unwrap());
        assert!(
            e.iter().any(|e| e.contains("bogusField")),
            "{}: {e:?}",
            doc["kind"]
        );
    }
}

#[test]
fn a_wrong_value_fails() {
    let mut docs = good();
    // An ANP action that does not exist; a Cilium port out of its pattern; an Istio action.
    docs[1]["spec"]["ingress"][0]["action"] = json!("Reject");
    assert!(validate(&docs[1]).is_err());
    docs[3]["spec"]["tier"] = json!("Application");
    assert!(validate(&docs[3]).is_err());
    docs[9]["spec"]["action"] = json!("PERMIT");
    assert!(validate(&docs[9]).is_err());
    docs[0]["spec"]["podSelector"] = json!("app=x");
    assert!(validate(&docs[0]).is_err());
}
