//! The YAML shape of the intent resources, as read (before validation). Every struct rejects
//! unknown fields; values whose checks come after parsing keep their place (`Spanned`).

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// Only `apiVersion` and `kind`, to choose the resource type; other fields are ignored here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Doc<S> {
    #[allow(dead_code)]
    pub api_version: String,
    #[allow(dead_code)]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metadata {
    pub name: Spanned<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Spanned<Requirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EntitySelector {
    pub namespace_selector: Option<LabelSelector>,
    #[serde(alias = "workloadSelector")]
    pub pod_selector: Option<LabelSelector>,
    pub host_selector: Option<LabelSelector>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    Observe,
    Enforce,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SegmentSpec {
    pub namespace_selector: Option<LabelSelector>,
    #[serde(alias = "workloadSelector")]
    pub pod_selector: Option<LabelSelector>,
    pub host_selector: Option<LabelSelector>,
    #[serde(default)]
    pub compliance: Vec<String>,
    pub owner: Option<String>,
    pub mode: Option<Mode>,
    pub description: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tier {
    Guardrail,
    Application,
    Baseline,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    Allow,
    Deny,
    Pass,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PolicySpec {
    pub tier: Tier,
    pub priority: Option<i32>,
    pub description: Option<String>,
    pub rules: Vec<Spanned<Rule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rule {
    pub name: Option<String>,
    pub action: Action,
    pub from: Vec<Spanned<Peer>>,
    pub to: Vec<Spanned<Peer>>,
    pub ports: Option<Vec<Spanned<Port>>>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Peer {
    pub any: Option<bool>,
    pub segment: Option<String>,
    pub selector: Option<EntitySelector>,
    pub namespace: Option<String>,
    pub cidr: Option<Spanned<String>>,
    pub except: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Port {
    pub protocol: Option<Spanned<String>>,
    pub port: Option<Spanned<PortValue>>,
    pub end_port: Option<Spanned<PortValue>>,
}

/// A port number or a named port (digits-only strings are numbers).
pub(crate) enum PortValue {
    Number(i128),
    Name(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortValue, E> {
                Ok(PortValue::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortValue, E> {
                Ok(PortValue::Number(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<PortValue, E> {
                Ok(PortValue::Number(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<PortValue, E> {
                Ok(PortValue::Number(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortValue, E> {
                Ok(match v.trim().parse::<i128>() {
                    Ok(n) => PortValue::Number(n),
                    Err(_) => PortValue::Name(v.to_string()),
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Assertion {
    pub from: Vec<Spanned<Peer>>,
    pub to: Vec<Spanned<Peer>>,
    pub ports: Option<Vec<Spanned<Port>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct InvariantSpec {
    pub never: Option<Spanned<Assertion>>,
    pub only: Option<Spanned<Assertion>>,
    pub must_allow: Option<Spanned<Assertion>>,
    #[serde(default)]
    pub controls: Vec<String>,
    pub description: Option<String>,
}
