//! Validation of generated manifests against the targets' published schemas, read from
//! `../shared/testdata/schemas/` (never copied into the repository).
//!
//! - `networking.k8s.io/v1` NetworkPolicy: kubernetes-validate 1.37.0's strict JSON Schema.
//! - Custom resources: the CRD's `openAPIV3Schema` for the object's version. Kubernetes'
//!   strict field validation (`kubectl apply --validate=strict`, the default since 1.27) rejects
//!   unknown fields, so every object schema that lists `properties` and neither allows extra
//!   properties nor sets `x-kubernetes-preserve-unknown-fields` is closed here too.
//!
//! CEL rules (`x-kubernetes-validations`) are not evaluated by JSON Schema; tests check the ones
//! that matter to a target in code.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The shared schema folder.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/schemas")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared/testdata must be beside the repository)",
            path.display()
        )
    });
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Closes every object schema that lists `properties`, like strict field validation.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let preserve = m
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if m.contains_key("properties") && !m.contains_key("additionalProperties") && !preserve
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            // oneOf/anyOf/allOf/not branches of a structural schema only restate which
            // properties must be present; they are not object schemas of their own.
            for (k, c) in m.iter_mut() {
                if !matches!(k.as_str(), "oneOf" | "anyOf" | "allOf" | "not") {
                    close_objects(c);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The `openAPIV3Schema` of `version` in the CRD file `rel` (relative to the schema folder),
/// closed against unknown fields.
pub fn crd_schema(rel: &str, version: &str) -> Value {
    let crd = read_yaml(&schemas_dir().join(rel));
    let versions = crd["spec"]["versions"]
        .as_array()
        .expect("a CRD lists spec.versions");
    let v = versions
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{rel}: no version {version}"));
    let mut schema = v["schema"]["openAPIV3Schema"].clone();
    assert!(
        schema.is_object(),
        "{rel}: version {version} has no openAPIV3Schema"
    );
    // The API server checks `apiVersion`, `kind` and `metadata`, not the CRD; some CRDs
    // (Istio's) leave them out of the schema.
    let props = schema["properties"]
        .as_object_mut()
        .expect("the schema lists properties");
    for k in ["apiVersion", "kind"] {
        props
            .entry(k)
            .or_insert(serde_json::json!({"type": "string"}));
    }
    props
        .entry("metadata")
        .or_insert(serde_json::json!({"type": "object"}));
    close_objects(&mut schema);
    schema
}

/// kubernetes-validate's strict NetworkPolicy schema with its `$ref`s into
/// `/api/_definitions.json` pointed at the same definitions inlined as `$defs`.
pub fn networkpolicy_schema() -> Value {
    let dir = schemas_dir().join("kubernetes/jsonschema-kubernetes-validate-1.37.0/strict");
    let mut schema = read_json(&dir.join("networkpolicy-networking-v1.json"));
    let defs = read_json(&dir.join("_definitions.json"))["$defs"].clone();
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("$ref")
                    && let Some(rest) = r.strip_prefix("/api/_definitions.json")
                {
                    *r = rest.to_string();
                }
                m.values_mut().for_each(rewrite);
            }
            Value::Array(a) => a.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mut defs = defs;
    rewrite(&mut defs);
    rewrite(&mut schema);
    let m = schema.as_object_mut().expect("the schema is an object");
    m.remove("$id");
    m.insert("$defs".into(), defs);
    schema
}

/// Which published schema an object is checked against: `(apiVersion, kind)` → schema source.
fn source(api_version: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match (api_version, kind) {
        ("networking.k8s.io/v1", "NetworkPolicy") => ("builtin", ""),
        ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy") => (
            concat!(
                "network-policy-api/v1alpha1-release-0.1/standard",
                "/policy.networking.k8s.io_adminnetworkpolicies.yaml"
            ),
            "v1alpha1",
        ),
        ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy") => (
            concat!(
                "network-policy-api/v1alpha1-release-0.1/standard",
                "/policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"
            ),
            "v1alpha1",
        ),
        ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy") => (
            "network-policy-api/clusternetworkpolicy-main/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml",
            "v1alpha2",
        ),
        ("cilium.io/v2", "CiliumNetworkPolicy") => (
            "cilium/v1.17.0-rc.1-verbatim/ciliumnetworkpolicies.yaml",
            "v2",
        ),
        ("cilium.io/v2", "CiliumClusterwideNetworkPolicy") => (
            "cilium/v1.17.0-rc.1-verbatim/ciliumclusterwidenetworkpolicies.yaml",
            "v2",
        ),
        ("cilium.io/v2alpha1", "CiliumCIDRGroup") => (
            "cilium/v1.17.0-rc.1-verbatim/ciliumcidrgroups.v2alpha1.yaml",
            "v2alpha1",
        ),
        ("projectcalico.org/v3", k) => {
            let file = match k {
                "Tier" => "tiers",
                "GlobalNetworkPolicy" => "globalnetworkpolicies",
                "NetworkPolicy" => "networkpolicies",
                "StagedGlobalNetworkPolicy" => "stagedglobalnetworkpolicies",
                "StagedNetworkPolicy" => "stagednetworkpolicies",
                "StagedKubernetesNetworkPolicy" => "stagedkubernetesnetworkpolicies",
                "GlobalNetworkSet" => "globalnetworksets",
                "NetworkSet" => "networksets",
                "HostEndpoint" => "hostendpoints",
                _ => return None,
            };
            let path: &'static str = Box::leak(
                format!("calico/projectcalico.org_v3/projectcalico.org_{file}.yaml")
                    .into_boxed_str(),
            );
            (path, "v3")
        }
        ("security.istio.io/v1", "AuthorizationPolicy") => {
            ("istio/authorizationpolicies.security.istio.io.yaml", "v1")
        }
        _ => return None,
    })
}

fn validator(api_version: &str, kind: &str) -> &'static jsonschema::Validator {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<(String, String), &'static jsonschema::Validator>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (api_version.to_string(), kind.to_string());
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v;
    }
    let (rel, version) = source(api_version, kind)
        .unwrap_or_else(|| panic!("no published schema known for {api_version} {kind}"));
    let schema = if rel == "builtin" {
        networkpolicy_schema()
    } else {
        crd_schema(rel, version)
    };
    let v: &'static jsonschema::Validator = Box::leak(Box::new(
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{api_version} {kind}: the schema does not compile: {e}")),
    ));
    cache.lock().unwrap().insert(key, v);
    v
}

/// Checks one object (a parsed manifest document) against its target's published schema.
/// Errors name the object and the JSON pointer of each problem.
pub fn validate(doc: &Value) -> Result<(), Vec<String>> {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    let errs: Vec<String> = validator(api, kind)
        .iter_errors(doc)
        .map(|e| format!("{kind} {name}: {}: {e}", e.instance_path()))
        .collect();
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Every document of a YAML or JSON manifest file (`---`-separated YAML, or one JSON value, or
/// a JSON array / `List`), parsed.
pub fn documents(text: &str) -> Vec<Value> {
    let t = text.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        let v: Value = serde_json::from_str(t).expect("the JSON parses");
        return match v {
            Value::Array(a) => a,
            v if v["kind"] == "List" => v["items"].as_array().cloned().unwrap_or_default(),
            v => vec![v],
        };
    }
    serde_saphyr::from_multiple::<Value>(text)
        .expect("the YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Validates every document of every file; returns every problem found.
pub fn validate_files<'a>(
    files: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<String> {
    let mut errs = Vec::new();
    for (path, text) in files {
        if !(path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")) {
            continue;
        }
        for doc in documents(text) {
            if let Err(e) = validate(&doc) {
                errs.extend(e.into_iter().map(|e| format!("{path}: {e}")));
            }
        }
    }
    errs
}
