//! Test support shared by the compiler tests.
pub mod schema;
pub mod reimport;
