#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod diagnostics;
mod docs;
mod fmt_props;
