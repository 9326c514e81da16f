//! Questions asked of the policy model: connectivity reports and their formats, explanations of
//! single flows.
#![forbid(unsafe_code)]

pub mod bench;
pub mod connectivity;
pub mod explain;
pub mod render;

pub use connectivity::{Connection, Options, connectivity, endpoint_name};
pub use explain::{Explanation, explain};
pub use render::{Format, render};
