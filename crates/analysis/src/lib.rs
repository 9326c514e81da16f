//! Questions asked of the policy model: connectivity reports and their formats, explanations of
//! single flows, and invariants checked against a cluster's own policies (`verify_k8s`).
#![forbid(unsafe_code)]

pub mod bench;
pub mod connectivity;
pub mod explain;
pub mod render;
pub mod verify;

pub use connectivity::{Connection, Options, connectivity, endpoint_name};
pub use explain::{Explanation, explain};
pub use render::{Format, render};
pub use verify::{K8sVerification, VerifyError, verify_k8s};
