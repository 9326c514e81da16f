//! Identity resolution: which workload, host, Service or external network held an address at
//! a given time, from Kubernetes objects (pods over time, Services), host inventories (YAML or
//! CSV) and configured CIDR groups; and which end of a flow record is the client.
//!
//! Pure apart from reading host inventory files: the index is built from already-loaded
//! objects ([`bulkhead_k8s::Loaded`]) and answers lookups in memory.
#![forbid(unsafe_code)]

pub mod direction;
pub mod hosts;
mod index;
mod prefix;

pub use direction::{Connections, Oriented, orient};
pub use hosts::{Host, HostError, load_hosts, parse_net};
pub use index::{Entity, EntityKind, How, Index, IndexStats, LookupCache, Resolved, is_public};
pub use prefix::PrefixTable;
