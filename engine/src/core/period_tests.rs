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
    assert_eq!(refusal.code(), "F017");
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

// --- R0.2: a deadline in a year without calendar data waits for it ----------------------------

/// The test fixture for 2027 (not the real arrangement: no notice is published).
const FIXTURE_2027: &str = include_str!("../../../tests/data/calendar-test-fixture/2027.json");

fn year_2027() -> crate::calendar::YearCalendar {
    crate::calendar::YearCalendar::parse(FIXTURE_2027, "test fixture 2027.json").unwrap()
}

fn notice() -> CalendarNotice {
    CalendarNotice { title: "测试通知".into(), date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap() }
}

const TEN_WORKDAYS: &str = r#"
policy demand {
  role 首办部门
  role 区领导
  step 办理: task {
    by 首办部门
    due 10 workdays
    remind 2 workdays before
    on breach escalate 区领导
    urge by 区领导
  }
}"#;

#[test]
fn r0_2_a_deadline_reaching_2027_opens_the_step_awaiting_the_calendar() {
    // Monday 2026-12-21 10:00: 12-22 … 12-31 are 8 working days; the 9th and 10th are in 2027.
    let mut s = Simulation::new(TEN_WORKDAYS, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    let n = &s.state.nodes["办理"];
    assert_eq!(n.status, NodeStatus::Open);
    assert_eq!(n.due(), Due::AwaitingCalendar { year: 2027 });
    assert_eq!(n.due_at, None);
    assert_eq!(
        s.history.last().map(|(e, _)| e.clone()),
        Some(Event::DeadlineAwaitingCalendar {
            node: "办理".into(),
            year: 2027,
            from: utc("2026-12-21T10:00:00+08:00")
        })
    );
    // No deadline timer, no reminder: nothing is guessed.
    assert_eq!(pending_timers(s.ctx(), &s.state), vec![]);
    // Everything else about the step goes on.
    s.advance_to("2026-12-23 09:00").unwrap();
    s.act("区领导", "办理", Action::Urge { message: None }).unwrap();
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r0_2_adding_the_year_computes_the_deadline_and_records_who_added_it() {
    let mut s = Simulation::new(TEN_WORKDAYS, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    s.advance_to("2026-12-28 09:00").unwrap();
    let before = s.history.len();
    let events = s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap();
    // 2027-01-01 … 01-03 off: Monday 01-04 is the 9th working day, Tuesday 01-05 the 10th.
    let due = utc("2027-01-06T00:00:00+08:00");
    assert_eq!(
        events,
        vec![Event::CalendarApplied {
            node: "办理".into(),
            year: 2027,
            notice: notice(),
            added_by: "admin-1".into(),
            due_at: Some(due),
            min_until: None,
            window: None,
        }]
    );
    assert_eq!(s.history.len(), before + 1);
    assert_eq!(s.state.nodes["办理"].due(), Due::At(due));
    // The timers follow from the state: the reminder two working days before, the deadline.
    assert_eq!(
        pending_timers(s.ctx(), &s.state),
        vec![
            Timer { node: "办理".into(), kind: TimerKind::Due, at: due },
            Timer { node: "办理".into(), kind: TimerKind::Reminder, at: utc("2027-01-04T00:00:00+08:00") },
        ]
    );
    s.advance_to("2027-01-07 09:00").unwrap();
    let overdue = s.history.iter().find(|(e, _)| matches!(e, Event::Overdue { .. }));
    assert_eq!(overdue.map(|(_, at)| *at), Some(utc("2027-01-05T16:00:00Z")));
    assert_eq!(s.replayed(), s.state);
    // Adding the year again changes nothing.
    assert_eq!(s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap(), vec![]);
}

#[test]
fn r0_2_a_minimum_in_workdays_reaching_2027_refuses_the_end_until_the_year_is_added() {
    let src = "policy p {\n  role 街道\n  step 甲: filing { by 街道 min 10 workdays }\n}";
    let mut s = Simulation::new(src, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["甲"].status, NodeStatus::Open);
    s.advance_to("2027-01-08 09:00").unwrap();
    let before = s.history.len();
    let refusal = s.act("街道", "甲", file()).unwrap_err();
    assert_eq!(refusal.code(), "F026");
    assert_eq!(
        refusal.to_string(),
        "step `甲` cannot end yet: its minimum duration counts working days into 2027, whose \
         working-day calendar is not published yet (awaiting the 2027 calendar, 待2027年日历公布)"
    );
    assert_eq!(s.history.len(), before, "a refusal records nothing");
    let events = s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap();
    assert!(matches!(
        &events[..],
        [Event::CalendarApplied { min_until: Some(at), due_at: None, .. }] if *at == utc("2027-01-06T00:00:00+08:00")
    ));
    s.act("街道", "甲", file()).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r0_2_a_year_added_that_is_not_awaited_records_nothing() {
    let mut s = Simulation::new(TEN_WORKDAYS, "2026-10-12 10:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap(), vec![]);
}

/// A window and a date deadline written in working days from a date parameter: with 开始 =
/// 2026-12-21, `开始 + 10 workdays` is in 2027 (12-22 … 12-31 are 8 working days).
const WINDOW_IN_WORKDAYS: &str = r#"
policy p {
  param 开始: date = 2026-12-21
  role 街道
  phase 阶段 {
    window 开始 + 10 workdays .. 开始 + 15 workdays
    step 甲: task { by 街道 due 3 days }
  }
  step 乙: task { by 街道 window 开始 .. 开始 + 10 workdays min 2 days }
  step 丙: task { by 街道 due 开始 + 10 workdays }
}"#;

#[test]
fn r0_2_a_window_in_working_days_waits_for_its_year() {
    let mut s = Simulation::new(WINDOW_IN_WORKDAYS, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    let opened = utc("2026-12-21T10:00:00+08:00");
    let wait = Some(AwaitingCalendar { year: 2027, from: opened, extra: 0 });
    // Every step opens; none is refused at opening (was F022).
    for key in ["阶段", "阶段/甲", "乙", "丙"] {
        assert_eq!(s.state.nodes[key].status, NodeStatus::Open, "{key}");
    }
    assert_eq!((s.state.nodes["阶段"].window, s.state.nodes["阶段"].window_awaiting), (None, wait));
    assert_eq!((s.state.nodes["乙"].window, s.state.nodes["乙"].window_awaiting), (None, wait));
    // 甲 counts from the phase's window, 乙's minimum from its own: both wait with the window.
    assert_eq!(s.state.nodes["阶段/甲"].due(), Due::AwaitingCalendar { year: 2027 });
    assert_eq!(s.state.nodes["乙"].min_awaiting, wait);
    // `due 开始 + 10 workdays` is a deadline like any other: awaiting the 2027 calendar.
    assert_eq!(s.state.nodes["丙"].due(), Due::AwaitingCalendar { year: 2027 });
    assert_eq!(pending_timers(s.ctx(), &s.state), vec![]);
    // Whether a waiting window is open is not known: acting is refused, nothing recorded.
    s.advance_to("2026-12-23 09:00").unwrap();
    let before = s.history.len();
    for key in ["阶段/甲", "乙"] {
        let refusal = s.act("街道", key, Action::Complete { report: "完成".into() }).unwrap_err();
        assert_eq!(refusal.code(), "F027");
        assert_eq!(
            refusal.to_string(),
            format!(
                "step `{key}` cannot be acted on yet: its window counts working days into 2027, whose \
                 working-day calendar is not published yet (awaiting the 2027 calendar, 待2027年日历公布)"
            )
        );
    }
    assert_eq!(s.history.len(), before, "a refusal records nothing");

    s.advance_to("2026-12-28 09:00").unwrap();
    let events = s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap();
    let applied = |node: &str, window, due_at, min_until| Event::CalendarApplied {
        node: node.into(),
        year: 2027,
        notice: notice(),
        added_by: "admin-1".into(),
        due_at,
        min_until,
        window,
    };
    // The 10th working day is Tuesday 2027-01-05 (01-01 … 01-03 off), the 15th Tuesday 01-12.
    let phase = (utc("2027-01-05T00:00:00+08:00"), utc("2027-01-13T00:00:00+08:00"));
    let own = (utc("2026-12-21T00:00:00+08:00"), utc("2027-01-06T00:00:00+08:00"));
    assert_eq!(
        events,
        vec![
            applied("阶段", Some(phase), None, None),
            // 甲's clock starts when the phase's window opens: 01-05 + 3 days ends 01-08 24:00.
            applied("阶段/甲", None, Some(utc("2027-01-09T00:00:00+08:00")), None),
            // 乙's window opened before the step did: its minimum counts from the opening.
            applied("乙", Some(own), None, Some(utc("2026-12-24T00:00:00+08:00"))),
            applied("丙", None, Some(utc("2027-01-06T00:00:00+08:00")), None),
        ]
    );
    assert_eq!(s.state.nodes["乙"].window_awaiting, None);
    assert_eq!(
        pending_timers(s.ctx(), &s.state),
        vec![
            Timer { node: "丙".into(), kind: TimerKind::Due, at: utc("2027-01-06T00:00:00+08:00") },
            Timer { node: "乙".into(), kind: TimerKind::WindowCloses, at: own.1 },
            Timer { node: "阶段/甲".into(), kind: TimerKind::Due, at: utc("2027-01-09T00:00:00+08:00") },
        ]
    );
    // The windows now decide as any other: 甲 before its phase opens, 乙 inside its own.
    assert_eq!(
        s.act("街道", "阶段/甲", Action::Complete { report: "完成".into() }).unwrap_err().to_string(),
        "step `阶段/甲` cannot be acted on before 2027-01-05 00:00 +08:00 (its window)"
    );
    s.act("街道", "乙", Action::Complete { report: "完成".into() }).unwrap();
    assert_eq!(s.state.nodes["乙"].status, NodeStatus::Done);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r0_2_a_minimum_from_a_parameter_waiting_for_its_year_counts_the_parameter() {
    // `min 公示天数 workdays` with 公示天数 = 10: the same 2027-01-06 00:00 as `min 10 workdays`.
    let src = "policy p {\n  param 公示天数: int >= 0 = 10\n  role 街道\n  step 甲: filing { by 街道 min 公示天数 workdays }\n}";
    let mut s = Simulation::new(src, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    let events = s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap();
    assert!(matches!(
        &events[..],
        [Event::CalendarApplied { min_until: Some(at), .. }] if *at == utc("2027-01-06T00:00:00+08:00")
    ));
}

/// Issue 11.3 with R0.2: a deadline still waiting for 2027 when the instance is suspended is
/// lengthened by the working days suspended, counted on when the year is added.
#[test]
fn issue_11_3_a_suspension_lengthens_a_deadline_waiting_for_its_calendar() {
    let src = TEN_WORKDAYS.replace("role 区领导", "role 区领导 may suspend");
    let mut s = Simulation::new(&src, "2026-12-21 10:00").unwrap();
    s.start(&[]).unwrap();
    let leader = crate::core::Actor { principal: "钱".into(), office: "区政府".into(), role: "区领导".into() };
    s.advance_to("2026-12-22 10:00").unwrap();
    s.command(crate::core::Command::Suspend { actor: leader.clone(), reason: "等待法院裁定".into() }).unwrap();
    s.advance_to("2026-12-24 10:00").unwrap();
    // Suspended on Tuesday 12-22, resumed on Thursday 12-24: 12-23 and 12-24, two working days.
    let resumed = s.command(crate::core::Command::Resume { actor: leader, reason: "法院已裁定".into() }).unwrap();
    assert_eq!(
        resumed,
        vec![Event::Resumed {
            reason: "法院已裁定".into(),
            deadlines: vec![],
            waiting: vec![crate::core::WaitingShift { node: "办理".into(), amount: 2 }],
        }]
    );
    assert_eq!(s.state.nodes["办理"].due(), Due::AwaitingCalendar { year: 2027 });
    let events = s.add_calendar_year(year_2027(), notice(), "admin-1").unwrap();
    // Due the end of Tuesday 01-05 without the suspension; two working days more: 01-06, 01-07.
    let due = utc("2027-01-08T00:00:00+08:00");
    assert!(matches!(&events[..], [Event::CalendarApplied { due_at: Some(at), .. }] if *at == due), "{events:?}");
    assert_eq!(s.state.nodes["办理"].due(), Due::At(due));
    assert_eq!(s.replayed(), s.state);
}
