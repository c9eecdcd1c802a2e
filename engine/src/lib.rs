//! civicflow-engine: the runtime that runs compiled policies.
//!
//! The engine keeps a pure core (state + command + now → events) and does its I/O at the edges,
//! behind traits. This first part is the working-day calendar ([`calendar`]): every deadline
//! counted in working days (工作日) or rolled off a holiday depends on it, and it must refuse to
//! answer for a year it has no data for rather than guess from weekdays.

pub mod audit;
pub mod calendar;
pub mod clock;
pub mod core;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod runtime;
pub mod sim;
pub mod store;
