//! Labels and Kubernetes label-selector semantics (matchLabels + matchExpressions).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A label set.
pub type Labels = BTreeMap<String, String>;

/// A matchExpressions operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl FromStr for Operator {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "In" => Ok(Operator::In),
            "NotIn" => Ok(Operator::NotIn),
            "Exists" => Ok(Operator::Exists),
            "DoesNotExist" => Ok(Operator::DoesNotExist),
            other => Err(SelectorError::UnknownOperator(other.to_string())),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
        })
    }
}

/// Why a selector is invalid (the Kubernetes API server would reject it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unknown operator {0:?} (expected In, NotIn, Exists or DoesNotExist)")]
    UnknownOperator(String),
    #[error("operator {op:?} on key {key:?} needs at least one value")]
    MissingValues { key: String, op: String },
    #[error("operator {op:?} on key {key:?} must not have values")]
    UnexpectedValues { key: String, op: String },
    #[error("empty label key")]
    EmptyKey,
}

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn new(
        key: impl Into<String>,
        op: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SelectorError::EmptyKey);
        }
        let opname = format!("{op:?}");
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError::MissingValues { key, op: opname });
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError::UnexpectedValues { key, op: opname });
            }
            _ => {}
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement { key, op, values })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Operator::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            // As in Kubernetes: NotIn also matches when the key is absent.
            Operator::NotIn => v.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
        }
    }
}

/// A label selector: all requirements must hold. The empty selector matches everything.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every label set (`{}`).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// `matchLabels` and `matchExpressions` together; `matchLabels` entries are `key in (value)`.
    pub fn new(
        match_labels: impl IntoIterator<Item = (String, String)>,
        match_expressions: impl IntoIterator<Item = Requirement>,
    ) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in match_labels {
            requirements.push(Requirement::new(k, Operator::In, vec![v])?);
        }
        requirements.extend(match_expressions);
        requirements.sort();
        requirements.dedup();
        Ok(Selector { requirements })
    }

    /// Selects exactly the label sets with `key = value`.
    pub fn label(key: &str, value: &str) -> Self {
        Selector {
            requirements: vec![Requirement {
                key: key.to_string(),
                op: Operator::In,
                values: vec![value.to_string()],
            }],
        }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// The `kubectl` spelling: `app=web,tier in (a,b),!legacy`; `{}` for the empty selector.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                Operator::In if r.values.len() == 1 => format!("{}={}", r.key, r.values[0]),
                Operator::In | Operator::NotIn => {
                    format!("{} {} ({})", r.key, r.op, r.values.join(","))
                }
                Operator::Exists => r.key.clone(),
                Operator::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Elements `0..n` by label, so a selector is answered with bit-set operations instead of
/// matching every element: label key → (elements with the key, value → elements with it).
#[derive(Clone, Debug)]
pub struct LabelBits {
    n: usize,
    by_key: std::collections::HashMap<
        String,
        (
            crate::Bitset,
            std::collections::HashMap<String, crate::Bitset>,
        ),
    >,
}

impl LabelBits {
    /// An index of `n` elements, none labelled yet.
    pub fn new(n: usize) -> Self {
        LabelBits {
            n,
            by_key: Default::default(),
        }
    }

    /// Records element `i`'s labels.
    pub fn add(&mut self, i: usize, labels: &Labels) {
        let n = self.n;
        for (k, v) in labels {
            let (has, vals) = self
                .by_key
                .entry(k.clone())
                .or_insert_with(|| (crate::Bitset::empty(n), Default::default()));
            has.insert(i);
            vals.entry(v.clone())
                .or_insert_with(|| crate::Bitset::empty(n))
                .insert(i);
        }
    }

    /// The elements whose labels the selector matches.
    pub fn select(&self, sel: &Selector) -> crate::Bitset {
        let mut out = crate::Bitset::full(self.n);
        for r in sel.requirements() {
            let mut hit = crate::Bitset::empty(self.n);
            match r.op {
                Operator::In | Operator::NotIn => {
                    if let Some((_, vals)) = self.by_key.get(&r.key) {
                        for v in &r.values {
                            if let Some(b) = vals.get(v) {
                                hit.union_with(b);
                            }
                        }
                    }
                    if r.op == Operator::NotIn {
                        hit = hit.complement();
                    }
                }
                Operator::Exists | Operator::DoesNotExist => {
                    if let Some((b, _)) = self.by_key.get(&r.key) {
                        hit.union_with(b);
                    }
                    if r.op == Operator::DoesNotExist {
                        hit = hit.complement();
                    }
                }
            }
            out.intersect_with(&hit);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, op, values.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn selector_semantics_table() {
        use Operator::*;
        let web = labels(&[("app", "web"), ("tier", "frontend")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[]);
        let cases: Vec<(Selector, &Labels, bool, &str)> = vec![
            (
                Selector::everything(),
                &none,
                true,
                "empty selector matches no labels",
            ),
            (
                Selector::everything(),
                &web,
                true,
                "empty selector matches anything",
            ),
            (
                Selector::label("app", "web"),
                &web,
                true,
                "matchLabels equal",
            ),
            (
                Selector::label("app", "web"),
                &db,
                false,
                "matchLabels other value",
            ),
            (
                Selector::label("app", "web"),
                &none,
                false,
                "matchLabels key missing",
            ),
            (
                Selector::new([], [req("app", In, &["web", "db"])]).unwrap(),
                &db,
                true,
                "In one of values",
            ),
            (
                Selector::new([], [req("app", In, &["web"])]).unwrap(),
                &none,
                false,
                "In needs the key",
            ),
            (
                Selector::new([], [req("app", NotIn, &["web"])]).unwrap(),
                &db,
                true,
                "NotIn other value",
            ),
            (
                Selector::new([], [req("app", NotIn, &["web"])]).unwrap(),
                &web,
                false,
                "NotIn listed value",
            ),
            (
                Selector::new([], [req("app", NotIn, &["web"])]).unwrap(),
                &none,
                true,
                "NotIn matches a missing key",
            ),
            (
                Selector::new([], [req("tier", Exists, &[])]).unwrap(),
                &web,
                true,
                "Exists present",
            ),
            (
                Selector::new([], [req("tier", Exists, &[])]).unwrap(),
                &db,
                false,
                "Exists absent",
            ),
            (
                Selector::new([], [req("tier", DoesNotExist, &[])]).unwrap(),
                &db,
                true,
                "DoesNotExist absent",
            ),
            (
                Selector::new([], [req("tier", DoesNotExist, &[])]).unwrap(),
                &web,
                false,
                "DoesNotExist present",
            ),
            (
                Selector::new(
                    [("app".into(), "web".into())],
                    [req("tier", In, &["backend"])],
                )
                .unwrap(),
                &web,
                false,
                "matchLabels and matchExpressions are ANDed",
            ),
            (
                Selector::new(
                    [("app".into(), "web".into())],
                    [req("tier", In, &["frontend"])],
                )
                .unwrap(),
                &web,
                true,
                "both hold",
            ),
        ];
        for (sel, l, want, msg) in cases {
            assert_eq!(sel.matches(l), want, "{msg}: {sel} on {l:?}");
        }
    }

    #[test]
    fn invalid_requirements_are_rejected() {
        assert!(
            Requirement::new("a", Operator::In, vec![]).is_err(),
            "In without values"
        );
        assert!(
            Requirement::new("a", Operator::NotIn, vec![]).is_err(),
            "NotIn without values"
        );
        assert!(
            Requirement::new("a", Operator::Exists, vec!["x".into()]).is_err(),
            "Exists with values"
        );
        assert!(
            Requirement::new("", Operator::Exists, vec![]).is_err(),
            "empty key"
        );
        assert!("Equals".parse::<Operator>().is_err(), "unknown operator");
    }

    #[test]
    fn display_is_kubectl_like() {
        let s = Selector::new(
            [("app".into(), "web".into())],
            [
                req("tier", Operator::NotIn, &["a", "b"]),
                req("legacy", Operator::DoesNotExist, &[]),
            ],
        )
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!legacy,tier notin (a,b)");
    }
}
