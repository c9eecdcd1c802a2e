//! R0.2: periods waiting for a year's working-day calendar (待公布的工作日历).
//!
//! A window, a deadline or a minimum duration whose working-day count reaches a year the calendar does
//! not hold is never guessed from weekdays, and never stops the step either: the step opens, its
//! deadline reads "awaiting the YYYY calendar" (`Event::DeadlineAwaitingCalendar`), and when an
//! administrator adds the year (`Command::CalendarAdded`) each waiting period is computed from
//! the event it counts from, recorded in the instance's own history with the notice and who
//! added it (`Event::CalendarApplied`). The deadline's timers then follow from the state as any
//! other's (`pending_timers`). A step whose window waits cannot be acted on (F027: whether it is
//! open is not known), and its deadline and minimum duration wait with it, since they count
//! from the window's opening.

use super::open::Window;
use super::period::PeriodEnd;
use super::{AwaitingCalendar, CalendarNotice, Decision, Event, NodeStatus, Refusal, State};

/// Folds the three events of this module.
pub(super) fn apply(state: &mut State, event: &Event) {
    match event {
        Event::DeadlineAwaitingCalendar { node, year, from } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.due_at = None;
                // A period reaching a further year keeps what suspensions added to it.
                let extra = n.due_awaiting.map_or(0, |w| w.extra);
                n.due_awaiting = Some(AwaitingCalendar { year: *year, from: *from, extra });
            }
        }
        Event::MinDurationAwaitingCalendar { node, year, from } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.min_until = None;
                n.min_awaiting = Some(AwaitingCalendar { year: *year, from: *from, extra: 0 });
            }
        }
        Event::WindowAwaitingCalendar { node, year, from } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.window = None;
                n.window_awaiting = Some(AwaitingCalendar { year: *year, from: *from, extra: 0 });
            }
        }
        Event::CalendarApplied { node, due_at, min_until, window, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                if let Some(w) = window {
                    n.window = Some(*w);
                    n.window_awaiting = None;
                }
                if let Some(at) = due_at {
                    n.due_at = Some(*at);
                    n.due_awaiting = None;
                }
                if let Some(at) = min_until {
                    n.min_until = Some(*at);
                    n.min_awaiting = None;
                }
            }
        }
        _ => {}
    }
}

impl Decision<'_> {
    /// A deadline `at` moved later by `extra` of its unit (working days for a deadline written in
    /// working days, calendar days otherwise), counted on from its last day as periods are.
    fn lengthened(
        &self,
        def: &civicflow_dsl::ir::Node,
        at: chrono::DateTime<chrono::Utc>,
        extra: u32,
    ) -> Result<PeriodEnd, Refusal> {
        use civicflow_dsl::ir::{Deadline, Span, TimeUnit};
        let workdays = matches!(
            &def.deadline,
            Some(Deadline::AfterOpen { span, .. } | Deadline::AfterDone { span, .. }) if span.unit == TimeUnit::Workdays
        );
        let unit = if workdays { TimeUnit::Workdays } else { TimeUnit::Days };
        let offset = self.ctx.program.offset;
        let last_day = (at - chrono::TimeDelta::seconds(1)).with_timezone(&offset).date_naive();
        super::period::period_end_from_day(self.ctx.calendar, offset, last_day, Span { amount: extra, unit }, false)
    }

    /// `year` was added to the calendar: compute every open step's window and periods that
    /// waited for it — parents before children, since a step's clock starts no earlier than the
    /// windows around it (`clock_start`).
    pub(super) fn calendar_added(&mut self, year: i32, notice: &CalendarNotice, added_by: &str) -> Result<(), Refusal> {
        for key in self.order() {
            let Some(n) = self.state.nodes.get(&key).filter(|n| n.status == NodeStatus::Open) else { continue };
            let waits = |w: Option<AwaitingCalendar>| w.filter(|w| w.year == year);
            let (window_wait, due_wait, min_wait) =
                (waits(n.window_awaiting), waits(n.due_awaiting), waits(n.min_awaiting));
            if window_wait.is_none() && due_wait.is_none() && min_wait.is_none() {
                continue;
            }
            let own_window = n.window;
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            let window = match window_wait {
                Some(_) => self.window_of(&key, def)?,
                None => None,
            };
            let own = match window {
                Some(Window::At(from, to)) => Some((from, to)),
                _ => own_window,
            };
            let start = |from| match window {
                Some(Window::AwaitingCalendar(next)) => Err(next),
                _ => self.clock_start(&key, own, from),
            };
            let due = match (due_wait, &def.deadline) {
                (Some(w), Some(d)) => match self.deadline_from(&key, d, start(w.from))? {
                    // Issue 11.3: the days suspended while it waited, counted on from its end.
                    Some(PeriodEnd::At(at)) if w.extra > 0 => Some((self.lengthened(def, at, w.extra)?, w.from)),
                    end => end.map(|end| (end, w.from)),
                },
                _ => None,
            };
            let min = match min_wait {
                Some(w) => self.min_from(def, start(w.from))?.map(|end| (end, w.from)),
                None => None,
            };
            let at = |end: Option<(PeriodEnd, _)>| match end {
                Some((PeriodEnd::At(at), _)) => Some(at),
                _ => None,
            };
            self.emit(Event::CalendarApplied {
                node: key.clone(),
                year,
                notice: notice.clone(),
                added_by: added_by.to_string(),
                due_at: at(due),
                min_until: at(min),
                window: match window {
                    Some(Window::At(from, to)) => Some((from, to)),
                    _ => None,
                },
            });
            // A long period may reach a further year still missing: it waits for that one now.
            if let (Some(Window::AwaitingCalendar(next)), Some(w)) = (window, window_wait) {
                self.emit(Event::WindowAwaitingCalendar { node: key.clone(), year: next, from: w.from });
            }
            if let Some((PeriodEnd::AwaitingCalendar { year: next }, from)) = due {
                self.emit(Event::DeadlineAwaitingCalendar { node: key.clone(), year: next, from });
            }
            if let Some((PeriodEnd::AwaitingCalendar { year: next }, from)) = min {
                self.emit(Event::MinDurationAwaitingCalendar { node: key.clone(), year: next, from });
            }
        }
        Ok(())
    }
}
