//! R0.1 / R0.2: periods counted as the law counts them, at their exact boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::Simulation;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn file() -> Action {
    Action::File { comment: None }
}

/// One step, opened when the instance starts.
fn one_step(clauses: &str, kind: &str) -> String {
    format!("policy p {{\n  role 街道\n  step 甲: {kind} {{ by 街道 {clauses} }}\n}}")
}

fn overdue_at(s: &Simulation) -> Option<DateTime<Utc>> {
    s.history.iter().find(|(e, _)| matches!(e, Event::Overdue { .. })).map(|(_, at)| *at)
}

#[test]
fn r0_1_a_notice_posted_at_10_00_for_3_days_ends_at_24_00_of_the_third_day() {
    // DOMAIN.md R0.1's own example: posted 04-05 10:00, runs 04-06, 04-07, 04-08.
    let mut s = Simulation::new(&one_step("min 3 days", "filing"), "2025-04-05 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].min_until, Some(utc("2025-04-09T00:00:00+08:00")));
    s.advance_to("2025-04-08 23:59").unwrap();
    let before = s.history.len();
    let refusal = s.act("街道", "甲", file()).unwrap_err();
    assert_eq!(refusal.code(), "R017");
    assert_eq!(refusal.to_string(), "step `甲` cannot end before 2025-04-09 00:00 +08:00 (its minimum duration)");
    assert_eq!(s.history.len(), before, "a refusal records nothing");
    s.advance_to("2025-04-09 00:00").unwrap();
    s.act("街道", "甲", file()).unwrap();
    assert_eq!(s.state.nodes["甲"].status, NodeStatus::Done);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r0_1_a_public_notice_closes_itself_at_24_00_of_its_last_day() {
    let mut s = Simulation::new(&one_step("min 3 days", "publicity"), "2025-04-05 10:00").unwrap();
    s.start(&[]).unwrap();
    s.advance_to("2025-04-08 23:59").unwrap();
    assert_eq!(s.state.nodes["甲"].status, NodeStatus::Open);
    s.advance_to("2025-04-09 00:00").unwrap();
    let done = s.history.iter().find(|(e, _)| matches!(e, Event::Completed { node, .. } if node == "甲"));
    assert_eq!(done.map(|(_, at)| *at), Some(utc("2025-04-08T16:00:00Z")));
}

#[test]
fn r0_1_a_deadline_in_days_ends_at_24_00_of_its_last_day() {
    let mut s = Simulation::new(&one_step("due 3 days", "task"), "2025-04-05 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].due_at, Some(utc("2025-04-09T00:00:00+08:00")));
    s.advance_to("2025-04-08 23:59").unwrap();
    assert_eq!(overdue_at(&s), None);
    s.advance_to("2025-04-10 00:00").unwrap();
    assert_eq!(overdue_at(&s), Some(utc("2025-04-08T16:00:00Z")));
}

#[test]
fn r0_1_one_month_from_january_31_ends_with_the_last_day_of_february() {
    // Civil Code art. 202: no corresponding day in the last month → that month's last day.
    let mut s = Simulation::new(&one_step("due 1 months", "task"), "2025-01-31 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].due_at, Some(utc("2025-03-01T00:00:00+08:00")));
    let mut leap = Simulation::new(&one_step("due 1 months", "task"), "2024-01-31 10:00").unwrap();
    leap.start(&[]).unwrap();
    assert_eq!(leap.state.nodes["甲"].due_at, Some(utc("2024-03-01T00:00:00+08:00")), "02-29 is the last day");
    let mut mid = Simulation::new(&one_step("due 2 months", "task"), "2025-01-15 10:00").unwrap();
    mid.start(&[]).unwrap();
    assert_eq!(mid.state.nodes["甲"].due_at, Some(utc("2025-03-16T00:00:00+08:00")), "03-15 is the last day");
}

#[test]
fn r0_1_one_year_from_february_29_ends_with_february_28() {
    let mut s = Simulation::new(&one_step("due 1 years", "task"), "2024-02-29 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].due_at, Some(utc("2025-03-01T00:00:00+08:00")));
}

#[test]
fn r0_1_roll_moves_a_last_day_in_the_national_day_holiday_to_the_next_working_day() {
    // Opened 2026-09-28: 3 days end with 10-01, a holiday (10-01 … 10-07); the next working day
    // is Thursday 10-08.
    let mut s = Simulation::new(&one_step("due 3 days roll", "task"), "2026-09-28 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].due_at, Some(utc("2026-10-09T00:00:00+08:00")));
    // Without `roll` the holiday is the last day.
    let mut plain = Simulation::new(&one_step("due 3 days", "task"), "2026-09-28 10:00").unwrap();
    plain.start(&[]).unwrap();
    assert_eq!(plain.state.nodes["甲"].due_at, Some(utc("2026-10-02T00:00:00+08:00")));
}

#[test]
fn r0_2_a_workday_period_across_the_national_day_holiday_counts_the_make_up_saturday() {
    // Opened Wednesday 2026-09-30: 10-01 … 10-07 are off, Thursday 10-08 is the 1st working
    // day, Friday 10-09 the 2nd, Saturday 10-10 (调休上班) the 3rd: the period ends 10-11 00:00.
    let mut s = Simulation::new(&one_step("due 3 workdays", "task"), "2026-09-30 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].due_at, Some(utc("2026-10-11T00:00:00+08:00")));
    s.advance_to("2026-10-10 23:59").unwrap();
    assert_eq!(overdue_at(&s), None);
    s.advance_to("2026-10-11 00:00").unwrap();
    assert_eq!(overdue_at(&s), Some(utc("2026-10-10T16:00:00Z")));
}

#[test]
fn r0_1_a_minimum_in_workdays_counts_like_a_deadline() {
    // The same count for `min`: opened 2026-09-30 10:00, `min 1 workdays` ends with Thursday
    // 10-08, so the step may end at 10-09 00:00.
    let mut s = Simulation::new(&one_step("min 1 workdays", "filing"), "2026-09-30 10:00").unwrap();
    s.start(&[]).unwrap();
    s.advance_to("2026-10-08 23:59").unwrap();
    assert_eq!(
        s.act("街道", "甲", file()).unwrap_err().to_string(),
        "step `甲` cannot end before 2026-10-09 00:00 +08:00 (its minimum duration)"
    );
    s.advance_to("2026-10-09 00:00").unwrap();
    s.act("街道", "甲", file()).unwrap();
}

#[test]
fn r0_1_a_step_opened_by_its_window_counts_from_the_window_day() {
    // The window opens 2025-04-05 00:00: the event is that day, which is not counted.
    let src = "policy p {\n  role 街道\n  step 甲: filing { by 街道 window 2025-04-05 .. 2025-04-30 min 3 days }\n}";
    let mut s = Simulation::new(src, "2025-04-01 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].min_until, Some(utc("2025-04-09T00:00:00+08:00")));
}
