//! civicflow-e2e: tests that look across crates. The library is empty; the tests are in `it/`.
//!
//! - `browser`: the web pages in headless Chromium through WebDriver (fantoccini, chromedriver).
//! - `contract`: schemathesis against `/openapi.json` (issue 9.7).
//! - `nodes`: three timer-node processes on one PostgreSQL schema; one killed, one stopped.
//! - `tidy`: the architecture invariants of ARCHITECTURE.md, read from the sources.
//! - `crash`: the engine on SQLite killed with SIGKILL under load, then checked after a restart.
//! - `http`: the server on a loopback port, driven through HTTP (an election on SQLite and
//!   PostgreSQL, refusals, idempotency, `as_of`, verification, OpenAPI).
//! - `pages`: the web pages through HTTP (sign-in, CSRF, inbox, acting, timeline, audit trail).
//! - `audit_log`: issue 12's forgeries named by the offline verifier and the witness (SQLite,
//!   PostgreSQL).
//! - `http_oversight`: issue 12.6's lateness by office, policy and week (SQLite, PostgreSQL).
//! - `http_calendar`: R0.2, a deadline in 2027 waiting for its calendar, then the year added.
//! - `http_election`: the bundled election, whole, through HTTP beside its in-memory twin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod audit_log;
mod authz;
mod browser;
mod contract;
mod crash;
mod faults;
mod http;
mod http_calendar;
mod http_changes;
mod http_election;
mod http_forgery;
mod http_migrations;
pub(crate) mod http_oversight;
mod limits;
mod nodes;
mod pages;
mod pg;
mod tidy;
