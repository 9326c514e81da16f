//! The manifests' YAML writer (`lower::yaml_doc`): what it writes parses back (with the same
//! YAML library the schema checks use) to the same value, for any nesting and any string.

use bulkhead_compile::lower::yaml_doc;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<u32>().prop_map(|n| Value::from(n as u64)),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(String::new()),
            Just("yes".to_string()),
            Just("null".to_string()),
            Just("0.5".to_string()),
            Just("- a".to_string()),
            Just("k8s:app".to_string()),
            Just("#x".to_string()),
            "[ -~]{0,12}",
            "\\PC{0,6}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z:./ -]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #[test]
    fn yaml_round_trips(m in proptest::collection::btree_map("[a-z]{1,6}", value(), 1..4)) {
        let v = Value::Object(m.into_iter().collect());
        let text = yaml_doc(&v);
        let back: Value = serde_saphyr::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, v, "{}", text);
    }
}
