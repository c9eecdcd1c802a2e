//! Opening a step: its guard, its copies (fan-out), and its clock — the window it may be acted
//! in (R1.1), its deadline and its minimum duration, each counted as the law counts (R0.1) and
//! waiting for a year's calendar rather than guessing it (R0.2).

use chrono::{DateTime, Utc};
use civicflow_dsl::eval::{self, EvalError};
use civicflow_dsl::ir;
use civicflow_dsl::value::Value;

use super::period::{self, PeriodEnd};
use super::{amounts, date_of, day_start, eval_refusal, Decision, Event, Refusal};

/// A step's window (R1.1): from `.0` (included) to `.1` (excluded), or the year whose working-day
/// calendar its expressions wait for (R0.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Window {
    At(DateTime<Utc>, DateTime<Utc>),
    AwaitingCalendar(i32),
}

/// A date expression's day, or the year whose calendar its working days wait for (R0.2).
pub(super) fn date_or_year(v: Result<Value, EvalError>) -> Result<Result<chrono::NaiveDate, i32>, Refusal> {
    match v {
        Ok(v) => date_of(v).map(Ok),
        Err(EvalError::YearNotCovered { year, .. }) => Ok(Err(year)),
        Err(e) => Err(eval_refusal(e)),
    }
}

impl Decision<'_> {
    pub(super) fn open(&mut self, key: &str, def: &ir::Node) -> Result<(), Refusal> {
        if let Some(guard) = &def.guard {
            let v = eval::eval(guard, &self.env(key, None, None)).map_err(eval_refusal)?;
            if v == Value::Bool(false) {
                self.emit(Event::Skipped { node: key.to_string(), reason: "its `when` condition is false".into() });
                return Ok(());
            }
        }
        let is_template = def.for_each.is_some() && self.state.nodes.get(key).is_some_and(|n| n.element.is_none());
        if is_template {
            let Some(fe) = &def.for_each else { return Ok(()) };
            let list = eval::eval(&fe.list, &self.env(key, None, None)).map_err(eval_refusal)?;
            let Value::List(items) = list else {
                return Err(Refusal::Evaluation { message: format!("`for` over `{list}`, which is not a list") });
            };
            let copies = items.into_iter().enumerate().map(|(i, v)| (format!("{key}[{i}]"), v)).collect();
            self.emit(Event::Expanded { def: key.to_string(), copies });
            return self.bind_copies(key, def);
        }
        let window = self.window_of(key, def)?;
        let own = match window {
            Some(Window::At(from, to)) => Some((from, to)),
            _ => None,
        };
        let start = match window {
            Some(Window::AwaitingCalendar(year)) => Err(year),
            _ => self.clock_start(key, own, self.now),
        };
        // A step passed on keeps the owner's limit it had (R3.5).
        let kept = self.state.nodes.get(key).and_then(|n| n.kept_limit);
        let due = match (&def.deadline, kept) {
            (_, Some(limit)) => Some(PeriodEnd::At(limit)),
            (Some(d), None) => self.deadline_from(key, d, start)?,
            (None, None) => None,
        };
        let min = self.min_from(def, start)?;
        let instant = |end: Option<PeriodEnd>| match end {
            Some(PeriodEnd::At(at)) => Some(at),
            _ => None,
        };
        let (due_at, min_until) = (instant(due), instant(min));
        self.emit(Event::Opened { node: key.to_string(), window: own, due_at, min_until });
        // R0.2: a count into a year without its calendar does not stop the step: it waits. A
        // period waiting for its window counts from the opening; the window's start is applied
        // when the year is added (`clock_start`).
        let from = start.unwrap_or(self.now);
        if let Some(Window::AwaitingCalendar(year)) = window {
            self.emit(Event::WindowAwaitingCalendar { node: key.to_string(), year, from: self.now });
        }
        if let Some(PeriodEnd::AwaitingCalendar { year }) = due {
            self.emit(Event::DeadlineAwaitingCalendar { node: key.to_string(), year, from });
        }
        if let Some(PeriodEnd::AwaitingCalendar { year }) = min {
            self.emit(Event::MinDurationAwaitingCalendar { node: key.to_string(), year, from });
        }
        Ok(())
    }

    /// The step's own window, if it has one.
    pub(super) fn window_of(&self, key: &str, def: &ir::Node) -> Result<Option<Window>, Refusal> {
        let Some(w) = &def.window else { return Ok(None) };
        let env = self.env(key, None, None);
        let offset = self.ctx.program.offset;
        let from = date_or_year(eval::eval(&w.from, &env))?;
        let to = date_or_year(eval::eval(&w.to, &env))?;
        match (from, to) {
            (Ok(from), Ok(to)) => {
                let end = to.succ_opt().ok_or_else(|| Refusal::Evaluation { message: "date out of range".into() })?;
                Ok(Some(Window::At(day_start(offset, from)?, day_start(offset, end)?)))
            }
            (Err(year), _) | (_, Err(year)) => Ok(Some(Window::AwaitingCalendar(year))),
        }
    }

    /// When the step's clock starts (R1.1): at `opened`, or when its window (`own`) or that of a
    /// phase around it opens, if that is later — it cannot be acted on before. `Err(year)` when
    /// a window around it still waits for that year's calendar (R0.2).
    pub(super) fn clock_start(
        &self,
        key: &str,
        own: Option<(DateTime<Utc>, DateTime<Utc>)>,
        opened: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, i32> {
        let mut start = own.map_or(opened, |(from, _)| from.max(opened));
        let def = self.state.nodes.get(key).and_then(|n| self.ctx.program.node(&n.def));
        let mut parent = def.and_then(|d| d.parent.clone());
        while let Some(p) = parent {
            if let Some(n) = self.state.nodes.get(&p) {
                if let Some(w) = n.window_awaiting {
                    return Err(w.year);
                }
                if let Some((from, _)) = n.window {
                    start = start.max(from);
                }
            }
            parent = self.ctx.program.node(&p).and_then(|n| n.parent.clone());
        }
        Ok(start)
    }

    /// The deadline counted from `start`, or waiting for the year the clock's start waits for.
    pub(super) fn deadline_from(
        &self,
        key: &str,
        d: &ir::Deadline,
        start: Result<DateTime<Utc>, i32>,
    ) -> Result<Option<PeriodEnd>, Refusal> {
        match (d, start) {
            (ir::Deadline::AfterOpen { .. }, Err(year)) => Ok(Some(PeriodEnd::AwaitingCalendar { year })),
            (_, start) => self.deadline(key, d, start.unwrap_or(self.now)),
        }
    }

    /// The minimum duration counted from `start` (R0.1), if the step has one.
    pub(super) fn min_from(
        &self,
        def: &ir::Node,
        start: Result<DateTime<Utc>, i32>,
    ) -> Result<Option<PeriodEnd>, Refusal> {
        let Some(span) = def.min_duration else { return Ok(None) };
        let start = match start {
            Ok(start) => start,
            Err(year) => return Ok(Some(PeriodEnd::AwaitingCalendar { year })),
        };
        // R0.1: a minimum duration counts like any period: from the day after `start`, to 24:00
        // of its last day (a notice posted 04-05 10:00 for 3 days may close at 04-09 00:00).
        let span = self.resolved_span(def, span, amounts::Which::Min)?;
        period::period_end(self.ctx.calendar, self.ctx.program.offset, start, span, false).map(Some)
    }

    /// When a deadline falls: the end of its last day, in the policy's zone.
    pub(super) fn deadline(
        &self,
        key: &str,
        d: &ir::Deadline,
        start: DateTime<Utc>,
    ) -> Result<Option<PeriodEnd>, Refusal> {
        let offset = self.ctx.program.offset;
        let (base, span, roll) = match d {
            ir::Deadline::AfterOpen { span, roll } => (start.with_timezone(&offset).date_naive(), *span, *roll),
            ir::Deadline::AfterDone { node, span, roll } => {
                match self.state.nodes.get(node).and_then(|n| n.closed_at) {
                    Some(at) => (at.with_timezone(&offset).date_naive(), *span, *roll),
                    None => return Ok(None),
                }
            }
            ir::Deadline::At { date } => {
                let env = self.env(key, None, None);
                return match date_or_year(eval::eval(date, &env))? {
                    Ok(day) => period::end_of_day(offset, day).map(|at| Some(PeriodEnd::At(at))),
                    Err(year) => Ok(Some(PeriodEnd::AwaitingCalendar { year })),
                };
            }
        };
        let span = match self.state.nodes.get(key).and_then(|n| self.ctx.program.node(&n.def)) {
            Some(def) => self.resolved_span(def, span, amounts::Which::Due)?,
            None => span,
        };
        // R0.1: the same rule as every period (`period::period_end`).
        period::period_end_from_day(self.ctx.calendar, offset, base, span, roll).map(Some)
    }
}
