//! Any file given as a working-day calendar year (`calendar check`, `POST /v1/admin/calendars`):
//! a year or an error in words, never a panic.
#![no_main]

use civicflow_engine::calendar::YearCalendar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = YearCalendar::parse(text, "fuzz.json");
});
