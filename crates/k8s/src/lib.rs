//! The Kubernetes adapter: reads manifests and translates workloads, NetworkPolicy,
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy into the core policy model.
#![forbid(unsafe_code)]

pub mod load;
pub mod objects;

pub use load::{LoadError, Located, Manifests};
pub mod convert;

pub use convert::{Loaded, build};
