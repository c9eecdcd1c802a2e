//! civicflow (library part of the binary crate): the CLI, the HTTP server and its parts, so the
//! end-to-end tests (`tests/`) start the very server the binary runs, in-process.
//!
//! - `cli`: the clap commands (`check`, `fmt`, `graph`, `explain`, `serve`, `token create`).
//! - `http`: the axum API (v1), its authentication, problems and OpenAPI document.
//! - `serve`: the store, runtime, timer service and HTTP server started and stopped together.
//! - `pages`: the web pages (handlebars, sessions, CSRF) for offices and oversight staff.
//! - `calendars`: calendar years from files (`calendar check`, `calendar add`, `--calendar-dir`).
//! - `audit`: issue 12's audit key file and `civicflow audit export|verify|witness`.
//! - `oversight`: issue 12.6's lateness report (by office, policy, week; SVG charts, CSV).
//! - `metrics`: the Prometheus text exposition and the measuring store wrapper.

pub mod audit;
pub mod calendars;
pub mod cli;
pub mod connections;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod oversight;
pub mod pages;
pub mod serve;
