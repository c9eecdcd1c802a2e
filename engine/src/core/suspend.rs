//! Suspending and resuming an instance (挂起 / 激活, issue 11.3). A role the policy declares
//! `may suspend` suspends an instance with a reason (a court case, a higher body's instruction):
//! while suspended no step may be acted on (F050) and no deadline runs — the deadline and
//! reminder timers are withdrawn, so nothing lapses and nothing is escalated. Resuming, with a
//! reason, moves every open deadline (and an owner's limit kept through a return, R3.5) later by
//! the time suspended, counted as periods are (R0.1: the day of the suspension itself not
//! counted, the day of the resumption counted): as many working days as fell in it for a
//! deadline written in working days, as many calendar days otherwise. The moved deadlines are
//! written into the `Resumed` event, so the history says what changed. Windows are dates the
//! documents fix and do not move.

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_dsl::ir::{self, TimeUnit};

use super::period::{self, PeriodEnd};
use super::{Actor, Decision, Event, MovedDeadline, NodeStatus, Refusal, Suspension, WaitingShift};

impl Decision<'_> {
    /// The actor's role may suspend and resume instances of this policy (403 otherwise).
    fn may_suspend(&self, actor: &Actor) -> Result<(), Refusal> {
        let allowed: Vec<String> =
            self.ctx.program.policy.roles.iter().filter(|r| r.may_suspend).map(|r| r.name.clone()).collect();
        if allowed.contains(&actor.role) {
            return Ok(());
        }
        Err(Refusal::SuspendNotAllowed { role: actor.role.clone(), allowed })
    }

    pub(super) fn suspend(&mut self, actor: &Actor, reason: &str) -> Result<(), Refusal> {
        self.running()?;
        self.may_suspend(actor)?;
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "suspend".into() });
        }
        if let Some(s) = &self.state.suspended {
            return Err(Refusal::Suspended { since: s.since, reason: s.reason.clone() });
        }
        self.emit(Event::Suspended { reason: reason.to_string() });
        Ok(())
    }

    pub(super) fn resume(&mut self, actor: &Actor, reason: &str) -> Result<(), Refusal> {
        self.running()?;
        self.may_suspend(actor)?;
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "resume".into() });
        }
        let Some(Suspension { since, .. }) = self.state.suspended.clone() else {
            return Err(Refusal::NotSuspended);
        };
        let mut deadlines = Vec::new();
        for (key, n) in &self.state.nodes {
            let from = match (n.status, n.due_at, n.kept_limit) {
                (NodeStatus::Open, Some(due), _) => due,
                (NodeStatus::Waiting, _, Some(limit)) => limit,
                _ => continue,
            };
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            let to = self.moved(key, def, from, since)?;
            if to != from {
                deadlines.push(MovedDeadline { node: key.clone(), from, to });
            }
        }
        // A deadline still waiting for its year's calendar (R0.2) is lengthened by as much, counted
        // on when the year comes.
        let mut waiting = Vec::new();
        for (key, n) in &self.state.nodes {
            let (NodeStatus::Open, Some(_)) = (n.status, n.due_awaiting) else { continue };
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            let (amount, _) = self.suspended_amount(key, def, since)?;
            if amount > 0 {
                waiting.push(WaitingShift { node: key.clone(), amount });
            }
        }
        self.emit(Event::Resumed { reason: reason.to_string(), deadlines, waiting });
        Ok(())
    }

    /// How much of the deadline's unit fell from the day after `since` through today, and whether
    /// that unit is working days.
    fn suspended_amount(&self, key: &str, def: &ir::Node, since: DateTime<Utc>) -> Result<(u32, bool), Refusal> {
        let offset = self.ctx.program.offset;
        let (first, last) = (since.with_timezone(&offset).date_naive(), self.now.with_timezone(&offset).date_naive());
        let in_workdays = match &def.deadline {
            Some(ir::Deadline::AfterOpen { span, .. } | ir::Deadline::AfterDone { span, .. }) => {
                span.unit == TimeUnit::Workdays
            }
            _ => false,
        };
        let mut amount: u32 = 0;
        let mut day = first;
        while day < last {
            day = day.succ_opt().ok_or_else(|| Refusal::Evaluation { message: format!("{day} is out of range") })?;
            let counts = !in_workdays
                || self.ctx.calendar.is_working_day(day).map_err(|e| Refusal::Calendar {
                    message: format!("resuming moves the deadline of step `{key}`: {e}"),
                })?;
            if counts {
                amount += 1;
            }
        }
        Ok((amount, in_workdays))
    }

    /// `due` moved later by the time suspended from `since` until now.
    fn moved(
        &self,
        key: &str,
        def: &ir::Node,
        due: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Refusal> {
        let offset = self.ctx.program.offset;
        let (amount, in_workdays) = self.suspended_amount(key, def, since)?;
        if amount == 0 {
            return Ok(due);
        }
        // The deadline's last day: 24:00 of it is 00:00 of the next.
        let last_day = (due - TimeDelta::seconds(1)).with_timezone(&offset).date_naive();
        let unit = if in_workdays { TimeUnit::Workdays } else { TimeUnit::Days };
        let span = ir::Span { amount, unit };
        match period::period_end_from_day(self.ctx.calendar, offset, last_day, span, false)? {
            PeriodEnd::At(to) => Ok(to),
            PeriodEnd::AwaitingCalendar { year } => Err(Refusal::Calendar {
                message: format!(
                    "resuming moves the deadline of step `{key}` by {span} into {year}, whose working-day calendar is \
                     not published yet; resume once the year is added"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use chrono::{DateTime, Utc};

    use crate::core::{Action, Actor, Command, Event, MovedDeadline};
    use crate::sim::Simulation;

    /// Two steps open at once, one due in working days, one in calendar days; the coordinating
    /// office may suspend.
    const SUSPENDABLE: &str = r#"
policy 办理 {
  role 承办科室
  role 协调办 may suspend
  step 核查: task { by 承办科室 due 3 workdays on breach overdue, escalate 协调办 }
  step 公告: task { by 承办科室 due 10 days }
  step 报名: task { by 承办科室 window 2026-09-25 .. 2026-10-08 }
}"#;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn office(role: &str) -> Actor {
        Actor { principal: format!("{role}-1"), office: role.into(), role: role.into() }
    }

    #[test]
    fn issue_11_3_a_suspension_over_the_2026_national_day_holiday_moves_each_deadline_by_the_days_it_took() {
        let mut s = Simulation::new(SUSPENDABLE, "2026-09-25 10:00").unwrap();
        s.start(&[]).unwrap();
        // Friday 09-25: 3 working days → the end of Wednesday 09-30; 10 days → the end of 10-05.
        let (work_due, day_due) = (utc("2026-09-30T16:00:00Z"), utc("2026-10-05T16:00:00Z"));
        assert_eq!(s.state.nodes.get("核查").unwrap().due_at, Some(work_due));
        assert_eq!(s.state.nodes.get("公告").unwrap().due_at, Some(day_due));

        let refused = s.command(Command::Suspend { actor: office("承办科室"), reason: "诉讼中".into() });
        assert_eq!(refused.unwrap_err().code(), "F052");
        s.advance_to("2026-09-29 10:00").unwrap();
        let suspended = s.command(Command::Suspend { actor: office("协调办"), reason: "等待法院裁定".into() });
        assert_eq!(suspended.unwrap(), vec![Event::Suspended { reason: "等待法院裁定".into() }]);
        // Nothing is acted on, and nothing lapses, while suspended.
        let act = s.act("承办科室", "核查", Action::Complete { report: "已核查".into() }).unwrap_err();
        assert_eq!(act.code(), "F050");
        // No deadline lapses while suspended; a window is a date the documents fix and still
        // closes on it (R1.1: what was not done in it is late).
        let meanwhile = s.advance_to("2026-10-09 09:00").unwrap();
        let seen: Vec<(&str, Option<&str>)> = meanwhile.iter().map(|e| (e.kind(), e.node())).collect();
        assert_eq!(seen, [("window_closed", Some("报名")), ("overdue", Some("报名"))]);
        assert!(!s.state.nodes.get("核查").unwrap().overdue && !s.state.nodes.get("公告").unwrap().overdue);
        // Resumed on Friday 10-09. Counted as a period (R0.1, from the day after the suspension
        // through the day of the resumption): working days 09-30, 10-08, 10-09 (10-01 … 10-07
        // are the holiday) — 3; calendar days 09-30 … 10-09 — 10.
        let resumed = s.command(Command::Resume { actor: office("协调办"), reason: "法院已裁定".into() }).unwrap();
        assert_eq!(
            resumed,
            vec![Event::Resumed {
                reason: "法院已裁定".into(),
                deadlines: vec![
                    // The end of 09-30 + 3 working days: 10-08, 10-09, the make-up Saturday 10-10.
                    MovedDeadline { node: "公告".into(), from: day_due, to: utc("2026-10-15T16:00:00Z") },
                    MovedDeadline { node: "核查".into(), from: work_due, to: utc("2026-10-10T16:00:00Z") },
                ],
                waiting: vec![],
            }]
        );
        assert_eq!(s.state.suspended, None);
        assert_eq!(s.replayed(), s.state);
        assert_eq!(
            s.command(Command::Resume { actor: office("协调办"), reason: "再次".into() }).unwrap_err().code(),
            "F051"
        );
        // The breach falls at the moved deadline, not the first.
        assert!(s.advance_to("2026-10-10 23:00").unwrap().is_empty());
        let breach = s.advance_to("2026-10-11 09:00").unwrap();
        assert_eq!(breach[0], Event::Overdue { node: "核查".into(), due_at: utc("2026-10-10T16:00:00Z") });
    }
}
