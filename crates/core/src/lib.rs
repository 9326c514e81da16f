//! Bulkhead's pure core: labels and selectors, port and address sets, the policy model and the
//! connectivity engine. No I/O lives here; adapters translate their inputs into these types.
#![forbid(unsafe_code)]

mod atoms;
pub mod bitset;
pub mod conn;
pub mod engine;
pub mod flow;
mod index;
pub mod ip;
pub mod model;
pub mod rangeset;
pub mod selector;
pub mod time;

pub use bitset::Bitset;
pub use conn::{ConnSet, PortSet, Protocol};
pub use engine::{
    Decision, DirChange, DirDecision, Endpoint, Endpoints, Engine, PeerSet, ReachGroup, Reason,
    RuleRef, SpansPieces, Update,
};
pub use ip::{IpRange, IpSet};
pub use model::{
    Action, Cluster, Direction, Layer, NAMESPACE_NAME_LABEL, NamedPort, NsMatch, Origin, Peer,
    PodMatch, Policy, PortMatch, Rule, Workload,
};
pub use rangeset::RangeSet;
pub use selector::{LabelBits, Labels, Operator, Requirement, Selector, SelectorError};
