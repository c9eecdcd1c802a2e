//! Periods as the law counts them (期间的计算, R0.1, R0.2): one rule for deadlines, minimum
//! durations and reminders.
//!
//! Civil Code arts. 200–204: a period in days, months or years does not count the day of the
//! event that starts it (开始的当日不计入); it runs from the next day and ends at 24:00 of its last
//! day (期间的最后一日的截止时间为二十四时). A period in months or years ends on the corresponding
//! day of the last month, or on that month's last day where it has none (Jan 31 + 1 month →
//! Feb 28, or 29). Working days (工作日, R0.2) count the same way: `10 workdays` after an event
//! ends at 24:00 of the tenth working day after the event's day. With `roll`, a last day that is
//! not a working day moves to the first working day after it (art. 203).
//!
//! So the end of every period is an instant at the start of a local day: the day after its last
//! day, at 00:00 in the policy's zone. A working-day count that reaches a year the calendar does
//! not hold is never guessed (R0.2): the period's end is [`PeriodEnd::AwaitingCalendar`] for that
//! year, and is computed again the moment the year is added (`Command::CalendarAdded`).

use chrono::{DateTime, FixedOffset, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use civicflow_dsl::ir::{Span, TimeUnit};

use super::Refusal;
use crate::calendar::{Calendar, CalendarError};

/// When a period ends: an instant, or not yet known because a year's calendar is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodEnd {
    /// 24:00 of the period's last day, as an instant.
    At(DateTime<Utc>),
    /// The count reaches `year`, whose working-day calendar is not loaded yet (待公布).
    AwaitingCalendar { year: i32 },
}

/// The last day of a period of `span` counted from the event on `event_day` (that day itself
/// not counted), rolled to a working day if `roll`.
pub fn last_day(calendar: &Calendar, event_day: NaiveDate, span: Span, roll: bool) -> Result<DayOrYear, Refusal> {
    let n = i64::from(span.amount);
    let out_of_range = || Refusal::Evaluation { message: format!("{event_day} + {span} is out of range") };
    let last = match span.unit {
        TimeUnit::Days => event_day.checked_add_days(chrono::Days::new(n.unsigned_abs())).ok_or_else(out_of_range)?,
        TimeUnit::Workdays => match calendar.add_workdays(event_day, n) {
            Ok(d) => d,
            Err(e) => return calendar_result(e),
        },
        TimeUnit::Months | TimeUnit::Years => {
            let months = if span.unit == TimeUnit::Years { span.amount.saturating_mul(12) } else { span.amount };
            event_day.checked_add_months(Months::new(months)).ok_or_else(out_of_range)?
        }
    };
    if roll {
        return match calendar.roll_forward(last) {
            Ok(d) => Ok(DayOrYear::Day(d)),
            Err(e) => calendar_result(e),
        };
    }
    Ok(DayOrYear::Day(last))
}

/// A day, or the year whose calendar a count is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayOrYear {
    Day(NaiveDate),
    AwaitingCalendar(i32),
}

/// A calendar's answer as the expression evaluator reports it: a year not covered is waited for
/// (R0.2), anything else is a fault.
pub fn eval_error(e: CalendarError) -> civicflow_dsl::eval::EvalError {
    use civicflow_dsl::eval::EvalError;
    match e {
        CalendarError::YearNotCovered { year, .. } => EvalError::YearNotCovered { year, message: e.to_string() },
        other => EvalError::Calendar { message: other.to_string() },
    }
}

fn calendar_result(e: CalendarError) -> Result<DayOrYear, Refusal> {
    match e {
        CalendarError::YearNotCovered { year, .. } => Ok(DayOrYear::AwaitingCalendar(year)),
        other => Err(Refusal::Calendar { message: other.to_string() }),
    }
}

/// The end of a period of `span` that starts with an event at `start` (R0.1): 24:00 (local) of
/// its last day.
///
/// A notice posted 04-05 10:00 (+08:00) with `min 3 days` runs 04-06, 04-07, 04-08 and ends at
/// 04-09 00:00 (+08:00).
pub fn period_end(
    calendar: &Calendar,
    offset: FixedOffset,
    start: DateTime<Utc>,
    span: Span,
    roll: bool,
) -> Result<PeriodEnd, Refusal> {
    period_end_from_day(calendar, offset, start.with_timezone(&offset).date_naive(), span, roll)
}

/// [`period_end`] from the local day of the starting event.
pub fn period_end_from_day(
    calendar: &Calendar,
    offset: FixedOffset,
    event_day: NaiveDate,
    span: Span,
    roll: bool,
) -> Result<PeriodEnd, Refusal> {
    match last_day(calendar, event_day, span, roll)? {
        DayOrYear::Day(last) => end_of_day(offset, last).map(PeriodEnd::At),
        DayOrYear::AwaitingCalendar(year) => Ok(PeriodEnd::AwaitingCalendar { year }),
    }
}

/// 24:00 of a local day: the start of the next day, as an instant.
pub fn end_of_day(offset: FixedOffset, day: NaiveDate) -> Result<DateTime<Utc>, Refusal> {
    let next = day.succ_opt().ok_or_else(|| Refusal::Evaluation { message: format!("{day} is out of range") })?;
    start_of_day(offset, next)
}

/// 00:00 of a local day, as an instant.
pub fn start_of_day(offset: FixedOffset, day: NaiveDate) -> Result<DateTime<Utc>, Refusal> {
    offset
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .single()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| Refusal::Evaluation { message: format!("no start of day {day}") })
}

/// A reminder `span` before a deadline `due`: the same time of day, `span` earlier on the
/// calendar (a deadline at 24:00 of Friday 05-10 is 00:00 of Saturday 05-11; `remind 1 workdays
/// before` it is 00:00 of Friday, the working day before Saturday). `None` when the count reaches
/// a year the calendar lacks: that reminder is not sent rather than guessed (R0.2).
pub fn before(calendar: &Calendar, offset: FixedOffset, due: DateTime<Utc>, span: Span) -> Option<DateTime<Utc>> {
    let local = due.with_timezone(&offset);
    let day = local.date_naive();
    let n = i64::from(span.amount);
    let earlier = match span.unit {
        TimeUnit::Days => day.checked_sub_days(chrono::Days::new(n.unsigned_abs()))?,
        TimeUnit::Workdays => calendar.add_workdays(day, -n).ok()?,
        TimeUnit::Months | TimeUnit::Years => {
            let months = if span.unit == TimeUnit::Years { span.amount.saturating_mul(12) } else { span.amount };
            day.checked_sub_months(Months::new(months))?
        }
    };
    offset.from_local_datetime(&earlier.and_time(local.time())).single().map(|d| d.with_timezone(&Utc))
}
