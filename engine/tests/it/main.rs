//! The engine's integration tests: one binary (`cargo test -p civicflow-engine --test it`).
//!
//! - `store`: the store conformance suite, run against SQLite (a temp file) and PostgreSQL
//!   (127.0.0.1:5432, database `test`, a fresh schema per test; skipped with a message when
//!   unreachable, failed when `CI=true`).
//! - `race`: an approval and its step's deadline timer racing on two nodes, forced in both
//!   orders by a store that holds one node's commit (SQLite and PostgreSQL).
//! - `cache`: the runtime's instance cache serves what the stored history replays to, on two
//!   runtimes sharing a store (a property test).
//! - `snapshots`: a record read folds the events after its stored snapshot (SQLite, PostgreSQL).
//! - `open_steps`: an inbox read from the open-step table the commits keep, and the table built
//!   from the states for a database from before it (SQLite, PostgreSQL).
//! - `audit_log`: issue 12's signed checkpoints and proofs from the stored leaves (SQLite,
//!   PostgreSQL).
//! - `events_fixture`: events stored by earlier versions read back and write out unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod audit_log;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod cache;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod calendars;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod cycles;
mod events_fixture;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod open_steps;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod race;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod runtime;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod snapshots;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod store;
