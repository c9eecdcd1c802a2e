//! civicflow-dsl: the policy language.
//!
//! `compile(source)` runs the whole pipeline: parse → resolve and type-check → schedule
//! feasibility → lower to the graph IR → content hash. It does no I/O, reads no clock and knows
//! nothing of servers, storage or HTTP.

pub mod ast;
pub mod diag;
pub mod syntax;

pub use diag::{Code, Diagnostic, Renderer};
