//! R0.2: periods waiting for a year's working-day calendar (待公布的工作日历).
//!
//! A deadline or a minimum duration whose working-day count reaches a year the calendar does
//! not hold is never guessed from weekdays, and never stops the step either: the step opens, its
//! deadline reads "awaiting the YYYY calendar" (`Event::DeadlineAwaitingCalendar`), and when an
//! administrator adds the year (`Command::CalendarAdded`) each waiting period is computed from
//! the event it counts from, recorded in the instance's own history with the notice and who
//! added it (`Event::CalendarApplied`). The deadline's timers then follow from the state as any
//! other's (`pending_timers`).

use super::period::{self, PeriodEnd};
use super::{AwaitingCalendar, CalendarNotice, Decision, Event, NodeStatus, Refusal, State};

/// Folds the three events of this module.
pub(super) fn apply(state: &mut State, event: &Event) {
    match event {
        Event::DeadlineAwaitingCalendar { node, year, from } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.due_at = None;
                n.due_awaiting = Some(AwaitingCalendar { year: *year, from: *from });
            }
        }
        Event::MinDurationAwaitingCalendar { node, year, from } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.min_until = None;
                n.min_awaiting = Some(AwaitingCalendar { year: *year, from: *from });
            }
        }
        Event::CalendarApplied { node, due_at, min_until, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
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
    /// `year` was added to the calendar: compute every open step's periods that waited for it.
    pub(super) fn calendar_added(&mut self, year: i32, notice: &CalendarNotice, added_by: &str) -> Result<(), Refusal> {
        let waiting: Vec<(String, Option<AwaitingCalendar>, Option<AwaitingCalendar>)> = self
            .state
            .nodes
            .iter()
            .filter(|(_, n)| n.status == NodeStatus::Open)
            .map(|(k, n)| {
                let due = n.due_awaiting.filter(|w| w.year == year);
                let min = n.min_awaiting.filter(|w| w.year == year);
                (k.clone(), due, min)
            })
            .filter(|(_, due, min)| due.is_some() || min.is_some())
            .collect();
        let offset = self.ctx.program.offset;
        for (key, due_wait, min_wait) in waiting {
            let Some(def) = self.state.nodes.get(&key).and_then(|n| self.ctx.program.node(&n.def)) else { continue };
            let due = match (due_wait, &def.deadline) {
                (Some(w), Some(d)) => self.deadline(&key, d, w.from)?.map(|end| (end, w.from)),
                _ => None,
            };
            let min = match (min_wait, def.min_duration) {
                (Some(w), Some(span)) => {
                    Some((period::period_end(self.ctx.calendar, offset, w.from, span, false)?, w.from))
                }
                _ => None,
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
            });
            // A long period may reach a further year still missing: it waits for that one now.
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
