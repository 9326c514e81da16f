//! Test support shared by the compiler tests.
pub mod reimport;
pub mod schema;
