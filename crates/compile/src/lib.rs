//! Compilers from Bulkhead's intent (`bulkhead-intent`) to the engines that enforce it in
//! clusters: Kubernetes NetworkPolicy with AdminNetworkPolicy/BaselineAdminNetworkPolicy
//! (v1alpha1) or ClusterNetworkPolicy (v1alpha2), Cilium, Calico and Istio. Hosts' nftables
//! rulesets are compiled by `bulkhead-nft`.
//!
//! Pure: the result is manifests in memory ([`Compiled`]); the CLI writes them. Every compiler
//! keeps the intent's meaning (see `docs/compile.md`): where a target cannot express a part of
//! the intent, compilation fails with a [`CompileError`] naming the rule and its place, or, where
//! a documented fallback exists, applies it and says so in [`Compiled::notes`]. Meaning is never
//! dropped silently.

pub mod calico;
pub mod cilium;
pub mod istio;
pub mod k8s;
pub mod lower;
pub mod pieces;

use bulkhead_intent::{Identity, Intent, Loc};
use std::collections::BTreeMap;
use std::fmt;

/// An enforcement target of `bulkhead compile --target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    K8s,
    Cilium,
    Calico,
    Istio,
    Nftables,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::K8s,
        Target::Cilium,
        Target::Calico,
        Target::Istio,
        Target::Nftables,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::K8s => "k8s",
            Target::Cilium => "cilium",
            Target::Calico => "calico",
            Target::Istio => "istio",
            Target::Nftables => "nftables",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which cluster-scoped Kubernetes API carries the guardrail and baseline tiers (`--k8s-api`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum K8sApi {
    /// AdminNetworkPolicy and BaselineAdminNetworkPolicy, `policy.networking.k8s.io/v1alpha1`.
    #[default]
    Anp,
    /// ClusterNetworkPolicy, `policy.networking.k8s.io/v1alpha2`, tiers `Admin` and `Baseline`.
    Cnp,
}

/// What a compiler needs besides the intent.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub k8s_api: K8sApi,
    /// The inventory (workloads and hosts), where a target resolves identities to something
    /// the selectors cannot say: Istio's service accounts, hosts' addresses. Empty when none was
    /// given.
    pub inventory: Vec<Identity>,
}

/// The compiled result: files relative to the output directory, in a stable order, and notes
/// on every fallback taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Relative path (`/`-separated) → file contents.
    pub files: BTreeMap<String, String>,
    /// Explicit fallbacks and what each target left to its defaults, for the user to read.
    pub notes: Vec<String>,
}

/// Why a target cannot express an intent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A part of the intent the target cannot express; nothing was compiled.
    #[error("{loc}: {target} cannot express {what}")]
    Unsupported {
        target: Target,
        loc: Loc,
        what: String,
        /// What the user can do instead.
        hint: Option<String>,
    },
    /// A limit of the target (priorities, rules, identities) was exceeded.
    #[error("{target}: {what}")]
    Limit { target: Target, what: String },
    /// The intent itself is not usable (errors the loader or the evaluator report).
    #[error("{0}")]
    Intent(String),
}

/// Compiles `intent` for a cluster target. `Target::Nftables` is compiled per host by
/// `bulkhead-nft` and is refused here.
pub fn compile(intent: &Intent, target: Target, opts: &Options) -> Result<Compiled, CompileError> {
    match target {
        Target::K8s => k8s::compile(intent, opts),
        Target::Cilium => cilium::compile(intent, opts),
        Target::Calico => calico::compile(intent, opts),
        Target::Istio => istio::compile(intent, opts),
        Target::Nftables => Err(CompileError::Intent(
            "nftables rulesets are compiled per host by bulkhead-nft".to_string(),
        )),
    }
}
