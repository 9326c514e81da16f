//! The Kubernetes adapter: reads manifests and translates workloads, NetworkPolicy,
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy into the core policy model.
#![forbid(unsafe_code)]

mod fast;
pub mod load;
pub mod objects;
mod stream;
pub mod yaml;

pub use load::{LoadError, Located, Manifests};
pub mod convert;

pub use convert::{Loaded, build};
/// For the differential tests and fuzz target of the fast YAML reader; not an API.
#[doc(hidden)]
pub use fast::agrees_with_serde_saphyr;
